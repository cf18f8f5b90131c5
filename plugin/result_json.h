/* One Nystream result as the JSON line nymetaconvert writes and nymetapublish
 * sends (schema "nystream-results/1", gvametaconvert's shape). */
#ifndef NYSTREAM_PLUGIN_RESULT_JSON_H
#define NYSTREAM_PLUGIN_RESULT_JSON_H

#include <gst/gst.h>

#include <string>

#include "meta/gstnystreammeta.h"

/* The JSON shape's version: bump when a key changes meaning or disappears. */
#define NYSTREAM_RESULTS_SCHEMA "nystream-results/1"

/* Where a result was seen: the buffer's PTS (GST_CLOCK_TIME_NONE: null), the
 * "source" value, and the video frame size (0 x 0 for audio: no key). */
struct NyResultContext {
  GstClockTime timestamp;
  const char *source;
  int width, height;
};

/* Appends the result's line, without the newline, to out. */
void ny_result_json_append (std::string & out, const GstNystreamMeta & result,
    const NyResultContext & where);

/* The frame size a line reports: video caps' width and height, else 0 x 0. */
void ny_result_frame_size (GstCaps * caps, int *width, int *height);

/* The carrier buffer of a detector's final-results event (the results it
 * completed at EOS), or NULL for any other event. */
GstBuffer *ny_result_final_carrier (GstEvent * event);

#endif
