// StreamState's insides, shared with StreamBatch. A step is split into the
// weight products (input projection, the stem's projection, q/k/v, output
// projection, feed-forward, classifier), done for a batch of tokens at once as
// matrix-matrix products, and the per-stream parts between them (normalisation,
// positions, attention, the two-block window). StreamState::step is the same
// pipeline, step_tokens(), with a batch of one, so the two cannot drift apart.
#pragma once

#include <Eigen/Core>
#include <cstdint>
#include <memory>
#include <vector>

#include "continual_attention.h"
#include "matrix_product.h"
#include "nystream/conv_stem.h"
#include "nystream/stream_state.h"
#include "window_attention.h"

namespace nystream {

// The float32 weight products of a step, one per weight shape (the q/k/v,
// output and feed-forward matrices of every layer share theirs).
struct WeightProducts {
  WeightProducts() = default;  // plain product expressions
  WeightProducts(const ModelConfig& config, int columns);
  MatrixProduct input, stem, qkv, out, ff1, ff2, classifier;
};

// Scratch for up to `capacity` tokens of one model, one column each, sized at
// construction so a step allocates nothing.
struct TokenColumns {
  TokenColumns(const ModelConfig& config, int capacity);

  int capacity;
  Eigen::MatrixXf normalized;  // D_in x K: features after the input normalisation
  Eigen::MatrixXf pooled;      // stem's pooled values x K (no rows without a stem)
  Eigen::MatrixXf qkv;         // 3E x K
  Eigen::MatrixXf attention;   // E x K: attention of the layer being computed
  Eigen::MatrixXf input;       // E x K: the layer's input (its residual)
  Eigen::MatrixXf z, hidden, output;  // E, F, E x K: the block's tail
  Eigen::MatrixXf logits;      // C x K
  // Column i is still computed: its token has been finite so far.
  std::vector<unsigned char> live;
  WeightProducts products;  // with buffers for capacity > 1
};

struct StreamState::Impl {
  explicit Impl(std::shared_ptr<const Model> m);

  void reset();
  void skip();
  StepStatus step(const float* features, float* scores);

  // q^, k^, v from a column of the q/k/v product (bias added).
  void take_projection(const Eigen::Ref<const Eigen::VectorXf>& qkv);
  void clear_token();
  // Single-output layer l's attention for the token in q, k, v, into out (E).
  void attend(int l, Eigen::Ref<Eigen::MatrixXf> out);
  // From layer l up, the token enters as padding (its layer-l q, k or v
  // overflowed); time advances.
  void pad_from(int l);
  // Two blocks: the first layer over the window with this token (embedding in
  // `embedded`, q, k, v set; padding when !finite), then the last layer's
  // attention for it in last_attention; time advances.
  void step_window(bool finite, const Eigen::Ref<const Eigen::VectorXf>& embedded);

  std::shared_ptr<const Model> model;
  const ModelConfig& c;
  const ModelWeights& w;
  const PackedWeights* packed;  // 16-bit copies, or nullptr
  float scale;
  std::int64_t time = 0;
  Eigen::VectorXf q, k, v;
  // Layer l's continual attention: every layer when stacked, else the first.
  std::vector<std::unique_ptr<ContinualAttention>> layers;
  Eigen::MatrixXf attention;  // E x 1, or E x n (retroactive)
  Eigen::VectorXf logits;     // of the last kOk step
  // Two blocks: the first layer's inputs and outputs for every window token.
  Eigen::MatrixXf inputs, window_z, window_hidden, window_y;
  std::vector<unsigned char> valid;
  WeightProducts window_products;  // float32 (an E x n product is compute-bound)
  Eigen::VectorXf last_attention;
  std::unique_ptr<WindowAttention> last;
  std::unique_ptr<ConvStem> stem;  // config.stem's scratch, or nullptr
  TokenColumns columns;            // step()'s batch of one
};

// Steps streams[i] (all of one model, distinct) with features[i] for
// i < count <= columns.capacity: writes scores[i] when statuses[i] is kOk,
// exactly as StreamState::step does for each. Allocates nothing.
void step_tokens(StreamState::Impl* const* streams, const float* const* features,
                 float* const* scores, StepStatus* statuses, int count,
                 TokenColumns& columns) noexcept;

}  // namespace nystream
