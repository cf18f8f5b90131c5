#include "gstnyvideodetect.h"

#include <gst/video/video.h>

#include "nystream/features/video_motion.h"

struct _GstNyVideoDetect {
  GstNyDetect parent;
};

G_DEFINE_TYPE (GstNyVideoDetect, gst_ny_video_detect, GST_TYPE_NY_DETECT);
GST_ELEMENT_REGISTER_DEFINE (nyvideodetect, "nyvideodetect", GST_RANK_NONE,
    GST_TYPE_NY_VIDEO_DETECT);

#define VIDEO_CAPS GST_VIDEO_CAPS_MAKE ("{ I420, YV12, NV12, NV21, RGB, BGR, RGBx, BGRx, " \
    "xRGB, xBGR, RGBA, BGRA, ARGB, ABGR, GRAY8 }")

namespace {

bool
pixel_format_of (GstVideoFormat format, nystream::PixelFormat * out)
{
  using nystream::PixelFormat;
  switch (format) {
    case GST_VIDEO_FORMAT_I420: *out = PixelFormat::kI420; return true;
    case GST_VIDEO_FORMAT_YV12: *out = PixelFormat::kYV12; return true;
    case GST_VIDEO_FORMAT_NV12: *out = PixelFormat::kNV12; return true;
    case GST_VIDEO_FORMAT_NV21: *out = PixelFormat::kNV21; return true;
    case GST_VIDEO_FORMAT_RGB: *out = PixelFormat::kRGB; return true;
    case GST_VIDEO_FORMAT_BGR: *out = PixelFormat::kBGR; return true;
    case GST_VIDEO_FORMAT_RGBx: *out = PixelFormat::kRGBx; return true;
    case GST_VIDEO_FORMAT_BGRx: *out = PixelFormat::kBGRx; return true;
    case GST_VIDEO_FORMAT_xRGB: *out = PixelFormat::kxRGB; return true;
    case GST_VIDEO_FORMAT_xBGR: *out = PixelFormat::kxBGR; return true;
    case GST_VIDEO_FORMAT_RGBA: *out = PixelFormat::kRGBA; return true;
    case GST_VIDEO_FORMAT_BGRA: *out = PixelFormat::kBGRA; return true;
    case GST_VIDEO_FORMAT_ARGB: *out = PixelFormat::kARGB; return true;
    case GST_VIDEO_FORMAT_ABGR: *out = PixelFormat::kABGR; return true;
    case GST_VIDEO_FORMAT_GRAY8: *out = PixelFormat::kGRAY8; return true;
    default: return false;
  }
}

class VideoFrontend : public nystream::plugin::Frontend {
 public:
  VideoFrontend (std::unique_ptr<nystream::VideoMotionExtractor> video, const GstVideoInfo & info)
      : video_ (std::move (video)), info_ (info) {}

  nystream::PushStatus push (GstBuffer * buffer, nystream::TokenSink & sink) override {
    GstVideoFrame frame;
    if (!gst_video_frame_map (&frame, &info_, buffer, GST_MAP_READ))
      return nystream::PushStatus::kBadSize;
    const std::uint8_t *planes[4] = { };
    int strides[4] = { };
    for (guint i = 0; i < GST_VIDEO_FRAME_N_PLANES (&frame); i++) {
      planes[i] = static_cast<const std::uint8_t *> (GST_VIDEO_FRAME_PLANE_DATA (&frame, i));
      strides[i] = GST_VIDEO_FRAME_PLANE_STRIDE (&frame, i);
    }
    const GstClockTime pts = GST_BUFFER_PTS (buffer);
    const nystream::PushStatus status = video_->push (planes, strides,
        GST_CLOCK_TIME_IS_VALID (pts) ? (std::int64_t) pts : nystream::kNoTimestamp, sink);
    gst_video_frame_unmap (&frame);
    if (GST_CLOCK_TIME_IS_VALID (pts) && GST_BUFFER_DURATION_IS_VALID (buffer))
      end_ = pts + GST_BUFFER_DURATION (buffer);
    else
      end_ = nystream::kNoTimestamp;
    return status;
  }
  void drain (nystream::TokenSink & sink) override {
    video_->drain (end_, sink);
    end_ = nystream::kNoTimestamp;
  }
  void reset () override {
    video_->reset ();
    end_ = nystream::kNoTimestamp;
  }
  std::int64_t latency_ns () const override { return video_->latency_ns (); }
  int dim () const override { return video_->dim (); }

 private:
  std::unique_ptr<nystream::VideoMotionExtractor> video_;
  GstVideoInfo info_;
  std::int64_t end_ = nystream::kNoTimestamp;  /* end of the last frame, for drain */
};

nystream::plugin::Frontend *
create_video_frontend (GstNyDetect * self, GstCaps * caps, const nystream::Model & model,
    std::string * error)
{
  (void) self;
  GstVideoInfo info;
  if (!gst_video_info_from_caps (&info, caps)) {
    *error = "not raw video caps";
    return nullptr;
  }
  nystream::VideoFormat format;
  if (!pixel_format_of (GST_VIDEO_INFO_FORMAT (&info), &format.format)) {
    *error = std::string ("pixel format ") +
        gst_video_format_to_string (GST_VIDEO_INFO_FORMAT (&info)) +
        " is not supported (put videoconvert in front)";
    return nullptr;
  }
  format.width = GST_VIDEO_INFO_WIDTH (&info);
  format.height = GST_VIDEO_INFO_HEIGHT (&info);
  if (GST_VIDEO_INFO_FPS_N (&info) > 0) {
    format.fps_n = GST_VIDEO_INFO_FPS_N (&info);
    format.fps_d = GST_VIDEO_INFO_FPS_D (&info);
  }
  nystream::VideoMotionParams params;
  if (!nystream::VideoMotionParams::parse (model.info ().feature_params, &params, error)) {
    *error = "the model's video-motion parameters: " + *error;
    return nullptr;
  }
  auto video = nystream::VideoMotionExtractor::create (params, format, error);
  return video ? new VideoFrontend (std::move (video), info) : nullptr;
}

}  // namespace

static void
gst_ny_video_detect_class_init (GstNyVideoDetectClass * klass)
{
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstNyDetectClass *detect_class = GST_NY_DETECT_CLASS (klass);

  gst_element_class_add_pad_template (element_class, gst_pad_template_new ("sink",
          GST_PAD_SINK, GST_PAD_ALWAYS, gst_caps_from_string (VIDEO_CAPS)));
  gst_element_class_add_pad_template (element_class, gst_pad_template_new ("src",
          GST_PAD_SRC, GST_PAD_ALWAYS, gst_caps_from_string (VIDEO_CAPS)));
  gst_element_class_set_static_metadata (element_class, "Nystream video detector",
      "Filter/Analyzer/Video",
      "Detects actions (walking, approaching, jumping, waving, falling, ...) frame by frame "
      "with a continual Nystrom transformer; attaches GstNystreamMeta to buffers and posts "
      "element messages", "Nystream developers");
  detect_class->modality = "video";
  detect_class->extractor = "video-motion";
  detect_class->default_model = "video-actions.safetensors";
  detect_class->create_frontend = create_video_frontend;
}

static void
gst_ny_video_detect_init (GstNyVideoDetect * self)
{
  (void) self;
}
