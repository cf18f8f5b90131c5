// Shared by the model-file tests: small models, temporary files, and a model
// file taken apart into (header JSON, metadata document, data buffer) so a test
// can corrupt one piece and put it back together.
#pragma once

#include <gtest/gtest.h>
#include <nystream/model_file.h>
#include <nystream/nystream.h>

#include "small_config.h"

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <random>
#include <stdexcept>
#include <unistd.h>
#include <string>
#include <vector>

namespace nystream::testing {

using Bytes = std::vector<std::uint8_t>;
using nlohmann::json;

inline ModelConfig small_config(LandmarkSchedule schedule = LandmarkSchedule::kContinual,
                                int blocks = 1) {
  return small_config(16, 4, blocks, schedule);
}

inline std::shared_ptr<const Model> small_model(const ModelConfig& c = small_config(),
                                                std::uint64_t seed = 3) {
  ModelInfo info;
  info.name = "tiny";
  info.modality = "features";
  for (int i = 0; i < c.classes; ++i) info.classes.push_back("event " + std::to_string(i));
  info.provenance = R"({"data":"random","tool":"test"})";
  std::string error;
  auto model = Model::create(c, random_weights(c, seed), info, &error);
  if (!model) throw std::runtime_error(error);
  return model;
}

// A fresh directory under the test's temporary directory.
inline std::filesystem::path temp_dir(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("nystream-test-" + name + "-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  return dir;
}

inline Bytes read_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), {});
}

inline void write_bytes(const std::filesystem::path& path, const Bytes& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

inline Bytes model_bytes(const Model& model) {
  const auto path = temp_dir("bytes") / "model.safetensors";
  std::string error;
  if (!save_model(model, path.string(), &error)) throw std::runtime_error(error);
  return read_bytes(path);
}

struct FileParts {
  json header;  // tensor entries, __metadata__ kept as given
  json doc;     // the parsed "nystream" metadata document
  Bytes data;   // the data buffer

  static FileParts split(const Bytes& file) {
    std::uint64_t length = 0;
    for (int b = 7; b >= 0; --b) length = length << 8 | file.at(b);
    FileParts parts;
    parts.header = json::parse(file.begin() + 8, file.begin() + 8 + static_cast<long>(length));
    parts.doc = json::parse(parts.header["__metadata__"]["nystream"].get<std::string>());
    parts.data.assign(file.begin() + 8 + static_cast<long>(length), file.end());
    return parts;
  }

  // The file with `doc` written back into the metadata.
  Bytes join() const {
    json h = header;
    h["__metadata__"]["nystream"] = doc.dump();
    return join_text(h.dump(), data);
  }

  static Bytes join_text(const std::string& header_text, const Bytes& data) {
    Bytes out;
    out.reserve(8 + header_text.size() + data.size());
    for (int b = 0; b < 8; ++b) out.push_back(static_cast<std::uint8_t>(header_text.size() >> (8 * b)));
    out.insert(out.end(), header_text.begin(), header_text.end());
    out.insert(out.end(), data.begin(), data.end());
    return out;
  }

  // Byte offset in `data` of element `index` (row-major) of a tensor.
  std::size_t offset_of(const std::string& tensor, std::size_t index) const {
    return header.at(tensor).at("data_offsets").at(0).get<std::size_t>() + 4 * index;
  }
};

// Parses bytes as "test.safetensors"; the error (empty on success).
inline std::string parse_error(const Bytes& bytes) {
  std::string error;
  auto model = parse_model(bytes.data(), bytes.size(), "test.safetensors", &error);
  return model ? std::string() : error;
}

inline Eigen::MatrixXf random_tokens(int dims, int count, std::uint64_t seed) {
  std::mt19937_64 engine(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  Eigen::MatrixXf tokens(dims, count);
  for (Eigen::Index i = 0; i < tokens.size(); ++i) tokens.data()[i] = dist(engine);
  return tokens;
}

}  // namespace nystream::testing
