// Issue 3, check 5: a million-step stream stays equal to a fresh batch
// recomputation. Cached sums lose a little precision with every subtracted token;
// rows rebuilt at least every n steps (continual landmarks: when a landmark
// enters; fixed: on a rota) and whenever a row's sum collapses keep that loss from
// accumulating. The curve of errors at checkpoints is printed.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "reference.h"

namespace nystream::testing {
namespace {

constexpr long kSteps = 1000000;
constexpr int kCheckpoints = 20;
// The per-step tolerance of the equivalence tests: a long stream must meet the
// same bound as a short one.
constexpr double kLogitTolerance = 2e-4;

void run(LandmarkSchedule schedule, int blocks, Assembly assembly = Assembly::kRetroactive) {
  const ModelConfig c = small_config(16, 4, blocks, schedule, PinvMode::kIterative, assembly);
  const auto model = make_model(c);
  StreamState stream(model);
  Reference reference(*model);
  // Features whose scale swings slowly between 0.2 and 5: attention moves between
  // flat and peaked, so offsets rise and fall and rows get rebuilt for both reasons.
  Eigen::MatrixXf history = random_tokens(c.input_dim, kSteps, 71);
  for (long t = 0; t < kSteps; ++t)
    history.col(t) *= static_cast<float>(std::exp(1.6 * std::sin(t * 2e-4)));
  const std::vector<char> valid(kSteps, 1);

  Eigen::VectorXf scores(c.classes);
  std::vector<double> curve;
  const long every = kSteps / kCheckpoints;
  for (long t = 0; t < kSteps; ++t) {
    ASSERT_EQ(stream.step(history.col(t).data(), scores.data()), StepStatus::kOk);
    // Each checkpoint compares a whole segment of steps, so every landmark phase
    // is covered.
    const long phase = (t + 1) % every;
    if (phase != 0 && phase < every - c.segment_length()) continue;
    const double error =
        (stream.logits().cast<double>() - reference.logits(history, valid, t)).cwiseAbs().maxCoeff();
    if (phase == every - c.segment_length()) curve.push_back(0);
    curve.back() = std::max(curve.back(), error);
  }
  std::printf("%s landmarks, %d block(s) %s; rows rebuilt %lld; max |logit error| per %ld steps:\n",
              to_string(schedule), blocks, to_string(assembly), static_cast<long long>(stream.rows_rebuilt()), every);
  for (std::size_t i = 0; i < curve.size(); ++i)
    std::printf("  step %7ld  %.3g\n", (i + 1) * every, curve[i]);
  for (std::size_t i = 0; i < curve.size(); ++i)
    EXPECT_LT(curve[i], kLogitTolerance) << "checkpoint " << i;
  // No growth: drift of one rounding per step would reach ~1e6 * 6e-8 = 0.06.
  // Medians, not maxima: one checkpoint can catch a spike (a row whose sum sits
  // at the rebuild threshold) in either half without anything accumulating.
  const auto median = [](std::vector<double> half) {
    std::nth_element(half.begin(), half.begin() + half.size() / 2, half.end());
    return half[half.size() / 2];
  };
  const auto middle = curve.begin() + curve.size() / 2;
  EXPECT_LT(median({middle, curve.end()}), 4 * median({curve.begin(), middle}) + 1e-6);
}

TEST(LongStream, ContinualLandmarksOneBlock) { run(LandmarkSchedule::kContinual, 1); }
TEST(LongStream, FixedLandmarksOneBlock) { run(LandmarkSchedule::kFixed, 1); }
TEST(LongStream, ContinualLandmarksTwoBlocks) { run(LandmarkSchedule::kContinual, 2); }
TEST(LongStream, FixedLandmarksTwoBlocks) { run(LandmarkSchedule::kFixed, 2); }
TEST(LongStream, ContinualLandmarksThreeStacked) {
  run(LandmarkSchedule::kContinual, 3, Assembly::kStacked);
}
TEST(LongStream, FixedLandmarksThreeStacked) { run(LandmarkSchedule::kFixed, 3, Assembly::kStacked); }

}  // namespace
}  // namespace nystream::testing
