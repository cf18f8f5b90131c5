// Streams synthetic features through a continual Nyström transformer (audio
// configuration, random weights) and shows what the engine does: per-token
// scores, time per step against re-encoding the window, and agreement with the
// batch model. Until trained models and media front ends ship, this is the
// project's runnable end-to-end job.
#include <nystream/nystream.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

int main(int argc, char** argv) {
  nystream::ModelConfig config;  // audio: n = 120, m = 8, E = 192, h = 16, F = 1024
  config.schedule = nystream::LandmarkSchedule::kFixed;
  const long steps = argc > 1 ? std::atol(argv[1]) : 3000;
  std::string error;
  const auto model = nystream::Model::create(config, nystream::random_weights(config, 1), &error);
  if (!model) {
    std::fprintf(stderr, "nystream-stream-demo: %s\n", error.c_str());
    return 1;
  }
  nystream::StreamState stream(model);
  nystream::BatchModel<float> batch(*model);

  // A slowly varying 64-band "spectrum" with noise, 10 tokens per second.
  std::mt19937 engine(3);
  std::normal_distribution<float> noise(0.0f, 0.3f);
  std::vector<float> features(config.input_dim), scores(config.classes);
  nystream::BatchModel<float>::Window window;
  window.tokens.setZero(config.input_dim, config.window);
  window.times.assign(config.window, 0);
  window.valid.assign(config.window, 0);

  double step_seconds = 0, batch_seconds = 0, worst = 0;
  long batch_runs = 0;
  for (long t = 0; t < steps; ++t) {
    for (int i = 0; i < config.input_dim; ++i)
      features[i] = std::sin(0.05f * t * (1 + i % 7) + i) + noise(engine);
    const auto start = std::chrono::steady_clock::now();
    stream.step(features.data(), scores.data());
    step_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

    // The window the batch model re-encodes: shift left, append the new token.
    window.tokens.leftCols(config.window - 1) = window.tokens.rightCols(config.window - 1).eval();
    window.tokens.col(config.window - 1) = Eigen::Map<const Eigen::VectorXf>(features.data(), config.input_dim);
    window.times.erase(window.times.begin());
    window.times.push_back(t);
    window.valid.erase(window.valid.begin());
    window.valid.push_back(1);
    if (t % 100 == 99) {
      const auto batch_start = std::chrono::steady_clock::now();
      const Eigen::VectorXf logits = batch.forward(window, nullptr);
      batch_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - batch_start).count();
      ++batch_runs;
      worst = std::max(worst, static_cast<double>((logits - stream.logits()).cwiseAbs().maxCoeff()));
    }
    if (t % 500 == 499) {
      std::printf("t = %6.1f s  scores:", (t + 1) / 10.0);
      for (float s : scores) std::printf(" %.3f", s);
      std::printf("\n");
    }
  }
  const double per_step = step_seconds / steps, per_batch = batch_seconds / batch_runs;
  std::printf("\n%ld tokens, window n = %d, landmarks m = %d, E = %d, heads = %d, F = %d\n", steps,
              config.window, config.landmarks, config.embed_dim, config.heads, config.ff_dim);
  std::printf("continual step:          %8.1f us/token (%.0fx real time at 10 tokens/s)\n",
              per_step * 1e6, 0.1 / per_step);
  std::printf("batch window re-encode:  %8.1f us/token (%.1fx slower)\n", per_batch * 1e6,
              per_batch / per_step);
  std::printf("max |logit difference| continual vs batch over %ld checks: %.2g\n", batch_runs, worst);
  return worst < 1e-3 ? 0 : 1;
}
