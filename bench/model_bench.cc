// Whole-model cost per token: one StreamState::step against the fair re-encode,
// BatchModel<float>(model, /*model_pinv=*/true)::forward on the window the newest
// logits depend on (config.receptive_field() tokens), which is what a
// non-continual model redoes for every new token.
//
// Names (main.cc's summary looks runs up by them):
//   model/<config>/<assembly>/<variant>/<step|batch|batch_all_rows>
//   shipped/<file stem>/<step|reencode>, file/<file stem>/<step|reencode>
//   <model or file key>/step_f16, /step_bf16: the same weights kept 16-bit
// config: audio_n120, action_n64, sweep_n<N> (1 block, to n = 4096), flat_n<N>
// (every assembly, the shipped audio model's shape); assembly: b1, b2
// (retroactive), stacked_b3; variant: nystrom_fixed_m<M>, nystrom_continual_m<M>
// or softmax. A batch run uses the same landmark schedule as its step (fixed
// landmarks with the model's pinv, or the window's segment means) and runs the
// last layer for the newest token only; batch_all_rows (softmax only) runs every
// layer over all n tokens, as a plain encoder forward does.
#include <benchmark/benchmark.h>

#include <chrono>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "model_runs.h"
#include "nystream/nystream.h"
#include "random_matrix.h"

namespace {

using nystream::bench::random_matrix;

using nystream::Assembly;
using nystream::AttentionKind;
using nystream::BatchModel;
using nystream::LandmarkSchedule;
using nystream::Model;
using nystream::ModelConfig;
using nystream::StreamState;

// Random feature vectors cycled through by the stream; a prime count so the
// window never holds the same pattern twice in a row.
constexpr int kPool = 257;

using ModelSource = std::function<std::shared_ptr<const Model>(std::string* error)>;

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

// Raw features that normalise to N(0, 1), the range the model was trained on
// (a shipped model's features are far from zero mean, unit variance).
Eigen::MatrixXf random_features(const Model& model, int count, std::mt19937& engine) {
  const nystream::ModelWeights& w = model.weights();
  Eigen::MatrixXf x = random_matrix(model.config().input_dim, count, 1.0f, engine);
  if (w.input_mean.size())
    x = ((x.array().colwise() / w.input_scale.array().max(1e-6f)).colwise() + w.input_mean.array())
            .matrix();
  return x;
}

Case& get_case(const std::string& key, const ModelSource& source) {
  static Case current;
  if (current.key == key) return current;
  current = Case{};  // frees the previous model before building the next
  current.key = key;
  current.model = source(&current.error);
  if (!current.model) return current;
  const ModelConfig& c = current.model->config();
  std::mt19937 engine(2);
  current.features = random_features(*current.model, kPool, engine);
  current.scores.resize(c.classes);
  const int tokens = c.receptive_field();
  current.window.tokens = random_features(*current.model, tokens, engine);
  for (int j = 0; j < tokens; ++j) current.window.times.push_back(j);
  current.window.valid.assign(tokens, 1);
  return current;
}

void set_flops(benchmark::State& state, double flops) {
  state.counters["FLOPs/step"] = flops;
  state.counters["GFLOP/s"] =
      benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

void run_step(benchmark::State& state, const std::string& key, const ModelSource& source) {
  Case& k = get_case(key, source);
  if (!k.model) return state.SkipWithError(k.error.c_str());
  const ModelConfig& c = k.model->config();
  if (!k.stream) {
    // Past the receptive field with real tokens, so every layer's caches are in
    // upkeep; at most 1 s: a retroactive step at large n costs the same on padding.
    k.stream = std::make_unique<StreamState>(k.model);
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    while (k.next < c.receptive_field() + c.window && std::chrono::steady_clock::now() < until)
      k.stream->step(k.features.col(k.next++ % kPool).data(), k.scores.data());
  }
  for (auto _ : state) {
    const auto status = k.stream->step(k.features.col(k.next++ % kPool).data(), k.scores.data());
    benchmark::DoNotOptimize(status);
  }
  benchmark::DoNotOptimize(k.scores.data());
  set_flops(state, nystream::continual_model_flops(c).total());
}

void run_batch(benchmark::State& state, const std::string& key, const ModelSource& source,
               bool all_rows) {
  Case& k = get_case(key, source);
  if (!k.model) return state.SkipWithError(k.error.c_str());
  if (!k.batch) k.batch = std::make_unique<BatchModel<float>>(*k.model, /*model_pinv=*/true);
  for (auto _ : state) {
    const Eigen::VectorXf logits = k.batch->forward(k.window, nullptr, all_rows);
    benchmark::DoNotOptimize(logits.data());
  }
  set_flops(state, nystream::batch_model_flops(k.model->config(), all_rows).total());
}

ModelConfig make_config(const Shape& s, int blocks, Assembly assembly) {
  ModelConfig c;
  c.window = s.window;
  c.positional_period = s.window;
  c.embed_dim = s.embed;
  c.heads = s.heads;
  c.ff_dim = s.ff;
  c.input_dim = s.input;
  c.classes = s.classes;
  c.blocks = blocks;
  c.assembly = assembly;
  return c;
}

std::string assembly_name(const ModelConfig& c) {
  return (c.stacked() ? "stacked_b" : "b") + std::to_string(c.blocks);
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
  const std::string key =
      std::string("model/") + s.name + "/" + assembly_name(c) + "/" + variant_name(c);
  const ModelSource source = [c](std::string* error) {
    return Model::create(c, nystream::random_weights(c, 1), error);
  };
  benchmark::RegisterBenchmark((key + "/step").c_str(), run_step, key, source)
      ->Unit(benchmark::kMicrosecond);
  if (with_batch)
    benchmark::RegisterBenchmark((key + "/batch").c_str(), run_batch, key, source, false)
        ->Unit(benchmark::kMicrosecond);
  // A stacked re-encode is per position already: no plain-encoder form.
  if (c.attention == AttentionKind::kSoftmax && !c.stacked())
    benchmark::RegisterBenchmark((key + "/batch_all_rows").c_str(), run_batch, key, source, true)
        ->Unit(benchmark::kMicrosecond);
}

// The step of source's model with its linear weights kept F16 and BF16.
void register_weight_types(const std::string& key, const ModelSource& source) {
  for (nystream::WeightType type : {nystream::WeightType::kF16, nystream::WeightType::kBF16}) {
    const std::string name = nystream::to_string(type);
    const ModelSource sixteen = [source, type](std::string* error) -> std::shared_ptr<const Model> {
      const std::shared_ptr<const Model> model = source(error);
      if (!model) return nullptr;
      ModelConfig c = model->config();
      c.weight_type = type;
      return Model::create(c, model->weights(), model->info(), error);
    };
    benchmark::RegisterBenchmark((key + "/step_" + name).c_str(), run_step, key + "/" + name, sixteen)
        ->Unit(benchmark::kMicrosecond);
  }
}

std::string file_stem(const std::string& path) {
  std::string stem = path.substr(path.find_last_of('/') + 1);
  const std::string::size_type dot = stem.find('.');
  return dot == 0 || dot == std::string::npos ? stem : stem.substr(0, dot);
}

}  // namespace

void register_model_benchmarks() {
  const Shape published[] = {
      {"audio_n120", 120, 192, 16, 1024, 64, 6, {2, 4, 8, 16, 32, 64}},
      {"action_n64", 64, 1024, 8, 1024, 512, 8, {2, 4, 8, 16, 32}},
  };
  for (const Shape& s : published) {
    for (int blocks : {1, 2}) {
      ModelConfig c = make_config(s, blocks, Assembly::kRetroactive);
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
    // Stacked, three layers: one landmark count keeps the suite short.
    ModelConfig c = make_config(s, 3, Assembly::kStacked);
    for (LandmarkSchedule schedule : {LandmarkSchedule::kFixed, LandmarkSchedule::kContinual}) {
      c.schedule = schedule;
      register_runs(s, c, true);
    }
    c.attention = AttentionKind::kSoftmax;
    register_runs(s, c, true);
  }
  // 16-bit weights at the published audio configuration, 1 block, m = 8 fixed.
  {
    ModelConfig c = make_config(published[0], 1, Assembly::kRetroactive);
    c.landmarks = 8;
    c.schedule = LandmarkSchedule::kFixed;
    register_weight_types(std::string("model/") + published[0].name + "/" + assembly_name(c) + "/" +
                              variant_name(c),
                          [c](std::string* error) {
                            return Model::create(c, nystream::random_weights(c, 1), error);
                          });
  }
  // Window sweep, one block, against softmax: a two-block step is O(n E F) and
  // would dominate.
  for (int n : {64, 128, 256, 512, 1024, 2048, 4096}) {
    const std::string name = "sweep_n" + std::to_string(n);
    const Shape s{name.c_str(), n, 192, 16, 1024, 64, 6, {8}};
    ModelConfig c = make_config(s, 1, Assembly::kRetroactive);
    c.schedule = LandmarkSchedule::kFixed;
    register_runs(s, c, false);
    c.attention = AttentionKind::kSoftmax;
    register_runs(s, c, true);
  }
  // Flatness of the step in n for every assembly, at the shipped audio model's
  // shape (E = 128, h = 4, F = 256, m = 16, 128 log-mel bands, 6 classes).
  for (int n : {32, 64, 128, 256, 512, 1024}) {
    const std::string name = "flat_n" + std::to_string(n);
    const Shape s{name.c_str(), n, 128, 4, 256, 128, 6, {16}};
    for (const FlatAssembly& a : flat_assemblies()) {
      ModelConfig c = make_config(s, a.blocks, a.assembly);
      c.landmarks = 16;
      c.schedule = a.schedule;
      register_runs(s, c, false);
    }
  }
}

std::vector<FileRuns> register_file_benchmarks(const std::vector<FileRuns::Source>& files) {
  std::vector<FileRuns> out;
  for (const FileRuns::Source& file : files) {
    FileRuns runs;
    runs.source = file;
    runs.label = std::string(file.shipped ? "shipped " : "file ") + file_stem(file.path);
    runs.key = std::string(file.shipped ? "shipped/" : "file/") + file_stem(file.path);
    for (const FileRuns& other : out)
      if (other.key == runs.key) {
        runs.key += "_" + std::to_string(out.size());
        runs.label += "_" + std::to_string(out.size());
      }
    runs.model = nystream::load_model(file.path, &runs.error);
    const std::shared_ptr<const Model> model = runs.model;
    const std::string error = runs.error;
    const ModelSource source = [model, error](std::string* e) {
      *e = error;
      return model;
    };
    benchmark::RegisterBenchmark((runs.key + "/step").c_str(), run_step, runs.key, source)
        ->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark((runs.key + "/reencode").c_str(), run_batch, runs.key, source,
                                 false)
        ->Unit(benchmark::kMicrosecond);
    if (model) register_weight_types(runs.key, source);
    out.push_back(std::move(runs));
  }
  return out;
}
