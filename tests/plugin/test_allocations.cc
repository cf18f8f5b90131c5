// Issue 22: the detectors' default path allocates nothing per result once
// warmed up. malloc is interposed for the whole process (allocation_counter.h);
// allocations are counted from a probe on the detector's sink pad to one on its
// src pad, so exactly the element's own work on each buffer (base transform,
// front end, model steps, metas) is measured, none of the test's.
#include <gst/check/gstharness.h>
#include <gst/gst.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "allocation_counter.h"
#include "gstnystreammeta.h"

namespace {

using nystream::testing::g_allocations;
using nystream::testing::g_counting;

std::string shipped(const char* name) {
  const char* dir = std::getenv("NYSTREAM_SHIPPED_MODELS");
  return std::string(dir ? dir : "models") + "/" + name;
}

GstPadProbeReturn start_counting(GstPad*, GstPadProbeInfo*, gpointer) {
  g_counting = true;
  return GST_PAD_PROBE_OK;
}

GstPadProbeReturn stop_counting(GstPad*, GstPadProbeInfo*, gpointer) {
  g_counting = false;
  return GST_PAD_PROBE_OK;
}

struct Counted {
  long allocations = 0;
  long results = 0;
};

// Pushes `buffers` (owned) through the harness; counts after `warm_up` buffers.
Counted run(GstHarness* h, const char* element, std::vector<GstBuffer*> buffers, std::size_t warm_up) {
  GstElement* detector = gst_harness_find_element(h, element);
  GstPad* sink = gst_element_get_static_pad(detector, "sink");
  GstPad* src = gst_element_get_static_pad(detector, "src");
  Counted counted;
  for (std::size_t i = 0; i < buffers.size(); ++i) {
    gulong in = 0, out = 0;
    if (i == warm_up) {
      in = gst_pad_add_probe(sink, GST_PAD_PROBE_TYPE_BUFFER, start_counting, nullptr, nullptr);
      out = gst_pad_add_probe(src, GST_PAD_PROBE_TYPE_BUFFER, stop_counting, nullptr, nullptr);
      g_allocations = 0;
    }
    EXPECT_EQ(gst_harness_push(h, buffers[i]), GST_FLOW_OK);
    g_counting = false;
    GstBuffer* result = gst_harness_pull(h);
    if (i >= warm_up) {
      gpointer state = nullptr;
      while (gst_buffer_iterate_meta_filtered(result, &state, GST_NYSTREAM_META_API_TYPE)) counted.results++;
    }
    gst_buffer_unref(result);
    (void)in;
    (void)out;
  }
  counted.allocations = g_allocations;
  gst_object_unref(sink);
  gst_object_unref(src);
  gst_object_unref(detector);
  return counted;
}

// 16 kHz mono S16 noise, `frames` samples per buffer.
std::vector<GstBuffer*> audio_buffers(int count, int frames) {
  std::mt19937 engine(1);
  std::uniform_int_distribution<int> sample(-6000, 6000);
  std::vector<GstBuffer*> buffers;
  for (int i = 0; i < count; ++i) {
    std::vector<gint16> data(frames);
    for (auto& s : data) s = static_cast<gint16>(sample(engine));
    GstBuffer* b = gst_buffer_new_memdup(data.data(), data.size() * sizeof(gint16));
    GST_BUFFER_PTS(b) = gst_util_uint64_scale(i * frames, GST_SECOND, 16000);
    GST_BUFFER_DURATION(b) = gst_util_uint64_scale(frames, GST_SECOND, 16000);
    buffers.push_back(b);
  }
  return buffers;
}

TEST(Allocations, AudioDetectorDefaultPathAllocatesNothingPerResult) {
  gst_init(nullptr, nullptr);
  GstHarness* h = gst_harness_new_parse(("nyaudiodetect model=" + shipped("audio-events.safetensors")).c_str());
  gst_harness_set_src_caps_str(h, "audio/x-raw,format=S16LE,rate=16000,channels=1,layout=interleaved");
  // 62.5 ms buffers: tokens complete on some buffers, not others.
  const Counted c = run(h, "nyaudiodetect", audio_buffers(600, 1000), 200);
  gst_harness_teardown(h);
  std::printf("audio: %ld results, %ld allocations\n", c.results, c.allocations);
  EXPECT_GE(c.results, 200);
  EXPECT_EQ(c.allocations, 0);
}

TEST(Allocations, VideoDetectorDefaultPathAllocatesNothingPerResult) {
  gst_init(nullptr, nullptr);
  GstHarness* h = gst_harness_new_parse(("nyvideodetect model=" + shipped("video-actions.safetensors")).c_str());
  gst_harness_set_src_caps_str(h, "video/x-raw,format=I420,width=320,height=240,framerate=30/1");
  std::mt19937 engine(2);
  std::uniform_int_distribution<int> pixel(0, 255);
  std::vector<GstBuffer*> buffers;
  const int size = 320 * 240 * 3 / 2;
  for (int i = 0; i < 450; ++i) {
    std::vector<guint8> data(size);
    // A bright square moving right on noise: motion for the descriptor.
    for (auto& p : data) p = static_cast<guint8>(pixel(engine) / 4);
    for (int y = 100; y < 140; ++y)
      for (int x = (i * 3) % 280; x < (i * 3) % 280 + 40; ++x) data[y * 320 + x] = 230;
    GstBuffer* b = gst_buffer_new_memdup(data.data(), data.size());
    GST_BUFFER_PTS(b) = gst_util_uint64_scale(i, GST_SECOND, 30);
    GST_BUFFER_DURATION(b) = gst_util_uint64_scale(1, GST_SECOND, 30);
    buffers.push_back(b);
  }
  const Counted c = run(h, "nyvideodetect", buffers, 150);
  gst_harness_teardown(h);
  std::printf("video: %ld results, %ld allocations\n", c.results, c.allocations);
  EXPECT_GE(c.results, 90);
  EXPECT_EQ(c.allocations, 0);
}

// Issue 21: two detectors sharing a model-instance-id with batch-size 2, fed in
// turn. Counted from every sink probe to the src probe of the same element:
// queueing, the batched step (by whichever element fills the batch) and taking
// results allocate nothing. batch-timeout is long so its thread never steps.
TEST(Allocations, BatchedDetectorsAllocateNothingPerResult) {
  gst_init(nullptr, nullptr);
  const std::string launch = "nyaudiodetect model-instance-id=allocations batch-size=2 batch-timeout=60000 model=" +
                             shipped("audio-events.safetensors");
  GstHarness* harness[2] = {gst_harness_new_parse(launch.c_str()), gst_harness_new_parse(launch.c_str())};
  std::vector<GstBuffer*> buffers[2] = {audio_buffers(600, 1000), audio_buffers(600, 700)};
  long results = 0;
  g_allocations = 0;
  for (int e = 0; e < 2; ++e)
    gst_harness_set_src_caps_str(harness[e], "audio/x-raw,format=S16LE,rate=16000,channels=1,layout=interleaved");
  for (std::size_t i = 0; i < 600; ++i)
    for (int e = 0; e < 2; ++e) {
      GstElement* detector = gst_harness_find_element(harness[e], "nyaudiodetect");
      GstPad* sink = gst_element_get_static_pad(detector, "sink");
      GstPad* src = gst_element_get_static_pad(detector, "src");
      gulong in = 0, out = 0;
      if (i >= 200) {
        in = gst_pad_add_probe(sink, GST_PAD_PROBE_TYPE_BUFFER, start_counting, nullptr, nullptr);
        out = gst_pad_add_probe(src, GST_PAD_PROBE_TYPE_BUFFER, stop_counting, nullptr, nullptr);
      }
      EXPECT_EQ(gst_harness_push(harness[e], buffers[e][i]), GST_FLOW_OK);
      g_counting = false;
      if (in) gst_pad_remove_probe(sink, in);
      if (out) gst_pad_remove_probe(src, out);
      GstBuffer* result = gst_harness_pull(harness[e]);
      gpointer state = nullptr;
      while (i >= 200 && gst_buffer_iterate_meta_filtered(result, &state, GST_NYSTREAM_META_API_TYPE)) results++;
      gst_buffer_unref(result);
      gst_object_unref(sink);
      gst_object_unref(src);
      gst_object_unref(detector);
    }
  const long allocations = g_allocations;
  for (GstHarness* h : harness) gst_harness_teardown(h);
  std::printf("batched audio: %ld results, %ld allocations\n", results, allocations);
  EXPECT_GE(results, 400);
  EXPECT_EQ(allocations, 0);
}

// The opt-in extras do allocate (what their documentation says), so the test
// above could see an allocation if one happened.
TEST(Allocations, CustomMetaAndMessagesAreCounted) {
  gst_init(nullptr, nullptr);
  GstHarness* h = gst_harness_new_parse(("nyaudiodetect custom-meta=true post-messages=true model=" +
                                         shipped("audio-events.safetensors")).c_str());
  gst_harness_set_src_caps_str(h, "audio/x-raw,format=S16LE,rate=16000,channels=1,layout=interleaved");
  const Counted c = run(h, "nyaudiodetect", audio_buffers(100, 1600), 50);
  gst_harness_teardown(h);
  EXPECT_GE(c.results, 40);
  EXPECT_GE(c.allocations, c.results);
}

}  // namespace
