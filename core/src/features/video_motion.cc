// The video-motion front end (see video_motion.h for the timing contract).
#include "nystream/features/video_motion.h"

#include <algorithm>
#include <cstring>
#include <vector>

extern "C" {
#include <libavutil/imgutils.h>
#include <libavutil/mathematics.h>
#include <libavutil/mem.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>
}

#include "motion_descriptor.h"

namespace nystream {
namespace {

AVPixelFormat to_av(PixelFormat f) {
  switch (f) {
    case PixelFormat::kI420: return AV_PIX_FMT_YUV420P;
    case PixelFormat::kYV12: return AV_PIX_FMT_YUV420P;  // planes 1 and 2 swapped on push
    case PixelFormat::kNV12: return AV_PIX_FMT_NV12;
    case PixelFormat::kNV21: return AV_PIX_FMT_NV21;
    case PixelFormat::kRGB: return AV_PIX_FMT_RGB24;
    case PixelFormat::kBGR: return AV_PIX_FMT_BGR24;
    case PixelFormat::kRGBx: return AV_PIX_FMT_RGB0;
    case PixelFormat::kBGRx: return AV_PIX_FMT_BGR0;
    case PixelFormat::kxRGB: return AV_PIX_FMT_0RGB;
    case PixelFormat::kxBGR: return AV_PIX_FMT_0BGR;
    case PixelFormat::kRGBA: return AV_PIX_FMT_RGBA;
    case PixelFormat::kBGRA: return AV_PIX_FMT_BGRA;
    case PixelFormat::kARGB: return AV_PIX_FMT_ARGB;
    case PixelFormat::kABGR: return AV_PIX_FMT_ABGR;
    case PixelFormat::kGRAY8: return AV_PIX_FMT_GRAY8;
  }
  return AV_PIX_FMT_NONE;
}

// A number past this libavutil's formats is no AVPixelFormat (casting it to the
// enum is undefined behaviour): it is an unknown format.
AVPixelFormat av_format_of(const VideoFormat& f) {
  if (f.ffmpeg_pixel_format < 0) return to_av(f.format);
  return f.ffmpeg_pixel_format < AV_PIX_FMT_NB ? static_cast<AVPixelFormat>(f.ffmpeg_pixel_format)
                                               : AV_PIX_FMT_NONE;
}

}  // namespace

const char* to_string(PixelFormat f) {
  static const char* names[] = {"I420", "YV12", "NV12", "NV21", "RGB",  "BGR",  "RGBx", "BGRx",
                                "xRGB", "xBGR", "RGBA", "BGRA", "ARGB", "ABGR", "GRAY8"};
  const int i = static_cast<int>(f);
  return i >= 0 && i < static_cast<int>(sizeof names / sizeof *names) ? names[i] : "unknown";
}

std::string VideoFormat::validate() const {
  if (width < 1 || width > 16384 || height < 1 || height > 16384)
    return "video size " + std::to_string(width) + "x" + std::to_string(height) + " is outside 1..16384";
  if (fps_n <= 0 || fps_d <= 0) return "video frame rate must be positive";
  const AVPixelFormat f = av_format_of(*this);
  if (f == AV_PIX_FMT_NONE || !av_pix_fmt_desc_get(f)) return "unknown pixel format";
  if (!sws_isSupportedInput(f))
    return std::string("libswscale cannot read pixel format ") + av_get_pix_fmt_name(f);
  return {};
}

struct VideoMotionExtractor::Impl {
  VideoMotionParams params;
  VideoFormat format;
  AVPixelFormat av_format = AV_PIX_FMT_NONE;
  bool configured = false;
  SwsContext* sws = nullptr;
  int stride = 0;                  // analysis image row pitch (aligned for swscale)
  std::uint8_t* held = nullptr;    // the newest frame, scaled
  std::uint8_t* previous = nullptr;  // the previous token's frame
  // long_baseline > 0: the last long_baseline tokens' frames, a ring; once full,
  // slot history_next is the frame long_baseline tokens before the next token.
  std::uint8_t* history = nullptr;
  int history_next = 0, history_count = 0;
  std::vector<float> token;
  std::unique_ptr<detail::MotionDescriptor> descriptor;
  std::unique_ptr<detail::MotionDescriptor> long_descriptor;
  std::size_t frame_bytes = 0;
  std::int64_t frame_interval_ns = 0;
  std::int64_t token_ns_num = 1000000000;  // token k at origin + k * 1e9 / token_rate

  bool have_held = false, have_previous = false;
  std::int64_t held_pts = 0;
  std::int64_t origin_ns = 0, next_origin_ns = 0;
  std::int64_t next_token = 0;  // index of the next token to deliver

  ~Impl() {
    sws_freeContext(sws);
    av_free(held);
    av_free(previous);
    av_free(history);
  }

  std::size_t image_bytes() const { return static_cast<std::size_t>(stride) * params.analysis_height; }

  std::int64_t token_time(std::int64_t k) const { return origin_ns + av_rescale(k, 1000000000, params.token_rate); }

  std::string setup(const VideoFormat& f) {
    configured = false;
    sws_freeContext(sws);
    sws = nullptr;
    if (std::string e = f.validate(); !e.empty()) return "video-motion: " + e;
    format = f;
    av_format = av_format_of(f);
    // Area averaging: the 10x downscale must not alias fine texture into motion.
    sws = sws_getContext(f.width, f.height, av_format, params.analysis_width, params.analysis_height,
                         AV_PIX_FMT_GRAY8, SWS_AREA, nullptr, nullptr, nullptr);
    if (!sws) return "video-motion: libswscale cannot scale this format and size";
    stride = FFALIGN(params.analysis_width, 64);
    av_free(held);
    av_free(previous);
    av_free(history);
    held = static_cast<std::uint8_t*>(av_mallocz(image_bytes()));
    previous = static_cast<std::uint8_t*>(av_mallocz(image_bytes()));
    history = params.long_baseline > 0
                  ? static_cast<std::uint8_t*>(av_mallocz(image_bytes() * params.long_baseline))
                  : nullptr;
    token.assign(params.dim(), 0.0f);
    descriptor = std::make_unique<detail::MotionDescriptor>(params, stride);
    long_descriptor = params.long_baseline > 0
                          ? std::make_unique<detail::MotionDescriptor>(params.long_baseline_params(), stride)
                          : nullptr;
    const int size = av_image_get_buffer_size(av_format, f.width, f.height, 4);
    if (size < 0) return "video-motion: cannot compute the frame size";
    frame_bytes = static_cast<std::size_t>(size);
    frame_interval_ns = av_rescale(1000000000, f.fps_d, f.fps_n);
    configured = true;
    clear();
    next_origin_ns = 0;
    return {};
  }

  void clear() noexcept {
    have_held = have_previous = false;
    next_token = 0;
    history_next = history_count = 0;
    if (descriptor) descriptor->reset();
    if (long_descriptor) long_descriptor->reset();
  }

  // The stem part (stem_width > 0): the held frame's block means, then their
  // difference to the previous token's frame's (zero without one).
  void stem_part(float* out) noexcept {
    const int W = params.analysis_width, H = params.analysis_height;
    const int sw = params.stem_width, sh = params.stem_height, n = sw * sh;
    float* diff = out + n;
    detail::block_means(held, stride, W, H, sw, sh, out);
    if (!have_previous) {
      std::fill(diff, diff + n, 0.0f);
      return;
    }
    detail::block_means(previous, stride, W, H, sw, sh, diff);
    for (int i = 0; i < n; ++i) diff[i] = out[i] - diff[i];
  }

  void emit(TokenSink& sink) noexcept {
    float* long_part = token.data() + params.dim() - params.stem_dim() - params.long_dim();
    descriptor->compute(held, have_previous ? previous : nullptr, token.data());
    if (params.stem_dim()) stem_part(long_part + params.long_dim());
    std::memcpy(previous, held, image_bytes());
    have_previous = true;
    if (long_descriptor) {
      std::uint8_t* slot = history + image_bytes() * history_next;
      long_descriptor->compute_motion_parts(held, history_count == params.long_baseline ? slot : nullptr,
                                            long_part);
      std::memcpy(slot, held, image_bytes());
      history_next = (history_next + 1) % params.long_baseline;
      history_count = std::min(history_count + 1, params.long_baseline);
    }
    TokenSpan span;
    span.index = next_token;
    span.start_ns = token_time(next_token);
    span.end_ns = token_time(next_token + 1);
    ++next_token;
    sink.on_token(token.data(), static_cast<int>(token.size()), span);
  }
};

VideoMotionExtractor::VideoMotionExtractor() : impl_(std::make_unique<Impl>()) {}
VideoMotionExtractor::~VideoMotionExtractor() = default;

std::unique_ptr<VideoMotionExtractor> VideoMotionExtractor::create(const VideoMotionParams& params,
                                                                   const VideoFormat& format, std::string* error) {
  if (std::string e = params.validate(); !e.empty()) {
    *error = "video-motion: " + e;
    return nullptr;
  }
  std::unique_ptr<VideoMotionExtractor> x(new VideoMotionExtractor());
  x->impl_->params = params;
  if (std::string e = x->impl_->setup(format); !e.empty()) {
    *error = e;
    return nullptr;
  }
  return x;
}

std::string VideoMotionExtractor::configure(const VideoFormat& format) { return impl_->setup(format); }

PushStatus VideoMotionExtractor::push(const std::uint8_t* const planes[4], const int strides[4], std::int64_t pts_ns,
                                      TokenSink& sink) noexcept {
  Impl& s = *impl_;
  if (!s.configured) return PushStatus::kNotConfigured;
  if (!planes || !strides || !planes[0]) return PushStatus::kEmpty;
  if (pts_ns == kNoTimestamp) pts_ns = s.have_held ? s.held_pts + s.frame_interval_ns : s.next_origin_ns;
  if (s.have_held && pts_ns <= s.held_pts) return PushStatus::kOutOfOrder;
  if (!s.have_held && !s.have_previous && s.next_token == 0) s.origin_ns = pts_ns;
  // Tokens whose time has passed are shown by the held frame.
  const std::int64_t tolerance = s.params.timestamp_tolerance_ns;
  while (s.have_held && s.token_time(s.next_token) + tolerance < pts_ns) s.emit(sink);

  const std::uint8_t* src[4] = {planes[0], planes[1], planes[2], planes[3]};
  int src_strides[4] = {strides[0], strides[1], strides[2], strides[3]};
  if (s.format.ffmpeg_pixel_format < 0 && s.format.format == PixelFormat::kYV12) {
    std::swap(src[1], src[2]);
    std::swap(src_strides[1], src_strides[2]);
  }
  std::uint8_t* dst[4] = {s.held, nullptr, nullptr, nullptr};
  int dst_strides[4] = {s.stride, 0, 0, 0};
  sws_scale(s.sws, src, src_strides, 0, s.format.height, dst, dst_strides);
  s.have_held = true;
  s.held_pts = pts_ns;
  return PushStatus::kOk;
}

PushStatus VideoMotionExtractor::push(const void* data, std::size_t bytes, std::int64_t pts_ns,
                                      TokenSink& sink) noexcept {
  Impl& s = *impl_;
  if (!s.configured) return PushStatus::kNotConfigured;
  if (!data || bytes == 0) return PushStatus::kEmpty;
  if (bytes % s.frame_bytes != 0) return PushStatus::kBadSize;
  const std::size_t count = bytes / s.frame_bytes;
  const auto* frame = static_cast<const std::uint8_t*>(data);
  PushStatus status = PushStatus::kOk;
  for (std::size_t i = 0; i < count; ++i, frame += s.frame_bytes) {
    std::uint8_t* planes[4] = {nullptr, nullptr, nullptr, nullptr};
    int strides[4] = {0, 0, 0, 0};
    av_image_fill_arrays(planes, strides, frame, s.av_format, s.format.width, s.format.height, 4);
    // Frames after the first are one frame interval apart.
    const std::int64_t pts = pts_ns == kNoTimestamp ? kNoTimestamp
                                                    : pts_ns + av_rescale(static_cast<std::int64_t>(i) * s.format.fps_d, 1000000000, s.format.fps_n);
    const PushStatus one = push(planes, strides, pts, sink);
    if (one != PushStatus::kOk) status = one;
  }
  return status;
}

void VideoMotionExtractor::drain(std::int64_t end_ns, TokenSink& sink) noexcept {
  Impl& s = *impl_;
  if (!s.configured || !s.have_held) return;
  if (end_ns == kNoTimestamp || end_ns <= s.held_pts) end_ns = s.held_pts + s.frame_interval_ns;
  while (s.token_time(s.next_token) < end_ns) s.emit(sink);
  s.clear();
  s.next_origin_ns = end_ns;
}

void VideoMotionExtractor::reset() noexcept {
  impl_->clear();
  impl_->next_origin_ns = 0;
}

int VideoMotionExtractor::dim() const { return impl_->params.dim(); }
const VideoMotionParams& VideoMotionExtractor::params() const { return impl_->params; }
const VideoFormat& VideoMotionExtractor::format() const { return impl_->format; }
std::size_t VideoMotionExtractor::frame_bytes() const { return impl_->frame_bytes; }
std::int64_t VideoMotionExtractor::latency_ns() const { return impl_->frame_interval_ns; }
std::int64_t VideoMotionExtractor::tokens() const { return impl_->next_token; }

}  // namespace nystream
