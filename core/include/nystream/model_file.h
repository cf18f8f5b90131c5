// Model files: one safetensors file holding the architecture, the weights, the
// class names, the feature extractor and the input normalisation of a Model
// (docs/model-format.md is the contract).
//
//   std::string error;
//   auto model = nystream::load_model("audio.safetensors", &error);
//   if (!model) fail(error);  // e.g. "audio.safetensors: tensor layers.0.ff1.weight has
//                             //  shape [1024, 190], expected [1024, 192]"
//
// Loading checks everything before any tensor is used: the container (header
// length, JSON, dtypes, shapes, byte ranges in bounds and disjoint), the metadata
// (format, architecture within ConfigLimits, classes, a known feature extractor,
// normalisation) and finite weights; Model::create then checks the rest. It never
// throws and never crashes on any input, and allocates no more than the file
// holds plus the model's own state. Every error starts with the file (or
// source) name and names the tensor or field and what was expected.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "nystream/model.h"

namespace nystream {

// Reads the whole file (one read) and parses it. nullptr and *error on failure.
std::shared_ptr<const Model> load_model(const std::string& path, std::string* error);

// Parses a model file held in memory; source_name starts every error message.
// The bytes are only read during the call (the Model keeps its own copy).
std::shared_ptr<const Model> parse_model(const std::uint8_t* data, std::size_t size,
                                         const std::string& source_name, std::string* error);

// Writes model as a format-version-1 file: F32 tensors, except the linear
// weights of a 16-bit model (config.weight_type), written F16 or BF16.
// load_model of the result gives bit-identical weights, so bit-identical scores.
bool save_model(const Model& model, const std::string& path, std::string* error);

// Whether this loader knows feature extractor `name` at `version`:
// identity 1, log-mel 1, video-motion 1.
bool known_feature_extractor(const std::string& name, int version);

// The modality an extractor serves ("features", "audio", "video"); "" if unknown.
std::string feature_extractor_modality(const std::string& name, int version);

}  // namespace nystream
