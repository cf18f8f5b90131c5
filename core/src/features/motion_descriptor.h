// The video-motion descriptor of one token from two analysis images (the
// token's frame and the previous token's), docs/features.md. Buffers are sized
// at construction; compute() allocates nothing.
#pragma once

#include <cstdint>
#include <vector>

#include "nystream/features/params.h"

namespace nystream::detail {

// Block means, 0..1, of a width x height gray image (rows `stride` bytes apart)
// over an out_width x out_height grid of equal blocks (each divides its side),
// row-major into out. Returns the sum of all pixels.
std::int64_t block_means(const std::uint8_t* image, int stride, int width, int height, int out_width,
                         int out_height, float* out) noexcept;

class MotionDescriptor {
 public:
  // Images are analysis_width x analysis_height gray, rows `stride` bytes apart.
  MotionDescriptor(const VideoMotionParams& params, int stride);

  // Writes params.dim() - params.long_dim() - params.stem_dim() floats. `prev` null: no previous
  // frame, motion part zero.
  void compute(const std::uint8_t* cur, const std::uint8_t* prev, float* out) noexcept;
  // The camera (compensate_camera) and histogram parts only, params.long_dim()
  // floats: the long-baseline measurement, built with long_baseline_params().
  void compute_motion_parts(const std::uint8_t* cur, const std::uint8_t* prev, float* out) noexcept;
  // Forgets the previous token's motion centroid and spread.
  void reset() noexcept;

 private:
  // Best displacement (analysis pixels, + right / down) of the bw x bh block of
  // `cur` at (x0, y0) relative to the padded previous image: full search
  // +-search_range, ties to the shortest vector, parabolic sub-pixel refinement.
  void match(const std::uint8_t* cur, int x0, int y0, int bw, int bh, float* dx, float* dy) noexcept;
  // sad_: the block's sum of absolute differences at every offset.
  void fill_costs(const std::uint8_t* cur, int x0, int y0, int bw, int bh) noexcept;
  // Grid cell (bx, by), in units of search_range.
  void match_block(const std::uint8_t* cur, int bx, int by, float* dx, float* dy) noexcept;
  // Copies an image (rows `src_stride` apart) into padded_ with edge replication.
  void pad_previous(const std::uint8_t* prev, int src_stride) noexcept;
  // compensate_camera: global gain and shift (median block vector) from prev to
  // cur; leaves padded_
  // holding prev scaled by the gain and shifted (and with camera_zoom, scaled)
  // onto cur. Writes camera_dim() values.
  void compensate(const std::uint8_t* cur, const std::uint8_t* prev, float* camera) noexcept;
  // camera_zoom: the camera's shift (tx, ty) and zoom rate from n block vectors.
  void fit_zoom(std::size_t n, double* tx, double* ty, double* zoom) noexcept;
  // camera_zoom: work_ = padded_ (the gain-scaled previous image) sampled at
  // p + (fu, fv) - zoom (p - centre), or cur where that is outside it; then padded_.
  void warp_zoomed(const std::uint8_t* cur, double fu, double fv, double zoom) noexcept;
  // motion_histograms: the translation-invariant part from cur and padded_.
  void histograms(const std::uint8_t* cur, float* out) noexcept;
  // motion_blobs: the part of the heaviest blobs of coherent motion, from the
  // moving blocks histograms() found.
  void blobs(float* out) noexcept;
  // The camera, histogram and blob parts (those that are on) of cur against prev.
  void motion_parts(const std::uint8_t* cur, const std::uint8_t* prev, float* camera, float* hist) noexcept;

  VideoMotionParams p_;
  int stride_;
  int pad_stride_;
  std::vector<std::uint8_t> padded_;  // previous image with search_range edge replication
  std::vector<std::int32_t> sad_;     // (2R+1)^2 block-matching costs
  std::vector<std::uint8_t> work_;    // compensate_camera: W x H gain-scaled / shifted previous image
  std::vector<float> shift_x_, shift_y_;  // compensate_camera: block vectors, for their median
  std::vector<float> block_x_, block_y_;  // camera_zoom: the textured blocks' centres,
  std::vector<float> scratch_;            // and room for the medians of the fit
  bool have_previous_stats_ = false;
  float prev_cx_ = 0, prev_cy_ = 0, prev_sx_ = 0, prev_sy_ = 0;

  // motion_histograms: 8 x 8 blocks every 4 pixels.
  struct Block { float w, dx, dy, x, y; int cell; };
  // Weighted sums over a region of moving blocks about its centroid (cx, cy); the
  // blocks above cy are its upper part. histograms() sums the whole moving region,
  // blobs() each blob.
  struct RegionSums {
    double vx = 0, vy = 0, uw = 0, uvx = 0, uvy = 0, lw = 0, lvx = 0, lvy = 0;
    double sxx = 0, syy = 0, div = 0, curl = 0;
    void add(const Block& k, double cx, double cy) noexcept;
  };
  // A region's shape from its sums and total weight w: spread (analysis pixels,
  // a block counting as its own size), and the values both parts report.
  struct RegionShape {
    double hsx, hsy;              // spread x, y
    float spread_x, spread_y;     // the same / analysis height
    float elongation;             // ln(spread y / spread x), +-3
    float div, curl;              // rates about the centroid, +-1; 0 under a pixel of spread
    float upper_minus_lower_x, upper_minus_lower_y;  // mean motion / search_range; 0 unless both parts move
  };
  RegionShape shape(const RegionSums& s, double w) const noexcept;
  int hist_cols_ = 0, hist_rows_ = 0;
  std::vector<Block> blocks_;  // the moving blocks of the current token
  std::size_t moving_ = 0;     // how many of blocks_ are this token's
  bool have_previous_hist_ = false;
  float prev_vy_ = 0, prev_hsx_ = 0, prev_hsy_ = 0;

  // motion_blobs: union-find over the moving blocks, sums per blob, and the
  // previous token's blobs (to measure how each one changed).
  struct Blob {
    double w = 0, wx = 0, wy = 0, wdx = 0, wdy = 0;  // sums over its blocks, weighted
    int count = 0;                                   // its blocks; negated once written out
  };
  struct BlobTrack { float x, y, vx, vy, sx, sy; };
  std::vector<int> cell_block_;  // hist cell -> index in blocks_, or -1
  std::vector<int> parent_;      // per moving block: union-find parent
  std::vector<Blob> blob_;       // per root block: its blob's sums
  std::vector<int> chosen_;      // the heaviest roots, heaviest first
  std::vector<BlobTrack> tracks_, prev_tracks_;
  int prev_track_count_ = 0;
};

}  // namespace nystream::detail
