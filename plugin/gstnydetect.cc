#include "gstnydetect.h"

#include <algorithm>
#include <memory>
#include <mutex>

#include "batch_group.h"
#include "meta/gstnystreammeta.h"
#include "model_registry.h"
#include "nystream/stream_state.h"

GST_DEBUG_CATEGORY_STATIC (gst_ny_detect_debug);
#define GST_CAT_DEFAULT gst_ny_detect_debug

#define DEFAULT_MODEL nullptr
#define DEFAULT_MODEL_INSTANCE_ID nullptr
#define DEFAULT_THRESHOLD 0.5f
#define DEFAULT_INFERENCE_INTERVAL 1
#define DEFAULT_RESET_ON_DISCONTINUITY TRUE
/* Off: a bus message allocates (a GstStructure with three arrays), and the
 * default path allocates nothing per result. */
#define DEFAULT_POST_MESSAGES FALSE
#define DEFAULT_CUSTOM_META FALSE
#define DEFAULT_MESSAGE_INTERVAL 0
#define DEFAULT_QOS TRUE
/* Batching across elements sharing a model-instance-id: off (1), and how long
 * (ms) a token may wait for the batch to fill, as DL Streamer's batch-size and
 * batch-timeout. */
#define DEFAULT_BATCH_SIZE 1
#define DEFAULT_BATCH_TIMEOUT 50
/* A segment whose running time is this far from where the stream was is a jump. */
#define SEGMENT_JUMP_TOLERANCE (100 * GST_MSECOND)

enum {
  PROP_0,
  PROP_MODEL,
  PROP_MODEL_INSTANCE_ID,
  PROP_THRESHOLD,
  PROP_INFERENCE_INTERVAL,
  PROP_RESET_ON_DISCONTINUITY,
  PROP_POST_MESSAGES,
  PROP_MESSAGE_INTERVAL,
  PROP_CUSTOM_META,
  PROP_STATS,
  PROP_RESULT_LATENCY,
  PROP_BATCH_SIZE,
  PROP_BATCH_TIMEOUT,
};

/* Batched results that no buffer will carry (flush, EOS, stop), to the bus. */
static void post_leftover_results (GstNyDetect * self);

namespace nystream::plugin {
namespace {

/* What transform_ip reads, copied once per buffer (no strings: no allocation). */
struct Settings {
  float threshold = DEFAULT_THRESHOLD;
  guint interval = DEFAULT_INFERENCE_INTERVAL;
  bool reset_on_discont = DEFAULT_RESET_ON_DISCONTINUITY;
  bool post_messages = DEFAULT_POST_MESSAGES;
  guint64 message_interval = DEFAULT_MESSAGE_INTERVAL;
  bool custom_meta = DEFAULT_CUSTOM_META;
};

struct Stats {
  guint64 tokens = 0, steps = 0, skipped_qos = 0, non_finite = 0, resets = 0, results = 0,
          messages = 0, rejected_buffers = 0;
  BatchCounters batch;
};

struct Pending {
  std::vector<float> scores;
  TokenSpan span;
};

}  // namespace

/* Everything a detector element owns besides its GObject. Settings and stats
 * are under the object lock; the stream state belongs to the streaming thread
 * (created in start(), rebuilt on caps, freed in stop()). */
class Detector : public TokenSink {
 public:
  explicit Detector (GstNyDetect * element) : element_ (element) {}
  ~Detector () override {
    if (labels)
      gst_nystream_labels_unref (labels);
  }

  std::string model_path, instance_id;  /* GST_OBJECT_LOCK */
  guint batch_size = DEFAULT_BATCH_SIZE;           /* GST_OBJECT_LOCK */
  guint batch_timeout_ms = DEFAULT_BATCH_TIMEOUT;  /* GST_OBJECT_LOCK */
  Settings settings;   /* GST_OBJECT_LOCK */
  Stats stats;         /* GST_OBJECT_LOCK */
  guint64 result_latency = 0;                         /* GST_OBJECT_LOCK */
  GstClockTime qos_earliest = GST_CLOCK_TIME_NONE;    /* GST_OBJECT_LOCK */

  std::shared_ptr<const Model> model;
  std::unique_ptr<StreamState> stream;      /* unbatched */
  /* Batched: the stream lives in the group, results come back through it. */
  std::shared_ptr<BatchGroup> group;
  BatchMember *member = nullptr;
  std::vector<BatchResult> batch_results;   /* taken from the group, reused */
  std::unique_ptr<Frontend> frontend;
  std::vector<const gchar *> class_names;   /* NULL-terminated views of model->info() */
  std::string model_name;
  GstNystreamLabels *labels = nullptr;      /* shared by every result's meta, start() .. stop() */

  /* Streaming-thread state. */
  Settings current;                 /* settings copied once per buffer */
  bool skipping = false;            /* QoS: let this buffer's tokens go by */
  std::vector<Pending> pending;     /* results completed by the current buffer */
  std::size_t pending_count = 0;
  std::vector<float> scores;
  std::vector<GstMessage *> messages;   /* to post for the current buffer */
  GstClockTime last_message = GST_CLOCK_TIME_NONE;
  GstClockTime stream_end_running = GST_CLOCK_TIME_NONE;  /* where the last buffer ended */
  bool have_data = false;
  bool warned_rejected = false;     /* one element warning per stream for bad input */
  bool force_messages = false;      /* post every result: no buffer will carry it */

  /* The last nystream::plugin::kDetectHistoryLength results for followers, a ring preallocated in
   * start(): history[(history_head + i) % size], i < history_count. */
  std::mutex history_mutex;
  std::vector<DetectResult> history;
  std::size_t history_head = 0, history_count = 0;
  std::vector<std::string> history_classes;

  void on_token (const float *features, int dim, const TokenSpan & span) override;
  void reset_stream (const char *why);
  void add_pending (const float *scores, const TokenSpan & span);
  /* Batched: moves the results the group computed for this element into
   * `pending` (those it reports), counting them in stats. */
  void take_batch_results ();

 private:
  GstNyDetect *element_;
};

void
Detector::on_token (const float *features, int dim, const TokenSpan & span)
{
  (void) dim;
  if (member) {
    if (skipping)
      group->skip (member, span);
    else
      group->submit (member, features, span);
    GST_OBJECT_LOCK (element_);
    stats.tokens++;
    if (skipping)
      stats.skipped_qos++;
    GST_OBJECT_UNLOCK (element_);
    return;
  }
  if (skipping) {
    stream->skip ();
    GST_OBJECT_LOCK (element_);
    stats.tokens++;
    stats.skipped_qos++;
    GST_OBJECT_UNLOCK (element_);
    return;
  }
  const StepStatus status = stream->step (features, scores.data ());
  GST_OBJECT_LOCK (element_);
  stats.tokens++;
  if (status == StepStatus::kOk)
    stats.steps++;
  else
    stats.non_finite++;
  GST_OBJECT_UNLOCK (element_);
  if (status != StepStatus::kOk) {
    GST_LOG_OBJECT (element_, "token %" G_GINT64_FORMAT " not finite: entered as padding",
        span.index);
    return;
  }
  if (span.index % current.interval != 0)
    return;
  add_pending (scores.data (), span);
}

void
Detector::add_pending (const float *result, const TokenSpan & span)
{
  /* Rarely more tokens than slots (a buffer of several seconds): grow once. */
  if (pending_count == pending.size ())
    pending.push_back ({std::vector<float> (scores.size ()), {}});
  Pending & slot = pending[pending_count++];
  std::copy (result, result + scores.size (), slot.scores.begin ());
  slot.span = span;
}

void
Detector::take_batch_results ()
{
  BatchCounters counters;
  const std::size_t taken = group->take_results (member, &batch_results, &counters);
  guint64 steps = 0, non_finite = 0;
  for (std::size_t i = 0; i < taken; i++) {
    const BatchResult & r = batch_results[i];
    if (r.skipped)
      continue;
    if (r.status != StepStatus::kOk) {
      non_finite++;
      GST_LOG_OBJECT (element_, "token %" G_GINT64_FORMAT " not finite: entered as padding",
          r.span.index);
      continue;
    }
    steps++;
    if (r.span.index % current.interval == 0)
      add_pending (r.scores.data (), r.span);
  }
  GST_OBJECT_LOCK (element_);
  stats.steps += steps;
  stats.non_finite += non_finite;
  stats.batch = counters;
  GST_OBJECT_UNLOCK (element_);
}

void
Detector::reset_stream (const char *why)
{
  if (stream)
    stream->reset ();
  if (member) {
    /* The token still queued is stepped first; its result and any not yet
     * taken describe media before the reset: they go to the bus. */
    group->reset (member);
    post_leftover_results (element_);
  }
  if (frontend)
    frontend->reset ();
  pending_count = 0;
  have_data = false;
  {
    /* Followers must not show results from before the reset (a flushing seek
     * restarts running time). */
    std::lock_guard < std::mutex > lock (history_mutex);
    history_count = 0;
  }
  GST_OBJECT_LOCK (element_);
  stats.resets++;
  GST_OBJECT_UNLOCK (element_);
  GST_DEBUG_OBJECT (element_, "stream state reset: %s", why);
}

}  // namespace nystream::plugin

using nystream::plugin::Detector;
using nystream::plugin::DetectResult;

struct GstNyDetectPrivate {
  Detector *detector;
};

G_DEFINE_ABSTRACT_TYPE_WITH_PRIVATE (GstNyDetect, gst_ny_detect, GST_TYPE_BASE_TRANSFORM);

static Detector *
detector_of (gpointer self)
{
  return static_cast < GstNyDetectPrivate * >(gst_ny_detect_get_instance_private (GST_NY_DETECT
          (self)))->detector;
}

static void gst_ny_detect_set_property (GObject * object, guint prop_id, const GValue * value,
    GParamSpec * pspec);
static void gst_ny_detect_get_property (GObject * object, guint prop_id, GValue * value,
    GParamSpec * pspec);
static void gst_ny_detect_finalize (GObject * object);
static gboolean gst_ny_detect_start (GstBaseTransform * trans);
static gboolean gst_ny_detect_stop (GstBaseTransform * trans);
static gboolean gst_ny_detect_set_caps (GstBaseTransform * trans, GstCaps * incaps,
    GstCaps * outcaps);
static GstFlowReturn gst_ny_detect_transform_ip (GstBaseTransform * trans, GstBuffer * buf);
static gboolean gst_ny_detect_sink_event (GstBaseTransform * trans, GstEvent * event);
static gboolean gst_ny_detect_src_event (GstBaseTransform * trans, GstEvent * event);
static GstFlowReturn gst_ny_detect_submit_input_buffer (GstBaseTransform * trans,
    gboolean is_discont, GstBuffer * input);

static void
gst_ny_detect_class_init (GstNyDetectClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstBaseTransformClass *trans_class = GST_BASE_TRANSFORM_CLASS (klass);

  GST_DEBUG_CATEGORY_INIT (gst_ny_detect_debug, "nydetect", 0, "Nystream detector base");

  gobject_class->set_property = gst_ny_detect_set_property;
  gobject_class->get_property = gst_ny_detect_get_property;
  gobject_class->finalize = gst_ny_detect_finalize;

  g_object_class_install_property (gobject_class, PROP_MODEL,
      g_param_spec_string ("model", "Model",
          "Path to a Nystream model file (.safetensors) of this element's modality; "
          "loaded when the element starts (READY -> PAUSED). Unset: the shipped model "
          "(audio-events / video-actions, from $NYSTREAM_MODEL_PATH or the installed "
          "models directory)", DEFAULT_MODEL,
          (GParamFlags) (G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
              GST_PARAM_MUTABLE_READY)));
  g_object_class_install_property (gobject_class, PROP_MODEL_INSTANCE_ID,
      g_param_spec_string ("model-instance-id", "Model instance id",
          "Elements with the same id share one loaded model (each keeps its own stream "
          "state); they must name the same model file. Empty: not shared",
          DEFAULT_MODEL_INSTANCE_ID,
          (GParamFlags) (G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
              GST_PARAM_MUTABLE_READY)));
  g_object_class_install_property (gobject_class, PROP_THRESHOLD,
      g_param_spec_float ("threshold", "Threshold",
          "A class is reported active when its score is at least this", 0.0f, 1.0f,
          DEFAULT_THRESHOLD,
          (GParamFlags) (G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
              GST_PARAM_CONTROLLABLE | GST_PARAM_MUTABLE_PLAYING)));
  g_object_class_install_property (gobject_class, PROP_INFERENCE_INTERVAL,
      g_param_spec_uint ("inference-interval", "Inference interval",
          "Report every k-th token's result (the model still steps on every token, as a "
          "continual model must)", 1, G_MAXUINT, DEFAULT_INFERENCE_INTERVAL,
          (GParamFlags) (G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
              GST_PARAM_MUTABLE_PLAYING)));
  g_object_class_install_property (gobject_class, PROP_RESET_ON_DISCONTINUITY,
      g_param_spec_boolean ("reset-on-discontinuity", "Reset on discontinuity",
          "Forget the window when a buffer is flagged DISCONT (data was lost)",
          DEFAULT_RESET_ON_DISCONTINUITY,
          (GParamFlags) (G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
              GST_PARAM_MUTABLE_PLAYING)));
  g_object_class_install_property (gobject_class, PROP_POST_MESSAGES,
      g_param_spec_boolean ("post-messages", "Post messages",
          "Post an element message on the bus for each result (rate: message-interval), "
          "like level; each message allocates, so off by default",
          DEFAULT_POST_MESSAGES,
          (GParamFlags) (G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
              GST_PARAM_MUTABLE_PLAYING)));
  g_object_class_install_property (gobject_class, PROP_MESSAGE_INTERVAL,
      g_param_spec_uint64 ("message-interval", "Message interval",
          "Minimum time between bus messages in nanoseconds (0: one per result)", 0,
          G_MAXUINT64, DEFAULT_MESSAGE_INTERVAL,
          (GParamFlags) (G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
              GST_PARAM_MUTABLE_PLAYING)));
  g_object_class_install_property (gobject_class, PROP_CUSTOM_META,
      g_param_spec_boolean ("custom-meta", "Custom meta",
          "Also attach each result as the GstCustomMeta \"NystreamResult\" (a GstStructure "
          "PyGObject applications can read; allocates per result, so off by default)",
          DEFAULT_CUSTOM_META,
          (GParamFlags) (G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
              GST_PARAM_MUTABLE_PLAYING)));
  g_object_class_install_property (gobject_class, PROP_RESULT_LATENCY,
      g_param_spec_uint64 ("result-latency", "Result latency",
          "How long after the start of a token's media its result can be attached, in "
          "nanoseconds (the front end's latency, plus batch-timeout when batching; 0 "
          "before caps). Buffers themselves are not held, so the element adds no latency "
          "to the stream", 0, G_MAXUINT64, 0,
          (GParamFlags) (G_PARAM_READABLE | G_PARAM_STATIC_STRINGS)));
  g_object_class_install_property (gobject_class, PROP_BATCH_SIZE,
      g_param_spec_uint ("batch-size", "Batch size",
          "Step this many streams' tokens together: detectors sharing a model-instance-id "
          "queue their tokens in one batch, stepped with matrix-matrix products when it "
          "holds batch-size tokens or its oldest has waited batch-timeout. Buffers are "
          "never held: a result rides on a later buffer of its element (its meta says "
          "which media it describes), or goes to the bus at flush, EOS and stop. Every "
          "element sharing the id must set the same batch-size and batch-timeout. "
          "1: off (each token steps at once)", 1, 1024, DEFAULT_BATCH_SIZE,
          (GParamFlags) (G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
              GST_PARAM_MUTABLE_READY)));
  g_object_class_install_property (gobject_class, PROP_BATCH_TIMEOUT,
      g_param_spec_uint ("batch-timeout", "Batch timeout",
          "With batch-size > 1: the longest a token waits for its batch to fill, in "
          "milliseconds; then the batch steps with the tokens it has (added to "
          "result-latency)", 0, 60000, DEFAULT_BATCH_TIMEOUT,
          (GParamFlags) (G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
              GST_PARAM_MUTABLE_READY)));
  g_object_class_install_property (gobject_class, PROP_STATS,
      g_param_spec_boxed ("stats", "Statistics",
          "tokens, steps, skipped-qos (tokens let go by because buffers were late), "
          "non-finite, resets, results, messages, rejected-buffers; batching: batches (that "
          "held one of this element's tokens), batch-streams (their sizes summed), "
          "batch-timeouts (of them stepped before they were full)", GST_TYPE_STRUCTURE,
          (GParamFlags) (G_PARAM_READABLE | G_PARAM_STATIC_STRINGS)));

  trans_class->start = GST_DEBUG_FUNCPTR (gst_ny_detect_start);
  trans_class->stop = GST_DEBUG_FUNCPTR (gst_ny_detect_stop);
  trans_class->set_caps = GST_DEBUG_FUNCPTR (gst_ny_detect_set_caps);
  trans_class->transform_ip = GST_DEBUG_FUNCPTR (gst_ny_detect_transform_ip);
  trans_class->sink_event = GST_DEBUG_FUNCPTR (gst_ny_detect_sink_event);
  trans_class->src_event = GST_DEBUG_FUNCPTR (gst_ny_detect_src_event);
  trans_class->submit_input_buffer = GST_DEBUG_FUNCPTR (gst_ny_detect_submit_input_buffer);
  /* Meta is written on the buffers, so never passthrough (as level). */
  trans_class->passthrough_on_same_caps = FALSE;
  trans_class->transform_ip_on_passthrough = FALSE;

  gst_type_mark_as_plugin_api (GST_TYPE_NY_DETECT, (GstPluginAPIFlags) 0);
}

static void
gst_ny_detect_init (GstNyDetect * self)
{
  auto priv = static_cast < GstNyDetectPrivate * >(gst_ny_detect_get_instance_private (self));
  priv->detector = new Detector (self);
  gst_base_transform_set_in_place (GST_BASE_TRANSFORM (self), TRUE);
  gst_base_transform_set_passthrough (GST_BASE_TRANSFORM (self), FALSE);
  /* QoS here skips model steps, never buffers (submit_input_buffer below). */
  gst_base_transform_set_qos_enabled (GST_BASE_TRANSFORM (self), DEFAULT_QOS);
}

static void
gst_ny_detect_finalize (GObject * object)
{
  delete detector_of (object);
  G_OBJECT_CLASS (gst_ny_detect_parent_class)->finalize (object);
}

static void
gst_ny_detect_set_property (GObject * object, guint prop_id, const GValue * value,
    GParamSpec * pspec)
{
  Detector *d = detector_of (object);
  GST_OBJECT_LOCK (object);
  switch (prop_id) {
    case PROP_MODEL:
      d->model_path = g_value_get_string (value) ? g_value_get_string (value) : "";
      break;
    case PROP_MODEL_INSTANCE_ID:
      d->instance_id = g_value_get_string (value) ? g_value_get_string (value) : "";
      break;
    case PROP_THRESHOLD:
      d->settings.threshold = g_value_get_float (value);
      break;
    case PROP_INFERENCE_INTERVAL:
      d->settings.interval = g_value_get_uint (value);
      break;
    case PROP_RESET_ON_DISCONTINUITY:
      d->settings.reset_on_discont = g_value_get_boolean (value);
      break;
    case PROP_POST_MESSAGES:
      d->settings.post_messages = g_value_get_boolean (value);
      break;
    case PROP_MESSAGE_INTERVAL:
      d->settings.message_interval = g_value_get_uint64 (value);
      break;
    case PROP_CUSTOM_META:
      d->settings.custom_meta = g_value_get_boolean (value);
      break;
    case PROP_BATCH_SIZE:
      d->batch_size = g_value_get_uint (value);
      break;
    case PROP_BATCH_TIMEOUT:
      d->batch_timeout_ms = g_value_get_uint (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (object);
}

static void
gst_ny_detect_get_property (GObject * object, guint prop_id, GValue * value, GParamSpec * pspec)
{
  Detector *d = detector_of (object);
  GST_OBJECT_LOCK (object);
  switch (prop_id) {
    case PROP_MODEL:
      g_value_set_string (value, d->model_path.empty ()? nullptr : d->model_path.c_str ());
      break;
    case PROP_MODEL_INSTANCE_ID:
      g_value_set_string (value, d->instance_id.empty ()? nullptr : d->instance_id.c_str ());
      break;
    case PROP_THRESHOLD:
      g_value_set_float (value, d->settings.threshold);
      break;
    case PROP_INFERENCE_INTERVAL:
      g_value_set_uint (value, d->settings.interval);
      break;
    case PROP_RESET_ON_DISCONTINUITY:
      g_value_set_boolean (value, d->settings.reset_on_discont);
      break;
    case PROP_POST_MESSAGES:
      g_value_set_boolean (value, d->settings.post_messages);
      break;
    case PROP_MESSAGE_INTERVAL:
      g_value_set_uint64 (value, d->settings.message_interval);
      break;
    case PROP_CUSTOM_META:
      g_value_set_boolean (value, d->settings.custom_meta);
      break;
    case PROP_RESULT_LATENCY:
      g_value_set_uint64 (value, d->result_latency);
      break;
    case PROP_BATCH_SIZE:
      g_value_set_uint (value, d->batch_size);
      break;
    case PROP_BATCH_TIMEOUT:
      g_value_set_uint (value, d->batch_timeout_ms);
      break;
    case PROP_STATS:{
      const auto & s = d->stats;
      g_value_take_boxed (value, gst_structure_new ("nystream-stats",
              "tokens", G_TYPE_UINT64, s.tokens, "steps", G_TYPE_UINT64, s.steps,
              "skipped-qos", G_TYPE_UINT64, s.skipped_qos,
              "non-finite", G_TYPE_UINT64, s.non_finite, "resets", G_TYPE_UINT64, s.resets,
              "results", G_TYPE_UINT64, s.results, "messages", G_TYPE_UINT64, s.messages,
              "rejected-buffers", G_TYPE_UINT64, s.rejected_buffers,
              "batches", G_TYPE_UINT64, s.batch.batches,
              "batch-streams", G_TYPE_UINT64, s.batch.batch_streams,
              "batch-timeouts", G_TYPE_UINT64, s.batch.batch_timeouts, NULL));
      break;
    }
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (object);
}

static gboolean
gst_ny_detect_start (GstBaseTransform * trans)
{
  GstNyDetect *self = GST_NY_DETECT (trans);
  GstNyDetectClass *klass = GST_NY_DETECT_GET_CLASS (self);
  Detector *d = detector_of (self);

  GST_OBJECT_LOCK (self);
  std::string path = d->model_path;
  const std::string instance_id = d->instance_id;
  const guint batch_size = d->batch_size;
  const GstClockTime batch_timeout = d->batch_timeout_ms * GST_MSECOND;
  d->stats = {};
  d->qos_earliest = GST_CLOCK_TIME_NONE;
  GST_OBJECT_UNLOCK (self);

  if (path.empty ()) {
    std::string searched;
    path = nystream::plugin::find_default_model (klass->default_model, &searched);
    if (path.empty ()) {
      GST_ELEMENT_ERROR (self, RESOURCE, NOT_FOUND, ("No model set."),
          ("The 'model' property is unset and the default %s model %s is in none of %s. "
              "Set 'model' to a Nystream %s model file (.safetensors), or NYSTREAM_MODEL_PATH "
              "to the directory holding %s.", klass->modality, klass->default_model,
              searched.c_str (), klass->modality, klass->default_model));
      return FALSE;
    }
    GST_INFO_OBJECT (self, "no model set: using the default %s", path.c_str ());
  }
  std::string error;
  try {
    d->model = nystream::plugin::acquire_model (path, instance_id, &error);
  } catch (const std::exception & e) {
    error = path + ": " + e.what ();
  }
  if (!d->model) {
    GST_ELEMENT_ERROR (self, RESOURCE, OPEN_READ, ("Could not load the model."),
        ("%s", error.c_str ()));
    return FALSE;
  }
  const nystream::ModelInfo & info = d->model->info ();
  if (info.modality != klass->modality || info.feature_extractor != klass->extractor) {
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS, ("Wrong kind of model for %s.",
            GST_ELEMENT_NAME (self)),
        ("%s is a %s model with '%s' features; element '%s' takes %s models with '%s' "
            "features.", path.c_str (), info.modality.c_str (), info.feature_extractor.c_str (),
            GST_ELEMENT_NAME (self), klass->modality, klass->extractor));
    d->model.reset ();
    return FALSE;
  }
  if (batch_size > 1 && instance_id.empty ()) {
    GST_ELEMENT_WARNING (self, RESOURCE, SETTINGS, ("batch-size has no effect without "
            "model-instance-id: running unbatched."),
        ("batch-size is %u but model-instance-id is unset: tokens are batched across "
            "elements sharing a model-instance-id. Set the same model-instance-id on the "
            "detectors to batch together.", batch_size));
  } else if (batch_size > 1) {
    std::string batch_error;
    try {
      d->group = nystream::plugin::BatchGroup::join (instance_id, d->model, batch_size,
          batch_timeout, GST_ELEMENT_NAME (self), &batch_error);
      if (d->group)
        d->member = d->group->add_member ();
    } catch (const std::exception & e) {
      batch_error = e.what ();
      d->group.reset ();
    }
    if (!d->group) {
      GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS, ("Mismatched batch settings."),
          ("%s", batch_error.c_str ()));
      d->model.reset ();
      return FALSE;
    }
    GST_INFO_OBJECT (self, "batching with model-instance-id %s: batch-size %u, "
        "batch-timeout %" GST_TIME_FORMAT, instance_id.c_str (), batch_size,
        GST_TIME_ARGS (batch_timeout));
  }
  if (!d->member)
    d->stream.reset (new nystream::StreamState (d->model));
  d->batch_results.assign (64, {std::vector<float> (d->model->config ().classes), {},
          nystream::StepStatus::kOk, false});
  d->scores.assign (d->model->config ().classes, 0.0f);
  d->pending.assign (16, {std::vector<float> (d->model->config ().classes), {}});
  d->pending_count = 0;
  d->messages.reserve (64);
  d->class_names.clear ();
  for (const std::string & name:info.classes)
    d->class_names.push_back (name.c_str ());
  d->class_names.push_back (nullptr);
  d->model_name = info.name;
  if (d->labels)
    gst_nystream_labels_unref (d->labels);
  d->labels = gst_nystream_labels_new (info.name.c_str (), GST_ELEMENT_NAME (self),
      d->class_names.data (), info.classes.size ());
  d->last_message = GST_CLOCK_TIME_NONE;
  d->have_data = false;
  {
    std::lock_guard < std::mutex > lock (d->history_mutex);
    DetectResult empty;
    empty.scores.assign (d->scores.size (), 0.0f);
    d->history.assign (nystream::plugin::kDetectHistoryLength, empty);
    d->history_head = d->history_count = 0;
    d->history_classes = info.classes;
  }
  const nystream::ModelConfig & c = d->model->config ();
  GST_INFO_OBJECT (self, "model %s: %s, %d %s block(s), window %d (receptive field %d "
      "tokens), %d landmarks, %zu classes", path.c_str (), info.name.c_str (), c.blocks,
      nystream::to_string (c.assembly), c.window, c.receptive_field (), c.landmarks,
      info.classes.size ());
  return TRUE;
}

static gboolean
gst_ny_detect_stop (GstBaseTransform * trans)
{
  Detector *d = detector_of (trans);
  if (d->member) {
    /* Nothing left waiting: the queued token is stepped, its result posted. */
    d->group->flush ();
    post_leftover_results (GST_NY_DETECT (trans));
    d->group->remove_member (d->member);
    d->member = nullptr;
    d->group.reset ();
  }
  d->frontend.reset ();
  d->stream.reset ();
  d->model.reset ();
  g_clear_pointer (&d->labels, gst_nystream_labels_unref);
  return TRUE;
}

static gboolean
gst_ny_detect_set_caps (GstBaseTransform * trans, GstCaps * incaps, GstCaps * outcaps)
{
  GstNyDetect *self = GST_NY_DETECT (trans);
  Detector *d = detector_of (self);
  (void) outcaps;
  if (!d->model)
    return FALSE;
  std::string error;
  nystream::plugin::Frontend * frontend = nullptr;
  try {
    frontend = GST_NY_DETECT_GET_CLASS (self)->create_frontend (self, incaps, *d->model, &error);
  } catch (const std::exception & e) {
    error = e.what ();
  }
  if (frontend && frontend->dim () != d->model->config ().input_dim) {
    error = "the front end makes " + std::to_string (frontend->dim ()) +
        " features per token but the model takes " +
        std::to_string (d->model->config ().input_dim);
    delete frontend;
    frontend = nullptr;
  }
  if (!frontend) {
    gchar *caps = gst_caps_to_string (incaps);
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION, ("Cannot analyse this stream."),
        ("caps %s: %s", caps, error.c_str ()));
    g_free (caps);
    return FALSE;
  }
  d->frontend.reset (frontend);
  GST_OBJECT_LOCK (self);
  /* A batched token may wait batch-timeout for its batch. */
  d->result_latency = frontend->latency_ns () + (d->member ? d->group->timeout () : 0);
  GST_OBJECT_UNLOCK (self);
  d->warned_rejected = false;
  d->reset_stream ("new caps");
  return TRUE;
}

/* As the base class's default, minus its QoS drop: an analyser must pass every
 * buffer on, so transform_ip skips model steps for late ones instead. */
static GstFlowReturn
gst_ny_detect_submit_input_buffer (GstBaseTransform * trans, gboolean is_discont,
    GstBuffer * input)
{
  (void) is_discont;
  /* Downstream asked to renegotiate (caps or allocation): redo it now. */
  if (!gst_base_transform_reconfigure (trans) ||
      !gst_pad_has_current_caps (GST_BASE_TRANSFORM_SINK_PAD (trans))) {
    gst_buffer_unref (input);
    return GST_PAD_IS_FLUSHING (GST_BASE_TRANSFORM_SRC_PAD (trans)) ? GST_FLOW_FLUSHING :
        GST_FLOW_NOT_NEGOTIATED;
  }
  trans->queued_buf = input;
  return GST_FLOW_OK;
}

static gboolean
gst_ny_detect_src_event (GstBaseTransform * trans, GstEvent * event)
{
  if (GST_EVENT_TYPE (event) == GST_EVENT_QOS) {
    Detector *d = detector_of (trans);
    GstQOSType type;
    gdouble proportion;
    GstClockTimeDiff diff;
    GstClockTime timestamp;
    gst_event_parse_qos (event, &type, &proportion, &diff, &timestamp);
    GST_OBJECT_LOCK (trans);
    /* gst_base_transform_update_qos()'s: a buffer whose running time is at
     * or before this would be late downstream. */
    d->qos_earliest = timestamp + diff;
    GST_OBJECT_UNLOCK (trans);
  }
  return GST_BASE_TRANSFORM_CLASS (gst_ny_detect_parent_class)->src_event (trans, event);
}

static GstStructure *
result_message (GstNyDetect * self, Detector * d, const nystream::plugin::Pending & r,
    const GstSegment * segment)
{
  const nystream::Model & model = *d->model;
  const int classes = model.config ().classes;
  const GstClockTime start = r.span.start_ns, duration = r.span.end_ns - r.span.start_ns;
  guint top = 0;
  for (int i = 1; i < classes; i++)
    if (r.scores[i] > r.scores[top])
      top = i;
  GValue names = G_VALUE_INIT, scores = G_VALUE_INIT, active = G_VALUE_INIT, item = G_VALUE_INIT;
  gst_value_array_init (&names, classes);
  gst_value_array_init (&scores, classes);
  gst_value_array_init (&active, classes);
  for (int i = 0; i < classes; i++) {
    g_value_init (&item, G_TYPE_STRING);
    g_value_set_string (&item, d->class_names[i]);
    gst_value_array_append_and_take_value (&names, &item);
    g_value_init (&item, G_TYPE_FLOAT);
    g_value_set_float (&item, r.scores[i]);
    gst_value_array_append_and_take_value (&scores, &item);
    if (r.scores[i] >= d->current.threshold) {
      g_value_init (&item, G_TYPE_STRING);
      g_value_set_string (&item, d->class_names[i]);
      gst_value_array_append_and_take_value (&active, &item);
    }
  }
  /* Named after the element, as level's messages are "level". */
  GstElementFactory *factory = gst_element_get_factory (GST_ELEMENT (self));
  GstStructure *s = gst_structure_new (factory ? GST_OBJECT_NAME (factory) : "nydetect",
      "timestamp", G_TYPE_UINT64, (guint64) start,
      "stream-time", G_TYPE_UINT64,
      (guint64) gst_segment_to_stream_time (segment, GST_FORMAT_TIME, start),
      "running-time", G_TYPE_UINT64,
      (guint64) gst_segment_to_running_time (segment, GST_FORMAT_TIME, start),
      "duration", G_TYPE_UINT64, (guint64) duration,
      "token", G_TYPE_UINT64, (guint64) r.span.index,
      "model", G_TYPE_STRING, d->model_name.c_str (),
      "label", G_TYPE_STRING, d->class_names[top],
      "label-id", G_TYPE_UINT, top, "confidence", G_TYPE_FLOAT, r.scores[top], NULL);
  gst_structure_take_value (s, "classes", &names);
  gst_structure_take_value (s, "scores", &scores);
  gst_structure_take_value (s, "active", &active);
  return s;
}

/* Publishes the results the last push completed: meta on buffer (the one that
 * completed them, or the EOS carrier; nullptr: none), history for followers,
 * bus messages (rate-limited, or every one when d->force_messages; posted last
 * and outside every lock). */
static void
publish_results (GstNyDetect * self, GstBuffer * buffer)
{
  Detector *d = detector_of (self);
  if (d->pending_count == 0)
    return;
  GstBaseTransform *trans = GST_BASE_TRANSFORM (self);
  const GstSegment *segment = &trans->segment;
  /* Posted after the loop, outside every lock; reserved in start(). */
  std::vector<GstMessage *> & messages = d->messages;
  messages.clear ();
  for (std::size_t i = 0; i < d->pending_count; i++) {
    const nystream::plugin::Pending & r = d->pending[i];
    const GstClockTime start = r.span.start_ns, duration = r.span.end_ns - r.span.start_ns;
    if (buffer) {
      GstNystreamMeta *meta = gst_buffer_add_nystream_meta_with_labels (buffer, d->labels,
          r.scores.data (), d->current.threshold, r.span.index, start, duration);
      if (meta && d->current.custom_meta)
        gst_buffer_add_nystream_custom_meta (buffer, meta);
    }
    const GstClockTime running = gst_segment_to_running_time (segment, GST_FORMAT_TIME, start);
    {
      std::lock_guard < std::mutex > lock (d->history_mutex);
      const std::size_t size = d->history.size ();
      if (d->history_count == size)
        d->history_head = (d->history_head + 1) % size;
      else
        d->history_count++;
      DetectResult & slot = d->history[(d->history_head + d->history_count - 1) % size];
      slot.running_time = running;
      slot.duration = duration;
      std::copy (r.scores.begin (), r.scores.end (), slot.scores.begin ());
      slot.threshold = d->current.threshold;
    }
    const bool due = d->force_messages || (d->current.post_messages &&
        GST_CLOCK_TIME_IS_VALID (running) && (!GST_CLOCK_TIME_IS_VALID (d->last_message) ||
            d->current.message_interval == 0 ||
            running >= d->last_message + d->current.message_interval));
    if (due) {
      messages.push_back (gst_message_new_element (GST_OBJECT (self),
              result_message (self, d, r, segment)));
      d->last_message = running;
    }
  }
  GST_OBJECT_LOCK (self);
  d->stats.results += d->pending_count;
  d->stats.messages += messages.size ();
  GST_OBJECT_UNLOCK (self);
  d->pending_count = 0;
  for (GstMessage * message:messages)
    gst_element_post_message (GST_ELEMENT (self), message);
  messages.clear ();
}

static void
post_leftover_results (GstNyDetect * self)
{
  Detector *d = detector_of (self);
  if (!d->member)
    return;
  d->take_batch_results ();
  if (d->pending_count)
    GST_DEBUG_OBJECT (self, "%zu batched results with no buffer to ride on: to the bus",
        d->pending_count);
  d->force_messages = true;
  publish_results (self, nullptr);
  d->force_messages = false;
}

/* The results the drain at EOS completed have no buffer to ride on: their metas
 * go on an empty carrier buffer, sent downstream in a serialized event before
 * the EOS, so nymetaconvert and pad probes get every result. */
static void
push_final_results (GstNyDetect * self)
{
  Detector *d = detector_of (self);
  if (d->pending_count == 0)
    return;
  const nystream::TokenSpan & first = d->pending[0].span;
  const nystream::TokenSpan & last = d->pending[d->pending_count - 1].span;
  GstBuffer *carrier = gst_buffer_new ();
  GST_BUFFER_PTS (carrier) = first.start_ns;
  GST_BUFFER_DURATION (carrier) = last.end_ns - first.start_ns;
  GST_DEBUG_OBJECT (self, "%zu results completed at EOS: sent in a %s event",
      d->pending_count, GST_NYSTREAM_FINAL_RESULTS_EVENT);
  publish_results (self, carrier);
  GstEvent *event = gst_event_new_custom (GST_EVENT_CUSTOM_DOWNSTREAM,
      gst_structure_new (GST_NYSTREAM_FINAL_RESULTS_EVENT,
          GST_NYSTREAM_FINAL_RESULTS_FIELD, GST_TYPE_BUFFER, carrier, NULL));
  gst_buffer_unref (carrier);
  gst_pad_push_event (GST_BASE_TRANSFORM_SRC_PAD (self), event);
}

static GstFlowReturn
gst_ny_detect_transform_ip (GstBaseTransform * trans, GstBuffer * buf)
{
  GstNyDetect *self = GST_NY_DETECT (trans);
  Detector *d = detector_of (self);
  if (!d->frontend) {
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION, (NULL), ("No caps before the first buffer."));
    return GST_FLOW_NOT_NEGOTIATED;
  }

  const GstClockTime pts = GST_BUFFER_PTS (buf);
  const GstClockTime running = gst_segment_to_running_time (&trans->segment, GST_FORMAT_TIME, pts);
  const bool qos = gst_base_transform_is_qos_enabled (trans);  /* takes the object lock */
  GST_OBJECT_LOCK (self);
  d->current = d->settings;
  const GstClockTime earliest = d->qos_earliest;
  GST_OBJECT_UNLOCK (self);

  if (GST_BUFFER_IS_DISCONT (buf) && d->have_data && d->current.reset_on_discont)
    d->reset_stream ("DISCONT buffer");
  d->skipping = qos && GST_CLOCK_TIME_IS_VALID (earliest) && GST_CLOCK_TIME_IS_VALID (running) &&
      running <= earliest;
  if (d->skipping)
    GST_DEBUG_OBJECT (self, "late by %" GST_STIME_FORMAT ": skipping model steps",
        GST_STIME_ARGS (GST_CLOCK_DIFF (running, earliest)));

  const gint64 started = g_get_monotonic_time ();
  nystream::PushStatus status;
  try {
    status = d->frontend->push (buf, *d);
  } catch (...) {
    status = nystream::PushStatus::kNotConfigured;
  }
  if (d->member)
    d->take_batch_results ();  /* this buffer's batches, and others' that finished */
  GST_TRACE_OBJECT (self, "buffer %" GST_TIME_FORMAT ": %zu results in %" G_GINT64_FORMAT " us",
      GST_TIME_ARGS (pts), d->pending_count, g_get_monotonic_time () - started);

  switch (status) {
    case nystream::PushStatus::kOk:
    case nystream::PushStatus::kEmpty:
      break;
    case nystream::PushStatus::kNonFinite:
      GST_WARNING_OBJECT (self, "buffer %" GST_TIME_FORMAT " holds NaN or Inf samples: "
          "its partial tokens were dropped and the front end reset", GST_TIME_ARGS (pts));
      break;
    default:
      GST_OBJECT_LOCK (self);
      d->stats.rejected_buffers++;
      GST_OBJECT_UNLOCK (self);
      GST_WARNING_OBJECT (self, "buffer %" GST_TIME_FORMAT " not analysed: %s",
          GST_TIME_ARGS (pts), nystream::to_string (status));
      /* Once, so a stream whose every buffer is refused (e.g. broken timestamps)
       * is visible without flooding the bus; `stats` counts them all. */
      if (!d->warned_rejected) {
        d->warned_rejected = true;
        GST_ELEMENT_WARNING (self, STREAM, FORMAT, ("Some buffers cannot be analysed."),
            ("buffer %" GST_TIME_FORMAT ": %s; passed on unanalysed (see the "
                "rejected-buffers count in stats)", GST_TIME_ARGS (pts),
                nystream::to_string (status)));
      }
      break;
  }
  d->have_data = true;
  if (GST_CLOCK_TIME_IS_VALID (running))
    d->stream_end_running = running + (GST_BUFFER_DURATION_IS_VALID (buf) ?
        GST_BUFFER_DURATION (buf) : 0);
  publish_results (self, buf);
  return GST_FLOW_OK;
}

static gboolean
gst_ny_detect_sink_event (GstBaseTransform * trans, GstEvent * event)
{
  GstNyDetect *self = GST_NY_DETECT (trans);
  Detector *d = detector_of (self);
  switch (GST_EVENT_TYPE (event)) {
    case GST_EVENT_FLUSH_STOP:
      d->reset_stream ("flush");
      GST_OBJECT_LOCK (self);
      d->qos_earliest = GST_CLOCK_TIME_NONE;
      GST_OBJECT_UNLOCK (self);
      break;
    case GST_EVENT_STREAM_START:
      if (d->have_data)
        d->reset_stream ("new stream");
      break;
    case GST_EVENT_SEGMENT:{
      const GstSegment *segment;
      gst_event_parse_segment (event, &segment);
      if (d->have_data && segment->format == GST_FORMAT_TIME &&
          GST_CLOCK_TIME_IS_VALID (d->stream_end_running)) {
        const GstClockTime resumes = gst_segment_to_running_time (segment, GST_FORMAT_TIME,
            segment->start);
        const GstClockTimeDiff jump = GST_CLOCK_DIFF (d->stream_end_running, resumes);
        if (!GST_CLOCK_TIME_IS_VALID (resumes) || ABS (jump) > (gint64) SEGMENT_JUMP_TOLERANCE)
          d->reset_stream ("segment jump");
      }
      break;
    }
    case GST_EVENT_GAP:
      /* No media for a while: the window would mix before and after. */
      if (d->have_data)
        d->reset_stream ("gap");
      break;
    case GST_EVENT_EOS:
      if (d->frontend) {
        GST_OBJECT_LOCK (self);
        d->current = d->settings;
        GST_OBJECT_UNLOCK (self);
        d->skipping = false;
        d->frontend->drain (*d);
        if (d->member) {
          /* Nothing waits past EOS: step the batch now; every result still in
           * the group goes with the final results, and to the bus. */
          d->group->flush ();
          d->take_batch_results ();
          d->force_messages = true;
        }
        push_final_results (self);
        d->force_messages = false;
      }
      break;
    default:
      break;
  }
  return GST_BASE_TRANSFORM_CLASS (gst_ny_detect_parent_class)->sink_event (trans, event);
}

namespace nystream::plugin {

bool
gst_ny_detect_results_at (GstNyDetect * detect, GstClockTime running_time, guint history,
    std::vector<DetectResult> * out)
{
  Detector *d = detector_of (detect);
  std::lock_guard < std::mutex > lock (d->history_mutex);
  const std::size_t size = d->history.size ();
  /* Newest first: the latest result starting at or before running_time. */
  std::size_t newest = d->history_count;
  while (newest > 0 &&
      d->history[(d->history_head + newest - 1) % size].running_time > running_time)
    newest--;
  if (newest == 0)
    return false;
  const std::size_t count = std::min<guint64> ((guint64) history + 1, newest);
  /* Filled in place: a caller reusing `out` allocates nothing once it has grown. */
  out->resize (count);
  for (std::size_t i = 0; i < count; i++) {
    const DetectResult & from = d->history[(d->history_head + newest - count + i) % size];
    DetectResult & to = (*out)[i];
    to.running_time = from.running_time;
    to.duration = from.duration;
    to.threshold = from.threshold;
    to.scores.assign (from.scores.begin (), from.scores.end ());
    if (to.classes != d->history_classes)
      to.classes = d->history_classes;
  }
  return true;
}

}  // namespace nystream::plugin
