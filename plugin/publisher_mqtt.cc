/* method=mqtt through libmosquitto (2.0), in threaded mode on our own network
 * thread: mosquitto_loop() there, mosquitto_publish() from the feeder thread
 * (it queues the packet and wakes the loop through libmosquitto's socket pair).
 * Our own loop rather than mosquitto_loop_start() because its reconnect delay
 * is whole seconds and grows quadratically; ours doubles from
 * reconnect-interval (milliseconds) up to kMaxReconnectMs.
 *
 * Delivery with QoS >= 1: libmosquitto keeps every message it was handed in its
 * own out-list until the PUBACK (PUBCOMP for 2) and re-sends those still
 * unconfirmed after a reconnect (message__reconnect_reset + retry_check, also
 * for a message published while the socket was down: it is queued before the
 * send fails with MOSQ_ERR_NO_CONN). So a message is handed once, confirmed by
 * on_publish(mid), and our queue only holds what the library has not been given
 * yet; a broker that restarts without its state gets the unconfirmed ones again
 * (consumers see a duplicate at worst: "seq" tells them). clean_session=false
 * with a fixed client id keeps the session (QoS 2 state) on a broker that
 * persists it. With QoS 0 a message is delivered once written (at most once). */
#include <mosquitto.h>

#include <atomic>
#include <cstdio>
#include <cstring>

#include "publisher.h"

namespace nypublish {

namespace {

constexpr int kKeepaliveS = 30;
constexpr int kLibraryInflight = 100;  /* unacknowledged on the wire */

bool
readable (const std::string & path)
{
  FILE *f = std::fopen (path.c_str (), "r");
  if (f)
    std::fclose (f);
  return f != nullptr;
}

class MqttTransport : public Transport {
 public:
  explicit MqttTransport (Publisher & publisher) : pub_ (publisher) {}
  ~MqttTransport () override {
    if (mosq_)
      mosquitto_destroy (mosq_);
  }

  bool open (std::string * error) override {
    static std::once_flag init;
    std::call_once (init, [] { mosquitto_lib_init (); });
    const Settings & s = pub_.settings ();
    if (!split_host_port (s.address, s.cafile.empty () ? 1883 : 8883, &host_, &port_)) {
      *error = "address \"" + s.address + "\" is not host:port";
      return false;
    }
    /* The TLS files are checked here, at start, so a typo is an error now and
     * not a connection that keeps failing. */
    const std::pair<const char *, const std::string *> files[] = {
      {"cafile", &s.cafile}, {"certfile", &s.certfile}, {"keyfile", &s.keyfile} };
    for (const auto & f : files) {
      if (!f.second->empty () && !readable (*f.second)) {
        *error = std::string (f.first) + " \"" + *f.second + "\" cannot be read: " +
            std::strerror (errno);
        return false;
      }
    }
    if (s.certfile.empty () != s.keyfile.empty ()) {
      *error = "certfile and keyfile go together (a client certificate and its key)";
      return false;
    }
    if (!s.certfile.empty () && s.cafile.empty ()) {
      *error = "certfile needs cafile (the CA that signed the broker's certificate)";
      return false;
    }
    mosq_ = mosquitto_new (s.client_id.c_str (), false /* clean_session */, this);
    if (!mosq_) {
      *error = "client-id \"" + s.client_id + "\": could not make an MQTT client: " +
          std::strerror (errno);
      return false;
    }
    mosquitto_threaded_set (mosq_, true);
    mosquitto_int_option (mosq_, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
    mosquitto_max_inflight_messages_set (mosq_, kLibraryInflight);
    /* Small messages: without it Nagle holds each behind the last one's ACK. */
    mosquitto_int_option (mosq_, MOSQ_OPT_TCP_NODELAY, 1);
    if (!s.username.empty () && mosquitto_username_pw_set (mosq_, s.username.c_str (),
            s.password.empty () ? nullptr : s.password.c_str ()) != MOSQ_ERR_SUCCESS) {
      *error = "username \"" + s.username + "\" is not valid UTF-8";
      return false;
    }
    if (!s.cafile.empty ()) {
      const int rc = mosquitto_tls_set (mosq_, s.cafile.c_str (), nullptr,
          s.certfile.empty () ? nullptr : s.certfile.c_str (),
          s.keyfile.empty () ? nullptr : s.keyfile.c_str (), nullptr);
      if (rc != MOSQ_ERR_SUCCESS) {
        *error = "cafile \"" + s.cafile + "\" / certfile / keyfile: " + mosquitto_strerror (rc);
        return false;
      }
    }
    mosquitto_connect_callback_set (mosq_, [] (mosquitto *, void *self, int rc) {
      static_cast<MqttTransport *> (self)->on_connect (rc);
    });
    mosquitto_publish_callback_set (mosq_, [] (mosquitto *, void *self, int mid) {
      static_cast<MqttTransport *> (self)->pub_.delivered (static_cast<guint64> (mid));
    });
    return true;
  }

  void run () override {
    const Settings & s = pub_.settings ();
    guint delay = std::max (s.reconnect_interval_ms, 1u);
    guint attempts = 0;
    bool socket_up = false, warned = false, first = true;
    while (!pub_.quitting ()) {
      if (!socket_up) {
        /* Blocking TCP connect (and TLS setup); the CONNACK comes in the loop. */
        const int rc = first ? mosquitto_connect (mosq_, host_.c_str (), port_, kKeepaliveS)
            : mosquitto_reconnect (mosq_);
        first = false;
        if (rc == MOSQ_ERR_SUCCESS) {
          socket_up = true;
          continue;
        }
        if (!connected_once_ && rc == MOSQ_ERR_TLS) {
          pub_.report (true, tls_problem (), mosquitto_strerror (rc));
          return;
        }
        attempts++;
        const std::string why = rc == MOSQ_ERR_ERRNO ? std::strerror (errno) : mosquitto_strerror (rc);
        if (!connected_once_ && s.max_connect_attempts && attempts >= s.max_connect_attempts) {
          pub_.report (true, "Could not connect to the MQTT broker at " + s.address + " (" +
              std::to_string (attempts) + " attempt(s), max-connect-attempts=" +
              std::to_string (s.max_connect_attempts) + "): " + why);
          return;
        }
        if (!warned) {
          pub_.report (false, "The MQTT broker at " + s.address + " is unreachable (" + why +
              "): results are queued (max-queue=" + std::to_string (s.max_queue) +
              ") and sent when it is back; retrying");
          warned = true;
        }
        pub_.sleep_ms (delay);
        delay = std::min (delay * 2, std::max (kMaxReconnectMs, s.reconnect_interval_ms));
        continue;
      }
      const int rc = mosquitto_loop (mosq_, 1000, 1);
      if (rc == MOSQ_ERR_SUCCESS)
        continue;
      socket_up = false;
      if (pub_.quitting ())
        break;
      if (rc == MOSQ_ERR_TLS && !connected_once_) {
        pub_.report (true, tls_problem (), mosquitto_strerror (rc));
        return;
      }
      if (connected_) {
        connected_ = false;
        pub_.connection_down ();
        pub_.report (false, "Lost the MQTT broker at " + s.address + " (" +
            mosquitto_strerror (rc) + "): reconnecting; results are queued meanwhile");
        delay = std::max (s.reconnect_interval_ms, 1u);
        warned = true;
      }
      pub_.sleep_ms (delay);
      delay = std::min (delay * 2, std::max (kMaxReconnectMs, s.reconnect_interval_ms));
    }
    /* Quitting: a clean DISCONNECT, so the broker drops no will and logs no error. */
    if (socket_up) {
      mosquitto_disconnect (mosq_);
      mosquitto_loop (mosq_, 100, 1);
    }
  }

  void wake () override {
    /* Breaks mosquitto_loop()'s select through the library's socket pair. */
    mosquitto_disconnect (mosq_);
  }

  Send send (const Message & msg, guint64 * handle, std::string * why) override {
    int mid = 0;
    const int qos = pub_.settings ().qos;
    const int rc = mosquitto_publish (mosq_, &mid, msg.topic.c_str (),
        static_cast<int> (msg.payload.size ()), msg.payload.data (), qos, false);
    if (rc == MOSQ_ERR_SUCCESS || (rc == MOSQ_ERR_NO_CONN && qos > 0)) {
      /* NO_CONN with QoS > 0: already in the library's out-list (see the top). */
      *handle = static_cast<guint64> (mid);
      return qos > 0 ? Send::kHanded : Send::kDone;
    }
    if (rc == MOSQ_ERR_NO_CONN || rc == MOSQ_ERR_CONN_LOST)
      return Send::kRetry;
    *why = std::string ("mosquitto_publish on \"") + msg.topic + "\": " + mosquitto_strerror (rc);
    return Send::kRefused;
  }

 private:
  void on_connect (int rc) {
    const Settings & s = pub_.settings ();
    if (rc == 0) {
      connected_ = true;
      pub_.connection_up (connected_once_);
      connected_once_ = true;
      return;
    }
    std::string text;
    if (rc == 4 || rc == 5)   /* bad user name or password; not authorised */
      text = "The MQTT broker at " + s.address + " refused username \"" + s.username +
          "\": " + mosquitto_connack_string (rc);
    else if (rc == 2)
      text = "The MQTT broker at " + s.address + " rejected client-id \"" + s.client_id + "\"";
    else
      text = "The MQTT broker at " + s.address + " refused the connection: " +
          mosquitto_connack_string (rc);
    pub_.report (true, text);
  }

  std::string tls_problem () const {
    const Settings & s = pub_.settings ();
    return "TLS with the MQTT broker at " + s.address + " failed: check cafile \"" + s.cafile +
        "\"" + (s.certfile.empty () ? "" : ", certfile \"" + s.certfile + "\", keyfile \"" +
        s.keyfile + "\"") + " and that the broker's certificate names the host";
  }

  Publisher & pub_;
  mosquitto *mosq_ = nullptr;
  std::string host_;
  int port_ = 1883;
  /* Network thread only (callbacks run there). */
  bool connected_ = false, connected_once_ = false;
};

}  // namespace

std::unique_ptr<Transport>
make_mqtt_transport (Publisher & publisher)
{
  return std::make_unique<MqttTransport> (publisher);
}

}  // namespace nypublish
