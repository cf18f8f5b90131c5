// Small numeric building blocks shared by the batch and continual paths, templated
// on the scalar so the double-precision reference runs the same definitions.
// Tokens are matrix columns; head j of an E-vector is rows [j d, (j+1) d).
#pragma once

#include <Eigen/Core>
#include <cmath>
#include <unsupported/Eigen/SpecialFunctions>

#include "nystream/config.h"

namespace nystream {

// In place: each column x <- gamma * (x - mean) / sqrt(var + eps) + beta, with
// the biased variance, as torch.nn.LayerNorm.
template <typename Derived, typename Vec>
void layer_norm_columns(Eigen::MatrixBase<Derived>& x, const Vec& gamma, const Vec& beta,
                        typename Derived::Scalar eps) {
  using S = typename Derived::Scalar;
  for (Eigen::Index c = 0; c < x.cols(); ++c) {
    auto col = x.col(c);
    const S mean = col.mean();
    col.array() -= mean;
    const S inv = S(1) / std::sqrt(col.squaredNorm() / S(col.size()) + eps);
    col.array() = col.array() * inv * gamma.array().template cast<S>() +
                  beta.array().template cast<S>();
  }
}

// In place, exact (erf) GELU as torch.nn.GELU().
template <typename Derived>
void gelu(Eigen::MatrixBase<Derived>& x) {
  using S = typename Derived::Scalar;
  const S inv_sqrt2 = S(0.70710678118654752440);
  x.array() = S(0.5) * x.array() * (S(1) + (x.array() * inv_sqrt2).erf());
}

// In place: softmax of each column, shifted by its maximum so no exp overflows.
template <typename Derived>
void softmax_columns(Eigen::MatrixBase<Derived>& x) {
  for (Eigen::Index c = 0; c < x.cols(); ++c) {
    auto col = x.col(c);
    col.array() = (col.array() - col.maxCoeff()).exp();
    col /= col.sum();
  }
}

// In place: softmax of each row.
template <typename Derived>
void softmax_rows(Eigen::MatrixBase<Derived>& x) {
  for (Eigen::Index r = 0; r < x.rows(); ++r) {
    auto row = x.row(r);
    row.array() = (row.array() - row.maxCoeff()).exp();
    row /= row.sum();
  }
}

// The model's output activation, logits -> scores: sigmoid per class, or softmax
// over the classes shifted by the maximum. Allocates nothing.
inline void activate(OutputActivation activation, const Eigen::Ref<const Eigen::VectorXf>& logits,
                     float* scores) {
  Eigen::Map<Eigen::VectorXf> out(scores, logits.size());
  if (activation == OutputActivation::kSigmoid) {
    out = (1.0f + (-logits.array()).exp()).inverse().matrix();
  } else {
    out = (logits.array() - logits.maxCoeff()).exp().matrix();
    out /= out.sum();
  }
}

}  // namespace nystream
