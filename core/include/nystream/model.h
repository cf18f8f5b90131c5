// The immutable half of the engine: configuration and weights, shared read-only by
// any number of streams and threads (each stream owns a StreamState).
//
// Layout: Eigen column-major float32; a linear layer y = W x + b stores W as
// out x in. Projected queries/keys are used scaled, q^ = q / d^(1/4), and fixed
// landmarks are stored in that scaled space.
#pragma once

#include <Eigen/Core>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "nystream/config.h"
#include "nystream/weights16.h"

namespace nystream {

struct LayerWeights {
  Eigen::MatrixXf qkv;       // 3E x E: rows [0,E) query, [E,2E) key, [2E,3E) value
  Eigen::VectorXf qkv_bias;  // 3E
  Eigen::MatrixXf out;       // E x E (empty when config.output_projection is false)
  Eigen::VectorXf out_bias;  // E
  Eigen::VectorXf norm1_gamma, norm1_beta;  // E: after attention + residual
  Eigen::MatrixXf ff1;       // F x E
  Eigen::VectorXf ff1_bias;  // F
  Eigen::MatrixXf ff2;       // E x F
  Eigen::VectorXf ff2_bias;  // E
  Eigen::VectorXf norm2_gamma, norm2_beta;  // E: after feed-forward + residual
  // Fixed landmark schedule only: E x m, column j = landmark j of every head.
  Eigen::MatrixXf landmark_queries, landmark_keys;
};

// A stem's weights (config.h StemConfig), float32 whatever config.weight_type.
struct StemWeights {
  struct Conv {
    // (c_in kh kw) x c_out: column o is filter o, row (i kh + y) kw + x its weight
    // at input channel i, kernel row y, column x (the file's [c_out, c_in, kh, kw]
    // memory read column-major).
    Eigen::MatrixXf weight;
    Eigen::VectorXf bias;  // c_out
  };
  std::vector<Conv> convs;  // one per StemConfig layer
  Eigen::MatrixXf proj;     // E x pooled_size()
};

struct ModelWeights {
  // Input normalisation, x <- (x - input_mean) * input_scale (scale = 1 / std);
  // both empty for none.
  Eigen::VectorXf input_mean, input_scale;  // D_in
  Eigen::MatrixXf input;       // E x config.linear_input_dim()
  Eigen::VectorXf input_bias;  // E
  Eigen::MatrixXf positions;   // E x P, recycled: token t adds column t mod P
  std::vector<LayerWeights> layers;
  Eigen::VectorXf final_gamma, final_beta;  // E
  Eigen::MatrixXf classifier;       // C x E
  Eigen::VectorXf classifier_bias;  // C
  StemWeights stem;                 // empty without config.stem
};

// 16-bit copies of the matrices a step multiplies by (config.weight_type F16 or
// BF16), row by row; the float32 ModelWeights hold the same rounded values.
struct PackedWeights {
  struct Layer {
    Matrix16 qkv, out, ff1, ff2;
  };
  Matrix16 input, classifier;
  std::vector<Layer> layers;
};

// Random weights of the right shapes (Xavier-uniform matrices, small biases,
// LayerNorm gains near 1), deterministic in seed. For tests and benchmarks.
ModelWeights random_weights(const ModelConfig& config, std::uint64_t seed);

// Empty when every tensor has the shape config implies and is finite; otherwise
// what is wrong, naming the tensor and the expected shape.
std::string check_weights(const ModelConfig& config, const ModelWeights& weights);

// What a model is for and where it came from: everything in a model file besides
// the architecture and the weights (docs/model-format.md).
struct ModelInfo {
  std::string name = "unnamed";
  std::string modality = "features";   // "audio", "video" or "features"
  std::vector<std::string> classes;    // empty: "class0", "class1", ... are used
  std::string feature_extractor = "identity";
  int feature_version = 1;
  std::string feature_params = "{}";  // JSON object text, interpreted by the extractor
  std::string provenance = "{}";      // JSON object text
};

class Model {
 public:
  // Validates config and weights; returns nullptr and sets *error when either is
  // unusable. For fixed landmarks, computes each layer's pinv(A) here, once.
  static std::shared_ptr<const Model> create(ModelConfig config, ModelWeights weights,
                                             std::string* error);
  static std::shared_ptr<const Model> create(ModelConfig config, ModelWeights weights,
                                             ModelInfo info, std::string* error);

  const ModelConfig& config() const { return config_; }
  const ModelInfo& info() const { return info_; }
  const ModelWeights& weights() const { return weights_; }
  // Fixed landmarks: pinv(softmax(Qt Kt^T)) of layer l, m x (m * h), head j in
  // columns [j m, (j+1) m). Empty for continual landmarks.
  const Eigen::MatrixXf& fixed_pinv(int layer) const { return fixed_pinv_[layer]; }
  // Fixed landmarks: layer l's landmark queries and keys with one row per
  // landmark (m x E), the layout the step reads; one copy for every stream.
  // Empty for continual landmarks.
  const Eigen::MatrixXf& fixed_query_rows(int layer) const { return fixed_query_rows_[layer]; }
  const Eigen::MatrixXf& fixed_key_rows(int layer) const { return fixed_key_rows_[layer]; }
  // The 16-bit matrices the step reads; nullptr for float32 weights.
  const PackedWeights* packed() const { return packed_.get(); }

 private:
  Model(ModelConfig config, ModelWeights weights, ModelInfo info);
  ModelConfig config_;
  ModelWeights weights_;
  ModelInfo info_;
  std::vector<Eigen::MatrixXf> fixed_pinv_, fixed_query_rows_, fixed_key_rows_;
  std::unique_ptr<const PackedWeights> packed_;
};

}  // namespace nystream
