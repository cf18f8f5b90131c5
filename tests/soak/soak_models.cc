// Soak test (issue 22): a shipped model streamed for 10^7 steps over real
// features, its logits checked against the batch model at >= 1000 points spread
// over the run.
//
//   soak-models --model FILE.safetensors --features TOKENS.npy
//               [--steps N] [--checks K] [--run R] [--seed S]
//
// Tokens: the real feature tokens (rows of TOKENS.npy, what nystream-features
// extracts from media with the model's own front end) replayed as a sequence of
// segments: each segment starts at a random row, runs 8..400 rows forwards or
// (one time in four) backwards, wrapping at the ends, and half of them scale
// every token's deviation from the features' mean by s, log-uniform in
// [0.5, 2] (contrast from flat to peaked attention; the mean stays the real
// one). So N tokens are covered without N distinct media tokens, in orders and
// at levels the stream has not met before; deterministic in --seed.
//
// Checks: K runs of R consecutive steps (the first at step 0, where the window
// still holds padding, the others evenly spread up to the end). At each checked
// step the stream's logits are compared with BatchModel<double> re-encoding the
// receptive field from the token history (stacked: blocks x (n - 1) + 1 tokens),
// with the model's own pinv of its fixed landmarks (`model_pinv`, as the stream
// uses it: the pinv is part of the model, not of the stream's arithmetic).
//
// Tolerance on each checked step: max_c |stream - batch| <= 2e-4 * max(1,
// max_c |batch logit| / 10). Up to |logit| = 10 this is the equivalence tests'
// absolute bound on logits (tests/core, tests/models), which the shipped models'
// logits (|logit| up to about 10 on real features) meet with an order of
// magnitude to spare. Beyond 10 (the scaled replay can push a logit there) it
// grows with the logit, as float32 rounding does: a logit is the classifier's
// dot product of the final LayerNorm output (entries O(1), E of them) with
// weights trained to large margins, and its rounding error is a fixed fraction
// of the size of those products' terms, not an absolute amount.
// Drift: the largest error in the second half of the run must stay within 4x
// that of the first half (+1e-6), as in tests/core/test_long_stream.cc.
//
// Prints the error curve (max error and max |logit| per 5 % of the run), the
// stepping rate (steps/s of step() alone) and the rows the stream rebuilt.
// Exit status 0 when every check passed, 1 otherwise, 2 on bad arguments.
#include <nystream/batch.h>
#include <nystream/model_file.h>
#include <nystream/stream_state.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <ctime>
#include <string>
#include <vector>

#include "npy.h"

namespace {

constexpr double kLogitTolerance = 2e-4;  // absolute, for |logit| <= kLogitScale
constexpr double kLogitScale = 10;         // beyond it, relative: 2e-5 x |logit|
constexpr int kBins = 20;  // 5 % of the run each

struct Options {
  std::string model, features;
  long long steps = 10000000;
  int checks = 1000;
  int run = 16;
  unsigned seed = 22;
};

bool parse(int argc, char** argv, Options* o) {
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string arg = argv[i], value = argv[i + 1];
    if (arg == "--model") o->model = value;
    else if (arg == "--features") o->features = value;
    else if (arg == "--steps") o->steps = std::atoll(value.c_str());
    else if (arg == "--checks") o->checks = std::atoi(value.c_str());
    else if (arg == "--run") o->run = std::atoi(value.c_str());
    else if (arg == "--seed") o->seed = static_cast<unsigned>(std::atoll(value.c_str()));
    else return false;
  }
  return argc % 2 == 1 && !o->model.empty() && !o->features.empty() && o->checks >= 1 &&
         o->run >= 1 && o->steps >= static_cast<long long>(o->checks) * o->run;
}

// The real tokens replayed in segments of varied order and scale (see above).
class Replay {
 public:
  Replay(const nystream::cli::NpyArray& real, unsigned seed)
      : rows_(real.rows()), dims_(real.cols()), engine_(seed) {
    tokens_ = Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(
                  real.data.data(), rows_, dims_).transpose();  // dims x rows
    mean_ = tokens_.rowwise().mean();
    next_segment();
  }

  // Writes the next token's dims_ features.
  void next(float* out) {
    if (left_ == 0) next_segment();
    Eigen::Map<Eigen::VectorXf> x(out, dims_);
    x = mean_ + scale_ * (tokens_.col(row_) - mean_);
    row_ = (row_ + direction_ + rows_) % rows_;
    --left_;
  }

  long long segments() const { return segments_; }

 private:
  void next_segment() {
    row_ = std::uniform_int_distribution<long long>(0, rows_ - 1)(engine_);
    left_ = std::uniform_int_distribution<long long>(8, 400)(engine_);
    direction_ = std::uniform_int_distribution<int>(0, 3)(engine_) == 0 ? -1 : 1;
    const bool scaled = std::uniform_int_distribution<int>(0, 1)(engine_);
    scale_ = scaled ? static_cast<float>(std::exp(std::uniform_real_distribution<double>(
                          std::log(0.5), std::log(2.0))(engine_)))
                    : 1.0f;
    ++segments_;
  }

  long long rows_, dims_;
  std::mt19937_64 engine_;
  Eigen::MatrixXf tokens_;
  Eigen::VectorXf mean_;
  long long row_ = 0, left_ = 0, segments_ = 0;
  int direction_ = 1;
  float scale_ = 1;
};

// CPU time of this process: on a machine shared with other work, the rate per CPU
// second is the stream's own cost; the wall rate also counts the waits.
double cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

struct Bin {
  double error = 0, logit = 0;
  long long checked = 0;
};

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (!parse(argc, argv, &o)) {
    std::fprintf(stderr,
                 "usage: soak-models --model FILE --features TOKENS.npy [--steps N] [--checks K] "
                 "[--run R] [--seed S]  (N >= K R)\n");
    return 2;
  }
  std::string error;
  const auto model = nystream::load_model(o.model, &error);
  nystream::cli::NpyArray real;
  if (!model || !nystream::cli::read_npy(o.features, &real, &error)) {
    std::fprintf(stderr, "soak-models: %s\n", error.c_str());
    return 1;
  }
  const nystream::ModelConfig& c = model->config();
  if (real.cols() != c.input_dim || real.rows() < 2) {
    std::fprintf(stderr, "soak-models: %s: %lld x %lld tokens, the model needs input_dim %d\n",
                 o.features.c_str(), static_cast<long long>(real.rows()),
                 static_cast<long long>(real.cols()), c.input_dim);
    return 1;
  }
  if (c.attention == nystream::AttentionKind::kNystrom &&
      c.schedule == nystream::LandmarkSchedule::kContinual) {
    // The batch model equals a continual-landmark stream only at landmark updates.
    std::fprintf(stderr, "soak-models: %s has continual landmarks; this soak checks fixed ones\n",
                 o.model.c_str());
    return 1;
  }

  nystream::StreamState stream(model);
  const nystream::BatchModel<double> batch(*model, /*model_pinv=*/true);
  Replay replay(real, o.seed);
  const int field = c.receptive_field();
  // The token history: the last `field` tokens, column t % field.
  Eigen::MatrixXf history(c.input_dim, field);
  nystream::BatchModel<double>::Window window;
  window.tokens.resize(c.input_dim, field);
  window.times.assign(field, 0);
  window.valid.assign(field, 0);

  std::printf("%s: %s, %d block(s)%s, n = %d, m = %d, receptive field %d; %lld real tokens of "
              "%lld features (%s); %lld steps, %d checks of %d consecutive steps\n",
              o.model.c_str(), model->info().name.c_str(), c.blocks, c.stacked() ? " stacked" : c.retroactive() ? " retroactive" : "",
              c.window, c.landmarks, field, static_cast<long long>(real.rows()),
              static_cast<long long>(real.cols()), o.features.c_str(), o.steps, o.checks, o.run);
  std::fflush(stdout);

  std::vector<Bin> bins(kBins);
  Eigen::VectorXf scores(c.classes);
  long long failures = 0, bad_steps = 0, checked = 0, next_check = 0, check_index = 0;
  double worst = 0, worst_ratio = 0;
  double step_seconds = 0, step_cpu = 0;
  const auto begin = std::chrono::steady_clock::now();
  int printed = 0;  // bins printed so far: each as soon as the run has left it
  auto print_bins = [&](int upto) {
    for (; printed < upto; ++printed) {
      const Bin& b = bins[printed];
      std::printf("  steps %9lld .. %9lld  max |logit error| %.3g  (%lld checked; |logit| <= %.3g)  "
                  "%.0f s\n",
                  printed * o.steps / kBins, (printed + 1) * o.steps / kBins, b.error, b.checked,
                  b.logit,
                  std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count());
      std::fflush(stdout);
    }
  };
  std::printf("max |logit error| per 5 %% of the run (checked steps; max |batch logit|; wall "
              "time):\n");
  for (long long t = 0; t < o.steps;) {
    // Step freely up to the next check, timing step() alone.
    const long long until = std::min(o.steps, next_check);
    if (t < until) {
      const auto start = std::chrono::steady_clock::now();
      const double cpu_start = cpu_seconds();
      for (; t < until; ++t) {
        float* x = history.col(t % field).data();
        replay.next(x);
        if (stream.step(x, scores.data()) != nystream::StepStatus::kOk) ++bad_steps;
      }
      step_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      step_cpu += cpu_seconds() - cpu_start;
      continue;
    }
    // A checked run of o.run consecutive steps.
    for (int r = 0; r < o.run && t < o.steps; ++r, ++t) {
      float* x = history.col(t % field).data();
      replay.next(x);
      if (stream.step(x, scores.data()) != nystream::StepStatus::kOk) ++bad_steps;
      for (int j = 0; j < field; ++j) {
        const long long time = t - field + 1 + j;
        window.times[j] = std::max(time, 0LL);
        window.valid[j] = time >= 0;
        if (time >= 0)
          window.tokens.col(j) = history.col(time % field).cast<double>();
        else
          window.tokens.col(j).setZero();
      }
      const Eigen::VectorXd reference = batch.forward(window, nullptr);
      const double err = (stream.logits().cast<double>() - reference).cwiseAbs().maxCoeff();
      const double size = reference.cwiseAbs().maxCoeff();
      const double bound = kLogitTolerance * std::max(1.0, size / kLogitScale);
      Bin& bin = bins[std::min<long long>(kBins - 1, t * kBins / o.steps)];
      bin.error = std::max(bin.error, err);
      bin.logit = std::max(bin.logit, size);
      ++bin.checked;
      ++checked;
      worst = std::max(worst, err);
      worst_ratio = std::max(worst_ratio, err / bound);
      if (!(err <= bound)) {  // NaN fails
        if (failures < 10)
          std::printf("FAIL step %lld: max |logit error| %.3g > %.3g (max |logit| %.3g)\n", t, err,
                      bound, size);
        ++failures;
      }
    }
    ++check_index;
    print_bins(static_cast<int>(std::min<long long>(kBins, t * kBins / o.steps)));
    // Checks at 0, then evenly spread so the last run ends at the last step.
    next_check = check_index < o.checks
                     ? check_index * (o.steps - o.run) / (o.checks - 1)
                     : o.steps;
  }
  print_bins(kBins);
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();

  double first_half = 0, second_half = 0;
  for (int b = 0; b < kBins; ++b)
    (b < kBins / 2 ? first_half : second_half) =
        std::max(b < kBins / 2 ? first_half : second_half, bins[b].error);
  // Rates of the unchecked steps (all but checks x run), timed around the loops that
  // make each token (a scaled copy of D_in floats) and step it.
  const long long free_steps = o.steps - checked;
  std::printf("%lld steps in %.1f s wall (checks included); step() alone: %.0f steps/s wall "
              "(%.2f us/step), %.0f steps per CPU second (%.2f us); %lld replay segments; rows "
              "rebuilt %lld\n",
              o.steps, wall, free_steps / step_seconds, 1e6 * step_seconds / free_steps,
              free_steps / step_cpu, 1e6 * step_cpu / free_steps, replay.segments(),
              static_cast<long long>(stream.rows_rebuilt()));
  std::printf("%lld steps checked against BatchModel<double> at %lld points: max |logit error| "
              "%.3g, worst error / bound %.3g (bound 2e-4 x max(1, max |logit| / 10)); first half %.3g, "
              "second half %.3g\n",
              checked, check_index, worst, worst_ratio, first_half, second_half);
  bool ok = true;
  if (failures) {
    std::printf("FAIL %lld checked steps over the bound\n", failures);
    ok = false;
  }
  if (bad_steps) {
    std::printf("FAIL %lld steps did not return kOk\n", bad_steps);
    ok = false;
  }
  if (check_index < o.checks) {
    std::printf("FAIL %lld checks run, %d asked\n", check_index, o.checks);
    ok = false;
  }
  // No growth: drift of one float rounding per step would be ~10^7 * 6e-8 = 0.6.
  if (!(second_half < 4 * first_half + 1e-6)) {
    std::printf("FAIL the error grows: second half %.3g vs first half %.3g\n", second_half,
                first_half);
    ok = false;
  }
  std::printf("%s\n", ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}
