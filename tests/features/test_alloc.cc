// No heap allocation per buffer after warm-up, for both extractors, counted by
// interposing glibc's allocator (as tests/core/test_stream.cc does). Its own
// executable: the interposition covers the whole process.
#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <random>

#include "signals.h"

#include "allocation_counter.h"

namespace nystream::testing {
namespace {

// Counts tokens without storing them.
struct CountingSink : TokenSink {
  long tokens = 0;
  float checksum = 0;
  void on_token(const float* f, int dim, const TokenSpan&) override {
    ++tokens;
    checksum += f[dim - 1];
  }
};

TEST(Alloc, CounterSeesAllocations) {
  g_allocations = 0;
  g_counting = true;
  void* volatile p = std::malloc(100);  // volatile: a malloc/free pair may be elided
  g_counting = false;
  std::free(p);
  EXPECT_GE(g_allocations.load(), 1);
}

TEST(Alloc, LogMelPushAllocatesNothingAfterWarmUp) {
  for (const AudioFormat f : {AudioFormat{44100, 2, SampleFormat::kS16}, AudioFormat{16000, 1, SampleFormat::kF32},
                              AudioFormat{48000, 6, SampleFormat::kF32}}) {
    std::string error;
    LogMelParams p;
    auto x = LogMelExtractor::create(p, f, &error);
    ASSERT_TRUE(x) << error;
    const std::vector<float> audio = test_audio(f.rate, f.channels, 20.0);
    const std::vector<std::int16_t> s16 = to_s16(audio);
    const void* data = f.format == SampleFormat::kS16 ? static_cast<const void*>(s16.data()) : audio.data();
    const std::size_t frame_bytes = f.bytes_per_frame(), frames = audio.size() / f.channels;
    std::mt19937 rng(3);
    // 1 sample to 1 s, log-uniform so small buffers are common.
    std::uniform_real_distribution<double> log_size(0.0, std::log(static_cast<double>(f.rate)));
    auto size = [&](std::mt19937& r) { return static_cast<int>(std::exp(log_size(r))); };
    CountingSink sink;
    std::size_t pos = 0;
    auto push_some = [&] {
      const std::size_t n = std::min<std::size_t>(size(rng), frames - pos);
      x->push(static_cast<const std::uint8_t*>(data) + pos * frame_bytes, n * frame_bytes, kNoTimestamp, sink);
      pos += n;
    };
    while (pos < frames / 4) push_some();  // warm-up
    g_allocations = 0;
    g_counting = true;
    long buffers = 0;
    while (pos < frames) push_some(), ++buffers;
    g_counting = false;
    std::printf("log-mel %d Hz x%d: %ld allocations in %ld buffers (%ld tokens)\n", f.rate, f.channels,
                g_allocations.load(), buffers, sink.tokens);
    EXPECT_EQ(g_allocations.load(), 0);
    EXPECT_GT(sink.tokens, 150);
  }
}

TEST(Alloc, VideoPushAllocatesNothingAfterWarmUp) {
  for (PixelFormat pf : {PixelFormat::kI420, PixelFormat::kNV12, PixelFormat::kBGRx, PixelFormat::kRGB,
                         PixelFormat::kGRAY8}) {
    VideoFormat f;
    f.format = pf;
    f.width = 640;
    f.height = 480;
    std::string error;
    VideoMotionParams params;
    // The optional parts too (their buffers are sized at create()).
    params.compensate_camera = params.motion_histograms = pf == PixelFormat::kGRAY8;
    params.long_baseline = pf == PixelFormat::kGRAY8 ? 5 : 0;
    params.motion_blobs = pf == PixelFormat::kGRAY8 ? 3 : 0;
    params.camera_zoom = pf == PixelFormat::kGRAY8;
    params.stem_width = pf == PixelFormat::kGRAY8 ? 32 : 0;
    params.stem_height = pf == PixelFormat::kGRAY8 ? 24 : 0;
    auto x = VideoMotionExtractor::create(params, f, &error);
    ASSERT_TRUE(x) << error;
    std::vector<std::uint8_t> frames(x->frame_bytes() * 4);
    std::mt19937 rng(1);
    for (auto& b : frames) b = static_cast<std::uint8_t>(rng());
    CountingSink sink;
    auto push = [&](int i) { x->push(frames.data() + (i % 4) * x->frame_bytes(), x->frame_bytes(), i * 33'333'333LL, sink); };
    for (int i = 0; i < 10; ++i) push(i);
    g_allocations = 0;
    g_counting = true;
    for (int i = 10; i < 310; ++i) push(i);
    g_counting = false;
    std::printf("video-motion %s 640x480: %ld allocations in 300 frames (%ld tokens)\n", to_string(pf),
                g_allocations.load(), sink.tokens);
    EXPECT_EQ(g_allocations.load(), 0);
    EXPECT_GE(sink.tokens, 99);
  }
}

}  // namespace
}  // namespace nystream::testing
