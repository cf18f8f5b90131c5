#include "nystream/config.h"

#include <algorithm>
#include <sstream>

namespace nystream {

namespace {

// "" when lo <= value <= hi, else a sentence naming the field.
std::string out_of_range(const char* field, long long value, long long lo, long long hi) {
  if (value >= lo && value <= hi) return {};
  std::ostringstream out;
  out << field << " = " << value << ", expected " << lo << " .. " << hi;
  return out.str();
}

// The attention layers' share of stream_state_floats().
long long attention_state_floats(const ModelConfig& c) {
  const long long n = c.window, e = c.embed_dim, f = c.ff_dim, m = c.landmarks, h = c.heads;
  const int blocks = c.blocks;
  if (c.stacked()) {
    // Per single-output layer: k, v rings, m cached rows (numerators, sums,
    // offsets, rescale), landmarks and segment sums, pinv, n softmax weights.
    return blocks * (2 * n * e + m * e + 4 * m * h + 4 * e * m + m * m * h + n) + 4 * e + f;
  }
  // First layer: k, v, q rings and row caches (the largest case: retroactive
  // softmax keeps one row per window token), landmark scores and pinv.
  long long floats = 3 * n * e + n * e + 3 * n * h + m * h * n + m * m * h + 4 * e * m;
  // A second block: first-layer inputs and outputs for every window token, the
  // last layer's keys and values and its softmax weights.
  if (blocks == 2) floats += n * (4 * e + f) + 3 * n * e + n * m;
  return floats;
}

}  // namespace

std::string ModelConfig::validate() const {
  using L = ConfigLimits;
  for (const std::string& error : {
           out_of_range("window", window, 1, L::kMaxWindow),
           out_of_range("input_dim", input_dim, 1, L::kMaxInput),
           out_of_range("embed_dim", embed_dim, 1, L::kMaxEmbed),
           out_of_range("heads", heads, 1, L::kMaxHeads),
           out_of_range("ff_dim", ff_dim, 1, L::kMaxFeedForward),
           out_of_range("blocks", blocks, 1, L::kMaxBlocks),
           out_of_range("classes", classes, 1, L::kMaxClasses),
           out_of_range("positional_period", positional_period, 1, L::kMaxWindow * 64LL),
           out_of_range("pinv_iterations", pinv_iterations, 1, 100),
       })
    if (!error.empty()) return error;
  if (assembly == Assembly::kRetroactive && blocks > 2)
    return "blocks = " + std::to_string(blocks) +
           " with the retroactive assembly, expected 1 or 2 (use assembly \"stacked\" for more)";
  if (embed_dim % heads != 0)
    return "embed_dim = " + std::to_string(embed_dim) + " is not a multiple of heads = " +
           std::to_string(heads);
  if (!(layer_norm_eps > 0.0f && layer_norm_eps < 1.0f))
    return "layer_norm_eps = " + std::to_string(layer_norm_eps) + ", expected 0 < eps < 1";
  if (attention == AttentionKind::kNystrom) {
    std::string error = out_of_range("landmarks", landmarks, 1, std::min(window, L::kMaxLandmarks));
    if (!error.empty()) return error;
    if (schedule == LandmarkSchedule::kContinual && window % landmarks != 0)
      return "window = " + std::to_string(window) + " is not a multiple of landmarks = " +
             std::to_string(landmarks) + " (continual landmarks are segment means)";
    const long long work = 1LL * landmarks * landmarks * landmarks * heads;
    if (work > L::kMaxPinvWork)
      return "landmarks^3 * heads = " + std::to_string(work) + ", expected at most " +
             std::to_string(L::kMaxPinvWork) + " (the landmark pinv's cost)";
  }
  if (linear_inputs != -1) {
    std::string error = out_of_range("linear_inputs", linear_inputs, 1, input_dim);
    if (!error.empty()) return error + " (input_dim)";
  }
  if (stem.enabled()) {
    std::string error = stem.validate(input_dim);
    if (!error.empty()) return error;
  }
  if (stream_state_floats() > L::kMaxStreamFloats)
    return "one stream would hold " + std::to_string(stream_state_floats()) +
           " floats, expected at most " + std::to_string(L::kMaxStreamFloats) +
           " (window x (embed_dim, ff_dim) too large)";
  return {};
}

int ModelConfig::receptive_field() const {
  if (!stacked()) return window;
  const bool continual = attention == AttentionKind::kNystrom &&
                         schedule == LandmarkSchedule::kContinual;
  return blocks * (window - 1 + (continual ? segment_length() - 1 : 0)) + 1;
}

long long ModelConfig::stream_state_floats() const {
  const long long stem_floats = stem.enabled() ? stem.scratch_floats() : 0;
  return stem_floats + attention_state_floats(*this);
}

int StemConfig::output_height(int l) const {
  int size = input_height;
  for (int i = 0; i <= l; ++i) {
    const StemLayer& s = layers[i];
    size = (size + 2 * (s.kernel_height / 2) - s.kernel_height) / s.stride_height + 1;
  }
  return size;
}

int StemConfig::output_width(int l) const {
  int size = input_width;
  for (int i = 0; i <= l; ++i) {
    const StemLayer& s = layers[i];
    size = (size + 2 * (s.kernel_width / 2) - s.kernel_width) / s.stride_width + 1;
  }
  return size;
}

int StemConfig::pooled_size() const {
  return layers.empty() ? 0 : layers.back().channels * (pool_strips + 2);
}

long long StemConfig::scratch_floats() const {
  long long columns = 0, activations = 0;
  for (int l = 0; l < static_cast<int>(layers.size()); ++l) {
    const long long positions = 1LL * output_height(l) * output_width(l);
    const StemLayer& s = layers[l];
    columns = std::max(columns, positions * channels(l - 1) * s.kernel_height * s.kernel_width);
    activations += positions * s.channels;
  }
  return columns + activations + pooled_size();
}

double StemConfig::conv_flops() const {
  double flops = 0;
  for (int l = 0; l < static_cast<int>(layers.size()); ++l) {
    const StemLayer& s = layers[l];
    flops += 2.0 * output_height(l) * output_width(l) * s.channels * channels(l - 1) *
             s.kernel_height * s.kernel_width;
  }
  return flops;
}

std::string StemConfig::validate(int input_dim) const {
  using L = ConfigLimits;
  for (const std::string& error : {
           out_of_range("stem.input_shape[0] (channels)", input_channels, 1, L::kMaxInput),
           out_of_range("stem.input_shape[1] (height)", input_height, 1, L::kMaxInput),
           out_of_range("stem.input_shape[2] (width)", input_width, 1, L::kMaxInput),
           out_of_range("stem.input_offset", input_offset, 0, L::kMaxInput),
           out_of_range("stem.layers (count)", static_cast<long long>(layers.size()), 1,
                        L::kMaxStemLayers),
       })
    if (!error.empty()) return error;
  if (input_offset + input_size() > input_dim)
    return "stem.input_shape = [" + std::to_string(input_channels) + ", " +
           std::to_string(input_height) + ", " + std::to_string(input_width) + "] reads " +
           std::to_string(input_size()) + " values from stem.input_offset = " +
           std::to_string(input_offset) + ", past input_dim = " + std::to_string(input_dim);
  for (std::size_t l = 0; l < layers.size(); ++l) {
    const StemLayer& s = layers[l];
    const std::string at = "stem.layers[" + std::to_string(l) + "].";
    for (const std::string& error : {
             out_of_range((at + "channels").c_str(), s.channels, 1, L::kMaxStemChannels),
             out_of_range((at + "kernel[0]").c_str(), s.kernel_height, 1, L::kMaxStemKernel),
             out_of_range((at + "kernel[1]").c_str(), s.kernel_width, 1, L::kMaxStemKernel),
             out_of_range((at + "stride[0]").c_str(), s.stride_height, 1, L::kMaxStemStride),
             out_of_range((at + "stride[1]").c_str(), s.stride_width, 1, L::kMaxStemStride),
         })
      if (!error.empty()) return error;
  }
  const int last = static_cast<int>(layers.size()) - 1;
  std::string error = out_of_range("stem.pool_strips", pool_strips, 0, output_height(last));
  if (!error.empty()) return error + " (the last feature map's height)";
  if (conv_flops() > L::kMaxStemFlops)
    return "the stem costs " + std::to_string(static_cast<long long>(conv_flops())) +
           " FLOPs per token, expected at most " +
           std::to_string(static_cast<long long>(L::kMaxStemFlops));
  return {};
}

const char* to_string(AttentionKind kind) {
  return kind == AttentionKind::kNystrom ? "nystrom" : "softmax";
}
const char* to_string(LandmarkSchedule schedule) {
  return schedule == LandmarkSchedule::kContinual ? "continual" : "fixed";
}
const char* to_string(PinvMode mode) { return mode == PinvMode::kIterative ? "iterative" : "exact"; }
const char* to_string(Assembly assembly) {
  return assembly == Assembly::kStacked ? "stacked" : "retroactive";
}
const char* to_string(OutputActivation activation) {
  return activation == OutputActivation::kSoftmax ? "softmax" : "sigmoid";
}

}  // namespace nystream
