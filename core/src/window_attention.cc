#include "window_attention.h"

#include <algorithm>
#include <cmath>

#include "nystream/ops.h"

namespace nystream {

WindowAttention::WindowAttention(const ModelConfig& config, const LayerWeights& weights,
                                 const Eigen::MatrixXf* fixed_pinv)
    : config_(config),
      weights_(weights),
      n_(config.window),
      m_(config.attention == AttentionKind::kNystrom ? config.landmarks : 0),
      e_(config.embed_dim),
      h_(config.heads),
      d_(config.head_dim()),
      scale_(1.0f / std::pow(static_cast<float>(config.head_dim()), 0.25f)),
      pinv_(fixed_pinv),
      key_values_(2 * e_, n_),
      key_value_product_(2 * e_, e_, n_),
      query_(e_),
      kernel_(std::max(m_, 1), h_, d_),
      key_landmark_weights_(n_, m_),
      weights_m_(m_),
      mixed_m_(m_),
      window_w_(n_) {
  if (nystrom() && config.schedule == LandmarkSchedule::kContinual) {
    queries_.resize(e_, n_);
    query_product_ = MatrixProduct(e_, e_, n_);
    landmark_queries_.resize(e_, m_);
    landmark_keys_.resize(e_, m_);
    pinv_state_.resize(m_, m_ * h_);
    pinv_ = &pinv_state_;
  } else if (nystrom()) {
    landmark_queries_ = weights.landmark_queries;
    landmark_keys_ = weights.landmark_keys;
  }
  reset();
}

void WindowAttention::reset() {
  if (pinv_ != &pinv_state_) return;
  landmark_queries_.setZero();
  landmark_keys_.setZero();
  kernel_.compute(landmark_queries_, landmark_keys_, config_.pinv, config_.pinv_iterations,
                  pinv_state_);
}

void WindowAttention::refresh_landmarks(const Eigen::MatrixXf& tokens,
                                        const std::vector<unsigned char>& valid) {
  query_product_.run(weights_.qkv.topRows(e_), tokens, queries_);
  queries_.colwise() += weights_.qkv_bias.head(e_);
  queries_ *= scale_;
  for (int j = 0; j < n_; ++j)
    if (!valid[j]) queries_.col(j).setZero();
  // The window's segments in time are its ring's segments: n is a multiple of
  // L and segments start at multiples of L.
  const int length = config_.segment_length();
  for (int j = 0; j < m_; ++j) {
    landmark_queries_.col(j) = queries_.middleCols(j * length, length).rowwise().sum() / length;
    landmark_keys_.col(j) =
        key_values_.topRows(e_).middleCols(j * length, length).rowwise().sum() / length;
  }
  kernel_.compute(landmark_queries_, landmark_keys_, config_.pinv, config_.pinv_iterations,
                  pinv_state_);
}

void WindowAttention::step(std::int64_t t, const Eigen::MatrixXf& tokens,
                           const std::vector<unsigned char>& valid, Eigen::VectorXf& out) {
  const int newest = static_cast<int>(t % n_);
  key_value_product_.run(weights_.qkv.bottomRows(2 * e_), tokens, key_values_);
  key_values_.colwise() += weights_.qkv_bias.tail(2 * e_);
  key_values_.topRows(e_) *= scale_;
  for (int j = 0; j < n_; ++j)
    if (!valid[j]) key_values_.col(j).setZero();
  query_.noalias() = weights_.qkv.topRows(e_) * tokens.col(newest);
  query_ += weights_.qkv_bias.head(e_);
  query_ *= scale_;

  const auto keys = key_values_.topRows(e_);
  const auto values = key_values_.bottomRows(e_);
  if (!nystrom()) {
    for (int h = 0; h < h_; ++h) {
      window_w_.noalias() = keys.middleRows(h * d_, d_).transpose() * query_.segment(h * d_, d_);
      window_w_ = (window_w_.array() - window_w_.maxCoeff()).exp().matrix();
      window_w_ /= window_w_.sum();
      out.segment(h * d_, d_).noalias() = values.middleRows(h * d_, d_) * window_w_;
    }
    return;
  }
  if (pinv_ == &pinv_state_ && (t + 1) % config_.segment_length() == 0)
    refresh_landmarks(tokens, valid);
  for (int h = 0; h < h_; ++h) {
    // out = V G^T Zinv^T f with G = softmax over keys of Qt K^T, one column per landmark.
    key_landmark_weights_.noalias() =
        keys.middleRows(h * d_, d_).transpose() * landmark_queries_.middleRows(h * d_, d_);
    softmax_columns(key_landmark_weights_);
    weights_m_.noalias() =
        landmark_keys_.middleRows(h * d_, d_).transpose() * query_.segment(h * d_, d_);
    weights_m_ = (weights_m_.array() - weights_m_.maxCoeff()).exp().matrix();
    weights_m_ /= weights_m_.sum();
    mixed_m_.noalias() = pinv_->middleCols(h * m_, m_).transpose() * weights_m_;
    window_w_.noalias() = key_landmark_weights_ * mixed_m_;
    out.segment(h * d_, d_).noalias() = values.middleRows(h * d_, d_) * window_w_;
  }
}

}  // namespace nystream
