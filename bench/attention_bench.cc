// Attention alone, first layer, all heads, no projections: one continual step
// (ContinualAttention, single output) against batch attention over the window
// producing all n outputs (what the paper's ~1000x compares).
//
// Names (main.cc's summary looks runs up by them):
//   attention/<config>/<variant>/<step|batch>
// config: audio_n120, sweep_n<N>; step variants: nystrom_fixed_m<M>,
// nystrom_continual_m<M>, softmax; batch variants: nystrom_m<M> (the same
// formula for both schedules) and softmax.
#include <benchmark/benchmark.h>

#include <chrono>
#include <cmath>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "continual_attention.h"
#include "nystream/nystream.h"
#include "random_matrix.h"

namespace {

using nystream::bench::random_matrix;

using nystream::AttentionKind;
using nystream::ContinualAttention;
using nystream::LandmarkSchedule;
using nystream::Model;
using nystream::ModelConfig;

constexpr int kPool = 257;  // random tokens cycled through; prime, as in model_bench.cc

// Fixed landmarks and their pinv come from a model with random weights, so the
// step uses exactly what StreamState would.
struct Case {
  std::string key, error;
  std::shared_ptr<const Model> model;
  // Continual step: a pool of scaled q^, k^ and v.
  std::unique_ptr<ContinualAttention> attention;
  std::vector<Eigen::VectorXf> queries, keys, values;
  Eigen::MatrixXf out;
  std::int64_t time = 0;
  // Batch: one d x n (or d x m) matrix per head.
  std::vector<Eigen::MatrixXf> head_q, head_k, head_v, head_qt, head_kt;
};

Case& get_case(const std::string& key, const ModelConfig& c) {
  static Case current;
  if (current.key == key) return current;
  current = Case{};
  current.key = key;
  current.model = Model::create(c, nystream::random_weights(c, 1), &current.error);
  return current;
}

// Unit-variance q and k scaled by d^(-1/4), so q^.k^ has unit variance as well.
float qk_scale(const ModelConfig& c) { return std::pow(static_cast<float>(c.head_dim()), -0.25f); }

void set_flops(benchmark::State& state, double flops) {
  state.counters["FLOPs/step"] = flops;
  state.counters["GFLOP/s"] =
      benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

void run_step(benchmark::State& state, const std::string& key, const ModelConfig& c) {
  Case& k = get_case(key, c);
  if (!k.model) return state.SkipWithError(k.error.c_str());
  if (!k.attention) {
    k.attention = std::make_unique<ContinualAttention>(*k.model, 0, /*retroactive=*/false);
    std::mt19937 engine(3);
    for (int i = 0; i < kPool; ++i) {
      k.queries.push_back(random_matrix(c.embed_dim, 1, qk_scale(c), engine));
      k.keys.push_back(random_matrix(c.embed_dim, 1, qk_scale(c), engine));
      k.values.push_back(random_matrix(c.embed_dim, 1, 1.0f, engine));
    }
    k.out.resize(c.embed_dim, 1);
    // Fill the window with real tokens first, within 0.2 s.
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(200);
    while (k.time < c.window && std::chrono::steady_clock::now() < until) {
      const int i = static_cast<int>(k.time % kPool);
      k.attention->step(k.time++, k.queries[i], k.keys[i], k.values[i], k.out);
    }
  }
  for (auto _ : state) {
    const int i = static_cast<int>(k.time % kPool);
    k.attention->step(k.time++, k.queries[i], k.keys[i], k.values[i], k.out);
    benchmark::DoNotOptimize(k.out.data());
  }
  set_flops(state, c.attention == AttentionKind::kSoftmax
                       ? nystream::continual_softmax_attention_flops(c)
                       : nystream::continual_nystrom_attention_flops(c));
}

void run_batch(benchmark::State& state, const std::string& key, const ModelConfig& c) {
  Case& k = get_case(key, c);
  if (!k.model) return state.SkipWithError(k.error.c_str());
  const int d = c.head_dim();
  const bool nystrom = c.attention == AttentionKind::kNystrom;
  if (k.head_q.empty()) {
    std::mt19937 engine(4);
    const nystream::LayerWeights& w = k.model->weights().layers[0];
    for (int h = 0; h < c.heads; ++h) {
      k.head_q.push_back(random_matrix(d, c.window, qk_scale(c), engine));
      k.head_k.push_back(random_matrix(d, c.window, qk_scale(c), engine));
      k.head_v.push_back(random_matrix(d, c.window, 1.0f, engine));
      if (!nystrom) continue;
      k.head_qt.push_back(w.landmark_queries.middleRows(h * d, d));
      k.head_kt.push_back(w.landmark_keys.middleRows(h * d, d));
    }
  }
  Eigen::MatrixXf heads(c.embed_dim, c.window);
  for (auto _ : state) {
    // Head by head, as BatchModel::attention does.
    for (int h = 0; h < c.heads; ++h) {
      if (nystrom)
        heads.middleRows(h * d, d) = nystream::nystrom_attention_head<float>(
            k.head_q[h], k.head_k[h], k.head_v[h], k.head_qt[h], k.head_kt[h], c.pinv,
            c.pinv_iterations);
      else
        heads.middleRows(h * d, d) =
            nystream::softmax_attention_head<float>(k.head_q[h], k.head_k[h], k.head_v[h]);
    }
    benchmark::DoNotOptimize(heads.data());
  }
  set_flops(state, nystrom ? nystream::batch_nystrom_attention_flops(c)
                           : nystream::batch_softmax_attention_flops(c));
}

void register_config(const std::string& name, ModelConfig c) {
  const std::string prefix = "attention/" + name + "/";
  const std::string m = "_m" + std::to_string(c.landmarks);
  auto add = [&](const std::string& variant, const char* mode, ModelConfig config, auto fn) {
    const std::string key = prefix + variant + "/" + mode;
    benchmark::RegisterBenchmark(key.c_str(), fn, key, config)->Unit(benchmark::kMicrosecond);
  };
  // The batch Nyström formula takes landmarks as given: fixed ones stand in for both.
  c.schedule = LandmarkSchedule::kFixed;
  add("nystrom_fixed" + m, "step", c, run_step);
  add("nystrom" + m, "batch", c, run_batch);
  c.schedule = LandmarkSchedule::kContinual;
  add("nystrom_continual" + m, "step", c, run_step);
  c.attention = AttentionKind::kSoftmax;
  add("softmax", "step", c, run_step);
  add("softmax", "batch", c, run_batch);
}

}  // namespace

void register_attention_benchmarks() {
  // ModelConfig's defaults are the audio config: n = 120, E = 192, h = 16, m = 8.
  register_config("audio_n120", ModelConfig{});
  for (int n : {64, 128, 256, 512, 1024, 2048, 4096}) {
    ModelConfig c;
    c.window = n;
    c.positional_period = n;
    register_config("sweep_n" + std::to_string(n), c);
  }
}
