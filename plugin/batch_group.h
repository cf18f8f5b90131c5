// Detectors that share a model-instance-id and set batch-size > 1 step their
// tokens together (nystream::StreamBatch): each element's token is queued in
// the group of its id, and the group steps the batch once when batch-size
// tokens are queued, or when the oldest has waited batch-timeout. No buffer is
// held: an element's results wait in its member's result queue until it takes
// them (onto its next buffer, or to the bus at flush, EOS and stop).
//
//   std::string error;
//   auto group = BatchGroup::join(id, model, 4, 50 * GST_MSECOND, name, &error);
//   BatchMember* me = group->add_member();        // start(); owns the stream state
//   group->submit(me, features, span);            // per token, streaming thread
//   group->take_results(me, &results, &counters); // per buffer
//   group->remove_member(me);                     // stop()
//
// Thread-safety: every method may be called from any thread; the group's mutex
// guards every member's stream and queue. A batch is stepped by the thread that
// fills it, or by the group's timer thread when it times out.
#pragma once

#include <gst/gst.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "nystream/features/params.h"
#include "nystream/stream_batch.h"

namespace nystream::plugin {

// One token's outcome, waiting for its element.
struct BatchResult {
  std::vector<float> scores;  // config().classes, valid when status is kOk
  TokenSpan span;
  StepStatus status = StepStatus::kOk;
  bool skipped = false;  // let go by (QoS): no scores
};

struct BatchCounters {
  guint64 batches = 0;        // batches that held one of this member's tokens
  guint64 batch_streams = 0;  // the sizes of those batches, summed
  guint64 batch_timeouts = 0; // those of them stepped by the timeout, not full
};

// One element's stream in a group. Its fields belong to the group (its mutex).
class BatchMember {
 public:
  explicit BatchMember(std::shared_ptr<const Model> model);

 private:
  friend class BatchGroup;
  StreamState stream_;
  std::vector<float> features_;  // the queued token
  TokenSpan span_;
  bool queued_ = false;
  // Results not yet taken: a ring, grown only when an element takes none for a
  // long time (its buffers stopped).
  std::vector<BatchResult> results_;
  std::size_t head_ = 0, count_ = 0;
  BatchCounters counters_;
};

class BatchGroup {
 public:
  // The group of instance_id (created on first use, freed with its last
  // member), or nullptr and *error, a sentence naming both settings, when it
  // exists with another batch size or timeout. element: for that sentence.
  static std::shared_ptr<BatchGroup> join(const std::string& instance_id,
                                          std::shared_ptr<const Model> model, int batch_size,
                                          GstClockTime timeout, const std::string& element,
                                          std::string* error);
  ~BatchGroup();

  // A new stream in the group (allocates); removal steps its queued token
  // first and drops its results: take them before.
  BatchMember* add_member();
  void remove_member(BatchMember* member);

  // Queues member's token (features: config().input_dim floats). A member has
  // at most one token queued: a second one steps the batch first, so a
  // stream's tokens stay in order. Steps the batch when it is full.
  void submit(BatchMember* member, const float* features, const TokenSpan& span) noexcept;
  // The token goes by (QoS), after any token of member still queued.
  void skip(BatchMember* member, const TokenSpan& span) noexcept;
  // Steps whatever is queued now (EOS, flush, stop: nothing left waiting).
  void flush() noexcept;
  // Steps the batch if member has a token queued, then resets its stream;
  // results already computed stay to be taken.
  void reset(BatchMember* member) noexcept;

  // Copies member's waiting results to the front of *out (reused: no
  // allocation once it has grown) and returns how many; the member's counters
  // into *counters.
  std::size_t take_results(BatchMember* member, std::vector<BatchResult>* out,
                           BatchCounters* counters) noexcept;

  int batch_size() const { return batch_size_; }
  GstClockTime timeout() const { return timeout_; }

 private:
  BatchGroup(std::shared_ptr<const Model> model, int batch_size, GstClockTime timeout,
             std::string owner);
  BatchResult& next_result(BatchMember* member);
  void step_locked(bool timed_out) noexcept;
  void run_timer();

  std::shared_ptr<const Model> model_;
  const int batch_size_;
  const GstClockTime timeout_;
  const std::string owner_;  // the element that created the group, for errors

  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  StreamBatch batch_;
  std::vector<BatchMember*> queued_;
  std::chrono::steady_clock::time_point oldest_;  // when queued_[0] arrived
  std::vector<std::unique_ptr<BatchMember>> members_;
  // Arguments of StreamBatch::step, sized batch_size.
  std::vector<StreamState*> streams_;
  std::vector<const float*> inputs_;
  std::vector<float*> outputs_;
  std::vector<StepStatus> statuses_;
  std::vector<BatchResult*> slots_;
  std::thread timer_;
};

}  // namespace nystream::plugin
