// video-motion front end: params, direction of motion, timestamp sampling,
// streaming == offline, formats, bad input.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
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
  // The optional parts: off by default, written back, booleans only.
  EXPECT_NE(p.to_json().find("\"motion_histograms\":false"), std::string::npos) << p.to_json();
  EXPECT_NE(p.to_json().find("\"compensate_camera\":false"), std::string::npos) << p.to_json();
  ASSERT_TRUE(VideoMotionParams::parse("{\"motion_histograms\": true}", &q, &error)) << error;
  EXPECT_EQ(q.dim(), p.dim() + VideoMotionParams::kHistogramFeatures);
  ASSERT_TRUE(VideoMotionParams::parse("{\"compensate_camera\": true, \"motion_histograms\": true}", &q, &error))
      << error;
  EXPECT_EQ(q.dim(), p.dim() + VideoMotionParams::kCameraFeatures + VideoMotionParams::kHistogramFeatures);
  EXPECT_EQ(VideoMotionParams::kHistogramFeatures, 47);
  VideoMotionParams r;
  ASSERT_TRUE(VideoMotionParams::parse(q.to_json(), &r, &error)) << error;
  EXPECT_TRUE(r.compensate_camera && r.motion_histograms);
  EXPECT_EQ(r.to_json(), q.to_json());
  EXPECT_FALSE(VideoMotionParams::parse("{\"motion_histograms\": 1}", &q, &error));
  EXPECT_NE(error.find("true or false"), std::string::npos) << error;
  EXPECT_FALSE(VideoMotionParams::parse("{\"motion_histogram\": true}", &q, &error));
  EXPECT_NE(error.find("unknown key"), std::string::npos) << error;
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
  VideoMotionParams extended;
  extended.compensate_camera = extended.motion_histograms = true;
  extended.stem_width = 16, extended.stem_height = 12;
  for (const VideoMotionParams& params : {VideoMotionParams{}, extended}) {
  auto x = make(gray(30), params);
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

// --- compensate_camera and motion_histograms --------------------------------

// A smooth, non-periodic texture (world coordinates, full-resolution pixels).
double texture(double X, double Y) {
  return 120 + 35 * std::sin(0.061 * X + 0.8 * std::sin(0.023 * Y)) + 30 * std::cos(0.052 * Y - 0.6 * std::sin(0.019 * X)) +
         20 * std::sin(0.037 * (X + Y));
}

// Frames whose pixel (row r, column c) at time t is pixel(t, r, c).
std::vector<std::uint8_t> render_fn(const std::function<double(double, int, int)>& pixel, double seconds, int fps) {
  const int frames = static_cast<int>(seconds * fps);
  std::vector<std::uint8_t> out(static_cast<std::size_t>(frames) * kW * kH);
  for (int i = 0; i < frames; ++i)
    for (int r = 0; r < kH; ++r)
      for (int c = 0; c < kW; ++c)
        out[(static_cast<std::size_t>(i) * kH + r) * kW + c] =
            static_cast<std::uint8_t>(std::clamp(pixel(static_cast<double>(i) / fps, r, c) + 0.5, 0.0, 255.0));
  return out;
}

VideoMotionParams extended(bool compensate) {
  VideoMotionParams p;
  p.compensate_camera = compensate;
  p.motion_histograms = true;
  return p;
}

// Offsets of the optional parts.
int camera_offset(const VideoMotionParams& p) {
  return p.thumb_width * p.thumb_height + 3 * p.grid_cols * p.grid_rows + VideoMotionParams::kGlobalFeatures;
}
int hist_offset(const VideoMotionParams& p) {
  return camera_offset(p) + (p.compensate_camera ? VideoMotionParams::kCameraFeatures : 0);
}
enum Hist { kUpper = 0, kLower = 17, kHMoving = 34, kHVx = 35, kHVy = 36, kHDvx = 37, kHDvy = 38, kHAy = 39,
            kHSx = 40, kHSy = 41, kHDiv = 44, kHCurl = 45 };

// Mean of descriptor value `index` over tokens [from, to).
double value_mean(const TokenCollector& t, int index, int from, int to) {
  double sum = 0;
  for (int k = from; k < to; ++k) sum += t.data[static_cast<std::size_t>(k) * t.dim + index];
  return sum / (to - from);
}
// Weight of a half's histogram in direction bin d (0 right, 2 down, 4 left, 6 up), both speeds.
double direction(const TokenCollector& t, const VideoMotionParams& p, int half, int d, int from, int to) {
  return value_mean(t, hist_offset(p) + half + 1 + d, from, to) + value_mean(t, hist_offset(p) + half + 9 + d, from, to);
}
double moving_weight(const TokenCollector& t, const VideoMotionParams& p, int half, int from, int to) {
  double sum = 0;
  for (int b = 1; b < VideoMotionParams::kHistogramBins; ++b) sum += value_mean(t, hist_offset(p) + half + b, from, to);
  return sum;
}

// The optional parts only append: without compensation the version-1 values
// are unchanged, bit for bit.
TEST(VideoMotion, HistogramsAppendToTheVersion1Descriptor) {
  const Path path = [](double t, double* x, double* y, double* w, double* h) {
    *x = 30 + 80 * t; *y = 40 + 10 * t; *w = 40; *h = 100; };
  const std::vector<std::uint8_t> video = render(path, 2.0, 30);
  auto plain = make(gray(30));
  const VideoMotionParams p = extended(false);
  auto x = make(gray(30), p);
  EXPECT_EQ(x->dim(), plain->dim() + VideoMotionParams::kHistogramFeatures);
  const TokenCollector a = run(*plain, video, 30), b = run(*x, video, 30);
  ASSERT_EQ(a.count(), b.count());
  for (int k = 0; k < a.count(); ++k)
    ASSERT_TRUE(std::equal(a.data.begin() + k * a.dim, a.data.begin() + (k + 1) * a.dim, b.data.begin() + k * b.dim))
        << "token " << k;
  // Walking right: the motion is in the "right" bins and the mean is positive.
  EXPECT_GT(value_mean(b, hist_offset(p) + kHVx, 2, 18), 0.1);
  EXPECT_GT(direction(b, p, kUpper, 0, 2, 18) + direction(b, p, kLower, 0, 2, 18),
            5 * (direction(b, p, kUpper, 4, 2, 18) + direction(b, p, kLower, 4, 2, 18)));
}

// The camera pans over a textured, static scene (an object standing still in
// it): with compensation the shift is found and almost nothing moves.
TEST(VideoMotion, CompensationCancelsAPanningCamera) {
  // 100 px/s right and 40 px/s down in the world: the image moves left and up,
  // 2 and 0.8 analysis pixels per token.
  const auto pixel = [](double t, int r, int c) {
    const double X = c + 100 * t, Y = r + 40 * t;
    if (X > 150 && X < 200 && Y > 60 && Y < 180) return 230.0 - 0.5 * texture(3 * X, Y);  // the object
    return texture(X, Y);
  };
  const std::vector<std::uint8_t> video = render_fn(pixel, 2.0, 30);
  const VideoMotionParams off = extended(false), on = extended(true);
  auto a = make(gray(30), off);
  auto b = make(gray(30), on);
  const TokenCollector raw = run(*a, video, 30), comp = run(*b, video, 30);
  ASSERT_EQ(comp.count(), 20);
  const int cam = camera_offset(on);
  const double shift_x = value_mean(comp, cam, 1, 20) * on.search_range;
  const double shift_y = value_mean(comp, cam + 1, 1, 20) * on.search_range;
  const double raw_moving = value_mean(raw, hist_offset(off) + kHMoving, 1, 20);
  const double comp_moving = value_mean(comp, hist_offset(on) + kHMoving, 1, 20);
  const double raw_energy = global_mean(raw, off, kEnergy, 1, 20), comp_energy = global_mean(comp, on, kEnergy, 1, 20);
  std::printf("camera shift (%+.2f, %+.2f) px/token; moving blocks %.2f -> %.2f; energy %.4f -> %.4f; "
              "grid dx %+.3f -> %+.3f\n", shift_x, shift_y, raw_moving, comp_moving, raw_energy, comp_energy,
              global_mean(raw, off, kDx, 1, 20), global_mean(comp, on, kDx, 1, 20));
  EXPECT_NEAR(shift_x, -2.0, 0.25);
  EXPECT_NEAR(shift_y, -0.8, 0.25);
  EXPECT_GT(raw_moving, 0.5);   // uncompensated, the whole picture moves
  EXPECT_LT(comp_moving, 0.1);  // what is left: bilinear interpolation of the fine texture
  EXPECT_LT(comp_energy, 0.25 * raw_energy);
  EXPECT_LT(std::abs(global_mean(comp, on, kDx, 1, 20)), 0.05);
  EXPECT_LT(std::abs(value_mean(comp, hist_offset(on) + kHVx, 1, 20)), 0.1);
  // A brightness drift (4% per token) is part of the camera too.
  auto c = make(gray(30), on);
  const TokenCollector dim_down = run(*c, render_fn([&](double t, int r, int col) {
    return pixel(t, r, col) * (1.0 - 0.4 * t); }, 1.0, 30), 30);
  EXPECT_LT(value_mean(dim_down, cam + 2, 1, 10), -0.02);
  EXPECT_LT(value_mean(dim_down, hist_offset(on) + kHMoving, 1, 10), 0.05);
}

// The camera zooms in (3 % a token) while panning over a static textured
// scene: the shift alone leaves the zoom's radial motion everywhere; with
// camera_zoom it is fitted and almost nothing moves.
TEST(VideoMotion, CameraZoomCancelsAZoomingCamera) {
  const auto pixel = [](double t, int r, int c) {
    const double z = std::exp(0.3 * t);
    return texture(3 * (200 + 10 * t + (c - 160) / z), 3 * (120 + (r - 120) / z));
  };
  const std::vector<std::uint8_t> video = render_fn(pixel, 2.0, 30);
  VideoMotionParams shift = extended(true);
  shift.analysis_width = 128, shift.analysis_height = 96, shift.search_range = 8, shift.motion_threshold = 6;
  VideoMotionParams zoom = shift;
  zoom.camera_zoom = true;
  ASSERT_EQ(zoom.dim(), shift.dim() + 1);
  auto a = make(gray(30), shift);
  auto b = make(gray(30), zoom);
  const TokenCollector t_shift = run(*a, video, 30), t_zoom = run(*b, video, 30);
  const int cam = camera_offset(zoom);
  const double magnification = value_mean(t_zoom, cam + 3, 1, 20);
  const double moving_shift = value_mean(t_shift, hist_offset(shift) + kHMoving, 1, 20);
  const double moving_zoom = value_mean(t_zoom, hist_offset(zoom) + kHMoving, 1, 20);
  const double div_shift = value_mean(t_shift, hist_offset(shift) + kHDiv, 1, 20);
  const double div_zoom = value_mean(t_zoom, hist_offset(zoom) + kHDiv, 1, 20);
  std::printf("ln zoom per token %.4f (true 0.03); moving blocks %.2f -> %.2f, divergence %+.3f -> %+.3f\n",
              magnification, moving_shift, moving_zoom, div_shift, div_zoom);
  EXPECT_NEAR(magnification, 0.03, 0.006);
  EXPECT_GT(moving_shift, 0.3);  // shift-only compensation leaves the zoom moving
  EXPECT_LT(moving_zoom, 0.25 * moving_shift);
  EXPECT_GT(div_shift, 0.015);   // ... and it looks like an approach
  EXPECT_LT(std::abs(div_zoom), 0.3 * div_shift);
  std::string error;
  VideoMotionParams q;
  EXPECT_FALSE(VideoMotionParams::parse("{\"camera_zoom\": true}", &q, &error));
  EXPECT_NE(error.find("needs compensate_camera"), std::string::npos) << error;
}

// An object walking right while the camera follows it faster: in the picture
// it stands still and the background runs left; relative to the scene it
// walks right, which is what the compensated histograms report.
TEST(VideoMotion, CompensatedHistogramsShowTheRelativeMotion) {
  const auto pixel = [](double t, int r, int c) {
    const double X = c + 100 * t, Y = r;  // camera: 2 analysis pixels per token to the right
    const double ox = 130 + 60 * t;        // the object's world x: walks right, slower
    const double u = X - ox;
    if (u > 0 && u < 60 && Y > 60 && Y < 190) return 235.0 - 0.6 * texture(2 * u + 500, 1.5 * Y);
    return texture(X, Y);
  };
  const std::vector<std::uint8_t> video = render_fn(pixel, 2.0, 30);
  const VideoMotionParams off = extended(false), on = extended(true);
  auto a = make(gray(30), off);
  auto b = make(gray(30), on);
  const TokenCollector raw = run(*a, video, 30), comp = run(*b, video, 30);
  const double right = direction(comp, on, kUpper, 0, 2, 19) + direction(comp, on, kLower, 0, 2, 19);
  const double left = direction(comp, on, kUpper, 4, 2, 19) + direction(comp, on, kLower, 4, 2, 19);
  const double raw_left = direction(raw, off, kUpper, 4, 2, 19) + direction(raw, off, kLower, 4, 2, 19);
  const double vx = value_mean(comp, hist_offset(on) + kHVx, 2, 19) * on.search_range;
  std::printf("compensated: right %.3f left %.3f, mean vx %+.2f px/token (expected +1.2); uncompensated left %.3f\n",
              right, left, vx, raw_left);
  EXPECT_GT(right, 0.4);
  EXPECT_GT(right, 5 * left);
  EXPECT_NEAR(vx, 1.0, 0.5);  // blocks on the object's edges see less
  EXPECT_GT(raw_left, 0.4);  // without compensation the background dominates, moving left
}

// Swaying (the top of the body moves, the feet stay: a shear about the feet,
// like the data set's "wave") against walking (the whole body translates):
// the upper part moves faster than the lower one only when swaying.
TEST(VideoMotion, UpperAndLowerHistogramsTellSwayingFromWalking) {
  const auto scene = [](double shift_top, double shift_all) {
    return [=](int r, int c) {
      const double top = 60, bottom = 200, height = bottom - top;
      if (r >= top && r < bottom) {
        const double lift = (bottom - r) / height;  // 1 at the top, 0 at the feet
        const double u = c - 130 - shift_all - shift_top * lift;
        if (u > 0 && u < 50) return 225.0 - 0.5 * texture(3 * u + 900, 2 * r);
      }
      return 40.0 + ((r / 16 + c / 16) % 2) * 10;
    };
  };
  const VideoMotionParams p = extended(true);
  auto x = make(gray(30), p);
  const TokenCollector sway = run(*x, render_fn([&](double t, int r, int c) {
    return scene(20 * std::sin(2 * M_PI * 1.5 * t), 0)(r, c); }, 3.0, 30), 30);
  const TokenCollector walk = run(*x, render_fn([&](double t, int r, int c) {
    return scene(0, 60 * t)(r, c); }, 3.0, 30), 30);
  auto fast_share = [&](const TokenCollector& t, int half) {
    double fast = 0;
    for (int b = 9; b < 17; ++b) fast += value_mean(t, hist_offset(p) + half + b, 2, 28);
    return fast / std::max(1e-9, moving_weight(t, p, half, 2, 28));
  };
  double sway_dvx = 0, walk_dvx = 0;
  for (int k = 2; k < 28; ++k) {
    sway_dvx += std::abs(value_mean(sway, hist_offset(p) + kHDvx, k, k + 1)) / 26;
    walk_dvx += std::abs(value_mean(walk, hist_offset(p) + kHDvx, k, k + 1)) / 26;
  }
  const double sway_still_lower = value_mean(sway, hist_offset(p) + kLower, 2, 28);
  const double walk_still_lower = value_mean(walk, hist_offset(p) + kLower, 2, 28);
  std::printf("sway: |upper-lower vx| %.3f, fast share upper %.2f lower %.2f, still lower %.3f\n", sway_dvx,
              fast_share(sway, kUpper), fast_share(sway, kLower), sway_still_lower);
  std::printf("walk: |upper-lower vx| %.3f, fast share upper %.2f lower %.2f, still lower %.3f\n", walk_dvx,
              fast_share(walk, kUpper), fast_share(walk, kLower), walk_still_lower);
  EXPECT_GT(sway_dvx, 2 * walk_dvx + 0.05);
  EXPECT_GT(fast_share(sway, kUpper) - fast_share(sway, kLower), 0.2);
  EXPECT_LT(std::abs(fast_share(walk, kUpper) - fast_share(walk, kLower)), 0.2);
  // Walking moves right in both halves; swaying alternates (both directions).
  EXPECT_GT(direction(walk, p, kUpper, 0, 2, 28), 5 * direction(walk, p, kUpper, 4, 2, 28));
  EXPECT_GT(direction(walk, p, kLower, 0, 2, 28), 5 * direction(walk, p, kLower, 4, 2, 28));
  const double sr = direction(sway, p, kUpper, 0, 2, 28), sl = direction(sway, p, kUpper, 4, 2, 28);
  EXPECT_GT(std::min(sr, sl), 0.3 * std::max(sr, sl));
}

// An actor growing by 2% a token (approach) or shrinking (recede) moves its
// edges by a fraction of an analysis pixel per token: too little for the
// token-to-token divergence to say which. Against the frame long_baseline
// tokens earlier the edges have moved pixels.
TEST(VideoMotion, LongBaselineSeesSlowScaleChange) {
  const auto scene = [](double growth_per_s) {
    return [=](double t, int r, int c) {
      const double s = std::exp(growth_per_s * t);  // scale about the feet
      const double u = (c - 160) / s, v = (200 - r) / s;  // body coordinates: 0..140 up, +-25 across
      if (v > 0 && v < 140 && std::abs(u) < 25) return 225.0 - 0.5 * texture(3 * u + 900, 2 * v);
      return 40.0 + ((r / 16 + c / 16) % 2) * 10;
    };
  };
  VideoMotionParams p = extended(true);
  VideoMotionParams lp = p;
  lp.long_baseline = 5;
  EXPECT_EQ(lp.dim(), p.dim() + VideoMotionParams::kCameraFeatures + VideoMotionParams::kHistogramFeatures);
  const int long_hist = p.dim() + VideoMotionParams::kCameraFeatures;
  auto x = make(gray(30), lp);
  auto plain = make(gray(30), p);
  double short_div[2], long_div[2];
  for (int i = 0; i < 2; ++i) {
    const std::vector<std::uint8_t> video = render_fn(scene(i == 0 ? 0.2 : -0.2), 3.0, 30);
    const TokenCollector t = run(*x, video, 30), ref = run(*plain, video, 30);
    ASSERT_EQ(t.count(), 30);
    // The parts before it are the descriptor without long_baseline, bit for bit;
    // the long part is zero until a frame long_baseline tokens earlier exists.
    for (int k = 0; k < t.count(); ++k) {
      ASSERT_TRUE(std::equal(ref.data.begin() + k * ref.dim, ref.data.begin() + (k + 1) * ref.dim,
                             t.data.begin() + k * t.dim)) << "token " << k;
      if (k < lp.long_baseline) {
        for (int j = p.dim(); j < lp.dim(); ++j) ASSERT_EQ(t.data[k * t.dim + j], 0.0f) << "token " << k;
      }
    }
    short_div[i] = value_mean(t, hist_offset(p) + kHDiv, 6, 30);
    long_div[i] = value_mean(t, long_hist + kHDiv, 6, 30);
  }
  std::printf("divergence per token, approach / recede: token to token %+.4f / %+.4f, over 5 tokens %+.4f / %+.4f "
              "(true: %+.3f / %+.3f per token, %+.3f / %+.3f over 5)\n", short_div[0], short_div[1], long_div[0],
              long_div[1], std::exp(0.02) - 1, std::exp(-0.02) - 1, std::exp(0.1) - 1, std::exp(-0.1) - 1);
  // The 5-token scale change (+10.5% / -9.5%), within half of it.
  EXPECT_NEAR(long_div[0], std::exp(0.1) - 1, 0.05);
  EXPECT_NEAR(long_div[1], std::exp(-0.1) - 1, 0.05);
  VideoMotionParams q;
  std::string error;
  EXPECT_FALSE(VideoMotionParams::parse("{\"long_baseline\": 5}", &q, &error));
  EXPECT_NE(error.find("needs motion_histograms"), std::string::npos) << error;
  ASSERT_TRUE(VideoMotionParams::parse(lp.to_json(), &q, &error)) << error;
  EXPECT_EQ(q.long_baseline, 5);
}

// --- motion_blobs: each blob of coherent motion on its own --------------------

enum BlobValue { kBVx = 4, kBSpreadV = 13 };  // mean motion x, spread of the vectors

// An actor walks right over a "played video": two halves of the background
// whose content flows up and down (water, a crowd). Pooled, the histograms see
// mostly vertical motion and a diluted mean; the heaviest blob is the actor,
// moving right at its speed.
TEST(VideoMotion, BlobsSeparateAnActorFromAMovingBackground) {
  const auto pixel = [](double t, int r, int c) {
    const double ax = 40 + 80 * t;  // the actor's left edge: 80 px/s, 3.2 analysis pixels per token
    if (c > ax && c < ax + 50 && r > 70 && r < 190) return 235.0 - 0.6 * texture(2 * (c - ax) + 500, 1.5 * r);
    const double flow = c < kW / 2 ? 60 * t : -60 * t;  // left half up, right half down
    return texture(c + (c < kW / 2 ? 0 : 700), r + flow);
  };
  const std::vector<std::uint8_t> video = render_fn(pixel, 2.0, 30);
  VideoMotionParams p = extended(true);  // at the shipped model's analysis size
  p.analysis_width = 128, p.analysis_height = 96, p.search_range = 8, p.motion_threshold = 6;
  p.thumb_width = p.thumb_height = p.grid_cols = p.grid_rows = 1;
  VideoMotionParams bp = p;
  bp.motion_blobs = 4;
  ASSERT_EQ(bp.dim(), p.dim() + 4 * VideoMotionParams::kBlobFeatures);
  auto plain = make(gray(30), p);
  auto x = make(gray(30), bp);
  const TokenCollector ref = run(*plain, video, 30), t = run(*x, video, 30);
  ASSERT_EQ(t.count(), 20);
  const int blobs = p.dim();
  int found = 0;
  double actor_vx = 0, actor_spread = 0;
  for (int k = 0; k < t.count(); ++k) {
    // The values before the part are the descriptor without it, bit for bit.
    ASSERT_TRUE(std::equal(ref.data.begin() + k * ref.dim, ref.data.begin() + (k + 1) * ref.dim,
                           t.data.begin() + k * t.dim)) << "token " << k;
    if (k < 2) continue;
    const float* heaviest = t.data.data() + k * t.dim + blobs;
    if (heaviest[kBVx] * bp.search_range > 1.6) {  // the actor, moving right
      ++found;
      actor_vx += heaviest[kBVx] * bp.search_range;
      actor_spread += heaviest[kBSpreadV] * bp.search_range;
    }
  }
  const double pooled_vx = value_mean(t, hist_offset(bp) + kHVx, 2, 20) * bp.search_range;
  actor_vx /= std::max(found, 1);
  actor_spread /= std::max(found, 1);
  std::printf("heaviest blob the actor in %d of 18 tokens: vx %+.2f px/token (true +3.20), vector spread %.2f; pooled vx %+.2f\n",
              found, actor_vx, actor_spread, pooled_vx);
  EXPECT_GE(found, 16);
  EXPECT_NEAR(actor_vx, 3.2, 0.6);
  EXPECT_LT(actor_spread, 0.35 * actor_vx);  // its edge blocks hold some of the flow
  EXPECT_LT(pooled_vx, 0.5 * actor_vx);  // what the pooled part reports
  // An empty slot is zero; the part is zero on the first token.
  for (int j = blobs; j < bp.dim(); ++j) EXPECT_EQ(t.data[j], 0.0f);
  VideoMotionParams q;
  std::string error;
  EXPECT_FALSE(VideoMotionParams::parse("{\"motion_blobs\": 3}", &q, &error));
  EXPECT_NE(error.find("needs motion_histograms"), std::string::npos) << error;
  EXPECT_FALSE(VideoMotionParams::parse("{\"motion_histograms\": true, \"motion_blobs\": 9}", &q, &error));
  ASSERT_TRUE(VideoMotionParams::parse(bp.to_json(), &q, &error)) << error;
  EXPECT_EQ(q.motion_blobs, 4);
  // With long_baseline the part is measured again against the older frame.
  bp.long_baseline = 5;
  EXPECT_EQ(bp.long_dim(), VideoMotionParams::kCameraFeatures + VideoMotionParams::kHistogramFeatures +
                               4 * VideoMotionParams::kBlobFeatures);
}

// --- stem_width / stem_height: the input of a model's convolutional stem ------

// A frame at the analysis size (64 x 48, so the scaling is a copy): pixel
// (x, y) of frame i.
std::uint8_t known_pixel(int i, int x, int y) { return static_cast<std::uint8_t>((7 * x + 13 * y + 40 * i) % 256); }

TEST(VideoMotion, StemPartIsTheFrameAndItsDifference) {
  VideoMotionParams base = extended(true);
  base.long_baseline = 2;  // the stem part comes after the long part
  VideoMotionParams p = base;
  p.stem_width = 32, p.stem_height = 24;
  const int n = 32 * 24;
  ASSERT_EQ(p.validate(), "");
  EXPECT_EQ(p.stem_dim(), 2 * n);
  EXPECT_EQ(p.dim(), base.dim() + 2 * n);
  VideoFormat f = gray(10);
  f.width = p.analysis_width, f.height = p.analysis_height;
  auto x = make(f, p);
  auto plain = make(f, base);
  std::vector<std::uint8_t> frame(x->frame_bytes());
  TokenCollector t, ref;
  // Five tokens, a drain (a reset: the next token has no previous frame), two more.
  const int frames = 7;
  for (int i = 0; i < frames; ++i) {
    for (int y = 0; y < f.height; ++y)
      for (int c = 0; c < f.width; ++c) frame[static_cast<std::size_t>(y) * f.width + c] = known_pixel(i, c, y);
    const std::int64_t pts = (i < 5 ? i : i + 10) * 100'000'000LL;
    ASSERT_EQ(x->push(frame.data(), frame.size(), pts, t), PushStatus::kOk);
    ASSERT_EQ(plain->push(frame.data(), frame.size(), pts, ref), PushStatus::kOk);
    if (i == 4) x->drain(kNoTimestamp, t), plain->drain(kNoTimestamp, ref);
  }
  x->drain(kNoTimestamp, t);
  plain->drain(kNoTimestamp, ref);
  ASSERT_EQ(t.count(), frames);
  ASSERT_EQ(t.dim, p.dim());
  // 2 x 2 box means of frame i, 0..1.
  auto expected = [&](int i, int sx, int sy) {
    int sum = 0;
    for (int y = 2 * sy; y < 2 * sy + 2; ++y)
      for (int c = 2 * sx; c < 2 * sx + 2; ++c) sum += known_pixel(i, c, y);
    return sum / (4 * 255.0);
  };
  double worst = 0;
  for (int k = 0; k < frames; ++k) {
    const float* token = t.data.data() + static_cast<std::size_t>(k) * t.dim;
    // Everything before the stem part is the descriptor without it, bit for bit.
    ASSERT_TRUE(std::equal(token, token + base.dim(), ref.data.begin() + k * ref.dim)) << "token " << k;
    const float* image = token + base.dim();
    const float* diff = image + n;
    const bool first = k == 0 || k == 5;
    for (int sy = 0; sy < 24; ++sy)
      for (int sx = 0; sx < 32; ++sx) {
        const int i = sy * 32 + sx;
        worst = std::max(worst, std::abs(image[i] - expected(k, sx, sy)));
        if (first)
          ASSERT_EQ(diff[i], 0.0f) << "token " << k;
        else
          worst = std::max(worst, std::abs(diff[i] - (expected(k, sx, sy) - expected(k - 1, sx, sy))));
      }
  }
  EXPECT_LT(worst, 1e-6);
}

// At any frame size: the stem image is a box downsample of the analysis image,
// as the thumbnail is; 2 x 2 means of a 32 x 24 stem image are the 16 x 12 thumbnail.
TEST(VideoMotion, StemImageAgreesWithTheThumbnail) {
  VideoMotionParams p;
  p.stem_width = 32, p.stem_height = 24;
  auto x = make(gray(30), p);
  const TokenCollector t = run(*x, render([](double t, double* x, double* y, double* w, double* h) {
    *x = 40 + 90 * t; *y = 50; *w = 60; *h = 120; }, 1.0, 30), 30);
  ASSERT_EQ(t.count(), 10);
  const VideoMotionParams base;
  double worst = 0, motion = 0;
  for (int k = 0; k < t.count(); ++k) {
    const float* token = t.data.data() + static_cast<std::size_t>(k) * t.dim;
    const float* image = token + base.dim();
    for (int ty = 0; ty < 12; ++ty)
      for (int tx = 0; tx < 16; ++tx) {
        const double mean = (image[2 * ty * 32 + 2 * tx] + image[2 * ty * 32 + 2 * tx + 1] +
                             image[(2 * ty + 1) * 32 + 2 * tx] + image[(2 * ty + 1) * 32 + 2 * tx + 1]) / 4;
        worst = std::max(worst, std::abs(mean - token[ty * 16 + tx]));
      }
    for (int i = 0; i < 32 * 24; ++i) motion = std::max(motion, double(std::abs(image[32 * 24 + i])));
  }
  EXPECT_LT(worst, 1e-6);
  EXPECT_GT(motion, 0.1);  // the moving figure shows in the difference
}

TEST(VideoMotionParams, StemSize) {
  VideoMotionParams q;
  std::string error;
  ASSERT_TRUE(VideoMotionParams::parse("{\"stem_width\": 16, \"stem_height\": 12}", &q, &error)) << error;
  EXPECT_EQ(q.dim(), VideoMotionParams{}.dim() + 2 * 16 * 12);
  VideoMotionParams r;
  ASSERT_TRUE(VideoMotionParams::parse(q.to_json(), &r, &error)) << error;
  EXPECT_EQ(r.to_json(), q.to_json());
  EXPECT_NE(VideoMotionParams{}.to_json().find("\"stem_width\":0"), std::string::npos);
  EXPECT_FALSE(VideoMotionParams::parse("{\"stem_width\": 16}", &q, &error));
  EXPECT_NE(error.find("both"), std::string::npos) << error;
  EXPECT_FALSE(VideoMotionParams::parse("{\"stem_width\": 24, \"stem_height\": 12}", &q, &error));
  EXPECT_NE(error.find("multiple of the stem size"), std::string::npos) << error;
  EXPECT_FALSE(VideoMotionParams::parse("{\"stem_width\": 128, \"stem_height\": 12}", &q, &error));
  EXPECT_NE(error.find("stem_width"), std::string::npos) << error;
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
