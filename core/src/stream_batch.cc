#include "nystream/stream_batch.h"

#include "stream_state_impl.h"

namespace nystream {

StreamBatch::StreamBatch(std::shared_ptr<const Model> model, int capacity)
    : model_(std::move(model)),
      columns_(new TokenColumns(model_->config(), capacity < 1 ? 1 : capacity)),
      impls_(new StreamState::Impl*[capacity < 1 ? 1 : capacity]) {}

StreamBatch::~StreamBatch() = default;
StreamBatch::StreamBatch(StreamBatch&&) noexcept = default;
StreamBatch& StreamBatch::operator=(StreamBatch&&) noexcept = default;

int StreamBatch::capacity() const noexcept { return columns_->capacity; }

bool StreamBatch::step(StreamState* const* streams, const float* const* features,
                       float* const* scores, StepStatus* statuses, int count) noexcept {
  if (count < 0 || count > capacity()) return false;
  for (int i = 0; i < count; ++i) {
    if (!streams[i] || !streams[i]->impl_ || streams[i]->impl_->model.get() != model_.get())
      return false;
    // A stream twice would read its time and caches before its first token is in.
    for (int j = 0; j < i; ++j)
      if (streams[j] == streams[i]) return false;
    impls_[i] = streams[i]->impl_.get();
  }
  if (count > 0) step_tokens(impls_.get(), features, scores, statuses, count, *columns_);
  return true;
}

}  // namespace nystream
