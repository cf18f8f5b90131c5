// The video-motion descriptor of one token from two analysis images (the
// token's frame and the previous token's), docs/features.md. Buffers are sized
// at construction; compute() allocates nothing.
#pragma once

#include <cstdint>
#include <vector>

#include "nystream/features/params.h"

namespace nystream::detail {

class MotionDescriptor {
 public:
  // Images are analysis_width x analysis_height gray, rows `stride` bytes apart.
  MotionDescriptor(const VideoMotionParams& params, int stride);

  // Writes params.dim() floats. `prev` null: no previous frame, motion part zero.
  void compute(const std::uint8_t* cur, const std::uint8_t* prev, float* out) noexcept;
  // Forgets the previous token's motion centroid and spread.
  void reset() noexcept;

 private:
  // Integer best (u, v) and sub-pixel refinement for the block at (bx, by).
  void match_block(const std::uint8_t* cur, int bx, int by, float* dx, float* dy) noexcept;
  void pad_previous(const std::uint8_t* prev) noexcept;

  VideoMotionParams p_;
  int stride_;
  int pad_stride_;
  std::vector<std::uint8_t> padded_;  // previous image with search_range edge replication
  std::vector<std::int32_t> sad_;     // (2R+1)^2 block-matching costs
  bool have_previous_stats_ = false;
  float prev_cx_ = 0, prev_cy_ = 0, prev_sx_ = 0, prev_sy_ = 0;
};

}  // namespace nystream::detail
