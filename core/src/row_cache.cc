#include "row_cache.h"

namespace nystream {

RowCache::RowCache(int rows, int heads, int head_dim, int window)
    : rows_(rows),
      heads_(heads),
      head_dim_(head_dim),
      window_(window),
      numerators_(heads * head_dim, rows),
      sums_(heads, rows),
      offsets_(heads, rows),
      product_(heads * head_dim),
      score_new_(heads * rows),
      score_old_(heads * rows),
      weight_new_(heads * head_dim),
      weight_old_(heads * head_dim),
      rescale_(heads, rows),
      window_scores_(window) {
  reset();
}

void RowCache::reset() {
  numerators_.setZero();
  sums_.setConstant(static_cast<float>(window_));
  offsets_.setZero();
}

void RowCache::head_dots(const Eigen::MatrixXf& queries, int i, const Eigen::VectorXf& k,
                         Eigen::VectorXf& out) {
  product_ = queries.col(i).cwiseProduct(k);
  const Eigen::Map<const Eigen::MatrixXf> per_head(product_.data(), head_dim_, heads_);
  out.segment(i * heads_, heads_) = per_head.colwise().sum().transpose();
}

void RowCache::slide(const Eigen::MatrixXf& queries, const Eigen::VectorXf& k_new,
                     const Eigen::VectorXf& v_new, const Eigen::VectorXf& k_old,
                     const Eigen::VectorXf& v_old, const Eigen::MatrixXf& keys,
                     const Eigen::MatrixXf& values) {
  for (int i = 0; i < rows_; ++i) {
    head_dots(queries, i, k_new, score_new_);
    head_dots(queries, i, k_old, score_old_);
  }
  // heads x rows views of the scores, column-aligned with sums_ and offsets_.
  Eigen::Map<Eigen::ArrayXXf> fresh(score_new_.data(), heads_, rows_);
  Eigen::Map<Eigen::ArrayXXf> leaving(score_old_.data(), heads_, rows_);
  // A new maximum raises the offset; the row is rescaled by exp(old - new) <= 1.
  // The leaving key's score is never above the offset: offsets only rise, and a
  // rebuild sets them to the maximum over a window that still held that key.
  auto offsets = offsets_.array();
  rescale_ = (offsets - fresh).min(0.0f).exp();
  offsets = offsets.max(fresh);
  fresh = (fresh - offsets).exp();
  leaving = (leaving - offsets).exp();
  sums_.array() = sums_.array() * rescale_ + fresh - leaving;
  for (int i = 0; i < rows_; ++i) {
    for (int h = 0; h < heads_; ++h) {
      const Eigen::Index at = h * head_dim_;
      product_.segment(at, head_dim_).setConstant(rescale_(h, i));
      weight_new_.segment(at, head_dim_).setConstant(fresh(h, i));
      weight_old_.segment(at, head_dim_).setConstant(leaving(h, i));
    }
    auto s = numerators_.col(i).array();
    s = s * product_.array() + weight_new_.array() * v_new.array() -
        weight_old_.array() * v_old.array();
    for (int h = 0; h < heads_; ++h)
      if (!(sums_(h, i) >= kRebuildBelow)) rebuild_head(i, h, queries, keys, values);
  }
}

void RowCache::rebuild(int i, const Eigen::MatrixXf& queries, const Eigen::MatrixXf& keys,
                       const Eigen::MatrixXf& values) {
  for (int h = 0; h < heads_; ++h) rebuild_head(i, h, queries, keys, values);
}

void RowCache::rebuild_head(int i, int h, const Eigen::MatrixXf& queries,
                            const Eigen::MatrixXf& keys, const Eigen::MatrixXf& values) {
  const Eigen::Index at = h * head_dim_;
  window_scores_.noalias() =
      keys.middleRows(at, head_dim_).transpose() * queries.col(i).segment(at, head_dim_);
  const float top = window_scores_.maxCoeff();
  window_scores_ = (window_scores_.array() - top).exp().matrix();
  numerators_.col(i).segment(at, head_dim_).noalias() =
      values.middleRows(at, head_dim_) * window_scores_;
  sums_(h, i) = window_scores_.sum();
  offsets_(h, i) = top;
  ++rebuilds_;
}

}  // namespace nystream
