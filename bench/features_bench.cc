// nystream-features-bench: the audio and video front ends on one core.
// Targets (feature-extraction issue): log-mel >= 1000x real time, video-motion
// 640x480 at 30 fps >= 300 frames/s. Reports "x real-time" and frames/s, then a
// summary against the targets (informational: the exit status does not depend on them).
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdio>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "nystream/features/log_mel.h"
#include "nystream/features/video_motion.h"
#include "nystream/model_file.h"

namespace {

struct NullSink : nystream::TokenSink {
  long tokens = 0;
  void on_token(const float* f, int dim, const nystream::TokenSpan&) override {
    benchmark::DoNotOptimize(f[dim - 1]);
    ++tokens;
  }
};

std::map<std::string, double> g_rates;  // benchmark name -> x real time or frames/s

// 10 s of speech-like audio (chirps and noise), pushed in `buffer_frames` pieces.
void BM_LogMel(benchmark::State& state, nystream::AudioFormat format, int buffer_frames) {
  const int rate = format.rate, ch = format.channels;
  const std::size_t frames = static_cast<std::size_t>(rate) * 10;
  std::vector<float> f32(frames * ch);
  std::mt19937 rng(1);
  std::normal_distribution<float> noise(0, 0.05f);
  for (std::size_t i = 0; i < frames; ++i)
    for (int c = 0; c < ch; ++c)
      f32[i * ch + c] = 0.3f * std::sin(2.0f * 3.14159f * (200.0f + 0.01f * (i % 50000)) * i / rate) + noise(rng);
  std::vector<std::int16_t> s16(f32.size());
  for (std::size_t i = 0; i < f32.size(); ++i) s16[i] = static_cast<std::int16_t>(f32[i] * 32767);
  const void* data = format.format == nystream::SampleFormat::kS16 ? static_cast<const void*>(s16.data()) : f32.data();
  std::string error;
  auto mel = nystream::LogMelExtractor::create(nystream::LogMelParams{}, format, &error);
  if (!mel) {
    state.SkipWithError(error.c_str());
    return;
  }
  NullSink sink;
  const std::size_t fb = format.bytes_per_frame();
  for (auto _ : state) {
    for (std::size_t pos = 0; pos < frames; pos += buffer_frames) {
      const std::size_t n = std::min<std::size_t>(buffer_frames, frames - pos);
      mel->push(static_cast<const std::uint8_t*>(data) + pos * fb, n * fb, nystream::kNoTimestamp, sink);
    }
    mel->drain(sink);
  }
  state.counters["x real-time"] =
      benchmark::Counter(10.0 * static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
  state.counters["tokens/s"] = benchmark::Counter(static_cast<double>(sink.tokens), benchmark::Counter::kIsRate);
}

// 640x480 frames at 30 fps: a textured object walking over a textured background.
void BM_VideoMotion(benchmark::State& state, nystream::PixelFormat pixel_format, nystream::VideoMotionParams params) {
  nystream::VideoFormat format;
  format.format = pixel_format;
  format.width = 640;
  format.height = 480;
  std::string error;
  auto video = nystream::VideoMotionExtractor::create(params, format, &error);
  if (!video) {
    state.SkipWithError(error.c_str());
    return;
  }
  const int kFrames = 30;
  std::vector<std::uint8_t> frames(video->frame_bytes() * kFrames);
  for (int k = 0; k < kFrames; ++k) {
    std::uint8_t* f = frames.data() + k * video->frame_bytes();
    for (std::size_t i = 0; i < video->frame_bytes(); ++i) {
      const int x = static_cast<int>(i % 640), y = static_cast<int>(i / 640 % 480);
      const bool object = x > 100 + 8 * k && x < 260 + 8 * k && y > 100 && y < 400;
      f[i] = static_cast<std::uint8_t>(object ? 128 + 100 * std::sin((x - 8 * k) * 0.3) * std::cos(y * 0.2)
                                              : 40 + ((x / 32 + y / 32) % 2) * 20);
    }
  }
  NullSink sink;
  std::int64_t n = 0;
  for (auto _ : state) {
    video->push(frames.data() + (n % kFrames) * video->frame_bytes(), video->frame_bytes(),
                n * 1'000'000'000LL / 30, sink);
    ++n;
  }
  state.counters["frames/s"] = benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

class Reporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& run : runs) {
      for (const char* key : {"x real-time", "frames/s"}) {
        const auto it = run.counters.find(key);
        // kIsRate counters are per CPU second of this one-threaded process: per core,
        // whatever else the machine is running.
        if (it != run.counters.end()) g_rates[run.benchmark_name()] = it->second.value;
      }
    }
    ConsoleReporter::ReportRuns(runs);
  }
};

}  // namespace

int main(int argc, char** argv) {
  using nystream::AudioFormat;
  using nystream::PixelFormat;
  using nystream::SampleFormat;
  benchmark::RegisterBenchmark("log-mel/44100Hz-stereo-s16/1024", BM_LogMel, AudioFormat{44100, 2, SampleFormat::kS16}, 1024)
      ->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("log-mel/48000Hz-stereo-f32/480", BM_LogMel, AudioFormat{48000, 2, SampleFormat::kF32}, 480)
      ->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("log-mel/16000Hz-mono-f32/160", BM_LogMel, AudioFormat{16000, 1, SampleFormat::kF32}, 160)
      ->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("log-mel/8000Hz-mono-s16/1", BM_LogMel, AudioFormat{8000, 1, SampleFormat::kS16}, 1)
      ->Unit(benchmark::kMillisecond);
  for (auto [name, f] : {std::pair{"I420", PixelFormat::kI420}, std::pair{"NV12", PixelFormat::kNV12},
                         std::pair{"BGRx", PixelFormat::kBGRx}, std::pair{"RGB", PixelFormat::kRGB},
                         std::pair{"GRAY8", PixelFormat::kGRAY8}})
    benchmark::RegisterBenchmark((std::string("video-motion/640x480-30fps/") + name).c_str(), BM_VideoMotion, f,
                                 nystream::VideoMotionParams{})
        ->Unit(benchmark::kMicrosecond);
  // What nyvideodetect runs by default: the shipped model's front end (its optional
  // parts and analysis size cost more than the defaults).
  std::string error;
  nystream::VideoMotionParams shipped;
  if (auto model = nystream::load_model(NYSTREAM_SHIPPED_VIDEO_MODEL, &error);
      model && nystream::VideoMotionParams::parse(model->info().feature_params, &shipped, &error))
    benchmark::RegisterBenchmark("video-motion/640x480-30fps/I420/video-actions-model", BM_VideoMotion,
                                 PixelFormat::kI420, shipped)
        ->Unit(benchmark::kMicrosecond);
  else
    std::fprintf(stderr, "skipping the shipped model's front end: %s\n", error.c_str());
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  Reporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();

  std::printf("\nSummary (one thread; per core = per CPU second):\n");
  for (const auto& [name, rate] : g_rates) {
    const bool audio = name.rfind("log-mel", 0) == 0;
    const double target = audio ? 1000.0 : 300.0;
    std::printf("  %-40s %10.0f %s  (target >= %.0f: %s)\n", name.c_str(), rate, audio ? "x real-time" : "frames/s",
                target, rate >= target ? "met" : "NOT met");
  }
  return 0;
}
