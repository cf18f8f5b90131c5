#include "continual_attention.h"

#include <algorithm>

#include "nystream/ops.h"

namespace nystream {

ContinualAttention::ContinualAttention(const Model& model, int layer, bool retroactive)
    : config_(model.config()),
      retroactive_(retroactive),
      n_(config_.window),
      m_(config_.attention == AttentionKind::kNystrom ? config_.landmarks : 0),
      e_(config_.embed_dim),
      h_(config_.heads),
      d_(config_.head_dim()),
      pinv_(nullptr),
      keys_(e_, n_),
      values_(e_, n_),
      queries_(retroactive ? n_ : 0, e_),
      key_left_(e_),
      value_left_(e_),
      kernel_(std::max(m_, 1), h_, d_),
      landmark_weights_(m_, h_),
      mixed_(m_, h_),
      head_max_(h_),
      head_sum_(h_),
      head_f_(m_, retroactive ? n_ : 0),
      head_g_(m_, retroactive ? n_ : 0),
      head_gv_(d_, m_),
      window_p_(n_) {
  if (nystrom()) {
    rows_ = RowCache(m_, h_, d_, n_);
    if (continual_landmarks()) {
      landmark_queries_.resize(e_, m_);
      landmark_keys_.resize(e_, m_);
      query_sum_.resize(e_);
      key_sum_.resize(e_);
      pinv_state_.resize(m_, m_ * h_);
      pinv_ = &pinv_state_;
      own_query_rows_.resize(m_, e_);
      own_key_rows_.resize(m_, e_);
      query_rows_ = &own_query_rows_;
      key_rows_ = &own_key_rows_;
    } else {
      landmark_queries_ = model.weights().layers[layer].landmark_queries;
      landmark_keys_ = model.weights().layers[layer].landmark_keys;
      pinv_ = &model.fixed_pinv(layer);
      query_rows_ = &model.fixed_query_rows(layer);
      key_rows_ = &model.fixed_key_rows(layer);
    }
    if (retroactive_) landmark_scores_.resize(m_ * h_, n_);
  } else if (retroactive_) {
    rows_ = RowCache(n_, h_, d_, n_);
  }
  reset();
}

void ContinualAttention::reset() {
  keys_.setZero();
  values_.setZero();
  queries_.setZero();
  rows_.reset();
  if (continual_landmarks()) {
    // No segment has completed: every landmark is the mean of padding, zero.
    landmark_queries_.setZero();
    landmark_keys_.setZero();
    query_sum_.setZero();
    key_sum_.setZero();
    kernel_.compute(landmark_queries_, landmark_keys_, config_.pinv, config_.pinv_iterations,
                    pinv_state_);
    own_query_rows_.setZero();
    own_key_rows_.setZero();
  }
  // Padding queries are zero, so every window query scores 0 against any landmark.
  landmark_scores_.setZero();
}

void ContinualAttention::step(std::int64_t t, const Eigen::VectorXf& q, const Eigen::VectorXf& k,
                              const Eigen::VectorXf& v, Eigen::Ref<Eigen::MatrixXf> out, bool output) {
  const int slot = static_cast<int>(t % n_);
  key_left_ = keys_.col(slot);
  value_left_ = values_.col(slot);
  keys_.col(slot) = k;
  values_.col(slot) = v;
  if (retroactive_) queries_.row(slot) = q.transpose();

  if (!nystrom()) {
    if (!retroactive_) return output ? softmax_single(q, out) : void();
    rows_.slide(queries_, k, v, key_left_, value_left_, keys_, values_);
    rows_.rebuild(slot, queries_, keys_, values_);  // the entering query's row
    return output ? softmax_retroactive(out) : void();
  }

  rows_.slide(*query_rows_, k, v, key_left_, value_left_, keys_, values_);
  const std::int64_t done = t + 1;
  if (continual_landmarks()) {
    query_sum_ += q;
    key_sum_ += k;
    const int length = config_.segment_length();
    if (done % length == 0) replace_landmark(static_cast<int>((done / length - 1) % m_));
  } else {
    // Fixed landmarks' rows live forever: rebuild one every n/m steps, so each is
    // rebuilt at least every n steps and subtraction error cannot accumulate.
    const int every = std::max(1, n_ / m_);
    if (done % every == 0) rows_.rebuild(static_cast<int>((done / every - 1) % m_),
                                         *query_rows_, keys_, values_);
  }
  if (!retroactive_) return output ? nystrom_single(q, out) : void();
  // The new token's row, against the landmarks as they are after this step.
  // landmark_weights_ (m x h) has the layout of a landmark_scores_ column.
  head_dots(*key_rows_, q.data(), h_, d_, landmark_weights_);
  landmark_scores_.col(slot) = landmark_weights_.reshaped();
  if (output) nystrom_retroactive(out);
}

void ContinualAttention::replace_landmark(int j) {
  const float length = static_cast<float>(config_.segment_length());
  landmark_queries_.col(j) = query_sum_ / length;
  landmark_keys_.col(j) = key_sum_ / length;
  own_query_rows_.row(j) = landmark_queries_.col(j).transpose();
  own_key_rows_.row(j) = landmark_keys_.col(j).transpose();
  query_sum_.setZero();
  key_sum_.setZero();
  // Rows of surviving landmarks stay valid; the new one is computed over the window.
  rows_.rebuild(j, *query_rows_, keys_, values_);
  kernel_.compute(landmark_queries_, landmark_keys_, config_.pinv, config_.pinv_iterations,
                  pinv_state_);
  if (!retroactive_) return;
  // The new landmark's column for every query of the current window (the rings
  // already hold this step's token, so rows stay aligned with their window).
  for (int h = 0; h < h_; ++h) {
    window_p_.noalias() = queries_.middleCols(h * d_, d_) * landmark_keys_.col(j).segment(h * d_, d_);
    landmark_scores_.row(h * m_ + j) = window_p_.transpose();
  }
}

void ContinualAttention::nystrom_single(const Eigen::VectorXf& q, Eigen::Ref<Eigen::MatrixXf> out) {
  // Per head: f = softmax(q^ Kt^T); out = (f Zinv) (S / s). All heads at once,
  // landmarks innermost (see row_cache.h on the layout).
  head_dots(*key_rows_, q.data(), h_, d_, landmark_weights_);
  auto f = landmark_weights_.array();
  head_max_ = landmark_weights_.colwise().maxCoeff();
  f.rowwise() -= head_max_.array();
  f = f.exp();  // whole-array: exp of a broadcast expression is not vectorized
  head_sum_ = landmark_weights_.colwise().sum();
  f.rowwise() /= head_sum_.array();
  const Eigen::MatrixXf& numerators = rows_.numerators();
  const Eigen::MatrixXf& sums = rows_.sums();
  with_row_count(m_, [&](auto fixed) {
    constexpr int kRows = decltype(fixed)::value;
    using Square = Eigen::Matrix<float, kRows, kRows>;
    for (int h = 0; h < h_; ++h) {
      const Eigen::Map<const Square> zinv(pinv_->col(h * m_).data(), m_, m_);
      RowsMap<kRows> mixed(mixed_.col(h).data(), m_);
      mixed.noalias() =
          zinv.transpose().lazyProduct(ConstRowsMap<kRows>(landmark_weights_.col(h).data(), m_));
      mixed.array() /= ConstRowsMap<kRows>(sums.col(h).data(), m_).array();
      for (int c = h * d_; c < (h + 1) * d_; ++c)
        out(c, 0) = ConstRowsMap<kRows>(numerators.col(c).data(), m_).dot(mixed);
    }
  });
}

void ContinualAttention::nystrom_retroactive(Eigen::Ref<Eigen::MatrixXf> out) {
  const Eigen::MatrixXf& numerators = rows_.numerators();
  const Eigen::MatrixXf& sums = rows_.sums();
  for (int h = 0; h < h_; ++h) {
    // (F Zinv)(S / s) for all n window queries at once.
    head_f_ = landmark_scores_.middleRows(h * m_, m_);
    softmax_columns(head_f_);
    head_g_.noalias() = pinv_->middleCols(h * m_, m_).transpose() * head_f_;
    head_gv_ = numerators.middleCols(h * d_, d_).transpose();
    head_gv_.array().rowwise() /= sums.col(h).transpose().array();
    out.middleRows(h * d_, d_).noalias() = head_gv_ * head_g_;
  }
}

void ContinualAttention::softmax_single(const Eigen::VectorXf& q, Eigen::Ref<Eigen::MatrixXf> out) {
  for (int h = 0; h < h_; ++h) {
    window_p_.noalias() = keys_.middleRows(h * d_, d_).transpose() * q.segment(h * d_, d_);
    window_p_ = (window_p_.array() - window_p_.maxCoeff()).exp().matrix();
    window_p_ /= window_p_.sum();
    out.col(0).segment(h * d_, d_).noalias() = values_.middleRows(h * d_, d_) * window_p_;
  }
}

void ContinualAttention::softmax_retroactive(Eigen::Ref<Eigen::MatrixXf> out) {
  const Eigen::MatrixXf& numerators = rows_.numerators();
  const Eigen::MatrixXf& sums = rows_.sums();
  for (int i = 0; i < n_; ++i)
    for (int h = 0; h < h_; ++h)
      out.col(i).segment(h * d_, d_) = numerators.row(i).segment(h * d_, d_).transpose() / sums(i, h);
}

}  // namespace nystream
