#include "nystream/conv_stem.h"

#include <algorithm>

namespace nystream {

ConvStem::ConvStem(const StemConfig& config, const StemWeights& weights) : c_(config), w_(weights) {
  const int layers = static_cast<int>(c_.layers.size());
  heights_.push_back(c_.input_height);
  widths_.push_back(c_.input_width);
  Eigen::Index columns = 0, rows = 0;
  for (int l = 0; l < layers; ++l) {
    heights_.push_back(c_.output_height(l));
    widths_.push_back(c_.output_width(l));
    const StemLayer& s = c_.layers[l];
    const Eigen::Index positions = static_cast<Eigen::Index>(heights_.back()) * widths_.back();
    rows = std::max(rows, positions);
    columns = std::max<Eigen::Index>(columns, static_cast<Eigen::Index>(c_.channels(l - 1)) *
                                                  s.kernel_height * s.kernel_width);
    activations_.emplace_back(positions, s.channels);
  }
  // One buffer for every layer: each uses its top-left positions x K block.
  columns_.resize(rows, columns);
  pooled_.resize(c_.pooled_size());
}

void ConvStem::gather(int l, const float* input) noexcept {
  const StemLayer& s = c_.layers[l];
  const int in_h = heights_[l], in_w = widths_[l], out_h = heights_[l + 1], out_w = widths_[l + 1];
  const int pad_y = s.kernel_height / 2, pad_x = s.kernel_width / 2;
  const int channels = c_.channels(l - 1);
  const Eigen::Index in_plane = static_cast<Eigen::Index>(in_h) * in_w;
  int column = 0;
  for (int i = 0; i < channels; ++i) {
    const float* plane = input + i * in_plane;
    for (int ky = 0; ky < s.kernel_height; ++ky)
      for (int kx = 0; kx < s.kernel_width; ++kx, ++column) {
        float* out = columns_.col(column).data();
        for (int oy = 0; oy < out_h; ++oy) {
          const int y = oy * s.stride_height - pad_y + ky;
          float* row = out + static_cast<Eigen::Index>(oy) * out_w;
          if (y < 0 || y >= in_h) {
            std::fill(row, row + out_w, 0.0f);
            continue;
          }
          const float* source = plane + static_cast<Eigen::Index>(y) * in_w;
          for (int ox = 0; ox < out_w; ++ox) {
            const int x = ox * s.stride_width - pad_x + kx;
            row[ox] = x >= 0 && x < in_w ? source[x] : 0.0f;
          }
        }
      }
  }
}

void ConvStem::add_to(const float* input, Eigen::Ref<Eigen::VectorXf> out) noexcept {
  pool(input);
  out.noalias() += w_.proj * pooled_;
}

void ConvStem::pool(const float* input) noexcept {
  const int layers = static_cast<int>(c_.layers.size());
  for (int l = 0; l < layers; ++l) {
    gather(l, l == 0 ? input : activations_[l - 1].data());
    Eigen::MatrixXf& a = activations_[l];
    const StemWeights::Conv& conv = w_.convs[l];
    a.noalias() = columns_.topLeftCorner(a.rows(), conv.weight.rows()) * conv.weight;
    a.rowwise() += conv.bias.transpose();
    a = a.cwiseMax(0.0f);
  }
  // Pooling: per channel (a column of the last map), strip maxima over rows
  // [floor(i H / g), floor((i + 1) H / g)), the global maximum and mean.
  const Eigen::MatrixXf& a = activations_.back();
  const int g = c_.pool_strips, h = heights_.back(), w = widths_.back();
  Eigen::Map<Eigen::MatrixXf> pooled(pooled_.data(), g + 2, a.cols());
  for (int i = 0; i < g; ++i) {
    const int begin = static_cast<int>(1LL * i * h / g), end = static_cast<int>(1LL * (i + 1) * h / g);
    pooled.row(i) = a.middleRows(static_cast<Eigen::Index>(begin) * w,
                                 static_cast<Eigen::Index>(end - begin) * w)
                        .colwise()
                        .maxCoeff();
  }
  pooled.row(g) = a.colwise().maxCoeff();
  pooled.row(g + 1) = a.colwise().mean();
}

}  // namespace nystream
