// nystream-features-bench: the audio and video front ends on one core.
// Targets (feature-extraction issue): log-mel >= 1000x real time, video-motion
// 640x480 at 30 fps >= 300 frames/s. Reports "x real-time" and frames/s, then a
// summary against the targets (informational: the exit status does not depend on them).
// Also the learned front end a model may add (issue 18, a convolutional stem,
// config.h StemConfig): FLOPs and time per token of ConvStem alone, and of the
// whole step of a video-actions-shaped model with and without it.
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdio>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "nystream/features/log_mel.h"
#include "nystream/features/video_motion.h"
#include "nystream/nystream.h"

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

// Stems: video ones over video-motion's stem part (stem_width 32, stem_height
// 24: a frame and its difference, after a 120-value descriptor the linear
// projection reads), an audio one over the 2 x 64 log-mel means and stds (all
// 128 values also read by the linear projection). E = 64, the shipped video model's.
struct StemCase {
  const char* name;
  int input_offset, linear_inputs;  // linear_inputs -1: every value
  int channels, height, width;
  std::vector<nystream::StemLayer> layers;
  int strips;
};

nystream::StemLayer stem_layer(int channels, int kh, int kw, int sh, int sw) {
  nystream::StemLayer s;
  s.channels = channels, s.kernel_height = kh, s.kernel_width = kw, s.stride_height = sh, s.stride_width = sw;
  return s;
}

const std::vector<StemCase>& stem_cases() {
  static const std::vector<StemCase> cases = {
      {"video-2x24x32/c8s2-c16s2/g3", 120, 120, 2, 24, 32, {stem_layer(8, 3, 3, 2, 2), stem_layer(16, 3, 3, 2, 2)}, 3},
      {"video-2x24x32/c16s2-c32s2-c64s2/g3", 120, 120, 2, 24, 32,
       {stem_layer(16, 3, 3, 2, 2), stem_layer(32, 3, 3, 2, 2), stem_layer(64, 3, 3, 2, 2)}, 3},
      {"audio-2x64x1/c32k7/g4", 0, -1, 2, 64, 1, {stem_layer(32, 7, 1, 1, 1)}, 4},
  };
  return cases;
}

// The shipped video model's shape (n 32, m 8 fixed, E 64, h 4, F 128, 8 classes)
// over its 120-value descriptor, or with a stem over the stem's tokens.
nystream::ModelConfig stem_model_config(const StemCase* stem) {
  nystream::ModelConfig c;
  c.window = c.positional_period = 32;
  c.landmarks = 8;
  c.schedule = nystream::LandmarkSchedule::kFixed;
  c.embed_dim = 64, c.heads = 4, c.ff_dim = 128, c.classes = 8;
  c.input_dim = 120;
  if (stem) {
    c.stem.input_offset = stem->input_offset;
    c.stem.input_channels = stem->channels, c.stem.input_height = stem->height, c.stem.input_width = stem->width;
    c.stem.layers = stem->layers;
    c.stem.pool_strips = stem->strips;
    c.input_dim = stem->input_offset + static_cast<int>(c.stem.input_size());
    c.linear_inputs = stem->linear_inputs;
  }
  return c;
}

std::map<std::string, std::pair<double, double>> g_stems;  // name -> (FLOPs/token, tokens/s)

void set_token_counters(benchmark::State& state, double flops) {
  state.counters["FLOPs/token"] = flops;
  state.counters["tokens/s"] = benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

// ConvStem::add_to on one token, as StreamState::step runs it.
void BM_Stem(benchmark::State& state, const StemCase* stem) {
  const nystream::ModelConfig c = stem_model_config(stem);
  std::string error;
  const auto model = nystream::Model::create(c, nystream::random_weights(c, 1), &error);
  if (!model) return state.SkipWithError(error.c_str());
  nystream::ConvStem conv(model->config().stem, model->weights().stem);
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> value(-1.0f, 1.0f);
  Eigen::MatrixXf inputs(c.stem.input_size(), 16);
  for (Eigen::Index i = 0; i < inputs.size(); ++i) inputs.data()[i] = value(rng);
  Eigen::VectorXf out = Eigen::VectorXf::Zero(c.embed_dim);
  long i = 0;
  for (auto _ : state) {
    conv.add_to(inputs.col(i++ % 16).data(), out);
    benchmark::DoNotOptimize(out.data());
  }
  set_token_counters(state, nystream::stem_flops(c));
}

// A whole StreamState::step of the video-actions-shaped model, with the stem
// (stem non-null) or without.
void BM_StemModelStep(benchmark::State& state, const StemCase* stem) {
  const nystream::ModelConfig c = stem_model_config(stem);
  std::string error;
  const auto model = nystream::Model::create(c, nystream::random_weights(c, 1), &error);
  if (!model) return state.SkipWithError(error.c_str());
  nystream::StreamState stream(model);
  std::mt19937 rng(4);
  std::normal_distribution<float> value(0.0f, 1.0f);
  Eigen::MatrixXf tokens(c.input_dim, 17);
  for (Eigen::Index i = 0; i < tokens.size(); ++i) tokens.data()[i] = value(rng);
  std::vector<float> scores(c.classes);
  long i = 0;
  for (; i < 2 * c.window; ++i) stream.step(tokens.col(i % 17).data(), scores.data());
  for (auto _ : state) benchmark::DoNotOptimize(stream.step(tokens.col(i++ % 17).data(), scores.data()));
  set_token_counters(state, nystream::continual_model_flops(c).total());
}

class Reporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& run : runs) {
      const auto flops = run.counters.find("FLOPs/token"), rate = run.counters.find("tokens/s");
      if (flops != run.counters.end() && rate != run.counters.end())
        g_stems[run.benchmark_name()] = {flops->second.value, rate->second.value};
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
  // The same front end with the blob part (motion_blobs 3), then instead the stem part
  // (stem_width 32, stem_height 24).
  nystream::VideoMotionParams blobs = shipped;
  blobs.motion_blobs = 3;
  benchmark::RegisterBenchmark("video-motion/640x480-30fps/I420/video-actions-model+blobs3", BM_VideoMotion,
                               PixelFormat::kI420, blobs)
      ->Unit(benchmark::kMicrosecond);
  shipped.stem_width = 32, shipped.stem_height = 24;
  benchmark::RegisterBenchmark("video-motion/640x480-30fps/I420/video-actions-model+stem32x24", BM_VideoMotion,
                               PixelFormat::kI420, shipped)
      ->Unit(benchmark::kMicrosecond);
  for (const StemCase& stem : stem_cases())
    benchmark::RegisterBenchmark((std::string("stem/") + stem.name).c_str(), BM_Stem, &stem)
        ->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("stem-model-step/video-actions-shape/no-stem", BM_StemModelStep, nullptr)
      ->Unit(benchmark::kMicrosecond);
  for (const StemCase& stem : stem_cases())
    benchmark::RegisterBenchmark((std::string("stem-model-step/video-actions-shape/") + stem.name).c_str(),
                                 BM_StemModelStep, &stem)
        ->Unit(benchmark::kMicrosecond);
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
  std::printf("\nStem alone and whole model steps, per token (one thread; FLOPs from flops.h; a core's\n"
              "share at 10 tokens/s):\n");
  for (const auto& [name, run] : g_stems)
    std::printf("  %-72s %8.3g FLOP %7.1f us %6.2f GFLOP/s %6.3f%% of a core\n", name.c_str(), run.first,
                1e6 / run.second, run.first * run.second * 1e-9, 10.0 / run.second * 100);
  return 0;
}
