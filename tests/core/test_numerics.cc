// Issue 3, checks 3, 4 and 6: Nyström against softmax as m grows, the iterative
// pseudo-inverse against the exact one, and the numerics of an endless stream
// (exp overflow, non-finite input).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <limits>

#include <Eigen/SVD>

#include "reference.h"

namespace nystream::testing {
namespace {

using Eigen::MatrixXd;

// A smooth multichannel signal, like consecutive audio or video features: a few
// random sinusoids per channel. Segment means of such a signal are representative
// of their segment, as the Nyströmformer assumes.
MatrixXd smooth_signal(int dims, int length, std::uint64_t seed) {
  std::mt19937_64 engine(seed);
  std::uniform_real_distribution<double> phase(0, 2 * M_PI), rate(0.02, 0.3);
  MatrixXd x = MatrixXd::Zero(dims, length);
  for (int i = 0; i < dims; ++i)
    for (int k = 0; k < 3; ++k) {
      const double p = phase(engine), w = rate(engine);
      for (int t = 0; t < length; ++t) x(i, t) += std::sin(w * t + p);
    }
  return x;
}

TEST(NystromApproachesSoftmax, ErrorFallsWithLandmarksAndVanishesAtMEqualsN) {
  const int n = 64, d = 16;
  const MatrixXd q = smooth_signal(d, n, 1) / std::pow(d, 0.25);
  const MatrixXd k = smooth_signal(d, n, 2) / std::pow(d, 0.25);
  const MatrixXd v = smooth_signal(d, n, 3);
  const MatrixXd exact = softmax_attention_head<double>(q, k, v);
  auto error_at = [&](int m) {
    const MatrixXd qt = segment_means<double>(q, m), kt = segment_means<double>(k, m);
    return (nystrom_attention_head<double>(q, k, v, qt, kt, PinvMode::kExact, 6) - exact)
               .cwiseAbs().maxCoeff() / exact.cwiseAbs().maxCoeff();
  };
  double previous = std::numeric_limits<double>::infinity();
  for (int m : {1, 2, 4, 8, 16, 32, 64}) {
    const double error = error_at(m);
    std::printf("smooth tokens, m = %2d: max relative error vs softmax %.3g\n", m, error);
    // One or two means of a whole window say little; from 4 landmarks on, each
    // doubling refines every segment and the error must fall.
    if (m >= 8) {
      EXPECT_LT(error, previous) << "m = " << m;
    }
    previous = error;
  }
  EXPECT_LT(previous, 1e-3);
}

// At m = n the landmarks are the tokens themselves: F = A = G = softmax(Q K^T),
// and F A^+ G V = F V exactly when F is invertible (random, not smooth, tokens:
// smooth ones make F numerically singular, and the exact pinv then truncates).
TEST(NystromApproachesSoftmax, EqualsSoftmaxAtMEqualsNWithExactPinv) {
  const int n = 32, d = 16;
  const MatrixXd q = random_tokens(d, n, 4).cast<double>() / std::pow(d, 0.25);
  const MatrixXd k = random_tokens(d, n, 5).cast<double>() / std::pow(d, 0.25);
  const MatrixXd v = random_tokens(d, n, 6).cast<double>();
  const MatrixXd exact = softmax_attention_head<double>(q, k, v);
  const MatrixXd nystrom = nystrom_attention_head<double>(q, k, v, q, k, PinvMode::kExact, 6);
  const double error = (nystrom - exact).cwiseAbs().maxCoeff() / exact.cwiseAbs().maxCoeff();
  std::printf("random tokens, m = n = %d: max relative error %.3g\n", n, error);
  EXPECT_LT(error, 1e-9);  // double round-off times cond(F), which is ~1e2 here
}

// softmax(Qt Kt^T) for Kt = Qt, 16-dimensional landmarks of a given spread:
// spread 1 makes |q_i|^2 ~ 16 dominate q_i.q_j ~ +-4, a well-conditioned kernel;
// spread 0.05 makes nearly equal rows (landmarks that are means of similar
// segments), the ill-conditioned case.
MatrixXd landmark_kernel(int m, double spread, std::uint64_t seed) {
  std::mt19937_64 engine(seed);
  std::normal_distribution<double> dist(0, 1);
  MatrixXd qt(16, m), kt(16, m);
  for (int i = 0; i < qt.size(); ++i) qt.data()[i] = dist(engine) * spread;
  kt = qt;
  MatrixXd a = qt.transpose() * kt;
  softmax_rows(a);
  return a;
}

double condition(const MatrixXd& a) {
  Eigen::JacobiSVD<MatrixXd> svd(a);
  return svd.singularValues()(0) / svd.singularValues()(a.rows() - 1);
}

TEST(IterativePinv, MatchesExactWhenWellConditionedAndStaysBoundedWhenNot) {
  PinvSolver<double> solver(8);
  MatrixXd iterative(8, 8), exact(8, 8);

  // Well conditioned: 6 iterations of the (third-order) Nyströmformer scheme have
  // converged to double precision.
  const MatrixXd good = landmark_kernel(8, 1.0, 5);
  solver.iterative(good, 6, iterative);
  solver.exact(good, exact);
  const double good_error = (iterative - exact).norm() / exact.norm();
  std::printf("well-conditioned (cond %.3g): relative error %.3g\n", condition(good), good_error);
  EXPECT_LT(condition(good), 20);
  EXPECT_LT(good_error, 1e-10);

  // Ill conditioned: the iteration has not converged along the small singular
  // values. Z_0 = A^T / (|A|_1 |A|_inf) gives A Z_0 eigenvalues x = s^2 / (|A|_1 |A|_inf)
  // and each step maps a small x to ~13/4 x, so after k steps directions with
  // s^2 < |A|_1 |A|_inf / (13/4)^k are unconverged: there Z ~ 0 instead of 1/s.
  // The bound that follows: |A Z A - A|_2 <= sqrt(|A|_1 |A|_inf / (13/4)^k), and Z
  // never exceeds A^+, so the Nyström product stays bounded instead of blowing up.
  const MatrixXd bad = landmark_kernel(8, 0.01, 6);
  solver.iterative(bad, 6, iterative);
  solver.exact(bad, exact);
  auto norm2 = [](const MatrixXd& x) { return Eigen::JacobiSVD<MatrixXd>(x).singularValues()(0); };
  const double bad_error = (iterative - exact).norm() / exact.norm();
  const double residual = norm2(bad * iterative * bad - bad);
  const double bound = std::sqrt(bad.cwiseAbs().colwise().sum().maxCoeff() *
                                 bad.cwiseAbs().rowwise().sum().maxCoeff() / std::pow(3.25, 6));
  std::printf("ill-conditioned (cond %.3g): relative error %.3g, |AZA - A|_2 %.3g (bound %.3g), "
              "|Z|_2/|A+|_2 %.3g\n", condition(bad), bad_error, residual, bound,
              norm2(iterative) / norm2(exact));
  EXPECT_GT(condition(bad), 1e4);
  EXPECT_LT(residual, bound);
  EXPECT_LE(norm2(iterative), norm2(exact) * (1 + 1e-9));
}

// Queries and keys scaled up until q^.k^ passes 88, where exp overflows float32.
TEST(StreamNumerics, ScoresAboveFloatExpRangeDoNotOverflow) {
  for (auto schedule : {LandmarkSchedule::kContinual, LandmarkSchedule::kFixed}) {
    for (int blocks : {1, 2}) {
      ModelConfig c = small_config(12, 4, blocks, schedule);
      ModelWeights w = random_weights(c, 21);
      for (auto& layer : w.layers) layer.qkv.topRows(2 * c.embed_dim) *= 8.0f;
      std::string error;
      const auto model = Model::create(c, std::move(w), &error);
      ASSERT_TRUE(model) << error;
      StreamState stream(model);
      Reference reference(*model);
      const int steps = 4 * c.window;
      const Eigen::MatrixXf history = random_tokens(c.input_dim, steps, 22, 2.0f);
      const std::vector<char> valid(steps, 1);
      // The largest attention score the stream meets, from the reference's projections.
      BatchModel<double>::Window all;
      all.tokens = history.cast<double>();
      all.valid.assign(steps, 1);
      for (int t = 0; t < steps; ++t) all.times.push_back(t);
      MatrixXd q, k, v;
      reference.batch().project(0, reference.batch().embed(all), all.valid, &q, &k, &v);
      const double top_score = (q.transpose() * k).maxCoeff();
      Eigen::VectorXf scores(c.classes);
      double worst = 0;
      for (int t = 0; t < steps; ++t) {
        ASSERT_EQ(stream.step(history.col(t).data(), scores.data()), StepStatus::kOk);
        ASSERT_TRUE(scores.allFinite()) << "step " << t;
        const Eigen::VectorXd expected = reference.logits(history, valid, t);
        // Relative to the logits' scale: large scores make attention nearly
        // one-hot, and the comparison stays at float32 round-off of the result.
        worst = std::max(worst, (stream.logits().cast<double>() - expected).cwiseAbs().maxCoeff() /
                                    std::max(1.0, expected.cwiseAbs().maxCoeff()));
      }
      std::printf("%s, %d block(s): top score %.0f, max relative logit error %.3g\n",
                  to_string(schedule), blocks, top_score, worst);
      EXPECT_GT(top_score, 88.0);
      EXPECT_LT(worst, 2e-3);
    }
  }
}

// The float32 batch model (nystream-infer --recompute, the benchmarks' re-encode)
// of a stacked fixed-landmark model slides exp sums along the receptive field;
// with scores spread past float32's exp range they must stay finite and agree
// with float64 (they went NaN once the largest score left the window).
TEST(BatchNumerics, StackedReencodeStaysFiniteWhenScoresSpreadPastFloatExpRange) {
  ModelConfig c = small_config(12, 4, 2, LandmarkSchedule::kFixed, PinvMode::kIterative,
                               Assembly::kStacked);
  ModelWeights w = random_weights(c, 21);
  for (auto& layer : w.layers) layer.qkv.topRows(2 * c.embed_dim) *= 8.0f;
  std::string error;
  const auto model = Model::create(c, std::move(w), &error);
  ASSERT_TRUE(model) << error;
  const BatchModel<float> single(*model, true);
  Reference reference(*model);
  const int steps = 3 * c.receptive_field();
  const Eigen::MatrixXf history = random_tokens(c.input_dim, steps, 23, 2.0f);
  const std::vector<char> valid(steps, 1);
  double worst = 0;
  for (int t = c.receptive_field(); t < steps; ++t) {
    const auto window = reference.window(history, valid, t);
    BatchModel<float>::Window w32{window.tokens.cast<float>(), window.times, window.valid};
    const Eigen::VectorXf logits = single.forward(w32, nullptr);
    ASSERT_TRUE(logits.allFinite()) << "step " << t;
    const Eigen::VectorXd expected = reference.batch().forward(window, nullptr);
    worst = std::max(worst, (logits.cast<double>() - expected).cwiseAbs().maxCoeff() /
                                std::max(1.0, expected.cwiseAbs().maxCoeff()));
  }
  std::printf("stacked float32 re-encode: max relative logit error %.3g\n", worst);
  EXPECT_LT(worst, 2e-3);
}

// A NaN, an Inf, and a finite token whose projection overflows are each reported
// and enter the window as padding; the stream equals the batch model on that
// window at every step, and once they leave, on the clean window.
TEST(StreamNumerics, NonFiniteTokensAreReportedAndTheStreamRecovers) {
  for (auto schedule : {LandmarkSchedule::kContinual, LandmarkSchedule::kFixed}) {
    for (int blocks : {1, 2, 3}) {  // 3: stacked
      const ModelConfig c = small_config(12, 4, blocks, schedule, PinvMode::kIterative,
                                         blocks == 3 ? Assembly::kStacked : Assembly::kRetroactive);
      const auto model = make_model(c);
      StreamState stream(model);
      Reference reference(*model);
      const int steps = 6 * c.window;
      Eigen::MatrixXf history = random_tokens(c.input_dim, steps, 31);
      std::vector<char> valid(steps, 1);
      const int bad[] = {20, 21, 40};
      history(3, bad[0]) = std::numeric_limits<float>::quiet_NaN();
      history(0, bad[1]) = std::numeric_limits<float>::infinity();
      history.col(bad[2]).setConstant(3e38f);  // finite, but W x overflows
      for (int t : bad) valid[t] = 0;
      Eigen::VectorXf scores = Eigen::VectorXf::Constant(c.classes, -1.0f);
      for (int t = 0; t < steps; ++t) {
        const Eigen::VectorXf before = scores;
        const StepStatus status = stream.step(history.col(t).data(), scores.data());
        if (!valid[t]) {
          EXPECT_EQ(status, StepStatus::kNonFiniteInput) << "step " << t;
          EXPECT_EQ(scores, before) << "scores must be left untouched";
          continue;
        }
        ASSERT_EQ(status, StepStatus::kOk) << "step " << t;
        ASSERT_TRUE(scores.allFinite());
        const Eigen::VectorXd expected = reference.logits(history, valid, t);
        ASSERT_LT((stream.logits().cast<double>() - expected).cwiseAbs().maxCoeff(), 2e-4)
            << to_string(schedule) << ", " << blocks << " block(s), step " << t;
        if (t >= bad[2] + c.receptive_field() + c.segment_length()) {
          // The window, and the one the landmarks came from, are clean again: the
          // same as if nothing bad had happened.
          std::vector<char> clean(steps, 1);
          Eigen::MatrixXf repaired = history;
          for (int b : bad) repaired.col(b).setZero();
          ASSERT_LT((stream.logits().cast<double>() - reference.logits(repaired, clean, t))
                        .cwiseAbs().maxCoeff(), 2e-4);
        }
      }
    }
  }
}

}  // namespace
}  // namespace nystream::testing
