// 16-bit weights (issue 21): conversions round to nearest even and round-trip
// every 16-bit value; every kernel this CPU has equals a double-precision
// product; a 16-bit model's stream equals the batch model on the same rounded
// weights at every step (the equivalence tests' 2e-4), stays close to the
// float32 model it was rounded from, allocates nothing per step, and survives a
// model file round trip bit for bit. The kernels over many columns (a batched
// step) give each column bit for bit its single-column result.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>

#include "reference.h"
// After Eigen's headers, which declare the same allocator functions.
#include "allocation_counter.h"

namespace nystream::testing {
namespace {

float float_bits(std::uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

TEST(Weights16, HalfConversionsRoundToNearestEven) {
  EXPECT_EQ(to_half(1.0f), 0x3c00);
  EXPECT_EQ(to_half(-2.0f), 0xc000);
  EXPECT_EQ(to_half(65504.0f), 0x7bff);
  EXPECT_EQ(to_half(65519.0f), 0x7bff);  // below the midpoint to 65536
  EXPECT_EQ(to_half(65520.0f), 0x7c00);  // the midpoint: ties to even = Inf
  EXPECT_EQ(to_half(std::ldexp(1.0f, -24)), 0x0001);  // the smallest subnormal
  EXPECT_EQ(to_half(std::ldexp(1.0f, -25)), 0x0000);  // half of it: ties to even = 0
  EXPECT_EQ(to_half(1.0f + std::ldexp(1.0f, -11)), 0x3c00);      // tie: to even
  EXPECT_EQ(to_half(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);  // tie: to even
  EXPECT_EQ(to_half(1.0f + std::ldexp(1.0f, -11) + std::ldexp(1.0f, -20)), 0x3c01);
  EXPECT_EQ(to_bfloat16(1.0f), 0x3f80);
  EXPECT_EQ(to_bfloat16(float_bits(0x3f808000u)), 0x3f80);  // tie: to even
  EXPECT_EQ(to_bfloat16(float_bits(0x3f818000u)), 0x3f82);  // tie: to even
  EXPECT_EQ(to_bfloat16(float_bits(0x3f808001u)), 0x3f81);
  // Every finite 16-bit value widens and narrows back to itself.
  for (std::uint32_t h = 0; h < 0x10000; ++h) {
    const float f = from_half(static_cast<std::uint16_t>(h));
    if (std::isfinite(f)) {
      ASSERT_EQ(to_half(f), h) << std::hex << h;
    }
    const float b = from_bfloat16(static_cast<std::uint16_t>(h));
    if (std::isfinite(b)) {
      ASSERT_EQ(to_bfloat16(b), h) << std::hex << h;
    }
  }
}

// Every kernel, both types, shapes with and without vector tails: W x equals
// the double-precision product of the widened values to float32 accumulation.
TEST(Weights16, EveryKernelEqualsTheDoubleProduct) {
  std::printf("kernels on this CPU:");
  for (const char* k : available_kernels()) std::printf(" %s", k);
  std::printf(" (multiply() uses %s)\n", active_kernel());
  ASSERT_GE(available_kernels().size(), 1u);
  for (WeightType type : {WeightType::kF16, WeightType::kBF16})
    for (int rows : {1, 3, 4, 5, 9, 64})
      for (int cols : {1, 7, 8, 15, 16, 17, 33, 67, 192}) {
        const Eigen::MatrixXf w = random_tokens(rows, cols, rows * 100 + cols);
        const Eigen::VectorXf x = random_tokens(cols, 1, cols + 7).col(0);
        const Matrix16 packed(w, type);
        Eigen::MatrixXd widened(rows, cols);
        for (int r = 0; r < rows; ++r)
          for (int c = 0; c < cols; ++c) widened(r, c) = round_to(type, w(r, c));
        const Eigen::VectorXd want = widened * x.cast<double>();
        const Eigen::VectorXd scale = widened.cwiseAbs() * x.cast<double>().cwiseAbs();
        for (const char* kernel : available_kernels()) {
          Eigen::VectorXf y = Eigen::VectorXf::Constant(rows, -1.0f);
          ASSERT_TRUE(multiply_with(kernel, packed, x.data(), y.data()));
          for (int r = 0; r < rows; ++r)
            ASSERT_NEAR(y[r], want[r], 4e-7 * cols * scale[r] + 1e-30)
                << kernel << " " << to_string(type) << " " << rows << "x" << cols << " row " << r;
        }
      }
}

// Many columns at once (StreamBatch), strided as blocks of larger matrices:
// each column bit for bit what the kernel gives that column alone.
TEST(Weights16, ColumnsEqualEachColumnAlone) {
  for (WeightType type : {WeightType::kF16, WeightType::kBF16})
    for (int rows : {1, 5, 64})
      for (int cols : {7, 16, 33, 192})
        for (int columns : {2, 3, 4, 5, 9}) {
          const Matrix16 packed(random_tokens(rows, cols, rows + cols), type);
          const Eigen::MatrixXf x = random_tokens(cols + 3, columns, columns);  // stride cols + 3
          for (const char* kernel : available_kernels()) {
            Eigen::MatrixXf y = Eigen::MatrixXf::Constant(rows + 2, columns, -1.0f);
            ASSERT_TRUE(multiply_with(kernel, packed, x.data(), x.rows(), columns, y.data(), y.rows()));
            for (int c = 0; c < columns; ++c) {
              Eigen::VectorXf alone(rows);
              ASSERT_TRUE(multiply_with(kernel, packed, x.col(c).data(), alone.data()));
              ASSERT_EQ(Eigen::VectorXf(y.col(c).head(rows)), alone)
                  << kernel << " " << to_string(type) << " " << rows << "x" << cols << " column " << c
                  << " of " << columns;
              ASSERT_EQ(y(rows, c), -1.0f);  // nothing past the column's rows
            }
          }
        }
}

ModelConfig config16(WeightType type, int blocks, LandmarkSchedule schedule, Assembly assembly) {
  ModelConfig c = small_config(16, 4, blocks, schedule, PinvMode::kIterative, assembly);
  c.weight_type = type;
  return c;
}

// The batch reference reads the model's float32 weights, which hold the rounded
// values: only the step reads 16-bit, so the per-step bound is the float one.
TEST(Weights16, StreamEqualsBatchOnTheRoundedWeightsAtEveryStep) {
  for (WeightType type : {WeightType::kF16, WeightType::kBF16})
    for (auto [blocks, schedule, assembly] :
         {std::tuple{1, LandmarkSchedule::kContinual, Assembly::kRetroactive},
          std::tuple{2, LandmarkSchedule::kFixed, Assembly::kStacked},
          std::tuple{3, LandmarkSchedule::kContinual, Assembly::kStacked},
          std::tuple{2, LandmarkSchedule::kFixed, Assembly::kRetroactive}}) {
      const ModelConfig c = config16(type, blocks, schedule, assembly);
      const auto model = make_model(c);
      ASSERT_NE(model->packed(), nullptr);
      StreamState stream(model);
      Reference reference(*model);
      const int steps = 4 * c.receptive_field() + 7;
      const Eigen::MatrixXf tokens = random_tokens(c.input_dim, steps, 5);
      const std::vector<char> valid(steps, 1);
      Eigen::VectorXf scores(c.classes);
      double worst = 0;
      for (int t = 0; t < steps; ++t) {
        ASSERT_EQ(stream.step(tokens.col(t).data(), scores.data()), StepStatus::kOk);
        worst = std::max(worst, (stream.logits().cast<double>() - reference.logits(tokens, valid, t))
                                    .cwiseAbs().maxCoeff());
      }
      EXPECT_LT(worst, 2e-4) << to_string(type) << " " << blocks << " " << to_string(assembly);
    }
}

// Against the float32 model it was rounded from: the weights differ by up to
// 2^-11 (F16) or 2^-8 (BF16) relative, so the logits do too, a little amplified.
TEST(Weights16, CloseToTheFloat32Model) {
  for (WeightType type : {WeightType::kF16, WeightType::kBF16}) {
    ModelConfig c = config16(WeightType::kF32, 2, LandmarkSchedule::kFixed, Assembly::kStacked);
    const ModelWeights weights = random_weights(c, 3);
    std::string error;
    const auto f32 = Model::create(c, weights, &error);
    c.weight_type = type;
    const auto f16 = Model::create(c, weights, &error);
    ASSERT_TRUE(f32 && f16) << error;
    StreamState a(f32), b(f16);
    const Eigen::MatrixXf tokens = random_tokens(c.input_dim, 2000, 9);
    Eigen::VectorXf scores(c.classes);
    double worst = 0, largest = 0;
    for (int t = 0; t < tokens.cols(); ++t) {
      a.step(tokens.col(t).data(), scores.data());
      b.step(tokens.col(t).data(), scores.data());
      worst = std::max(worst, double((a.logits() - b.logits()).cwiseAbs().maxCoeff()));
      largest = std::max(largest, double(a.logits().cwiseAbs().maxCoeff()));
    }
    std::printf("%s vs f32: max |logit difference| %.3g over 2000 steps (|logits| up to %.3g)\n",
                to_string(type), worst, largest);
    EXPECT_LT(worst, type == WeightType::kF16 ? 5e-3 : 4e-2) << to_string(type);
    EXPECT_GT(worst, 0.0);  // the rounding is real
  }
}

TEST(Weights16, NoHeapAllocationPerStep) {
  for (WeightType type : {WeightType::kF16, WeightType::kBF16}) {
    const ModelConfig c = config16(type, 2, LandmarkSchedule::kFixed, Assembly::kStacked);
    StreamState stream(make_model(c));
    const Eigen::MatrixXf tokens = random_tokens(c.input_dim, 3000, 4);
    Eigen::VectorXf scores(c.classes);
    for (int t = 0; t < 1000; ++t) stream.step(tokens.col(t).data(), scores.data());
    g_allocations = 0;
    g_counting = true;
    for (int t = 1000; t < 3000; ++t) stream.step(tokens.col(t).data(), scores.data());
    g_counting = false;
    EXPECT_EQ(g_allocations, 0) << to_string(type);
  }
}

TEST(Weights16, ModelFileRoundTripKeepsTheType) {
  for (WeightType type : {WeightType::kF16, WeightType::kBF16}) {
    const ModelConfig c = config16(type, 2, LandmarkSchedule::kFixed, Assembly::kStacked);
    const auto model = make_model(c);
    const std::string path =
        (std::filesystem::temp_directory_path() / ("weights16-" + std::string(to_string(type)) + ".safetensors"))
            .string();
    std::string error;
    ASSERT_TRUE(save_model(*model, path, &error)) << error;
    const auto loaded = load_model(path, &error);
    ASSERT_TRUE(loaded) << error;
    EXPECT_EQ(loaded->config().weight_type, type);
    EXPECT_EQ(loaded->weights().layers[1].ff1, model->weights().layers[1].ff1);
    EXPECT_EQ(loaded->weights().positions, model->weights().positions);  // F32 in the file
    // Two bytes fewer per linear weight.
    const auto f32_bytes = [&] {
      ModelConfig f = c;
      f.weight_type = WeightType::kF32;
      const std::string p = path + ".f32";
      save_model(*Model::create(f, model->weights(), &error), p, &error);
      return std::filesystem::file_size(p);
    }();
    long linear = model->weights().input.size() + model->weights().classifier.size();
    for (const LayerWeights& l : model->weights().layers)
      linear += l.qkv.size() + l.out.size() + l.ff1.size() + l.ff2.size();
    const long saved = static_cast<long>(f32_bytes) - static_cast<long>(std::filesystem::file_size(path));
    EXPECT_NEAR(saved, 2 * linear, 64);  // the headers differ by a few dtype names
    StreamState a(model), b(loaded);
    const Eigen::MatrixXf tokens = random_tokens(c.input_dim, 200, 2);
    Eigen::VectorXf sa(c.classes), sb(c.classes);
    for (int t = 0; t < tokens.cols(); ++t) {
      a.step(tokens.col(t).data(), sa.data());
      b.step(tokens.col(t).data(), sb.data());
      ASSERT_EQ(sa, sb) << t;
    }
  }
}

}  // namespace
}  // namespace nystream::testing
