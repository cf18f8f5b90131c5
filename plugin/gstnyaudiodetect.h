/* nyaudiodetect: audio event detection with a continual Nyström transformer
 * over log-mel tokens. */
#pragma once

#include "gstnydetect.h"

G_BEGIN_DECLS
#define GST_TYPE_NY_AUDIO_DETECT (gst_ny_audio_detect_get_type ())
G_DECLARE_FINAL_TYPE (GstNyAudioDetect, gst_ny_audio_detect, GST, NY_AUDIO_DETECT, GstNyDetect)
GST_ELEMENT_REGISTER_DECLARE (nyaudiodetect);
G_END_DECLS
