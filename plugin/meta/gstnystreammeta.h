/* GstNystreamMeta: the result of one Nystream detector step, attached to the
 * buffer that completed the token (several per buffer when one buffer completes
 * several tokens; those completed at EOS: see GST_NYSTREAM_FINAL_RESULTS_EVENT).
 * Public C API for applications; link gstnystreammeta-1.0
 * (pkg-config) and call gst_nystream_meta_api_get_type() before use.
 *
 *   GstNystreamMeta *meta;
 *   gpointer state = NULL;
 *   while ((meta = (GstNystreamMeta *) gst_buffer_iterate_meta_filtered (buffer,
 *               &state, GST_NYSTREAM_META_API_TYPE)))
 *     g_print ("%s %.2f over %" GST_TIME_FORMAT "\n",
 *         meta->class_names[meta->label_id], meta->confidence,
 *         GST_TIME_ARGS (meta->start));
 *
 * Python (PyGObject) apps read the same result as a GstCustomMeta named
 * "NystreamResult": buffer.get_custom_meta("NystreamResult").get_structure().
 */
#ifndef __GST_NYSTREAM_META_H__
#define __GST_NYSTREAM_META_H__

#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_NYSTREAM_META_API_TYPE (gst_nystream_meta_api_get_type ())
#define GST_NYSTREAM_META_INFO (gst_nystream_meta_get_info ())
/* The GstCustomMeta (GStreamer >= 1.20) mirroring each result. */
#define GST_NYSTREAM_CUSTOM_META_NAME "NystreamResult"

/* The results a detector completes at EOS have no buffer after them to ride
 * on: it sends them before the EOS in a GST_EVENT_CUSTOM_DOWNSTREAM event of
 * this name, whose GST_TYPE_BUFFER field GST_NYSTREAM_FINAL_RESULTS_FIELD is an
 * empty carrier buffer with their metas (PTS: the first one's start,
 * DURATION: up to the last one's end). In a pad probe:
 *
 *   const GstStructure *s = gst_event_get_structure (event);
 *   if (GST_EVENT_TYPE (event) == GST_EVENT_CUSTOM_DOWNSTREAM &&
 *       gst_structure_has_name (s, GST_NYSTREAM_FINAL_RESULTS_EVENT))
 *     buffer = gst_value_get_buffer (gst_structure_get_value (s,
 *             GST_NYSTREAM_FINAL_RESULTS_FIELD));
 */
#define GST_NYSTREAM_FINAL_RESULTS_EVENT "nystream-final-results"
#define GST_NYSTREAM_FINAL_RESULTS_FIELD "buffer"

typedef struct _GstNystreamMeta GstNystreamMeta;

struct _GstNystreamMeta {
  GstMeta meta;

  gchar *model_name;        /* the model file's name */
  gchar *source;            /* the detector element's name */
  guint n_classes;
  gchar **class_names;      /* n_classes, NULL-terminated */
  gfloat *scores;           /* n_classes, activated (sigmoid or softmax) */
  guint label_id;           /* 0-based index of the top class */
  gfloat confidence;        /* scores[label_id] */
  gfloat threshold;         /* a class is active when its score >= threshold */
  guint n_active;
  guint *active;            /* ids of the active classes, n_active */
  guint64 token_index;      /* tokens since the stream (re)started, 0-based */
  GstClockTime start;       /* PTS range of the media the result describes */
  GstClockTime duration;
};

GType gst_nystream_meta_api_get_type (void);
const GstMetaInfo *gst_nystream_meta_get_info (void);

/* Copies every array. Returns the new meta (owned by the buffer). */
GstNystreamMeta *gst_buffer_add_nystream_meta (GstBuffer * buffer,
    const gchar * model_name, const gchar * source,
    const gchar * const *class_names, guint n_classes, const gfloat * scores,
    gfloat threshold, guint64 token_index, GstClockTime start,
    GstClockTime duration);

/* The strings every result of one detector shares (model name, source, class
 * names), reference-counted: a producer makes them once per stream and adds
 * results without allocating (scores of up to GST_NYSTREAM_META_INLINE_CLASSES
 * classes are stored in the meta itself). Copies of the meta share them too. */
typedef struct _GstNystreamLabels GstNystreamLabels;

#define GST_NYSTREAM_META_INLINE_CLASSES 32

GstNystreamLabels *gst_nystream_labels_new (const gchar * model_name,
    const gchar * source, const gchar * const *class_names, guint n_classes);
GstNystreamLabels *gst_nystream_labels_ref (GstNystreamLabels * labels);
void gst_nystream_labels_unref (GstNystreamLabels * labels);

/* As gst_buffer_add_nystream_meta, with labels->n_classes scores; takes a
 * reference to labels. */
GstNystreamMeta *gst_buffer_add_nystream_meta_with_labels (GstBuffer * buffer,
    GstNystreamLabels * labels, const gfloat * scores, gfloat threshold,
    guint64 token_index, GstClockTime start, GstClockTime duration);

/* The first Nystream meta on buffer, or NULL. */
#define gst_buffer_get_nystream_meta(b) \
  ((GstNystreamMeta *) gst_buffer_get_meta ((b), GST_NYSTREAM_META_API_TYPE))

/* Registers the "NystreamResult" custom meta (idempotent). */
void gst_nystream_custom_meta_register (void);

/* Adds a "NystreamResult" custom meta whose structure holds the same result:
 * model (string), source (string), label (string), label-id (uint),
 * confidence (float), threshold (float), token (guint64), start and duration
 * (GstClockTime as guint64), classes (GstValueArray of strings), scores
 * (GstValueArray of floats), active (GstValueArray of strings). */
void gst_buffer_add_nystream_custom_meta (GstBuffer * buffer,
    const GstNystreamMeta * result);

G_END_DECLS

#endif /* __GST_NYSTREAM_META_H__ */
