/* nyvideodetect: online action detection with a continual Nyström transformer
 * over appearance + motion tokens. */
#pragma once

#include "gstnydetect.h"

G_BEGIN_DECLS
#define GST_TYPE_NY_VIDEO_DETECT (gst_ny_video_detect_get_type ())
G_DECLARE_FINAL_TYPE (GstNyVideoDetect, gst_ny_video_detect, GST, NY_VIDEO_DETECT, GstNyDetect)
GST_ELEMENT_REGISTER_DECLARE (nyvideodetect);
G_END_DECLS
