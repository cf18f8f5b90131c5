#include "gstnymetaconvert.h"

#include <gst/video/video.h>

#include <cstdio>
#include <string>

#include "meta/gstnystreammeta.h"
#include "result_json.h"

GST_DEBUG_CATEGORY_STATIC (gst_ny_meta_convert_debug);
#define GST_CAT_DEFAULT gst_ny_meta_convert_debug

#define DEFAULT_LOCATION "-"
#define DEFAULT_SOURCE nullptr
#define DEFAULT_APPEND FALSE

enum { PROP_0, PROP_LOCATION, PROP_SOURCE, PROP_APPEND };

struct _GstNyMetaConvert {
  GstBaseTransform parent;
  gchar *location;     /* GST_OBJECT_LOCK */
  gchar *source;       /* GST_OBJECT_LOCK */
  gboolean append;     /* GST_OBJECT_LOCK */
  FILE *out;           /* start() .. stop() */
  gchar *stream_id;    /* from STREAM_START */
  gint width, height;  /* video caps, 0 for audio */
  guint64 lines;
};

G_DEFINE_TYPE (GstNyMetaConvert, gst_ny_meta_convert, GST_TYPE_BASE_TRANSFORM);
GST_ELEMENT_REGISTER_DEFINE (nymetaconvert, "nymetaconvert", GST_RANK_NONE,
    GST_TYPE_NY_META_CONVERT);

static void
gst_ny_meta_convert_set_property (GObject * object, guint prop_id, const GValue * value,
    GParamSpec * pspec)
{
  GstNyMetaConvert *self = GST_NY_META_CONVERT (object);
  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_LOCATION:
      g_free (self->location);
      self->location = g_value_dup_string (value);
      break;
    case PROP_SOURCE:
      g_free (self->source);
      self->source = g_value_dup_string (value);
      break;
    case PROP_APPEND:
      self->append = g_value_get_boolean (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_ny_meta_convert_get_property (GObject * object, guint prop_id, GValue * value,
    GParamSpec * pspec)
{
  GstNyMetaConvert *self = GST_NY_META_CONVERT (object);
  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_LOCATION:
      g_value_set_string (value, self->location);
      break;
    case PROP_SOURCE:
      g_value_set_string (value, self->source);
      break;
    case PROP_APPEND:
      g_value_set_boolean (value, self->append);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static gboolean
gst_ny_meta_convert_start (GstBaseTransform * trans)
{
  GstNyMetaConvert *self = GST_NY_META_CONVERT (trans);
  GST_OBJECT_LOCK (self);
  std::string location = self->location ? self->location : DEFAULT_LOCATION;
  const gboolean append = self->append;
  GST_OBJECT_UNLOCK (self);
  if (location == "-") {
    self->out = stdout;
  } else {
    /* O_APPEND: every write lands at the end of the file, so converters in
     * several branches can share one file. Each buffer's lines go out in one
     * flush, one write() while they fit the stream buffer, and so stay whole. */
    self->out = std::fopen (location.c_str (), append ? "a" : "w");
    if (!self->out) {
      GST_ELEMENT_ERROR (self, RESOURCE, OPEN_WRITE, ("Could not open \"%s\" for writing.",
              location.c_str ()), GST_ERROR_SYSTEM);
      return FALSE;
    }
    std::setvbuf (self->out, nullptr, _IOFBF, 1 << 16);
  }
  self->lines = 0;
  return TRUE;
}

static gboolean
gst_ny_meta_convert_stop (GstBaseTransform * trans)
{
  GstNyMetaConvert *self = GST_NY_META_CONVERT (trans);
  if (self->out && self->out != stdout)
    std::fclose (self->out);
  else if (self->out)
    std::fflush (self->out);
  self->out = nullptr;
  g_clear_pointer (&self->stream_id, g_free);
  return TRUE;
}

static gboolean
gst_ny_meta_convert_set_caps (GstBaseTransform * trans, GstCaps * incaps, GstCaps * outcaps)
{
  GstNyMetaConvert *self = GST_NY_META_CONVERT (trans);
  (void) outcaps;
  GstVideoInfo info;
  const GstStructure *s = gst_caps_get_structure (incaps, 0);
  if (gst_structure_has_name (s, "video/x-raw") && gst_video_info_from_caps (&info, incaps)) {
    self->width = GST_VIDEO_INFO_WIDTH (&info);
    self->height = GST_VIDEO_INFO_HEIGHT (&info);
  } else {
    self->width = self->height = 0;
  }
  return TRUE;
}

/* One line per GstNystreamMeta on buf, then a flush: for each buffer and for
 * the carrier of the results the detector completed at EOS. */
static GstFlowReturn
gst_ny_meta_convert_write (GstNyMetaConvert * self, GstBuffer * buf)
{
  GST_OBJECT_LOCK (self);
  const std::string source = self->source ? self->source : (self->stream_id ? self->stream_id : "");
  GST_OBJECT_UNLOCK (self);

  const NyResultContext where = { GST_BUFFER_PTS (buf), source.c_str (), self->width,
    self->height };
  std::string text;
  gpointer state = nullptr;
  GstMeta *meta;
  while ((meta = gst_buffer_iterate_meta_filtered (buf, &state, GST_NYSTREAM_META_API_TYPE))) {
    const GstNystreamMeta *r = reinterpret_cast<const GstNystreamMeta *> (meta);
    text.clear ();
    ny_result_json_append (text, *r, where);
    if (std::fprintf (self->out, "%s\n", text.c_str ()) < 0) {
      GST_ELEMENT_ERROR (self, RESOURCE, WRITE, ("Could not write the results."),
          GST_ERROR_SYSTEM);
      return GST_FLOW_ERROR;
    }
    self->lines++;
  }
  std::fflush (self->out);
  return GST_FLOW_OK;
}

static GstFlowReturn
gst_ny_meta_convert_transform_ip (GstBaseTransform * trans, GstBuffer * buf)
{
  return gst_ny_meta_convert_write (GST_NY_META_CONVERT (trans), buf);
}

static gboolean
gst_ny_meta_convert_sink_event (GstBaseTransform * trans, GstEvent * event)
{
  GstNyMetaConvert *self = GST_NY_META_CONVERT (trans);
  if (GST_EVENT_TYPE (event) == GST_EVENT_STREAM_START) {
    const gchar *id = nullptr;
    gst_event_parse_stream_start (event, &id);
    g_free (self->stream_id);
    self->stream_id = g_strdup (id);
  } else if (GST_EVENT_TYPE (event) == GST_EVENT_CUSTOM_DOWNSTREAM && self->out &&
      gst_event_has_name (event, GST_NYSTREAM_FINAL_RESULTS_EVENT)) {
    /* Never a buffer of the stream: written here only. Forwarded below, for
     * converters further down (after another detector). */
    const GValue *carrier = gst_structure_get_value (gst_event_get_structure (event),
        GST_NYSTREAM_FINAL_RESULTS_FIELD);
    if (carrier && GST_VALUE_HOLDS_BUFFER (carrier))
      gst_ny_meta_convert_write (self, gst_value_get_buffer (carrier));
  } else if (GST_EVENT_TYPE (event) == GST_EVENT_EOS && self->out) {
    std::fflush (self->out);
  }
  return GST_BASE_TRANSFORM_CLASS (gst_ny_meta_convert_parent_class)->sink_event (trans, event);
}

static void
gst_ny_meta_convert_finalize (GObject * object)
{
  GstNyMetaConvert *self = GST_NY_META_CONVERT (object);
  g_free (self->location);
  g_free (self->source);
  g_free (self->stream_id);
  G_OBJECT_CLASS (gst_ny_meta_convert_parent_class)->finalize (object);
}

static void
gst_ny_meta_convert_class_init (GstNyMetaConvertClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstBaseTransformClass *trans_class = GST_BASE_TRANSFORM_CLASS (klass);

  GST_DEBUG_CATEGORY_INIT (gst_ny_meta_convert_debug, "nymetaconvert", 0,
      "Nystream results to JSON lines");
  gobject_class->set_property = gst_ny_meta_convert_set_property;
  gobject_class->get_property = gst_ny_meta_convert_get_property;
  gobject_class->finalize = gst_ny_meta_convert_finalize;

  g_object_class_install_property (gobject_class, PROP_LOCATION,
      g_param_spec_string ("location", "Location",
          "File the JSON lines are written to (\"-\": standard output)", DEFAULT_LOCATION,
          (GParamFlags) (G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
              GST_PARAM_MUTABLE_READY)));
  g_object_class_install_property (gobject_class, PROP_SOURCE,
      g_param_spec_string ("source", "Source",
          "Value of each line's \"source\" key (default: the stream id)", DEFAULT_SOURCE,
          (GParamFlags) (G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS)));
  g_object_class_install_property (gobject_class, PROP_APPEND,
      g_param_spec_boolean ("append", "Append",
          "Append to the file instead of truncating it; converters in several branches "
          "can then write one file (as filesink's append)", DEFAULT_APPEND,
          (GParamFlags) (G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
              GST_PARAM_MUTABLE_READY)));

  gst_element_class_add_pad_template (element_class, gst_pad_template_new ("sink",
          GST_PAD_SINK, GST_PAD_ALWAYS, gst_caps_new_any ()));
  gst_element_class_add_pad_template (element_class, gst_pad_template_new ("src",
          GST_PAD_SRC, GST_PAD_ALWAYS, gst_caps_new_any ()));
  gst_element_class_set_static_metadata (element_class, "Nystream results to JSON",
      "Filter/Converter/Metadata",
      "Writes one JSON line per Nystream result on the passing buffers and in the "
      "detectors' results event at EOS (gvametaconvert shape: timestamps, source, model, "
      "scores, events with their spans)",
      "Nystream developers");

  trans_class->start = GST_DEBUG_FUNCPTR (gst_ny_meta_convert_start);
  trans_class->stop = GST_DEBUG_FUNCPTR (gst_ny_meta_convert_stop);
  trans_class->set_caps = GST_DEBUG_FUNCPTR (gst_ny_meta_convert_set_caps);
  trans_class->sink_event = GST_DEBUG_FUNCPTR (gst_ny_meta_convert_sink_event);
  trans_class->transform_ip = GST_DEBUG_FUNCPTR (gst_ny_meta_convert_transform_ip);
  trans_class->transform_ip_on_passthrough = TRUE;
}

static void
gst_ny_meta_convert_init (GstNyMetaConvert * self)
{
  self->location = g_strdup (DEFAULT_LOCATION);
  gst_base_transform_set_passthrough (GST_BASE_TRANSFORM (self), TRUE);
}
