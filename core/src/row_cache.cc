#include "row_cache.h"

namespace nystream {

RowCache::RowCache(int rows, int heads, int head_dim, int window)
    : rows_(rows),
      heads_(heads),
      head_dim_(head_dim),
      window_(window),
      numerators_(rows, heads * head_dim),
      sums_(rows, heads),
      offsets_(rows, heads),
      fresh_(rows, heads),
      leaving_(rows, heads),
      rescale_(rows, heads),
      window_scores_(window) {
  reset();
}

void RowCache::reset() {
  numerators_.setZero();
  sums_.setConstant(static_cast<float>(window_));
  offsets_.setZero();
}

void head_dots(const Eigen::MatrixXf& a, const float* x, int heads, int head_dim,
               Eigen::MatrixXf& out) {
  const Eigen::Index rows = a.rows();
  with_row_count(static_cast<int>(rows), [&](auto fixed) {
    constexpr int kRows = decltype(fixed)::value;
    for (int h = 0; h < heads; ++h) {
      RowsMap<kRows> o(out.col(h).data(), rows);
      o.setZero();
      for (int c = h * head_dim; c < (h + 1) * head_dim; ++c)
        o += ConstRowsMap<kRows>(a.col(c).data(), rows) * x[c];
    }
  });
}

void RowCache::slide(const Eigen::MatrixXf& queries, const Eigen::VectorXf& k_new,
                     const Eigen::VectorXf& v_new, const Eigen::VectorXf& k_old,
                     const Eigen::VectorXf& v_old, const Eigen::MatrixXf& keys,
                     const Eigen::MatrixXf& values) {
  head_dots(queries, k_new.data(), heads_, head_dim_, fresh_);
  head_dots(queries, k_old.data(), heads_, head_dim_, leaving_);
  // A new maximum raises the offset; the row is rescaled by exp(old - new) <= 1.
  // The leaving key's score is never above the offset: offsets only rise, and a
  // rebuild sets them to the maximum over a window that still held that key.
  auto offsets = offsets_.array();
  auto fresh = fresh_.array();
  auto leaving = leaving_.array();
  rescale_.array() = (offsets - fresh).min(0.0f).exp();
  offsets = offsets.max(fresh);
  fresh = (fresh - offsets).exp();
  leaving = (leaving - offsets).exp();
  sums_.array() = sums_.array() * rescale_.array() + fresh - leaving;
  with_row_count(rows_, [&](auto fixed) {
    constexpr int kRows = decltype(fixed)::value;
    for (int h = 0; h < heads_; ++h) {
      const ConstRowsMap<kRows> r(rescale_.col(h).data(), rows_);
      const ConstRowsMap<kRows> wn(fresh_.col(h).data(), rows_);
      const ConstRowsMap<kRows> wo(leaving_.col(h).data(), rows_);
      for (int c = h * head_dim_; c < (h + 1) * head_dim_; ++c) {
        RowsMap<kRows> s(numerators_.col(c).data(), rows_);
        s = s.cwiseProduct(r) + wn * v_new[c] - wo * v_old[c];
      }
    }
  });
  for (int h = 0; h < heads_; ++h)
    for (int i = 0; i < rows_; ++i)
      if (!(sums_(i, h) >= kRebuildBelow)) rebuild_head(i, h, queries, keys, values);
}

void RowCache::rebuild(int i, const Eigen::MatrixXf& queries, const Eigen::MatrixXf& keys,
                       const Eigen::MatrixXf& values) {
  for (int h = 0; h < heads_; ++h) rebuild_head(i, h, queries, keys, values);
}

void RowCache::rebuild_head(int i, int h, const Eigen::MatrixXf& queries,
                            const Eigen::MatrixXf& keys, const Eigen::MatrixXf& values) {
  const Eigen::Index at = h * head_dim_;
  window_scores_.noalias() = keys.middleRows(at, head_dim_).transpose() *
                             queries.row(i).segment(at, head_dim_).transpose();
  const float top = window_scores_.maxCoeff();
  window_scores_ = (window_scores_.array() - top).exp().matrix();
  numerators_.row(i).segment(at, head_dim_).noalias() =
      window_scores_.transpose() * values.middleRows(at, head_dim_).transpose();
  sums_(i, h) = window_scores_.sum();
  offsets_(i, h) = top;
  ++rebuilds_;
}

}  // namespace nystream
