#include "gstnymetaconvert.h"


#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
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
  int fd;              /* start() .. stop(), -1 when closed */
  std::string *path;   /* what fd is, for error messages */
  std::string *lines_buffer;   /* whole lines not yet written */
  gint64 last_write_us;        /* monotonic */
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

/* Lines are written in whole-line chunks by write(2): with O_APPEND each
 * chunk lands at the end of the file in one piece, so converters in several
 * branches can share one file without cutting each other's lines. */
#define WRITE_CHUNK (1 << 16)
/* Lines reach the file at least this often, for readers that follow it live. */
#define WRITE_INTERVAL_US G_USEC_PER_SEC

/* Writes everything buffered. FALSE (after posting the error) on a failed
 * write: results would be lost, which is an error, not a warning. */
static gboolean
gst_ny_meta_convert_write_buffered (GstNyMetaConvert * self)
{
  std::string & pending = *self->lines_buffer;
  std::size_t done = 0;
  while (done < pending.size ()) {
    const ssize_t n = write (self->fd, pending.data () + done, pending.size () - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      GST_ELEMENT_ERROR (self, RESOURCE, WRITE, ("Could not write the results to \"%s\".",
              self->path->c_str ()), GST_ERROR_SYSTEM);
      pending.clear ();
      return FALSE;
    }
    done += n;
  }
  pending.clear ();
  self->last_write_us = g_get_monotonic_time ();
  return TRUE;
}

static gboolean
gst_ny_meta_convert_start (GstBaseTransform * trans)
{
  GstNyMetaConvert *self = GST_NY_META_CONVERT (trans);
  GST_OBJECT_LOCK (self);
  *self->path = self->location ? self->location : DEFAULT_LOCATION;
  const gboolean append = self->append;
  GST_OBJECT_UNLOCK (self);
  if (*self->path == "-") {
    self->fd = STDOUT_FILENO;
    *self->path = "standard output";
  } else {
    self->fd = open (self->path->c_str (),
        O_WRONLY | O_CREAT | O_CLOEXEC | (append ? O_APPEND : O_TRUNC), 0666);
    if (self->fd < 0) {
      GST_ELEMENT_ERROR (self, RESOURCE, OPEN_WRITE, ("Could not open \"%s\" for writing.",
              self->path->c_str ()), GST_ERROR_SYSTEM);
      return FALSE;
    }
  }
  self->lines_buffer->clear ();
  self->lines_buffer->reserve (2 * WRITE_CHUNK);
  self->last_write_us = g_get_monotonic_time ();
  self->lines = 0;
  return TRUE;
}

static gboolean
gst_ny_meta_convert_stop (GstBaseTransform * trans)
{
  GstNyMetaConvert *self = GST_NY_META_CONVERT (trans);
  gboolean ok = TRUE;
  if (self->fd >= 0) {
    ok = gst_ny_meta_convert_write_buffered (self);
    if (self->fd != STDOUT_FILENO && close (self->fd) != 0 && ok) {
      GST_ELEMENT_ERROR (self, RESOURCE, CLOSE, ("Could not close \"%s\".",
              self->path->c_str ()), GST_ERROR_SYSTEM);
      ok = FALSE;
    }
  }
  self->fd = -1;
  g_clear_pointer (&self->stream_id, g_free);
  return ok;
}

static gboolean
gst_ny_meta_convert_set_caps (GstBaseTransform * trans, GstCaps * incaps, GstCaps * outcaps)
{
  GstNyMetaConvert *self = GST_NY_META_CONVERT (trans);
  (void) outcaps;
  ny_result_frame_size (incaps, &self->width, &self->height);
  return TRUE;
}

/* One line per GstNystreamMeta on buf, for each buffer and for the carrier of
 * the results the detector completed at EOS. */
static GstFlowReturn
gst_ny_meta_convert_write (GstNyMetaConvert * self, GstBuffer * buf)
{
  GST_OBJECT_LOCK (self);
  const std::string source = self->source ? self->source : (self->stream_id ? self->stream_id : "");
  GST_OBJECT_UNLOCK (self);

  const NyResultContext where = { GST_BUFFER_PTS (buf), source.c_str (), self->width,
    self->height };
  std::string & text = *self->lines_buffer;
  gpointer state = nullptr;
  GstMeta *meta;
  while ((meta = gst_buffer_iterate_meta_filtered (buf, &state, GST_NYSTREAM_META_API_TYPE))) {
    const GstNystreamMeta *r = reinterpret_cast<const GstNystreamMeta *> (meta);
    ny_result_json_append (text, *r, where);
    text += '\n';
    self->lines++;
  }
  if (text.size () >= WRITE_CHUNK ||
      g_get_monotonic_time () - self->last_write_us >= WRITE_INTERVAL_US) {
    if (!gst_ny_meta_convert_write_buffered (self))
      return GST_FLOW_ERROR;
  }
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
  } else if (GstBuffer * carrier = self->fd >= 0 ? ny_result_final_carrier (event) : nullptr) {
    /* Never a buffer of the stream: written here only. Forwarded below, for
     * converters further down (after another detector). */
    gst_ny_meta_convert_write (self, carrier);
  } else if (GST_EVENT_TYPE (event) == GST_EVENT_EOS && self->fd >= 0) {
    /* Before the EOS goes on: the application sees a write error first. */
    if (!gst_ny_meta_convert_write_buffered (self)) {
      gst_event_unref (event);
      return FALSE;
    }
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
  delete self->path;
  delete self->lines_buffer;
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
  self->fd = -1;
  self->path = new std::string ();
  self->lines_buffer = new std::string ();
  gst_base_transform_set_passthrough (GST_BASE_TRANSFORM (self), TRUE);
}
