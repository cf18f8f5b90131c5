// nyoverlay (issue 6): it draws known results where the layout puts them and
// nowhere else, in both byte orders; it follows a detector of the same
// pipeline; a detector name that is wrong gives one warning and unchanged
// frames. The drawn frame is saved as overlay-harness.png for a person to see.
#include <cairo.h>
#include <gst/app/gstappsink.h>
#include <gst/check/gstharness.h>
#include <gst/gst.h>
#include <gst/video/video.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "gstnystreammeta.h"

namespace {

void init_gst() {
  static const bool done = [] {
    gst_init(nullptr, nullptr);
    return true;
  }();
  (void)done;
}

std::string env_or(const char* name, const char* fallback) {
  const char* value = std::getenv(name);
  return value && *value ? value : fallback;
}

constexpr int kWidth = 640, kHeight = 360;
constexpr GstClockTime kFrame = GST_SECOND / 30;
const char* const kClasses[] = {"speech", "music", "alarm", "dog_bark", "siren", "background"};
constexpr guint kNumClasses = G_N_ELEMENTS(kClasses);

// Scores that move over time like a detector's; at the last frame only speech
// is above the 0.5 threshold (music just under it).
void scores_at(int frame, int frames, float* out) {
  const double t = static_cast<double>(frame) / frames;
  out[0] = static_cast<float>(0.55 + 0.36 * t + 0.05 * std::sin(20 * t));  // speech, rising
  out[1] = static_cast<float>(0.5 + 0.3 * std::sin(6 * t + 0.3));           // music, waves
  out[2] = static_cast<float>(0.8 - 0.6 * t);                               // alarm, falls
  out[3] = static_cast<float>(0.1 + 0.05 * std::sin(30 * t));               // dog_bark, low
  out[4] = static_cast<float>(t < 0.5 ? 0.9 * t : 0.9 * (1 - t));           // siren, a bump
  out[5] = 0.2f;                                                            // background
}

// A region of a frame (x0 <= x < x1, y0 <= y < y1).
struct Region {
  const char* name;
  int x0, y0, x1, y1;
};

// Where 640x360 puts things: label box top left, bars on the right, timeline
// at the bottom, and a middle band nothing is drawn on.
const Region kLabels = {"labels", 10, 10, 60, 40};
const Region kBars = {"bars", 460, 10, 630, 120};
const Region kTimeline = {"timeline", 20, 275, 620, 345};
const Region kUntouched = {"untouched", 200, 100, 420, 250};

// Pixels of the region whose colour bytes (all but the x/alpha byte) are not 0.
int changed_pixels(const guint8* data, int stride, const Region& r, int alpha_byte) {
  int changed = 0;
  for (int y = r.y0; y < r.y1; y++)
    for (int x = r.x0; x < r.x1; x++) {
      const guint8* p = data + y * stride + 4 * x;
      for (int b = 0; b < 4; b++)
        if (b != alpha_byte && p[b] != 0) {
          changed++;
          break;
        }
    }
  return changed;
}

GstBuffer* blank_frame(GstHarness* h, int frame, int frames, bool with_meta) {
  const gsize size = static_cast<gsize>(kWidth) * kHeight * 4;
  GstBuffer* buffer = gst_harness_create_buffer(h, size);
  gst_buffer_memset(buffer, 0, 0, size);
  GST_BUFFER_PTS(buffer) = frame * kFrame;
  GST_BUFFER_DURATION(buffer) = kFrame;
  if (with_meta) {
    float scores[kNumClasses];
    scores_at(frame, frames, scores);
    gst_buffer_add_nystream_meta(buffer, "test-model", "test", kClasses, kNumClasses, scores, 0.5f,
                                 frame, frame * kFrame, kFrame);
  }
  return buffer;
}

// Pushes `frames` blank frames (with a result each when with_meta) through an
// nyoverlay configured by `properties` and returns the last output frame.
GstBuffer* render(const char* format, const char* properties, int frames, bool with_meta = true) {
  std::string launch = std::string("nyoverlay ") + properties;
  GstHarness* h = gst_harness_new_parse(launch.c_str());
  gchar* caps = g_strdup_printf("video/x-raw,format=%s,width=%d,height=%d,framerate=30/1", format,
                                kWidth, kHeight);
  gst_harness_set_src_caps_str(h, caps);
  g_free(caps);
  GstBuffer* last = nullptr;
  for (int i = 0; i < frames; i++) {
    EXPECT_EQ(gst_harness_push(h, blank_frame(h, i, frames, with_meta)), GST_FLOW_OK);
    GstBuffer* out = gst_harness_pull(h);
    if (last) gst_buffer_unref(last);
    last = out;
  }
  gst_harness_teardown(h);
  return last;
}

struct Mapped {
  explicit Mapped(GstBuffer* b) : buffer(b) { ok = gst_buffer_map(buffer, &map, GST_MAP_READ); }
  ~Mapped() {
    if (ok) gst_buffer_unmap(buffer, &map);
    gst_buffer_unref(buffer);
  }
  GstBuffer* buffer;
  GstMapInfo map{};
  bool ok = false;
};

TEST(Overlay, DrawsLabelsBarsAndTimelineOnlyWhereTheyBelong) {
  init_gst();
  GstBuffer* out = render("BGRx", "", 90);
  ASSERT_NE(out, nullptr);
  Mapped frame(out);
  ASSERT_TRUE(frame.ok);
  ASSERT_EQ(frame.map.size, static_cast<gsize>(kWidth) * kHeight * 4);
  const int stride = kWidth * 4;
  for (const Region& r : {kLabels, kBars, kTimeline})
    EXPECT_GT(changed_pixels(frame.map.data, stride, r, 3), (r.x1 - r.x0) * (r.y1 - r.y0) / 50)
        << "nothing drawn in the " << r.name << " region";
  EXPECT_EQ(changed_pixels(frame.map.data, stride, kUntouched, 3), 0)
      << "drew in the middle of the picture";

  // For a person: the frame as a PNG in the build directory.
  const std::string png = env_or("NYSTREAM_TEST_OUTPUT", ".") + "/overlay-harness.png";
  cairo_surface_t* surface = cairo_image_surface_create_for_data(frame.map.data, CAIRO_FORMAT_RGB24,
                                                                 kWidth, kHeight, stride);
  EXPECT_EQ(cairo_surface_write_to_png(surface, png.c_str()), CAIRO_STATUS_SUCCESS);
  cairo_surface_destroy(surface);
  std::printf("overlay drawn on a black frame: %s\n", png.c_str());
}

TEST(Overlay, RgbxIsBgrxWithRedAndBlueSwapped) {
  init_gst();
  Mapped bgrx(render("BGRx", "", 30));
  Mapped rgbx(render("RGBx", "", 30));
  ASSERT_TRUE(bgrx.ok && rgbx.ok);
  ASSERT_EQ(bgrx.map.size, rgbx.map.size);
  gsize differences = 0, coloured = 0;
  for (gsize i = 0; i < bgrx.map.size; i += 4) {
    const guint8 *b = bgrx.map.data + i, *r = rgbx.map.data + i;
    differences += b[0] != r[2] || b[1] != r[1] || b[2] != r[0];
    coloured += b[0] != b[2];
  }
  EXPECT_EQ(differences, 0u);
  EXPECT_GT(coloured, 1000u) << "the test needs colour to tell the byte orders apart";
}

TEST(Overlay, ShowPropertiesHideTheirParts) {
  init_gst();
  {
    Mapped frame(render("BGRx", "show-labels=false show-bars=false show-timeline=false", 10));
    ASSERT_TRUE(frame.ok);
    EXPECT_EQ(changed_pixels(frame.map.data, kWidth * 4, {"all", 0, 0, kWidth, kHeight}, 3), 0);
  }
  {
    Mapped frame(render("BGRx", "show-bars=false show-timeline=false", 10));
    ASSERT_TRUE(frame.ok);
    EXPECT_GT(changed_pixels(frame.map.data, kWidth * 4, kLabels, 3), 0);
    EXPECT_EQ(changed_pixels(frame.map.data, kWidth * 4, kBars, 3), 0);
    EXPECT_EQ(changed_pixels(frame.map.data, kWidth * 4, kTimeline, 3), 0);
  }
}

TEST(Overlay, FramesWithoutResultsPassUnchanged) {
  init_gst();
  Mapped frame(render("BGRx", "", 10, /*with_meta=*/false));
  ASSERT_TRUE(frame.ok);
  EXPECT_EQ(changed_pixels(frame.map.data, kWidth * 4, {"all", 0, 0, kWidth, kHeight}, 3), 0);
}

TEST(Overlay, KeepsTheLatestResultUntilAFlush) {
  init_gst();
  GstHarness* h = gst_harness_new("nyoverlay");
  gst_harness_set_src_caps_str(h, "video/x-raw,format=BGRx,width=640,height=360,framerate=30/1");
  auto drawn = [h](int i, bool with_meta) {
    EXPECT_EQ(gst_harness_push(h, blank_frame(h, i, 3, with_meta)), GST_FLOW_OK);
    Mapped frame(gst_harness_pull(h));
    return frame.ok ? changed_pixels(frame.map.data, kWidth * 4, {"all", 0, 0, kWidth, kHeight}, 3)
                    : -1;
  };
  EXPECT_GT(drawn(0, true), 0);
  EXPECT_GT(drawn(1, false), 0) << "a frame between two results shows the latest one";
  EXPECT_TRUE(gst_harness_push_event(h, gst_event_new_flush_start()));
  EXPECT_TRUE(gst_harness_push_event(h, gst_event_new_flush_stop(TRUE)));
  GstSegment segment;
  gst_segment_init(&segment, GST_FORMAT_TIME);
  EXPECT_TRUE(gst_harness_push_event(h, gst_event_new_segment(&segment)));
  EXPECT_EQ(drawn(2, false), 0) << "a flush forgets the results";
  gst_harness_teardown(h);
}

TEST(Overlay, AFontChangeAppliesMidStream) {
  init_gst();
  GstHarness* h = gst_harness_new("nyoverlay");
  gst_harness_set_src_caps_str(h, "video/x-raw,format=BGRx,width=640,height=360,framerate=30/1");
  const Region box = {"label box", 0, 0, 420, 180};
  auto drawn = [h, &box](int i) {
    EXPECT_EQ(gst_harness_push(h, blank_frame(h, i, 10, true)), GST_FLOW_OK);
    Mapped frame(gst_harness_pull(h));
    return frame.ok ? changed_pixels(frame.map.data, kWidth * 4, box, 3) : -1;
  };
  const int small = drawn(0);
  g_object_set(h->element, "font-desc", "Sans Bold 24", nullptr);
  const int large = drawn(1);
  EXPECT_GT(small, 0);
  EXPECT_GT(large, 2 * small) << "the label box did not grow with the font";
  gst_harness_teardown(h);
}

// Runs a pipeline with an appsink named "out" to the end; returns, per video
// frame, its PTS and how many of its pixels are not black, and the warnings
// and errors posted.
struct PipelineRun {
  std::vector<std::pair<GstClockTime, int>> frames;
  std::vector<std::string> warnings, errors;
};

PipelineRun run_pipeline(const std::string& description) {
  PipelineRun run;
  GError* error = nullptr;
  GstElement* pipeline = gst_parse_launch(description.c_str(), &error);
  if (!pipeline) {
    run.errors.push_back(error ? error->message : "parse failed");
    g_clear_error(&error);
    return run;
  }
  GstElement* sink = gst_bin_get_by_name(GST_BIN(pipeline), "out");
  gst_element_set_state(pipeline, GST_STATE_PLAYING);
  while (GstSample* sample = gst_app_sink_try_pull_sample(GST_APP_SINK(sink), 20 * GST_SECOND)) {
    GstBuffer* buffer = gst_sample_get_buffer(sample);
    GstVideoInfo info;
    gst_video_info_from_caps(&info, gst_sample_get_caps(sample));
    GstMapInfo map;
    int changed = -1;
    if (gst_buffer_map(buffer, &map, GST_MAP_READ)) {
      changed = changed_pixels(map.data, GST_VIDEO_INFO_PLANE_STRIDE(&info, 0),
                               {"all", 0, 0, info.width, info.height}, 3);
      gst_buffer_unmap(buffer, &map);
    }
    run.frames.emplace_back(GST_BUFFER_PTS(buffer), changed);
    gst_sample_unref(sample);
  }
  GstBus* bus = gst_element_get_bus(pipeline);
  while (GstMessage* message = gst_bus_timed_pop_filtered(
             bus, 20 * GST_SECOND,
             static_cast<GstMessageType>(GST_MESSAGE_EOS | GST_MESSAGE_ERROR | GST_MESSAGE_WARNING))) {
    const GstMessageType type = GST_MESSAGE_TYPE(message);
    if (type == GST_MESSAGE_ERROR || type == GST_MESSAGE_WARNING) {
      GError* e = nullptr;
      gchar* debug = nullptr;
      if (type == GST_MESSAGE_ERROR)
        gst_message_parse_error(message, &e, &debug);
      else
        gst_message_parse_warning(message, &e, &debug);
      const std::string text = std::string(GST_OBJECT_NAME(GST_MESSAGE_SRC(message))) + ": " +
                               e->message + " (" + (debug ? debug : "") + ")";
      (type == GST_MESSAGE_ERROR ? run.errors : run.warnings).push_back(text);
      g_clear_error(&e);
      g_free(debug);
    }
    gst_message_unref(message);
    if (type != GST_MESSAGE_WARNING) break;
  }
  gst_object_unref(bus);
  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_object_unref(sink);
  gst_object_unref(pipeline);
  return run;
}

TEST(Overlay, FollowsAnAudioDetectorOfThePipeline) {
  init_gst();
  const std::string model = env_or("NYSTREAM_TEST_MODELS", ".") + "/audio-random.safetensors";
  // Both branches run against the clock, as a player would, for 2 s of video.
  const PipelineRun run = run_pipeline(
      "audiotestsrc wave=pink-noise samplesperbuffer=1600 num-buffers=25 ! "
      "audio/x-raw,format=F32LE,rate=16000,channels=1 ! "
      "nyaudiodetect name=det model=\"" + model + "\" post-messages=false ! fakesink sync=true "
      "videotestsrc pattern=black num-buffers=30 ! "
      "video/x-raw,format=BGRx,width=320,height=240,framerate=15/1 ! "
      "nyoverlay detector=det ! appsink name=out sync=true");
  ASSERT_TRUE(run.errors.empty()) << run.errors.front();
  EXPECT_TRUE(run.warnings.empty()) << run.warnings.front();
  ASSERT_EQ(run.frames.size(), 30u);
  int late = 0;
  for (const auto& [pts, changed] : run.frames) {
    if (pts < GST_SECOND) continue;
    late++;
    EXPECT_GT(changed, 1000) << "frame at " << pts / 1e9 << " s not drawn on";
  }
  EXPECT_EQ(late, 15);
}

TEST(Overlay, AMissingDetectorWarnsOnceAndFramesPassUnchanged) {
  init_gst();
  // 2.5 s of frames: the lookup is retried each second but warned about once.
  const PipelineRun run = run_pipeline(
      "videotestsrc pattern=black num-buffers=75 ! "
      "video/x-raw,format=BGRx,width=320,height=240,framerate=30/1 ! "
      "nyoverlay name=ov detector=nosuch ! appsink name=out sync=false");
  ASSERT_TRUE(run.errors.empty()) << run.errors.front();
  ASSERT_EQ(run.warnings.size(), 1u);
  EXPECT_NE(run.warnings[0].find("ov: No element named \"nosuch\""), std::string::npos)
      << run.warnings[0];
  ASSERT_EQ(run.frames.size(), 75u);
  for (const auto& [pts, changed] : run.frames) EXPECT_EQ(changed, 0) << "at " << pts;
}

TEST(Overlay, ANonDetectorNameWarnsAndFramesPassUnchanged) {
  init_gst();
  const PipelineRun run = run_pipeline(
      "videotestsrc name=src pattern=black num-buffers=5 ! "
      "video/x-raw,format=BGRx,width=320,height=240 ! "
      "nyoverlay name=ov detector=src ! appsink name=out sync=false");
  ASSERT_TRUE(run.errors.empty()) << run.errors.front();
  ASSERT_EQ(run.warnings.size(), 1u);
  EXPECT_NE(run.warnings[0].find("not a Nystream detector"), std::string::npos) << run.warnings[0];
  ASSERT_EQ(run.frames.size(), 5u);
  for (const auto& [pts, changed] : run.frames) EXPECT_EQ(changed, 0) << "at " << pts;
}

TEST(Overlay, PropertiesHaveTheirDefaults) {
  init_gst();
  GstElement* overlay = gst_element_factory_make("nyoverlay", nullptr);
  ASSERT_NE(overlay, nullptr);
  gchar *detector = nullptr, *font = nullptr;
  gboolean labels, bars, timeline;
  guint length, max_labels;
  g_object_get(overlay, "detector", &detector, "font-desc", &font, "show-labels", &labels,
               "show-bars", &bars, "show-timeline", &timeline, "timeline-length", &length,
               "max-labels", &max_labels, nullptr);
  EXPECT_EQ(detector, nullptr);
  EXPECT_STREQ(font, "Sans 12");
  EXPECT_TRUE(labels && bars && timeline);
  EXPECT_EQ(length, 100u);
  EXPECT_EQ(max_labels, 3u);
  g_free(detector);
  g_free(font);
  gst_object_unref(overlay);
}

}  // namespace
