// Running softmax numerators and denominators of r query rows against the keys of
// a sliding window: S_i = sum_j exp(q_i . k_j - c_i) v_j, s_i = sum_j exp(q_i . k_j - c_i),
// per head. Nyström keeps one row per landmark (S = P(Qt, K^) V, s = P(Qt, K^) 1);
// retroactive softmax attention keeps one row per window query.
//
// c_i is a per-row, per-head offset (algorithm.md section 5): it only rises while
// keys slide (so no exp overflows, whatever the scores) and is re-centred on the
// window's maximum when the row is rebuilt. Subtracting leaving keys loses
// precision once s_i is small against what was added, so a row whose s_i falls
// below kRebuildBelow (in units of exp(c_i)) is rebuilt from the window.
#pragma once

#include <Eigen/Core>
#include <cstdint>

namespace nystream {

class RowCache {
 public:
  // s_i < 1/16 means every live score is more than ln 16 below the offset.
  static constexpr float kRebuildBelow = 1.0f / 16.0f;

  RowCache() = default;
  RowCache(int rows, int heads, int head_dim, int window);

  // The window is all padding (k = v = 0): every score is 0, so S = 0, s = n.
  void reset();

  // The window's keys slid by one: k_new, v_new entered, k_old, v_old left.
  // queries: E x rows. keys, values: the window rings after the slide (E x n),
  // for rows that must be rebuilt.
  void slide(const Eigen::MatrixXf& queries, const Eigen::VectorXf& k_new,
             const Eigen::VectorXf& v_new, const Eigen::VectorXf& k_old,
             const Eigen::VectorXf& v_old, const Eigen::MatrixXf& keys,
             const Eigen::MatrixXf& values);

  // Recomputes row i (all heads) from the window: O(n E).
  void rebuild(int i, const Eigen::MatrixXf& queries, const Eigen::MatrixXf& keys,
               const Eigen::MatrixXf& values);

  // E x rows: column i holds S_i of every head; divide by sums() for G V.
  const Eigen::MatrixXf& numerators() const { return numerators_; }
  // heads x rows.
  const Eigen::MatrixXf& sums() const { return sums_; }
  std::int64_t rebuilds() const { return rebuilds_; }

 private:
  void rebuild_head(int i, int h, const Eigen::MatrixXf& queries, const Eigen::MatrixXf& keys,
                    const Eigen::MatrixXf& values);
  // Per-head dot products of column i of queries with k: heads values into out.
  void head_dots(const Eigen::MatrixXf& queries, int i, const Eigen::VectorXf& k,
                 Eigen::VectorXf& out);

  int rows_ = 0, heads_ = 0, head_dim_ = 0, window_ = 0;
  Eigen::MatrixXf numerators_;  // E x rows
  Eigen::MatrixXf sums_;        // heads x rows
  Eigen::MatrixXf offsets_;     // heads x rows
  Eigen::VectorXf product_;     // E scratch
  Eigen::VectorXf score_new_, score_old_;  // heads
  Eigen::VectorXf weight_new_, weight_old_;  // E: per-head weights spread over head rows
  Eigen::ArrayXXf rescale_;        // heads x rows
  Eigen::VectorXf window_scores_;  // n
  std::int64_t rebuilds_ = 0;
};

}  // namespace nystream
