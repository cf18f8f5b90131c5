// pinv(softmax(Qt Kt^T)) per head: the m x m middle factor of Nyström attention.
#pragma once

#include <Eigen/Core>

#include "nystream/config.h"
#include "nystream/ops.h"
#include "nystream/pinv.h"

namespace nystream {

// Works in double: the 6-step iteration can amplify rounding in A by orders of
// magnitude along A's small singular values, and the m x m work is negligible
// next to a step (it runs once per landmark update, or once at load).
class LandmarkKernel {
 public:
  LandmarkKernel(int landmarks, int heads, int head_dim)
      : heads_(heads),
        head_dim_(head_dim),
        solver_(landmarks),
        queries_(head_dim, landmarks),
        keys_(head_dim, landmarks),
        kernel_(landmarks, landmarks),
        inverse_(landmarks, landmarks) {}

  // queries, keys: E x m landmarks (scaled). zinv: m x (m * heads), head j in
  // columns [j m, (j+1) m).
  void compute(const Eigen::MatrixXf& queries, const Eigen::MatrixXf& keys, PinvMode mode,
               int iterations, Eigen::MatrixXf& zinv) {
    const Eigen::Index m = kernel_.rows();
    for (int h = 0; h < heads_; ++h) {
      queries_ = queries.middleRows(h * head_dim_, head_dim_).cast<double>();
      keys_ = keys.middleRows(h * head_dim_, head_dim_).cast<double>();
      kernel_.noalias() = queries_.transpose() * keys_;
      softmax_rows(kernel_);
      solver_.compute(kernel_, mode, iterations, inverse_);
      zinv.middleCols(h * m, m) = inverse_.cast<float>();
    }
  }

 private:
  int heads_, head_dim_;
  PinvSolver<double> solver_;
  Eigen::MatrixXd queries_, keys_, kernel_, inverse_;
};

}  // namespace nystream
