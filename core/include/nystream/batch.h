// The batch model: the same weights run on a whole window at once, as a plain
// (non-continual) transformer would on every step. It is the reference the
// continual StreamState must equal (instantiated in double in the tests) and the
// re-encoding baseline of the benchmarks (in float, on Eigen matrix products).
//
// A window is n token columns, oldest first. valid[j] == false marks a padding
// token: its q, k and v are zero in every layer (algorithm.md 3.2), which is also
// how a non-finite input token is dropped without losing the stream's timing.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "nystream/conv_stem.h"
#include "nystream/model.h"
#include "nystream/ops.h"
#include "nystream/pinv.h"

namespace nystream {

template <typename S>
using MatrixT = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic>;
template <typename S>
using VectorT = Eigen::Matrix<S, Eigen::Dynamic, 1>;

// Landmarks of one layer in scaled (q^, k^) space: E x m, column j = landmark j.
template <typename S>
struct Landmarks {
  MatrixT<S> queries, keys;
};

// Segment means of the columns of x (E x n) over m equal segments (n % m == 0).
template <typename S, typename Derived>
MatrixT<S> segment_means(const Eigen::MatrixBase<Derived>& x, int m) {
  const Eigen::Index length = x.cols() / m;
  MatrixT<S> means(x.rows(), m);
  for (int j = 0; j < m; ++j)
    means.col(j) = x.middleCols(j * length, length).rowwise().sum() / S(length);
  return means;
}

// Softmax attention of one head: q (d x nq), k and v (d x n), scaled inputs.
template <typename S>
MatrixT<S> softmax_attention_head(const MatrixT<S>& q, const MatrixT<S>& k,
                                  const MatrixT<S>& v) {
  MatrixT<S> p = k.transpose() * q;  // n x nq
  softmax_columns(p);
  return v * p;
}

// pinv(softmax(Qt Kt^T)) of one head's landmarks (m x m).
template <typename S>
MatrixT<S> landmark_pinv(const MatrixT<S>& qt, const MatrixT<S>& kt, PinvMode mode,
                         int iterations) {
  const Eigen::Index m = qt.cols();
  MatrixT<S> a = qt.transpose() * kt;  // m x m
  softmax_rows(a);
  MatrixT<S> z(m, m);
  PinvSolver<S> solver(static_cast<int>(m));
  solver.compute(a, mode, iterations, z);
  return z;
}

// Nyström attention of one head (algorithm.md section 2), written as the batch
// formula F pinv(A) (G V): q (d x nq), k, v (d x n), landmarks qt, kt (d x m).
// z: pinv(A) when the caller has it (fixed landmarks), else computed here.
template <typename S>
MatrixT<S> nystrom_attention_head(const MatrixT<S>& q, const MatrixT<S>& k,
                                  const MatrixT<S>& v, const MatrixT<S>& qt,
                                  const MatrixT<S>& kt, PinvMode mode, int iterations,
                                  const MatrixT<S>* z = nullptr) {
  MatrixT<S> f_t = kt.transpose() * q;  // m x nq: column i = row i of F
  softmax_columns(f_t);
  const MatrixT<S> own = z ? MatrixT<S>() : landmark_pinv<S>(qt, kt, mode, iterations);
  MatrixT<S> g = qt.transpose() * k;  // m x n
  softmax_rows(g);
  MatrixT<S> gv = g * v.transpose();                      // m x d
  return gv.transpose() * ((z ? *z : own).transpose() * f_t);  // d x nq
}

// The stem (config.h StemConfig) on one token's stem input, by direct loops:
// the pooled c_L (g + 2) values, the reference for ConvStem's im2col products.
// convs[l], biases[l]: layer l's filters ((c_in kh kw) x c_out) and biases.
template <typename S>
VectorT<S> stem_pooled(const StemConfig& c, const std::vector<MatrixT<S>>& convs,
                       const std::vector<VectorT<S>>& biases, const S* input) {
  std::vector<S> x(input, input + c.input_size());
  int channels = c.input_channels, height = c.input_height, width = c.input_width;
  for (std::size_t l = 0; l < c.layers.size(); ++l) {
    const StemLayer& s = c.layers[l];
    const int out_h = c.output_height(static_cast<int>(l)), out_w = c.output_width(static_cast<int>(l));
    std::vector<S> y(static_cast<std::size_t>(s.channels) * out_h * out_w);
    for (int o = 0; o < s.channels; ++o)
      for (int oy = 0; oy < out_h; ++oy)
        for (int ox = 0; ox < out_w; ++ox) {
          S sum = biases[l](o);
          for (int i = 0; i < channels; ++i)
            for (int ky = 0; ky < s.kernel_height; ++ky)
              for (int kx = 0; kx < s.kernel_width; ++kx) {
                const int iy = oy * s.stride_height - s.kernel_height / 2 + ky;
                const int ix = ox * s.stride_width - s.kernel_width / 2 + kx;
                if (iy < 0 || iy >= height || ix < 0 || ix >= width) continue;
                sum += convs[l]((i * s.kernel_height + ky) * s.kernel_width + kx, o) *
                       x[(static_cast<std::size_t>(i) * height + iy) * width + ix];
              }
          y[(static_cast<std::size_t>(o) * out_h + oy) * out_w + ox] = sum > S(0) ? sum : S(0);
        }
    x.swap(y);
    channels = s.channels, height = out_h, width = out_w;
  }
  const int g = c.pool_strips;
  VectorT<S> pooled(channels * (g + 2));
  for (int o = 0; o < channels; ++o) {
    const S* map = x.data() + static_cast<std::size_t>(o) * height * width;
    auto max_rows = [&](int begin, int end) {
      S top = map[static_cast<std::size_t>(begin) * width];
      for (int p = begin * width; p < end * width; ++p) top = std::max(top, map[p]);
      return top;
    };
    for (int i = 0; i < g; ++i)
      pooled(o * (g + 2) + i) = max_rows(static_cast<int>(1LL * i * height / g),
                                         static_cast<int>(1LL * (i + 1) * height / g));
    pooled(o * (g + 2) + g) = max_rows(0, height);
    S sum = 0;
    for (int p = 0; p < height * width; ++p) sum += map[p];
    pooled(o * (g + 2) + g + 1) = sum / S(height * width);
  }
  return pooled;
}

template <typename S>
class BatchModel {
 public:
  struct Window {
    MatrixT<S> tokens;                // D_in x n, oldest first
    std::vector<std::int64_t> times;  // absolute index of each token (positions)
    std::vector<char> valid;          // 0: padding / dropped token
  };

  // model_pinv: with fixed landmarks, use the pinv the Model computed at load (as
  // the stream does) instead of solving it on every call, as a re-encoding
  // baseline should; the double-precision test reference solves its own.
  explicit BatchModel(const Model& model, bool model_pinv = false) : config_(model.config()) {
    const ModelWeights& w = model.weights();
    input_mean_ = w.input_mean.cast<S>();
    input_scale_ = w.input_scale.cast<S>();
    input_ = w.input.cast<S>();
    input_bias_ = w.input_bias.cast<S>();
    positions_ = w.positions.cast<S>();
    for (const LayerWeights& l : w.layers) {
      layers_.push_back(CastLayer(l));
      fixed_.push_back({l.landmark_queries.cast<S>(), l.landmark_keys.cast<S>()});
    }
    final_gamma_ = w.final_gamma.cast<S>();
    final_beta_ = w.final_beta.cast<S>();
    classifier_ = w.classifier.cast<S>();
    classifier_bias_ = w.classifier_bias.cast<S>();
    if constexpr (std::is_same_v<S, float>) {
      stem_weights_ = w.stem;
    } else {
      for (const StemWeights::Conv& conv : w.stem.convs) {
        stem_convs_.push_back(conv.weight.cast<S>());
        stem_biases_.push_back(conv.bias.cast<S>());
      }
      stem_proj_ = w.stem.proj.cast<S>();
    }
    const bool fixed = config_.attention == AttentionKind::kNystrom &&
                       config_.schedule == LandmarkSchedule::kFixed;
    if (model_pinv && fixed) {
      const int m = config_.landmarks;
      for (int l = 0; l < config_.blocks; ++l)
        for (int h = 0; h < config_.heads; ++h)
          pinv_.push_back(model.fixed_pinv(l).middleCols(h * m, m).template cast<S>());
    }
  }

  const ModelConfig& config() const { return config_; }

  // Input normalisation and projection (of the first linear_input_dim() values)
  // plus the recycled positional embedding and the stem's projection: E x n.
  MatrixT<S> embed(const Window& window) const {
    MatrixT<S> tokens = window.tokens;
    if (input_mean_.size())
      tokens = ((tokens.colwise() - input_mean_).array().colwise() * input_scale_.array()).matrix();
    MatrixT<S> x = input_ * tokens.topRows(config_.linear_input_dim());
    x.colwise() += input_bias_;
    for (Eigen::Index j = 0; j < x.cols(); ++j)
      x.col(j) += positions_.col(static_cast<Eigen::Index>(window.times[j] % config_.positional_period));
    if (!config_.stem.enabled()) return x;
    if constexpr (std::is_same_v<S, float>) {
      // The stream's im2col stem on every token: a re-encoding baseline should
      // not pay for the reference's direct loops (35x slower on the audio stem).
      ConvStem stem(config_.stem, stem_weights_);
      for (Eigen::Index j = 0; j < x.cols(); ++j)
        stem.add_to(tokens.col(j).data() + config_.stem.input_offset, x.col(j));
    } else {
      for (Eigen::Index j = 0; j < x.cols(); ++j)
        x.col(j) += stem_proj_ * stem_pooled<S>(config_.stem, stem_convs_, stem_biases_,
                                                tokens.col(j).data() + config_.stem.input_offset);
    }
    return x;
  }

  // Scaled q^, k^ and v of layer l for the tokens x (E x n); padding columns zero.
  // q only for the last query_rows tokens (all when negative).
  void project(int l, const MatrixT<S>& x, const std::vector<char>& valid, MatrixT<S>* q,
               MatrixT<S>* k, MatrixT<S>* v, Eigen::Index query_rows = -1) const {
    const Layer& w = layers_[l];
    const int e = config_.embed_dim;
    const Eigen::Index n = x.cols();
    const Eigen::Index rows = query_rows < 0 ? n : query_rows;
    const S scale = S(1) / std::pow(S(config_.head_dim()), S(0.25));
    *q = (w.qkv.topRows(e) * x.rightCols(rows)).colwise() + w.qkv_bias.head(e);
    *k = (w.qkv.middleRows(e, e) * x).colwise() + w.qkv_bias.segment(e, e);
    *v = (w.qkv.bottomRows(e) * x).colwise() + w.qkv_bias.tail(e);
    *q *= scale;
    *k *= scale;
    for (Eigen::Index j = 0; j < n; ++j) {
      if (valid[j]) continue;
      if (j >= n - rows) q->col(j - (n - rows)).setZero();
      k->col(j).setZero();
      v->col(j).setZero();
    }
  }

  // Segment-mean landmarks of layer l's window: what the continual schedule holds
  // right after a segment completes.
  Landmarks<S> window_landmarks(int l, const MatrixT<S>& x, const std::vector<char>& valid) const {
    MatrixT<S> q, k, v;
    project(l, x, valid, &q, &k, &v);
    return {segment_means<S>(q, config_.landmarks), segment_means<S>(k, config_.landmarks)};
  }

  // Multi-head attention of layer l with output projection, for the last `rows`
  // tokens of x. landmarks: this layer's; nullptr means the window's segment
  // means (ignored for softmax attention).
  MatrixT<S> attention(int l, const MatrixT<S>& x, const std::vector<char>& valid,
                       const Landmarks<S>* landmarks, Eigen::Index rows) const {
    MatrixT<S> q, k, v;
    const bool own_landmarks = config_.attention == AttentionKind::kNystrom && !landmarks;
    project(l, x, valid, &q, &k, &v, own_landmarks ? -1 : rows);
    Landmarks<S> own;
    if (own_landmarks) {
      own = {segment_means<S>(q, config_.landmarks), segment_means<S>(k, config_.landmarks)};
      landmarks = &own;
    }
    const int d = config_.head_dim();
    MatrixT<S> heads(config_.embed_dim, rows);
    for (int h = 0; h < config_.heads; ++h) {
      const MatrixT<S> qh = q.block(h * d, q.cols() - rows, d, rows);
      const MatrixT<S> kh = k.middleRows(h * d, d), vh = v.middleRows(h * d, d);
      if (config_.attention == AttentionKind::kSoftmax) {
        heads.middleRows(h * d, d) = softmax_attention_head<S>(qh, kh, vh);
      } else {
        const MatrixT<S> qt = landmarks->queries.middleRows(h * d, d);
        const MatrixT<S> kt = landmarks->keys.middleRows(h * d, d);
        heads.middleRows(h * d, d) = nystrom_attention_head<S>(
            qh, kh, vh, qt, kt, config_.pinv, config_.pinv_iterations, model_pinv(l, h, landmarks));
      }
    }
    return output_projection(l, heads);
  }

  // Post-norm encoder block for the last `rows` tokens: z = LN(x + Attn(x)),
  // y = LN(z + FF(z)).
  MatrixT<S> block(int l, const MatrixT<S>& x, const std::vector<char>& valid,
                   const Landmarks<S>* landmarks, Eigen::Index rows) const {
    return finish_block(l, x.rightCols(rows), attention(l, x, valid, landmarks, rows));
  }

  // Stacked assembly (config.stacked()), the causal sliding-window form: layer l's
  // output at position i attends over layer l-1's outputs at i-n+1 .. i. Returns
  // the last layer's outputs for the window's newest `rows` positions; the window
  // holds rows - 1 + config.receptive_field() tokens with their absolute times.
  // Landmarks are derived per row (fixed, or each layer's segment means at the
  // row's last completion), so forward()'s landmarks argument does not apply.
  // layers: the outputs of the first `layers` layers instead (0: the embedding).
  MatrixT<S> stacked(const Window& window, Eigen::Index rows, int layers = -1) const {
    if (layers < 0) layers = config_.blocks;
    const Eigen::Index reach = (config_.receptive_field() - 1) / config_.blocks;  // per layer
    MatrixT<S> x = embed(window);
    for (int l = 0; l < layers; ++l)
      x = stacked_block(l, x, window, rows + (layers - 1 - l) * reach);
    return x.rightCols(rows);
  }

  // The Nyström key side G V of one head at rows (sliding-window positions)
  // first .. first + count - 1 of k, v (d x T), for fixed landmarks qt: running
  // sums of exp(qt . k_j - offset) v_j as the window slides. m x d per row, in
  // gv (m x (d count)). Each landmark's offset is the largest score it has met
  // since its sums were built from its window; once the sums fall below half
  // exp(0) (that score has left), subtraction would cancel their digits (and
  // float32 exp underflows when scores spread by > ~87), so they are rebuilt.
  static MatrixT<S> sliding_key_side(const MatrixT<S>& k, const MatrixT<S>& v,
                                     const MatrixT<S>& qt, int n, Eigen::Index first,
                                     Eigen::Index count) {
    const Eigen::Index m = qt.cols(), d = k.rows();
    const Eigen::Index from = first - n + 1, span = count + n - 1;
    const MatrixT<S> scores = qt.transpose() * k.middleCols(from, span);  // m x span
    MatrixT<S> num(m, d);
    VectorT<S> den(m), offset(m);
    auto build = [&](Eigen::Index j, Eigen::Index start) {  // window at span column start
      offset(j) = scores.row(j).segment(start, n).maxCoeff();
      const Eigen::Matrix<S, 1, Eigen::Dynamic> e =
          (scores.row(j).segment(start, n).array() - offset(j)).exp().matrix();
      num.row(j).noalias() = e * v.middleCols(from + start, n).transpose();
      den(j) = e.sum();
    };
    for (Eigen::Index j = 0; j < m; ++j) build(j, 0);
    MatrixT<S> gv(m, d * count);
    for (Eigen::Index r = 0; r < count; ++r) {
      for (Eigen::Index j = 0; r > 0 && j < m; ++j) {  // position first + r enters, first + r - n leaves
        const S in = scores(j, r + n - 1), out = scores(j, r - 1);
        if (in > offset(j)) {
          const S rescale = std::exp(offset(j) - in);
          num.row(j) *= rescale;
          den(j) *= rescale;
          offset(j) = in;
        }
        const S e_in = std::exp(in - offset(j)), e_out = std::exp(out - offset(j));
        num.row(j) += e_in * v.col(from + r + n - 1).transpose() - e_out * v.col(from + r - 1).transpose();
        den(j) += e_in - e_out;
        if (!(den(j) >= S(0.5))) build(j, r);
      }
      gv.middleCols(r * d, d) = num.array().colwise() / den.array();
    }
    return gv;
  }

  // The model's fixed landmarks, one per layer (empty matrices for continual).
  const std::vector<Landmarks<S>>& fixed_landmarks() const { return fixed_; }

  // Logits of the window's last token. landmarks: one per layer; nullptr means
  // "the model's own": fixed landmarks, or each layer's window segment means.
  // all_rows: run the last layer for every token, as a plain encoder forward does,
  // instead of for the newest token only (the same logits either way).
  // Stacked models: the window holds config.receptive_field() tokens, and
  // landmarks and all_rows do not apply (see stacked()).
  VectorT<S> forward(const Window& window, const std::vector<Landmarks<S>>* landmarks,
                     bool all_rows = false) const {
    if (config_.stacked()) return classify(stacked(window, 1).col(0));
    MatrixT<S> x = embed(window);
    const Eigen::Index n = x.cols();
    for (int l = 0; l < config_.blocks; ++l) {
      const bool last = l + 1 == config_.blocks && !all_rows;
      const Landmarks<S>* own = landmarks ? &(*landmarks)[l] : nullptr;
      if (!landmarks && config_.schedule == LandmarkSchedule::kFixed) own = &fixed_[l];
      x = block(l, x, window.valid, own, last ? 1 : n);
    }
    return classify(x.col(x.cols() - 1));
  }

 private:
  VectorT<S> classify(VectorT<S> newest) const {
    layer_norm_columns(newest, final_gamma_, final_beta_, S(config_.layer_norm_eps));
    return classifier_ * newest + classifier_bias_;
  }

  const MatrixT<S>* model_pinv(int l, int h, const Landmarks<S>* landmarks) const {
    const bool own = !pinv_.empty() && landmarks == &fixed_[l];
    return own ? &pinv_[l * config_.heads + h] : nullptr;
  }

  MatrixT<S> output_projection(int l, const MatrixT<S>& heads) const {
    if (!config_.output_projection) return heads;
    const Layer& w = layers_[l];
    return (w.out * heads).colwise() + w.out_bias;
  }

  template <typename Residual>
  MatrixT<S> finish_block(int l, const Residual& residual, const MatrixT<S>& attention) const {
    const Layer& w = layers_[l];
    MatrixT<S> z = residual + attention;
    layer_norm_columns(z, w.norm1_gamma, w.norm1_beta, S(config_.layer_norm_eps));
    MatrixT<S> hidden = (w.ff1 * z).colwise() + w.ff1_bias;
    gelu(hidden);
    MatrixT<S> y = z + ((w.ff2 * hidden).colwise() + w.ff2_bias);
    layer_norm_columns(y, w.norm2_gamma, w.norm2_beta, S(config_.layer_norm_eps));
    return y;
  }

  // One stacked layer: x holds layer l's inputs for the window's last x.cols()
  // positions; returns its outputs for the last `rows` of them.
  MatrixT<S> stacked_block(int l, const MatrixT<S>& x, const Window& window,
                           Eigen::Index rows) const {
    const Eigen::Index count = x.cols(), first = count - rows;
    const Eigen::Index at = static_cast<Eigen::Index>(window.valid.size()) - count;
    const std::vector<char> valid(window.valid.begin() + at, window.valid.end());
    const bool nystrom = config_.attention == AttentionKind::kNystrom;
    const bool continual = nystrom && config_.schedule == LandmarkSchedule::kContinual;
    MatrixT<S> q, k, v;  // continual landmarks need every position's q
    project(l, x, valid, &q, &k, &v, continual ? -1 : rows);
    const int n = config_.window, d = config_.head_dim(), length = config_.segment_length();
    MatrixT<S> heads(config_.embed_dim, rows);
    for (int h = 0; h < config_.heads; ++h) {
      const MatrixT<S> kh = k.middleRows(h * d, d), vh = v.middleRows(h * d, d);
      if (nystrom && !continual) {
        const MatrixT<S> qt = fixed_[l].queries.middleRows(h * d, d);
        const MatrixT<S> kt = fixed_[l].keys.middleRows(h * d, d);
        const MatrixT<S>* given = model_pinv(l, h, &fixed_[l]);
        const MatrixT<S> z = given ? *given
                                   : landmark_pinv<S>(qt, kt, config_.pinv, config_.pinv_iterations);
        MatrixT<S> f_t = kt.transpose() * q.middleRows(h * d, d);  // m x rows
        softmax_columns(f_t);
        const MatrixT<S> gv = sliding_key_side(kh, vh, qt, n, first, rows);
        const MatrixT<S> mixed = z.transpose() * f_t;  // m x rows
        for (Eigen::Index r = 0; r < rows; ++r)
          heads.col(r).segment(h * d, d) = gv.middleCols(r * d, d).transpose() * mixed.col(r);
        continue;
      }
      for (Eigen::Index r = 0; r < rows; ++r) {
        const Eigen::Index i = first + r;
        const MatrixT<S> qi = q.block(h * d, continual ? i : r, d, 1);
        const MatrixT<S> kw = kh.middleCols(i - n + 1, n), vw = vh.middleCols(i - n + 1, n);
        if (!nystrom) {
          heads.block(h * d, r, d, 1) = softmax_attention_head<S>(qi, kw, vw);
          continue;
        }
        // The landmarks this layer held at the row's time: segment means of its
        // inputs ending at the last completion c (zero before the first).
        const std::int64_t t = window.times[at + i];
        const std::int64_t c = (t + 1) / length * length - 1;
        MatrixT<S> qt = MatrixT<S>::Zero(d, config_.landmarks), kt = qt;
        if (valid[i] && c >= 0) {
          const Eigen::Index end = i - (t - c);
          qt = segment_means<S>(q.block(h * d, end - n + 1, d, n), config_.landmarks);
          kt = segment_means<S>(kh.middleCols(end - n + 1, n), config_.landmarks);
        }
        heads.block(h * d, r, d, 1) = nystrom_attention_head<S>(qi, kw, vw, qt, kt, config_.pinv,
                                                                 config_.pinv_iterations);
      }
    }
    return finish_block(l, x.rightCols(rows), output_projection(l, heads));
  }
  struct Layer {
    MatrixT<S> qkv, out, ff1, ff2;
    VectorT<S> qkv_bias, out_bias, norm1_gamma, norm1_beta, ff1_bias, ff2_bias, norm2_gamma,
        norm2_beta;
  };

  static Layer CastLayer(const LayerWeights& l) {
    Layer c;
    c.qkv = l.qkv.cast<S>();
    c.qkv_bias = l.qkv_bias.cast<S>();
    c.out = l.out.cast<S>();
    c.out_bias = l.out_bias.cast<S>();
    c.norm1_gamma = l.norm1_gamma.cast<S>();
    c.norm1_beta = l.norm1_beta.cast<S>();
    c.ff1 = l.ff1.cast<S>();
    c.ff1_bias = l.ff1_bias.cast<S>();
    c.ff2 = l.ff2.cast<S>();
    c.ff2_bias = l.ff2_bias.cast<S>();
    c.norm2_gamma = l.norm2_gamma.cast<S>();
    c.norm2_beta = l.norm2_beta.cast<S>();
    return c;
  }

  ModelConfig config_;
  MatrixT<S> input_, positions_, classifier_;
  VectorT<S> input_mean_, input_scale_, input_bias_, final_gamma_, final_beta_, classifier_bias_;
  std::vector<Layer> layers_;
  std::vector<Landmarks<S>> fixed_;
  std::vector<MatrixT<S>> pinv_;  // model_pinv: layer l head h at l * heads + h
  // The stem: float keeps the model's weights for ConvStem, double its casts
  // for the direct-loop reference.
  StemWeights stem_weights_;
  std::vector<MatrixT<S>> stem_convs_;
  std::vector<VectorT<S>> stem_biases_;
  MatrixT<S> stem_proj_;
};

}  // namespace nystream
