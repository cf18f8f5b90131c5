// Whole-model cost per token: one StreamState::step against BatchModel<float>::
// forward on the full window, which is what a non-continual model redoes for
// every new token.
//
// Names (main.cc's summary looks runs up by them):
//   model/<config>/b<blocks>/<variant>/<step|batch|batch_all_rows>
// config: audio_n120, action_n64, sweep_n<N>; variant: nystrom_fixed_m<M>,
// nystrom_continual_m<M> or softmax. A batch run uses the same landmark schedule
// as its step (fixed landmarks, or the window's segment means) and runs the last
// layer for the newest token only; batch_all_rows (softmax only) runs every layer
// over all n tokens, as a plain encoder forward does.
#include <benchmark/benchmark.h>

#include <chrono>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "nystream/nystream.h"
#include "random_matrix.h"

namespace {

using nystream::bench::random_matrix;

using nystream::AttentionKind;
using nystream::BatchModel;
using nystream::LandmarkSchedule;
using nystream::Model;
using nystream::ModelConfig;
using nystream::StreamState;

// Random feature vectors cycled through by the stream; a prime count so the
// window never holds the same pattern twice in a row.
constexpr int kPool = 257;

struct Shape {
  const char* name;
  int window, embed, heads, ff, input, classes;
  std::vector<int> landmarks;
};

// One model at a time: Google Benchmark calls a benchmark's function several
// times while it sizes the iteration count, and the step and batch runs of a
// config are registered next to each other, so they share what is built here.
struct Case {
  std::string key, error;
  std::shared_ptr<const Model> model;
  std::unique_ptr<StreamState> stream;
  std::unique_ptr<BatchModel<float>> batch;
  BatchModel<float>::Window window;
  Eigen::MatrixXf features;  // input_dim x kPool
  std::vector<float> scores;
  std::int64_t next = 0;
};

Case& get_case(const std::string& key, const ModelConfig& c) {
  static Case current;
  if (current.key == key) return current;
  current = Case{};  // frees the previous model before building the next
  current.key = key;
  current.model = Model::create(c, nystream::random_weights(c, 1), &current.error);
  std::mt19937 engine(2);
  current.features = random_matrix(c.input_dim, kPool, 1.0f, engine);
  current.scores.resize(c.classes);
  current.window.tokens = random_matrix(c.input_dim, c.window, 1.0f, engine);
  for (int j = 0; j < c.window; ++j) current.window.times.push_back(j);
  current.window.valid.assign(c.window, 1);
  return current;
}

void set_flops(benchmark::State& state, double flops) {
  state.counters["FLOPs/step"] = flops;
  state.counters["GFLOP/s"] =
      benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

void run_step(benchmark::State& state, const std::string& key, const ModelConfig& c) {
  Case& k = get_case(key, c);
  if (!k.model) return state.SkipWithError(k.error.c_str());
  if (!k.stream) {
    // Fill the window with real tokens (row-cache upkeep starts then), within
    // 0.2 s: a two-block step costs the same on padding.
    k.stream = std::make_unique<StreamState>(k.model);
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(200);
    while (k.next < c.window && std::chrono::steady_clock::now() < until)
      k.stream->step(k.features.col(k.next++ % kPool).data(), k.scores.data());
  }
  for (auto _ : state) {
    const auto status = k.stream->step(k.features.col(k.next++ % kPool).data(), k.scores.data());
    benchmark::DoNotOptimize(status);
  }
  benchmark::DoNotOptimize(k.scores.data());
  set_flops(state, nystream::continual_model_flops(c).total());
}

void run_batch(benchmark::State& state, const std::string& key, const ModelConfig& c,
               bool all_rows) {
  Case& k = get_case(key, c);
  if (!k.model) return state.SkipWithError(k.error.c_str());
  if (!k.batch) k.batch = std::make_unique<BatchModel<float>>(*k.model);
  for (auto _ : state) {
    const Eigen::VectorXf logits = k.batch->forward(k.window, nullptr, all_rows);
    benchmark::DoNotOptimize(logits.data());
  }
  set_flops(state, nystream::batch_model_flops(c, all_rows).total());
}

ModelConfig make_config(const Shape& s, int blocks) {
  ModelConfig c;
  c.window = s.window;
  c.positional_period = s.window;
  c.embed_dim = s.embed;
  c.heads = s.heads;
  c.ff_dim = s.ff;
  c.input_dim = s.input;
  c.classes = s.classes;
  c.blocks = blocks;
  return c;
}

std::string variant_name(const ModelConfig& c) {
  if (c.attention == AttentionKind::kSoftmax) return "softmax";
  return std::string("nystrom_") + nystream::to_string(c.schedule) + "_m" +
         std::to_string(c.landmarks);
}

// Registers the step run of c, its batch run, and for softmax the all-rows batch.
// A config validate() rejects (continual landmarks with window % landmarks != 0)
// is still registered: it reports the reason as its error, so the table says
// which cases were left out and why.
void register_runs(const Shape& s, const ModelConfig& c, bool with_batch) {
  const std::string key = std::string("model/") + s.name + "/b" + std::to_string(c.blocks) + "/" +
                          variant_name(c);
  benchmark::RegisterBenchmark((key + "/step").c_str(), run_step, key, c)
      ->Unit(benchmark::kMicrosecond);
  if (with_batch)
    benchmark::RegisterBenchmark((key + "/batch").c_str(), run_batch, key, c, false)
        ->Unit(benchmark::kMicrosecond);
  if (c.attention == AttentionKind::kSoftmax)
    benchmark::RegisterBenchmark((key + "/batch_all_rows").c_str(), run_batch, key, c, true)
        ->Unit(benchmark::kMicrosecond);
}

}  // namespace

void register_model_benchmarks() {
  const Shape published[] = {
      {"audio_n120", 120, 192, 16, 1024, 64, 6, {2, 4, 8, 16, 32, 64}},
      {"action_n64", 64, 1024, 8, 1024, 512, 8, {2, 4, 8, 16, 32}},
  };
  for (const Shape& s : published) {
    for (int blocks : {1, 2}) {
      ModelConfig c = make_config(s, blocks);
      for (int m : s.landmarks) {
        c.landmarks = m;
        for (LandmarkSchedule schedule : {LandmarkSchedule::kFixed, LandmarkSchedule::kContinual}) {
          c.schedule = schedule;
          register_runs(s, c, true);
        }
      }
      c.attention = AttentionKind::kSoftmax;
      register_runs(s, c, true);
    }
  }
  // Window sweep, one block: a two-block step is O(n E F) and would dominate.
  for (int n : {64, 128, 256, 512, 1024, 2048, 4096}) {
    const std::string name = "sweep_n" + std::to_string(n);
    const Shape s{name.c_str(), n, 192, 16, 1024, 64, 6, {8}};
    ModelConfig c = make_config(s, 1);
    c.schedule = LandmarkSchedule::kFixed;
    register_runs(s, c, false);
    c.attention = AttentionKind::kSoftmax;
    register_runs(s, c, true);
  }
}
