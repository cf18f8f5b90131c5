// nystream-batch-bench (issue 21): what stepping k streams together with
// StreamBatch costs per stream, and how many real-time audio streams a core
// carries with the front end included.
//
//   nystream-batch-bench [--no-torch] [--quick] [--benchmark_* flags]
//
// Runs (CPU time per iteration; one thread):
//   batch/<model>/<dtype>/k<K>: one batched step of K streams (K = 1 is the
//     same pipeline as StreamState::step). Models: the published audio
//     configuration (n=120 E=192 h=16 F=1024 m=8 fixed, 1 block), the published
//     action configuration (n=64 E=1024 h=8 F=1024 m=8 fixed, 1 block) and the
//     shipped model files; dtype f32, f16, bf16.
//   streams/audio_n120/<dtype>/k<K>: 1 s of 16 kHz audio for 256 streams,
//     log-mel front end (default parameters, 10 tokens/s) included, tokens
//     stepped in batches of K as they complete.
// Then a summary from this run: per-stream step time against k with the ratio
// to k = 1, streams per core, and the PyTorch continual step of the published
// audio configuration (python3 -m nystream_ref.continual, run here, so both
// numbers come from the same machine and moment).
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "nystream/features/log_mel.h"
#include "nystream/nystream.h"
#include "random_matrix.h"
#include "recording_reporter.h"

namespace {

using nystream::Model;
using nystream::ModelConfig;
using nystream::StepStatus;
using nystream::StreamBatch;
using nystream::StreamState;
using nystream::WeightType;

const int kBatchSizes[] = {1, 2, 4, 8, 16, 32, 64, 128, 256};
const WeightType kTypes[] = {WeightType::kF32, WeightType::kF16, WeightType::kBF16};
constexpr int kAudioStreams = 256;  // streams of the in-process audio run

ModelConfig published(int window, int embed, int heads, int ff, int input, int classes) {
  ModelConfig c;
  c.window = window, c.positional_period = window;
  c.embed_dim = embed, c.heads = heads, c.ff_dim = ff;
  c.input_dim = input, c.classes = classes;
  c.blocks = 1;
  c.landmarks = 8;
  c.schedule = nystream::LandmarkSchedule::kFixed;
  return c;
}

std::shared_ptr<const Model> with_type(const std::shared_ptr<const Model>& model, WeightType type,
                                       std::string* error) {
  ModelConfig c = model->config();
  c.weight_type = type;
  return Model::create(c, model->weights(), model->info(), error);
}

// k streams of one model and a batch of k, built on first use and kept while
// Google Benchmark sizes its iteration count.
struct Streams {
  std::string key, error;
  std::shared_ptr<const Model> model;
  std::vector<StreamState> streams;
  std::vector<StreamState*> members;
  std::unique_ptr<StreamBatch> batch;
  Eigen::MatrixXf features, scores;  // one column per stream
  std::vector<const float*> inputs;
  std::vector<float*> outputs;
  std::vector<StepStatus> statuses;

  void build(const std::shared_ptr<const Model>& m, int k) {
    model = m;
    const ModelConfig& c = model->config();
    std::mt19937 engine(5);
    features = nystream::bench::random_matrix(c.input_dim, k, 1.0f, engine);
    const nystream::ModelWeights& w = model->weights();
    if (w.input_mean.size())  // raw features that normalise to N(0, 1)
      features = ((features.array().colwise() / w.input_scale.array().max(1e-6f)).colwise() +
                  w.input_mean.array()).matrix();
    scores.resize(c.classes, k);
    streams.clear();
    streams.reserve(k);
    for (int j = 0; j < k; ++j) streams.emplace_back(model);
    members.clear(), inputs.clear(), outputs.clear();
    for (int j = 0; j < k; ++j) {
      members.push_back(&streams[j]);
      inputs.push_back(features.col(j).data());
      outputs.push_back(scores.col(j).data());
    }
    statuses.assign(k, StepStatus::kOk);
    batch = std::make_unique<StreamBatch>(model, k);
  }
  void step(int count) {
    batch->step(members.data(), inputs.data(), outputs.data(), statuses.data(), count);
  }
};

Streams& get_streams(const std::string& key) {
  static Streams current;
  if (current.key != key) {
    current = Streams{};  // frees the previous streams first
    current.key = key;
  }
  return current;
}

using ModelSource = std::function<std::shared_ptr<const Model>(std::string* error)>;

void run_batch(benchmark::State& state, const std::string& key, const ModelSource& source, int k) {
  Streams& s = get_streams(key);
  if (!s.model) {
    const std::shared_ptr<const Model> model = source(&s.error);
    if (!model) return state.SkipWithError(s.error.c_str());
    s.build(model, k);
    // Into upkeep (caches full, rows rebuilt on their rota): a window of tokens,
    // fewer for large batches of a large model (a fixed-landmark step costs the
    // same on padding).
    const ModelConfig& c = s.model->config();
    const int warm = std::max(4, std::min(c.receptive_field() + c.window, 20000 / k));
    for (int t = 0; t < warm; ++t) s.step(k);
  }
  for (auto _ : state) s.step(k);
  state.counters["streams"] = k;
}

// ---- streams per core, features included -------------------------------------

struct AudioStreams {
  std::string key, error;
  std::shared_ptr<const Model> model;
  std::vector<std::unique_ptr<nystream::LogMelExtractor>> extractors;
  Streams batch;
  std::vector<float> audio;  // 1 s at 16 kHz, each stream starting elsewhere in it
};

// Collects a stream's token into its column of the batch's features.
struct ColumnSink : nystream::TokenSink {
  float* column = nullptr;
  int tokens = 0;
  void on_token(const float* f, int dim, const nystream::TokenSpan&) override {
    std::memcpy(column, f, sizeof(float) * dim);
    ++tokens;
  }
};

void run_audio_streams(benchmark::State& state, WeightType type, int k) {
  static AudioStreams a;
  const std::string key = std::string(nystream::to_string(type)) + "/" + std::to_string(k);
  if (a.key != key) {
    a = AudioStreams{};
    a.key = key;
    nystream::LogMelParams params;  // 16 kHz, 10 ms hop, 64 bands mean-std: 128 values, 10 tokens/s
    const nystream::AudioFormat format{16000, 1, nystream::SampleFormat::kF32};
    for (int j = 0; j < kAudioStreams; ++j) {
      a.extractors.push_back(nystream::LogMelExtractor::create(params, format, &a.error));
      if (!a.extractors.back()) return state.SkipWithError(a.error.c_str());
    }
    ModelConfig c = published(120, 192, 16, 1024, params.dim(), 6);
    c.weight_type = type;
    a.model = Model::create(c, nystream::random_weights(c, 1), &a.error);
    if (!a.model) return state.SkipWithError(a.error.c_str());
    a.batch.build(a.model, kAudioStreams);
    a.batch.batch = std::make_unique<StreamBatch>(a.model, k);
    std::mt19937 rng(1);
    std::normal_distribution<float> noise(0, 0.05f);
    a.audio.resize(16000);
    for (int i = 0; i < 16000; ++i)
      a.audio[i] = 0.3f * std::sin(2.0f * 3.14159f * (200.0f + 0.05f * i) * i / 16000) + noise(rng);
    // Past the front end's first frame, so every timed second yields 10 tokens.
    ColumnSink warm;
    warm.column = a.batch.features.col(0).data();
    for (auto& extractor : a.extractors)
      extractor->push(a.audio.data(), sizeof(float) * 800, nystream::kNoTimestamp, warm);
  }
  if (!a.model) return state.SkipWithError(a.error.c_str());
  // 100 ms buffers (one token each), every stream in turn; a batch is stepped
  // whenever k streams have a token waiting.
  ColumnSink sink;
  const int buffer = 1600;
  long tokens = 0;
  for (auto _ : state) {
    for (int part = 0; part < 10; ++part) {
      int waiting = 0;
      for (int j = 0; j < kAudioStreams; ++j) {
        sink.column = a.batch.features.col(waiting).data();
        sink.tokens = 0;
        const int offset = (part * buffer + 997 * j) % (16000 - buffer);
        a.extractors[j]->push(a.audio.data() + offset, sizeof(float) * buffer, nystream::kNoTimestamp,
                              sink);
        if (!sink.tokens) continue;
        a.batch.members[waiting] = &a.batch.streams[j];
        if (++waiting == k) {
          a.batch.step(waiting);
          tokens += waiting;
          waiting = 0;
        }
      }
      if (waiting) {
        a.batch.step(waiting);
        tokens += waiting;
      }
    }
  }
  // One iteration is 1 s of audio for every stream.
  state.counters["audio s/CPU s"] =
      benchmark::Counter(double(kAudioStreams) * state.iterations(), benchmark::Counter::kIsRate);
  state.counters["tokens"] = double(tokens) / state.iterations();
}

std::string file_stem(const std::string& path) {
  std::string stem = path.substr(path.find_last_of('/') + 1);
  return stem.substr(0, stem.find('.'));
}

struct Curve {
  std::string label, key;  // key: batch/<model>
};

std::vector<Curve> register_curves(bool quick) {
  std::vector<std::pair<std::string, ModelSource>> models;
  for (auto [name, config] : {std::pair{"audio_n120", published(120, 192, 16, 1024, 64, 6)},
                              std::pair{"action_n64", published(64, 1024, 8, 1024, 512, 8)}})
    models.push_back({name, [config = config](std::string* error) {
                        return Model::create(config, nystream::random_weights(config, 1), error);
                      }});
  for (const char* path : {NYSTREAM_SHIPPED_AUDIO_MODEL, NYSTREAM_SHIPPED_VIDEO_MODEL})
    models.push_back({file_stem(path), [path = std::string(path)](std::string* error) {
                        return nystream::load_model(path, error);
                      }});
  std::vector<Curve> curves;
  for (const auto& [name, source] : models)
    for (WeightType type : kTypes) {
      const std::string key = "batch/" + name + "/" + nystream::to_string(type);
      curves.push_back({name + " " + nystream::to_string(type), key});
      for (int k : kBatchSizes) {
        if (quick && k != 1 && k != 8 && k != 64) continue;
        const std::string run = key + "/k" + std::to_string(k);
        const ModelSource typed = [source = source, type](std::string* error) -> std::shared_ptr<const Model> {
          const auto model = source(error);
          return model ? with_type(model, type, error) : nullptr;
        };
        benchmark::RegisterBenchmark(run.c_str(), run_batch, run, typed, k)->Unit(benchmark::kMicrosecond);
      }
    }
  for (WeightType type : kTypes)
    for (int k : {1, 16, 64, 256}) {
      if (quick && k != 1 && k != 64) continue;
      const std::string run =
          std::string("streams/audio_n120/") + nystream::to_string(type) + "/k" + std::to_string(k);
      benchmark::RegisterBenchmark(run.c_str(), run_audio_streams, type, k)->Unit(benchmark::kMillisecond);
    }
  return curves;
}

// The PyTorch continual step of the published audio configuration, one thread.
std::string run_torch(double* us_per_step) {
  const std::string command = std::string("cd '") + NYSTREAM_REF_DIR +
                              "' && /usr/bin/python3 -m nystream_ref.continual --steps 1000 "
                              "--repeats 3 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) return "could not start python3";
  std::string out;
  char buf[512];
  while (std::fgets(buf, sizeof buf, pipe)) out += buf;
  const int status = pclose(pipe);
  // "... CPU time best 197.3 us/step ...": CPU time, as the C++ runs report.
  const std::string::size_type at = out.find("CPU time best ");
  if (status != 0 || at == std::string::npos) return "failed: " + out;
  *us_per_step = std::atof(out.c_str() + at + std::strlen("CPU time best "));
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<char*> args;
  bool torch = true, quick = false;
  for (int i = 0; i < argc; ++i) {
    if (std::strcmp(argv[i], "--no-torch") == 0)
      torch = false;
    else if (std::strcmp(argv[i], "--quick") == 0)
      quick = true;
    else
      args.push_back(argv[i]);
  }
  const std::vector<Curve> curves = register_curves(quick);
  static char default_min_time[] = "--benchmark_min_time=0.2";
  args.insert(args.begin() + 1, default_min_time);
  int count = static_cast<int>(args.size());
  args.push_back(nullptr);
  benchmark::Initialize(&count, args.data());
  if (benchmark::ReportUnrecognizedArguments(count, args.data())) return 1;
  nystream::bench::RecordingReporter reporter(isatty(STDOUT_FILENO)
                                                  ? benchmark::ConsoleReporter::OO_ColorTabular
                                                  : benchmark::ConsoleReporter::OO_Tabular);
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  std::fflush(stdout);

  std::printf("\n==== Batched step: per-stream time (CPU time per batch / k) and speed-up over k = 1 ====\n"
              "16-bit kernel: %s\n%-28s", nystream::active_kernel(), "model dtype");
  for (int k : kBatchSizes) std::printf(" %13s", ("k=" + std::to_string(k)).c_str());
  std::printf("\n");
  for (const Curve& curve : curves) {
    const auto* alone = reporter.find(curve.key + "/k1");
    std::printf("%-28s", curve.label.c_str());
    for (int k : kBatchSizes) {
      const auto* r = reporter.find(curve.key + "/k" + std::to_string(k));
      char cell[32] = "n/a";
      if (r && alone)
        std::snprintf(cell, sizeof cell, "%.1f (%.2fx)", r->seconds / k * 1e6, alone->seconds * k / r->seconds);
      else if (r)
        std::snprintf(cell, sizeof cell, "%.1f", r->seconds / k * 1e6);
      std::printf(" %13s", cell);
    }
    std::printf("   us/stream-step\n");
  }
  std::printf("\n==== Real-time audio streams per core: published audio configuration, log-mel front end\n"
              "(16 kHz, 10 tokens/s) included, %d streams, tokens batched by k ====\n", kAudioStreams);
  for (WeightType type : kTypes)
    for (int k : {1, 16, 64, 256}) {
      const std::string name =
          std::string("streams/audio_n120/") + nystream::to_string(type) + "/k" + std::to_string(k);
      const auto* r = reporter.find(name);
      if (!r) continue;
      // One iteration: 1 s of audio for every stream, so streams per core =
      // streams / CPU seconds per iteration.
      std::printf("%-32s %8.0f streams per core (%.1f ms CPU per second of %d streams)\n", name.c_str(),
                  kAudioStreams / r->seconds, r->seconds * 1e3, kAudioStreams);
    }
  if (torch) {
    double torch_us = 0;
    const std::string out = run_torch(&torch_us);
    std::printf("\n==== PyTorch continual step (models/nystream_ref, same run) ====\n%s", out.c_str());
    const auto* f32 = reporter.find("batch/audio_n120/f32/k1");
    const auto* f16 = reporter.find("batch/audio_n120/f16/k1");
    if (torch_us > 0)
      for (auto [label, r] : {std::pair{"f32", f32}, std::pair{"f16", f16}})
        if (r)
          std::printf("published audio step alone, %s: %.1f us vs PyTorch %.1f us: %.1fx (target >= 20x)\n",
                      label, r->seconds * 1e6, torch_us, torch_us / (r->seconds * 1e6));
  }
  return 0;
}
