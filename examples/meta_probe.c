/* meta_probe: read Nystream results in a C application with a pad probe.
 *
 *   nystream-meta-probe MODEL FILE             audio file -> nyaudiodetect
 *   nystream-meta-probe --video MODEL FILE     video file -> nyvideodetect
 *   nystream-meta-probe --pipeline 'DESCRIPTION'
 *                                              any gst-launch description holding
 *                                              an nyaudiodetect or nyvideodetect
 *
 * A buffer probe on the detector's src pad walks every GstNystreamMeta on each
 * buffer (a buffer carries one per result it completed: none, one or several)
 * and prints the label, confidence, the media span the result describes and the
 * active classes. The results completed at EOS come on the carrier buffer of the
 * "nystream-final-results" event, which the same probe reads. The pipeline runs
 * to EOS; the meta is read, never kept: it belongs to the buffer.
 *
 * Build: pkg-config --cflags --libs gstreamer-1.0 gstnystreammeta-1.0 (or the
 * meson target examples/nystream-meta-probe). Run with the plugin on
 * GST_PLUGIN_PATH (e.g. build/plugin). */
#include <gst/gst.h>
#include <gstnystreammeta.h>

#include <string.h>

/* Per-detector count of results seen, for the summary. */
typedef struct {
  const gchar *name;
  guint64 results;
  guint64 buffers_with_results;
} ProbeStats;

static GstPadProbeReturn
on_data (GstPad * pad, GstPadProbeInfo * info, gpointer user_data)
{
  ProbeStats *stats = user_data;
  GstBuffer *buffer;
  gpointer state = NULL;
  GstMeta *meta;
  guint n = 0;
  (void) pad;

  if (GST_PAD_PROBE_INFO_TYPE (info) & GST_PAD_PROBE_TYPE_BUFFER) {
    buffer = GST_PAD_PROBE_INFO_BUFFER (info);
  } else {
    /* The results completed at EOS, on a carrier buffer in an event. */
    GstEvent *event = GST_PAD_PROBE_INFO_EVENT (info);
    const GstStructure *s = gst_event_get_structure (event);
    if (GST_EVENT_TYPE (event) != GST_EVENT_CUSTOM_DOWNSTREAM ||
        !gst_structure_has_name (s, GST_NYSTREAM_FINAL_RESULTS_EVENT))
      return GST_PAD_PROBE_OK;
    buffer = gst_value_get_buffer (gst_structure_get_value (s,
            GST_NYSTREAM_FINAL_RESULTS_FIELD));
  }

  while ((meta = gst_buffer_iterate_meta_filtered (buffer, &state,
              GST_NYSTREAM_META_API_TYPE))) {
    const GstNystreamMeta *r = (const GstNystreamMeta *) meta;
    GString *active = g_string_new (NULL);
    guint i;
    for (i = 0; i < r->n_active; i++)
      g_string_append_printf (active, "%s%s", i ? "," : "",
          r->class_names[r->active[i]]);
    g_print ("%s token %" G_GUINT64_FORMAT " label %s (id %u) confidence %.3f "
        "span %" GST_TIME_FORMAT " - %" GST_TIME_FORMAT " on buffer %"
        GST_TIME_FORMAT " active [%s]\n",
        r->source, r->token_index, r->class_names[r->label_id], r->label_id,
        r->confidence, GST_TIME_ARGS (r->start),
        GST_TIME_ARGS (r->start + r->duration),
        GST_TIME_ARGS (GST_BUFFER_PTS (buffer)), active->str);
    g_string_free (active, TRUE);
    n++;
  }
  stats->results += n;
  stats->buffers_with_results += n > 0;
  return GST_PAD_PROBE_OK;
}

/* The first element in the bin (recursively) that is a Nystream detector. */
static GstElement *
find_detector (GstBin * bin)
{
  const GType detect_type = g_type_from_name ("GstNyDetect");
  GstIterator *it = gst_bin_iterate_recurse (bin);
  GValue item = G_VALUE_INIT;
  GstElement *found = NULL;
  if (detect_type == 0) {       /* the plugin has not been loaded */
    gst_iterator_free (it);
    return NULL;
  }
  while (!found && gst_iterator_next (it, &item) == GST_ITERATOR_OK) {
    GstElement *element = g_value_get_object (&item);
    if (g_type_is_a (G_OBJECT_TYPE (element), detect_type))
      found = gst_object_ref (element);
    g_value_reset (&item);
  }
  g_value_unset (&item);
  gst_iterator_free (it);
  return found;
}

static int
usage (const char *argv0)
{
  g_printerr ("usage: %s [--video] MODEL FILE\n"
      "       %s --pipeline 'DESCRIPTION'   (holding nyaudiodetect or nyvideodetect)\n",
      argv0, argv0);
  return 2;
}

int
main (int argc, char **argv)
{
  gchar *description = NULL;
  GError *error = NULL;
  GstElement *pipeline, *detector;
  GstPad *pad;
  GstBus *bus;
  GstMessage *msg;
  ProbeStats stats = { NULL, 0, 0 };
  int status = 0;

  gst_init (&argc, &argv);
  /* Registers the meta API type in this process before any lookup. */
  gst_nystream_meta_api_get_type ();

  if (argc == 3 && strcmp (argv[1], "--pipeline") != 0) {
    gchar *model = g_strescape (argv[1], NULL), *file = g_strescape (argv[2], NULL);
    description = g_strdup_printf ("filesrc location=\"%s\" ! decodebin ! audioconvert ! "
        "nyaudiodetect model=\"%s\" ! fakesink sync=false", file, model);
    g_free (model);
    g_free (file);
  } else if (argc == 4 && strcmp (argv[1], "--video") == 0) {
    gchar *model = g_strescape (argv[2], NULL), *file = g_strescape (argv[3], NULL);
    description = g_strdup_printf ("filesrc location=\"%s\" ! decodebin ! videoconvert ! "
        "nyvideodetect model=\"%s\" ! fakesink sync=false", file, model);
    g_free (model);
    g_free (file);
  } else if (argc == 3 && strcmp (argv[1], "--pipeline") == 0) {
    description = g_strdup (argv[2]);
  } else {
    return usage (argv[0]);
  }

  pipeline = gst_parse_launch (description, &error);
  if (!pipeline) {
    g_printerr ("could not build '%s': %s\n", description, error->message);
    g_clear_error (&error);
    g_free (description);
    return 1;
  }
  if (error) {                  /* a recoverable parse problem, e.g. a missing property */
    g_printerr ("warning: %s\n", error->message);
    g_clear_error (&error);
  }
  g_free (description);

  detector = GST_IS_BIN (pipeline) ? find_detector (GST_BIN (pipeline)) : NULL;
  if (!detector) {
    g_printerr ("the pipeline holds no nyaudiodetect or nyvideodetect element\n");
    gst_object_unref (pipeline);
    return 1;
  }
  stats.name = GST_ELEMENT_NAME (detector);
  pad = gst_element_get_static_pad (detector, "src");
  gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM,
      on_data, &stats, NULL);
  gst_object_unref (pad);

  if (gst_element_set_state (pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE)
    g_printerr ("could not start the pipeline (the bus says why)\n");

  /* Results arrive in the probe on the streaming thread; here we only wait. */
  bus = gst_element_get_bus (pipeline);
  msg = gst_bus_timed_pop_filtered (bus, GST_CLOCK_TIME_NONE,
      GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR) {
    gchar *debug = NULL;
    gst_message_parse_error (msg, &error, &debug);
    g_printerr ("error from %s: %s\n%s\n", GST_OBJECT_NAME (GST_MESSAGE_SRC (msg)),
        error->message, debug ? debug : "");
    g_clear_error (&error);
    g_free (debug);
    status = 1;
  }
  gst_message_unref (msg);
  gst_object_unref (bus);
  gst_element_set_state (pipeline, GST_STATE_NULL);

  g_printerr ("%s: %" G_GUINT64_FORMAT " results on %" G_GUINT64_FORMAT " buffers\n",
      stats.name, stats.results, stats.buffers_with_results);
  gst_object_unref (detector);
  gst_object_unref (pipeline);
  return status;
}
