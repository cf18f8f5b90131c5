// The last layer of a two-block model: its inputs are the first layer's
// retroactive outputs, which all change every step, so it recomputes keys and
// values over the window and attends for the newest token only (the Continual
// Transformers assembly). Continual landmarks are refreshed from the window's
// segment means every n/m steps and held in between, as in the first layer.
#pragma once

#include <Eigen/Core>
#include <cstdint>
#include <vector>

#include "landmark_kernel.h"
#include "matrix_product.h"
#include "nystream/model.h"

namespace nystream {

class WindowAttention {
 public:
  WindowAttention(const ModelConfig& config, const LayerWeights& weights,
                  const Eigen::MatrixXf* fixed_pinv);

  void reset();

  // tokens: E x n layer inputs in ring order (column t mod n is token t); valid:
  // 0 for padding columns. Writes the newest token's attention (heads
  // concatenated, before the output projection) to out (E).
  void step(std::int64_t t, const Eigen::MatrixXf& tokens, const std::vector<unsigned char>& valid,
            Eigen::VectorXf& out);

  const Eigen::MatrixXf& landmark_queries() const { return landmark_queries_; }
  const Eigen::MatrixXf& landmark_keys() const { return landmark_keys_; }

 private:
  bool nystrom() const { return config_.attention == AttentionKind::kNystrom; }
  void refresh_landmarks(const Eigen::MatrixXf& tokens, const std::vector<unsigned char>& valid);

  ModelConfig config_;
  const LayerWeights& weights_;
  int n_, m_, e_, h_, d_;
  float scale_;
  const Eigen::MatrixXf* pinv_;
  Eigen::MatrixXf key_values_;  // 2E x n: scaled keys on top, values below
  MatrixProduct key_value_product_, query_product_;  // over the n window tokens
  Eigen::MatrixXf queries_;     // E x n, only at landmark refreshes
  Eigen::VectorXf query_;       // E
  Eigen::MatrixXf landmark_queries_, landmark_keys_;  // E x m
  Eigen::MatrixXf pinv_state_;
  LandmarkKernel kernel_;
  Eigen::MatrixXf key_landmark_weights_;  // n x m: column j = softmax over keys for landmark j
  Eigen::VectorXf weights_m_, mixed_m_;   // m
  Eigen::VectorXf window_w_;              // n
};

}  // namespace nystream
