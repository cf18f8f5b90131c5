// The video front end: raw frames of any common format and size in, one
// appearance + motion descriptor per token (params.token_rate per second) out.
//
//   nystream::VideoFormat format;                  // I420 640x480
//   format.format = nystream::PixelFormat::kI420; format.width = 640; format.height = 480;
//   auto video = nystream::VideoMotionExtractor::create(nystream::VideoMotionParams{}, format, &error);
//   for (each frame) video->push(planes, strides, pts_ns, sink);   // sink.on_token(...) per token
//   video->drain(end_ns, sink);                                     // at EOS
//
// Every frame is scaled with libswscale to an analysis_width x analysis_height
// gray image. Token k has time t_k = origin + k / token_rate (origin: the first
// frame's timestamp since reset) and uses the frame shown at t_k: the last frame
// whose timestamp is <= t_k + timestamp_tolerance_ns. Frames are dropped or
// repeated by timestamp, never by count, so the same scene at 15, 25 or 60 fps
// gives tokens at the same times. Token k is delivered when a frame after t_k
// arrives (or at drain), so the latency is one frame interval.
//
// Descriptor (docs/features.md, dim() floats), from the token's frame and the
// previous token's frame (1 / token_rate earlier, whatever the frame rate):
//   [thumbnail]  thumb_height x thumb_width block means of the gray image, 0..1
//   [grid]       per grid cell, row-major: dx, dy (block matching from the previous
//                token's frame, in units of search_range, + right/down) and the
//                mean |difference| (0..1)
//   [global]     kGlobalFeatures summary values (motion centroid, spread and their
//                change, weighted mean motion, divergence, curl, ...)
//   [camera]     compensate_camera only: camera shift and gain; all motion above
//                and below is then measured relative to the camera
//   [histograms] motion_histograms only: translation-invariant direction x speed
//                histograms of the moving region's upper and lower part, its
//                spread, scale change, divergence, rotation, ...
//   [blobs]      motion_blobs > 0 only: per blob of coherent motion (the heaviest
//                first), its size, place, mean motion, spread, rotation, ...
//   [long]       long_baseline > 0 only: camera, histogram and blob parts again, from
//                the frame long_baseline tokens earlier (zero until there is one)
//   [stem]       stem_width > 0 only: the gray image's stem_height x stem_width
//                block means, 0..1, then their difference to the previous token's
//                frame's (zero without one): a model stem's [2, H, W] input
// The first token after a reset has no previous frame: its motion part is zero.
//
// Threading: one thread at a time. push(), drain() and reset() allocate nothing
// and throw nothing; create() and configure() allocate.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "nystream/features/params.h"

namespace nystream {

// The raw formats the plugin accepts (GStreamer names); 4-byte formats ignore
// the x/A byte.
enum class PixelFormat {
  kI420, kYV12, kNV12, kNV21, kRGB, kBGR, kRGBx, kBGRx, kxRGB, kxBGR, kRGBA, kBGRA, kARGB, kABGR, kGRAY8,
};

const char* to_string(PixelFormat format);

struct VideoFormat {
  PixelFormat format = PixelFormat::kI420;
  int width = 0;   // 1 .. 16384
  int height = 0;  // 1 .. 16384
  // An AVPixelFormat value, or -1: when set, it replaces `format` (tools that
  // decode with FFmpeg pass whatever the decoder produces).
  int ffmpeg_pixel_format = -1;
  // Frame rate, used only to time frames pushed without a timestamp and the last
  // frame at drain without an end time.
  int fps_n = 30, fps_d = 1;

  std::string validate() const;
};

class VideoMotionExtractor {
 public:
  static std::unique_ptr<VideoMotionExtractor> create(const VideoMotionParams& params, const VideoFormat& format,
                                                      std::string* error);
  ~VideoMotionExtractor();
  VideoMotionExtractor(const VideoMotionExtractor&) = delete;
  VideoMotionExtractor& operator=(const VideoMotionExtractor&) = delete;

  // New format or size (a caps change): a documented reset, then reallocation.
  // Empty on success; otherwise why, and push() returns kNotConfigured.
  std::string configure(const VideoFormat& format);

  // One frame given by plane pointers and strides in bytes (as GstVideoFrame or
  // AVFrame hold them; planes beyond the format's count are ignored).
  PushStatus push(const std::uint8_t* const planes[4], const int strides[4], std::int64_t pts_ns,
                  TokenSink& sink) noexcept;
  // Any number of frames stored contiguously, each in the default layout (rows
  // padded to 4 bytes, planes back to back: GStreamer's default and
  // av_image_fill_arrays(align 4)); frame i is at pts_ns + i frame intervals
  // (format fps). kBadSize, nothing consumed, unless bytes is a multiple of
  // frame_bytes(); otherwise the last non-kOk status of a frame, or kOk.
  PushStatus push(const void* data, std::size_t bytes, std::int64_t pts_ns, TokenSink& sink) noexcept;
  // End of stream at end_ns (the last frame's end), or kNoTimestamp for one frame
  // interval after the last frame: delivers the tokens up to it, then resets.
  void drain(std::int64_t end_ns, TokenSink& sink) noexcept;
  void reset() noexcept;

  int dim() const;
  const VideoMotionParams& params() const;
  const VideoFormat& format() const;
  std::size_t frame_bytes() const;  // contiguous frame size for push(data, bytes, ...)
  std::int64_t latency_ns() const;  // one frame interval
  std::int64_t tokens() const;      // delivered since creation or reset()

 private:
  VideoMotionExtractor();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace nystream
