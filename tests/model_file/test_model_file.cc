// Issue 4: model files. A saved model loads back bit-identical; every kind of
// corrupt or hostile file is refused with a message naming the file, the tensor
// or field, and what was expected; no input crashes the loader.
#include <cmath>
#include <cstring>
#include <limits>

#include "helpers.h"
#include "npy.h"

namespace nystream::testing {
namespace {

// ---------------------------------------------------------------- round trip

void expect_same_weights(const ModelWeights& a, const ModelWeights& b) {
  EXPECT_EQ(a.input_mean, b.input_mean);
  EXPECT_EQ(a.input_scale, b.input_scale);
  EXPECT_EQ(a.input, b.input);
  EXPECT_EQ(a.input_bias, b.input_bias);
  EXPECT_EQ(a.positions, b.positions);
  ASSERT_EQ(a.layers.size(), b.layers.size());
  for (std::size_t l = 0; l < a.layers.size(); ++l) {
    const LayerWeights &x = a.layers[l], &y = b.layers[l];
    EXPECT_EQ(x.qkv, y.qkv);
    EXPECT_EQ(x.qkv_bias, y.qkv_bias);
    EXPECT_EQ(x.out, y.out);
    EXPECT_EQ(x.out_bias, y.out_bias);
    EXPECT_EQ(x.norm1_gamma, y.norm1_gamma);
    EXPECT_EQ(x.norm1_beta, y.norm1_beta);
    EXPECT_EQ(x.ff1, y.ff1);
    EXPECT_EQ(x.ff1_bias, y.ff1_bias);
    EXPECT_EQ(x.ff2, y.ff2);
    EXPECT_EQ(x.ff2_bias, y.ff2_bias);
    EXPECT_EQ(x.norm2_gamma, y.norm2_gamma);
    EXPECT_EQ(x.norm2_beta, y.norm2_beta);
    EXPECT_EQ(x.landmark_queries, y.landmark_queries);
    EXPECT_EQ(x.landmark_keys, y.landmark_keys);
  }
  EXPECT_EQ(a.final_gamma, b.final_gamma);
  EXPECT_EQ(a.final_beta, b.final_beta);
  EXPECT_EQ(a.classifier, b.classifier);
  EXPECT_EQ(a.classifier_bias, b.classifier_bias);
}

// Streams the same tokens through both models; every score bit-identical.
void expect_same_scores(const std::shared_ptr<const Model>& a, const std::shared_ptr<const Model>& b) {
  const ModelConfig& c = a->config();
  StreamState first(a), second(b);
  const Eigen::MatrixXf tokens = random_tokens(c.input_dim, 4 * c.window, 11);
  std::vector<float> x(c.classes), y(c.classes);
  for (Eigen::Index t = 0; t < tokens.cols(); ++t) {
    ASSERT_EQ(first.step(tokens.col(t).data(), x.data()), StepStatus::kOk);
    ASSERT_EQ(second.step(tokens.col(t).data(), y.data()), StepStatus::kOk);
    ASSERT_EQ(std::memcmp(x.data(), y.data(), x.size() * sizeof(float)), 0) << "step " << t;
  }
}

TEST(ModelFile, RoundTripIsBitIdentical) {
  const auto dir = temp_dir("round-trip");
  for (auto schedule : {LandmarkSchedule::kContinual, LandmarkSchedule::kFixed})
    for (int blocks : {1, 2, 3}) {  // 3: stacked
      SCOPED_TRACE(std::string(to_string(schedule)) + ", " + std::to_string(blocks) + " block(s)");
      ModelConfig c = small_config(schedule, blocks);
      if (blocks == 3) c.assembly = Assembly::kStacked;
      c.activation = blocks == 2 ? OutputActivation::kSoftmax : OutputActivation::kSigmoid;
      c.output_projection = blocks == 1;
      c.pinv = schedule == LandmarkSchedule::kFixed ? PinvMode::kExact : PinvMode::kIterative;
      c.layer_norm_eps = 3e-6f;
      const auto original = small_model(c);
      const std::string path = (dir / "model.safetensors").string();
      std::string error;
      ASSERT_TRUE(save_model(*original, path, &error)) << error;
      const auto loaded = load_model(path, &error);
      ASSERT_TRUE(loaded) << error;

      const ModelConfig& d = loaded->config();
      EXPECT_EQ(d.window, c.window);
      EXPECT_EQ(d.landmarks, c.landmarks);
      EXPECT_EQ(d.positional_period, c.positional_period);
      EXPECT_EQ(d.schedule, c.schedule);
      EXPECT_EQ(d.blocks, c.blocks);
      EXPECT_EQ(d.assembly, c.assembly);
      EXPECT_EQ(d.pinv, c.pinv);
      EXPECT_EQ(d.activation, c.activation);
      EXPECT_EQ(d.output_projection, c.output_projection);
      EXPECT_EQ(d.layer_norm_eps, c.layer_norm_eps);
      EXPECT_EQ(d.classes, c.classes);
      EXPECT_EQ(loaded->info().name, "tiny");
      EXPECT_EQ(loaded->info().classes, original->info().classes);
      EXPECT_EQ(json::parse(loaded->info().provenance), json::parse(original->info().provenance));
      expect_same_weights(original->weights(), loaded->weights());
      expect_same_scores(original, loaded);
    }
}

TEST(ModelFile, SoftmaxAttentionRoundTrip) {
  ModelConfig c = small_config();
  c.attention = AttentionKind::kSoftmax;
  const auto original = small_model(c);
  std::string error;
  const Bytes bytes = model_bytes(*original);
  const auto loaded = parse_model(bytes.data(), bytes.size(), "softmax", &error);
  ASSERT_TRUE(loaded) << error;
  expect_same_scores(original, loaded);
}

TEST(ModelFile, WithoutNormalizationAndDataAligned) {
  ModelWeights w = random_weights(small_config(), 5);
  w.input_mean.resize(0);
  w.input_scale.resize(0);
  std::string error;
  const auto original = Model::create(small_config(), w, &error);
  ASSERT_TRUE(original) << error;
  const Bytes bytes = model_bytes(*original);
  const FileParts parts = FileParts::split(bytes);
  EXPECT_FALSE(parts.doc.contains("input_normalization"));
  EXPECT_EQ((bytes.size() - parts.data.size()) % 8, 0u) << "data buffer starts 8-byte aligned";
  const auto loaded = parse_model(bytes.data(), bytes.size(), "plain", &error);
  ASSERT_TRUE(loaded) << error;
  EXPECT_EQ(loaded->weights().input_mean.size(), 0);
  EXPECT_EQ(loaded->info().classes[3], "class3");
  expect_same_scores(original, loaded);
}

// IEEE half bits of a value that half represents exactly (normal or zero).
std::uint16_t exact_half(float value) {
  if (value == 0.0f) return 0;
  int exponent;
  const float mantissa = std::frexp(std::fabs(value), &exponent);  // [0.5, 1)
  const auto fraction = static_cast<std::uint16_t>(std::lround((mantissa * 2 - 1) * 1024));
  return static_cast<std::uint16_t>((value < 0 ? 0x8000 : 0) | (exponent - 1 + 15) << 10 | fraction);
}

TEST(ModelFile, F16TensorsAreWidened) {
  // Weights rounded to multiples of 2^-10 below 2 in magnitude are exact in half.
  const ModelConfig c = small_config();
  ModelWeights w = random_weights(c, 9);
  auto round = [](auto& m) { m = (m.array() * 1024.0f).round() / 1024.0f; };
  round(w.input), round(w.input_bias), round(w.positions), round(w.final_gamma), round(w.final_beta);
  round(w.classifier), round(w.classifier_bias);
  for (auto& l : w.layers) {
    round(l.qkv), round(l.qkv_bias), round(l.out), round(l.out_bias), round(l.ff1), round(l.ff1_bias);
    round(l.ff2), round(l.ff2_bias), round(l.norm1_gamma), round(l.norm1_beta);
    round(l.norm2_gamma), round(l.norm2_beta);
  }
  std::string error;
  const auto original = Model::create(c, w, &error);
  ASSERT_TRUE(original) << error;

  // Rewrite every tensor as F16, packed in a new buffer.
  FileParts parts = FileParts::split(model_bytes(*original));
  Bytes halves;
  for (auto& [name, entry] : parts.header.items()) {
    if (name == "__metadata__") continue;
    const std::size_t begin = entry["data_offsets"][0], end = entry["data_offsets"][1];
    const std::size_t start = halves.size();
    for (std::size_t at = begin; at < end; at += 4) {
      float value;
      std::memcpy(&value, parts.data.data() + at, 4);
      const std::uint16_t h = exact_half(value);
      halves.push_back(static_cast<std::uint8_t>(h & 0xff));
      halves.push_back(static_cast<std::uint8_t>(h >> 8));
    }
    entry["dtype"] = "F16";
    entry["data_offsets"] = {start, halves.size()};
  }
  parts.data = halves;
  const Bytes bytes = parts.join();
  const auto loaded = parse_model(bytes.data(), bytes.size(), "half", &error);
  ASSERT_TRUE(loaded) << error;
  expect_same_weights(original->weights(), loaded->weights());
  // Every linear weight F16: the step keeps them 16-bit.
  EXPECT_EQ(loaded->config().weight_type, WeightType::kF16);
}

// The files the Python exporter wrote (models/test) load, and a stream over
// their features gives the logits PyTorch computed (golden .npy files), to the
// equivalence tests' 2e-4: float32 in both, summed in other orders.
TEST(ModelFile, LoadsFilesWrittenByThePythonExporter) {
  const char* root = std::getenv("NYSTREAM_SOURCE_ROOT");
  ASSERT_NE(root, nullptr) << "NYSTREAM_SOURCE_ROOT not set (meson sets it)";
  for (const std::string name : {"tiny-continual", "tiny-fixed-2blocks"}) {
    SCOPED_TRACE(name);
    const std::string base = std::string(root) + "/models/test/" + name;
    std::string error;
    const auto model = load_model(base + ".safetensors", &error);
    ASSERT_TRUE(model) << error;
    EXPECT_EQ(model->info().feature_extractor, "identity");
    cli::NpyArray features, golden;
    ASSERT_TRUE(cli::read_npy(base + ".features.npy", &features, &error)) << error;
    ASSERT_TRUE(cli::read_npy(base + ".logits.npy", &golden, &error)) << error;
    const int classes = model->config().classes;
    ASSERT_EQ(features.cols(), model->config().input_dim);
    ASSERT_EQ(golden.rows(), features.rows());
    ASSERT_EQ(golden.cols(), classes);
    ASSERT_GE(features.rows(), 50);
    StreamState stream(model);
    std::vector<float> scores(classes);
    double worst = 0;
    for (std::int64_t t = 0; t < features.rows(); ++t) {
      ASSERT_EQ(stream.step(features.data.data() + t * features.cols(), scores.data()), StepStatus::kOk);
      for (int c = 0; c < classes; ++c)
        worst = std::max(worst, std::abs(double(stream.logits()[c]) - golden.data[t * classes + c]));
    }
    EXPECT_LT(worst, 2e-4);
  }
}

// The fuzzer's seeds (fuzz/corpus, from fuzz/make_corpus.cc) are valid files,
// so fuzzing starts from inputs that reach every stage of the loader.
TEST(ModelFile, FuzzSeedCorpusLoads) {
  const char* root = std::getenv("NYSTREAM_SOURCE_ROOT");
  ASSERT_NE(root, nullptr) << "NYSTREAM_SOURCE_ROOT not set (meson sets it)";
  int seeds = 0;
  for (const auto& entry : std::filesystem::directory_iterator(std::string(root) + "/fuzz/corpus")) {
    std::string error;
    EXPECT_TRUE(load_model(entry.path().string(), &error)) << error;
    ++seeds;
  }
  EXPECT_GE(seeds, 5);
}

// ---------------------------------------------------------------- corrupt files

class Corrupt : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = small_model(small_config(LandmarkSchedule::kContinual, 2));
    good_ = model_bytes(*model_);
    parts_ = FileParts::split(good_);
  }
  std::shared_ptr<const Model> model_;
  Bytes good_;
  FileParts parts_;
};

TEST_F(Corrupt, GoodFileLoads) { EXPECT_EQ(parse_error(good_), ""); }

TEST_F(Corrupt, Truncated) {
  EXPECT_EQ(parse_error(Bytes(good_.begin(), good_.begin() + 5)),
            "test.safetensors: file is 5 bytes, shorter than the 8-byte header length");
  const Bytes mid_header(good_.begin(), good_.begin() + 100);
  EXPECT_NE(parse_error(mid_header).find("runs past the end of the file (100 bytes)"),
            std::string::npos)
      << parse_error(mid_header);
  // Cut inside the data: the last tensors' ranges leave the buffer.
  const Bytes mid_data(good_.begin(), good_.end() - 10);
  const std::string error = parse_error(mid_data);
  EXPECT_NE(error.find("are outside the data buffer of " + std::to_string(parts_.data.size() - 10) +
                       " bytes"),
            std::string::npos)
      << error;
}

TEST_F(Corrupt, HugeHeaderLength) {
  Bytes file = good_;
  for (int b = 0; b < 8; ++b) file[b] = 0xff;
  EXPECT_EQ(parse_error(file), "test.safetensors: header length 18446744073709551615 exceeds the "
                               "limit of 67108864 bytes");
  file[7] = 0, file[6] = 0, file[5] = 0, file[4] = 0, file[3] = 0;  // 16 MiB: allowed, past the end
  EXPECT_NE(parse_error(file).find("header length 16777215 runs past the end of the file"),
            std::string::npos);
}

TEST_F(Corrupt, WrongShape) {
  parts_.header["layers.0.ff1.weight"]["shape"] = {32, 15};
  EXPECT_EQ(parse_error(parts_.join()),
            "test.safetensors: tensor layers.0.ff1.weight has shape [32, 15], expected [32, 16]");
  parts_.header["layers.0.ff1.weight"]["shape"] = {32, 16, 1};
  EXPECT_EQ(parse_error(parts_.join()), "test.safetensors: tensor layers.0.ff1.weight has 3 "
                                        "dimensions, expected 2 [32, 16]");
}

TEST_F(Corrupt, NonFiniteWeights) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::memcpy(parts_.data.data() + parts_.offset_of("layers.1.ff2.weight", 2 * 32 + 3), &nan, 4);
  EXPECT_EQ(parse_error(parts_.join()),
            "test.safetensors: tensor layers.1.ff2.weight holds NaN at [2, 3]");
  const float inf = -std::numeric_limits<float>::infinity();
  parts_ = FileParts::split(good_);
  std::memcpy(parts_.data.data() + parts_.offset_of("final_norm.bias", 7), &inf, 4);
  EXPECT_EQ(parse_error(parts_.join()), "test.safetensors: tensor final_norm.bias holds Inf at [7]");
}

TEST_F(Corrupt, MissingTensor) {
  parts_.header.erase("classifier.bias");
  EXPECT_EQ(parse_error(parts_.join()), "test.safetensors: missing tensor classifier.bias [4]");
}

TEST_F(Corrupt, StrayTensor) {
  parts_.header["layers.2.ff1.weight"] = parts_.header["layers.1.ff1.weight"];
  EXPECT_EQ(parse_error(parts_.join()), "test.safetensors: stray tensor layers.2.ff1.weight: not "
                                        "part of a model with this architecture");
  // Fixed-landmark tensors in a continual model are stray too.
  parts_ = FileParts::split(good_);
  parts_.header["layers.0.attention.landmark_keys"] = parts_.header["classifier.bias"];
  EXPECT_NE(parse_error(parts_.join()).find("stray tensor layers.0.attention.landmark_keys"),
            std::string::npos);
}

TEST_F(Corrupt, UnknownFeatureExtractor) {
  parts_.doc["features"]["extractor"] = "mfcc";
  EXPECT_EQ(parse_error(parts_.join()),
            "test.safetensors: features: unknown feature extractor \"mfcc\" version 1, expected "
            "identity 1, log-mel 1 or video-motion 1");
  parts_.doc["features"] = {{"extractor", "log-mel"}, {"version", 2}};
  EXPECT_NE(parse_error(parts_.join()).find("\"log-mel\" version 2"), std::string::npos);
  parts_.doc["features"] = {{"extractor", "log-mel"}, {"version", 1}};
  EXPECT_EQ(parse_error(parts_.join()), "test.safetensors: modality is \"features\", expected "
                                        "\"audio\" (the modality of log-mel)");
  parts_.doc["modality"] = "audio";
  EXPECT_EQ(parse_error(parts_.join()),
            "test.safetensors: features.params: log-mel makes 128 features per token but "
            "architecture.input_dim is 8");
  parts_.doc["features"]["params"] = {{"n_mels", 4}};  // mean-std: 8 features
  EXPECT_EQ(parse_error(parts_.join()), "");
  EXPECT_TRUE(known_feature_extractor("video-motion", 1));
  EXPECT_FALSE(known_feature_extractor("identity", 2));
}

// Front-end parameters no extractor can run with are refused at load, for
// every tool, naming the key (nystream-infer used to load them).
TEST_F(Corrupt, ImpossibleFrontEndParams) {
  parts_.doc["modality"] = "audio";
  for (const auto& [key, value] : std::vector<std::pair<std::string, double>>{
           {"sample_rate", 0}, {"sample_rate", 1e9}, {"n_fft", 0}, {"hop_length", 0}, {"n_mels", 0}}) {
    parts_.doc["features"] = {{"extractor", "log-mel"}, {"version", 1},
                              {"params", {{"n_mels", 4}, {key, value}}}};
    if (key == "n_mels") parts_.doc["features"]["params"] = {{"n_mels", 0}};
    const std::string error = parse_error(parts_.join());
    EXPECT_NE(error.find("features.params: log-mel:"), std::string::npos) << key << ": " << error;
    EXPECT_NE(error.find(key), std::string::npos) << key << ": " << error;
  }
  parts_.doc["modality"] = "video";
  parts_.doc["features"] = {{"extractor", "video-motion"}, {"version", 1},
                            {"params", {{"analysis_width", 0}}}};
  const std::string error = parse_error(parts_.join());
  EXPECT_NE(error.find("features.params: video-motion:"), std::string::npos) << error;
}

TEST_F(Corrupt, BadJson) {
  std::string text = parts_.header.dump();
  text[0] = '[';
  EXPECT_NE(parse_error(FileParts::join_text(text, parts_.data))
                .find("test.safetensors: header is not valid JSON (parse error at line 1, column "),
            std::string::npos)
      << parse_error(FileParts::join_text(text, parts_.data));
  EXPECT_EQ(parse_error(FileParts::join_text("[1, 2]", parts_.data)),
            "test.safetensors: header is [1,2], expected a JSON object");
  EXPECT_NE(parse_error(FileParts::join_text("{\"a\": \"\xff\"}", parts_.data))
                .find("header is not valid JSON"),
            std::string::npos);
  json header = parts_.header;
  header["__metadata__"]["nystream"] = "{\"format\": ";
  EXPECT_NE(parse_error(FileParts::join_text(header.dump(), parts_.data))
                .find("test.safetensors: __metadata__.nystream is not valid JSON"),
            std::string::npos);
  header.erase("__metadata__");
  EXPECT_EQ(parse_error(FileParts::join_text(header.dump(), parts_.data)),
            "test.safetensors: header: missing key \"__metadata__\"");
}

TEST_F(Corrupt, RepeatedTensorName) {
  std::string text = parts_.header.dump();
  const std::string entry = "\"input.bias\":" + parts_.header["input.bias"].dump();
  text.insert(1, entry + ",");
  EXPECT_EQ(parse_error(FileParts::join_text(text, parts_.data)),
            "test.safetensors: header has key \"input.bias\" more than once");
  // Inside the metadata document too, at any depth.
  json header = parts_.header;
  std::string doc = parts_.doc.dump();
  doc.insert(doc.find("\"architecture\":{") + 16, "\"window\":16,");
  header["__metadata__"]["nystream"] = doc;
  EXPECT_EQ(parse_error(FileParts::join_text(header.dump(), parts_.data)),
            "test.safetensors: __metadata__.nystream has key \"window\" more than once");
}

// Valid JSON that would cost gigabytes as a DOM: 64 MiB of "[" or of "0,".
TEST_F(Corrupt, JsonBombs) {
  const std::string deep = "{\"a\":" + std::string(100, '[') + std::string(100, ']') + "}";
  EXPECT_EQ(parse_error(FileParts::join_text(deep, {})),
            "test.safetensors: header nests deeper than 64 levels");
  std::string wide = "{\"a\":[0";
  for (int i = 0; i < (1 << 21); ++i) wide += ",0";
  wide += "]}";
  EXPECT_EQ(parse_error(FileParts::join_text(wide, {})),
            "test.safetensors: header has more than 2097152 JSON values");
  json header = parts_.header;
  header["__metadata__"]["nystream"] = deep;
  EXPECT_EQ(parse_error(FileParts::join_text(header.dump(), parts_.data)),
            "test.safetensors: __metadata__.nystream nests deeper than 64 levels");
}

TEST_F(Corrupt, OffsetsOutOfBoundsOrOverlapping) {
  const std::size_t size = parts_.data.size();
  parts_.header["input.bias"]["data_offsets"] = {size - 32, size + 32};
  EXPECT_EQ(parse_error(parts_.join()),
            "test.safetensors: tensor input.bias data_offsets [" + std::to_string(size - 32) + ", " +
                std::to_string(size + 32) + "] are outside the data buffer of " +
                std::to_string(size) + " bytes");
  parts_.header["input.bias"]["data_offsets"] = {64, 32};
  EXPECT_NE(parse_error(parts_.join()).find("[64, 32] are outside"), std::string::npos);
  parts_.header["input.bias"]["data_offsets"] = {0, 60};
  EXPECT_EQ(parse_error(parts_.join()), "test.safetensors: tensor input.bias data_offsets [0, 60] "
                                        "hold 60 bytes, expected 64 (F32 [16])");
  parts_.header["input.bias"]["data_offsets"] = {0, -64};
  EXPECT_NE(parse_error(parts_.join()).find("expected [begin, end]"), std::string::npos);

  parts_ = FileParts::split(good_);
  parts_.header["final_norm.bias"]["data_offsets"] = parts_.header["final_norm.weight"]["data_offsets"];
  EXPECT_NE(parse_error(parts_.join()).find("final_norm.bias"), std::string::npos);
  EXPECT_NE(parse_error(parts_.join()).find(") overlap"), std::string::npos)
      << parse_error(parts_.join());
  // A half overlap (shifted by one float) is also caught.
  parts_ = FileParts::split(good_);
  auto& offsets = parts_.header["final_norm.bias"]["data_offsets"];
  const std::size_t begin = parts_.header["final_norm.weight"]["data_offsets"][0].get<std::size_t>() + 4;
  offsets = {begin, begin + 64};
  EXPECT_NE(parse_error(parts_.join()).find("overlap"), std::string::npos);
}

TEST_F(Corrupt, DtypeNotFloat) {
  parts_.header["positions"]["dtype"] = "I32";
  EXPECT_EQ(parse_error(parts_.join()),
            "test.safetensors: tensor positions has dtype I32, expected F32, F16 or BF16");
}

TEST_F(Corrupt, ArchitectureInconsistent) {
  auto& arch = parts_.doc["architecture"];
  arch["landmarks"] = 5;
  EXPECT_EQ(parse_error(parts_.join()),
            "test.safetensors: architecture: window = 16 is not a multiple of landmarks = 5 "
            "(continual landmarks are segment means)");
  arch["landmarks"] = 32;
  EXPECT_EQ(parse_error(parts_.join()),
            "test.safetensors: architecture: landmarks = 32, expected 1 .. 16");
  arch["landmarks"] = 4;
  arch["heads"] = 3;
  EXPECT_EQ(parse_error(parts_.join()),
            "test.safetensors: architecture: embed_dim = 16 is not a multiple of heads = 3");
  arch["heads"] = 2;
  arch["layer_norm_eps"] = 0;
  EXPECT_NE(parse_error(parts_.join()).find("layer_norm_eps = 0"), std::string::npos);
  arch["layer_norm_eps"] = 1e-5;
  arch["landmark_shedule"] = "fixed";
  EXPECT_EQ(parse_error(parts_.join()),
            "test.safetensors: architecture: unknown key \"landmark_shedule\"");
  arch.erase("landmark_shedule");
  arch["landmark_schedule"] = "adaptive";
  EXPECT_EQ(parse_error(parts_.join()), "test.safetensors: architecture.landmark_schedule is "
                                        "\"adaptive\", expected \"continual\" or \"fixed\"");
  arch["landmark_schedule"] = "continual";
  arch["assembly"] = "parallel";
  EXPECT_EQ(parse_error(parts_.join()), "test.safetensors: architecture.assembly is "
                                        "\"parallel\", expected \"retroactive\" or \"stacked\"");
  arch["assembly"] = "retroactive";
  arch["blocks"] = 3;
  EXPECT_EQ(parse_error(parts_.join()),
            "test.safetensors: architecture: blocks = 3 with the retroactive assembly, expected 1 "
            "or 2 (use assembly \"stacked\" for more)");
  arch["blocks"] = 2;
  arch.erase("assembly");  // files written before the key existed: retroactive
  EXPECT_EQ(parse_error(parts_.join()), "");
  arch["window"] = 16.5;
  EXPECT_EQ(parse_error(parts_.join()),
            "test.safetensors: architecture.window is 16.5, expected an integer");
  arch["window"] = 16;
  arch.erase("ff_dim");
  EXPECT_EQ(parse_error(parts_.join()), "test.safetensors: architecture: missing key \"ff_dim\"");
  arch["ff_dim"] = 32;
  // A fixed schedule needs landmark tensors this file lacks.
  arch["landmark_schedule"] = "fixed";
  EXPECT_EQ(parse_error(parts_.join()),
            "test.safetensors: missing tensor layers.0.attention.landmark_keys [4, 16]");
}

TEST_F(Corrupt, HostileSizes) {
  auto& arch = parts_.doc["architecture"];
  arch["window"] = std::int64_t{1} << 31;
  EXPECT_EQ(parse_error(parts_.join()),
            "test.safetensors: architecture.window = 2147483648 is out of range");
  arch["window"] = -(std::int64_t{1} << 40);
  EXPECT_EQ(parse_error(parts_.join()),
            "test.safetensors: architecture.window = -1099511627776 is out of range");
  arch["window"] = 65537;
  EXPECT_EQ(parse_error(parts_.join()),
            "test.safetensors: architecture: window = 65537, expected 1 .. 65536");
  arch["window"] = 16;
  arch["ff_dim"] = 1 << 30;
  EXPECT_EQ(parse_error(parts_.join()),
            "test.safetensors: architecture: ff_dim = 1073741824, expected 1 .. 32768");
  // Within the caps but claiming 2^35 floats (128 GiB) of positions: refused from
  // the header, before anything is allocated.
  arch["ff_dim"] = 32;
  arch["embed_dim"] = 8192;
  arch["positional_period"] = 4194304;
  parts_.header["positions"]["shape"] = {4194304, 8192};
  EXPECT_EQ(parse_error(parts_.join()), "test.safetensors: tensor classifier.weight has shape "
                                        "[4, 16], expected [4, 8192]");
  parts_.header = json::object({{"positions", {{"dtype", "F32"},
                                               {"shape", {4194304, 8192}},
                                               {"data_offsets", {0, std::uint64_t{1} << 37}}}}});
  EXPECT_EQ(parse_error(parts_.join()),
            "test.safetensors: tensor positions data_offsets [0, 137438953472] are outside the data "
            "buffer of " + std::to_string(parts_.data.size()) + " bytes");
  // More classes than the cap.
  parts_ = FileParts::split(good_);
  parts_.doc["classes"] = json::array();
  for (int i = 0; i < 5000; ++i) parts_.doc["classes"].push_back("c" + std::to_string(i));
  EXPECT_EQ(parse_error(parts_.join()),
            "test.safetensors: architecture: classes = 5000, expected 1 .. 4096");
}

TEST_F(Corrupt, MetadataFields) {
  auto expect = [this](const std::string& message) {
    EXPECT_EQ(parse_error(parts_.join()), "test.safetensors: " + message);
    parts_ = FileParts::split(good_);
  };
  parts_.doc["format_version"] = 2;
  expect("format_version is 2, this loader knows 1");
  parts_.doc["format"] = "onnx";
  expect("format is \"onnx\", expected \"nystream-model\"");
  parts_.doc["classes"] = {"a", "b", "a", "c"};
  expect("classes[2] \"a\" repeats an earlier class");
  parts_.doc["classes"] = {"a", "b", "", "c"};
  expect("classes[2] is empty");
  parts_.doc["classes"] = json::array();
  expect("classes is [], expected a non-empty array of class names");
  parts_.doc["classes"] = {"a", "b", "c"};
  expect("tensor classifier.bias has shape [4], expected [3]");
  parts_.doc["input_normalization"]["std"][5] = 0;
  expect("input_normalization.std[5] is 0, expected a finite number > 0");
  parts_.doc["input_normalization"]["mean"].erase(7);
  expect("input_normalization.mean has 7 values, expected 8 numbers (architecture.input_dim)");
  parts_.doc["input_normalization"]["mean"][0] = "zero";
  expect("input_normalization.mean[0] is \"zero\", expected a finite number");
  parts_.doc["input_normalization"]["std"][1] = 1e39;
  expect("input_normalization.std[1] is 1e+39, expected a finite number > 0");
  parts_.doc["name"] = 7;
  expect("name is 7, expected a string");
  parts_.doc.erase("modality");
  expect("metadata: missing key \"modality\"");
  parts_.doc["provenance"] = "yesterday";
  expect("provenance is \"yesterday\", expected an object");
}

TEST(LoadModel, FileErrors) {
  std::string error;
  EXPECT_FALSE(load_model("/nonexistent/model.safetensors", &error));
  EXPECT_EQ(error, "/nonexistent/model.safetensors: no such file");
  const auto dir = temp_dir("file-errors");
  EXPECT_FALSE(load_model(dir.string(), &error));
  EXPECT_EQ(error, dir.string() + ": not a regular file");
  EXPECT_FALSE(save_model(*small_model(), "/nonexistent/dir/m.safetensors", &error));
  EXPECT_NE(error.find("/nonexistent/dir/m.safetensors: cannot create"), std::string::npos) << error;
}

// Every prefix of a valid file and many single-byte corruptions: the loader
// returns a model or an error naming the source, never crashes (the libFuzzer
// target in fuzz/ does this at scale when clang is available).
TEST_F(Corrupt, EveryTruncationAndByteFlipIsHandled) {
  const Bytes file = model_bytes(*small_model());
  for (std::size_t size = 0; size < file.size(); size += size < 2048 ? 1 : 97) {
    const std::string error = parse_error(Bytes(file.begin(), file.begin() + size));
    ASSERT_EQ(error.rfind("test.safetensors: ", 0), 0u) << "size " << size << ": " << error;
  }
  std::mt19937 engine(1);
  for (int trial = 0; trial < 3000; ++trial) {
    Bytes bad = file;
    const std::size_t at = trial < 2048 ? trial : engine() % bad.size();
    bad[at] ^= static_cast<std::uint8_t>(1u << (engine() % 8));
    std::string error;
    const auto model = parse_model(bad.data(), bad.size(), "flip", &error);
    if (!model) {
      ASSERT_EQ(error.rfind("flip: ", 0), 0u) << error;
    }
  }
}

}  // namespace
}  // namespace nystream::testing
