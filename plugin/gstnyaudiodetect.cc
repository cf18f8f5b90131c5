#include "gstnyaudiodetect.h"

#include <gst/audio/audio.h>

#include "nystream/features/log_mel.h"

struct _GstNyAudioDetect {
  GstNyDetect parent;
};

G_DEFINE_TYPE (GstNyAudioDetect, gst_ny_audio_detect, GST_TYPE_NY_DETECT);
GST_ELEMENT_REGISTER_DEFINE (nyaudiodetect, "nyaudiodetect", GST_RANK_NONE,
    GST_TYPE_NY_AUDIO_DETECT);

/* What libswresample takes directly: any rate and channel count, so a user
 * needs no audioconvert/audioresample in the common cases. */
#define AUDIO_CAPS \
  "audio/x-raw, format = (string) { F32LE, S16LE }, rate = (int) [ 1000, 384000 ], " \
  "channels = (int) [ 1, 64 ], layout = (string) interleaved"

namespace {

class AudioFrontend : public nystream::plugin::Frontend {
 public:
  explicit AudioFrontend (std::unique_ptr<nystream::LogMelExtractor> mel) : mel_ (std::move (mel)) {}

  nystream::PushStatus push (GstBuffer * buffer, nystream::TokenSink & sink) override {
    GstMapInfo map;
    if (!gst_buffer_map (buffer, &map, GST_MAP_READ))
      return nystream::PushStatus::kEmpty;
    const GstClockTime pts = GST_BUFFER_PTS (buffer);
    const nystream::PushStatus status = mel_->push (map.data, map.size,
        GST_CLOCK_TIME_IS_VALID (pts) ? (std::int64_t) pts : nystream::kNoTimestamp, sink);
    gst_buffer_unmap (buffer, &map);
    return status;
  }
  void drain (nystream::TokenSink & sink) override { mel_->drain (sink); }
  void reset () override { mel_->reset (); }
  std::int64_t latency_ns () const override { return mel_->latency_ns (); }
  int dim () const override { return mel_->dim (); }

 private:
  std::unique_ptr<nystream::LogMelExtractor> mel_;
};

nystream::plugin::Frontend *
create_audio_frontend (GstNyDetect * self, GstCaps * caps, const nystream::Model & model,
    std::string * error)
{
  (void) self;
  GstAudioInfo info;
  if (!gst_audio_info_from_caps (&info, caps)) {
    *error = "not raw audio caps";
    return nullptr;
  }
  nystream::AudioFormat format;
  format.rate = GST_AUDIO_INFO_RATE (&info);
  format.channels = GST_AUDIO_INFO_CHANNELS (&info);
  switch (GST_AUDIO_INFO_FORMAT (&info)) {
    case GST_AUDIO_FORMAT_F32LE:
      format.format = nystream::SampleFormat::kF32;
      break;
    case GST_AUDIO_FORMAT_S16LE:
      format.format = nystream::SampleFormat::kS16;
      break;
    default:
      *error = "sample format must be F32LE or S16LE (put audioconvert in front)";
      return nullptr;
  }
  nystream::LogMelParams params;
  if (!nystream::LogMelParams::parse (model.info ().feature_params, &params, error)) {
    *error = "the model's log-mel parameters: " + *error;
    return nullptr;
  }
  auto mel = nystream::LogMelExtractor::create (params, format, error);
  return mel ? new AudioFrontend (std::move (mel)) : nullptr;
}

}  // namespace

static void
gst_ny_audio_detect_class_init (GstNyAudioDetectClass * klass)
{
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstNyDetectClass *detect_class = GST_NY_DETECT_CLASS (klass);

  gst_element_class_add_pad_template (element_class, gst_pad_template_new ("sink",
          GST_PAD_SINK, GST_PAD_ALWAYS, gst_caps_from_string (AUDIO_CAPS)));
  gst_element_class_add_pad_template (element_class, gst_pad_template_new ("src",
          GST_PAD_SRC, GST_PAD_ALWAYS, gst_caps_from_string (AUDIO_CAPS)));
  gst_element_class_set_static_metadata (element_class, "Nystream audio detector",
      "Filter/Analyzer/Audio",
      "Detects audio events (speech, music, alarms, ...) token by token with a continual "
      "Nystrom transformer; attaches GstNystreamMeta to buffers and posts element messages",
      "Nystream developers");
  detect_class->modality = "audio";
  detect_class->extractor = "log-mel";
  detect_class->default_model = "audio-events.safetensors";
  detect_class->create_frontend = create_audio_frontend;
}

static void
gst_ny_audio_detect_init (GstNyAudioDetect * self)
{
  (void) self;
}
