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
//
// Layout: rows-minor. For each embedding channel (numerators) or head (sums,
// offsets) the values of all rows are contiguous, so a slide is a few passes
// over E x rows floats whose inner loop runs over the rows; per-head Eigen
// calls on d-long segments cost more in overhead than the arithmetic they do.
#pragma once

#include <Eigen/Core>
#include <cstdint>
#include <type_traits>

namespace nystream {

class RowCache {
 public:
  // s_i < 1/2 means every live score is more than ln 2 below the offset. A row's
  // error is a few ulps of what was added and subtracted, relative to s_i, so the
  // threshold bounds its amplification. Single steps of the shipped models'
  // 10^7-step soak (max |logit error|): 1/16 reached 1.8e-4, 0.89 of the bound;
  // 1/4 still 1.8e-4 for one audio model's weights; 1/2 3.1e-5 (audio) and 9e-6
  // (video), for 5 % more rebuilds than 1/4.
  static constexpr float kRebuildBelow = 1.0f / 2.0f;

  RowCache() = default;
  RowCache(int rows, int heads, int head_dim, int window);

  // The window is all padding (k = v = 0): every score is 0, so S = 0, s = n.
  void reset();

  // The window's keys slid by one: k_new, v_new entered, k_old, v_old left.
  // queries: rows x E, row i the query of cache row i. keys, values: the window
  // rings after the slide (E x n), for rows that must be rebuilt.
  void slide(const Eigen::MatrixXf& queries, const Eigen::VectorXf& k_new,
             const Eigen::VectorXf& v_new, const Eigen::VectorXf& k_old,
             const Eigen::VectorXf& v_old, const Eigen::MatrixXf& keys,
             const Eigen::MatrixXf& values);

  // Recomputes row i (all heads) from the window: O(n E).
  void rebuild(int i, const Eigen::MatrixXf& queries, const Eigen::MatrixXf& keys,
               const Eigen::MatrixXf& values);

  // rows x E: row i holds S_i of every head; divide by sums() for G V.
  const Eigen::MatrixXf& numerators() const { return numerators_; }
  // rows x heads.
  const Eigen::MatrixXf& sums() const { return sums_; }
  std::int64_t rebuilds() const { return rebuilds_; }

 private:
  void rebuild_head(int i, int h, const Eigen::MatrixXf& queries, const Eigen::MatrixXf& keys,
                    const Eigen::MatrixXf& values);

  int rows_ = 0, heads_ = 0, head_dim_ = 0, window_ = 0;
  Eigen::MatrixXf numerators_;  // rows x E
  Eigen::MatrixXf sums_;        // rows x heads
  Eigen::MatrixXf offsets_;     // rows x heads
  Eigen::MatrixXf fresh_, leaving_, rescale_;  // rows x heads: per-slide scratch
  Eigen::VectorXf window_scores_;  // n
  std::int64_t rebuilds_ = 0;
};

// Calls f(std::integral_constant<int, rows>) for the common landmark counts and
// f(std::integral_constant<int, Eigen::Dynamic>) otherwise: a column of rows
// floats with a size known at compile time is a few whole-vector operations.
template <typename F>
void with_row_count(int rows, F&& f) {
  switch (rows) {
    case 8: return f(std::integral_constant<int, 8>());
    case 16: return f(std::integral_constant<int, 16>());
    default: return f(std::integral_constant<int, Eigen::Dynamic>());
  }
}

// One column of a rows-minor matrix: rows contiguous floats.
template <int kRows>
using RowsMap = Eigen::Map<Eigen::Matrix<float, kRows, 1>>;
template <int kRows>
using ConstRowsMap = Eigen::Map<const Eigen::Matrix<float, kRows, 1>>;

// out (rows x heads) = per-head dot products of every row of a (rows x E) with
// x (E): out(i, h) = a.row(i).segment(h d, d) . x.segment(h d, d).
void head_dots(const Eigen::MatrixXf& a, const float* x, int heads, int head_dim,
               Eigen::MatrixXf& out);

}  // namespace nystream
