/* nymetaconvert: passes buffers through untouched and writes one JSON line per
 * Nystream result found on them (GstNystreamMeta), shaped like DL Streamer's
 * gvametaconvert output, to a file or stdout. */
#pragma once

#include <gst/base/gstbasetransform.h>

G_BEGIN_DECLS
#define GST_TYPE_NY_META_CONVERT (gst_ny_meta_convert_get_type ())
G_DECLARE_FINAL_TYPE (GstNyMetaConvert, gst_ny_meta_convert, GST, NY_META_CONVERT, GstBaseTransform)
GST_ELEMENT_REGISTER_DECLARE (nymetaconvert);
G_END_DECLS
