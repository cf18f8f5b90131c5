/* GstNyDetect: the base of the Nystream detectors (nyaudiodetect,
 * nyvideodetect). An in-place analyser: buffers pass unchanged and undelayed;
 * a subclass's front end turns them into feature tokens, the continual model
 * steps once per token, and each result is attached (GstNystreamMeta and its
 * GstCustomMeta mirror) to the buffer that completed the token and posted on
 * the bus like `level`. */
#pragma once

#include <gst/base/gstbasetransform.h>
#include <gst/gst.h>

#include <string>
#include <vector>

#include "frontend.h"
#include "nystream/model.h"

G_BEGIN_DECLS

#define GST_TYPE_NY_DETECT (gst_ny_detect_get_type ())
G_DECLARE_DERIVABLE_TYPE (GstNyDetect, gst_ny_detect, GST, NY_DETECT, GstBaseTransform)

struct _GstNyDetectClass {
  GstBaseTransformClass parent_class;

  /* The model's modality and feature extractor must be these. */
  const gchar *modality;
  const gchar *extractor;
  /* The shipped model used when 'model' is unset (a file name, searched for by
   * nystream::plugin::find_default_model). */
  const gchar *default_model;
  /* A front end for these caps and this model, or nullptr and *error (a
   * sentence a person can act on) when the caps cannot be used. */
  nystream::plugin::Frontend *(*create_frontend) (GstNyDetect * self, GstCaps * caps,
      const nystream::Model & model, std::string * error);
};

G_END_DECLS

namespace nystream::plugin {

/* Results a detector keeps for followers. */
constexpr guint kDetectHistoryLength = 256;

/* One result as another element (nyoverlay) reads it. */
struct DetectResult {
  GstClockTime running_time = GST_CLOCK_TIME_NONE;  /* start of the span it describes */
  GstClockTime duration = GST_CLOCK_TIME_NONE;
  std::vector<float> scores;
  std::vector<std::string> classes;
  float threshold = 0.5f;
};

/* The latest result of `detect` whose span starts at or before running_time,
 * and up to `history` earlier ones (oldest first) for timelines, written over
 * `out` (reuse it: no allocation once it has grown). False when there is none
 * yet (none since the last reset). Thread-safe. */
bool gst_ny_detect_results_at (GstNyDetect * detect, GstClockTime running_time, guint history,
    std::vector<DetectResult> * out);

}  // namespace nystream::plugin
