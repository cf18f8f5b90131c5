// Issue 6, the detectors as GStreamer elements: buffers leave byte-identical and
// in the same number, results equal the command-line tools on the same file,
// spans and timestamps hold across odd buffer sizes, flushes and DISCONT reset,
// errors say what is wrong, state cycles and shared models change nothing.
#include <gst/check/gstharness.h>
#include <gst/gst.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "gstnystreammeta.h"

namespace {

std::string test_file(const char* name) {
  const char* dir = std::getenv("NYSTREAM_TEST_MODELS");
  return std::string(dir ? dir : ".") + "/" + name;
}

struct Result {
  guint64 token;
  GstClockTime start, duration;
  std::vector<float> scores;
  bool operator==(const Result& o) const {
    return token == o.token && start == o.start && duration == o.duration && scores == o.scores;
  }
};

void collect(GstBuffer* buffer, std::vector<Result>* out) {
  gpointer state = nullptr;
  GstMeta* meta;
  while ((meta = gst_buffer_iterate_meta_filtered(buffer, &state, GST_NYSTREAM_META_API_TYPE))) {
    auto* r = reinterpret_cast<GstNystreamMeta*>(meta);
    out->push_back({r->token_index, r->start, r->duration,
                    std::vector<float>(r->scores, r->scores + r->n_classes)});
  }
}

class Elements : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { gst_init(nullptr, nullptr); }
};

// Audio buffers of random odd sizes, S16LE stereo at 22.05 kHz.
struct AudioInput {
  std::vector<GstBuffer*> buffers;  // owned; pushed as refs
  ~AudioInput() {
    for (GstBuffer* b : buffers) gst_buffer_unref(b);
  }
};

AudioInput make_audio(int count, int rate, int channels, std::uint32_t seed, GstClockTime start = 0) {
  AudioInput input;
  std::mt19937 engine(seed);
  std::uniform_int_distribution<int> frames(1, 997), sample(-8000, 8000);
  guint64 offset = 0;
  for (int i = 0; i < count; ++i) {
    const int n = frames(engine);
    std::vector<gint16> data(n * channels);
    for (auto& s : data) s = static_cast<gint16>(sample(engine));
    GstBuffer* b = gst_buffer_new_memdup(data.data(), data.size() * sizeof(gint16));
    GST_BUFFER_PTS(b) = start + gst_util_uint64_scale(offset, GST_SECOND, rate);
    GST_BUFFER_DURATION(b) = gst_util_uint64_scale(offset + n, GST_SECOND, rate) -
                             gst_util_uint64_scale(offset, GST_SECOND, rate);
    offset += n;
    input.buffers.push_back(b);
  }
  return input;
}

const char* kAudioCaps = "audio/x-raw,format=S16LE,rate=22050,channels=2,layout=interleaved";

// Pushes every buffer through a harness and pulls it back: returns the results
// and checks each buffer leaves unchanged.
std::vector<Result> run_harness(GstHarness* h, const std::vector<GstBuffer*>& buffers) {
  std::vector<Result> results;
  for (GstBuffer* in : buffers) {
    EXPECT_EQ(gst_harness_push(h, gst_buffer_ref(in)), GST_FLOW_OK);
    GstBuffer* out = gst_harness_pull(h);
    EXPECT_NE(out, nullptr);
    if (!out) break;
    GstMapInfo a, b;
    gst_buffer_map(in, &a, GST_MAP_READ);
    gst_buffer_map(out, &b, GST_MAP_READ);
    EXPECT_EQ(a.size, b.size);
    EXPECT_EQ(std::memcmp(a.data, b.data, std::min(a.size, b.size)), 0) << "buffer changed";
    gst_buffer_unmap(in, &a);
    gst_buffer_unmap(out, &b);
    EXPECT_EQ(GST_BUFFER_PTS(out), GST_BUFFER_PTS(in));
    const std::size_t before = results.size();
    collect(out, &results);
    // A result rides on the buffer that completed its token: never before the
    // media it describes has arrived.
    for (std::size_t i = before; i < results.size(); ++i)
      EXPECT_LE(results[i].start + results[i].duration,
                GST_BUFFER_PTS(out) + GST_BUFFER_DURATION(out) + GST_SECOND / 10);
    gst_buffer_unref(out);
  }
  return results;
}

GstHarness* audio_harness(const std::string& extra = "") {
  const std::string launch = "nyaudiodetect model=" + test_file("audio-random.safetensors") + " " + extra;
  GstHarness* h = gst_harness_new_parse(launch.c_str());
  gst_harness_set_src_caps_str(h, kAudioCaps);
  return h;
}

guint64 stat(GstHarness* h, const char* element, const char* field) {
  GstStructure* stats = nullptr;
  GstElement* e = gst_harness_find_element(h, element);  // transfer full
  g_object_get(e, "stats", &stats, nullptr);
  gst_object_unref(e);
  guint64 value = 0;
  gst_structure_get_uint64(stats, field, &value);
  gst_structure_free(stats);
  return value;
}

TEST_F(Elements, AudioBuffersLeaveUnchangedWithContiguousTokenSpans) {
  GstHarness* h = audio_harness();
  const AudioInput input = make_audio(300, 22050, 2, 1);
  const std::vector<Result> results = run_harness(h, input.buffers);
  // ~300 * 499 frames / 22050 Hz = 6.8 s: 67 whole 100 ms tokens.
  ASSERT_GE(results.size(), 60u);
  guint64 latency = 0;
  GstElement* detect = gst_harness_find_element(h, "nyaudiodetect");  // transfer full
  g_object_get(detect, "result-latency", &latency, nullptr);
  gst_object_unref(detect);
  EXPECT_GE(latency, 100 * GST_MSECOND);  // at least a token's length
  for (std::size_t i = 0; i < results.size(); ++i) {
    EXPECT_EQ(results[i].token, i);
    EXPECT_EQ(results[i].start, i * 100 * GST_MSECOND);
    EXPECT_EQ(results[i].duration, 100 * GST_MSECOND);
    EXPECT_EQ(results[i].scores.size(), 6u);
  }
  gst_harness_teardown(h);
}

std::vector<GstBuffer*> make_video(int frames, int width, int height, int fps, std::uint32_t seed,
                                   GstClockTime start = 0) {
  std::mt19937 engine(seed);
  std::vector<GstBuffer*> out;
  const gsize size = width * height * 3 / 2;
  for (int i = 0; i < frames; ++i) {
    std::vector<guint8> data(size);
    for (auto& p : data) p = static_cast<guint8>(engine());
    GstBuffer* b = gst_buffer_new_memdup(data.data(), size);
    GST_BUFFER_PTS(b) = start + gst_util_uint64_scale(i, GST_SECOND, fps);
    GST_BUFFER_DURATION(b) = start + gst_util_uint64_scale(i + 1, GST_SECOND, fps) - GST_BUFFER_PTS(b);
    out.push_back(b);
  }
  return out;
}

TEST_F(Elements, VideoBuffersLeaveUnchangedWithResults) {
  GstHarness* h = gst_harness_new_parse(
      ("nyvideodetect model=" + test_file("video-random.safetensors")).c_str());
  gst_harness_set_src_caps_str(h, "video/x-raw,format=I420,width=160,height=120,framerate=30/1");
  const std::vector<GstBuffer*> frames = make_video(60, 160, 120, 30, 5);
  const std::vector<Result> results = run_harness(h, frames);
  // The same frames again, with timestamps going backwards: passed on, counted.
  for (GstBuffer* b : frames) {
    GstBuffer* late = gst_buffer_copy(b);
    GST_BUFFER_PTS(late) = 0;
    EXPECT_EQ(gst_harness_push(h, late), GST_FLOW_OK);
    gst_buffer_unref(gst_harness_pull(h));
  }
  EXPECT_GE(stat(h, "nyvideodetect", "rejected-buffers"), 59u);
  for (GstBuffer* b : frames) gst_buffer_unref(b);
  // Tokens every 100 ms over 2 s; each delivered when a later frame arrives.
  EXPECT_GE(results.size(), 18u);
  for (std::size_t i = 0; i < results.size(); ++i) {
    EXPECT_EQ(results[i].token, i);
    EXPECT_EQ(results[i].scores.size(), 8u);
  }
  gst_harness_teardown(h);
}

TEST_F(Elements, FlushMidStreamEqualsAFreshStartFromThere) {
  const AudioInput first = make_audio(100, 22050, 2, 7);
  // The second part starts at 5 s, as after a seek.
  const AudioInput second = make_audio(150, 22050, 2, 8, 5 * GST_SECOND);

  GstHarness* h = audio_harness();
  run_harness(h, first.buffers);
  gst_harness_push_event(h, gst_event_new_flush_start());
  gst_harness_push_event(h, gst_event_new_flush_stop(TRUE));
  GstSegment segment;
  gst_segment_init(&segment, GST_FORMAT_TIME);
  gst_harness_push_event(h, gst_event_new_segment(&segment));
  const std::vector<Result> after_flush = run_harness(h, second.buffers);
  gst_harness_teardown(h);

  GstHarness* fresh = audio_harness();
  const std::vector<Result> from_scratch = run_harness(fresh, second.buffers);
  gst_harness_teardown(fresh);
  ASSERT_GT(after_flush.size(), 30u);
  EXPECT_EQ(after_flush, from_scratch);
}

// Caps change mid-stream (another rate and channel count, another frame size
// and rate): the stream resets and what follows equals a fresh start in the new
// format, buffer for buffer; what came before equals a run of it alone.
TEST_F(Elements, AudioCapsChangeMidStreamEqualsAFreshStartInTheNewFormat) {
  const AudioInput first = make_audio(100, 22050, 2, 21);
  const AudioInput second = make_audio(150, 16000, 1, 22, 3 * GST_SECOND);
  const char* second_caps = "audio/x-raw,format=S16LE,rate=16000,channels=1,layout=interleaved";

  GstHarness* h = audio_harness();
  const std::vector<Result> before = run_harness(h, first.buffers);
  gst_harness_set_src_caps_str(h, second_caps);
  const std::vector<Result> after = run_harness(h, second.buffers);
  const guint64 resets = stat(h, "nyaudiodetect", "resets");
  gst_harness_teardown(h);

  GstHarness* alone = audio_harness();
  const std::vector<Result> first_alone = run_harness(alone, first.buffers);
  gst_harness_teardown(alone);
  GstHarness* fresh = audio_harness();
  gst_harness_set_src_caps_str(fresh, second_caps);
  const std::vector<Result> from_scratch = run_harness(fresh, second.buffers);
  gst_harness_teardown(fresh);
  ASSERT_GT(before.size(), 15u);
  ASSERT_GT(after.size(), 30u);
  EXPECT_EQ(before, first_alone);
  EXPECT_EQ(after, from_scratch);
  EXPECT_EQ(resets, 2u);  // first caps, the change
}

TEST_F(Elements, VideoCapsChangeMidStreamEqualsAFreshStartInTheNewFormat) {
  const std::string launch = "nyvideodetect model=" + test_file("video-random.safetensors");
  const char* first_caps = "video/x-raw,format=I420,width=160,height=120,framerate=30/1";
  const char* second_caps = "video/x-raw,format=I420,width=320,height=240,framerate=15/1";
  std::vector<GstBuffer*> first = make_video(45, 160, 120, 30, 23);
  std::vector<GstBuffer*> second = make_video(45, 320, 240, 15, 24, 2 * GST_SECOND);

  GstHarness* h = gst_harness_new_parse(launch.c_str());
  gst_harness_set_src_caps_str(h, first_caps);
  const std::vector<Result> before = run_harness(h, first);
  gst_harness_set_src_caps_str(h, second_caps);
  const std::vector<Result> after = run_harness(h, second);
  gst_harness_teardown(h);

  GstHarness* alone = gst_harness_new_parse(launch.c_str());
  gst_harness_set_src_caps_str(alone, first_caps);
  const std::vector<Result> first_alone = run_harness(alone, first);
  gst_harness_teardown(alone);
  GstHarness* fresh = gst_harness_new_parse(launch.c_str());
  gst_harness_set_src_caps_str(fresh, second_caps);
  const std::vector<Result> from_scratch = run_harness(fresh, second);
  gst_harness_teardown(fresh);
  for (GstBuffer* b : first) gst_buffer_unref(b);
  for (GstBuffer* b : second) gst_buffer_unref(b);
  ASSERT_GT(before.size(), 10u);
  ASSERT_GT(after.size(), 20u);
  EXPECT_EQ(before, first_alone);
  EXPECT_EQ(after, from_scratch);
  EXPECT_EQ(after.front().start, 2 * GST_SECOND);
}

TEST_F(Elements, DiscontinuityResetsTheStream) {
  const AudioInput first = make_audio(100, 22050, 2, 9);
  const AudioInput second = make_audio(150, 22050, 2, 10, 5 * GST_SECOND);
  GST_BUFFER_FLAG_SET(second.buffers[0], GST_BUFFER_FLAG_DISCONT);

  GstHarness* h = audio_harness();
  run_harness(h, first.buffers);
  const std::vector<Result> after = run_harness(h, second.buffers);
  const guint64 resets = stat(h, "nyaudiodetect", "resets");
  gst_harness_teardown(h);

  GstHarness* fresh = audio_harness();
  const std::vector<Result> from_scratch = run_harness(fresh, second.buffers);
  gst_harness_teardown(fresh);
  EXPECT_EQ(resets, 2u);  // caps, then the DISCONT buffer
  EXPECT_EQ(after, from_scratch);
}

TEST_F(Elements, NoResetWhenDisabled) {
  const AudioInput first = make_audio(100, 22050, 2, 9);
  const AudioInput second = make_audio(150, 22050, 2, 10, 5 * GST_SECOND);
  GST_BUFFER_FLAG_SET(second.buffers[0], GST_BUFFER_FLAG_DISCONT);
  GstHarness* h = audio_harness("reset-on-discontinuity=false");
  run_harness(h, first.buffers);
  const std::vector<Result> after = run_harness(h, second.buffers);
  gst_harness_teardown(h);
  GstHarness* fresh = audio_harness();
  const std::vector<Result> from_scratch = run_harness(fresh, second.buffers);
  gst_harness_teardown(fresh);
  ASSERT_FALSE(after.empty());
  EXPECT_NE(after.front().scores, from_scratch.front().scores);  // the window was kept
}

TEST_F(Elements, InferenceIntervalReportsEveryKthToken) {
  GstHarness* h = audio_harness("inference-interval=4");
  const AudioInput input = make_audio(300, 22050, 2, 1);
  const std::vector<Result> every4 = run_harness(h, input.buffers);
  gst_harness_teardown(h);
  GstHarness* all = audio_harness();
  const std::vector<Result> every = run_harness(all, input.buffers);
  gst_harness_teardown(all);
  ASSERT_GE(every4.size(), 15u);
  for (const Result& r : every4) {
    EXPECT_EQ(r.token % 4, 0u);
    EXPECT_EQ(r, every[r.token]);  // still stepped on every token
  }
}

TEST_F(Elements, LateBuffersSkipModelStepsButPassUnchanged) {
  GstHarness* h = audio_harness();
  const AudioInput input = make_audio(200, 22050, 2, 3);
  // Downstream says: the buffer at 2 s ran 1 s late, so (as GstBaseTransform
  // reads it: timestamp + diff) anything up to 3 s running time is late.
  gst_harness_push_upstream_event(
      h, gst_event_new_qos(GST_QOS_TYPE_UNDERFLOW, 0.5, GST_SECOND, 2 * GST_SECOND));
  const std::vector<Result> results = run_harness(h, input.buffers);  // checks every buffer
  const guint64 skipped = stat(h, "nyaudiodetect", "skipped-qos");
  const guint64 tokens = stat(h, "nyaudiodetect", "tokens");
  gst_harness_teardown(h);
  // ~29 tokens before 3 s were let go by; the rest were computed and reported.
  EXPECT_GE(skipped, 25u);
  EXPECT_LE(skipped, 31u);
  EXPECT_EQ(results.size(), tokens - skipped);
  for (const Result& r : results) EXPECT_GE(r.start + r.duration, 3 * GST_SECOND - 200 * GST_MSECOND);
}

TEST_F(Elements, GapResetsTheStream) {
  GstHarness* h = audio_harness();
  const AudioInput input = make_audio(50, 22050, 2, 4);
  run_harness(h, input.buffers);
  const guint64 before = stat(h, "nyaudiodetect", "resets");
  gst_harness_push_event(h, gst_event_new_gap(2 * GST_SECOND, GST_SECOND));
  EXPECT_EQ(stat(h, "nyaudiodetect", "resets"), before + 1);
  gst_harness_teardown(h);
}

// --- real pipelines -------------------------------------------------------

struct PipelineRun {
  std::vector<Result> results;  // from the buffers, then those sent at EOS
  std::size_t final_results = 0;  // how many of them came in the EOS event
  std::map<std::string, std::vector<guint64>> message_tokens;  // "token" of each bus message, per element
  std::string error;  // first ERROR message: "<message> | <debug>"
  std::mutex mutex;
};

GstPadProbeReturn on_data(GstPad*, GstPadProbeInfo* info, gpointer data) {
  auto* run = static_cast<PipelineRun*>(data);
  std::lock_guard<std::mutex> lock(run->mutex);
  if (GST_PAD_PROBE_INFO_TYPE(info) & GST_PAD_PROBE_TYPE_BUFFER) {
    collect(GST_PAD_PROBE_INFO_BUFFER(info), &run->results);
    return GST_PAD_PROBE_OK;
  }
  GstEvent* event = GST_PAD_PROBE_INFO_EVENT(info);
  const GstStructure* s = gst_event_get_structure(event);
  if (GST_EVENT_TYPE(event) == GST_EVENT_CUSTOM_DOWNSTREAM &&
      gst_structure_has_name(s, GST_NYSTREAM_FINAL_RESULTS_EVENT)) {
    const std::size_t before = run->results.size();
    collect(gst_value_get_buffer(gst_structure_get_value(s, GST_NYSTREAM_FINAL_RESULTS_FIELD)),
            &run->results);
    run->final_results += run->results.size() - before;
  }
  return GST_PAD_PROBE_OK;
}

// Runs a launch line to EOS or error; results from the src pad of element "d"
// (buffers and the EOS results event), tokens of every element's bus messages.
void run_pipeline(const std::string& launch, PipelineRun* run) {
  GError* error = nullptr;
  GstElement* pipeline = gst_parse_launch(launch.c_str(), &error);
  ASSERT_TRUE(pipeline) << (error ? error->message : "parse failed");
  g_clear_error(&error);  // a pipeline can come with a recoverable error (e.g. a failed link)
  if (GstElement* d = gst_bin_get_by_name(GST_BIN(pipeline), "d")) {
    GstPad* pad = gst_element_get_static_pad(d, "src");
    gst_pad_add_probe(pad,
                      (GstPadProbeType)(GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM),
                      on_data, run, nullptr);
    gst_object_unref(pad);
    gst_object_unref(d);
  }
  gst_element_set_state(pipeline, GST_STATE_PLAYING);
  GstBus* bus = gst_element_get_bus(pipeline);
  GstMessage* msg;
  while ((msg = gst_bus_timed_pop_filtered(
              bus, 60 * GST_SECOND,
              (GstMessageType)(GST_MESSAGE_EOS | GST_MESSAGE_ERROR | GST_MESSAGE_ELEMENT))) &&
         GST_MESSAGE_TYPE(msg) == GST_MESSAGE_ELEMENT) {
    guint64 token;
    if (gst_structure_get_uint64(gst_message_get_structure(msg), "token", &token))
      run->message_tokens[GST_OBJECT_NAME(GST_MESSAGE_SRC(msg))].push_back(token);
    gst_message_unref(msg);
  }
  if (!msg) {
    run->error = "timeout";
  } else if (GST_MESSAGE_TYPE(msg) == GST_MESSAGE_ERROR) {
    GError* e = nullptr;
    gchar* debug = nullptr;
    gst_message_parse_error(msg, &e, &debug);
    run->error = std::string(e->message) + " | " + (debug ? debug : "");
    g_error_free(e);
    g_free(debug);
  }
  if (msg) gst_message_unref(msg);
  gst_object_unref(bus);
  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_object_unref(pipeline);
}

std::string make_wav(int buffers = 120, const std::string& name = "pipeline-test.wav") {
  const std::string path = test_file(name.c_str());
  PipelineRun run;
  run_pipeline("audiotestsrc wave=pink-noise num-buffers=" + std::to_string(buffers) +
               " samplesperbuffer=1000 ! "
               "audio/x-raw,rate=32000,channels=1,format=S16LE ! wavenc ! filesink location=" + path,
               &run);
  EXPECT_EQ(run.error, "");
  return path;
}

std::vector<std::vector<std::string>> read_csv(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::vector<std::string>> rows;
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> cells;
    std::stringstream cells_in(line);
    std::string cell;
    while (std::getline(cells_in, cell, ',')) cells.push_back(cell);
    rows.push_back(cells);
  }
  return rows;
}

// `filesrc ! decodebin ! <element>` on `file` equals nystream-features +
// nystream-infer (FFmpeg's decoder) on the same file, token by token, float for
// float: every result, those completed at EOS (sent in the final-results event)
// included.
void expect_pipeline_equals_infer(const std::string& element, const std::string& file,
                                  const std::string& model, std::size_t min_results) {
  PipelineRun run;
  run_pipeline("filesrc location=" + file + " ! decodebin ! " + element + " name=d model=" + model +
                   " ! fakesink", &run);
  ASSERT_EQ(run.error, "");

  const std::string npy = file + ".npy", csv = file + ".csv";
  const std::string features = std::string(std::getenv("NYSTREAM_FEATURES")) + " -q -m " + model +
                               " " + file + " -o " + npy;
  ASSERT_EQ(std::system(features.c_str()), 0) << features;
  const std::string infer = std::string(std::getenv("NYSTREAM_INFER")) + " --model " + model +
                            " --input " + npy + " --output " + csv;
  ASSERT_EQ(std::system(infer.c_str()), 0) << infer;
  const auto rows = read_csv(csv);
  ASSERT_GE(rows.size(), 2u);
  ASSERT_EQ(run.results.size(), rows.size() - 1);
  ASSERT_GT(run.results.size(), min_results);
  for (const Result& r : run.results) {
    const auto& row = rows.at(r.token + 1);
    ASSERT_EQ(row.at(0), std::to_string(r.token));
    ASSERT_EQ(row.at(1), "ok");
    for (std::size_t c = 0; c < r.scores.size(); ++c)
      EXPECT_EQ(std::strtof(row.at(2 + c).c_str(), nullptr), r.scores[c])
          << "token " << r.token << " class " << c;
  }
}

TEST_F(Elements, PipelineEqualsInferOnFeaturesOfTheSameFile) {
  expect_pipeline_equals_infer("nyaudiodetect", make_wav(), test_file("audio-random.safetensors"), 30);
  // 4 s: the last token is completed by the drain at EOS.
  expect_pipeline_equals_infer("nyaudiodetect", make_wav(128, "eos-test.wav"),
                               test_file("audio-random.safetensors"), 30);
}

std::string make_avi(int frames = 45, int fps = 15, const std::string& name = "pipeline-test.avi") {
  const std::string avi = test_file(name.c_str());
  PipelineRun make;
  run_pipeline("videotestsrc pattern=ball num-buffers=" + std::to_string(frames) +
               " ! video/x-raw,format=I420,width=160,height=120,framerate=" + std::to_string(fps) +
               "/1 ! avimux ! filesink location=" + avi, &make);
  EXPECT_EQ(make.error, "");
  return avi;
}

// The same for video on a lossless file, with the test model (default
// descriptor) and the shipped one (its own front-end params).
TEST_F(Elements, VideoPipelineEqualsInferOnFeaturesOfTheSameFile) {
  const std::string avi = make_avi();
  for (const std::string& model :
       {test_file("video-random.safetensors"),
        std::string(std::getenv("NYSTREAM_SHIPPED_MODELS")) + "/video-actions.safetensors"}) {
    SCOPED_TRACE(model);
    expect_pipeline_equals_infer("nyvideodetect", avi, model, 20);
  }
  // 10 fps: the last frame's token is completed by the drain at EOS.
  expect_pipeline_equals_infer("nyvideodetect", make_avi(30, 10, "eos-test.avi"),
                               test_file("video-random.safetensors"), 20);
}

std::vector<nlohmann::json> read_json_lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<nlohmann::json> lines;
  std::string line;
  while (std::getline(in, line)) lines.push_back(nlohmann::json::parse(line));
  return lines;
}

// The lines of one detector in a nymetaconvert file: one per result the
// detector posted on the bus (every one: message-interval=0), tokens 0, 1, ...
// in order, none twice.
void expect_lines_are_every_result(const std::vector<nlohmann::json>& lines, const std::string& detector,
                                   const std::vector<guint64>& posted) {
  std::vector<guint64> tokens;
  for (const nlohmann::json& line : lines)
    if (line.value("detector", std::string()) == detector) tokens.push_back(line.at("token").get<guint64>());
  EXPECT_EQ(tokens, posted) << detector << ": " << tokens.size() << " lines, " << posted.size()
                            << " results posted";
  for (std::size_t i = 0; i < tokens.size(); ++i) ASSERT_EQ(tokens[i], i) << detector;
}

// "Bad input loses nothing": the JSON file holds every result, the tokens the
// front end completes only at EOS (no buffer after them) included.
TEST_F(Elements, MetaConvertWritesEveryResultIncludingThoseDrainedAtEos) {
  const std::string json = test_file("eos-results.jsonl");
  const std::vector<std::tuple<std::string, std::string, std::string>> cases = {
      // 4 s: the last token's frames look past the end, into the drain's padding.
      {"nyaudiodetect", make_wav(128, "eos-test.wav"), test_file("audio-random.safetensors")},
      // 10 fps: the last frame shows the last token, complete only when no frame follows.
      {"nyvideodetect", make_avi(30, 10, "eos-test.avi"), test_file("video-random.safetensors")}};
  for (const auto& [element, file, model] : cases) {
    SCOPED_TRACE(element);
    PipelineRun run;
    run_pipeline("filesrc location=" + file + " ! decodebin ! " + element + " name=d model=" + model +
                     " post-messages=true message-interval=0 ! nymetaconvert location=" + json + " ! fakesink", &run);
    ASSERT_EQ(run.error, "");
    const std::vector<guint64>& posted = run.message_tokens["d"];
    ASSERT_GT(posted.size(), 20u);
    const std::vector<nlohmann::json> lines = read_json_lines(json);
    expect_lines_are_every_result(lines, "d", posted);
    // Some results were completed by the drain at EOS (else this tests nothing);
    // the pad probe saw them, on the carrier whose PTS is the first one's start.
    ASSERT_GT(run.final_results, 0u);
    ASSERT_EQ(run.results.size(), lines.size());
    const std::size_t first_final = lines.size() - run.final_results;
    for (std::size_t i = 0; i < lines.size(); ++i) {
      EXPECT_EQ(lines[i].at("start_timestamp").get<guint64>(), run.results[i].start) << i;
      EXPECT_EQ(lines[i].at("end_timestamp").get<guint64>(),
                run.results[i].start + run.results[i].duration) << i;
      if (i >= first_final) {
        EXPECT_EQ(lines[i].at("timestamp").get<guint64>(), run.results[first_final].start) << i;
      }
    }
  }
}

// Each converter of a chain writes what passes it once: its detector's results
// and those of detectors before it (riding on the same buffers and event).
TEST_F(Elements, ChainedDetectorsEachConverterWritesEveryResultOnce) {
  const std::string model = test_file("audio-random.safetensors");
  const std::string first = test_file("chain-first.jsonl"), second = test_file("chain-second.jsonl");
  PipelineRun run;
  run_pipeline("filesrc location=" + make_wav(128, "eos-test.wav") +
                   " ! decodebin ! nyaudiodetect name=d post-messages=true model=" + model +
                   " ! nymetaconvert location=" + first +
                   " ! nyaudiodetect name=d2 post-messages=true model=" + model +
                   " ! nymetaconvert location=" + second + " ! fakesink", &run);
  ASSERT_EQ(run.error, "");
  ASSERT_GT(run.final_results, 0u);
  const std::vector<nlohmann::json> a = read_json_lines(first), b = read_json_lines(second);
  expect_lines_are_every_result(a, "d", run.message_tokens["d"]);
  expect_lines_are_every_result(b, "d", run.message_tokens["d"]);
  expect_lines_are_every_result(b, "d2", run.message_tokens["d2"]);
  std::vector<nlohmann::json> b_of_d;
  for (const nlohmann::json& line : b)
    if (line.at("detector") == "d") b_of_d.push_back(line);
  EXPECT_EQ(b_of_d, a);
}

// append=true: two branches' converters share one file, after what it held;
// every line whole, each detector's lines all its results in order.
TEST_F(Elements, MetaConvertAppendLetsBranchesShareOneFile) {
  const std::string model = test_file("audio-random.safetensors");
  const std::string json = test_file("shared.jsonl");
  std::ofstream(json) << "{\"earlier\": true}\n";
  PipelineRun run;
  const std::string source = "filesrc location=" + make_wav(128, "eos-test.wav") + " ! decodebin";
  const std::string branch = " ! queue ! nyaudiodetect post-messages=true model=" + model + " name=";
  const std::string convert = " ! nymetaconvert append=true location=" + json + " ! fakesink";
  run_pipeline(source + " ! tee name=t t." + branch + "a" + convert + " t." + branch + "b" + convert,
               &run);
  ASSERT_EQ(run.error, "");
  const std::vector<nlohmann::json> lines = read_json_lines(json);
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(lines[0], nlohmann::json::parse("{\"earlier\": true}"));
  ASSERT_GT(run.message_tokens["a"].size(), 10u);
  expect_lines_are_every_result(lines, "a", run.message_tokens["a"]);
  expect_lines_are_every_result(lines, "b", run.message_tokens["b"]);
  EXPECT_EQ(lines.size(), 1 + run.message_tokens["a"].size() + run.message_tokens["b"].size());

  // Without append the file starts afresh.
  PipelineRun again;
  run_pipeline(source + branch + "a" + " ! nymetaconvert location=" + json + " ! fakesink", &again);
  ASSERT_EQ(again.error, "");
  const std::vector<nlohmann::json> fresh = read_json_lines(json);
  expect_lines_are_every_result(fresh, "a", again.message_tokens["a"]);
  EXPECT_EQ(fresh.size(), again.message_tokens["a"].size());
}

// No result completed at EOS (inference-interval: only token 0 is reported) or
// no data at all: no event, nothing more written, no error.
TEST_F(Elements, MetaConvertWithNothingDrainedAtEos) {
  const std::string json = test_file("eos-none.jsonl");
  PipelineRun run;
  const std::string model = test_file("audio-random.safetensors");
  run_pipeline("filesrc location=" + make_wav(128, "eos-test.wav") +
                   " ! decodebin ! nyaudiodetect name=d inference-interval=1000 model=" + model +
                   " ! nymetaconvert location=" + json + " ! fakesink", &run);
  ASSERT_EQ(run.error, "");
  EXPECT_EQ(run.final_results, 0u);
  const std::vector<nlohmann::json> lines = read_json_lines(json);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].at("token"), 0);

  PipelineRun empty;
  run_pipeline("audiotestsrc num-buffers=0 ! nyaudiodetect name=d model=" + model +
                   " ! nymetaconvert location=" + json + " ! fakesink", &empty);
  ASSERT_EQ(empty.error, "");
  EXPECT_TRUE(read_json_lines(json).empty());
}

// The same in real pipelines: concat plays a second source of another format
// after the first. Nothing stalls (EOS within the timeout), each part's tokens
// count from 0 and cover its own media.
TEST_F(Elements, CapsChangeInARealPipelineDoesNotStall) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"nyaudiodetect model=" + test_file("audio-random.safetensors"),
       "audiotestsrc num-buffers=40 samplesperbuffer=1024 ! audio/x-raw,rate=22050,channels=2 ! c. "
       "audiotestsrc num-buffers=40 samplesperbuffer=1024 wave=pink-noise ! "
       "audio/x-raw,rate=16000,channels=1 ! c."},
      {"nyvideodetect model=" + test_file("video-random.safetensors"),
       "videotestsrc num-buffers=30 ! video/x-raw,format=I420,width=160,height=120,framerate=30/1 ! c. "
       "videotestsrc num-buffers=30 pattern=ball ! "
       "video/x-raw,format=I420,width=320,height=240,framerate=15/1 ! c."}};
  for (const auto& [detector, sources] : cases) {
    SCOPED_TRACE(detector);
    PipelineRun run;
    run_pipeline("concat name=c ! " + detector + " name=d ! fakesink " + sources, &run);
    ASSERT_EQ(run.error, "");
    // Token 0 twice: once per format; tokens in between consecutive.
    std::vector<std::size_t> starts;
    for (std::size_t i = 0; i < run.results.size(); ++i) {
      if (run.results[i].token == 0) starts.push_back(i);
      else ASSERT_EQ(run.results[i].token, run.results[i - 1].token + 1) << i;
    }
    ASSERT_EQ(starts.size(), 2u);
    EXPECT_GE(starts[1], 9u);
    // The second source's own timeline (concat gives it a new segment) from its
    // first buffer, with tokens for all of its 2-2.5 s of media.
    EXPECT_EQ(run.results[starts[1]].start, 0u);
    EXPECT_GE(run.results.size() - starts[1], 18u);
  }
}

// A result that cannot be written is an error naming the file, never a quiet
// exit 0: a full disk (/dev/full), a file that cannot be opened.
TEST_F(Elements, MetaConvertWriteErrorsAreErrorsNamingTheFile) {
  const std::string model = test_file("audio-random.safetensors");
  const std::string source = "audiotestsrc num-buffers=40 ! nyaudiodetect model=" + model;
  PipelineRun full;
  run_pipeline(source + " ! nymetaconvert location=/dev/full ! fakesink", &full);
  EXPECT_NE(full.error.find("Could not write the results to \"/dev/full\""), std::string::npos)
      << full.error;
  EXPECT_NE(full.error.find("No space left"), std::string::npos) << full.error;
  PipelineRun missing_dir;
  run_pipeline(source + " ! nymetaconvert location=/nonexistent/dir/r.jsonl ! fakesink", &missing_dir);
  EXPECT_NE(missing_dir.error.find("/nonexistent/dir/r.jsonl"), std::string::npos) << missing_dir.error;
}

TEST_F(Elements, CorruptModelFailsWithTheLoadersMessage) {
  const std::string path = test_file("corrupt.safetensors");
  std::ofstream(path) << "this is not a model";
  PipelineRun run;
  run_pipeline("audiotestsrc num-buffers=5 ! nyaudiodetect model=" + path + " ! fakesink", &run);
  EXPECT_NE(run.error.find("Could not load the model"), std::string::npos) << run.error;
  EXPECT_NE(run.error.find("corrupt.safetensors"), std::string::npos) << run.error;
}

// Unset 'model': the shipped model, found through NYSTREAM_MODEL_PATH first.
TEST_F(Elements, UnsetModelIsTheShippedDefault) {
  const std::string shipped = std::string(std::getenv("NYSTREAM_SHIPPED_MODELS")) +
                              "/audio-events.safetensors";
  const std::string source = "audiotestsrc wave=sine freq=880 num-buffers=100 ! nyaudiodetect name=d";
  PipelineRun unset, explicit_model;
  run_pipeline(source + " ! fakesink", &unset);
  run_pipeline(source + " model=" + shipped + " ! fakesink", &explicit_model);
  ASSERT_EQ(unset.error, "");
  ASSERT_GT(unset.results.size(), 10u);
  EXPECT_EQ(unset.results, explicit_model.results);

  const std::filesystem::path dir = test_file("model-path");
  std::filesystem::create_directories(dir);
  std::filesystem::copy_file(test_file("audio-random.safetensors"), dir / "audio-events.safetensors",
                             std::filesystem::copy_options::overwrite_existing);
  g_setenv("NYSTREAM_MODEL_PATH", ("/nonexistent:" + dir.string()).c_str(), TRUE);
  PipelineRun from_path, random_model;
  run_pipeline(source + " ! fakesink", &from_path);
  g_unsetenv("NYSTREAM_MODEL_PATH");
  run_pipeline(source + " model=" + test_file("audio-random.safetensors") + " ! fakesink",
               &random_model);
  ASSERT_EQ(from_path.error, "");
  EXPECT_EQ(from_path.results, random_model.results);
  EXPECT_NE(from_path.results, unset.results);

  PipelineRun missing;
  run_pipeline("audiotestsrc num-buffers=5 ! nyaudiodetect model=/nonexistent.safetensors ! fakesink",
               &missing);
  EXPECT_NE(missing.error.find("/nonexistent.safetensors"), std::string::npos) << missing.error;
}

TEST_F(Elements, WrongModalityFails) {
  PipelineRun run;
  run_pipeline("audiotestsrc num-buffers=5 ! nyaudiodetect model=" +
                   test_file("video-random.safetensors") + " ! fakesink", &run);
  EXPECT_NE(run.error.find("is a video model"), std::string::npos) << run.error;
}

TEST_F(Elements, CapsTheModelCannotUseFailWithAReason) {
  // The front end's features do not fit the model's input: refused when the
  // model loads, as every tool refuses it.
  PipelineRun run;
  run_pipeline("audiotestsrc num-buffers=5 ! nyaudiodetect model=" +
                   test_file("audio-mismatch.safetensors") + " ! fakesink", &run);
  EXPECT_NE(run.error.find("Could not load the model"), std::string::npos) << run.error;
  EXPECT_NE(run.error.find("features per token but architecture.input_dim is 8"), std::string::npos)
      << run.error;
  // Formats outside the templates are refused at negotiation.
  PipelineRun format;
  run_pipeline("audiotestsrc num-buffers=5 ! audio/x-raw,format=S32LE ! nyaudiodetect model=" +
                   test_file("audio-random.safetensors") + " ! fakesink", &format);
  EXPECT_NE(format.error, "");
}

TEST_F(Elements, HundredStateCyclesGiveTheSameResults) {
  const std::string launch = "audiotestsrc wave=sine num-buffers=40 ! nyaudiodetect name=d model=" +
                             test_file("audio-random.safetensors") + " ! fakesink";
  PipelineRun reference;
  run_pipeline(launch, &reference);
  ASSERT_EQ(reference.error, "");
  ASSERT_FALSE(reference.results.empty());
  for (int cycle = 0; cycle < 100; ++cycle) {
    PipelineRun run;
    run_pipeline(launch, &run);
    ASSERT_EQ(run.error, "") << "cycle " << cycle;
    ASSERT_EQ(run.results, reference.results) << "cycle " << cycle;
  }
}

TEST_F(Elements, EightParallelPipelinesSharingOneModelEqualUnshared) {
  const std::string model = test_file("audio-random.safetensors");
  auto launch = [&](int i, bool shared) {
    return "audiotestsrc wave=sine freq=" + std::to_string(200 + 150 * i) +
           " num-buffers=60 ! nyaudiodetect name=d model=" + model +
           (shared ? " model-instance-id=shared" : "") + " ! fakesink";
  };
  std::vector<PipelineRun> unshared(8), shared(8);
  for (int i = 0; i < 8; ++i) run_pipeline(launch(i, false), &unshared[i]);
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i)
    threads.emplace_back([&, i] { run_pipeline(launch(i, true), &shared[i]); });
  for (auto& t : threads) t.join();
  for (int i = 0; i < 8; ++i) {
    ASSERT_EQ(shared[i].error, "") << i;
    ASSERT_FALSE(shared[i].results.empty());
    EXPECT_EQ(shared[i].results, unshared[i].results) << "pipeline " << i;
  }
}

TEST_F(Elements, BusMessagesLikeLevel) {
  GError* error = nullptr;
  GstElement* pipeline = gst_parse_launch(
      ("audiotestsrc num-buffers=60 ! nyaudiodetect name=d post-messages=true message-interval=300000000 model=" +
       test_file("audio-random.safetensors") + " ! fakesink").c_str(), &error);
  ASSERT_TRUE(pipeline);
  gst_element_set_state(pipeline, GST_STATE_PLAYING);
  GstBus* bus = gst_element_get_bus(pipeline);
  std::vector<GstClockTime> times;
  while (GstMessage* msg = gst_bus_timed_pop_filtered(
             bus, 30 * GST_SECOND,
             (GstMessageType)(GST_MESSAGE_EOS | GST_MESSAGE_ERROR | GST_MESSAGE_ELEMENT))) {
    const GstMessageType type = GST_MESSAGE_TYPE(msg);
    if (type == GST_MESSAGE_ELEMENT) {
      const GstStructure* s = gst_message_get_structure(msg);
      EXPECT_TRUE(gst_structure_has_name(s, "nyaudiodetect"));
      guint64 running = 0;
      EXPECT_TRUE(gst_structure_get_uint64(s, "running-time", &running));
      for (const char* field : {"timestamp", "stream-time", "duration", "label", "label-id",
                                "confidence", "scores", "classes", "active", "model", "token"})
        EXPECT_TRUE(gst_structure_has_field(s, field)) << field;
      times.push_back(running);
    }
    gst_message_unref(msg);
    if (type != GST_MESSAGE_ELEMENT) break;
  }
  gst_object_unref(bus);
  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_object_unref(pipeline);
  // 60 x 1024 samples at 44.1 kHz = 1.39 s: messages at least 300 ms apart.
  ASSERT_GE(times.size(), 3u);
  for (std::size_t i = 1; i < times.size(); ++i) EXPECT_GE(times[i] - times[i - 1], 300 * GST_MSECOND);
}

}  // namespace
