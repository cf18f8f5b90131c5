#include "motion_descriptor.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>

namespace nystream::detail {

MotionDescriptor::MotionDescriptor(const VideoMotionParams& params, int stride)
    : p_(params), stride_(stride), pad_stride_(params.analysis_width + 2 * params.search_range) {
  padded_.assign(static_cast<std::size_t>(pad_stride_) * (params.analysis_height + 2 * params.search_range), 0);
  const int side = 2 * params.search_range + 1;
  sad_.assign(static_cast<std::size_t>(side) * side, 0);
}

void MotionDescriptor::reset() noexcept { have_previous_stats_ = false; }

// Edge replication lets every candidate offset read in bounds without checks.
void MotionDescriptor::pad_previous(const std::uint8_t* prev) noexcept {
  const int R = p_.search_range, W = p_.analysis_width, H = p_.analysis_height;
  for (int y = -R; y < H + R; ++y) {
    const std::uint8_t* src = prev + static_cast<std::ptrdiff_t>(std::clamp(y, 0, H - 1)) * stride_;
    std::uint8_t* dst = padded_.data() + static_cast<std::ptrdiff_t>(y + R) * pad_stride_;
    std::memset(dst, src[0], R);
    std::memcpy(dst + R, src, W);
    std::memset(dst + R + W, src[W - 1], R);
  }
}

void MotionDescriptor::match_block(const std::uint8_t* cur, int bx, int by, float* dx, float* dy) noexcept {
  const int R = p_.search_range, side = 2 * R + 1;
  const int bw = p_.block_width(), bh = p_.block_height();
  const int x0 = bx * bw, y0 = by * bh;
  int best = -1, best_u = 0, best_v = 0;
  for (int v = -R; v <= R; ++v) {
    for (int u = -R; u <= R; ++u) {
      std::int32_t sad = 0;
      for (int y = 0; y < bh; ++y) {
        const std::uint8_t* a = cur + static_cast<std::ptrdiff_t>(y0 + y) * stride_ + x0;
        const std::uint8_t* b = padded_.data() + static_cast<std::ptrdiff_t>(y0 + y + v + R) * pad_stride_ + x0 + u + R;
        for (int x = 0; x < bw; ++x) sad += std::abs(static_cast<int>(a[x]) - static_cast<int>(b[x]));
      }
      sad_[(v + R) * side + (u + R)] = sad;
    }
  }
  // Ties go to the shortest vector, so flat regions report no motion.
  for (int v = -R; v <= R; ++v)
    for (int u = -R; u <= R; ++u) {
      const int sad = sad_[(v + R) * side + (u + R)];
      if (best < 0 || sad < best || (sad == best && std::abs(u) + std::abs(v) < std::abs(best_u) + std::abs(best_v))) {
        best = sad;
        best_u = u;
        best_v = v;
      }
    }
  // Sub-pixel: vertex of the parabola through the best cost and its neighbours.
  auto refine = [&](int c_minus, int c0, int c_plus) {
    const float denom = static_cast<float>(c_minus - 2 * c0 + c_plus);
    return denom > 0 ? 0.5f * static_cast<float>(c_minus - c_plus) / denom : 0.0f;
  };
  float su = 0, sv = 0;
  if (best_u > -R && best_u < R)
    su = refine(sad_[(best_v + R) * side + best_u + R - 1], best, sad_[(best_v + R) * side + best_u + R + 1]);
  if (best_v > -R && best_v < R)
    sv = refine(sad_[(best_v + R - 1) * side + best_u + R], best, sad_[(best_v + R + 1) * side + best_u + R]);
  // The block's content came from (x + u, y + v) in the previous frame: it moved by -(u, v).
  *dx = -(best_u + su) / R;
  *dy = -(best_v + sv) / R;
}

void MotionDescriptor::compute(const std::uint8_t* cur, const std::uint8_t* prev, float* out) noexcept {
  const int W = p_.analysis_width, H = p_.analysis_height;
  const int tw = p_.thumb_width, th = p_.thumb_height, cw = W / tw, ch = H / th;
  // Thumbnail: block means, 0..1.
  double brightness = 0;
  for (int ty = 0; ty < th; ++ty)
    for (int tx = 0; tx < tw; ++tx) {
      int sum = 0;
      for (int y = ty * ch; y < (ty + 1) * ch; ++y)
        for (int x = tx * cw; x < (tx + 1) * cw; ++x) sum += cur[static_cast<std::ptrdiff_t>(y) * stride_ + x];
      brightness += sum;
      out[ty * tw + tx] = static_cast<float>(sum) / (255.0f * cw * ch);
    }
  brightness /= 255.0 * W * H;

  const int cols = p_.grid_cols, rows = p_.grid_rows, cells = cols * rows;
  float* grid = out + tw * th;
  float* global = grid + 3 * cells;
  std::fill(grid, grid + 3 * cells + VideoMotionParams::kGlobalFeatures, 0.0f);
  global[14] = static_cast<float>(brightness);
  if (!prev) {
    have_previous_stats_ = false;
    return;
  }
  pad_previous(prev);
  const int bw = p_.block_width(), bh = p_.block_height(), R = p_.search_range;
  double prev_brightness = 0, total_energy = 0;
  double w_sum = 0, wx = 0, wy = 0, wdx = 0, wdy = 0;
  int moving = 0;
  for (int by = 0; by < rows; ++by)
    for (int bx = 0; bx < cols; ++bx) {
      int diff = 0, prev_sum = 0;
      for (int y = by * bh; y < (by + 1) * bh; ++y) {
        const std::uint8_t* a = cur + static_cast<std::ptrdiff_t>(y) * stride_;
        const std::uint8_t* b = padded_.data() + static_cast<std::ptrdiff_t>(y + R) * pad_stride_ + R;
        for (int x = bx * bw; x < (bx + 1) * bw; ++x) {
          diff += std::abs(static_cast<int>(a[x]) - static_cast<int>(b[x]));
          prev_sum += b[x];
        }
      }
      prev_brightness += prev_sum;
      total_energy += diff;
      const float mean_diff = static_cast<float>(diff) / (bw * bh);  // 0..255
      float dx = 0, dy = 0;
      // Below the threshold nothing changed that matching could follow.
      if (mean_diff >= p_.motion_threshold) {
        match_block(cur, bx, by, &dx, &dy);
        ++moving;
      }
      float* cell = grid + 3 * (by * cols + bx);
      cell[0] = dx;
      cell[1] = dy;
      cell[2] = mean_diff / 255.0f;
      // Block centre in [-1, 1].
      const double x = (bx + 0.5) * 2.0 / cols - 1.0, y = (by + 0.5) * 2.0 / rows - 1.0, w = cell[2];
      w_sum += w;
      wx += w * x;
      wy += w * y;
      wdx += w * dx;
      wdy += w * dy;
    }
  prev_brightness /= 255.0 * W * H;
  global[0] = static_cast<float>(total_energy / (255.0 * W * H));
  global[13] = static_cast<float>(moving) / cells;
  global[15] = static_cast<float>(brightness - prev_brightness);
  // Too little change to place a centroid: leave the geometric features at zero.
  if (w_sum < 1e-3 * cells) {
    have_previous_stats_ = false;
    return;
  }
  const double cx = wx / w_sum, cy = wy / w_sum;
  double vx = 0, vy = 0, div = 0, curl = 0;
  for (int by = 0; by < rows; ++by)
    for (int bx = 0; bx < cols; ++bx) {
      const float* cell = grid + 3 * (by * cols + bx);
      const double x = (bx + 0.5) * 2.0 / cols - 1.0 - cx, y = (by + 0.5) * 2.0 / rows - 1.0 - cy, w = cell[2];
      vx += w * x * x;
      vy += w * y * y;
      // Expansion (approach) and rotation (waving arcs) about the motion centroid.
      div += w * (x * cell[0] + y * cell[1]);
      curl += w * (x * cell[1] - y * cell[0]);
    }
  const float sx = static_cast<float>(std::sqrt(vx / w_sum)), sy = static_cast<float>(std::sqrt(vy / w_sum));
  global[1] = static_cast<float>(cx);
  global[2] = static_cast<float>(cy);
  global[3] = sx;
  global[4] = sy;
  global[5] = static_cast<float>(wdx / w_sum);
  global[6] = static_cast<float>(wdy / w_sum);
  global[7] = static_cast<float>(div / w_sum);
  global[8] = static_cast<float>(curl / w_sum);
  if (have_previous_stats_) {
    global[9] = static_cast<float>(cx) - prev_cx_;
    global[10] = static_cast<float>(cy) - prev_cy_;
    global[11] = sx - prev_sx_;
    global[12] = sy - prev_sy_;
  }
  have_previous_stats_ = true;
  prev_cx_ = static_cast<float>(cx);
  prev_cy_ = static_cast<float>(cy);
  prev_sx_ = sx;
  prev_sy_ = sy;
}

}  // namespace nystream::detail
