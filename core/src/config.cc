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
  const long long n = window, e = embed_dim, f = ff_dim, m = landmarks, h = heads;
  if (stacked()) {
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
