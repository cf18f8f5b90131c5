// Issue 18: the convolutional stem. ConvStem (im2col products, float) equals the
// direct-loop reference (batch.h stem_pooled, double) on every token, and a
// model with a stem streams exactly as its batch model runs from scratch on
// every step's window, for the two shapes the front ends use (audio: a 7-band
// convolution over 64 band means and stds; video: two stride-2 3 x 3 layers
// over a 32 x 24 frame and its difference) and an odd one (even kernels,
// unequal strides, strips that do not divide the height), in every assembly.
#include <gtest/gtest.h>

#include <cstdio>

#include "reference.h"

namespace nystream::testing {
namespace {

// Same reasoning as test_equivalence.cc's kLogitTolerance (2e-4 on O(1) logits):
// the stem adds a few float32 reductions (at most 144 products per output, a
// mean over 192 positions and a projection of 64 values) before the layers.
constexpr double kLogitTolerance = 2e-4;
// Pooled stem values are O(1) sums of at most 144 float32 products per layer.
constexpr double kPooledTolerance = 1e-5;

StemLayer layer(int channels, int kh, int kw, int sh = 1, int sw = 1) {
  StemLayer s;
  s.channels = channels;
  s.kernel_height = kh, s.kernel_width = kw;
  s.stride_height = sh, s.stride_width = sw;
  return s;
}

// The audio use: 128 log-mel values (64 band means, then 64 band stds) all read
// by the linear projection and, as a 2 x 64 x 1 tensor, by the stem.
ModelConfig audio_config(int blocks = 1, Assembly assembly = Assembly::kRetroactive) {
  ModelConfig c = small_config(16, 4, blocks, LandmarkSchedule::kFixed, PinvMode::kIterative, assembly);
  c.input_dim = 128;
  c.stem.input_channels = 2, c.stem.input_height = 64, c.stem.input_width = 1;
  c.stem.layers = {layer(8, 7, 1)};
  c.stem.pool_strips = 4;
  return c;
}

// The video use: a 20-value hand descriptor, then a 32 x 24 frame and its
// difference to the previous token's, read by the stem only.
ModelConfig video_config(int blocks = 1, LandmarkSchedule schedule = LandmarkSchedule::kContinual) {
  ModelConfig c = small_config(16, 4, blocks, schedule);
  c.input_dim = 20 + 2 * 24 * 32;
  c.linear_inputs = 20;
  c.stem.input_offset = 20;
  c.stem.input_channels = 2, c.stem.input_height = 24, c.stem.input_width = 32;
  c.stem.layers = {layer(8, 3, 3, 2, 2), layer(16, 3, 3, 2, 2)};
  c.stem.pool_strips = 2;
  return c;
}

// Even kernels (pad k / 2 both sides: the output is one longer), unequal
// strides, an offset inside the linear part, 3 strips of a 5-row map.
ModelConfig odd_config(int blocks = 2, Assembly assembly = Assembly::kRetroactive) {
  ModelConfig c = small_config(12, 3, blocks, LandmarkSchedule::kContinual, PinvMode::kIterative, assembly);
  c.input_dim = 120;
  c.linear_inputs = 30;
  c.stem.input_offset = 4;
  c.stem.input_channels = 3, c.stem.input_height = 9, c.stem.input_width = 4;
  c.stem.layers = {layer(5, 4, 2, 2, 3), layer(4, 1, 3, 1, 1)};
  c.stem.pool_strips = 3;
  return c;
}

TEST(Stem, OutputSizes) {
  const ModelConfig v = video_config();
  EXPECT_EQ(v.stem.output_height(0), 12);
  EXPECT_EQ(v.stem.output_width(0), 16);
  EXPECT_EQ(v.stem.output_height(1), 6);
  EXPECT_EQ(v.stem.output_width(1), 8);
  EXPECT_EQ(v.stem.pooled_size(), 16 * 4);
  // 2 (12 16 8 2 9 + 6 8 16 8 9)
  EXPECT_EQ(v.stem.conv_flops(), 2.0 * (12 * 16 * 8 * 18 + 6 * 8 * 16 * 72));
  const ModelConfig o = odd_config();
  EXPECT_EQ(o.stem.output_height(0), 5);  // (9 + 4 - 4) / 2 + 1
  EXPECT_EQ(o.stem.output_width(0), 2);   // (4 + 2 - 2) / 3 + 1
  EXPECT_EQ(o.stem.output_height(1), 5);
  EXPECT_EQ(o.stem.output_width(1), 2);
  EXPECT_EQ(audio_config().stem.pooled_size(), 8 * 6);
}

// flops.h: the stem per token embedded; the input projection reads linear_inputs.
TEST(Stem, FlopCount) {
  const ModelConfig v = video_config();
  const double stem = v.stem.conv_flops() + 2.0 * v.embed_dim * v.stem.pooled_size();
  EXPECT_EQ(stem_flops(v), stem);
  EXPECT_EQ(continual_model_flops(v).stem, stem);
  EXPECT_EQ(batch_model_flops(v).stem, v.window * stem);
  ModelConfig plain = v;
  plain.stem = StemConfig{};
  plain.input_dim = 20;
  plain.linear_inputs = -1;
  EXPECT_EQ(stem_flops(plain), 0);
  EXPECT_EQ(continual_model_flops(v).total(), continual_model_flops(plain).total() + stem);
  EXPECT_EQ(batch_model_flops(v).total(), batch_model_flops(plain).total() + v.window * stem);
}

TEST(Stem, ValidateNamesTheField) {
  ModelConfig c = video_config();
  c.stem.input_offset = 21;
  EXPECT_EQ(c.validate(), "stem.input_shape = [2, 24, 32] reads 1536 values from stem.input_offset = "
                          "21, past input_dim = 1556");
  c = video_config();
  c.stem.layers[1].kernel_width = 0;
  EXPECT_EQ(c.validate(), "stem.layers[1].kernel[1] = 0, expected 1 .. 31");
  c = video_config();
  c.stem.pool_strips = 7;
  EXPECT_EQ(c.validate(), "stem.pool_strips = 7, expected 0 .. 6 (the last feature map's height)");
  c = video_config();
  c.linear_inputs = 1557;
  EXPECT_EQ(c.validate(), "linear_inputs = 1557, expected 1 .. 1556 (input_dim)");
  c = video_config();
  c.stem.layers[0].channels = 1024;
  c.stem.layers[1].channels = 1024;
  c.stem.layers[1].kernel_height = c.stem.layers[1].kernel_width = 31;
  EXPECT_NE(c.validate().find("FLOPs per token, expected at most"), std::string::npos) << c.validate();
}

// ConvStem against the direct loops, token by token.
TEST(Stem, ConvStemEqualsDirectLoops) {
  for (const ModelConfig& c : {audio_config(), video_config(), odd_config()}) {
    const ModelWeights w = random_weights(c, 5);
    ConvStem stem(c.stem, w.stem);
    std::vector<Eigen::MatrixXd> convs;
    std::vector<Eigen::VectorXd> biases;
    for (const auto& conv : w.stem.convs) {
      convs.push_back(conv.weight.cast<double>());
      biases.push_back(conv.bias.cast<double>());
    }
    const Eigen::MatrixXf tokens = random_tokens(c.input_dim, 20, 3);
    double worst = 0;
    for (int t = 0; t < tokens.cols(); ++t) {
      Eigen::VectorXf out = Eigen::VectorXf::Zero(c.embed_dim);
      stem.add_to(tokens.col(t).data() + c.stem.input_offset, out);
      const Eigen::VectorXd input = tokens.col(t).cast<double>();
      const Eigen::VectorXd pooled = stem_pooled<double>(c.stem, convs, biases, input.data() + c.stem.input_offset);
      ASSERT_EQ(stem.pooled().size(), pooled.size());
      worst = std::max(worst, (stem.pooled().cast<double>() - pooled).cwiseAbs().maxCoeff());
      const Eigen::VectorXd projected = w.stem.proj.cast<double>() * pooled;
      EXPECT_LT((out.cast<double>() - projected).cwiseAbs().maxCoeff(), kPooledTolerance * 10);
    }
    EXPECT_LT(worst, kPooledTolerance);
    std::printf("stem %dx%dx%d: max |pooled error| %.3g\n", c.stem.input_channels, c.stem.input_height,
                c.stem.input_width, worst);
  }
}

void expect_stream_equals_batch(const ModelConfig& c, const char* label) {
  const auto model = make_model(c);
  StreamState stream(model);
  Reference reference(*model);
  const int steps = 5 * c.window + 3;
  const Eigen::MatrixXf history = random_tokens(c.input_dim, steps, 21);
  std::vector<char> valid(steps, 1);
  Eigen::VectorXf scores(c.classes);
  double worst = 0;
  for (int t = 0; t < steps; ++t) {
    ASSERT_EQ(stream.step(history.col(t).data(), scores.data()), StepStatus::kOk) << label;
    const Eigen::VectorXd expected = reference.logits(history, valid, t);
    const double error = (stream.logits().cast<double>() - expected).cwiseAbs().maxCoeff();
    worst = std::max(worst, error);
    ASSERT_LT(error, kLogitTolerance) << label << " step " << t;
  }
  std::printf("%-40s max |logit error| over %d steps: %.3g\n", label, steps, worst);
}

TEST(Stem, StreamEqualsBatchModelAtEveryStep) {
  expect_stream_equals_batch(audio_config(), "audio 2x64x1 k7 g4, fixed, 1 block");
  expect_stream_equals_batch(audio_config(2), "audio, fixed, 2 blocks");
  expect_stream_equals_batch(video_config(), "video 2x24x32 2 x s2 g2, continual");
  expect_stream_equals_batch(video_config(1, LandmarkSchedule::kFixed), "video, fixed");
  expect_stream_equals_batch(odd_config(), "odd, continual, 2 blocks");
  expect_stream_equals_batch(odd_config(3, Assembly::kStacked), "odd, continual, stacked 3");
  // 16-bit linear weights (the stem stays float32): the packed input projection
  // reads the linear_inputs leading values only.
  ModelConfig half = video_config();
  half.weight_type = WeightType::kBF16;
  expect_stream_equals_batch(half, "video, continual, bf16 weights");
}

// The stem changes the scores (a zero projection would pass every check above).
TEST(Stem, ContributesToTheScores) {
  const ModelConfig c = video_config();
  ModelWeights w = random_weights(c, 7);
  std::string error;
  const auto with = Model::create(c, w, &error);
  ASSERT_TRUE(with) << error;
  w.stem.proj.setZero();
  const auto without = Model::create(c, w, &error);
  ASSERT_TRUE(without) << error;
  StreamState a(with), b(without);
  const Eigen::MatrixXf tokens = random_tokens(c.input_dim, 10, 4);
  Eigen::VectorXf sa(c.classes), sb(c.classes);
  double gap = 0;
  for (int t = 0; t < tokens.cols(); ++t) {
    a.step(tokens.col(t).data(), sa.data());
    b.step(tokens.col(t).data(), sb.data());
    gap = std::max(gap, double((a.logits() - b.logits()).cwiseAbs().maxCoeff()));
  }
  EXPECT_GT(gap, 1e-2);
}

// A non-finite value the stem reads drops the token (as for the linear part).
TEST(Stem, NonFiniteStemInputDropsTheToken) {
  const ModelConfig c = video_config();
  const auto model = make_model(c);
  StreamState stream(model);
  Eigen::MatrixXf tokens = random_tokens(c.input_dim, 3, 8);
  tokens(c.input_dim - 1, 1) = std::numeric_limits<float>::quiet_NaN();
  Eigen::VectorXf scores(c.classes);
  EXPECT_EQ(stream.step(tokens.col(0).data(), scores.data()), StepStatus::kOk);
  EXPECT_EQ(stream.step(tokens.col(1).data(), scores.data()), StepStatus::kNonFiniteInput);
  EXPECT_EQ(stream.step(tokens.col(2).data(), scores.data()), StepStatus::kOk);
}

}  // namespace
}  // namespace nystream::testing
