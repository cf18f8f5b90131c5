#include "gstnymetapublish.h"


#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "meta/gstnystreammeta.h"
#include "publisher.h"
#include "result_json.h"

GST_DEBUG_CATEGORY_STATIC (gst_ny_meta_publish_debug);
#define GST_CAT_DEFAULT gst_ny_meta_publish_debug

using nypublish::Method;

#define DEFAULT_METHOD Method::kMqtt
#define DEFAULT_ADDRESS "localhost:1883"
#define DEFAULT_MQTT_TOPIC "nystream/{source}/results"
#define DEFAULT_KAFKA_TOPIC "nystream-results"
#define DEFAULT_QOS 1
#define DEFAULT_MAX_QUEUE 10000
#define DEFAULT_RECONNECT_INTERVAL 1000
#define DEFAULT_MAX_CONNECT_ATTEMPTS 1
#define DEFAULT_FLUSH_TIMEOUT 5000
#define DEFAULT_SYNC FALSE

enum {
  PROP_0, PROP_METHOD, PROP_ADDRESS, PROP_TOPIC, PROP_SOURCE, PROP_CLIENT_ID, PROP_QOS,
  PROP_USERNAME, PROP_PASSWORD, PROP_CAFILE, PROP_CERTFILE, PROP_KEYFILE, PROP_MAX_QUEUE,
  PROP_RECONNECT_INTERVAL, PROP_MAX_CONNECT_ATTEMPTS, PROP_FLUSH_TIMEOUT, PROP_SYNC, PROP_STATS
};

/* The properties (GST_OBJECT_LOCK), copied at start. */
struct NyPublishProps {
  nypublish::Settings settings;
  std::string topic;       /* empty: the method's default */
  std::string source;      /* empty: the stream id */
  bool sync = DEFAULT_SYNC;
  guint flush_timeout_ms = DEFAULT_FLUSH_TIMEOUT;
  std::string client_id;   /* empty: nystream-<host>-<element name> */
};

/* start() .. stop(); the streaming thread's, except publisher (GST_OBJECT_LOCK
 * for the stats reader). */
struct NyPublishRun {
  std::shared_ptr<nypublish::Publisher> publisher;
  Method method = DEFAULT_METHOD;
  std::string topic, address, element, publisher_json;
  bool sync = false, eos_flushed = false;
  guint flush_timeout_ms = DEFAULT_FLUSH_TIMEOUT, max_queue = DEFAULT_MAX_QUEUE;
  guint64 seq = 0;
  std::string stream_id;
  int width = 0, height = 0;
  gint64 last_drop_warning_us = 0;
};

struct _GstNyMetaPublish {
  GstBaseTransform parent;
  NyPublishProps *props;
  NyPublishRun *run;
  nypublish::Stats last_stats;   /* GST_OBJECT_LOCK: of the last run, after stop() */
};

G_DEFINE_TYPE (GstNyMetaPublish, gst_ny_meta_publish, GST_TYPE_BASE_TRANSFORM);
GST_ELEMENT_REGISTER_DEFINE (nymetapublish, "nymetapublish", GST_RANK_NONE,
    GST_TYPE_NY_META_PUBLISH);

#define GST_TYPE_NY_META_PUBLISH_METHOD (gst_ny_meta_publish_method_get_type ())
static GType
gst_ny_meta_publish_method_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    {static_cast<gint> (Method::kMqtt), "MQTT (libmosquitto)", "mqtt"},
    {static_cast<gint> (Method::kKafka), "Kafka (librdkafka, when built with it)", "kafka"},
    {static_cast<gint> (Method::kFile), "A file, one line per result (address: its path)", "file"},
    {0, nullptr, nullptr},
  };
  if (g_once_init_enter (&type))
    g_once_init_leave (&type, g_enum_register_static ("GstNyMetaPublishMethod", values));
  return type;
}

static std::string
string_or_empty (const GValue * value)
{
  const gchar *s = g_value_get_string (value);
  return s ? s : "";
}

static void
gst_ny_meta_publish_set_property (GObject * object, guint prop_id, const GValue * value,
    GParamSpec * pspec)
{
  GstNyMetaPublish *self = GST_NY_META_PUBLISH (object);
  GST_OBJECT_LOCK (self);
  NyPublishProps & p = *self->props;
  nypublish::Settings & s = p.settings;
  switch (prop_id) {
    case PROP_METHOD: s.method = static_cast<Method> (g_value_get_enum (value)); break;
    case PROP_ADDRESS: s.address = string_or_empty (value); break;
    case PROP_TOPIC: p.topic = string_or_empty (value); break;
    case PROP_SOURCE: p.source = string_or_empty (value); break;
    case PROP_CLIENT_ID: p.client_id = string_or_empty (value); break;
    case PROP_QOS: s.qos = static_cast<int> (g_value_get_uint (value)); break;
    case PROP_USERNAME: s.username = string_or_empty (value); break;
    case PROP_PASSWORD: s.password = string_or_empty (value); break;
    case PROP_CAFILE: s.cafile = string_or_empty (value); break;
    case PROP_CERTFILE: s.certfile = string_or_empty (value); break;
    case PROP_KEYFILE: s.keyfile = string_or_empty (value); break;
    case PROP_MAX_QUEUE: s.max_queue = g_value_get_uint (value); break;
    case PROP_RECONNECT_INTERVAL: s.reconnect_interval_ms = g_value_get_uint (value); break;
    case PROP_MAX_CONNECT_ATTEMPTS: s.max_connect_attempts = g_value_get_uint (value); break;
    case PROP_FLUSH_TIMEOUT: p.flush_timeout_ms = g_value_get_uint (value); break;
    case PROP_SYNC: p.sync = g_value_get_boolean (value); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec); break;
  }
  GST_OBJECT_UNLOCK (self);
}

static GstStructure *
stats_structure (const nypublish::Stats & s)
{
  return gst_structure_new ("nymetapublish-stats",
      "published", G_TYPE_UINT64, s.published, "queued", G_TYPE_UINT64, s.queued,
      "dropped", G_TYPE_UINT64, s.dropped, "reconnects", G_TYPE_UINT64, s.reconnects,
      "failed", G_TYPE_UINT64, s.failed, "connected", G_TYPE_BOOLEAN, s.connected, nullptr);
}

static void
gst_ny_meta_publish_get_property (GObject * object, guint prop_id, GValue * value,
    GParamSpec * pspec)
{
  GstNyMetaPublish *self = GST_NY_META_PUBLISH (object);
  GST_OBJECT_LOCK (self);
  const NyPublishProps & p = *self->props;
  const nypublish::Settings & s = p.settings;
  auto set_string = [value] (const std::string & v) {
    g_value_set_string (value, v.empty () ? nullptr : v.c_str ());
  };
  switch (prop_id) {
    case PROP_METHOD: g_value_set_enum (value, static_cast<gint> (s.method)); break;
    case PROP_ADDRESS: set_string (s.address); break;
    case PROP_TOPIC: set_string (p.topic); break;
    case PROP_SOURCE: set_string (p.source); break;
    case PROP_CLIENT_ID: set_string (p.client_id); break;
    case PROP_QOS: g_value_set_uint (value, static_cast<guint> (s.qos)); break;
    case PROP_USERNAME: set_string (s.username); break;
    case PROP_CAFILE: set_string (s.cafile); break;
    case PROP_CERTFILE: set_string (s.certfile); break;
    case PROP_KEYFILE: set_string (s.keyfile); break;
    case PROP_MAX_QUEUE: g_value_set_uint (value, s.max_queue); break;
    case PROP_RECONNECT_INTERVAL: g_value_set_uint (value, s.reconnect_interval_ms); break;
    case PROP_MAX_CONNECT_ATTEMPTS: g_value_set_uint (value, s.max_connect_attempts); break;
    case PROP_FLUSH_TIMEOUT: g_value_set_uint (value, p.flush_timeout_ms); break;
    case PROP_SYNC: g_value_set_boolean (value, p.sync); break;
    case PROP_STATS: {
      const auto pub = self->run->publisher;
      g_value_take_boxed (value, stats_structure (pub ? pub->stats () : self->last_stats));
      break;
    }
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec); break;
  }
  GST_OBJECT_UNLOCK (self);
}

/* A substituted value never adds a topic level or a wildcard (MQTT), nor a
 * character Kafka refuses. */
static std::string
topic_safe (const std::string & value, Method method)
{
  std::string out = value.empty () ? "unknown" : value;
  for (char &c : out) {
    const bool kafka_ok = g_ascii_isalnum (c) || c == '.' || c == '_' || c == '-';
    if (method == Method::kKafka ? !kafka_ok : (c == '/' || c == '+' || c == '#'))
      c = '_';
  }
  return out;
}

static std::string
expand_topic (const NyPublishRun & run, const std::string & source, const char *model)
{
  std::string topic = run.topic;
  const std::pair<const char *, std::string> keys[] = {
    {"{source}", source}, {"{element}", run.element}, {"{model}", model ? model : ""} };
  for (const auto & k : keys) {
    std::string::size_type at;
    const std::string value = topic_safe (k.second, run.method);
    while ((at = topic.find (k.first)) != std::string::npos)
      topic.replace (at, std::strlen (k.first), value);
  }
  return topic;
}

/* The topic's problems, or "". */
static std::string
check_topic (const std::string & topic, Method method)
{
  if (topic.empty ())
    return "topic is empty";
  if (method == Method::kMqtt && topic.find_first_of ("+#") != std::string::npos)
    return "topic \"" + topic + "\" has a wildcard (+ or #): a result is published to one "
        "topic; wildcards are for subscribers";
  if (method == Method::kKafka) {
    std::string literal = topic;
    for (const char *k : { "{source}", "{element}", "{model}" })
      for (std::string::size_type at; (at = literal.find (k)) != std::string::npos;)
        literal.erase (at, std::strlen (k));
    if (literal != topic_safe (literal, Method::kKafka))
      return "topic \"" + topic + "\" is not a Kafka topic name (letters, digits, . _ -)";
  }
  return "";
}

static gboolean
gst_ny_meta_publish_start (GstBaseTransform * trans)
{
  GstNyMetaPublish *self = GST_NY_META_PUBLISH (trans);
  GST_OBJECT_LOCK (self);
  const NyPublishProps props = *self->props;
  GST_OBJECT_UNLOCK (self);

  NyPublishRun & run = *self->run;
  gchar *name = gst_object_get_name (GST_OBJECT (self));
  run.element = name;
  g_free (name);
  nypublish::Settings settings = props.settings;
  settings.client_id = !props.client_id.empty () ? props.client_id :
      std::string ("nystream-") + g_get_host_name () + "-" + run.element;
  run.method = settings.method;
  run.topic = !props.topic.empty () ? props.topic :
      settings.method == Method::kKafka ? DEFAULT_KAFKA_TOPIC : DEFAULT_MQTT_TOPIC;
  run.address = settings.address;
  run.sync = props.sync;
  run.flush_timeout_ms = props.flush_timeout_ms;
  run.max_queue = settings.max_queue;
  run.publisher_json = nlohmann::json (settings.client_id).dump ();
  run.seq = 0;
  run.eos_flushed = false;
  run.last_drop_warning_us = 0;

  const std::string topic_problem = settings.method == Method::kFile ? "" :
      check_topic (run.topic, settings.method);
  if (!topic_problem.empty ()) {
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS, ("%s", topic_problem.c_str ()), (nullptr));
    return FALSE;
  }

  /* The publisher's threads report through a weak reference: one that outlives
   * the element (see Publisher::shutdown) then posts nothing. */
  std::shared_ptr<GWeakRef> weak (new GWeakRef, [] (GWeakRef * w) {
    g_weak_ref_clear (w);
    delete w;
  });
  g_weak_ref_init (weak.get (), self);
  auto report = [weak] (bool fatal, const std::string & text, const std::string & debug) {
    GstElement *element = static_cast<GstElement *> (g_weak_ref_get (weak.get ()));
    if (!element)
      return;
    const gchar *dbg = debug.empty () ? nullptr : debug.c_str ();
    if (fatal)
      GST_ELEMENT_ERROR (element, RESOURCE, OPEN_WRITE, ("%s", text.c_str ()), ("%s", dbg));
    else
      GST_ELEMENT_WARNING (element, RESOURCE, WRITE, ("%s", text.c_str ()), ("%s", dbg));
    gst_object_unref (element);
  };
  std::string error;
  auto publisher = nypublish::Publisher::create (settings, report, &error);
  if (!publisher) {
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS, ("%s", error.c_str ()), (nullptr));
    return FALSE;
  }
  GST_OBJECT_LOCK (self);
  run.publisher = std::move (publisher);
  GST_OBJECT_UNLOCK (self);
  GST_INFO_OBJECT (self, "publishing to %s as %s, topic %s", run.address.c_str (),
      settings.client_id.c_str (), run.topic.c_str ());
  return TRUE;
}

static gboolean
gst_ny_meta_publish_stop (GstBaseTransform * trans)
{
  GstNyMetaPublish *self = GST_NY_META_PUBLISH (trans);
  NyPublishRun & run = *self->run;
  GST_OBJECT_LOCK (self);
  auto publisher = std::move (run.publisher);
  run.publisher.reset ();
  GST_OBJECT_UNLOCK (self);
  if (publisher) {
    /* Bounded: after an EOS the queue was already given flush-timeout. */
    const guint64 left = publisher->shutdown (run.eos_flushed ? 0 : run.flush_timeout_ms);
    if (left)
      GST_ELEMENT_WARNING (self, RESOURCE, WRITE,
          ("%" G_GUINT64_FORMAT " results were not delivered to %s (counted in stats as "
              "failed)", left, run.address.c_str ()), (nullptr));
    GST_OBJECT_LOCK (self);
    self->last_stats = publisher->stats ();
    GST_OBJECT_UNLOCK (self);
  }
  run.stream_id.clear ();
  return TRUE;
}

static gboolean
gst_ny_meta_publish_set_caps (GstBaseTransform * trans, GstCaps * incaps, GstCaps * outcaps)
{
  NyPublishRun & run = *GST_NY_META_PUBLISH (trans)->run;
  (void) outcaps;
  ny_result_frame_size (incaps, &run.width, &run.height);
  return TRUE;
}

/* A lost result must be visible: each drop is logged, and an element warning
 * with the running count goes out at most once a second. */
static void
gst_ny_meta_publish_dropped (GstNyMetaPublish * self)
{
  NyPublishRun & run = *self->run;
  const guint64 dropped = run.publisher->stats ().dropped;
  GST_DEBUG_OBJECT (self, "queue full: dropped the oldest result (%" G_GUINT64_FORMAT ")", dropped);
  const gint64 now = g_get_monotonic_time ();
  if (run.last_drop_warning_us && now - run.last_drop_warning_us < G_USEC_PER_SEC)
    return;
  run.last_drop_warning_us = now;
  GST_WARNING_OBJECT (self, "%" G_GUINT64_FORMAT " results dropped", dropped);
  GST_ELEMENT_WARNING (self, RESOURCE, WRITE,
      ("%" G_GUINT64_FORMAT " results dropped so far: the queue (max-queue=%u) is full, "
          "%s is not taking them fast enough", dropped, run.max_queue, run.address.c_str ()),
      (nullptr));
}

/* One message per GstNystreamMeta on buf: nymetaconvert's line with "seq" and
 * "publisher" added; with sync, waits until they are delivered. */
static GstFlowReturn
gst_ny_meta_publish_buffer (GstNyMetaPublish * self, GstBuffer * buf)
{
  NyPublishRun & run = *self->run;
  if (!run.publisher)
    return GST_FLOW_FLUSHING;
  if (run.publisher->fatal ())
    return GST_FLOW_ERROR;   /* already posted */
  GST_OBJECT_LOCK (self);
  const std::string source = !self->props->source.empty () ? self->props->source : run.stream_id;
  GST_OBJECT_UNLOCK (self);

  const NyResultContext where = { GST_BUFFER_PTS (buf), source.c_str (), run.width, run.height };
  gpointer state = nullptr;
  GstMeta *meta;
  bool any = false;
  while ((meta = gst_buffer_iterate_meta_filtered (buf, &state, GST_NYSTREAM_META_API_TYPE))) {
    const GstNystreamMeta *r = reinterpret_cast<const GstNystreamMeta *> (meta);
    nypublish::Message msg;
    ny_result_json_append (msg.payload, *r, where);
    /* The line is one JSON object: the two keys go before its closing brace. */
    msg.payload.pop_back ();
    msg.payload += ",\"seq\":" + std::to_string (run.seq) + ",\"publisher\":" +
        run.publisher_json + "}";
    msg.seq = run.seq++;
    msg.topic = expand_topic (run, source, r->model_name);
    msg.key = run.publisher_json;
    if (run.publisher->push (std::move (msg)))
      gst_ny_meta_publish_dropped (self);
    any = true;
  }
  if (any && run.sync)
    run.publisher->wait_idle (-1);   /* returns early on flush, state change or error */
  return GST_FLOW_OK;
}

static GstFlowReturn
gst_ny_meta_publish_transform_ip (GstBaseTransform * trans, GstBuffer * buf)
{
  return gst_ny_meta_publish_buffer (GST_NY_META_PUBLISH (trans), buf);
}

static gboolean
gst_ny_meta_publish_sink_event (GstBaseTransform * trans, GstEvent * event)
{
  GstNyMetaPublish *self = GST_NY_META_PUBLISH (trans);
  NyPublishRun & run = *self->run;
  switch (GST_EVENT_TYPE (event)) {
    case GST_EVENT_STREAM_START: {
      const gchar *id = nullptr;
      gst_event_parse_stream_start (event, &id);
      run.stream_id = id ? id : "";
      break;
    }
    case GST_EVENT_CUSTOM_DOWNSTREAM:
      if (GstBuffer * carrier = run.publisher ? ny_result_final_carrier (event) : nullptr)
        gst_ny_meta_publish_buffer (self, carrier);
      break;
    case GST_EVENT_FLUSH_START:
      if (run.publisher)
        run.publisher->set_flushing (true);
      break;
    case GST_EVENT_FLUSH_STOP:
      if (run.publisher)
        run.publisher->set_flushing (false);
      break;
    case GST_EVENT_EOS:
      /* Deliver what is queued before the EOS goes on, for flush-timeout at most. */
      if (run.publisher) {
        const guint64 left = run.publisher->wait_idle (run.flush_timeout_ms);
        run.eos_flushed = true;
        if (left && !run.publisher->fatal ())
          GST_ELEMENT_WARNING (self, RESOURCE, WRITE,
              ("%" G_GUINT64_FORMAT " results not yet delivered to %s at EOS after "
                  "flush-timeout (%u ms)", left, run.address.c_str (), run.flush_timeout_ms),
              (nullptr));
      }
      break;
    default:
      break;
  }
  return GST_BASE_TRANSFORM_CLASS (gst_ny_meta_publish_parent_class)->sink_event (trans, event);
}

static GstStateChangeReturn
gst_ny_meta_publish_change_state (GstElement * element, GstStateChange transition)
{
  GstNyMetaPublish *self = GST_NY_META_PUBLISH (element);
  /* A sync wait must not hold the streaming thread while the pads deactivate. */
  if (transition == GST_STATE_CHANGE_PAUSED_TO_READY) {
    GST_OBJECT_LOCK (self);
    auto publisher = self->run->publisher;
    GST_OBJECT_UNLOCK (self);
    if (publisher)
      publisher->set_flushing (true);
  }
  return GST_ELEMENT_CLASS (gst_ny_meta_publish_parent_class)->change_state (element, transition);
}

static void
gst_ny_meta_publish_finalize (GObject * object)
{
  GstNyMetaPublish *self = GST_NY_META_PUBLISH (object);
  delete self->props;
  delete self->run;
  G_OBJECT_CLASS (gst_ny_meta_publish_parent_class)->finalize (object);
}

static void
install_string (GObjectClass * klass, guint id, const char *name, const char *nick,
    const char *blurb, const char *def, GParamFlags rw = G_PARAM_READWRITE)
{
  g_object_class_install_property (klass, id, g_param_spec_string (name, nick, blurb, def,
          (GParamFlags) (rw | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY)));
}

static void
install_uint (GObjectClass * klass, guint id, const char *name, const char *nick,
    const char *blurb, guint min, guint max, guint def)
{
  g_object_class_install_property (klass, id, g_param_spec_uint (name, nick, blurb, min, max,
          def, (GParamFlags) (G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
              GST_PARAM_MUTABLE_READY)));
}

static void
gst_ny_meta_publish_class_init (GstNyMetaPublishClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstBaseTransformClass *trans_class = GST_BASE_TRANSFORM_CLASS (klass);

  GST_DEBUG_CATEGORY_INIT (gst_ny_meta_publish_debug, "nymetapublish", 0,
      "Nystream results to MQTT, Kafka or a file");
  gobject_class->set_property = gst_ny_meta_publish_set_property;
  gobject_class->get_property = gst_ny_meta_publish_get_property;
  gobject_class->finalize = gst_ny_meta_publish_finalize;

  g_object_class_install_property (gobject_class, PROP_METHOD,
      g_param_spec_enum ("method", "Method", "Where results go",
          GST_TYPE_NY_META_PUBLISH_METHOD, static_cast<gint> (DEFAULT_METHOD),
          (GParamFlags) (G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY)));
  install_string (gobject_class, PROP_ADDRESS, "address", "Address",
      "MQTT broker host:port (8883 by default with cafile), Kafka bootstrap servers "
      "(host:port,...), or the file's path for method=file", DEFAULT_ADDRESS);
  install_string (gobject_class, PROP_TOPIC, "topic", "Topic",
      "Topic of each result; {source}, {element} and {model} are replaced (/ + # and, for "
      "Kafka, anything but letters, digits, . _ - become _). Default: "
      DEFAULT_MQTT_TOPIC " (MQTT), " DEFAULT_KAFKA_TOPIC " (Kafka)", nullptr);
  g_object_class_install_property (gobject_class, PROP_SOURCE,
      g_param_spec_string ("source", "Source",
          "Value of each result's \"source\" key (default: the stream id)", nullptr,
          (GParamFlags) (G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS)));
  install_string (gobject_class, PROP_CLIENT_ID, "client-id", "Client id",
      "MQTT client id / Kafka client.id, also each result's \"publisher\" key; keep it fixed "
      "so the broker resumes the session (default: nystream-<host name>-<element name>)",
      nullptr);
  install_uint (gobject_class, PROP_QOS, "qos", "QoS",
      "MQTT quality of service: 0 at most once, 1 at least once (duplicates carry the same "
      "seq), 2 exactly once", 0, 2, DEFAULT_QOS);
  install_string (gobject_class, PROP_USERNAME, "username", "User name",
      "MQTT user name / Kafka SASL PLAIN user name", nullptr);
  install_string (gobject_class, PROP_PASSWORD, "password", "Password",
      "Password for username", nullptr, G_PARAM_WRITABLE);
  install_string (gobject_class, PROP_CAFILE, "cafile", "CA file",
      "PEM file of the CA that signed the broker's certificate: enables TLS", nullptr);
  install_string (gobject_class, PROP_CERTFILE, "certfile", "Certificate file",
      "PEM client certificate, for brokers that require one (with keyfile)", nullptr);
  install_string (gobject_class, PROP_KEYFILE, "keyfile", "Key file",
      "PEM private key of certfile", nullptr);
  install_uint (gobject_class, PROP_MAX_QUEUE, "max-queue", "Max queue",
      "Results held while the broker is away or slow (besides up to 1000 handed to the "
      "client library, awaiting acknowledgement); when full the oldest is dropped, counted "
      "and warned about", 1, G_MAXUINT, DEFAULT_MAX_QUEUE);
  install_uint (gobject_class, PROP_RECONNECT_INTERVAL, "reconnect-interval",
      "Reconnect interval", "Milliseconds before the first reconnection attempt; doubled "
      "after each failure up to 30 s", 1, G_MAXUINT, DEFAULT_RECONNECT_INTERVAL);
  install_uint (gobject_class, PROP_MAX_CONNECT_ATTEMPTS, "max-connect-attempts",
      "Max connect attempts", "Failed attempts to reach the MQTT broker at start before it "
      "is an error (as gvametapublish); 0: keep trying, queueing meanwhile. Once connected, "
      "a lost broker is always retried", 0, G_MAXUINT, DEFAULT_MAX_CONNECT_ATTEMPTS);
  install_uint (gobject_class, PROP_FLUSH_TIMEOUT, "flush-timeout", "Flush timeout",
      "Milliseconds the EOS (or a stop without EOS) waits for queued results to be "
      "delivered; what is left then is warned about and counted failed", 0, G_MAXUINT,
      DEFAULT_FLUSH_TIMEOUT);
  g_object_class_install_property (gobject_class, PROP_SYNC,
      g_param_spec_boolean ("sync", "Sync",
          "Hold each buffer until its results are delivered (acknowledged with QoS >= 1)",
          DEFAULT_SYNC, (GParamFlags) (G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
              GST_PARAM_MUTABLE_READY)));
  g_object_class_install_property (gobject_class, PROP_STATS,
      g_param_spec_boxed ("stats", "Statistics",
          "published (delivered), queued (not yet), dropped (queue full), reconnects, failed "
          "(refused or undelivered at stop), connected", GST_TYPE_STRUCTURE,
          (GParamFlags) (G_PARAM_READABLE | G_PARAM_STATIC_STRINGS)));

  gst_element_class_add_pad_template (element_class, gst_pad_template_new ("sink",
          GST_PAD_SINK, GST_PAD_ALWAYS, gst_caps_new_any ()));
  gst_element_class_add_pad_template (element_class, gst_pad_template_new ("src",
          GST_PAD_SRC, GST_PAD_ALWAYS, gst_caps_new_any ()));
  gst_element_class_set_static_metadata (element_class, "Nystream results to MQTT or Kafka",
      "Filter/Metadata",
      "Publishes each Nystream result on the passing buffers and in the detectors' results "
      "event at EOS (nymetaconvert's JSON line plus seq and publisher) to MQTT, Kafka or a "
      "file, from its own thread, queueing while the broker is away",
      "Nystream developers");

  element_class->change_state = GST_DEBUG_FUNCPTR (gst_ny_meta_publish_change_state);
  trans_class->start = GST_DEBUG_FUNCPTR (gst_ny_meta_publish_start);
  trans_class->stop = GST_DEBUG_FUNCPTR (gst_ny_meta_publish_stop);
  trans_class->set_caps = GST_DEBUG_FUNCPTR (gst_ny_meta_publish_set_caps);
  trans_class->sink_event = GST_DEBUG_FUNCPTR (gst_ny_meta_publish_sink_event);
  trans_class->transform_ip = GST_DEBUG_FUNCPTR (gst_ny_meta_publish_transform_ip);
  trans_class->transform_ip_on_passthrough = TRUE;
}

static void
gst_ny_meta_publish_init (GstNyMetaPublish * self)
{
  self->props = new NyPublishProps ();
  self->run = new NyPublishRun ();
  gst_base_transform_set_passthrough (GST_BASE_TRANSFORM (self), TRUE);
}
