// FLOPs per token (a multiply-add counts 2; exp, max and division are not
// counted), for benchmarks to print next to their times.
#pragma once

#include "nystream/config.h"

namespace nystream {

// One attention layer, all heads, the formulas of algorithm.md section 6.
// Batch forms produce all n outputs, as a transformer layer does.
double batch_softmax_attention_flops(const ModelConfig& c);      // 4 n^2 E
double continual_softmax_attention_flops(const ModelConfig& c);  // 4 n E
double batch_nystrom_attention_flops(const ModelConfig& c);
double continual_nystrom_attention_flops(const ModelConfig& c);  // amortised landmark updates

struct FlopCount {
  double attention = 0;    // inside attention (excludes projections)
  double projections = 0;  // input, q/k/v, output and classifier products
  double feed_forward = 0;
  double total() const { return attention + projections + feed_forward; }
};

// The whole model, per token, as StreamState::step computes it (config.blocks,
// config.attention and config.schedule select the path).
FlopCount continual_model_flops(const ModelConfig& c);
// The batch model re-encoding the window for the newest token's scores, as
// BatchModel::forward computes it: every layer but the last over all n tokens,
// the last layer's attention and feed-forward for the newest token only.
// all_rows: every layer over all n tokens, as a plain encoder forward does.
FlopCount batch_model_flops(const ModelConfig& c, bool all_rows = false);

}  // namespace nystream
