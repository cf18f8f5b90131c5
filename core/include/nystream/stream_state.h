// The per-stream half of the engine: everything one stream carries between tokens
// (ring buffers, landmarks, cached Nyström products), sized when it is created.
// step() allocates nothing and throws nothing.
//
//   auto model = nystream::Model::create(config, weights, &error);
//   nystream::StreamState stream(model);
//   for (each feature vector x)
//     if (stream.step(x.data(), scores.data()) == nystream::StepStatus::kOk) use(scores);
//
// A StreamState is used by one thread at a time; any number of them may share
// one Model.
#pragma once

#include <Eigen/Core>
#include <cstdint>
#include <memory>

#include "nystream/model.h"

namespace nystream {

enum class StepStatus {
  kOk,               // scores written
  kNonFiniteInput,   // NaN/Inf in the features (or their projection): the token enters
                     // the window as padding (q = k = v = 0), time advances, scores are
                     // left untouched; it leaves the window after `window` steps
  kNonFiniteOutput,  // the features were finite but the model overflowed (weights or
                     // features far outside the trained range): scores untouched
};

class StreamState {
 public:
  explicit StreamState(std::shared_ptr<const Model> model);
  ~StreamState();
  StreamState(StreamState&&) noexcept;
  StreamState& operator=(StreamState&&) noexcept;

  // Ingests one token of config().input_dim features and, when it is finite,
  // writes config().classes activated scores (sigmoid or softmax).
  StepStatus step(const float* features, float* scores) noexcept;

  // Lets a token go by without computing it (QoS, missing data): it enters the
  // window as padding, exactly as a non-finite token does, so the stream keeps
  // its timing. Costs a fraction of step(): no projections, no feed-forward
  // (except, with two blocks and continual landmarks, at a landmark refresh).
  void skip() noexcept;

  // Back to the state of a new stream: empty (zero-padded) window, time 0.
  void reset() noexcept;

  const Model& model() const;
  // Tokens ingested since creation or reset().
  std::int64_t time() const noexcept;
  // Pre-activation scores of the last kOk step.
  Eigen::Ref<const Eigen::VectorXf> logits() const noexcept;
  // Landmarks layer l (< config().blocks) uses now, E x m in scaled space, column
  // j = landmark j (in window-segment order, not age order: Nyström is invariant
  // to the order). Empty for softmax attention and for layers the model lacks.
  Eigen::Ref<const Eigen::MatrixXf> landmark_queries(int layer) const noexcept;
  Eigen::Ref<const Eigen::MatrixXf> landmark_keys(int layer) const noexcept;
  // Numerical maintenance done so far in the first layer: cached (row, head)
  // softmax sums rebuilt from the window, on schedule or after a collapse.
  std::int64_t rows_rebuilt() const noexcept;

  // The insides (core/src/stream_state_impl.h), named here so the core's
  // batched step can reach them; not part of the API.
  struct Impl;

 private:
  friend class StreamBatch;  // steps the insides of many streams together
  std::unique_ptr<Impl> impl_;
};

}  // namespace nystream
