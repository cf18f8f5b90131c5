// Steps k streams of one model together: the weight products of a step
// (input and stem projection, q/k/v, output projection, feed-forward,
// classifier) become matrix-matrix products over the k tokens, so each weight
// is read once per batch instead of once per stream; attention stays per
// stream. Each stream's result equals its own StreamState::step within float32
// rounding (only the summation order of the products differs), with the same
// StepStatus and the same handling of non-finite tokens.
//
//   nystream::StreamBatch batch(model, 64);          // capacity fixed here
//   std::vector<nystream::StreamState*> streams = ...;  // up to 64, of `model`
//   batch.step(streams.data(), features, scores, statuses, count);
//
// A StreamBatch holds scratch only; streams keep their own state, so a stream
// may be stepped alone (StreamState::step) or in different batches over time.
// One thread at a time per StreamBatch and per stream in it.
#pragma once

#include <memory>

#include "nystream/model.h"
#include "nystream/stream_state.h"

namespace nystream {

struct TokenColumns;

class StreamBatch {
 public:
  // capacity >= 1: the most streams one step() takes; its scratch is sized here.
  StreamBatch(std::shared_ptr<const Model> model, int capacity);
  ~StreamBatch();
  StreamBatch(StreamBatch&&) noexcept;
  StreamBatch& operator=(StreamBatch&&) noexcept;

  // Steps streams[i] with features[i] (config().input_dim floats) for
  // i < count, as streams[i]->step(features[i], scores[i]) would: scores[i]
  // (config().classes floats) is written when statuses[i] is kOk. Returns false,
  // stepping nothing, when count is not in [0, capacity()], a stream belongs to
  // another Model object, or a stream appears twice. Allocates nothing.
  bool step(StreamState* const* streams, const float* const* features, float* const* scores,
            StepStatus* statuses, int count) noexcept;

  int capacity() const noexcept;
  const Model& model() const noexcept { return *model_; }

 private:
  std::shared_ptr<const Model> model_;
  std::unique_ptr<TokenColumns> columns_;
  std::unique_ptr<StreamState::Impl*[]> impls_;  // the batch's streams' insides
};

}  // namespace nystream
