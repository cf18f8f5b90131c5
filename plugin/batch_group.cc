#include "batch_group.h"

#include <algorithm>
#include <map>

namespace nystream::plugin {

namespace {

// Results an element may leave waiting before its ring grows: a few buffers'
// worth at any token rate.
constexpr std::size_t kInitialResults = 64;

std::mutex& groups_mutex() {
  static std::mutex mutex;
  return mutex;
}

std::map<std::string, std::weak_ptr<BatchGroup>>& groups() {
  static std::map<std::string, std::weak_ptr<BatchGroup>> map;
  return map;
}

}  // namespace

BatchMember::BatchMember(std::shared_ptr<const Model> model)
    : stream_(model), features_(model->config().input_dim) {
  results_.resize(kInitialResults);
  for (BatchResult& r : results_) r.scores.resize(model->config().classes);
}

std::shared_ptr<BatchGroup> BatchGroup::join(const std::string& instance_id,
                                             std::shared_ptr<const Model> model, int batch_size,
                                             GstClockTime timeout, const std::string& element,
                                             std::string* error) {
  std::lock_guard<std::mutex> lock(groups_mutex());
  std::weak_ptr<BatchGroup>& slot = groups()[instance_id];
  if (std::shared_ptr<BatchGroup> group = slot.lock()) {
    if (group->batch_size_ == batch_size && group->timeout_ == timeout &&
        group->model_ == model)
      return group;
    *error = "Elements sharing model-instance-id \"" + instance_id + "\" must batch alike: " +
             group->owner_ + " has batch-size " + std::to_string(group->batch_size_) +
             " and batch-timeout " + std::to_string(group->timeout_ / GST_MSECOND) + " ms, " +
             element + " has batch-size " + std::to_string(batch_size) + " and batch-timeout " +
             std::to_string(timeout / GST_MSECOND) +
             " ms. Give every element with this id the same batch-size and batch-timeout, or "
             "another model-instance-id.";
    return nullptr;
  }
  std::shared_ptr<BatchGroup> group(new BatchGroup(std::move(model), batch_size, timeout, element));
  slot = group;
  return group;
}

BatchGroup::BatchGroup(std::shared_ptr<const Model> model, int batch_size, GstClockTime timeout,
                       std::string owner)
    : model_(std::move(model)),
      batch_size_(batch_size),
      timeout_(timeout),
      owner_(std::move(owner)),
      batch_(model_, batch_size),
      streams_(batch_size),
      inputs_(batch_size),
      outputs_(batch_size),
      statuses_(batch_size),
      slots_(batch_size) {
  queued_.reserve(batch_size);
  timer_ = std::thread([this] { run_timer(); });
}

BatchGroup::~BatchGroup() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  timer_.join();
  std::lock_guard<std::mutex> lock(groups_mutex());
  // Only if the id still names this (dead) group, not a newer one.
  for (auto it = groups().begin(); it != groups().end(); ++it)
    if (it->second.expired()) {
      groups().erase(it);
      break;
    }
}

BatchMember* BatchGroup::add_member() {
  auto member = std::make_unique<BatchMember>(model_);
  std::lock_guard<std::mutex> lock(mutex_);
  members_.push_back(std::move(member));
  return members_.back().get();
}

void BatchGroup::remove_member(BatchMember* member) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (member->queued_) step_locked(false);
  members_.erase(std::remove_if(members_.begin(), members_.end(),
                                [member](const std::unique_ptr<BatchMember>& m) {
                                  return m.get() == member;
                                }),
                 members_.end());
}

BatchResult& BatchGroup::next_result(BatchMember* m) {
  if (m->count_ == m->results_.size()) {
    // Full: unroll the ring in order into a larger one (the element has not
    // taken results for a long time; rare, allocates).
    std::vector<BatchResult> grown(2 * m->results_.size());
    for (std::size_t i = 0; i < m->count_; ++i)
      grown[i] = std::move(m->results_[(m->head_ + i) % m->results_.size()]);
    for (std::size_t i = m->count_; i < grown.size(); ++i)
      grown[i].scores.resize(model_->config().classes);
    m->results_ = std::move(grown);
    m->head_ = 0;
  }
  return m->results_[(m->head_ + m->count_++) % m->results_.size()];
}

void BatchGroup::submit(BatchMember* member, const float* features, const TokenSpan& span) noexcept {
  std::lock_guard<std::mutex> lock(mutex_);
  if (member->queued_) step_locked(false);
  std::copy(features, features + member->features_.size(), member->features_.begin());
  member->span_ = span;
  member->queued_ = true;
  if (queued_.empty()) oldest_ = std::chrono::steady_clock::now();
  queued_.push_back(member);
  if (static_cast<int>(queued_.size()) == batch_size_)
    step_locked(false);
  else if (queued_.size() == 1)
    wake_.notify_one();  // the timer starts counting
}

void BatchGroup::skip(BatchMember* member, const TokenSpan& span) noexcept {
  std::lock_guard<std::mutex> lock(mutex_);
  if (member->queued_) step_locked(false);
  member->stream_.skip();
  BatchResult& r = next_result(member);
  r.span = span;
  r.skipped = true;
}

void BatchGroup::flush() noexcept {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!queued_.empty()) step_locked(false);
}

void BatchGroup::reset(BatchMember* member) noexcept {
  std::lock_guard<std::mutex> lock(mutex_);
  if (member->queued_) step_locked(false);
  member->stream_.reset();
}

void BatchGroup::step_locked(bool timed_out) noexcept {
  const int count = static_cast<int>(queued_.size());
  for (int i = 0; i < count; ++i) {
    BatchMember* m = queued_[i];
    BatchResult& slot = next_result(m);
    slot.span = m->span_;
    slot.skipped = false;
    slots_[i] = &slot;
    streams_[i] = &m->stream_;
    inputs_[i] = m->features_.data();
    outputs_[i] = slot.scores.data();
  }
  batch_.step(streams_.data(), inputs_.data(), outputs_.data(), statuses_.data(), count);
  for (int i = 0; i < count; ++i) {
    BatchMember* m = queued_[i];
    slots_[i]->status = statuses_[i];
    m->queued_ = false;
    m->counters_.batches++;
    m->counters_.batch_streams += count;
    if (timed_out) m->counters_.batch_timeouts++;
  }
  queued_.clear();
}

std::size_t BatchGroup::take_results(BatchMember* m, std::vector<BatchResult>* out,
                                     BatchCounters* counters) noexcept {
  std::lock_guard<std::mutex> lock(mutex_);
  const std::size_t taken = m->count_;
  for (std::size_t i = 0; i < taken; ++i) {
    const BatchResult& from = m->results_[(m->head_ + i) % m->results_.size()];
    if (i == out->size()) out->push_back(from);  // rare: grows once
    BatchResult& to = (*out)[i];
    to.scores.assign(from.scores.begin(), from.scores.end());
    to.span = from.span;
    to.status = from.status;
    to.skipped = from.skipped;
  }
  m->head_ = (m->head_ + taken) % m->results_.size();
  m->count_ = 0;
  *counters = m->counters_;
  return taken;
}

void BatchGroup::run_timer() {
  std::unique_lock<std::mutex> lock(mutex_);
  const auto timeout = std::chrono::nanoseconds(timeout_);
  while (!stopping_) {
    if (queued_.empty()) {
      wake_.wait(lock);
      continue;
    }
    const auto deadline = oldest_ + timeout;
    if (std::chrono::steady_clock::now() >= deadline) {
      step_locked(true);
      continue;
    }
    wake_.wait_until(lock, deadline);
  }
}

}  // namespace nystream::plugin
