// Pseudo-inverse of the m x m landmark kernel A = softmax(Qt Kt^T).
#pragma once

#include <Eigen/Core>
#include <Eigen/QR>

#include "nystream/config.h"

namespace nystream {

// Preallocated for one m, so computing a pinv on the streaming thread allocates
// nothing (the exact mode's decomposition keeps its buffers between calls).
template <typename S>
class PinvSolver {
 public:
  using Mat = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic>;

  explicit PinvSolver(int m)
      : az_(m, m), t1_(m, m), t2_(m, m), z_next_(m, m), cod_(m, m) {}

  // Nyströmformer's iteration,
  //   Z <- 1/4 Z (13 I - A Z (15 I - A Z (7 I - A Z))),  Z_0 = A^T / (|A|_1 |A|_inf),
  // with the start taken from this A alone (the published code shares one maximum
  // across heads and batch; per-head keeps heads independent).
  template <typename InA, typename OutZ>
  void iterative(const Eigen::MatrixBase<InA>& a, int iterations, Eigen::MatrixBase<OutZ>& z) {
    const S norm1 = a.cwiseAbs().colwise().sum().maxCoeff();
    const S norm_inf = a.cwiseAbs().rowwise().sum().maxCoeff();
    z = a.transpose() / (norm1 * norm_inf);
    for (int i = 0; i < iterations; ++i) {
      az_.noalias() = a * z;
      t1_ = -az_;
      t1_.diagonal().array() += S(7);
      t2_.noalias() = az_ * t1_;
      t1_ = -t2_;
      t1_.diagonal().array() += S(15);
      t2_.noalias() = az_ * t1_;
      t1_ = -t2_;
      t1_.diagonal().array() += S(13);
      z_next_.noalias() = z * t1_;
      z = S(0.25) * z_next_;
    }
  }

  // Eigen's complete orthogonal decomposition. Its pseudoInverse() allocates, so
  // exact mode is for load time (fixed landmarks) and for tests, not for streaming
  // with continual landmarks.
  template <typename InA, typename OutZ>
  void exact(const Eigen::MatrixBase<InA>& a, Eigen::MatrixBase<OutZ>& z) {
    t1_ = a;
    cod_.compute(t1_);
    z = cod_.pseudoInverse();
  }

  template <typename InA, typename OutZ>
  void compute(const Eigen::MatrixBase<InA>& a, PinvMode mode, int iterations,
               Eigen::MatrixBase<OutZ>& z) {
    if (mode == PinvMode::kExact)
      exact(a, z);
    else
      iterative(a, iterations, z);
  }

 private:
  Mat az_, t1_, t2_, z_next_;
  Eigen::CompleteOrthogonalDecomposition<Mat> cod_;
};

}  // namespace nystream
