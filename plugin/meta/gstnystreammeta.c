#include "gstnystreammeta.h"

#include <string.h>

struct _GstNystreamLabels {
  gint refcount;
  gchar *model_name;
  gchar *source;
  guint n_classes;
  gchar **class_names;
};

/* The registered meta: the public struct, then what its pointers point to. */
typedef struct {
  GstNystreamMeta result;
  GstNystreamLabels *labels;
  gfloat scores[GST_NYSTREAM_META_INLINE_CLASSES];
  guint active[GST_NYSTREAM_META_INLINE_CLASSES];
} NystreamMetaStorage;

GstNystreamLabels *
gst_nystream_labels_new (const gchar * model_name, const gchar * source,
    const gchar * const *class_names, guint n_classes)
{
  GstNystreamLabels *labels = g_new0 (GstNystreamLabels, 1);
  guint i;

  labels->refcount = 1;
  labels->model_name = g_strdup (model_name ? model_name : "");
  labels->source = g_strdup (source ? source : "");
  labels->n_classes = n_classes;
  labels->class_names = g_new0 (gchar *, n_classes + 1);
  for (i = 0; i < n_classes; i++)
    labels->class_names[i] = g_strdup (class_names[i]);
  return labels;
}

GstNystreamLabels *
gst_nystream_labels_ref (GstNystreamLabels * labels)
{
  g_atomic_int_inc (&labels->refcount);
  return labels;
}

void
gst_nystream_labels_unref (GstNystreamLabels * labels)
{
  if (!labels || !g_atomic_int_dec_and_test (&labels->refcount))
    return;
  g_free (labels->model_name);
  g_free (labels->source);
  g_strfreev (labels->class_names);
  g_free (labels);
}

static gboolean
nystream_meta_init (GstMeta * meta, gpointer params, GstBuffer * buffer)
{
  NystreamMetaStorage *storage = (NystreamMetaStorage *) meta;
  GstNystreamMeta *m = &storage->result;
  storage->labels = NULL;
  m->model_name = NULL;
  m->source = NULL;
  m->n_classes = 0;
  m->class_names = NULL;
  m->scores = NULL;
  m->label_id = 0;
  m->confidence = 0.0f;
  m->threshold = 0.0f;
  m->n_active = 0;
  m->active = NULL;
  m->token_index = 0;
  m->start = GST_CLOCK_TIME_NONE;
  m->duration = GST_CLOCK_TIME_NONE;
  return TRUE;
}

static void
nystream_meta_free (GstMeta * meta, GstBuffer * buffer)
{
  NystreamMetaStorage *storage = (NystreamMetaStorage *) meta;
  if (storage->result.scores != storage->scores)
    g_free (storage->result.scores);
  if (storage->result.active != storage->active)
    g_free (storage->result.active);
  gst_nystream_labels_unref (storage->labels);
}

static void
nystream_meta_fill (NystreamMetaStorage * storage, GstNystreamLabels * labels,
    const gfloat * scores, gfloat threshold, guint64 token_index,
    GstClockTime start, GstClockTime duration)
{
  GstNystreamMeta *m = &storage->result;
  const guint n_classes = labels->n_classes;
  guint i;

  storage->labels = gst_nystream_labels_ref (labels);
  m->model_name = labels->model_name;
  m->source = labels->source;
  m->n_classes = n_classes;
  m->class_names = labels->class_names;
  if (n_classes <= GST_NYSTREAM_META_INLINE_CLASSES) {
    m->scores = storage->scores;
    m->active = storage->active;
  } else {
    m->scores = g_new (gfloat, n_classes);
    m->active = g_new (guint, n_classes);
  }
  memcpy (m->scores, scores, n_classes * sizeof (gfloat));
  m->label_id = 0;
  for (i = 1; i < n_classes; i++)
    if (scores[i] > scores[m->label_id])
      m->label_id = i;
  m->confidence = n_classes ? scores[m->label_id] : 0.0f;
  m->threshold = threshold;
  m->n_active = 0;
  for (i = 0; i < n_classes; i++)
    if (scores[i] >= threshold)
      m->active[m->n_active++] = i;
  m->token_index = token_index;
  m->start = start;
  m->duration = duration;
}

static gboolean
nystream_meta_transform (GstBuffer * dest, GstMeta * meta, GstBuffer * buffer,
    GQuark type, gpointer data)
{
  NystreamMetaStorage *m = (NystreamMetaStorage *) meta;
  /* A copy, a region or a conversion of the buffer describes the same media
   * time, so the result stays valid: copy it whatever the transform. */
  return gst_buffer_add_nystream_meta_with_labels (dest, m->labels,
      m->result.scores, m->result.threshold, m->result.token_index,
      m->result.start, m->result.duration) != NULL;
}

GType
gst_nystream_meta_api_get_type (void)
{
  static GType type = 0;
  /* No tags: audioconvert, audioresample and videoconvert keep tagless metas. */
  static const gchar *tags[] = { NULL };

  if (g_once_init_enter (&type)) {
    GType t = gst_meta_api_type_register ("GstNystreamMetaAPI", tags);
    g_once_init_leave (&type, t);
  }
  return type;
}

const GstMetaInfo *
gst_nystream_meta_get_info (void)
{
  static const GstMetaInfo *info = NULL;

  if (g_once_init_enter ((GstMetaInfo **) & info)) {
    const GstMetaInfo *i = gst_meta_register (GST_NYSTREAM_META_API_TYPE,
        "GstNystreamMeta", sizeof (NystreamMetaStorage), nystream_meta_init,
        nystream_meta_free, nystream_meta_transform);
    g_once_init_leave ((GstMetaInfo **) & info, (GstMetaInfo *) i);
  }
  return info;
}

GstNystreamMeta *
gst_buffer_add_nystream_meta_with_labels (GstBuffer * buffer,
    GstNystreamLabels * labels, const gfloat * scores, gfloat threshold,
    guint64 token_index, GstClockTime start, GstClockTime duration)
{
  NystreamMetaStorage *m;

  g_return_val_if_fail (GST_IS_BUFFER (buffer), NULL);
  g_return_val_if_fail (gst_buffer_is_writable (buffer), NULL);
  g_return_val_if_fail (labels != NULL, NULL);

  m = (NystreamMetaStorage *) gst_buffer_add_meta (buffer,
      GST_NYSTREAM_META_INFO, NULL);
  if (!m)
    return NULL;
  nystream_meta_fill (m, labels, scores, threshold, token_index, start,
      duration);
  return &m->result;
}

GstNystreamMeta *
gst_buffer_add_nystream_meta (GstBuffer * buffer, const gchar * model_name,
    const gchar * source, const gchar * const *class_names, guint n_classes,
    const gfloat * scores, gfloat threshold, guint64 token_index,
    GstClockTime start, GstClockTime duration)
{
  GstNystreamLabels *labels;
  GstNystreamMeta *m;

  g_return_val_if_fail (GST_IS_BUFFER (buffer), NULL);
  labels = gst_nystream_labels_new (model_name, source, class_names, n_classes);
  m = gst_buffer_add_nystream_meta_with_labels (buffer, labels, scores,
      threshold, token_index, start, duration);
  gst_nystream_labels_unref (labels);
  return m;
}

void
gst_nystream_custom_meta_register (void)
{
  static gsize done = 0;
  static const gchar *tags[] = { NULL };

  if (g_once_init_enter (&done)) {
    gst_meta_register_custom (GST_NYSTREAM_CUSTOM_META_NAME, tags, NULL, NULL,
        NULL);
    g_once_init_leave (&done, 1);
  }
}

void
gst_buffer_add_nystream_custom_meta (GstBuffer * buffer,
    const GstNystreamMeta * r)
{
  GstCustomMeta *custom;
  GstStructure *s;
  GValue classes = G_VALUE_INIT, scores = G_VALUE_INIT, active = G_VALUE_INIT;
  GValue item = G_VALUE_INIT;
  guint i;

  gst_nystream_custom_meta_register ();
  custom = gst_buffer_add_custom_meta (buffer, GST_NYSTREAM_CUSTOM_META_NAME);
  if (!custom)
    return;
  s = gst_custom_meta_get_structure (custom);
  gst_structure_set (s,
      "model", G_TYPE_STRING, r->model_name,
      "source", G_TYPE_STRING, r->source,
      "label", G_TYPE_STRING, r->n_classes ? r->class_names[r->label_id] : "",
      "label-id", G_TYPE_UINT, r->label_id,
      "confidence", G_TYPE_FLOAT, r->confidence,
      "threshold", G_TYPE_FLOAT, r->threshold,
      "token", G_TYPE_UINT64, r->token_index,
      "start", G_TYPE_UINT64, (guint64) r->start,
      "duration", G_TYPE_UINT64, (guint64) r->duration, NULL);

  gst_value_array_init (&classes, r->n_classes);
  gst_value_array_init (&scores, r->n_classes);
  gst_value_array_init (&active, r->n_active);
  for (i = 0; i < r->n_classes; i++) {
    g_value_init (&item, G_TYPE_STRING);
    g_value_set_string (&item, r->class_names[i]);
    gst_value_array_append_and_take_value (&classes, &item);
    g_value_init (&item, G_TYPE_FLOAT);
    g_value_set_float (&item, r->scores[i]);
    gst_value_array_append_and_take_value (&scores, &item);
  }
  for (i = 0; i < r->n_active; i++) {
    g_value_init (&item, G_TYPE_STRING);
    g_value_set_string (&item, r->class_names[r->active[i]]);
    gst_value_array_append_and_take_value (&active, &item);
  }
  gst_structure_take_value (s, "classes", &classes);
  gst_structure_take_value (s, "scores", &scores);
  gst_structure_take_value (s, "active", &active);
}
