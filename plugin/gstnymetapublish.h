/* nymetapublish: passes buffers through untouched and publishes every Nystream
 * result on them (the JSON line nymetaconvert writes, plus "seq" and
 * "publisher") to an MQTT broker, Kafka or a file, like DL Streamer's
 * gvametapublish. The network is served by the publisher's own threads
 * (publisher.h): the streaming thread only formats and queues. */
#pragma once

#include <gst/base/gstbasetransform.h>

G_BEGIN_DECLS
#define GST_TYPE_NY_META_PUBLISH (gst_ny_meta_publish_get_type ())
G_DECLARE_FINAL_TYPE (GstNyMetaPublish, gst_ny_meta_publish, GST, NY_META_PUBLISH, GstBaseTransform)
GST_ELEMENT_REGISTER_DECLARE (nymetapublish);
G_END_DECLS
