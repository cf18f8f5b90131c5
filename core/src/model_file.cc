// Model files (docs/model-format.md): a safetensors container whose
// "__metadata__" carries a "nystream" JSON document.
//
// Loading is two passes over the tensors the architecture implies: first every
// header entry is checked against the expected name, dtype and shape and its byte
// range against the data buffer; only then are tensors allocated (with sizes
// from the validated config, never from the header) and filled, so memory is
// bounded by what the file holds. Internally failures throw LoadError; the
// public functions catch everything.
#include "nystream/model_file.h"

#include "nystream/features/params.h"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <stdexcept>
#include <type_traits>
#include <vector>

namespace nystream {

namespace {

using json = nlohmann::json;
using Shape = std::vector<std::int64_t>;

constexpr int kFormatVersion = 1;
constexpr std::uint64_t kMaxHeaderBytes = std::uint64_t{64} << 20;
constexpr std::size_t kDataAlignment = 8;
// Far above what a valid file needs (normalisation: 2 x 65536 numbers).
constexpr int kMaxJsonDepth = 64;
constexpr std::size_t kMaxJsonEvents = std::size_t{1} << 21;

struct LoadError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

[[noreturn]] void fail(const std::string& what) { throw LoadError(what); }

std::string to_text(const Shape& shape) {
  std::string out = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

// ---------------------------------------------------------------- the tensors

// How a file tensor (row-major, PyTorch shape) maps to its Eigen member.
enum class Layout {
  kVector,      // [N] -> VectorXf N
  kLinear,      // [out, in] -> MatrixXf out x in (a transpose of the memory order)
  kColumns,     // [count, E] -> MatrixXf E x count (same memory order: one row per column)
  kStemLinear,  // as kLinear, but stays float32 in a 16-bit model (stem.proj)
  kConv,        // [c_out, c_in, kh, kw] -> MatrixXf (c_in kh kw) x c_out (same memory order)
};

// Calls visit(name, file_shape, eigen_member, layout) for every tensor the
// configuration implies, in file order. Weights is ModelWeights, const or not,
// and must hold config.blocks layers; one list serves the reader and the writer.
template <typename Weights, typename Visit>
void for_each_tensor(const ModelConfig& c, Weights& w, Visit&& visit) {
  const std::int64_t e = c.embed_dim, f = c.ff_dim;
  visit("input.weight", Shape{e, c.linear_input_dim()}, w.input, Layout::kLinear);
  visit("input.bias", Shape{e}, w.input_bias, Layout::kVector);
  visit("positions", Shape{c.positional_period, e}, w.positions, Layout::kColumns);
  for (int l = 0; l < c.blocks; ++l) {
    auto& layer = w.layers[l];
    const std::string at = "layers." + std::to_string(l) + ".";
    visit(at + "attention.qkv.weight", Shape{3 * e, e}, layer.qkv, Layout::kLinear);
    visit(at + "attention.qkv.bias", Shape{3 * e}, layer.qkv_bias, Layout::kVector);
    if (c.output_projection) {
      visit(at + "attention.out.weight", Shape{e, e}, layer.out, Layout::kLinear);
      visit(at + "attention.out.bias", Shape{e}, layer.out_bias, Layout::kVector);
    }
    if (c.attention == AttentionKind::kNystrom && c.schedule == LandmarkSchedule::kFixed) {
      visit(at + "attention.landmark_queries", Shape{c.landmarks, e}, layer.landmark_queries,
            Layout::kColumns);
      visit(at + "attention.landmark_keys", Shape{c.landmarks, e}, layer.landmark_keys,
            Layout::kColumns);
    }
    visit(at + "norm1.weight", Shape{e}, layer.norm1_gamma, Layout::kVector);
    visit(at + "norm1.bias", Shape{e}, layer.norm1_beta, Layout::kVector);
    visit(at + "ff1.weight", Shape{f, e}, layer.ff1, Layout::kLinear);
    visit(at + "ff1.bias", Shape{f}, layer.ff1_bias, Layout::kVector);
    visit(at + "ff2.weight", Shape{e, f}, layer.ff2, Layout::kLinear);
    visit(at + "ff2.bias", Shape{e}, layer.ff2_bias, Layout::kVector);
    visit(at + "norm2.weight", Shape{e}, layer.norm2_gamma, Layout::kVector);
    visit(at + "norm2.bias", Shape{e}, layer.norm2_beta, Layout::kVector);
  }
  visit("final_norm.weight", Shape{e}, w.final_gamma, Layout::kVector);
  visit("final_norm.bias", Shape{e}, w.final_beta, Layout::kVector);
  visit("classifier.weight", Shape{c.classes, e}, w.classifier, Layout::kLinear);
  visit("classifier.bias", Shape{c.classes}, w.classifier_bias, Layout::kVector);
  if (!c.stem.enabled()) return;
  for (int l = 0; l < static_cast<int>(c.stem.layers.size()); ++l) {
    const StemLayer& s = c.stem.layers[l];
    const std::string at = "stem.conv." + std::to_string(l) + ".";
    visit(at + "weight", Shape{s.channels, c.stem.channels(l - 1), s.kernel_height, s.kernel_width},
          w.stem.convs[l].weight, Layout::kConv);
    visit(at + "bias", Shape{s.channels}, w.stem.convs[l].bias, Layout::kVector);
  }
  visit("stem.proj.weight", Shape{e, c.stem.pooled_size()}, w.stem.proj, Layout::kStemLinear);
}

std::uint64_t element_count(const Shape& shape) {
  std::uint64_t count = 1;
  for (std::int64_t dim : shape) count *= static_cast<std::uint64_t>(dim);
  return count;
}

enum class Dtype { kF32, kF16, kBF16 };

// A header entry that passed every check: where its bytes are.
struct Located {
  Dtype dtype;
  std::uint64_t begin, end;
};

// Copies count little-endian values (the host is little-endian: x86-64, ARM64)
// to floats, then reports the first non-finite one by its file index.
void read_values(const std::string& name, const Shape& shape, const std::uint8_t* bytes,
                 Dtype dtype, float* out) {
  const std::uint64_t count = element_count(shape);
  if (dtype == Dtype::kF32) {
    std::memcpy(out, bytes, count * 4);
  } else {
    const auto widen = dtype == Dtype::kF16 ? from_half : from_bfloat16;
    for (std::uint64_t i = 0; i < count; ++i)
      out[i] = widen(static_cast<std::uint16_t>(bytes[2 * i] | bytes[2 * i + 1] << 8));
  }
  for (std::uint64_t i = 0; i < count; ++i) {
    if (std::isfinite(out[i])) continue;
    // The multi-index of flat index i, row-major.
    std::string index;
    std::uint64_t rest = i;
    for (std::size_t k = shape.size(); k-- > 0;) {
      const auto size = static_cast<std::uint64_t>(shape[k]);
      index = std::to_string(rest % size) + (index.empty() ? "" : ", " + index);
      rest /= size;
    }
    fail("tensor " + name + " holds " + (std::isnan(out[i]) ? "NaN" : "Inf") + " at [" + index +
         "]");
  }
}

// ---------------------------------------------------------------- JSON fields

const json& member(const json& object, const std::string& key, const std::string& where) {
  const auto found = object.find(key);
  if (found == object.end()) fail(where + ": missing key \"" + key + "\"");
  return *found;
}

std::string type_text(const json& value) {
  const std::string text = value.dump();
  return text.size() <= 40 ? text : text.substr(0, 37) + "...";
}

int as_int(const json& value, const std::string& field) {
  if (value.is_number_unsigned()) {
    const auto u = value.get<std::uint64_t>();
    if (u > static_cast<std::uint64_t>(INT_MAX))
      fail(field + " = " + std::to_string(u) + " is out of range");
    return static_cast<int>(u);
  }
  if (value.is_number_integer()) {
    const auto s = value.get<std::int64_t>();
    if (s < INT_MIN) fail(field + " = " + std::to_string(s) + " is out of range");
    return static_cast<int>(s);
  }
  fail(field + " is " + type_text(value) + ", expected an integer");
}

std::string as_string(const json& value, const std::string& field) {
  if (!value.is_string()) fail(field + " is " + type_text(value) + ", expected a string");
  return value.get<std::string>();
}

const json& as_object(const json& value, const std::string& field) {
  if (!value.is_object()) fail(field + " is " + type_text(value) + ", expected an object");
  return value;
}

// One of `names` (by index); the field's value must be a string among them.
template <typename Enum, std::size_t N>
Enum as_choice(const json& value, const std::string& field, const char* const (&names)[N],
               const Enum (&values)[N]) {
  const std::string text = as_string(value, field);
  for (std::size_t i = 0; i < N; ++i)
    if (text == names[i]) return values[i];
  std::string expected;
  for (std::size_t i = 0; i < N; ++i) expected += (i ? " or \"" : "\"") + std::string(names[i]) + "\"";
  fail(field + " is \"" + text + "\", expected " + expected);
}

// [a, b, ...] of `count` integers, named `field` in errors.
std::vector<int> as_ints(const json& value, const std::string& field, std::size_t count,
                         const char* meaning) {
  if (!value.is_array() || value.size() != count)
    fail(field + " is " + type_text(value) + ", expected " + meaning);
  std::vector<int> out;
  for (std::size_t i = 0; i < count; ++i)
    out.push_back(as_int(value[i], field + "[" + std::to_string(i) + "]"));
  return out;
}

// `architecture.stem` -> StemConfig (its sizes are checked by StemConfig::validate,
// through ModelConfig::validate). Unknown keys are refused, as in `architecture`.
StemConfig parse_stem(const json& stem) {
  const std::string where = "architecture.stem";
  as_object(stem, where);
  static const std::set<std::string> known = {"input_offset", "input_shape", "layers", "pool_strips"};
  for (const auto& item : stem.items())
    if (!known.count(item.key())) fail(where + ": unknown key \"" + item.key() + "\"");
  StemConfig c;
  const std::vector<int> shape = as_ints(member(stem, "input_shape", where), where + ".input_shape",
                                         3, "[channels, height, width]");
  c.input_channels = shape[0], c.input_height = shape[1], c.input_width = shape[2];
  if (const auto v = stem.find("input_offset"); v != stem.end())
    c.input_offset = as_int(*v, where + ".input_offset");
  if (const auto v = stem.find("pool_strips"); v != stem.end())
    c.pool_strips = as_int(*v, where + ".pool_strips");
  const json& layers = member(stem, "layers", where);
  if (!layers.is_array() || layers.empty() ||
      layers.size() > static_cast<std::size_t>(ConfigLimits::kMaxStemLayers))
    fail(where + ".layers is " + type_text(layers) + ", expected an array of 1 .. " +
         std::to_string(ConfigLimits::kMaxStemLayers) + " layers");
  for (std::size_t l = 0; l < layers.size(); ++l) {
    const std::string at = where + ".layers[" + std::to_string(l) + "]";
    const json& layer = as_object(layers[l], at);
    for (const auto& item : layer.items())
      if (item.key() != "channels" && item.key() != "kernel" && item.key() != "stride")
        fail(at + ": unknown key \"" + item.key() + "\"");
    StemLayer s;
    s.channels = as_int(member(layer, "channels", at), at + ".channels");
    const std::vector<int> kernel = as_ints(member(layer, "kernel", at), at + ".kernel", 2,
                                            "[height, width]");
    s.kernel_height = kernel[0], s.kernel_width = kernel[1];
    if (const auto v = layer.find("stride"); v != layer.end()) {
      const std::vector<int> stride = as_ints(*v, at + ".stride", 2, "[height, width]");
      s.stride_height = stride[0], s.stride_width = stride[1];
    }
    c.layers.push_back(s);
  }
  return c;
}

// The `architecture` object -> ModelConfig (classes set separately). Unknown keys
// are refused: a misspelt key silently taking its default would change the model.
ModelConfig parse_architecture(const json& arch) {
  as_object(arch, "architecture");
  static const std::set<std::string> known = {
      "window", "landmarks", "input_dim", "embed_dim", "heads", "ff_dim", "blocks", "attention",
      "landmark_schedule", "pinv", "pinv_iterations", "positional_period", "output_activation",
      "output_projection", "layer_norm_eps", "assembly", "linear_inputs", "stem"};
  for (const auto& item : arch.items())
    if (!known.count(item.key())) fail("architecture: unknown key \"" + item.key() + "\"");

  ModelConfig c;
  auto required = [&arch](const char* key) {
    return as_int(member(arch, key, "architecture"), std::string("architecture.") + key);
  };
  c.window = required("window");
  c.landmarks = required("landmarks");
  c.input_dim = required("input_dim");
  c.embed_dim = required("embed_dim");
  c.heads = required("heads");
  c.ff_dim = required("ff_dim");
  c.blocks = required("blocks");
  c.positional_period = c.window;
  auto optional = [&arch](const char* key) -> const json* {
    const auto found = arch.find(key);
    return found == arch.end() ? nullptr : &*found;
  };
  if (const json* v = optional("assembly"))
    c.assembly = as_choice(*v, "architecture.assembly", {"retroactive", "stacked"},
                           {Assembly::kRetroactive, Assembly::kStacked});
  if (const json* v = optional("attention"))
    c.attention = as_choice(*v, "architecture.attention", {"nystrom", "softmax"},
                            {AttentionKind::kNystrom, AttentionKind::kSoftmax});
  if (const json* v = optional("landmark_schedule"))
    c.schedule = as_choice(*v, "architecture.landmark_schedule", {"continual", "fixed"},
                           {LandmarkSchedule::kContinual, LandmarkSchedule::kFixed});
  if (const json* v = optional("pinv"))
    c.pinv = as_choice(*v, "architecture.pinv", {"iterative", "exact"},
                       {PinvMode::kIterative, PinvMode::kExact});
  if (const json* v = optional("pinv_iterations"))
    c.pinv_iterations = as_int(*v, "architecture.pinv_iterations");
  if (const json* v = optional("positional_period"))
    c.positional_period = as_int(*v, "architecture.positional_period");
  if (const json* v = optional("output_activation"))
    c.activation = as_choice(*v, "architecture.output_activation", {"sigmoid", "softmax"},
                             {OutputActivation::kSigmoid, OutputActivation::kSoftmax});
  if (const json* v = optional("output_projection")) {
    if (!v->is_boolean())
      fail("architecture.output_projection is " + type_text(*v) + ", expected true or false");
    c.output_projection = v->get<bool>();
  }
  if (const json* v = optional("layer_norm_eps")) {
    if (!v->is_number())
      fail("architecture.layer_norm_eps is " + type_text(*v) + ", expected a number");
    c.layer_norm_eps = static_cast<float>(v->get<double>());
  }
  if (const json* v = optional("linear_inputs")) {
    c.linear_inputs = as_int(*v, "architecture.linear_inputs");
    // -1 is the "all of them" default, not a value a file may give.
    if (c.linear_inputs < 1)
      fail("architecture.linear_inputs = " + std::to_string(c.linear_inputs) + ", expected 1 .. " +
           "input_dim");
  }
  if (const json* v = optional("stem")) c.stem = parse_stem(*v);
  return c;
}

std::vector<std::string> parse_classes(const json& classes) {
  if (!classes.is_array() || classes.empty())
    fail("classes is " + type_text(classes) + ", expected a non-empty array of class names");
  std::vector<std::string> names;
  std::set<std::string> seen;
  for (std::size_t i = 0; i < classes.size(); ++i) {
    const std::string field = "classes[" + std::to_string(i) + "]";
    std::string name = as_string(classes[i], field);
    if (name.empty()) fail(field + " is empty");
    if (!seen.insert(name).second) fail(field + " \"" + name + "\" repeats an earlier class");
    names.push_back(std::move(name));
  }
  return names;
}

// `input_normalization` -> input_mean and input_scale = 1 / std. The scale is
// computed in double so that a float scale written as 1/scale reads back exactly.
void parse_normalization(const json& norm, int dims, ModelWeights* w) {
  as_object(norm, "input_normalization");
  const json& mean = member(norm, "mean", "input_normalization");
  const json& std_dev = member(norm, "std", "input_normalization");
  for (const auto& [field, array] : {std::pair<const char*, const json*>{"mean", &mean},
                                     std::pair<const char*, const json*>{"std", &std_dev}})
    if (!array->is_array() || array->size() != static_cast<std::size_t>(dims))
      fail(std::string("input_normalization.") + field + " has " +
           (array->is_array() ? std::to_string(array->size()) + " values" : type_text(*array)) +
           ", expected " + std::to_string(dims) + " numbers (architecture.input_dim)");
  w->input_mean.resize(dims);
  w->input_scale.resize(dims);
  for (int i = 0; i < dims; ++i) {
    const std::string at = "[" + std::to_string(i) + "]";
    if (!mean[i].is_number() || !std::isfinite(static_cast<float>(mean[i].get<double>())))
      fail("input_normalization.mean" + at + " is " + type_text(mean[i]) +
           ", expected a finite number");
    const double s = std_dev[i].is_number() ? std_dev[i].get<double>() : 0.0;
    const float scale = static_cast<float>(1.0 / s);
    if (!std_dev[i].is_number() || !(s > 0.0) || !std::isfinite(static_cast<float>(s)) ||
        !std::isfinite(scale))
      fail("input_normalization.std" + at + " is " + type_text(std_dev[i]) +
           ", expected a finite number > 0");
    w->input_mean[i] = static_cast<float>(mean[i].get<double>());
    w->input_scale[i] = scale;
  }
}

struct Extractor {
  const char* name;
  int version;
  const char* modality;
};
constexpr Extractor kExtractors[] = {
    {"identity", 1, "features"},
    {"log-mel", 1, "audio"},
    {"video-motion", 1, "video"},
};

// The front end's parameters are part of the model: a file whose extractor
// cannot run with them, or makes tokens of another length than the model takes,
// is refused here, for every tool alike.
void check_feature_params(const ModelInfo& info, int input_dim) {
  std::string error;
  int dim = input_dim;
  if (info.feature_extractor == "log-mel") {
    LogMelParams p;
    if (!LogMelParams::parse(info.feature_params, &p, &error)) fail("features.params: " + error);
    dim = p.dim();
  } else if (info.feature_extractor == "video-motion") {
    VideoMotionParams p;
    if (!VideoMotionParams::parse(info.feature_params, &p, &error)) fail("features.params: " + error);
    dim = p.dim();
  }
  if (dim != input_dim)
    fail("features.params: " + info.feature_extractor + " makes " + std::to_string(dim) +
         " features per token but architecture.input_dim is " + std::to_string(input_dim));
}

// ---------------------------------------------------------------- the container

// Parses a JSON object (the header or the metadata document), refusing what is
// valid JSON but hostile or ambiguous: nesting deeper than kMaxJsonDepth or more
// than kMaxJsonEvents values (a DOM costs tens of bytes per one-byte "[" or "0,",
// so 64 MiB of them would take gigabytes), and a key repeated in an object (the
// DOM would keep one and hide the other). Stops at the first problem.
json parse_json_object(const char* begin, const char* end, const std::string& what) {
  std::size_t events = 0;
  std::vector<std::set<std::string>> keys;  // one set per open object
  json::parser_callback_t guard = [&](int depth, json::parse_event_t event, json& parsed) {
    if (++events > kMaxJsonEvents)
      fail(what + " has more than " + std::to_string(kMaxJsonEvents) + " JSON values");
    switch (event) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start:
        if (depth >= kMaxJsonDepth)
          fail(what + " nests deeper than " + std::to_string(kMaxJsonDepth) + " levels");
        if (event == json::parse_event_t::object_start) keys.emplace_back();
        break;
      case json::parse_event_t::object_end:
        keys.pop_back();
        break;
      case json::parse_event_t::key:
        if (!keys.back().insert(parsed.get<std::string>()).second)
          fail(what + " has key \"" + parsed.get<std::string>() + "\" more than once");
        break;
      default:
        break;
    }
    return true;
  };
  json value;
  try {
    value = json::parse(begin, end, guard);
  } catch (const json::parse_error& e) {
    // e.what() is "[json.exception.parse_error.101] parse error at line 1, ...".
    const std::string text = e.what();
    const std::size_t bracket = text.find("] ");
    fail(what + " is not valid JSON (" + text.substr(bracket == std::string::npos ? 0 : bracket + 2) +
         ")");
  }
  if (!value.is_object()) fail(what + " is " + type_text(value) + ", expected a JSON object");
  return value;
}

// Checks one header entry against the tensor the architecture expects.
Located locate(const std::string& name, const json& entry, const Shape& expected,
               std::uint64_t buffer_size) {
  if (!entry.is_object()) fail("tensor " + name + " is " + type_text(entry) + ", expected an object");
  const std::string where = "tensor " + name;
  const std::string dtype_text = as_string(member(entry, "dtype", where), where + " dtype");
  Dtype dtype;
  if (dtype_text == "F32")
    dtype = Dtype::kF32;
  else if (dtype_text == "F16")
    dtype = Dtype::kF16;
  else if (dtype_text == "BF16")
    dtype = Dtype::kBF16;
  else
    fail(where + " has dtype " + dtype_text + ", expected F32, F16 or BF16");

  const json& shape = member(entry, "shape", where);
  if (!shape.is_array()) fail(where + " shape is " + type_text(shape) + ", expected an array");
  if (shape.size() != expected.size())
    fail(where + " has " + std::to_string(shape.size()) + " dimensions, expected " +
         std::to_string(expected.size()) + " " + to_text(expected));
  Shape found;
  for (const json& dim : shape) {
    if (!dim.is_number_unsigned()) fail(where + " shape has " + type_text(dim) + ", expected sizes");
    found.push_back(static_cast<std::int64_t>(std::min<std::uint64_t>(
        dim.get<std::uint64_t>(), static_cast<std::uint64_t>(INT64_MAX))));
  }
  if (found != expected)
    fail(where + " has shape " + to_text(found) + ", expected " + to_text(expected));

  const json& offsets = member(entry, "data_offsets", where);
  if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
      !offsets[1].is_number_unsigned())
    fail(where + " data_offsets is " + type_text(offsets) + ", expected [begin, end]");
  const auto begin = offsets[0].get<std::uint64_t>(), end = offsets[1].get<std::uint64_t>();
  const std::uint64_t bytes = element_count(expected) * (dtype == Dtype::kF32 ? 4 : 2);
  if (begin > end || end > buffer_size)
    fail(where + " data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
         "] are outside the data buffer of " + std::to_string(buffer_size) + " bytes");
  if (end - begin != bytes)
    fail(where + " data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
         "] hold " + std::to_string(end - begin) + " bytes, expected " + std::to_string(bytes) +
         " (" + dtype_text + " " + to_text(expected) + ")");
  return {dtype, begin, end};
}

std::shared_ptr<const Model> parse_or_throw(const std::uint8_t* data, std::size_t size) {
  if (size < 8)
    fail("file is " + std::to_string(size) + " bytes, shorter than the 8-byte header length");
  std::uint64_t header_size = 0;
  for (int b = 7; b >= 0; --b) header_size = header_size << 8 | data[b];
  if (header_size > kMaxHeaderBytes)
    fail("header length " + std::to_string(header_size) + " exceeds the limit of " +
         std::to_string(kMaxHeaderBytes) + " bytes");
  if (header_size > size - 8)
    fail("header length " + std::to_string(header_size) + " runs past the end of the file (" +
         std::to_string(size) + " bytes)");
  const auto* text = reinterpret_cast<const char*>(data + 8);
  const json header = parse_json_object(text, text + header_size, "header");
  const std::uint8_t* buffer = data + 8 + header_size;
  const std::uint64_t buffer_size = size - 8 - header_size;

  // The metadata document.
  const json& metadata = as_object(member(header, "__metadata__", "header"), "__metadata__");
  const std::string doc_text =
      as_string(member(metadata, "nystream", "__metadata__"), "__metadata__.nystream");
  const json doc = parse_json_object(doc_text.data(), doc_text.data() + doc_text.size(),
                                     "__metadata__.nystream");
  const std::string where = "metadata";
  const std::string format = as_string(member(doc, "format", where), "format");
  if (format != "nystream-model") fail("format is \"" + format + "\", expected \"nystream-model\"");
  const int version = as_int(member(doc, "format_version", where), "format_version");
  if (version != kFormatVersion)
    fail("format_version is " + std::to_string(version) + ", this loader knows " +
         std::to_string(kFormatVersion));

  ModelInfo info;
  info.name = as_string(member(doc, "name", where), "name");
  info.modality = as_string(member(doc, "modality", where), "modality");
  info.classes = parse_classes(member(doc, "classes", where));
  const json& features = as_object(member(doc, "features", where), "features");
  info.feature_extractor = as_string(member(features, "extractor", "features"), "features.extractor");
  info.feature_version = as_int(member(features, "version", "features"), "features.version");
  if (!known_feature_extractor(info.feature_extractor, info.feature_version))
    fail("features: unknown feature extractor \"" + info.feature_extractor + "\" version " +
         std::to_string(info.feature_version) +
         ", expected identity 1, log-mel 1 or video-motion 1");
  const std::string modality =
      feature_extractor_modality(info.feature_extractor, info.feature_version);
  if (info.modality != modality)
    fail("modality is \"" + info.modality + "\", expected \"" + modality + "\" (the modality of " +
         info.feature_extractor + ")");
  const auto params = features.find("params");
  info.feature_params = params == features.end() ? "{}" : as_object(*params, "features.params").dump();
  const auto provenance = doc.find("provenance");
  info.provenance = provenance == doc.end() ? "{}" : as_object(*provenance, "provenance").dump();

  ModelConfig config = parse_architecture(member(doc, "architecture", where));
  config.classes = static_cast<int>(std::min<std::size_t>(info.classes.size(), INT_MAX));
  if (const std::string problem = config.validate(); !problem.empty())
    fail("architecture: " + problem);
  check_feature_params(info, config.input_dim);

  ModelWeights weights;
  weights.layers.resize(config.blocks);
  weights.stem.convs.resize(config.stem.layers.size());
  const auto norm = doc.find("input_normalization");
  if (norm != doc.end()) parse_normalization(*norm, config.input_dim, &weights);

  // Pass 1: every header entry is an expected tensor with the expected bytes.
  std::map<std::string, Shape> expected;
  for_each_tensor(config, weights, [&expected](const std::string& name, const Shape& shape,
                                               auto&, Layout) { expected[name] = shape; });
  std::map<std::string, Located> located;
  for (const auto& item : header.items()) {
    if (item.key() == "__metadata__") continue;
    const auto want = expected.find(item.key());
    if (want == expected.end())
      fail("stray tensor " + item.key() + ": not part of a model with this architecture");
    located[item.key()] = locate(item.key(), item.value(), want->second, buffer_size);
  }
  for (const auto& [name, shape] : expected)
    if (!located.count(name)) fail("missing tensor " + name + " " + to_text(shape));
  std::vector<std::pair<Located, std::string>> ranges;
  for (const auto& [name, where_is] : located) ranges.push_back({where_is, name});
  std::sort(ranges.begin(), ranges.end(), [](const auto& a, const auto& b) {
    return a.first.begin < b.first.begin;
  });
  for (std::size_t i = 1; i < ranges.size(); ++i)
    if (ranges[i].first.begin < ranges[i - 1].first.end)
      fail("tensors " + ranges[i - 1].second + " [" + std::to_string(ranges[i - 1].first.begin) +
           ", " + std::to_string(ranges[i - 1].first.end) + ") and " + ranges[i].second + " [" +
           std::to_string(ranges[i].first.begin) + ", " + std::to_string(ranges[i].first.end) +
           ") overlap");

  // The step keeps linear weights 16-bit when every one of them is stored so
  // (one type); any other mix is widened to float32, as before.
  std::set<Dtype> linear_types;
  for_each_tensor(config, weights, [&](const std::string& name, const Shape&, auto&, Layout layout) {
    if (layout == Layout::kLinear) linear_types.insert(located.at(name).dtype);
  });
  if (linear_types.size() == 1 && *linear_types.begin() != Dtype::kF32)
    config.weight_type = *linear_types.begin() == Dtype::kF16 ? WeightType::kF16 : WeightType::kBF16;

  // Pass 2: allocate with the validated shapes and fill.
  for_each_tensor(config, weights, [&](const std::string& name, const Shape& shape, auto& tensor,
                                       Layout layout) {
    const Located& at = located.at(name);
    const std::uint8_t* bytes = buffer + at.begin;
    if constexpr (std::is_same_v<std::decay_t<decltype(tensor)>, Eigen::VectorXf>) {
      tensor.resize(shape[0]);
      read_values(name, shape, bytes, at.dtype, tensor.data());
    } else if (layout == Layout::kColumns) {
      tensor.resize(shape[1], shape[0]);
      read_values(name, shape, bytes, at.dtype, tensor.data());
    } else if (layout == Layout::kConv) {
      tensor.resize(static_cast<Eigen::Index>(element_count(shape) / shape[0]), shape[0]);
      read_values(name, shape, bytes, at.dtype, tensor.data());
    } else {
      Eigen::MatrixXf in_by_out(shape[1], shape[0]);  // row-major [out, in] as column-major
      read_values(name, shape, bytes, at.dtype, in_by_out.data());
      tensor = in_by_out.transpose();
    }
  });

  std::string problem;
  auto model = Model::create(std::move(config), std::move(weights), std::move(info), &problem);
  if (!model) fail(problem);
  return model;
}

// ---------------------------------------------------------------- writing

json metadata_document(const Model& model) {
  const ModelConfig& c = model.config();
  const ModelInfo& info = model.info();
  json doc = {
      {"format", "nystream-model"},
      {"format_version", kFormatVersion},
      {"name", info.name},
      {"modality", info.modality},
      {"architecture",
       {{"window", c.window},
        {"landmarks", c.landmarks},
        {"input_dim", c.input_dim},
        {"embed_dim", c.embed_dim},
        {"heads", c.heads},
        {"ff_dim", c.ff_dim},
        {"blocks", c.blocks},
        {"assembly", to_string(c.assembly)},
        {"attention", to_string(c.attention)},
        {"landmark_schedule", to_string(c.schedule)},
        {"pinv", to_string(c.pinv)},
        {"pinv_iterations", c.pinv_iterations},
        {"positional_period", c.positional_period},
        {"output_activation", to_string(c.activation)},
        {"output_projection", c.output_projection},
        {"layer_norm_eps", static_cast<double>(c.layer_norm_eps)}}},
      {"classes", info.classes},
      {"features",
       {{"extractor", info.feature_extractor},
        {"version", info.feature_version},
        {"params", json::parse(info.feature_params)}}},
      {"provenance", json::parse(info.provenance)},
  };
  if (c.linear_inputs >= 0) doc["architecture"]["linear_inputs"] = c.linear_inputs;
  if (c.stem.enabled()) {
    json layers = json::array();
    for (const StemLayer& s : c.stem.layers)
      layers.push_back({{"channels", s.channels},
                        {"kernel", {s.kernel_height, s.kernel_width}},
                        {"stride", {s.stride_height, s.stride_width}}});
    doc["architecture"]["stem"] = {
        {"input_offset", c.stem.input_offset},
        {"input_shape", {c.stem.input_channels, c.stem.input_height, c.stem.input_width}},
        {"layers", layers},
        {"pool_strips", c.stem.pool_strips}};
  }
  const ModelWeights& w = model.weights();
  if (w.input_mean.size()) {
    json mean = json::array(), std_dev = json::array();
    for (Eigen::Index i = 0; i < w.input_mean.size(); ++i) {
      mean.push_back(static_cast<double>(w.input_mean[i]));
      std_dev.push_back(1.0 / static_cast<double>(w.input_scale[i]));
    }
    doc["input_normalization"] = {{"mean", mean}, {"std", std_dev}};
  }
  return doc;
}

void write_or_throw(const Model& model, const std::string& path) {
  const ModelConfig& c = model.config();
  const ModelWeights& w = model.weights();
  json header = {{"__metadata__", {{"nystream", metadata_document(model).dump()}}}};
  std::uint64_t offset = 0;
  // Linear weights in the model's weight type (their values are already
  // rounded to it), everything else F32.
  const bool half = c.weight_type != WeightType::kF32;
  const char* half_name = c.weight_type == WeightType::kF16 ? "F16" : "BF16";
  for_each_tensor(c, w, [&](const std::string& name, const Shape& shape, const auto&, Layout layout) {
    const bool sixteen = half && layout == Layout::kLinear;
    const std::uint64_t bytes = element_count(shape) * (sixteen ? 2 : 4);
    header[name] = {{"dtype", sixteen ? half_name : "F32"}, {"shape", shape},
                    {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  });
  std::string text = header.dump();
  text.append((kDataAlignment - (8 + text.size()) % kDataAlignment) % kDataAlignment, ' ');

  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) fail("cannot create (" + std::string(std::strerror(errno)) + ")");
  unsigned char length[8];
  for (int b = 0; b < 8; ++b) length[b] = static_cast<unsigned char>(text.size() >> (8 * b));
  out.write(reinterpret_cast<const char*>(length), 8);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  for_each_tensor(c, w, [&](const std::string&, const Shape&, const auto& tensor, Layout layout) {
    // Column-major Eigen memory of the transpose is the row-major [out, in] file order.
    const bool transposed = layout == Layout::kLinear || layout == Layout::kStemLinear;
    const Eigen::MatrixXf rows = transposed ? Eigen::MatrixXf(tensor.transpose())
                                            : Eigen::MatrixXf(tensor);
    if (half && layout == Layout::kLinear) {
      std::vector<std::uint16_t> bits(static_cast<std::size_t>(rows.size()));
      for (Eigen::Index i = 0; i < rows.size(); ++i)
        bits[i] = c.weight_type == WeightType::kF16 ? to_half(rows.data()[i]) : to_bfloat16(rows.data()[i]);
      out.write(reinterpret_cast<const char*>(bits.data()),
                static_cast<std::streamsize>(bits.size() * sizeof(std::uint16_t)));
    } else {
      out.write(reinterpret_cast<const char*>(rows.data()),
                static_cast<std::streamsize>(rows.size() * sizeof(float)));
    }
  });
  out.close();
  if (!out) fail("write error (" + std::string(std::strerror(errno)) + ")");
}

}  // namespace

bool known_feature_extractor(const std::string& name, int version) {
  return !feature_extractor_modality(name, version).empty();
}

std::string feature_extractor_modality(const std::string& name, int version) {
  for (const Extractor& e : kExtractors)
    if (name == e.name && version == e.version) return e.modality;
  return {};
}

std::shared_ptr<const Model> parse_model(const std::uint8_t* data, std::size_t size,
                                         const std::string& source_name, std::string* error) {
  std::string problem;
  try {
    return parse_or_throw(data, size);
  } catch (const LoadError& e) {
    problem = e.what();
  } catch (const std::bad_alloc&) {
    problem = "out of memory";
  } catch (const std::exception& e) {
    problem = std::string("unexpected error: ") + e.what();
  } catch (...) {
    problem = "unexpected error";
  }
  if (error) *error = source_name + ": " + problem;
  return nullptr;
}

std::shared_ptr<const Model> load_model(const std::string& path, std::string* error) {
  std::string problem;
  try {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) {
      problem = std::filesystem::exists(path, ec) ? "not a regular file" : "no such file";
    } else {
      std::ifstream file(path, std::ios::binary);
      const auto size = std::filesystem::file_size(path, ec);
      if (!file || ec) {
        problem = "cannot open (" + std::string(std::strerror(errno)) + ")";
      } else {
        std::vector<std::uint8_t> bytes(size);
        if (!file.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size)))
          problem = "read error after " + std::to_string(file.gcount()) + " of " +
                    std::to_string(size) + " bytes";
        else
          return parse_model(bytes.data(), bytes.size(), path, error);
      }
    }
  } catch (const std::bad_alloc&) {
    problem = "out of memory reading the file";
  } catch (...) {
    problem = "unexpected error reading the file";
  }
  if (error) *error = path + ": " + problem;
  return nullptr;
}

bool save_model(const Model& model, const std::string& path, std::string* error) {
  std::string problem;
  try {
    write_or_throw(model, path);
    return true;
  } catch (const LoadError& e) {
    problem = e.what();
  } catch (const json::exception& e) {
    problem = std::string("cannot encode the metadata (") + e.what() + ")";
  } catch (const std::exception& e) {
    problem = e.what();
  } catch (...) {
    problem = "unexpected error";
  }
  if (error) *error = path + ": " + problem;
  return false;
}

}  // namespace nystream
