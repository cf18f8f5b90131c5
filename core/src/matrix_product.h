// y = W x over a batch of tokens for float32 weights, through Eigen's blocked
// matrix-matrix kernel with its packing buffers allocated here, once. Eigen's
// product expression sizes those buffers per call and takes them from the heap
// once they pass its stack limit (EIGEN_STACK_ALLOCATION_LIMIT, 128 kB), which
// a batch of tokens times a 1024 x 192 matrix does; a StreamBatch step must not
// allocate. This is Eigen's internal API (stable through 3.3 and 3.4), kept to
// this one class.
#pragma once

#include <Eigen/Core>
#include <memory>

namespace nystream {

class MatrixProduct {
 public:
  // No buffers: run() is the plain product expression (a single column is a
  // matrix-vector product, which allocates nothing).
  MatrixProduct() = default;
  // For W of rows x depth times up to max_columns columns.
  MatrixProduct(Eigen::Index rows, Eigen::Index depth, Eigen::Index max_columns)
      : blocking_(new Blocking(rows, max_columns, depth, 1, true)) {
    blocking_->allocateAll();
  }

  // Below this many columns, one matrix-vector product per column: the blocked
  // kernel copies (packs) all of W on every call, which costs more than
  // reading W once per column for two or three (measured on the published
  // audio configuration: k = 2 took 50 us per stream against 39 alone).
  static constexpr Eigen::Index kMinBlockedColumns = 4;

  // y = w x; y must not alias x.
  void run(const Eigen::Ref<const Eigen::MatrixXf>& w, const Eigen::Ref<const Eigen::MatrixXf>& x,
           Eigen::Ref<Eigen::MatrixXf> y) const {
    if (!blocking_ || x.cols() < kMinBlockedColumns) {
      for (Eigen::Index c = 0; c < x.cols(); ++c) y.col(c).noalias() = w * x.col(c);
      return;
    }
    y.setZero();  // the kernel accumulates
    Eigen::internal::general_matrix_matrix_product<
        Eigen::Index, float, Eigen::ColMajor, false, float, Eigen::ColMajor, false, Eigen::ColMajor,
        1>::run(w.rows(), x.cols(), w.cols(), w.data(), w.outerStride(), x.data(), x.outerStride(),
                y.data(), 1, y.outerStride(), 1.0f, *blocking_, nullptr);
  }

 private:
  using Blocking = Eigen::internal::gemm_blocking_space<Eigen::ColMajor, float, float, Eigen::Dynamic,
                                                        Eigen::Dynamic, Eigen::Dynamic>;
  std::unique_ptr<Blocking> blocking_;
};

}  // namespace nystream
