// Issue 21: detectors sharing a model-instance-id batch their tokens
// (batch-size, batch-timeout). Batched elements give, token by token, the
// scores unbatched ones give (within float32 rounding: the batch's products
// sum in another order; 1e-4 as the core's StreamBatch tests); a batch that
// does not fill is stepped by its timeout; flush, EOS and stop deliver every
// pending result; mismatched settings are an error a person can act on, and
// batch-size without an id a warning. Audio detectors, and video ones once.
#include <gst/check/gstharness.h>
#include <gst/gst.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "gstnystreammeta.h"

namespace {

constexpr float kScoreTolerance = 1e-4f;

// What a detector under test takes: its element, model and input caps.
struct Media {
  const char* element;
  const char* model;
  const char* caps;
};
const Media kAudio{"nyaudiodetect", "audio-random.safetensors",
                   "audio/x-raw,format=S16LE,rate=22050,channels=2,layout=interleaved"};
const Media kVideo{"nyvideodetect", "video-random.safetensors",
                   "video/x-raw,format=I420,width=160,height=120,framerate=30/1"};

std::string test_model(const Media& media) {
  const char* dir = std::getenv("NYSTREAM_TEST_MODELS");
  return std::string(dir ? dir : ".") + "/" + media.model;
}

struct Token {
  GstClockTime start, duration;
  std::vector<float> scores;
};
using Tokens = std::map<guint64, Token>;  // by token index

void collect(GstBuffer* buffer, Tokens* out) {
  gpointer state = nullptr;
  GstMeta* meta;
  while ((meta = gst_buffer_iterate_meta_filtered(buffer, &state, GST_NYSTREAM_META_API_TYPE))) {
    auto* r = reinterpret_cast<GstNystreamMeta*>(meta);
    EXPECT_EQ(out->count(r->token_index), 0u) << "token " << r->token_index << " reported twice";
    (*out)[r->token_index] = {r->start, r->duration,
                              std::vector<float>(r->scores, r->scores + r->n_classes)};
  }
}

// Results in the events the harness received (those completed at EOS).
void collect_events(GstHarness* h, Tokens* out) {
  while (GstEvent* event = gst_harness_try_pull_event(h)) {
    const GstStructure* s = gst_event_get_structure(event);
    if (GST_EVENT_TYPE(event) == GST_EVENT_CUSTOM_DOWNSTREAM &&
        gst_structure_has_name(s, GST_NYSTREAM_FINAL_RESULTS_EVENT))
      collect(gst_value_get_buffer(gst_structure_get_value(s, GST_NYSTREAM_FINAL_RESULTS_FIELD)), out);
    gst_event_unref(event);
  }
}

struct Input {
  std::vector<GstBuffer*> buffers;  // owned; pushed as refs
  Input() = default;
  Input(Input&& other) noexcept : buffers(std::move(other.buffers)) { other.buffers.clear(); }
  Input(const Input&) = delete;
  ~Input() {
    for (GstBuffer* b : buffers) gst_buffer_unref(b);
  }
};

// S16LE stereo at 22.05 kHz in buffers of random sizes (tokens complete on
// some buffers, not others, at different places in each input).
Input make_audio(int count, std::uint32_t seed) {
  Input input;
  std::mt19937 engine(seed);
  std::uniform_int_distribution<int> frames(1, 1997), sample(-8000, 8000);
  guint64 offset = 0;
  for (int i = 0; i < count; ++i) {
    const int n = frames(engine);
    std::vector<gint16> data(2 * n);
    for (auto& s : data) s = static_cast<gint16>(sample(engine));
    GstBuffer* b = gst_buffer_new_memdup(data.data(), data.size() * sizeof(gint16));
    GST_BUFFER_PTS(b) = gst_util_uint64_scale(offset, GST_SECOND, 22050);
    GST_BUFFER_DURATION(b) = gst_util_uint64_scale(offset + n, GST_SECOND, 22050) - GST_BUFFER_PTS(b);
    offset += n;
    input.buffers.push_back(b);
  }
  return input;
}

// I420 160 x 120 frames of noise at 30 fps (motion everywhere, a token every
// third frame).
Input make_video(int count, std::uint32_t seed) {
  Input input;
  std::mt19937 engine(seed);
  std::vector<guint8> data(160 * 120 * 3 / 2);
  for (int i = 0; i < count; ++i) {
    for (auto& p : data) p = static_cast<guint8>(engine());
    GstBuffer* b = gst_buffer_new_memdup(data.data(), data.size());
    GST_BUFFER_PTS(b) = gst_util_uint64_scale(i, GST_SECOND, 30);
    GST_BUFFER_DURATION(b) = gst_util_uint64_scale(i + 1, GST_SECOND, 30) - GST_BUFFER_PTS(b);
    input.buffers.push_back(b);
  }
  return input;
}

GstHarness* detector(const std::string& properties, const Media& media = kAudio) {
  GstHarness* h = gst_harness_new_parse(
      (std::string(media.element) + " model=" + test_model(media) + " " + properties).c_str());
  gst_harness_set_src_caps_str(h, media.caps);
  return h;
}

void push(GstHarness* h, GstBuffer* buffer, Tokens* out) {
  ASSERT_EQ(gst_harness_push(h, gst_buffer_ref(buffer)), GST_FLOW_OK);
  GstBuffer* pulled = gst_harness_pull(h);
  ASSERT_NE(pulled, nullptr);
  collect(pulled, out);
  gst_buffer_unref(pulled);
}

void finish(GstHarness* h, Tokens* out) {
  ASSERT_TRUE(gst_harness_push_event(h, gst_event_new_eos()));
  collect_events(h, out);
}

Tokens unbatched(const Input& input, const Media& media = kAudio) {
  GstHarness* h = detector("", media);
  Tokens tokens;
  for (GstBuffer* b : input.buffers) push(h, b, &tokens);
  finish(h, &tokens);
  gst_harness_teardown(h);
  return tokens;
}

guint64 stat(GstHarness* h, const char* field, const Media& media = kAudio) {
  GstStructure* stats = nullptr;
  GstElement* e = gst_harness_find_element(h, media.element);
  g_object_get(e, "stats", &stats, nullptr);
  gst_object_unref(e);
  guint64 value = 0;
  EXPECT_TRUE(gst_structure_get_uint64(stats, field, &value)) << field;
  gst_structure_free(stats);
  return value;
}

void expect_same(const Tokens& batched, const Tokens& alone, const std::string& what) {
  ASSERT_EQ(batched.size(), alone.size()) << what;
  for (const auto& [index, want] : alone) {
    const auto it = batched.find(index);
    ASSERT_NE(it, batched.end()) << what << ": token " << index << " missing";
    EXPECT_EQ(it->second.start, want.start) << what << " token " << index;
    EXPECT_EQ(it->second.duration, want.duration) << what << " token " << index;
    ASSERT_EQ(it->second.scores.size(), want.scores.size());
    for (std::size_t c = 0; c < want.scores.size(); ++c)
      EXPECT_NEAR(it->second.scores[c], want.scores[c], kScoreTolerance) << what << " token " << index;
  }
}

class Batch : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { gst_init(nullptr, nullptr); }
};

// Elements pushing in turn, each its own input: every token's scores as alone.
TEST_F(Batch, SharedIdBatchesGiveTheUnbatchedScoresTokenByToken) {
  for (auto [elements, batch_size] : {std::pair{2, 2}, std::pair{3, 3}, std::pair{4, 4}, std::pair{3, 2}}) {
    const std::string id = "equal-" + std::to_string(elements) + "-" + std::to_string(batch_size);
    std::vector<Input> inputs;
    std::vector<GstHarness*> harnesses;
    for (int e = 0; e < elements; ++e) {
      inputs.push_back(make_audio(150, 10 + e));
      harnesses.push_back(detector("model-instance-id=" + id + " batch-size=" +
                                   std::to_string(batch_size) + " batch-timeout=60000"));
    }
    std::vector<Tokens> batched(elements);
    for (std::size_t i = 0; i < inputs[0].buffers.size(); ++i)
      for (int e = 0; e < elements; ++e) push(harnesses[e], inputs[e].buffers[i], &batched[e]);
    for (int e = 0; e < elements; ++e) finish(harnesses[e], &batched[e]);
    guint64 batches = 0, streams = 0;
    for (int e = 0; e < elements; ++e) {
      batches += stat(harnesses[e], "batches");
      streams += stat(harnesses[e], "batch-streams");
      EXPECT_EQ(stat(harnesses[e], "batch-timeouts"), 0u);
      EXPECT_EQ(stat(harnesses[e], "steps"), batched[e].size());
    }
    EXPECT_GT(streams, batches) << "tokens were batched";
    std::printf("%d elements, batch-size %d: %llu batches of %.2f tokens on average\n", elements,
                batch_size, (unsigned long long)batches, double(streams) / double(batches));
    for (GstHarness* h : harnesses) gst_harness_teardown(h);
    for (int e = 0; e < elements; ++e)
      expect_same(batched[e], unbatched(inputs[e]), id + " element " + std::to_string(e));
  }
}

// The video detector batches through the same base: two cameras, one model.
TEST_F(Batch, VideoDetectorsBatchAlike) {
  const Input first = make_video(90, 21), second = make_video(90, 22);
  GstHarness* a = detector("model-instance-id=video batch-size=2 batch-timeout=60000", kVideo);
  GstHarness* b = detector("model-instance-id=video batch-size=2 batch-timeout=60000", kVideo);
  Tokens from_a, from_b;
  for (std::size_t i = 0; i < first.buffers.size(); ++i) {
    push(a, first.buffers[i], &from_a);
    push(b, second.buffers[i], &from_b);
  }
  finish(a, &from_a);
  finish(b, &from_b);
  EXPECT_GT(stat(a, "batch-streams", kVideo), stat(a, "batches", kVideo)) << "tokens were batched";
  EXPECT_GE(from_a.size(), 25u);
  gst_harness_teardown(a);
  gst_harness_teardown(b);
  expect_same(from_a, unbatched(first, kVideo), "video element 0");
  expect_same(from_b, unbatched(second, kVideo), "video element 1");
}

// One element in its group, pausing between buffers: the batch never fills,
// the timeout steps it, and the results ride on later buffers.
TEST_F(Batch, TimeoutStepsABatchThatDoesNotFill) {
  const Input input = make_audio(60, 3);
  GstHarness* h = detector("model-instance-id=timeout batch-size=4 batch-timeout=10");
  Tokens batched;
  for (std::size_t i = 0; i < input.buffers.size(); ++i) {
    push(h, input.buffers[i], &batched);
    if (i % 6 == 5) std::this_thread::sleep_for(std::chrono::milliseconds(60));
  }
  finish(h, &batched);
  EXPECT_GT(stat(h, "batch-timeouts"), 0u);
  GstElement* e = gst_harness_find_element(h, "nyaudiodetect");
  guint64 latency = 0;
  g_object_get(e, "result-latency", &latency, nullptr);
  gst_object_unref(e);
  gst_harness_teardown(h);
  GstHarness* plain = detector("");
  guint64 plain_latency = 0;
  e = gst_harness_find_element(plain, "nyaudiodetect");
  g_object_get(e, "result-latency", &plain_latency, nullptr);
  gst_object_unref(e);
  gst_harness_teardown(plain);
  EXPECT_EQ(latency, plain_latency + 10 * GST_MSECOND) << "result-latency adds batch-timeout";
  expect_same(batched, unbatched(input), "timeout");
}

// A flush steps the element's queued token and posts its result (which no
// buffer of the new segment should carry) on the bus.
TEST_F(Batch, FlushDeliversPendingResultsToTheBus) {
  const Input input = make_audio(80, 5);
  GstHarness* h = detector("model-instance-id=flush batch-size=4 batch-timeout=60000");
  GstBus* bus = gst_bus_new();
  GstElement* e = gst_harness_find_element(h, "nyaudiodetect");
  gst_element_set_bus(e, bus);
  Tokens before;
  for (int i = 0; i < 40; ++i) push(h, input.buffers[i], &before);
  const guint64 steps = stat(h, "steps");
  gst_harness_push_event(h, gst_event_new_flush_start());
  gst_harness_push_event(h, gst_event_new_flush_stop(TRUE));
  int posted = 0;
  while (GstMessage* m = gst_bus_pop_filtered(bus, GST_MESSAGE_ELEMENT)) {
    guint64 token;
    EXPECT_TRUE(gst_structure_get_uint64(gst_message_get_structure(m), "token", &token));
    EXPECT_EQ(before.count(token), 0u) << "posted and carried";
    before[token] = {};
    ++posted;
    gst_message_unref(m);
  }
  EXPECT_GE(posted, 1);
  EXPECT_EQ(stat(h, "steps"), before.size()) << "every stepped token reported once";
  EXPECT_GE(stat(h, "steps"), steps);
  gst_element_set_bus(e, nullptr);
  gst_object_unref(e);
  gst_object_unref(bus);
  gst_harness_teardown(h);
}

// Stopping (READY, NULL) steps the queued token and posts its result.
TEST_F(Batch, StopDeliversPendingResultsToTheBus) {
  const Input input = make_audio(40, 6);
  GstHarness* h = detector("model-instance-id=stop batch-size=4 batch-timeout=60000");
  GstBus* bus = gst_bus_new();
  GstElement* e = gst_harness_find_element(h, "nyaudiodetect");
  gst_element_set_bus(e, bus);
  Tokens carried;
  for (GstBuffer* b : input.buffers) push(h, b, &carried);
  const guint64 tokens = stat(h, "tokens");
  ASSERT_GT(tokens, carried.size()) << "a token is still queued";
  gst_element_set_state(e, GST_STATE_NULL);
  guint64 posted = 0;
  while (GstMessage* m = gst_bus_pop_filtered(bus, GST_MESSAGE_ELEMENT)) {
    ++posted;
    gst_message_unref(m);
  }
  EXPECT_EQ(carried.size() + posted, tokens) << "every token's result carried or posted";
  gst_element_set_bus(e, nullptr);
  gst_object_unref(e);
  gst_object_unref(bus);
  gst_harness_teardown(h);
}

// --- real pipelines -------------------------------------------------------

struct PipelineRun {
  std::map<std::string, int> messages;  // element messages per element name
  std::string error, warning;           // first of each: "<message> | <debug>"
};

std::string describe(GstMessage* msg) {
  GError* e = nullptr;
  gchar* debug = nullptr;
  if (GST_MESSAGE_TYPE(msg) == GST_MESSAGE_ERROR)
    gst_message_parse_error(msg, &e, &debug);
  else
    gst_message_parse_warning(msg, &e, &debug);
  std::string out = std::string(e->message) + " | " + (debug ? debug : "");
  g_error_free(e);
  g_free(debug);
  return out;
}

PipelineRun run_pipeline(const std::string& launch, std::vector<GstElement*>* detectors_out = nullptr) {
  PipelineRun run;
  GError* error = nullptr;
  GstElement* pipeline = gst_parse_launch(launch.c_str(), &error);
  EXPECT_TRUE(pipeline) << (error ? error->message : "");
  g_clear_error(&error);
  if (!pipeline) return run;
  gst_element_set_state(pipeline, GST_STATE_PLAYING);
  GstBus* bus = gst_element_get_bus(pipeline);
  while (GstMessage* msg = gst_bus_timed_pop_filtered(
             bus, 60 * GST_SECOND,
             (GstMessageType)(GST_MESSAGE_EOS | GST_MESSAGE_ERROR | GST_MESSAGE_WARNING |
                              GST_MESSAGE_ELEMENT))) {
    const GstMessageType type = GST_MESSAGE_TYPE(msg);
    if (type == GST_MESSAGE_ELEMENT)
      run.messages[GST_OBJECT_NAME(GST_MESSAGE_SRC(msg))]++;
    else if (type == GST_MESSAGE_WARNING && run.warning.empty())
      run.warning = describe(msg);
    else if (type == GST_MESSAGE_ERROR && run.error.empty())
      run.error = describe(msg);
    gst_message_unref(msg);
    if (type == GST_MESSAGE_EOS || type == GST_MESSAGE_ERROR) break;
  }
  gst_object_unref(bus);
  if (detectors_out)
    for (const char* name : {"a", "b"})
      if (GstElement* d = gst_bin_get_by_name(GST_BIN(pipeline), name)) detectors_out->push_back(d);
  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_object_unref(pipeline);
  return run;
}

guint64 element_stat(GstElement* e, const char* field) {
  GstStructure* stats = nullptr;
  g_object_get(e, "stats", &stats, nullptr);
  guint64 value = 0;
  gst_structure_get_uint64(stats, field, &value);
  gst_structure_free(stats);
  return value;
}

// Element messages the bus delivered from the element called name.
int messages_from(const PipelineRun& run, const std::string& name) {
  return run.messages.count(name) ? run.messages.at(name) : 0;
}

// Every token stepped and its result reported (on a buffer, or in a message
// that reached the bus before EOS).
void expect_every_result_reported(GstElement* d, const PipelineRun& run) {
  const std::string name = GST_OBJECT_NAME(d);
  EXPECT_EQ(element_stat(d, "messages"), (guint64)messages_from(run, name)) << name;
  EXPECT_EQ(element_stat(d, "results"), element_stat(d, "steps")) << name;
  EXPECT_EQ(element_stat(d, "tokens"), element_stat(d, "steps")) << name;
  EXPECT_GT(element_stat(d, "batches"), 0u) << name;
}

std::string branch(const char* name, const std::string& properties, int freq) {
  return "audiotestsrc num-buffers=20 samplesperbuffer=4800 freq=" + std::to_string(freq) +
         " ! nyaudiodetect name=" + name + " model=" + test_model(kAudio) + " " + properties +
         " ! fakesink sync=false ";
}

// One batched element alone in its group: a batch steps only when the element
// queues its next token (the timeout is a minute), so its last token is still
// queued at EOS and its result can only go to the bus.
TEST_F(Batch, EosInAPipelinePostsPendingResults) {
  std::vector<GstElement*> detectors;
  const PipelineRun run =
      run_pipeline(branch("a", "model-instance-id=eos batch-size=4 batch-timeout=60000", 440),
                   &detectors);
  EXPECT_EQ(run.error, "");
  ASSERT_EQ(detectors.size(), 1u);
  EXPECT_GE(messages_from(run, "a"), 1);
  expect_every_result_reported(detectors[0], run);
  gst_object_unref(detectors[0]);
}

// Two branches in their own threads sharing a batch that never fills: which
// last results ride on a last buffer and which go to the bus depends on how
// the threads interleave (one's EOS flush can step the other's last token
// while its last buffer is still in transform), but none is lost: every token
// is stepped and reported, and every message posted reaches the bus before EOS.
TEST_F(Batch, EosWithTwoBranchesLosesNoResult) {
  const std::string batched = "model-instance-id=eos2 batch-size=4 batch-timeout=60000";
  std::vector<GstElement*> detectors;
  const PipelineRun run = run_pipeline(branch("a", batched, 440) + branch("b", batched, 660), &detectors);
  EXPECT_EQ(run.error, "");
  ASSERT_EQ(detectors.size(), 2u);
  for (GstElement* d : detectors) {
    expect_every_result_reported(d, run);
    gst_object_unref(d);
  }
}

TEST_F(Batch, MismatchedSettingsAreAnError) {
  const PipelineRun run = run_pipeline(branch("a", "model-instance-id=mismatch batch-size=2", 440) +
                                       branch("b", "model-instance-id=mismatch batch-size=3", 660));
  EXPECT_NE(run.error.find("must batch alike"), std::string::npos) << run.error;
  EXPECT_NE(run.error.find("batch-size 2"), std::string::npos) << run.error;
  EXPECT_NE(run.error.find("batch-size 3"), std::string::npos) << run.error;
}

TEST_F(Batch, BatchSizeWithoutAnIdWarnsAndRunsUnbatched) {
  std::vector<GstElement*> detectors;
  const PipelineRun run = run_pipeline(branch("a", "batch-size=4", 440), &detectors);
  EXPECT_EQ(run.error, "");
  EXPECT_NE(run.warning.find("model-instance-id"), std::string::npos) << run.warning;
  ASSERT_EQ(detectors.size(), 1u);
  EXPECT_GT(element_stat(detectors[0], "steps"), 0u);
  EXPECT_EQ(element_stat(detectors[0], "batches"), 0u);
  gst_object_unref(detectors[0]);
}

}  // namespace
