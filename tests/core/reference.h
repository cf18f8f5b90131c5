// The double-precision reference a StreamState is checked against: the batch
// model (batch.h) run from scratch on each step's padded window, with the
// landmarks the schedule holds at that step, derived independently from the
// token history (never read back from the stream under test).
#pragma once

#include <nystream/nystream.h>

#include "small_config.h"

#include <cstdint>
#include <random>
#include <vector>

namespace nystream::testing {

inline std::shared_ptr<const Model> make_model(const ModelConfig& c, std::uint64_t seed = 7) {
  std::string error;
  auto model = Model::create(c, random_weights(c, seed), &error);
  if (!model) throw std::runtime_error(error);
  return model;
}

// Random feature tokens, D_in x count, N(0, scale^2).
inline Eigen::MatrixXf random_tokens(int dims, int count, std::uint64_t seed, float scale = 1.0f) {
  std::mt19937_64 engine(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  Eigen::MatrixXf tokens(dims, count);
  for (Eigen::Index i = 0; i < tokens.size(); ++i) tokens.data()[i] = dist(engine);
  return tokens;
}

class Reference {
 public:
  explicit Reference(const Model& model) : batch_(model), c_(model.config()) {}

  // history: every token so far (column t = token t); valid[t] = 0 for tokens the
  // stream dropped. The receptive_field() tokens ending at t (n, unless stacked),
  // zero-padded before time 0.
  BatchModel<double>::Window window(const Eigen::MatrixXf& history, const std::vector<char>& valid,
                                    std::int64_t t) const {
    const int size = c_.receptive_field();
    BatchModel<double>::Window w;
    w.tokens = Eigen::MatrixXd::Zero(c_.input_dim, size);
    for (int j = 0; j < size; ++j) {
      const std::int64_t time = t - size + 1 + j;
      w.times.push_back(time < 0 ? 0 : time);
      const bool real = time >= 0 && valid[time];
      w.valid.push_back(real);
      if (real) w.tokens.col(j) = history.col(time).cast<double>();
    }
    return w;
  }

  // The landmarks every layer holds after ingesting token t.
  std::vector<Landmarks<double>> landmarks(const Eigen::MatrixXf& history,
                                           const std::vector<char>& valid, std::int64_t t) const {
    if (c_.attention != AttentionKind::kNystrom) return std::vector<Landmarks<double>>(c_.blocks);
    if (c_.schedule == LandmarkSchedule::kFixed) return batch_.fixed_landmarks();
    const int length = c_.segment_length();
    const std::int64_t completed = (t + 1) / length * length - 1;  // last segment end <= t
    std::vector<Landmarks<double>> out;
    if (completed < 0) {
      for (int l = 0; l < c_.blocks; ++l)
        out.push_back({Eigen::MatrixXd::Zero(c_.embed_dim, c_.landmarks),
                       Eigen::MatrixXd::Zero(c_.embed_dim, c_.landmarks)});
      return out;
    }
    // At a completion every layer's landmarks are its window's segment means.
    const auto w = window(history, valid, completed);
    if (c_.stacked()) {  // of its own inputs, the layer below's last n outputs
      const std::vector<char> last_n(w.valid.end() - c_.window, w.valid.end());
      for (int l = 0; l < c_.blocks; ++l)
        out.push_back(batch_.window_landmarks(l, batch_.stacked(w, c_.window, l), last_n));
      return out;
    }
    Eigen::MatrixXd x = batch_.embed(w);
    for (int l = 0; l < c_.blocks; ++l) {
      out.push_back(batch_.window_landmarks(l, x, w.valid));
      if (l + 1 < c_.blocks) x = batch_.block(l, x, w.valid, &out.back(), c_.window);
    }
    return out;
  }

  Eigen::VectorXd logits(const Eigen::MatrixXf& history, const std::vector<char>& valid,
                         std::int64_t t) const {
    // A stacked model derives each row's landmarks inside the batch model.
    if (c_.stacked()) return batch_.forward(window(history, valid, t), nullptr);
    const auto lm = landmarks(history, valid, t);
    return batch_.forward(window(history, valid, t), &lm);
  }

  const BatchModel<double>& batch() const { return batch_; }

 private:
  BatchModel<double> batch_;
  ModelConfig c_;
};

}  // namespace nystream::testing
