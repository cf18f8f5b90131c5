// FLOPs per token (a multiply-add counts 2; exp, max and division are not
// counted), for benchmarks to print next to their times.
#pragma once

#include "nystream/config.h"

namespace nystream {

// One attention layer, all heads, counting what the implementation executes
// (algorithm.md section 6 gives the minimal counts; differences noted). Batch
// forms produce all n outputs, as a transformer layer does.
double batch_softmax_attention_flops(const ModelConfig& c);      // 4 n^2 E, as section 6
double continual_softmax_attention_flops(const ModelConfig& c);  // 4 n E, as section 6
// 8 n m E + 2 n m^2 h + 2 m^2 E + 8 k m^3 h (k pinv iterations; section 6: k = 6).
double batch_nystrom_attention_flops(const ModelConfig& c);
// Single output. Section 6 counts 8 m E + 2 m^2 h (the S, s update and the
// output). This implementation also recomputes the leaving key's scores rather
// than caching n x m of them (2 m E), rescales each row by its offset change
// (m E), and rebuilds one row every n/m steps so round-off cannot accumulate
// (4 n E per rebuild, 4 m E amortised): 17 m E + 2 m^2 h with fixed landmarks.
// Continual landmarks instead rebuild the entering landmark's row and A, pinv(A)
// every L = n/m steps: + 2 E + (4 n E + 2 m^2 E + 8 k m^3 h) / L.
double continual_nystrom_attention_flops(const ModelConfig& c);

// The convolutional stem (config.stem) on one token: its convolutions
// (StemConfig::conv_flops) and stem.proj (2 E c_L (g + 2)); pooling and ReLU
// are maxima, not counted. 0 without a stem.
double stem_flops(const ModelConfig& c);

struct FlopCount {
  double attention = 0;    // inside attention (excludes projections)
  double projections = 0;  // input (its linear_input_dim() columns), q/k/v, output and classifier products
  double feed_forward = 0;
  double stem = 0;         // stem_flops per token embedded
  double total() const { return attention + projections + feed_forward + stem; }
};

// The whole model, per token, as StreamState::step computes it (config.blocks,
// config.assembly, config.attention and config.schedule select the path).
FlopCount continual_model_flops(const ModelConfig& c);
// The batch model re-encoding the window for the newest token's scores, as
// BatchModel::forward computes it with the model's pinv (BatchModel(model, true),
// which also re-runs the stem on every token it embeds):
// every layer but the last over all n tokens, the last layer's queries,
// attention and feed-forward for the newest token only. Stacked: layer l over
// the positions the layer above reads (BatchModel::stacked).
// all_rows: every layer over all n tokens, as a plain encoder forward does.
FlopCount batch_model_flops(const ModelConfig& c, bool all_rows = false);

}  // namespace nystream
