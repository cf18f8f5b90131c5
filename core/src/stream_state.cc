#include "nystream/stream_state.h"

#include <cmath>
#include <vector>

#include "nystream/ops.h"
#include "stream_state_impl.h"

namespace nystream {

namespace {

const Eigen::MatrixXf* fixed_pinv_of(const Model& model, int layer) {
  const ModelConfig& c = model.config();
  const bool fixed = c.attention == AttentionKind::kNystrom && c.schedule == LandmarkSchedule::kFixed;
  return fixed ? &model.fixed_pinv(layer) : nullptr;
}

// y = W x for every column of x: the 16-bit kernel when the model keeps W packed
// (x and y are blocks of column-major matrices, so their columns are strided).
void linear(const Matrix16* packed, const Eigen::MatrixXf& w, const MatrixProduct& product,
            const Eigen::Ref<const Eigen::MatrixXf>& x, Eigen::Ref<Eigen::MatrixXf> y) {
  if (packed)
    multiply(*packed, x.data(), x.outerStride(), static_cast<int>(x.cols()), y.data(),
             y.outerStride());
  else
    product.run(w, x, y);
}

// Post-norm tail of an encoder block on the columns of input/attention:
// z = LN(x + Wo a + bo), y = LN(z + W2 GELU(W1 z + b1) + b2). Outputs
// preallocated, none aliasing an input; p: the layer's 16-bit weights or nullptr.
void finish_block(const ModelConfig& c, const LayerWeights& w, const PackedWeights::Layer* p,
                  const WeightProducts& products, const Eigen::Ref<const Eigen::MatrixXf>& input,
                  const Eigen::Ref<const Eigen::MatrixXf>& attention, Eigen::Ref<Eigen::MatrixXf> z,
                  Eigen::Ref<Eigen::MatrixXf> hidden, Eigen::Ref<Eigen::MatrixXf> y) {
  if (c.output_projection) {
    linear(p ? &p->out : nullptr, w.out, products.out, attention, z);
    z += input;
    z.colwise() += w.out_bias;
  } else {
    z = input + attention;
  }
  layer_norm_columns(z, w.norm1_gamma, w.norm1_beta, c.layer_norm_eps);
  linear(p ? &p->ff1 : nullptr, w.ff1, products.ff1, z, hidden);
  hidden.colwise() += w.ff1_bias;
  gelu(hidden);
  linear(p ? &p->ff2 : nullptr, w.ff2, products.ff2, hidden, y);
  y += z;
  y.colwise() += w.ff2_bias;
  layer_norm_columns(y, w.norm2_gamma, w.norm2_beta, c.layer_norm_eps);
}

}  // namespace

TokenColumns::TokenColumns(const ModelConfig& c, int k)
    : capacity(k),
      normalized(c.input_dim, k),
      pooled(c.stem.enabled() ? c.stem.pooled_size() : 0, k),
      qkv(3 * c.embed_dim, k),
      attention(c.embed_dim, k),
      input(c.embed_dim, k),
      z(c.embed_dim, k),
      hidden(c.ff_dim, k),
      output(c.embed_dim, k),
      logits(c.classes, k),
      live(k),
      products(k > 1 ? WeightProducts(c, k) : WeightProducts()) {}

WeightProducts::WeightProducts(const ModelConfig& c, int k)
    : input(c.embed_dim, c.linear_input_dim(), k),
      stem(c.stem.enabled() ? MatrixProduct(c.embed_dim, c.stem.pooled_size(), k) : MatrixProduct()),
      qkv(3 * c.embed_dim, c.embed_dim, k),
      out(c.embed_dim, c.embed_dim, k),
      ff1(c.ff_dim, c.embed_dim, k),
      ff2(c.embed_dim, c.ff_dim, k),
      classifier(c.classes, c.embed_dim, k) {}

StreamState::Impl::Impl(std::shared_ptr<const Model> m)
    : model(std::move(m)),
      c(model->config()),
      w(model->weights()),
      packed(model->packed()),
      scale(1.0f / std::pow(static_cast<float>(c.head_dim()), 0.25f)),
      q(c.embed_dim),
      k(c.embed_dim),
      v(c.embed_dim),
      attention(c.embed_dim, c.retroactive() ? c.window : 1),
      logits(c.classes),
      stem(c.stem.enabled() ? new ConvStem(c.stem, w.stem) : nullptr),
      columns(c, 1) {
  // One single-output attention per layer (stacked), or the first layer's,
  // retroactive when a second block reads every window row.
  const int continual_layers = c.stacked() ? c.blocks : 1;
  for (int l = 0; l < continual_layers; ++l)
    layers.emplace_back(new ContinualAttention(*model, l, c.retroactive()));
  if (c.retroactive()) {
    inputs.resize(c.embed_dim, c.window);
    valid.resize(c.window);
    window_z.resize(c.embed_dim, c.window);
    window_hidden.resize(c.ff_dim, c.window);
    window_y.resize(c.embed_dim, c.window);
    last_attention.resize(c.embed_dim);
    window_products = WeightProducts(c, c.window);
    last.reset(new WindowAttention(c, w.layers[1], fixed_pinv_of(*model, 1)));
  }
  reset();
}

void StreamState::Impl::reset() {
  time = 0;
  for (auto& layer : layers) layer->reset();
  if (last) {
    last->reset();
    inputs.setZero();
    std::fill(valid.begin(), valid.end(), 0);
  }
  logits.setZero();
}

void StreamState::Impl::take_projection(const Eigen::Ref<const Eigen::VectorXf>& qkv) {
  q = qkv.head(c.embed_dim) * scale;
  k = qkv.segment(c.embed_dim, c.embed_dim) * scale;
  v = qkv.tail(c.embed_dim);
}

void StreamState::Impl::clear_token() {
  q.setZero();
  k.setZero();
  v.setZero();
}

void StreamState::Impl::attend(int l, Eigen::Ref<Eigen::MatrixXf> out) {
  layers[l]->step(time, q, k, v, out);
}

void StreamState::Impl::pad_from(int l) {
  clear_token();
  for (; l < static_cast<int>(layers.size()); ++l) layers[l]->step(time, q, k, v, attention, false);
  ++time;
}

void StreamState::Impl::skip() {
  clear_token();
  if (!last) return pad_from(0);
  const int slot = static_cast<int>(time % c.window);
  inputs.col(slot).setZero();
  valid[slot] = 0;
  // The last layer refreshes continual landmarks from every window token's
  // first-layer output: only then is the whole first block needed.
  const bool refresh = c.attention == AttentionKind::kNystrom &&
                       c.schedule == LandmarkSchedule::kContinual &&
                       (time + 1) % c.segment_length() == 0;
  layers[0]->step(time, q, k, v, attention, refresh);
  if (refresh) {
    finish_block(c, w.layers[0], nullptr, window_products, inputs, attention, window_z, window_hidden,
                 window_y);
    last->step(time, window_y, valid, last_attention);
  }
  ++time;
}

void StreamState::Impl::step_window(bool finite, const Eigen::Ref<const Eigen::VectorXf>& embedded) {
  const int slot = static_cast<int>(time % c.window);
  if (finite)
    inputs.col(slot) = embedded;
  else
    inputs.col(slot).setZero();
  valid[slot] = finite;
  layers[0]->step(time, q, k, v, attention);
  // Every window token's first-layer output changed: finish the block for all
  // (float32 weights: an E x n product is compute-bound, not weight-bound).
  finish_block(c, w.layers[0], nullptr, window_products, inputs, attention, window_z, window_hidden,
                 window_y);
  last->step(time, window_y, valid, last_attention);
  ++time;
}

StepStatus StreamState::Impl::step(const float* features, float* scores) {
  Impl* self = this;
  StepStatus status;
  step_tokens(&self, &features, &scores, &status, 1, columns);
  return status;
}

void step_tokens(StreamState::Impl* const* s, const float* const* features, float* const* scores,
                 StepStatus* statuses, int count, TokenColumns& t) noexcept {
  const ModelConfig& c = s[0]->c;
  const ModelWeights& w = s[0]->w;
  const PackedWeights* packed = s[0]->packed;
  const auto columns = [count](Eigen::MatrixXf& m) { return m.leftCols(count); };

  // Normalise; the stems' convolutions run per token, their projection below.
  for (int i = 0; i < count; ++i) {
    auto x = t.normalized.col(i);
    x = Eigen::Map<const Eigen::VectorXf>(features[i], c.input_dim);
    if (w.input_mean.size()) x = (x - w.input_mean).cwiseProduct(w.input_scale);
    t.live[i] = x.allFinite();
    if (!t.live[i]) x.setZero();  // keeps the shared products finite
    if (s[i]->stem) {
      if (t.live[i]) {
        s[i]->stem->pool(x.data() + c.stem.input_offset);
        t.pooled.col(i) = s[i]->stem->pooled();
      } else {
        t.pooled.col(i).setZero();
      }
    }
  }
  // Embedding and the first layer's q, k, v: one product each for all tokens.
  const WeightProducts& products = t.products;
  linear(packed ? &packed->input : nullptr, w.input, products.input,
         t.normalized.topLeftCorner(c.linear_input_dim(), count), columns(t.input));
  if (c.stem.enabled()) {
    products.stem.run(w.stem.proj, columns(t.pooled), columns(t.z));  // z: free until the blocks
    columns(t.input) += columns(t.z);
  }
  for (int i = 0; i < count; ++i)
    t.input.col(i) += w.input_bias + w.positions.col(s[i]->time % c.positional_period);
  linear(packed ? &packed->layers[0].qkv : nullptr, w.layers[0].qkv, products.qkv, columns(t.input),
         columns(t.qkv));
  columns(t.qkv).colwise() += w.layers[0].qkv_bias;
  for (int i = 0; i < count; ++i) {
    t.live[i] = t.live[i] && t.input.col(i).allFinite() && t.qkv.col(i).allFinite();
    if (t.live[i]) {
      s[i]->take_projection(t.qkv.col(i));
    } else {
      s[i]->clear_token();
      t.input.col(i).setZero();
    }
  }

  if (!c.retroactive()) {
    // Single-output layers, each over the last n outputs of the one below. A
    // token whose features or projections are not finite enters as padding.
    for (int i = 0; i < count; ++i)
      if (!t.live[i]) {
        s[i]->skip();
        statuses[i] = StepStatus::kNonFiniteInput;
        t.attention.col(i).setZero();
      }
    const int layer_count = static_cast<int>(s[0]->layers.size());
    for (int l = 0; l < layer_count; ++l) {
      if (l > 0) {
        columns(t.input) = columns(t.output);
        linear(packed ? &packed->layers[l].qkv : nullptr, w.layers[l].qkv, products.qkv,
               columns(t.input), columns(t.qkv));
        columns(t.qkv).colwise() += w.layers[l].qkv_bias;
      }
      for (int i = 0; i < count; ++i) {
        if (!t.live[i]) continue;
        if (l > 0 && !t.qkv.col(i).allFinite()) {
          // Overflowed inside the model: padding from this layer up.
          s[i]->pad_from(l);
          statuses[i] = StepStatus::kNonFiniteOutput;
          t.live[i] = 0;
          t.input.col(i).setZero();
          t.attention.col(i).setZero();
          continue;
        }
        if (l > 0) s[i]->take_projection(t.qkv.col(i));
        s[i]->attend(l, t.attention.col(i));
      }
      finish_block(c, w.layers[l], packed ? &packed->layers[l] : nullptr, products, columns(t.input),
                   columns(t.attention), columns(t.z), columns(t.hidden), columns(t.output));
    }
    for (int i = 0; i < count; ++i)
      if (t.live[i]) ++s[i]->time;
  } else {
    // Two blocks: the first over each stream's window, then the last layer's
    // tail for the newest tokens together.
    for (int i = 0; i < count; ++i) {
      StreamState::Impl& stream = *s[i];
      const int slot = static_cast<int>(stream.time % c.window);
      stream.step_window(t.live[i], t.input.col(i));
      if (t.live[i]) {
        t.input.col(i) = stream.window_y.col(slot);
        t.attention.col(i) = stream.last_attention;
      } else {
        statuses[i] = StepStatus::kNonFiniteInput;
        t.input.col(i).setZero();
        t.attention.col(i).setZero();
      }
    }
    finish_block(c, w.layers[1], packed ? &packed->layers[1] : nullptr, products, columns(t.input),
                 columns(t.attention), columns(t.z), columns(t.hidden), columns(t.output));
  }

  // Final norm and classifier for all tokens; z holds the normalised rows.
  columns(t.z) = columns(t.output);
  auto rows = columns(t.z);
  layer_norm_columns(rows, w.final_gamma, w.final_beta, c.layer_norm_eps);
  linear(packed ? &packed->classifier : nullptr, w.classifier, products.classifier, columns(t.z),
         columns(t.logits));
  columns(t.logits).colwise() += w.classifier_bias;
  for (int i = 0; i < count; ++i) {
    if (!t.live[i]) continue;
    if (!t.logits.col(i).allFinite()) {
      statuses[i] = StepStatus::kNonFiniteOutput;
      continue;
    }
    s[i]->logits = t.logits.col(i);
    activate(c.activation, s[i]->logits, scores[i]);
    statuses[i] = StepStatus::kOk;
  }
}

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
