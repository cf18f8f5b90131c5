// Writes the fuzzer's seed corpus: tiny but valid model files covering every
// branch of the format (schedules, attention kinds, blocks, activation, output
// projection, normalisation or none, F16 tensors, a convolutional stem). Deterministic, so the
// committed fuzz/corpus/ can be regenerated:
//   ./build/fuzz/make-fuzz-corpus fuzz/corpus
#include <nystream/model_file.h>
#include <nystream/nystream.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace {

using nystream::ModelConfig;

ModelConfig tiny() {
  ModelConfig c;
  c.window = 4;
  c.landmarks = 2;
  c.input_dim = 3;
  c.embed_dim = 4;
  c.heads = 2;
  c.ff_dim = 6;
  c.classes = 2;
  c.positional_period = 5;
  return c;
}

// Nearest-below binary16 of a small finite float (seeds need valid, not exact, values).
std::uint16_t to_half(float value) {
  if (value == 0.0f) return 0;
  int exponent;
  const float mantissa = std::frexp(std::fabs(value), &exponent);
  if (exponent < -13) return 0;
  const auto fraction = static_cast<std::uint16_t>((mantissa * 2 - 1) * 1024);
  return static_cast<std::uint16_t>((value < 0 ? 0x8000 : 0) | (exponent + 14) << 10 | fraction);
}

// Rewrites a saved F32 file with every tensor in F16.
bool to_f16(const std::string& in_path, const std::string& out_path) {
  std::ifstream in(in_path, std::ios::binary);
  const std::vector<char> file(std::istreambuf_iterator<char>(in), {});
  std::uint64_t length = 0;
  for (int b = 7; b >= 0; --b) length = length << 8 | static_cast<unsigned char>(file[b]);
  auto header = nlohmann::json::parse(file.begin() + 8, file.begin() + 8 + static_cast<long>(length));
  const char* data = file.data() + 8 + length;
  std::string halves;
  for (auto& [name, entry] : header.items()) {
    if (name == "__metadata__") continue;
    const std::size_t begin = entry["data_offsets"][0], end = entry["data_offsets"][1];
    const std::size_t start = halves.size();
    for (std::size_t at = begin; at < end; at += 4) {
      float value;
      std::memcpy(&value, data + at, 4);
      const std::uint16_t h = to_half(value);
      halves += static_cast<char>(h & 0xff);
      halves += static_cast<char>(h >> 8);
    }
    entry["dtype"] = "F16";
    entry["data_offsets"] = {start, halves.size()};
  }
  const std::string text = header.dump();
  std::ofstream out(out_path, std::ios::binary | std::ios::trunc);
  for (int b = 0; b < 8; ++b) out.put(static_cast<char>(text.size() >> (8 * b)));
  out << text << halves;
  return static_cast<bool>(out);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make-fuzz-corpus OUTPUT_DIR\n");
    return 2;
  }
  const std::string dir = argv[1];
  struct Seed {
    const char* name;
    ModelConfig config;
    bool normalization;
  };
  std::vector<Seed> seeds;
  seeds.push_back({"continual", tiny(), true});
  ModelConfig c = tiny();
  c.schedule = nystream::LandmarkSchedule::kFixed;
  c.blocks = 2;
  c.activation = nystream::OutputActivation::kSoftmax;
  c.output_projection = false;
  seeds.push_back({"fixed-2blocks", c, true});
  c = tiny();
  c.attention = nystream::AttentionKind::kSoftmax;
  c.blocks = 2;
  seeds.push_back({"softmax-2blocks", c, false});
  c = tiny();
  c.pinv = nystream::PinvMode::kExact;
  c.pinv_iterations = 3;
  c.layer_norm_eps = 1e-3f;
  seeds.push_back({"exact-pinv", c, false});
  c = tiny();
  c.input_dim = 3 + 8;  // 3 linear inputs, then a 2 x 2 x 2 stem input
  c.linear_inputs = 3;
  c.stem.input_offset = 3;
  c.stem.input_channels = c.stem.input_height = c.stem.input_width = 2;
  c.stem.layers = {{2, 3, 3, 2, 1}};
  c.stem.pool_strips = 1;
  seeds.push_back({"stem", c, true});

  for (const Seed& seed : seeds) {
    nystream::ModelWeights weights = nystream::random_weights(seed.config, 1);
    if (!seed.normalization) weights.input_mean.resize(0), weights.input_scale.resize(0);
    nystream::ModelInfo info;
    info.name = seed.name;
    info.classes = {"speech", "music"};
    info.provenance = R"({"tool":"make-fuzz-corpus"})";
    std::string error;
    const auto model = nystream::Model::create(seed.config, weights, info, &error);
    const std::string path = dir + "/" + seed.name + ".safetensors";
    if (!model || !nystream::save_model(*model, path, &error)) {
      std::fprintf(stderr, "make-fuzz-corpus: %s\n", error.c_str());
      return 1;
    }
  }
  if (!to_f16(dir + "/continual.safetensors", dir + "/continual-f16.safetensors")) {
    std::fprintf(stderr, "make-fuzz-corpus: cannot write the F16 seed\n");
    return 1;
  }
  return 0;
}
