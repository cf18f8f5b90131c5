#include "nystream/model.h"

#include <cmath>
#include <random>
#include <sstream>

#include "landmark_kernel.h"

namespace nystream {

namespace {

class Filler {
 public:
  explicit Filler(std::uint64_t seed) : engine_(seed) {}

  // Xavier-uniform: keeps activations O(1) whatever the layer widths.
  Eigen::MatrixXf xavier(int rows, int cols) {
    const float bound = std::sqrt(6.0f / static_cast<float>(rows + cols));
    return uniform(rows, cols, bound);
  }
  Eigen::MatrixXf uniform(int rows, int cols, float bound) {
    std::uniform_real_distribution<float> dist(-bound, bound);
    Eigen::MatrixXf out(rows, cols);
    for (Eigen::Index i = 0; i < out.size(); ++i) out.data()[i] = dist(engine_);
    return out;
  }
  Eigen::VectorXf around(int size, float centre, float spread) {
    return (Eigen::VectorXf(uniform(size, 1, spread)).array() + centre).matrix();
  }

 private:
  std::mt19937_64 engine_;
};

std::string shape_error(const std::string& name, Eigen::Index rows, Eigen::Index cols,
                        Eigen::Index want_rows, Eigen::Index want_cols) {
  std::ostringstream out;
  out << "tensor " << name << " has shape " << rows << " x " << cols << ", expected "
      << want_rows << " x " << want_cols;
  return out.str();
}

template <typename M>
std::string check(const std::string& name, const M& tensor, Eigen::Index rows, Eigen::Index cols) {
  if (tensor.rows() != rows || tensor.cols() != cols)
    return shape_error(name, tensor.rows(), tensor.cols(), rows, cols);
  if (!tensor.allFinite()) return "tensor " + name + " holds NaN or Inf";
  return {};
}

}  // namespace

ModelWeights random_weights(const ModelConfig& c, std::uint64_t seed) {
  Filler fill(seed);
  const int e = c.embed_dim;
  ModelWeights w;
  w.input_mean = fill.around(c.input_dim, 0.0f, 0.5f);
  w.input_scale = fill.around(c.input_dim, 1.25f, 0.75f);
  w.input = fill.xavier(e, c.linear_input_dim());
  w.input_bias = fill.around(e, 0.0f, 0.1f);
  w.positions = fill.uniform(e, c.positional_period, 0.5f);
  for (int l = 0; l < c.blocks; ++l) {
    LayerWeights layer;
    // Three E x E blocks, each Xavier for its own shape.
    layer.qkv.resize(3 * e, e);
    for (int b = 0; b < 3; ++b) layer.qkv.middleRows(b * e, e) = fill.xavier(e, e);
    layer.qkv_bias = fill.around(3 * e, 0.0f, 0.1f);
    if (c.output_projection) {
      layer.out = fill.xavier(e, e);
      layer.out_bias = fill.around(e, 0.0f, 0.1f);
    }
    layer.norm1_gamma = fill.around(e, 1.0f, 0.2f);
    layer.norm1_beta = fill.around(e, 0.0f, 0.1f);
    layer.ff1 = fill.xavier(c.ff_dim, e);
    layer.ff1_bias = fill.around(c.ff_dim, 0.0f, 0.1f);
    layer.ff2 = fill.xavier(e, c.ff_dim);
    layer.ff2_bias = fill.around(e, 0.0f, 0.1f);
    layer.norm2_gamma = fill.around(e, 1.0f, 0.2f);
    layer.norm2_beta = fill.around(e, 0.0f, 0.1f);
    if (c.attention == AttentionKind::kNystrom && c.schedule == LandmarkSchedule::kFixed) {
      // Scaled-space landmarks of the magnitude projected tokens have.
      layer.landmark_queries = fill.uniform(e, c.landmarks, 1.0f);
      layer.landmark_keys = fill.uniform(e, c.landmarks, 1.0f);
    }
    w.layers.push_back(std::move(layer));
  }
  w.final_gamma = fill.around(e, 1.0f, 0.2f);
  w.final_beta = fill.around(e, 0.0f, 0.1f);
  w.classifier = fill.xavier(c.classes, e);
  w.classifier_bias = fill.around(c.classes, 0.0f, 0.1f);
  if (c.stem.enabled()) {
    // He-uniform filters (ReLU follows), a Xavier projection.
    for (int l = 0; l < static_cast<int>(c.stem.layers.size()); ++l) {
      const StemLayer& s = c.stem.layers[l];
      const int fan_in = c.stem.channels(l - 1) * s.kernel_height * s.kernel_width;
      StemWeights::Conv conv;
      conv.weight = fill.uniform(fan_in, s.channels, std::sqrt(6.0f / static_cast<float>(fan_in)));
      conv.bias = fill.around(s.channels, 0.0f, 0.1f);
      w.stem.convs.push_back(std::move(conv));
    }
    w.stem.proj = fill.xavier(e, c.stem.pooled_size());
  }
  return w;
}

std::string check_weights(const ModelConfig& c, const ModelWeights& w) {
  const int e = c.embed_dim;
  std::string error;
  auto first = [&error](std::string found) {
    if (error.empty()) error = std::move(found);
  };
  if (w.input_mean.size() || w.input_scale.size()) {
    first(check("input_mean", w.input_mean, c.input_dim, 1));
    first(check("input_scale", w.input_scale, c.input_dim, 1));
  }
  first(check("input", w.input, e, c.linear_input_dim()));
  first(check("input_bias", w.input_bias, e, 1));
  first(check("positions", w.positions, e, c.positional_period));
  if (static_cast<int>(w.layers.size()) != c.blocks)
    first("model has " + std::to_string(w.layers.size()) + " layers, expected blocks = " +
          std::to_string(c.blocks));
  for (std::size_t l = 0; l < w.layers.size() && error.empty(); ++l) {
    const LayerWeights& layer = w.layers[l];
    const std::string at = "layers." + std::to_string(l) + ".";
    first(check(at + "qkv", layer.qkv, 3 * e, e));
    first(check(at + "qkv_bias", layer.qkv_bias, 3 * e, 1));
    if (c.output_projection) {
      first(check(at + "out", layer.out, e, e));
      first(check(at + "out_bias", layer.out_bias, e, 1));
    }
    first(check(at + "norm1_gamma", layer.norm1_gamma, e, 1));
    first(check(at + "norm1_beta", layer.norm1_beta, e, 1));
    first(check(at + "ff1", layer.ff1, c.ff_dim, e));
    first(check(at + "ff1_bias", layer.ff1_bias, c.ff_dim, 1));
    first(check(at + "ff2", layer.ff2, e, c.ff_dim));
    first(check(at + "ff2_bias", layer.ff2_bias, e, 1));
    first(check(at + "norm2_gamma", layer.norm2_gamma, e, 1));
    first(check(at + "norm2_beta", layer.norm2_beta, e, 1));
    if (c.attention == AttentionKind::kNystrom && c.schedule == LandmarkSchedule::kFixed) {
      first(check(at + "landmark_queries", layer.landmark_queries, e, c.landmarks));
      first(check(at + "landmark_keys", layer.landmark_keys, e, c.landmarks));
    }
  }
  first(check("final_gamma", w.final_gamma, e, 1));
  first(check("final_beta", w.final_beta, e, 1));
  first(check("classifier", w.classifier, c.classes, e));
  first(check("classifier_bias", w.classifier_bias, c.classes, 1));
  const int convs = c.stem.enabled() ? static_cast<int>(c.stem.layers.size()) : 0;
  if (static_cast<int>(w.stem.convs.size()) != convs)
    first("model has " + std::to_string(w.stem.convs.size()) + " stem convolutions, expected " +
          std::to_string(convs) + " (architecture.stem.layers)");
  for (int l = 0; l < convs && error.empty(); ++l) {
    const StemLayer& s = c.stem.layers[l];
    const std::string at = "stem.conv." + std::to_string(l) + ".";
    first(check(at + "weight", w.stem.convs[l].weight,
                c.stem.channels(l - 1) * s.kernel_height * s.kernel_width, s.channels));
    first(check(at + "bias", w.stem.convs[l].bias, s.channels, 1));
  }
  if (convs)
    first(check("stem.proj", w.stem.proj, e, c.stem.pooled_size()));
  else if (w.stem.proj.size())
    first("tensor stem.proj given without architecture.stem");
  return error;
}

Model::Model(ModelConfig config, ModelWeights weights, ModelInfo info)
    : config_(std::move(config)), weights_(std::move(weights)), info_(std::move(info)) {}

std::shared_ptr<const Model> Model::create(ModelConfig config, ModelWeights weights,
                                           std::string* error) {
  return create(std::move(config), std::move(weights), ModelInfo{}, error);
}

namespace {

// Rounds every matrix a step multiplies by to the 16-bit type (so the float32
// weights, and the batch model, hold exactly what the step reads) and packs it.
std::unique_ptr<const PackedWeights> pack(const ModelConfig& c, ModelWeights& w) {
  const WeightType type = c.weight_type;
  auto packed = std::make_unique<PackedWeights>();
  auto take = [type](Eigen::MatrixXf& m) {
    m = m.unaryExpr([type](float v) { return round_to(type, v); });
    return Matrix16(m, type);
  };
  packed->input = take(w.input);
  packed->classifier = take(w.classifier);
  for (LayerWeights& layer : w.layers) {
    PackedWeights::Layer p;
    p.qkv = take(layer.qkv);
    if (c.output_projection) p.out = take(layer.out);
    p.ff1 = take(layer.ff1);
    p.ff2 = take(layer.ff2);
    packed->layers.push_back(std::move(p));
  }
  return packed;
}

}  // namespace

std::shared_ptr<const Model> Model::create(ModelConfig config, ModelWeights weights,
                                           ModelInfo info, std::string* error) {
  std::string problem = config.validate();
  if (problem.empty()) problem = check_weights(config, weights);
  std::unique_ptr<const PackedWeights> packed;
  if (problem.empty() && config.weight_type != WeightType::kF32) {
    packed = pack(config, weights);
    // F16 cannot hold |w| > 65504: such a weight rounds to Inf.
    if (const std::string overflow = check_weights(config, weights); !overflow.empty())
      problem = overflow + " once rounded to " + to_string(config.weight_type);
  }
  if (problem.empty() && !info.classes.empty() &&
      static_cast<int>(info.classes.size()) != config.classes)
    problem = std::to_string(info.classes.size()) + " class names for " +
              std::to_string(config.classes) + " classes";
  if (!problem.empty()) {
    if (error) *error = problem;
    return nullptr;
  }
  if (info.classes.empty())
    for (int i = 0; i < config.classes; ++i) info.classes.push_back("class" + std::to_string(i));
  std::shared_ptr<Model> model(new Model(std::move(config), std::move(weights), std::move(info)));
  model->packed_ = std::move(packed);
  const ModelConfig& c = model->config_;
  model->fixed_pinv_.resize(c.blocks);
  model->fixed_query_rows_.resize(c.blocks);
  model->fixed_key_rows_.resize(c.blocks);
  if (c.attention == AttentionKind::kNystrom && c.schedule == LandmarkSchedule::kFixed) {
    LandmarkKernel kernel(c.landmarks, c.heads, c.head_dim());
    for (int l = 0; l < c.blocks; ++l) {
      const LayerWeights& layer = model->weights_.layers[l];
      model->fixed_pinv_[l].resize(c.landmarks, c.landmarks * c.heads);
      kernel.compute(layer.landmark_queries, layer.landmark_keys, c.pinv, c.pinv_iterations,
                     model->fixed_pinv_[l]);
      model->fixed_query_rows_[l] = layer.landmark_queries.transpose();
      model->fixed_key_rows_[l] = layer.landmark_keys.transpose();
    }
  }
  return model;
}

}  // namespace nystream
