// The convolutional stem of a model (config.h StemConfig, docs/model-format.md):
// a small CNN over part of each token, pooled and projected into the token's
// embedding. The weights are the Model's (shared, read-only); a ConvStem holds
// one stream's scratch, sized at construction, so run() allocates nothing.
//
//   ConvStem stem(config.stem, weights.stem);     // per stream (StreamState owns one)
//   stem.add_to(normalized + config.stem.input_offset, embedded);  // every token
//
// Each convolution is an im2col copy (output positions x (c_in kh kw), zero
// outside the input) times the filter matrix, one Eigen product; activations are
// positions x channels, column-major, so column c is channel c's row-major map:
// exactly the token's channel-major, row-major C x H x W layout. float32 always
// (a 16-bit model keeps its stem float32: it is small).
#pragma once

#include <Eigen/Core>
#include <vector>

#include "nystream/config.h"
#include "nystream/model.h"

namespace nystream {

class ConvStem {
 public:
  // config must be enabled and valid, weights checked (Model::create does both);
  // both must outlive the ConvStem.
  ConvStem(const StemConfig& config, const StemWeights& weights);

  // Runs the stem on input (config.input_size() floats, channel-major) and adds
  // stem.proj times the pooled values to out (E floats). No allocation.
  void add_to(const float* input, Eigen::Ref<Eigen::VectorXf> out) noexcept;

  // The convolutions and pooling alone, into pooled(): a StreamBatch applies
  // stem.proj to the pooled values of all its streams in one product.
  void pool(const float* input) noexcept;

  // The pooled values of the last add_to() or pool(): c_L (g + 2), channel c's at
  // [c (g + 2), (c + 1)(g + 2)): g strip maxima, global maximum, global mean.
  const Eigen::VectorXf& pooled() const { return pooled_; }

 private:
  // im2col of layer l's input (rows: output positions; columns: (i, y, x) of
  // the kernel, i the input channel) into columns_.
  void gather(int l, const float* input) noexcept;

  const StemConfig& c_;
  const StemWeights& w_;
  std::vector<int> heights_, widths_;         // layer l's output size at l + 1 (0: input)
  Eigen::MatrixXf columns_;                   // the largest layer's im2col
  std::vector<Eigen::MatrixXf> activations_;  // layer l's output: positions x c_out
  Eigen::VectorXf pooled_;
};

}  // namespace nystream
