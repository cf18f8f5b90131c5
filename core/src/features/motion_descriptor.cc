#include "motion_descriptor.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace nystream::detail {
namespace {

constexpr int kHistBlock = 8;  // motion_histograms: block side and step, analysis pixels
constexpr int kHistStep = 4;

#if defined(__SSE2__)
// The sum of psadbw's two 64-bit partial sums.
inline std::int32_t total(__m128i sums) noexcept {
  return _mm_cvtsi128_si32(sums) + _mm_cvtsi128_si32(_mm_srli_si128(sums, 8));
}

// Two 8-byte rows in one register.
inline __m128i two_rows(const std::uint8_t* p, int stride) noexcept {
  return _mm_unpacklo_epi64(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)),
                            _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p + stride)));
}
#endif

// Sum of |a[x] - b[x]| over n bytes. Block matching spends nearly all its time
// here (625 offsets per block at search_range 12); psadbw does 8 or 16 bytes at
// once and, being exact integer arithmetic, gives the same sums as the loop.
inline std::int32_t row_sad(const std::uint8_t* a, const std::uint8_t* b, int n) noexcept {
  int x = 0;
  std::int32_t sad = 0;
#if defined(__SSE2__)
  __m128i acc = _mm_setzero_si128();
  for (; x + 16 <= n; x += 16)
    acc = _mm_add_epi64(acc, _mm_sad_epu8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a + x)),
                                          _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + x))));
  for (; x + 8 <= n; x += 8)
    acc = _mm_add_epi64(acc, _mm_sad_epu8(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(a + x)),
                                          _mm_loadl_epi64(reinterpret_cast<const __m128i*>(b + x))));
  sad = total(acc);
#endif
  for (; x < n; ++x) sad += std::abs(static_cast<int>(a[x]) - static_cast<int>(b[x]));
  return sad;
}

float median(float* begin, std::size_t n) noexcept {
  std::nth_element(begin, begin + n / 2, begin + n);
  return begin[n / 2];
}

}  // namespace

std::int64_t block_means(const std::uint8_t* image, int stride, int width, int height, int out_width,
                         int out_height, float* out) noexcept {
  const int cw = width / out_width, ch = height / out_height;
  std::int64_t total = 0;
  for (int ty = 0; ty < out_height; ++ty)
    for (int tx = 0; tx < out_width; ++tx) {
      int sum = 0;
      for (int y = ty * ch; y < (ty + 1) * ch; ++y)
        for (int x = tx * cw; x < (tx + 1) * cw; ++x) sum += image[static_cast<std::ptrdiff_t>(y) * stride + x];
      total += sum;
      out[ty * out_width + tx] = static_cast<float>(sum) / (255.0f * cw * ch);
    }
  return total;
}

MotionDescriptor::MotionDescriptor(const VideoMotionParams& params, int stride)
    : p_(params), stride_(stride), pad_stride_(params.analysis_width + 2 * params.search_range) {
  padded_.assign(static_cast<std::size_t>(pad_stride_) * (params.analysis_height + 2 * params.search_range), 0);
  const int side = 2 * params.search_range + 1;
  sad_.assign(static_cast<std::size_t>(side) * side, 0);
  if (params.compensate_camera) {
    work_.assign(static_cast<std::size_t>(params.analysis_width) * params.analysis_height, 0);
    const std::size_t blocks = static_cast<std::size_t>((params.analysis_width - kHistBlock) / kHistStep + 1) *
                               ((params.analysis_height - kHistBlock) / kHistStep + 1);
    shift_x_.assign(blocks, 0.0f);
    shift_y_.assign(blocks, 0.0f);
    if (params.camera_zoom) {
      block_x_.assign(blocks, 0.0f);
      block_y_.assign(blocks, 0.0f);
      scratch_.assign(blocks, 0.0f);
    }
  }
  if (params.motion_histograms) {
    hist_cols_ = (params.analysis_width - kHistBlock) / kHistStep + 1;
    hist_rows_ = (params.analysis_height - kHistBlock) / kHistStep + 1;
    blocks_.resize(static_cast<std::size_t>(hist_cols_) * hist_rows_);
  }
  if (params.motion_blobs > 0) {
    cell_block_.assign(blocks_.size(), -1);
    parent_.assign(blocks_.size(), 0);
    blob_.resize(blocks_.size());
    chosen_.assign(params.motion_blobs, 0);
    tracks_.resize(params.motion_blobs);
    prev_tracks_.resize(params.motion_blobs);
  }
}

void MotionDescriptor::reset() noexcept {
  have_previous_stats_ = have_previous_hist_ = false;
  prev_track_count_ = 0;
}

// Edge replication lets every candidate offset read in bounds without checks.
void MotionDescriptor::pad_previous(const std::uint8_t* prev, int src_stride) noexcept {
  const int R = p_.search_range, W = p_.analysis_width, H = p_.analysis_height;
  for (int y = -R; y < H + R; ++y) {
    const std::uint8_t* src = prev + static_cast<std::ptrdiff_t>(std::clamp(y, 0, H - 1)) * src_stride;
    std::uint8_t* dst = padded_.data() + static_cast<std::ptrdiff_t>(y + R) * pad_stride_;
    std::memset(dst, src[0], R);
    std::memcpy(dst + R, src, W);
    std::memset(dst + R + W, src[W - 1], R);
  }
}

void MotionDescriptor::match_block(const std::uint8_t* cur, int bx, int by, float* dx, float* dy) noexcept {
  const int bw = p_.block_width(), bh = p_.block_height(), R = p_.search_range;
  match(cur, bx * bw, by * bh, bw, bh, dx, dy);
  *dx = *dx / R;
  *dy = *dy / R;
}

void MotionDescriptor::fill_costs(const std::uint8_t* cur, int x0, int y0, int bw, int bh) noexcept {
  const int R = p_.search_range, side = 2 * R + 1;
#if defined(__SSE2__)
  if (bw == 8 && bh == 8) {  // the histogram and camera blocks: the current block stays in 4 registers
    const std::uint8_t* c = cur + static_cast<std::ptrdiff_t>(y0) * stride_ + x0;
    const __m128i c0 = two_rows(c, stride_), c1 = two_rows(c + 2 * stride_, stride_);
    const __m128i c2 = two_rows(c + 4 * stride_, stride_), c3 = two_rows(c + 6 * stride_, stride_);
    const int ps = pad_stride_;
    for (int v = -R; v <= R; ++v)
      for (int u = -R; u <= R; ++u) {
        const std::uint8_t* b = padded_.data() + static_cast<std::ptrdiff_t>(y0 + v + R) * ps + x0 + u + R;
        const __m128i acc = _mm_add_epi64(
            _mm_add_epi64(_mm_sad_epu8(c0, two_rows(b, ps)), _mm_sad_epu8(c1, two_rows(b + 2 * ps, ps))),
            _mm_add_epi64(_mm_sad_epu8(c2, two_rows(b + 4 * ps, ps)), _mm_sad_epu8(c3, two_rows(b + 6 * ps, ps))));
        sad_[(v + R) * side + (u + R)] = total(acc);
      }
    return;
  }
#endif
  for (int v = -R; v <= R; ++v) {
    for (int u = -R; u <= R; ++u) {
      std::int32_t sad = 0;
      for (int y = 0; y < bh; ++y) {
        const std::uint8_t* a = cur + static_cast<std::ptrdiff_t>(y0 + y) * stride_ + x0;
        const std::uint8_t* b = padded_.data() + static_cast<std::ptrdiff_t>(y0 + y + v + R) * pad_stride_ + x0 + u + R;
        sad += row_sad(a, b, bw);
      }
      sad_[(v + R) * side + (u + R)] = sad;
    }
  }
}

void MotionDescriptor::match(const std::uint8_t* cur, int x0, int y0, int bw, int bh, float* dx,
                             float* dy) noexcept {
  const int R = p_.search_range, side = 2 * R + 1;
  int best = -1, best_u = 0, best_v = 0;
  fill_costs(cur, x0, y0, bw, bh);
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
  *dx = -(best_u + su);
  *dy = -(best_v + sv);
}

void MotionDescriptor::compute_motion_parts(const std::uint8_t* cur, const std::uint8_t* prev, float* out) noexcept {
  float* hist = out + p_.camera_dim();
  std::fill(out, hist + VideoMotionParams::kHistogramFeatures + p_.blob_dim(), 0.0f);
  if (!prev) {
    have_previous_hist_ = false;
    prev_track_count_ = 0;
    return;
  }
  motion_parts(cur, prev, out, hist);
}

void MotionDescriptor::motion_parts(const std::uint8_t* cur, const std::uint8_t* prev, float* camera,
                                    float* hist) noexcept {
  if (p_.compensate_camera)
    compensate(cur, prev, camera);
  else
    pad_previous(prev, stride_);
  if (p_.motion_histograms) histograms(cur, hist);
  if (p_.motion_blobs) blobs(hist + VideoMotionParams::kHistogramFeatures);
}

void MotionDescriptor::compute(const std::uint8_t* cur, const std::uint8_t* prev, float* out) noexcept {
  const int W = p_.analysis_width, H = p_.analysis_height;
  const int tw = p_.thumb_width, th = p_.thumb_height;
  // Thumbnail: block means, 0..1.
  const double brightness = static_cast<double>(block_means(cur, stride_, W, H, tw, th, out)) / (255.0 * W * H);

  const int cols = p_.grid_cols, rows = p_.grid_rows, cells = cols * rows;
  float* grid = out + tw * th;
  float* global = grid + 3 * cells;
  float* camera = global + VideoMotionParams::kGlobalFeatures;
  float* hist = camera + p_.camera_dim();
  std::fill(grid, hist + (p_.motion_histograms ? VideoMotionParams::kHistogramFeatures : 0) + p_.blob_dim(), 0.0f);
  global[14] = static_cast<float>(brightness);
  if (!prev) {
    have_previous_stats_ = have_previous_hist_ = false;
    prev_track_count_ = 0;
    return;
  }
  motion_parts(cur, prev, camera, hist);
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

// Camera compensation: the gain (ratio of mean brightness) and the global shift
// (median of the block vectors), then the previous image scaled by the gain and
// shifted (bilinear) onto the current one.
void MotionDescriptor::compensate(const std::uint8_t* cur, const std::uint8_t* prev, float* camera) noexcept {
  const int R = p_.search_range, W = p_.analysis_width, H = p_.analysis_height;
  std::int64_t sum_cur = 0, sum_prev = 0;
  for (int y = 0; y < H; ++y) {
    const std::uint8_t* a = cur + static_cast<std::ptrdiff_t>(y) * stride_;
    const std::uint8_t* b = prev + static_cast<std::ptrdiff_t>(y) * stride_;
    for (int x = 0; x < W; ++x) {
      sum_cur += a[x];
      sum_prev += b[x];
    }
  }
  const double gain = sum_prev > 0 && sum_cur > 0
                          ? std::clamp(static_cast<double>(sum_cur) / static_cast<double>(sum_prev), 0.5, 2.0)
                          : 1.0;
  std::uint8_t lut[256];
  for (int i = 0; i < 256; ++i) lut[i] = static_cast<std::uint8_t>(std::min(255.0, std::floor(i * gain + 0.5)));
  for (int y = 0; y < H; ++y) {
    const std::uint8_t* b = prev + static_cast<std::ptrdiff_t>(y) * stride_;
    std::uint8_t* w = work_.data() + static_cast<std::ptrdiff_t>(y) * W;
    for (int x = 0; x < W; ++x) w[x] = lut[b[x]];
  }
  pad_previous(work_.data(), W);
  // The camera's motion is the median of the block vectors (8 x 8 blocks every
  // 4 pixels, those with texture to match): an object covering less than half
  // the textured blocks cannot pull it, however much contrast it has.
  const int side = 2 * R + 1;
  std::size_t n = 0;
  for (int y0 = 0; y0 + kHistBlock <= H; y0 += kHistStep)
    for (int x0 = 0; x0 + kHistBlock <= W; x0 += kHistStep) {
      float dx, dy;
      match(cur, x0, y0, kHistBlock, kHistBlock, &dx, &dy);
      const auto [lo, hi] = std::minmax_element(sad_.begin(), sad_.begin() + side * side);
      if (*hi - *lo < 2 * kHistBlock * kHistBlock) continue;  // flat: any shift fits
      shift_x_[n] = dx;
      shift_y_[n] = dy;
      if (p_.camera_zoom) {
        block_x_[n] = x0 + 0.5f * (kHistBlock - 1);
        block_y_[n] = y0 + 0.5f * (kHistBlock - 1);
      }
      ++n;
    }
  double fu = 0, fv = 0;  // cur(x, y) ~ prev(x + fu, y + fv): the scene moved by -(fu, fv)
  double zoom = 0;        // camera_zoom: cur(p) ~ prev(p + (fu, fv) - zoom (p - centre))
  if (n >= 3 && p_.camera_zoom) {
    double tx, ty;
    fit_zoom(n, &tx, &ty, &zoom);
    fu = -tx;
    fv = -ty;
  } else if (n >= 3) {
    fu = -median(shift_x_.data(), n);
    fv = -median(shift_y_.data(), n);
  }
  camera[0] = static_cast<float>(-fu / R);
  camera[1] = static_cast<float>(-fv / R);
  camera[2] = static_cast<float>(std::log(gain));
  if (p_.camera_zoom) {
    camera[3] = static_cast<float>(-std::log1p(-zoom));  // ln of the magnification: + zooming in
    warp_zoomed(cur, fu, fv, zoom);
    return;
  }
  // Bilinear shift of the gain-scaled image (still in work_'s padded copy) by
  // (fu, fv): constant weights, coordinates clamped (edge replication).
  const int iu = static_cast<int>(std::floor(fu)), iv = static_cast<int>(std::floor(fv));
  const double ax = fu - iu, ay = fv - iv;
  const float w00 = static_cast<float>((1 - ax) * (1 - ay)), w01 = static_cast<float>(ax * (1 - ay));
  const float w10 = static_cast<float>((1 - ax) * ay), w11 = static_cast<float>(ax * ay);
  for (int y = 0; y < H; ++y) {
    const int y0 = std::clamp(y + iv, -R, H - 1 + R), y1 = std::clamp(y + iv + 1, -R, H - 1 + R);
    const std::uint8_t* r0 = padded_.data() + static_cast<std::ptrdiff_t>(y0 + R) * pad_stride_ + R;
    const std::uint8_t* r1 = padded_.data() + static_cast<std::ptrdiff_t>(y1 + R) * pad_stride_ + R;
    std::uint8_t* w = work_.data() + static_cast<std::ptrdiff_t>(y) * W;
    const std::uint8_t* c = cur + static_cast<std::ptrdiff_t>(y) * stride_;
    const bool row_inside = y + fv >= 0 && y + fv <= H - 1;
    for (int x = 0; x < W; ++x) {
      // Scene the previous frame did not show: taken from the current frame, so
      // the edge the camera uncovers does not look like motion.
      if (!row_inside || x + fu < 0 || x + fu > W - 1) {
        w[x] = c[x];
        continue;
      }
      const int x0 = std::clamp(x + iu, -R, W - 1 + R), x1 = std::clamp(x + iu + 1, -R, W - 1 + R);
      const float value = w00 * r0[x0] + w01 * r0[x1] + w10 * r1[x0] + w11 * r1[x1];
      w[x] = static_cast<std::uint8_t>(std::min(255.0f, value + 0.5f));
    }
  }
  pad_previous(work_.data(), W);
}

// The scene's motion d(p) = t + zoom (p - centre) at current position p, fitted
// to the textured blocks' vectors with medians (robust to an actor, as the
// shift alone): t0 = the median vector; zoom = the median of each block's
// radial rate about the centre (blocks a quarter of the height or more from
// it); then t = the median of d - zoom (p - centre).
void MotionDescriptor::fit_zoom(std::size_t n, double* tx, double* ty, double* zoom) noexcept {
  const double cx = (p_.analysis_width - 1) / 2.0, cy = (p_.analysis_height - 1) / 2.0;
  std::copy(shift_x_.begin(), shift_x_.begin() + n, scratch_.begin());
  const double t0x = median(scratch_.data(), n);
  std::copy(shift_y_.begin(), shift_y_.begin() + n, scratch_.begin());
  const double t0y = median(scratch_.data(), n);
  const double min_r2 = p_.analysis_height * p_.analysis_height / 16.0;
  std::size_t m = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const double rx = block_x_[i] - cx, ry = block_y_[i] - cy, r2 = rx * rx + ry * ry;
    if (r2 >= min_r2) scratch_[m++] = static_cast<float>(((shift_x_[i] - t0x) * rx + (shift_y_[i] - t0y) * ry) / r2);
  }
  *zoom = m >= 3 ? std::clamp(static_cast<double>(median(scratch_.data(), m)), -0.2, 0.2) : 0.0;
  for (std::size_t i = 0; i < n; ++i) scratch_[i] = static_cast<float>(shift_x_[i] - *zoom * (block_x_[i] - cx));
  *tx = median(scratch_.data(), n);
  for (std::size_t i = 0; i < n; ++i) scratch_[i] = static_cast<float>(shift_y_[i] - *zoom * (block_y_[i] - cy));
  *ty = median(scratch_.data(), n);
}

// compensate()'s warp with a zoom: the bilinear weights change from pixel to pixel.
void MotionDescriptor::warp_zoomed(const std::uint8_t* cur, double fu, double fv, double zoom) noexcept {
  const int R = p_.search_range, W = p_.analysis_width, H = p_.analysis_height;
  const double cx = (W - 1) / 2.0, cy = (H - 1) / 2.0;
  for (int y = 0; y < H; ++y) {
    const double qy = y + fv - zoom * (y - cy);
    std::uint8_t* w = work_.data() + static_cast<std::ptrdiff_t>(y) * W;
    const std::uint8_t* c = cur + static_cast<std::ptrdiff_t>(y) * stride_;
    for (int x = 0; x < W; ++x) {
      const double qx = x + fu - zoom * (x - cx);
      if (qx < 0 || qx > W - 1 || qy < 0 || qy > H - 1) {  // not in the previous frame's picture
        w[x] = c[x];
        continue;
      }
      const int ix = static_cast<int>(qx), iy = static_cast<int>(qy);  // in the padding at most by 1
      const float ax = static_cast<float>(qx - ix), ay = static_cast<float>(qy - iy);
      const std::uint8_t* r0 = padded_.data() + static_cast<std::ptrdiff_t>(iy + R) * pad_stride_ + R + ix;
      const std::uint8_t* r1 = r0 + pad_stride_;
      const float value = (1 - ay) * ((1 - ax) * r0[0] + ax * r0[1]) + ay * ((1 - ax) * r1[0] + ax * r1[1]);
      w[x] = static_cast<std::uint8_t>(std::min(255.0f, value + 0.5f));
    }
  }
  pad_previous(work_.data(), W);
}

void MotionDescriptor::RegionSums::add(const Block& k, double cx, double cy) noexcept {
  const double rx = k.x - cx, ry = k.y - cy;
  const bool is_upper = k.y < cy;
  vx += k.w * k.dx;
  vy += k.w * k.dy;
  (is_upper ? uw : lw) += k.w;
  (is_upper ? uvx : lvx) += k.w * k.dx;
  (is_upper ? uvy : lvy) += k.w * k.dy;
  sxx += k.w * rx * rx;
  syy += k.w * ry * ry;
  div += k.w * (rx * k.dx + ry * k.dy);
  curl += k.w * (rx * k.dy - ry * k.dx);
}

MotionDescriptor::RegionShape MotionDescriptor::shape(const RegionSums& s, double w) const noexcept {
  const int R = p_.search_range, H = p_.analysis_height;
  RegionShape sh{};
  // Spread in analysis rows (so x and y share a scale); a single block counts
  // as its own size.
  const double floor_var = kHistBlock * kHistBlock / 12.0;
  sh.hsx = std::sqrt(s.sxx / w + floor_var);
  sh.hsy = std::sqrt(s.syy / w + floor_var);
  sh.spread_x = static_cast<float>(sh.hsx / H);
  sh.spread_y = static_cast<float>(sh.hsy / H);
  sh.elongation = static_cast<float>(std::clamp(std::log(sh.hsy / sh.hsx), -3.0, 3.0));
  const double r2 = s.sxx + s.syy;
  if (r2 > w) {  // at least a pixel of spread: a rate about the centroid makes sense
    sh.div = static_cast<float>(std::clamp(s.div / r2, -1.0, 1.0));
    sh.curl = static_cast<float>(std::clamp(s.curl / r2, -1.0, 1.0));
  }
  if (s.uw > 0 && s.lw > 0) {
    sh.upper_minus_lower_x = static_cast<float>((s.uvx / s.uw - s.lvx / s.lw) / R);
    sh.upper_minus_lower_y = static_cast<float>((s.uvy / s.uw - s.lvy / s.lw) / R);
  }
  return sh;
}

// Translation-invariant motion: 8 x 8 blocks every 4 pixels whose mean
// |difference| reaches motion_threshold are matched; their vectors, weighted by
// the difference, fill direction x speed histograms of the part above and below
// the weighted centroid, and give the region's mean motion, spread, scale
// change, divergence and rotation (least squares about the centroid).
void MotionDescriptor::histograms(const std::uint8_t* cur, float* out) noexcept {
  const int R = p_.search_range, H = p_.analysis_height;
  const int bins = VideoMotionParams::kHistogramBins;
  float* upper = out;
  float* lower = out + bins;
  float* scalar = out + 2 * bins;
  std::size_t n = 0;
  moving_ = 0;
  double w_sum = 0, wx = 0, wy = 0;
  for (int by = 0; by < hist_rows_; ++by)
    for (int bx = 0; bx < hist_cols_; ++bx) {
      const int x0 = bx * kHistStep, y0 = by * kHistStep;
      int diff = 0;
      for (int y = y0; y < y0 + kHistBlock; ++y) {
        const std::uint8_t* a = cur + static_cast<std::ptrdiff_t>(y) * stride_;
        const std::uint8_t* b = padded_.data() + static_cast<std::ptrdiff_t>(y + R) * pad_stride_ + R;
        diff += row_sad(a + x0, b + x0, kHistBlock);
      }
      const float mean_diff = static_cast<float>(diff) / (kHistBlock * kHistBlock);
      if (diff == 0 || mean_diff < p_.motion_threshold) continue;
      Block& k = blocks_[n++];
      match(cur, x0, y0, kHistBlock, kHistBlock, &k.dx, &k.dy);
      k.w = mean_diff / 255.0f;
      k.x = x0 + 0.5f * kHistBlock;
      k.y = y0 + 0.5f * kHistBlock;
      k.cell = by * hist_cols_ + bx;
      w_sum += k.w;
      wx += k.w * k.x;
      wy += k.w * k.y;
    }
  moving_ = n;
  scalar[0] = static_cast<float>(n) / static_cast<float>(blocks_.size());
  if (n == 0 || w_sum < 1e-6) {
    have_previous_hist_ = false;
    return;
  }
  const double cx = wx / w_sum, cy = wy / w_sum;
  const double still = H / 96.0, fast = H / 24.0;  // 0.5 and 2 pixels at 48 rows
  const double kPi = 3.14159265358979323846;
  RegionSums sums;
  for (std::size_t i = 0; i < n; ++i) {
    const Block& k = blocks_[i];
    const bool is_upper = k.y < cy;
    float* h = is_upper ? upper : lower;
    const double m = std::hypot(static_cast<double>(k.dx), static_cast<double>(k.dy));
    if (m < still) {
      h[0] += k.w;
    } else {
      // Eight directions 45 degrees apart from "right" (0) through "down" (2),
      // "left" (4), "up" (6); a vector between two shares its weight linearly.
      double pos = std::atan2(static_cast<double>(k.dy), static_cast<double>(k.dx)) / (kPi / 4);
      if (pos < 0) pos += 8;
      const int i0 = static_cast<int>(pos) % 8, i1 = (i0 + 1) % 8;
      const double f = std::clamp(pos - std::floor(pos), 0.0, 1.0);
      float* dirs = h + 1 + (m < fast ? 0 : 8);
      dirs[i0] += static_cast<float>((1 - f) * k.w);
      dirs[i1] += static_cast<float>(f * k.w);
    }
    sums.add(k, cx, cy);
  }
  const float norm = static_cast<float>(1.0 / w_sum);
  for (int b = 0; b < 2 * bins; ++b) out[b] *= norm;
  const double vx = sums.vx / w_sum, vy = sums.vy / w_sum;
  scalar[1] = static_cast<float>(vx / R);
  scalar[2] = static_cast<float>(vy / R);
  const RegionShape sh = shape(sums, w_sum);
  const double hsx = sh.hsx, hsy = sh.hsy;
  scalar[3] = sh.upper_minus_lower_x;
  scalar[4] = sh.upper_minus_lower_y;
  scalar[6] = sh.spread_x;
  scalar[7] = sh.spread_y;
  scalar[10] = sh.div;
  scalar[11] = sh.curl;
  scalar[12] = sh.elongation;
  if (have_previous_hist_) {
    scalar[5] = static_cast<float>(vy / R - prev_vy_);
    scalar[8] = static_cast<float>(std::clamp(std::log(hsx / prev_hsx_), -1.0, 1.0));
    scalar[9] = static_cast<float>(std::clamp(std::log(hsy / prev_hsy_), -1.0, 1.0));
  }
  have_previous_hist_ = true;
  prev_vy_ = static_cast<float>(vy / R);
  prev_hsx_ = static_cast<float>(hsx);
  prev_hsy_ = static_cast<float>(hsy);
}

// Blobs of coherent motion: moving blocks (as histograms() found them) that are
// grid neighbours with similar vectors join one blob, so an actor walking over a
// played video, or beside another actor, is measured on its own instead of
// pooled with everything that moves. "Similar" allows a quarter of the faster
// vector's length (or the still speed), so the varying vectors of a rotating or
// growing actor stay one blob. The motion_blobs heaviest blobs (sum of block
// difference weights) are written heaviest first, kBlobFeatures each:
//   0 blocks / all blocks     1 weight / the moving region's weight
//   2, 3 centroid (x, y), -1..1              4, 5 mean motion / search_range
//   6, 7 spread (x, y) / analysis height     8 ln(spread y / spread x), +-3
//   9, 10 divergence and rotation rate about the centroid, +-1
//   11, 12 upper minus lower half's mean motion / search_range
//   13 spread of the vectors about their mean / search_range (rigid motion ~0)
//   14 change of value 5, 15, 16 ln of the spread's ratio (+-1), against the
//      previous token's blob nearest to where this one's centroid came from
// Unused slots and the changes of an unmatched blob are zero.
void MotionDescriptor::blobs(float* out) noexcept {
  const int R = p_.search_range, W = p_.analysis_width, H = p_.analysis_height;
  const int slots = p_.motion_blobs;
  const int n = static_cast<int>(moving_);
  if (n == 0) {
    prev_track_count_ = 0;
    return;
  }
  std::fill(cell_block_.begin(), cell_block_.end(), -1);
  double w_total = 0;
  for (int i = 0; i < n; ++i) {
    cell_block_[blocks_[i].cell] = i;
    parent_[i] = i;
    w_total += blocks_[i].w;
  }
  auto find = [&](int i) {
    while (parent_[i] != i) i = parent_[i] = parent_[parent_[i]];
    return i;
  };
  const double still = H / 96.0;
  auto join = [&](int i, int j) {
    const Block &a = blocks_[i], &b = blocks_[j];
    const double la = std::hypot(a.dx, a.dy), lb = std::hypot(b.dx, b.dy);
    if (std::hypot(a.dx - b.dx, a.dy - b.dy) > std::max(still, 0.25 * std::max(la, lb))) return;
    const int ri = find(i), rj = find(j);
    if (ri != rj) parent_[std::max(ri, rj)] = std::min(ri, rj);  // the lower root wins: order-independent
  };
  for (int i = 0; i < n; ++i) {
    const int cell = blocks_[i].cell;
    if (cell % hist_cols_ > 0 && cell_block_[cell - 1] >= 0) join(i, cell_block_[cell - 1]);
    if (cell >= hist_cols_ && cell_block_[cell - hist_cols_] >= 0) join(i, cell_block_[cell - hist_cols_]);
  }
  for (int i = 0; i < n; ++i) blob_[i] = Blob{};
  for (int i = 0; i < n; ++i) {
    const Block& k = blocks_[i];
    Blob& b = blob_[find(i)];
    b.w += k.w;
    b.wx += k.w * k.x;
    b.wy += k.w * k.y;
    b.wdx += k.w * k.dx;
    b.wdy += k.w * k.dy;
    ++b.count;
  }
  int found = 0;
  for (; found < slots; ++found) {
    int best = -1;
    for (int i = 0; i < n; ++i)
      if (parent_[i] == i && blob_[i].count > 0 && (best < 0 || blob_[i].w > blob_[best].w)) best = i;
    if (best < 0) break;
    chosen_[found] = best;
    blob_[best].count = -blob_[best].count;  // taken
  }
  for (int s = 0; s < found; ++s) {
    const int root = chosen_[s];
    const Blob& b = blob_[root];
    const double cx = b.wx / b.w, cy = b.wy / b.w, mvx = b.wdx / b.w, mvy = b.wdy / b.w;
    RegionSums sums;
    double spread_v = 0;
    for (int i = 0; i < n; ++i) {
      if (find(i) != root) continue;
      const Block& k = blocks_[i];
      sums.add(k, cx, cy);
      spread_v += k.w * ((k.dx - mvx) * (k.dx - mvx) + (k.dy - mvy) * (k.dy - mvy));
    }
    const RegionShape sh = shape(sums, b.w);
    const double hsx = sh.hsx, hsy = sh.hsy;
    float* f = out + s * VideoMotionParams::kBlobFeatures;
    f[0] = static_cast<float>(-b.count) / static_cast<float>(blocks_.size());
    f[1] = static_cast<float>(b.w / w_total);
    f[2] = static_cast<float>(cx / W * 2 - 1);
    f[3] = static_cast<float>(cy / H * 2 - 1);
    f[4] = static_cast<float>(mvx / R);
    f[5] = static_cast<float>(mvy / R);
    f[6] = sh.spread_x;
    f[7] = sh.spread_y;
    f[8] = sh.elongation;
    f[9] = sh.div;
    f[10] = sh.curl;
    f[11] = sh.upper_minus_lower_x;
    f[12] = sh.upper_minus_lower_y;
    f[13] = static_cast<float>(std::sqrt(spread_v / b.w) / R);
    // The previous blob whose centroid, moved by its own motion, lands nearest.
    int match = -1;
    double match_d2 = 0;
    for (int j = 0; j < prev_track_count_; ++j) {
      const BlobTrack& t = prev_tracks_[j];
      const double ex = cx - (t.x + t.vx), ey = cy - (t.y + t.vy);
      const double d2 = ex * ex + ey * ey, reach2 = 4.0 * (t.sx * t.sx + t.sy * t.sy) + H * H / 64.0;
      if (d2 < reach2 && (match < 0 || d2 < match_d2)) {
        match = j;
        match_d2 = d2;
      }
    }
    if (match >= 0) {
      const BlobTrack& t = prev_tracks_[match];
      f[14] = static_cast<float>((mvy - t.vy) / R);
      f[15] = static_cast<float>(std::clamp(std::log(hsx / t.sx), -1.0, 1.0));
      f[16] = static_cast<float>(std::clamp(std::log(hsy / t.sy), -1.0, 1.0));
    }
    tracks_[s] = BlobTrack{static_cast<float>(cx), static_cast<float>(cy), static_cast<float>(mvx),
                           static_cast<float>(mvy), static_cast<float>(hsx), static_cast<float>(hsy)};
  }
  std::swap(tracks_, prev_tracks_);
  prev_track_count_ = found;
}

}  // namespace nystream::detail
