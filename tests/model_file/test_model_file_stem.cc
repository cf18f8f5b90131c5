// Issue 18: model files with a convolutional stem (architecture.stem,
// architecture.linear_inputs, tensors stem.conv.{i}.weight / .bias and
// stem.proj.weight). They round-trip bit for bit (16-bit models keep the stem
// float32), a model without a stem is written exactly as before, and corrupt or
// mismatched stem files are refused naming the tensor or field.
#include <cmath>
#include <cstring>
#include <limits>

#include "helpers.h"
#include "npy.h"

namespace nystream::testing {
namespace {

// 8 descriptor values, then a 2 x 6 x 8 "frame and difference" the stem reads.
ModelConfig stem_config() {
  ModelConfig c = small_config(LandmarkSchedule::kFixed, 1);
  c.input_dim = 8 + 2 * 6 * 8;
  c.linear_inputs = 8;
  c.stem.input_offset = 8;
  c.stem.input_channels = 2, c.stem.input_height = 6, c.stem.input_width = 8;
  StemLayer a, b;
  a.channels = 4, a.stride_height = a.stride_width = 2;
  b.channels = 6, b.kernel_height = 3, b.kernel_width = 1, b.stride_height = 2;
  c.stem.layers = {a, b};
  c.stem.pool_strips = 2;
  return c;
}

void expect_same_scores(const std::shared_ptr<const Model>& a, const std::shared_ptr<const Model>& b) {
  const ModelConfig& c = a->config();
  StreamState first(a), second(b);
  const Eigen::MatrixXf tokens = random_tokens(c.input_dim, 3 * c.window, 11);
  std::vector<float> x(c.classes), y(c.classes);
  for (Eigen::Index t = 0; t < tokens.cols(); ++t) {
    ASSERT_EQ(first.step(tokens.col(t).data(), x.data()), StepStatus::kOk);
    ASSERT_EQ(second.step(tokens.col(t).data(), y.data()), StepStatus::kOk);
    ASSERT_EQ(std::memcmp(x.data(), y.data(), x.size() * sizeof(float)), 0) << "step " << t;
  }
}

TEST(ModelFileStem, RoundTripIsBitIdentical) {
  for (const WeightType type : {WeightType::kF32, WeightType::kF16}) {
    SCOPED_TRACE(to_string(type));
    ModelConfig c = stem_config();
    c.weight_type = type;
    const auto original = small_model(c);
    const Bytes bytes = model_bytes(*original);
    const FileParts parts = FileParts::split(bytes);
    const json& arch = parts.doc["architecture"];
    EXPECT_EQ(arch["linear_inputs"], 8);
    EXPECT_EQ(arch["stem"], json::parse(R"({"input_offset": 8, "input_shape": [2, 6, 8],
        "layers": [{"channels": 4, "kernel": [3, 3], "stride": [2, 2]},
                   {"channels": 6, "kernel": [3, 1], "stride": [2, 1]}], "pool_strips": 2})"));
    EXPECT_EQ(parts.header["stem.conv.0.weight"]["shape"], json::parse("[4, 2, 3, 3]"));
    EXPECT_EQ(parts.header["stem.conv.1.bias"]["shape"], json::parse("[6]"));
    EXPECT_EQ(parts.header["stem.proj.weight"]["shape"], json::parse("[16, 24]"));
    EXPECT_EQ(parts.header["input.weight"]["shape"], json::parse("[16, 8]"));
    // The stem stays float32 in a 16-bit model.
    EXPECT_EQ(parts.header["stem.conv.0.weight"]["dtype"], "F32");
    EXPECT_EQ(parts.header["stem.proj.weight"]["dtype"], "F32");
    EXPECT_EQ(parts.header["input.weight"]["dtype"], type == WeightType::kF16 ? "F16" : "F32");

    std::string error;
    const auto loaded = parse_model(bytes.data(), bytes.size(), "stem", &error);
    ASSERT_TRUE(loaded) << error;
    const ModelConfig& d = loaded->config();
    EXPECT_EQ(d.weight_type, type);
    EXPECT_EQ(d.linear_inputs, 8);
    EXPECT_EQ(d.stem.input_offset, 8);
    ASSERT_EQ(d.stem.layers.size(), 2u);
    EXPECT_EQ(d.stem.layers[1].kernel_height, 3);
    EXPECT_EQ(d.stem.layers[1].stride_width, 1);
    EXPECT_EQ(d.stem.pool_strips, 2);
    for (std::size_t l = 0; l < 2; ++l) {
      EXPECT_EQ(loaded->weights().stem.convs[l].weight, original->weights().stem.convs[l].weight);
      EXPECT_EQ(loaded->weights().stem.convs[l].bias, original->weights().stem.convs[l].bias);
    }
    EXPECT_EQ(loaded->weights().stem.proj, original->weights().stem.proj);
    expect_same_scores(original, loaded);
  }
}

// Files without a stem keep today's metadata: no new keys are written.
TEST(ModelFileStem, ModelsWithoutAStemWriteNoNewKeys) {
  const FileParts parts = FileParts::split(model_bytes(*small_model()));
  EXPECT_FALSE(parts.doc["architecture"].contains("stem"));
  EXPECT_FALSE(parts.doc["architecture"].contains("linear_inputs"));
  for (const auto& item : parts.header.items()) EXPECT_EQ(item.key().rfind("stem.", 0), std::string::npos);
}

// A 16-bit stem tensor is widened at load (any other 16-bit tensor is too).
TEST(ModelFileStem, SixteenBitStemTensorsAreWidened) {
  ModelConfig c = stem_config();
  ModelWeights w = random_weights(c, 4);
  w.stem.convs[0].weight = (w.stem.convs[0].weight.array() * 256.0f).round() / 256.0f;
  std::string error;
  const auto original = Model::create(c, w, &error);
  ASSERT_TRUE(original) << error;
  FileParts parts = FileParts::split(model_bytes(*original));
  auto& entry = parts.header["stem.conv.0.weight"];
  const std::size_t begin = entry["data_offsets"][0], end = entry["data_offsets"][1];
  Bytes halves;
  for (std::size_t at = begin; at < end; at += 4) {
    std::uint32_t bits;
    std::memcpy(&bits, parts.data.data() + at, 4);
    const std::uint16_t high = static_cast<std::uint16_t>(bits >> 16);  // bfloat16: exact here
    halves.push_back(static_cast<std::uint8_t>(high & 0xff));
    halves.push_back(static_cast<std::uint8_t>(high >> 8));
  }
  entry["dtype"] = "BF16";
  entry["data_offsets"] = {parts.data.size(), parts.data.size() + halves.size()};
  parts.data.insert(parts.data.end(), halves.begin(), halves.end());
  const Bytes bytes = parts.join();
  const auto loaded = parse_model(bytes.data(), bytes.size(), "bf16 stem", &error);
  ASSERT_TRUE(loaded) << error;
  EXPECT_EQ(loaded->config().weight_type, WeightType::kF32);
  EXPECT_EQ(loaded->weights().stem.convs[0].weight, original->weights().stem.convs[0].weight);
}

class CorruptStem : public ::testing::Test {
 protected:
  void SetUp() override {
    good_ = model_bytes(*small_model(stem_config()));
    parts_ = FileParts::split(good_);
  }
  // The error of the file with the current parts; then back to the good file.
  std::string error() {
    const std::string e = parse_error(parts_.join());
    parts_ = FileParts::split(good_);
    return e;
  }
  Bytes good_;
  FileParts parts_;
};

TEST_F(CorruptStem, GoodFileLoads) { EXPECT_EQ(parse_error(good_), ""); }

TEST_F(CorruptStem, TensorShapes) {
  parts_.header["stem.conv.1.weight"]["shape"] = {6, 3, 3, 1};
  EXPECT_EQ(error(), "test.safetensors: tensor stem.conv.1.weight has shape [6, 3, 3, 1], expected "
                     "[6, 4, 3, 1]");
  parts_.header["stem.conv.0.weight"]["shape"] = {4, 18};
  EXPECT_EQ(error(), "test.safetensors: tensor stem.conv.0.weight has 2 dimensions, expected 4 "
                     "[4, 2, 3, 3]");
  parts_.header["stem.proj.weight"]["shape"] = {16, 18};
  EXPECT_EQ(error(), "test.safetensors: tensor stem.proj.weight has shape [16, 18], expected [16, 24]");
  // The architecture says how many values each part of a token holds.
  parts_.doc["architecture"]["linear_inputs"] = 9;
  EXPECT_EQ(error(), "test.safetensors: tensor input.weight has shape [16, 8], expected [16, 9]");
  parts_.doc["architecture"]["stem"]["pool_strips"] = 1;
  EXPECT_EQ(error(), "test.safetensors: tensor stem.proj.weight has shape [16, 24], expected [16, 18]");
  // Tensors are checked in name order: the bias comes first.
  parts_.doc["architecture"]["stem"]["layers"][0]["channels"] = 5;
  EXPECT_EQ(error(), "test.safetensors: tensor stem.conv.0.bias has shape [4], expected [5]");
}

TEST_F(CorruptStem, NonFiniteWeights) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  // [3, 1, 2, 0] of [4, 2, 3, 3]: flat index ((3 * 2 + 1) * 3 + 2) * 3 + 0 = 69.
  std::memcpy(parts_.data.data() + parts_.offset_of("stem.conv.0.weight", 69), &nan, 4);
  EXPECT_EQ(error(), "test.safetensors: tensor stem.conv.0.weight holds NaN at [3, 1, 2, 0]");
  const float inf = std::numeric_limits<float>::infinity();
  std::memcpy(parts_.data.data() + parts_.offset_of("stem.proj.weight", 24 + 5), &inf, 4);
  EXPECT_EQ(error(), "test.safetensors: tensor stem.proj.weight holds Inf at [1, 5]");
  std::memcpy(parts_.data.data() + parts_.offset_of("stem.conv.1.bias", 2), &nan, 4);
  EXPECT_EQ(error(), "test.safetensors: tensor stem.conv.1.bias holds NaN at [2]");
}

TEST_F(CorruptStem, MissingAndStrayTensors) {
  parts_.header.erase("stem.proj.weight");
  EXPECT_EQ(error(), "test.safetensors: missing tensor stem.proj.weight [16, 24]");
  parts_.header.erase("stem.conv.1.bias");
  EXPECT_EQ(error(), "test.safetensors: missing tensor stem.conv.1.bias [6]");
  // A stem's tensors in a file whose architecture has none are stray.
  parts_.doc["architecture"].erase("stem");
  parts_.doc["architecture"]["input_dim"] = 8;
  parts_.doc["input_normalization"]["mean"] = std::vector<double>(8, 0.0);
  parts_.doc["input_normalization"]["std"] = std::vector<double>(8, 1.0);
  EXPECT_EQ(error(), "test.safetensors: stray tensor stem.conv.0.bias: not part of a model with this "
                     "architecture");
  parts_.header["stem.conv.2.weight"] = parts_.header["stem.conv.1.weight"];
  EXPECT_EQ(error(), "test.safetensors: stray tensor stem.conv.2.weight: not part of a model with this "
                     "architecture");
}

TEST_F(CorruptStem, ArchitectureFields) {
  // Sets the field at `at` (a JSON pointer into the metadata document, created
  // if absent) and expects the error; error() goes back to the good file.
  auto expect = [this](const std::string& at, const json& value, const std::string& message) {
    parts_.doc[json::json_pointer(at)] = value;
    EXPECT_EQ(error(), "test.safetensors: " + message) << at << " = " << value.dump();
  };
  const std::string stem = "/architecture/stem";
  expect(stem + "/input_offset", 9,
         "architecture: stem.input_shape = [2, 6, 8] reads 96 values from stem.input_offset = 9, past "
         "input_dim = 104");
  expect(stem + "/input_offset", -1, "architecture: stem.input_offset = -1, expected 0 .. 65536");
  expect(stem + "/input_shape", json::parse("[2, 6]"),
         "architecture.stem.input_shape is [2,6], expected [channels, height, width]");
  expect(stem + "/input_shape", json::parse("[2, 6, 0]"),
         "architecture: stem.input_shape[2] (width) = 0, expected 1 .. 65536");
  expect(stem + "/input_shape", json::parse("[2, 6.5, 8]"),
         "architecture.stem.input_shape[1] is 6.5, expected an integer");
  expect(stem + "/layers", json::array(),
         "architecture.stem.layers is [], expected an array of 1 .. 8 layers");
  expect(stem + "/layers/1/kernel", json::parse("[3]"),
         "architecture.stem.layers[1].kernel is [3], expected [height, width]");
  expect(stem + "/layers/1/kernel", json::parse("[32, 1]"),
         "architecture: stem.layers[1].kernel[0] = 32, expected 1 .. 31");
  expect(stem + "/layers/0/stride", json::parse("[0, 2]"),
         "architecture: stem.layers[0].stride[0] = 0, expected 1 .. 16");
  expect(stem + "/layers/0/channels", 0,
         "architecture: stem.layers[0].channels = 0, expected 1 .. 1024");
  expect(stem + "/layers/0/dilation", 2, "architecture.stem.layers[0]: unknown key \"dilation\"");
  expect(stem + "/pool_strips", 3,
         "architecture: stem.pool_strips = 3, expected 0 .. 2 (the last feature map's height)");
  expect(stem + "/pooling", "max", "architecture.stem: unknown key \"pooling\"");
  expect(stem, "conv", "architecture.stem is \"conv\", expected an object");
  expect("/architecture/linear_inputs", 0, "architecture.linear_inputs = 0, expected 1 .. input_dim");
  expect("/architecture/linear_inputs", 105,
         "architecture: linear_inputs = 105, expected 1 .. 104 (input_dim)");
  // Optional keys take their defaults: stride [1, 1], no strips.
  parts_.doc["architecture"]["stem"]["layers"][1].erase("stride");
  parts_.doc["architecture"]["stem"].erase("pool_strips");
  EXPECT_EQ(error(), "test.safetensors: tensor stem.proj.weight has shape [16, 24], expected [16, 12]");
}

}  // namespace
}  // namespace nystream::testing
