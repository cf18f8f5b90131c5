#include "nystream/stream_state.h"

#include <cmath>
#include <vector>

#include "continual_attention.h"
#include "nystream/conv_stem.h"
#include "nystream/ops.h"
#include "window_attention.h"

namespace nystream {

namespace {

const Eigen::MatrixXf* fixed_pinv_of(const Model& model, int layer) {
  const ModelConfig& c = model.config();
  const bool fixed = c.attention == AttentionKind::kNystrom && c.schedule == LandmarkSchedule::kFixed;
  return fixed ? &model.fixed_pinv(layer) : nullptr;
}

// Post-norm tail of an encoder block on the columns of residual/attention:
// z = LN(x + Wo a + bo), y = LN(z + W2 GELU(W1 z + b1) + b2). All outputs preallocated.
template <typename Residual, typename Attention>
void finish_block(const ModelConfig& c, const LayerWeights& w, const Residual& residual,
                  const Attention& attention, Eigen::MatrixXf& z, Eigen::MatrixXf& hidden,
                  Eigen::MatrixXf& y) {
  z = residual;
  if (c.output_projection) {
    z.noalias() += w.out * attention;
    z.colwise() += w.out_bias;
  } else {
    z += attention;
  }
  layer_norm_columns(z, w.norm1_gamma, w.norm1_beta, c.layer_norm_eps);
  hidden.noalias() = w.ff1 * z;
  hidden.colwise() += w.ff1_bias;
  gelu(hidden);
  y = z;
  y.noalias() += w.ff2 * hidden;
  y.colwise() += w.ff2_bias;
  layer_norm_columns(y, w.norm2_gamma, w.norm2_beta, c.layer_norm_eps);
}

// The same for one column with 16-bit weights: each product goes to its
// output first, the residual is added after (y may alias residual).
void finish_block(const ModelConfig& c, const LayerWeights& w, const PackedWeights::Layer& p,
                  const Eigen::MatrixXf& residual, const Eigen::MatrixXf& attention,
                  Eigen::MatrixXf& z, Eigen::MatrixXf& hidden, Eigen::MatrixXf& y) {
  if (c.output_projection) {
    multiply(p.out, attention.data(), z.data());
    z += residual + w.out_bias;
  } else {
    z = residual + attention;
  }
  layer_norm_columns(z, w.norm1_gamma, w.norm1_beta, c.layer_norm_eps);
  multiply(p.ff1, z.data(), hidden.data());
  hidden += w.ff1_bias;
  gelu(hidden);
  multiply(p.ff2, hidden.data(), y.data());
  y += z + w.ff2_bias;
  layer_norm_columns(y, w.norm2_gamma, w.norm2_beta, c.layer_norm_eps);
}

}  // namespace

struct StreamState::Impl {
  explicit Impl(std::shared_ptr<const Model> m)
      : model(std::move(m)),
        c(model->config()),
        w(model->weights()),
        packed(model->packed()),
        scale(1.0f / std::pow(static_cast<float>(c.head_dim()), 0.25f)),
        normalized(c.input_dim),
        embedded(c.embed_dim),
        qkv(3 * c.embed_dim),
        q(c.embed_dim),
        k(c.embed_dim),
        v(c.embed_dim),
        attention(c.embed_dim, c.retroactive() ? c.window : 1),
        z(c.embed_dim, 1),
        hidden(c.ff_dim, 1),
        y(c.embed_dim, 1),
        final_row(c.embed_dim, 1),
        logits(c.classes),
        stem(c.stem.enabled() ? new ConvStem(c.stem, w.stem) : nullptr) {
    // One single-output attention per layer (stacked), or the first layer's,
    // retroactive when a second block reads every window row.
    const int continual_layers = c.stacked() ? c.blocks : 1;
    for (int l = 0; l < continual_layers; ++l)
      layers.emplace_back(new ContinualAttention(c, w.layers[l].landmark_queries,
                                                 w.layers[l].landmark_keys,
                                                 fixed_pinv_of(*model, l), c.retroactive()));
    if (c.retroactive()) {
      inputs.resize(c.embed_dim, c.window);
      valid.resize(c.window);
      window_z.resize(c.embed_dim, c.window);
      window_hidden.resize(c.ff_dim, c.window);
      window_y.resize(c.embed_dim, c.window);
      last_attention.resize(c.embed_dim);
      last.reset(new WindowAttention(c, w.layers[1], fixed_pinv_of(*model, 1)));
    }
    reset();
  }

  void reset() {
    time = 0;
    for (auto& layer : layers) layer->reset();
    if (last) {
      last->reset();
      inputs.setZero();
      std::fill(valid.begin(), valid.end(), 0);
    }
    logits.setZero();
  }

  // Embeds the features and projects the first layer's q^, k^, v; false (and
  // zeros, i.e. a padding token) when anything is non-finite.
  bool project(const float* features) {
    normalized = Eigen::Map<const Eigen::VectorXf>(features, c.input_dim);
    if (w.input_mean.size()) normalized = (normalized - w.input_mean).cwiseProduct(w.input_scale);
    if (normalized.allFinite()) {
      if (packed)
        multiply(packed->input, normalized.data(), embedded.data());
      else
        embedded.noalias() = w.input * normalized.head(c.linear_input_dim());
      embedded += w.input_bias + w.positions.col(time % c.positional_period);
      if (stem) stem->add_to(normalized.data() + c.stem.input_offset, embedded);
      if (embedded.allFinite() && project_layer(0, embedded)) return true;
    }
    clear_token();
    return false;
  }

  // q^, k^, v of layer l for its input x; false when they are not finite.
  bool project_layer(int l, const Eigen::Ref<const Eigen::VectorXf>& x) {
    if (packed)
      multiply(packed->layers[l].qkv, x.data(), qkv.data());
    else
      qkv.noalias() = w.layers[l].qkv * x;
    qkv += w.layers[l].qkv_bias;
    if (!qkv.allFinite()) return false;
    q = qkv.head(c.embed_dim) * scale;
    k = qkv.segment(c.embed_dim, c.embed_dim) * scale;
    v = qkv.tail(c.embed_dim);
    return true;
  }

  void clear_token() {
    embedded.setZero();
    q.setZero();
    k.setZero();
    v.setZero();
  }

  void skip() {
    clear_token();
    if (!last) {
      // Padding enters every layer's window.
      for (auto& layer : layers) layer->step(time, q, k, v, attention, false);
      ++time;
      return;
    }
    const int slot = static_cast<int>(time % c.window);
    inputs.col(slot) = embedded;
    valid[slot] = 0;
    // The last layer refreshes continual landmarks from every window token's
    // first-layer output: only then is the whole first block needed.
    const bool refresh = c.attention == AttentionKind::kNystrom &&
                         c.schedule == LandmarkSchedule::kContinual &&
                         (time + 1) % c.segment_length() == 0;
    layers[0]->step(time, q, k, v, attention, refresh);
    if (refresh) {
      finish_block(c, w.layers[0], inputs, attention, window_z, window_hidden, window_y);
      last->step(time, window_y, valid, last_attention);
    }
    ++time;
  }

  // Single-output layers, each over the last n outputs of the one below. A layer
  // whose q, k, v overflow enters padding from there up.
  StepStatus step_layers(bool finite) {
    if (!finite) {
      skip();
      return StepStatus::kNonFiniteInput;
    }
    y.col(0) = embedded;
    for (int l = 0; l < static_cast<int>(layers.size()); ++l) {
      if (l > 0 && !project_layer(l, y.col(0))) {
        clear_token();
        for (; l < static_cast<int>(layers.size()); ++l)
          layers[l]->step(time, q, k, v, attention, false);
        ++time;
        return StepStatus::kNonFiniteOutput;
      }
      layers[l]->step(time, q, k, v, attention);
      if (packed)
        finish_block(c, w.layers[l], packed->layers[l], y, attention, z, hidden, y);
      else
        finish_block(c, w.layers[l], y, attention, z, hidden, y);
    }
    ++time;
    return StepStatus::kOk;
  }

  StepStatus step(const float* features, float* scores) {
    const bool finite = project(features);
    if (!last) {
      const StepStatus status = step_layers(finite);
      if (status != StepStatus::kOk) return status;
    } else {
      const int slot = static_cast<int>(time % c.window);
      inputs.col(slot) = embedded;
      valid[slot] = finite;
      layers[0]->step(time, q, k, v, attention);
      // Every window token's first-layer output changed: finish the block for all.
      finish_block(c, w.layers[0], inputs, attention, window_z, window_hidden, window_y);
      last->step(time, window_y, valid, last_attention);
      ++time;
      if (!finite) return StepStatus::kNonFiniteInput;
      finish_block(c, w.layers[1], window_y.col(slot), last_attention, z, hidden, y);
    }
    final_row = y;
    layer_norm_columns(final_row, w.final_gamma, w.final_beta, c.layer_norm_eps);
    if (packed)
      multiply(packed->classifier, final_row.data(), logits.data());
    else
      logits.noalias() = w.classifier * final_row.col(0);
    logits += w.classifier_bias;
    if (!logits.allFinite()) return StepStatus::kNonFiniteOutput;
    activate(c.activation, logits, scores);
    return StepStatus::kOk;
  }

  std::shared_ptr<const Model> model;
  const ModelConfig& c;
  const ModelWeights& w;
  const PackedWeights* packed;  // 16-bit copies, or nullptr
  float scale;
  std::int64_t time = 0;
  Eigen::VectorXf normalized, embedded, qkv, q, k, v;
  // Layer l's continual attention: every layer when stacked, else the first.
  std::vector<std::unique_ptr<ContinualAttention>> layers;
  Eigen::MatrixXf attention;  // E x 1, or E x n (retroactive)
  Eigen::MatrixXf z, hidden, y, final_row;
  Eigen::VectorXf logits;
  // Two blocks: the first layer's inputs and outputs for every window token.
  Eigen::MatrixXf inputs, window_z, window_hidden, window_y;
  std::vector<unsigned char> valid;
  Eigen::VectorXf last_attention;
  std::unique_ptr<WindowAttention> last;
  std::unique_ptr<ConvStem> stem;  // config.stem's scratch, or nullptr
};

StreamState::StreamState(std::shared_ptr<const Model> model) : impl_(new Impl(std::move(model))) {}
StreamState::~StreamState() = default;
StreamState::StreamState(StreamState&&) noexcept = default;
StreamState& StreamState::operator=(StreamState&&) noexcept = default;

StepStatus StreamState::step(const float* features, float* scores) noexcept {
  return impl_->step(features, scores);
}
void StreamState::skip() noexcept { impl_->skip(); }
void StreamState::reset() noexcept { impl_->reset(); }
const Model& StreamState::model() const { return *impl_->model; }
std::int64_t StreamState::time() const noexcept { return impl_->time; }
Eigen::Ref<const Eigen::VectorXf> StreamState::logits() const noexcept { return impl_->logits; }

namespace {
const Eigen::MatrixXf kNoLandmarks;
}  // namespace

Eigen::Ref<const Eigen::MatrixXf> StreamState::landmark_queries(int layer) const noexcept {
  const auto& layers = impl_->layers;
  if (layer >= 0 && layer < static_cast<int>(layers.size())) return layers[layer]->landmark_queries();
  return layer == 1 && impl_->last ? impl_->last->landmark_queries() : kNoLandmarks;
}
Eigen::Ref<const Eigen::MatrixXf> StreamState::landmark_keys(int layer) const noexcept {
  const auto& layers = impl_->layers;
  if (layer >= 0 && layer < static_cast<int>(layers.size())) return layers[layer]->landmark_keys();
  return layer == 1 && impl_->last ? impl_->last->landmark_keys() : kNoLandmarks;
}
std::int64_t StreamState::rows_rebuilt() const noexcept {
  return impl_->layers[0]->rows_rebuilt();
}

}  // namespace nystream
