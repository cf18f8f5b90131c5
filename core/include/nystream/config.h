// Architecture of a continual Nyström transformer: the value struct a Model is
// built from. Every field has a documented default; validate() says what is wrong.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace nystream {

// Which attention the encoder layers use.
enum class AttentionKind {
  kNystrom,  // landmark approximation (docs/algorithm.md section 2)
  kSoftmax,  // exact softmax attention: the Continual Transformers baseline
};

// Where the Nyström landmarks come from (algorithm.md 3.1).
enum class LandmarkSchedule {
  kContinual,  // segment means of the window, refreshed every window/landmarks steps
  kFixed,      // constants of the trained model; pinv computed once at load
};

// How pinv(softmax(Qt Kt^T)) is computed (algorithm.md section 2).
enum class PinvMode {
  kIterative,  // Nyströmformer's 6-step iteration with a per-head start
  kExact,      // complete orthogonal decomposition
};

// How blocks > 1 layers are assembled (algorithm.md 3.5; docs/model-format.md).
enum class Assembly {
  kRetroactive,  // blocks <= 2: a retroactive first layer (every window row updated
                 // each step), then a single-output last layer: O(n (E^2 + E F)) a step
  kStacked,      // blocks 1..16 single-output layers, each over the last n outputs of
                 // the layer below, each computed once: blocks x a 1-block step, flat in n
};

enum class OutputActivation {
  kSoftmax,  // exclusive classes
  kSigmoid,  // independent (multi-label) events
};

// How the step stores the linear layers' weights (nystream/weights16.h).
enum class WeightType {
  kF32,   // float32 (the default)
  kF16,   // IEEE binary16: 11-bit significand, |w| <= 65504
  kBF16,  // bfloat16: float32's exponent range, 8-bit significand
};

// One convolution of a stem: zero "same" padding (kernel / 2 on each side),
// stride, bias, then ReLU. Output size along an axis: (in + 2 (k / 2) - k) / s + 1.
struct StemLayer {
  int channels = 16;                // c_out
  int kernel_height = 3, kernel_width = 3;
  int stride_height = 1, stride_width = 1;
};

// A learned front end inside the model (docs/model-format.md, `architecture.stem`):
// token values [input_offset, input_offset + C H W), after the input
// normalisation, read as a C x H x W tensor (channel-major, row-major), go
// through the convolutions; the last feature map (c_L x H' x W') is pooled into
// c_L (pool_strips + 2) values (per channel: the maximum over each of pool_strips
// horizontal strips, rows [floor(i H' / g), floor((i + 1) H' / g)), then the
// global maximum, then the global mean; channel c at [c (g + 2), (c + 1)(g + 2)))
// and projected to E by stem.proj (no bias), added to the token's embedding.
// No layers: no stem (every model before the stem existed).
struct StemConfig {
  int input_offset = 0;
  int input_channels = 0, input_height = 0, input_width = 0;  // C, H, W
  std::vector<StemLayer> layers;
  int pool_strips = 0;  // g

  bool enabled() const { return !layers.empty(); }
  long long input_size() const { return 1LL * input_channels * input_height * input_width; }
  // Height and width of layer l's output (l = -1: the input).
  int output_height(int l) const;
  int output_width(int l) const;
  int channels(int l) const { return l < 0 ? input_channels : layers[l].channels; }
  // c_L (g + 2): what stem.proj reads.
  int pooled_size() const;
  // Floats the scratch of one stream holds (im2col and activations).
  long long scratch_floats() const;
  // Multiply-adds x 2 of the convolutions, pooling excluded (flops.h adds proj).
  double conv_flops() const;
  // Empty when usable with tokens of input_dim values; else what is wrong,
  // naming the field (stem.layers[1].kernel, ...).
  std::string validate(int input_dim) const;
};

struct ModelConfig {
  int window = 120;       // n: tokens the attention sees
  int landmarks = 8;      // m: Nyström landmarks; continual landmarks need window % landmarks == 0
  int input_dim = 64;     // D_in: feature vector length
  int embed_dim = 192;    // E = heads * head_dim
  int heads = 16;         // h
  int ff_dim = 1024;      // F: feed-forward hidden width
  int blocks = 1;         // encoder layers; 1 is the same model in either assembly
  Assembly assembly = Assembly::kRetroactive;
  int classes = 6;        // C
  int positional_period = 120;  // P: token t gets positional embedding t mod P
  int pinv_iterations = 6;
  AttentionKind attention = AttentionKind::kNystrom;
  LandmarkSchedule schedule = LandmarkSchedule::kContinual;
  PinvMode pinv = PinvMode::kIterative;
  OutputActivation activation = OutputActivation::kSigmoid;
  bool output_projection = true;  // attention has an E x E output projection
  float layer_norm_eps = 1e-5f;
  // The input, attention, feed-forward and classifier matrices: a 16-bit type
  // rounds them once (Model::create) and the step reads 16-bit copies.
  WeightType weight_type = WeightType::kF32;
  // How many leading token values the input projection reads: -1 (the default)
  // for all input_dim; fewer when the rest only feed the stem.
  int linear_inputs = -1;
  StemConfig stem;  // no layers: none

  int linear_input_dim() const { return linear_inputs < 0 ? input_dim : linear_inputs; }
  int head_dim() const { return embed_dim / heads; }
  // Steps between continual landmark updates (L = n / m).
  int segment_length() const { return window / landmarks; }
  bool stacked() const { return assembly == Assembly::kStacked && blocks > 1; }
  bool retroactive() const { return assembly == Assembly::kRetroactive && blocks == 2; }
  // Tokens the newest logits depend on: the window, or for a stacked model
  // blocks x (n - 1) + 1, plus L - 1 per layer with continual landmarks (a layer's
  // landmarks come from the window ending at its last segment completion).
  int receptive_field() const;

  // Floats one StreamState holds (rings, caches, per-window buffers).
  long long stream_state_floats() const;

  // Empty when the configuration is usable; otherwise what is wrong, naming the field.
  std::string validate() const;
};

// Caps that keep a hostile or mistaken configuration from allocating gigabytes.
struct ConfigLimits {
  static constexpr int kMaxWindow = 65536;
  static constexpr int kMaxLandmarks = 1024;
  static constexpr int kMaxEmbed = 8192;
  static constexpr int kMaxHeads = 256;
  static constexpr int kMaxFeedForward = 32768;
  static constexpr int kMaxInput = 65536;
  static constexpr int kMaxClasses = 4096;
  static constexpr int kMaxBlocks = 16;  // stacked; retroactive: 2
  // What a configuration makes the engine allocate and compute on its own, beyond
  // the weights a file must hold: one stream's state (floats) and the landmark
  // pinv's m^3 h work at load. Within these, a file of a few MB cannot cost
  // gigabytes or minutes.
  static constexpr long long kMaxStreamFloats = 1LL << 26;  // 256 MiB
  static constexpr long long kMaxPinvWork = 1LL << 28;      // m^3 h: ~0.3 s at load
  // Stem: layers, channels, kernel and stride sides, and its work per token
  // (a few ms at most: the stem runs on the streaming thread for every token).
  static constexpr int kMaxStemLayers = 8;
  static constexpr int kMaxStemChannels = 1024;
  static constexpr int kMaxStemKernel = 31;
  static constexpr int kMaxStemStride = 16;
  static constexpr double kMaxStemFlops = 1e9;
};

const char* to_string(AttentionKind kind);
const char* to_string(LandmarkSchedule schedule);
const char* to_string(PinvMode mode);
const char* to_string(OutputActivation activation);
const char* to_string(Assembly assembly);
const char* to_string(WeightType type);

}  // namespace nystream
