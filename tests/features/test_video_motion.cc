// video-motion front end: params, direction of motion, timestamp sampling,
// streaming == offline, formats, bad input.
#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <random>

extern "C" {
#include <libavutil/imgutils.h>
#include <libswscale/swscale.h>
}

#include "signals.h"

namespace nystream::testing {
namespace {

constexpr int kW = 320, kH = 240;

std::unique_ptr<VideoMotionExtractor> make(const VideoFormat& f, const VideoMotionParams& p = VideoMotionParams{}) {
  std::string error;
  auto x = VideoMotionExtractor::create(p, f, &error);
  EXPECT_TRUE(x) << error;
  return x;
}

VideoFormat gray(int fps = 30) {
  VideoFormat f;
  f.format = PixelFormat::kGRAY8;
  f.width = kW;
  f.height = kH;
  f.fps_n = fps;
  return f;
}

// Object position (x, y, w, h) at time t seconds.
using Path = std::function<void(double t, double* x, double* y, double* w, double* h)>;

// Renders `seconds` of the path at `fps` as contiguous GRAY8 frames (rows padded to 4).
std::vector<std::uint8_t> render(const Path& path, double seconds, int fps) {
  const int frames = static_cast<int>(seconds * fps);
  std::vector<std::uint8_t> out, frame;
  for (int i = 0; i < frames; ++i) {
    double x, y, w, h;
    path(static_cast<double>(i) / fps, &x, &y, &w, &h);
    draw_scene(frame, kW, kH, x, y, w, h);
    out.insert(out.end(), frame.begin(), frame.end());  // 320 is a multiple of 4
  }
  return out;
}

TokenCollector run(VideoMotionExtractor& x, const std::vector<std::uint8_t>& video, int fps) {
  TokenCollector out;
  const std::size_t fb = x.frame_bytes();
  for (std::size_t i = 0; i * fb < video.size(); ++i) {
    const std::int64_t pts = static_cast<std::int64_t>(i) * 1'000'000'000 / fps;
    EXPECT_EQ(x.push(video.data() + i * fb, fb, pts, out), PushStatus::kOk);
  }
  x.drain(kNoTimestamp, out);
  return out;
}

// Mean of global feature g over tokens [from, to).
double global_mean(const TokenCollector& t, const VideoMotionParams& p, int g, int from, int to) {
  const int offset = p.thumb_width * p.thumb_height + 3 * p.grid_cols * p.grid_rows + g;
  double sum = 0;
  for (int k = from; k < to; ++k) sum += t.data[static_cast<std::size_t>(k) * t.dim + offset];
  return sum / (to - from);
}

enum Global { kEnergy = 0, kCx = 1, kCy = 2, kSx = 3, kSy = 4, kDx = 5, kDy = 6, kDiv = 7, kCurl = 8, kDcx = 9,
              kDcy = 10, kDsx = 11, kDsy = 12, kMoving = 13 };

TEST(VideoMotionParams, DefaultsAndErrors) {
  VideoMotionParams p;
  EXPECT_EQ(p.validate(), "");
  EXPECT_EQ(p.dim(), 16 * 12 + 3 * 48 + 16);
  VideoMotionParams q;
  std::string error;
  ASSERT_TRUE(VideoMotionParams::parse(p.to_json(), &q, &error)) << error;
  EXPECT_EQ(q.to_json(), p.to_json());
  EXPECT_FALSE(VideoMotionParams::parse("{\"grid_cols\": 7}", &q, &error));
  EXPECT_NE(error.find("grid"), std::string::npos) << error;
  EXPECT_FALSE(VideoMotionParams::parse("{\"fps\": 7}", &q, &error));
  EXPECT_NE(error.find("unknown key 'fps'"), std::string::npos) << error;
  EXPECT_FALSE(VideoMotionParams::parse("{\"search_range\": 0}", &q, &error));
}

// What the action classes need: the sign of the motion tells left from right,
// up from down, and expansion from contraction.
TEST(VideoMotion, FeaturesTellTheDirection) {
  const VideoMotionParams p;
  auto x = make(gray());
  struct Case { const char* name; Path path; int feature; int sign; };
  const std::vector<Case> cases = {
      {"walk right", [](double t, double* x, double* y, double* w, double* h) { *x = 20 + 60 * t; *y = 60; *w = 50; *h = 120; }, kDx, +1},
      {"walk left", [](double t, double* x, double* y, double* w, double* h) { *x = 250 - 60 * t; *y = 60; *w = 50; *h = 120; }, kDx, -1},
      {"walk right (centroid)", [](double t, double* x, double* y, double* w, double* h) { *x = 20 + 60 * t; *y = 60; *w = 50; *h = 120; }, kDcx, +1},
      {"jump up", [](double t, double* x, double* y, double* w, double* h) { *x = 130; *y = 110 - 40 * t; *w = 50; *h = 100; }, kDy, -1},
      {"fall down", [](double t, double* x, double* y, double* w, double* h) { *x = 130; *y = 20 + 50 * t; *w = 50; *h = 100; }, kDy, +1},
      {"approach", [](double t, double* x, double* y, double* w, double* h) { const double s = 40 + 40 * t; *x = 160 - s / 2; *y = 120 - s; *w = s; *h = 2 * s; }, kDiv, +1},
      {"recede", [](double t, double* x, double* y, double* w, double* h) { const double s = 110 - 40 * t; *x = 160 - s / 2; *y = 120 - s; *w = s; *h = 2 * s; }, kDiv, -1},
  };
  for (const Case& c : cases) {
    const TokenCollector t = run(*x, render(c.path, 1.5, 30), 30);
    ASSERT_EQ(t.count(), 15) << c.name;
    const double value = global_mean(t, p, c.feature, 2, 14);
    std::printf("%-22s feature %2d mean %+.3f, moving blocks %.2f\n", c.name, c.feature, value,
                global_mean(t, p, kMoving, 2, 14));
    EXPECT_GT(value * c.sign, 0.02) << c.name;
  }
  // Still scene: no motion anywhere.
  const TokenCollector still = run(*x, render([](double, double* x, double* y, double* w, double* h) {
    *x = 100; *y = 50; *w = 60; *h = 120; }, 1.0, 30), 30);
  for (int g : {kEnergy, kDx, kDy, kDiv, kMoving}) EXPECT_EQ(global_mean(still, p, g, 0, still.count()), 0.0) << g;
}

// Waving: the motion's horizontal sign alternates at the waving rate.
TEST(VideoMotion, WavingAlternatesDirection) {
  const VideoMotionParams p;
  auto x = make(gray());
  const TokenCollector t = run(*x, render([](double t, double* x, double* y, double* w, double* h) {
    *x = 140 + 40 * std::sin(2 * M_PI * 1.25 * t); *y = 40; *w = 30; *h = 60; }, 2.0, 30), 30);
  int changes = 0;
  for (int k = 2; k < t.count(); ++k) {
    const double a = global_mean(t, p, kDx, k - 1, k), b = global_mean(t, p, kDx, k, k + 1);
    changes += (a > 0.05 && b < -0.05) || (a < -0.05 && b > 0.05);
  }
  EXPECT_GE(changes, 3);  // 2.5 cycles in 2 s
}

// Frames are chosen by timestamp: the same scene at 10, 20, 30 and 60 fps
// (every rate has a frame at each multiple of 100 ms) gives identical tokens,
// also when timestamps jitter within the tolerance.
TEST(VideoMotion, TokensFollowTimestampsNotFrameCounts) {
  const Path path = [](double t, double* x, double* y, double* w, double* h) {
    *x = 30 + 80 * t; *y = 40 + 10 * t; *w = 40; *h = 100; };
  auto x = make(gray(10));
  const TokenCollector reference = run(*x, render(path, 2.0, 10), 10);
  ASSERT_EQ(reference.count(), 20);
  for (int fps : {20, 30, 60}) {
    auto y = make(gray(fps));
    const TokenCollector t = run(*y, render(path, 2.0, fps), fps);
    ASSERT_EQ(t.count(), reference.count()) << fps;
    EXPECT_EQ(t.data, reference.data) << fps << " fps";
    for (int k = 0; k < t.count(); ++k) EXPECT_EQ(t.spans[k].start_ns, k * 100'000'000LL);
  }
  // Jitter of up to 0.9 ms either way around 30 fps timestamps.
  auto y = make(gray(30));
  const std::vector<std::uint8_t> video = render(path, 2.0, 30);
  TokenCollector jittered;
  std::mt19937 rng(5);
  std::uniform_int_distribution<int> jitter(-900'000, 900'000);
  for (int i = 0; i < 60; ++i) {
    const std::int64_t pts = std::max<std::int64_t>(0, i * 1'000'000'000LL / 30 + (i ? jitter(rng) : 0));
    y->push(video.data() + i * y->frame_bytes(), y->frame_bytes(), pts, jittered);
  }
  y->drain(2'000'000'000, jittered);
  EXPECT_EQ(jittered.data, reference.data);
  // A 5 fps source repeats each frame for two tokens.
  auto slow = make(gray(5));
  const TokenCollector repeated = run(*slow, render(path, 2.0, 5), 5);
  ASSERT_EQ(repeated.count(), 20);
  const int thumb = VideoMotionParams{}.thumb_width * VideoMotionParams{}.thumb_height;
  for (int k = 1; k < 20; k += 2)
    EXPECT_TRUE(std::equal(repeated.data.begin() + k * repeated.dim, repeated.data.begin() + k * repeated.dim + thumb,
                           repeated.data.begin() + (k - 1) * repeated.dim));
}

// Buffers holding any number of frames give the tokens of one frame per buffer.
TEST(VideoMotion, StreamingEqualsOfflineForRandomSplits) {
  const Path path = [](double t, double* x, double* y, double* w, double* h) {
    *x = 250 - 70 * t; *y = 60 + 30 * std::sin(5 * t); *w = 50; *h = 110; };
  const std::vector<std::uint8_t> video = render(path, 3.0, 30);
  auto x = make(gray(30));
  TokenCollector whole;
  ASSERT_EQ(x->push(video.data(), video.size(), 0, whole), PushStatus::kOk);  // all 90 frames at once
  x->drain(kNoTimestamp, whole);
  ASSERT_EQ(whole.count(), 30);
  EXPECT_EQ(whole.data, run(*x, video, 30).data);
  const std::size_t fb = x->frame_bytes(), frames = video.size() / fb;
  for (std::uint32_t seed : {1u, 2u, 3u, 4u}) {
    std::mt19937 rng(seed);
    std::uniform_int_distribution<int> size(1, 17);
    TokenCollector split;
    for (std::size_t i = 0; i < frames;) {
      const std::size_t n = std::min<std::size_t>(size(rng), frames - i);
      // Only the first buffer has a timestamp: the rest follow the frame rate.
      ASSERT_EQ(x->push(video.data() + i * fb, n * fb, i == 0 ? 0 : kNoTimestamp, split), PushStatus::kOk);
      i += n;
    }
    x->drain(kNoTimestamp, split);
    ASSERT_EQ(split.count(), whole.count());
    EXPECT_EQ(split.data, whole.data) << "seed " << seed;
  }
}

// The same picture in every accepted format gives nearly the same descriptor.
TEST(VideoMotion, EveryFormatGivesTheSameDescriptor) {
  const Path path = [](double t, double* x, double* y, double* w, double* h) {
    *x = 40 + 90 * t; *y = 50; *w = 60; *h = 120; };
  const std::vector<std::uint8_t> luma = render(path, 1.0, 30);
  auto ref = make(gray(30));
  const TokenCollector expected = run(*ref, luma, 30);
  for (PixelFormat f : {PixelFormat::kI420, PixelFormat::kYV12, PixelFormat::kNV12, PixelFormat::kNV21,
                        PixelFormat::kRGB, PixelFormat::kBGR, PixelFormat::kRGBx, PixelFormat::kBGRx,
                        PixelFormat::kxRGB, PixelFormat::kxBGR, PixelFormat::kRGBA, PixelFormat::kBGRA,
                        PixelFormat::kARGB, PixelFormat::kABGR}) {
    VideoFormat vf = gray(30);
    vf.format = f;
    auto x = make(vf);
    // Convert each gray frame to the format with swscale (full-range gray in).
    std::vector<std::uint8_t> frame(x->frame_bytes());
    TokenCollector got;
    uint8_t* planes[4];
    int strides[4];
    // YV12 is converted as I420: the extractor reads only luma, so the plane order
    // cannot change the gray image.
    const AVPixelFormat av_map[] = {AV_PIX_FMT_YUV420P, AV_PIX_FMT_YUV420P, AV_PIX_FMT_NV12, AV_PIX_FMT_NV21,
                                    AV_PIX_FMT_RGB24,   AV_PIX_FMT_BGR24,   AV_PIX_FMT_RGB0, AV_PIX_FMT_BGR0,
                                    AV_PIX_FMT_0RGB,    AV_PIX_FMT_0BGR,    AV_PIX_FMT_RGBA, AV_PIX_FMT_BGRA,
                                    AV_PIX_FMT_ARGB,    AV_PIX_FMT_ABGR};
    const AVPixelFormat target = av_map[static_cast<int>(f)];
    SwsContext* to = sws_getContext(kW, kH, AV_PIX_FMT_GRAY8, kW, kH, target, SWS_POINT, nullptr, nullptr, nullptr);
    ASSERT_TRUE(to);
    const int frames = static_cast<int>(luma.size() / (kW * kH));
    for (int i = 0; i < frames; ++i) {
      av_image_fill_arrays(planes, strides, frame.data(), target, kW, kH, 4);
      const uint8_t* src[4] = {luma.data() + static_cast<std::size_t>(i) * kW * kH, nullptr, nullptr, nullptr};
      const int src_strides[4] = {kW, 0, 0, 0};
      sws_scale(to, src, src_strides, 0, kH, planes, strides);
      ASSERT_EQ(x->push(frame.data(), frame.size(), i * 1'000'000'000LL / 30, got), PushStatus::kOk);
    }
    sws_freeContext(to);
    x->drain(kNoTimestamp, got);
    ASSERT_EQ(got.count(), expected.count()) << to_string(f);
    double max_thumb = 0, max_dx = 0;
    const VideoMotionParams p;
    const int thumb = p.thumb_width * p.thumb_height;
    for (int k = 0; k < got.count(); ++k) {
      for (int i = 0; i < thumb; ++i)
        max_thumb = std::max(max_thumb, std::abs(double(got.data[k * got.dim + i] - expected.data[k * got.dim + i])));
    }
    max_dx = std::abs(global_mean(got, p, kDx, 1, got.count()) - global_mean(expected, p, kDx, 1, got.count()));
    EXPECT_LT(max_thumb, 0.03) << to_string(f);  // studio-range YUV and rounding
    EXPECT_LT(max_dx, 0.05) << to_string(f);
  }
}

TEST(VideoMotion, BadInputIsReported) {
  auto x = make(gray());
  TokenCollector out;
  std::vector<std::uint8_t> frame(x->frame_bytes(), 128);
  EXPECT_EQ(x->push(frame.data(), 0, 0, out), PushStatus::kEmpty);
  EXPECT_EQ(x->push(nullptr, frame.size(), 0, out), PushStatus::kEmpty);
  EXPECT_EQ(x->push(frame.data(), frame.size() - 1, 0, out), PushStatus::kBadSize);
  EXPECT_EQ(x->push(frame.data(), frame.size() + 7, 0, out), PushStatus::kBadSize);
  EXPECT_EQ(x->push(frame.data(), frame.size(), 1'000'000'000, out), PushStatus::kOk);
  EXPECT_EQ(x->push(frame.data(), frame.size(), 1'000'000'000, out), PushStatus::kOutOfOrder);
  EXPECT_EQ(x->push(frame.data(), frame.size(), 900'000'000, out), PushStatus::kOutOfOrder);
  EXPECT_EQ(x->push(frame.data(), frame.size(), 1'100'000'000, out), PushStatus::kOk);
  ASSERT_EQ(out.count(), 1);
  EXPECT_EQ(out.spans[0].start_ns, 1'000'000'000);
  // A size change is a configure(): reset, and frames of the old size are refused.
  VideoFormat bigger = gray();
  bigger.width = 640;
  bigger.height = 480;
  bigger.format = PixelFormat::kI420;
  EXPECT_EQ(x->configure(bigger), "");
  EXPECT_EQ(x->push(frame.data(), frame.size(), 2'000'000'000, out), PushStatus::kBadSize);
  EXPECT_EQ(x->tokens(), 0);
  std::string error;
  VideoFormat bad = gray();
  bad.width = 0;
  EXPECT_FALSE(VideoMotionExtractor::create(VideoMotionParams{}, bad, &error));
  EXPECT_NE(error.find("size"), std::string::npos) << error;
  EXPECT_NE(x->configure(bad), "");
  EXPECT_EQ(x->push(frame.data(), frame.size(), 0, out), PushStatus::kNotConfigured);
  bad = gray();
  bad.ffmpeg_pixel_format = 100000;
  EXPECT_FALSE(VideoMotionExtractor::create(VideoMotionParams{}, bad, &error));
  // Tiny frames work (scaled up to the analysis size).
  VideoFormat tiny = gray();
  tiny.width = 3;
  tiny.height = 2;
  auto t = make(tiny);
  std::vector<std::uint8_t> small(t->frame_bytes(), 9);
  EXPECT_EQ(t->push(small.data(), small.size(), 0, out), PushStatus::kOk);
}

}  // namespace
}  // namespace nystream::testing
