#include "nystream/flops.h"

#include <algorithm>

namespace nystream {

namespace {

struct Dims {
  explicit Dims(const ModelConfig& c)
      : n(c.window), m(c.landmarks), e(c.embed_dim), h(c.heads), f(c.ff_dim), d_in(c.linear_input_dim()),
        classes(c.classes) {}
  double n, m, e, h, f, d_in, classes;  // d_in: the values the input projection reads
};

double pinv_flops(const ModelConfig& c) {
  const Dims x(c);
  return 2 * x.m * x.m * x.e + 8.0 * c.pinv_iterations * x.m * x.m * x.m * x.h;
}

// Nyström attention for `rows` queries over a window of n: F, G, G V, the final
// product (2 n m E each for rows = n), F Zinv, A and the pinv iteration.
double nystrom_rows(const ModelConfig& c, double rows) {
  const Dims x(c);
  return 2 * rows * x.m * x.e + 4 * x.n * x.m * x.e + 2 * rows * x.m * x.e +
         2 * rows * x.m * x.m * x.h + 2 * x.m * x.m * x.e + 8.0 * c.pinv_iterations * x.m * x.m * x.m * x.h;
}

}  // namespace

double batch_softmax_attention_flops(const ModelConfig& c) {
  const Dims x(c);
  return 4 * x.n * x.n * x.e;
}

double continual_softmax_attention_flops(const ModelConfig& c) {
  const Dims x(c);
  return 4 * x.n * x.e;
}

double batch_nystrom_attention_flops(const ModelConfig& c) { return nystrom_rows(c, c.window); }

double continual_nystrom_attention_flops(const ModelConfig& c) {
  const Dims x(c);
  const double pinv = 8.0 * c.pinv_iterations * x.m * x.m * x.m * x.h;
  // Slide: 2 x 2 m E scores, 5 m E row update; output: 2 m E + 2 m^2 h + 2 m E.
  double flops = 13 * x.m * x.e + 2 * x.m * x.m * x.h;
  if (c.schedule == LandmarkSchedule::kContinual) {
    flops += 2 * x.e + (4 * x.n * x.e + 2 * x.m * x.m * x.e + pinv) / c.segment_length();
  } else {
    flops += 4 * x.n * x.e / std::max(1, c.window / c.landmarks);
  }
  return flops;
}

double stem_flops(const ModelConfig& c) {
  if (!c.stem.enabled()) return 0;
  return c.stem.conv_flops() + 2.0 * c.embed_dim * c.stem.pooled_size();
}

FlopCount continual_model_flops(const ModelConfig& c) {
  const Dims x(c);
  const bool nystrom = c.attention == AttentionKind::kNystrom;
  const double out_proj = c.output_projection ? 2 * x.e * x.e : 0;
  FlopCount count;
  count.stem = stem_flops(c);
  if (c.stacked()) {  // L single-output layers
    const double layers = c.blocks;
    count.projections = 2 * x.e * x.d_in + 2 * x.classes * x.e + layers * (6 * x.e * x.e + out_proj);
    count.attention = layers * (nystrom ? continual_nystrom_attention_flops(c)
                                        : continual_softmax_attention_flops(c));
    count.feed_forward = layers * 4 * x.e * x.f;
    return count;
  }
  count.projections = 2 * x.e * x.d_in + 6 * x.e * x.e + 2 * x.classes * x.e;
  if (c.blocks == 1) {
    count.attention = nystrom ? continual_nystrom_attention_flops(c) : continual_softmax_attention_flops(c);
    count.projections += out_proj;
    count.feed_forward = 4 * x.e * x.f;
    return count;
  }
  // Retroactive first layer: the cached rows slide (as single output), then all n
  // outputs are formed; output projection and feed-forward run on all n tokens.
  if (nystrom) {
    // Without the single output (4 m E + 2 m^2 h), plus the entering token's
    // scores (2 m E), all n outputs (2 n m^2 h + 2 n m E) and, at landmark
    // updates, the new landmark's scores for every window query (2 n E).
    count.attention = continual_nystrom_attention_flops(c) - 2 * x.m * x.e - 2 * x.m * x.m * x.h +
                      2 * x.n * x.m * x.m * x.h + 2 * x.n * x.m * x.e;
    if (c.schedule == LandmarkSchedule::kContinual) count.attention += 2 * x.n * x.e / c.segment_length();
  } else {
    // Slide all n rows (9 n E), rebuild the entering query's row (4 n E), divide (n E).
    count.attention = 14 * x.n * x.e;
  }
  count.projections += x.n * out_proj;
  count.feed_forward = 4 * x.n * x.e * x.f;
  // Last layer: keys and values of all n tokens, the newest query, attention for it.
  count.projections += 4 * x.n * x.e * x.e + 2 * x.e * x.e + out_proj;
  if (nystrom) {
    count.attention += 2 * x.n * x.m * x.e + 2 * x.m * x.e + 2 * x.m * x.m * x.h + 2 * x.n * x.m * x.h + 2 * x.n * x.e;
    if (c.schedule == LandmarkSchedule::kContinual)
      count.attention += (2 * x.n * x.e * x.e + 2 * x.m * x.m * x.e + 8.0 * c.pinv_iterations * x.m * x.m * x.m * x.h) /
                         c.segment_length();
  } else {
    count.attention += 4 * x.n * x.e;
  }
  count.feed_forward += 4 * x.e * x.f;
  return count;
}

FlopCount batch_model_flops(const ModelConfig& c, bool all_rows) {
  const Dims x(c);
  const bool nystrom = c.attention == AttentionKind::kNystrom;
  const bool continual = nystrom && c.schedule == LandmarkSchedule::kContinual;
  const double out_proj = c.output_projection ? 2 * x.e * x.e : 0;
  FlopCount count;
  if (c.stacked()) {
    // Layer l runs its rows_l newest positions over rows_l + reach inputs
    // (BatchModel::stacked): keys and values of every input, queries of the rows
    // (of every input with continual landmarks, which are per row).
    const double reach = (c.receptive_field() - 1) / c.blocks;
    count.projections = 2 * c.receptive_field() * x.e * x.d_in + 2 * x.classes * x.e;
    count.stem = c.receptive_field() * stem_flops(c);
    for (int l = 0; l < c.blocks; ++l) {
      const double rows = 1 + (c.blocks - 1 - l) * reach, inputs = rows + reach;
      count.projections += 4 * inputs * x.e * x.e + (continual ? inputs : rows) * 2 * x.e * x.e +
                           rows * out_proj;
      if (!nystrom) {
        count.attention += 4 * rows * x.n * x.e;
      } else if (continual) {  // per row: its landmarks (2 n E), then one Nyström row
        count.attention += rows * (2 * x.n * x.e + nystrom_rows(c, 1));
      } else {  // landmark scores of every input, sliding G V (2 adds), F, pinv F, output
        count.attention += 2 * inputs * x.m * x.e + 2 * x.n * x.m * x.e +
                           rows * (4 * x.m * x.e + 2 * x.m * x.e + 2 * x.m * x.m * x.h + 2 * x.m * x.e);
      }
      count.feed_forward += 4 * rows * x.e * x.f;
    }
    return count;
  }
  count.projections = 2 * x.n * x.e * x.d_in + 2 * x.classes * x.e;
  count.stem = x.n * stem_flops(c);
  for (int l = 0; l < c.blocks; ++l) {
    const double rows = l + 1 == c.blocks && !all_rows ? 1 : x.n;
    // Keys and values of the window; queries of the rows (of all n with
    // continual landmarks, whose segment means need them).
    count.projections += 4 * x.n * x.e * x.e + (continual ? x.n : rows) * 2 * x.e * x.e +
                         rows * out_proj;
    // With fixed landmarks pinv(A) is the model's, computed once at load.
    count.attention += nystrom ? nystrom_rows(c, rows) - (continual ? 0 : pinv_flops(c))
                               : 4 * rows * x.n * x.e;
    count.feed_forward += 4 * rows * x.e * x.f;
  }
  return count;
}

}  // namespace nystream
