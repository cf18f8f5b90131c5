/* method=kafka through librdkafka: the producer queues, batches, reconnects
 * (reconnect.backoff.ms from reconnect-interval) and retries by itself until
 * message.timeout.ms; each message is confirmed by its delivery report, served
 * by rd_kafka_poll() on our network thread. The message key is the publisher,
 * so one publisher's results stay in one partition, in order. */
#include <librdkafka/rdkafka.h>

#include <atomic>
#include <string>

#include "publisher.h"

namespace nypublish {

namespace {

class KafkaTransport : public Transport {
 public:
  explicit KafkaTransport (Publisher & publisher) : pub_ (publisher) {}
  ~KafkaTransport () override {
    if (rk_) {
      /* What is still queued was counted failed by shutdown(): do not wait for it. */
      rd_kafka_purge (rk_, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
      rd_kafka_poll (rk_, 0);
      rd_kafka_destroy (rk_);
    }
  }

  bool open (std::string * error) override {
    const Settings & s = pub_.settings ();
    rd_kafka_conf_t *conf = rd_kafka_conf_new ();
    const bool tls = !s.cafile.empty (), sasl = !s.username.empty ();
    const std::pair<std::string, std::string> values[] = {
      {"bootstrap.servers", s.address},
      {"client.id", s.client_id},
      {"linger.ms", "5"},
      {"queue.buffering.max.messages", std::to_string (10 * kWindow)},
      {"reconnect.backoff.ms", std::to_string (std::max (s.reconnect_interval_ms, 1u))},
      {"reconnect.backoff.max.ms",
        std::to_string (std::max (kMaxReconnectMs, s.reconnect_interval_ms))},
      {"security.protocol", tls ? (sasl ? "sasl_ssl" : "ssl") : (sasl ? "sasl_plaintext" : "plaintext")},
    };
    char errstr[512];
    auto set = [&] (const std::string & key, const std::string & value, const char *property) {
      if (rd_kafka_conf_set (conf, key.c_str (), value.c_str (), errstr, sizeof errstr) ==
          RD_KAFKA_CONF_OK)
        return true;
      *error = std::string (property) + " \"" + value + "\": " + errstr;
      return false;
    };
    bool ok = true;
    for (const auto & kv : values)
      ok = ok && set (kv.first, kv.second, "address");
    if (sasl)
      ok = ok && set ("sasl.mechanisms", "PLAIN", "username") &&
          set ("sasl.username", s.username, "username") &&
          set ("sasl.password", s.password, "password");
    if (tls)
      ok = ok && set ("ssl.ca.location", s.cafile, "cafile");
    if (!s.certfile.empty ())
      ok = ok && set ("ssl.certificate.location", s.certfile, "certfile");
    if (!s.keyfile.empty ())
      ok = ok && set ("ssl.key.location", s.keyfile, "keyfile");
    if (!ok) {
      rd_kafka_conf_destroy (conf);
      return false;
    }
    rd_kafka_conf_set_opaque (conf, this);
    rd_kafka_conf_set_dr_msg_cb (conf, [] (rd_kafka_t *, const rd_kafka_message_t * m, void *self) {
      auto *t = static_cast<KafkaTransport *> (self);
      const guint64 handle = reinterpret_cast<guintptr> (m->_private);
      if (m->err)
        t->pub_.failed (handle);
      else
        t->pub_.delivered (handle);
    });
    rd_kafka_conf_set_error_cb (conf, [] (rd_kafka_t * rk, int err, const char *reason, void *self) {
      static_cast<KafkaTransport *> (self)->on_error (rk, err, reason);
    });
    /* rd_kafka_new takes conf on success only. It also loads the TLS files. */
    rk_ = rd_kafka_new (RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!rk_) {
      rd_kafka_conf_destroy (conf);
      *error = std::string ("Kafka producer for address \"") + s.address + "\": " + errstr;
      return false;
    }
    return true;
  }

  void run () override {
    pub_.connection_up (false);   /* the producer queues while brokers are away */
    while (!pub_.quitting ())
      rd_kafka_poll (rk_, 100);
  }

  Send send (const Message & msg, guint64 * handle, std::string * why) override {
    *handle = ++next_handle_;
    const rd_kafka_resp_err_t err = rd_kafka_producev (rk_,
        RD_KAFKA_V_TOPIC (msg.topic.c_str ()),
        RD_KAFKA_V_VALUE (const_cast<char *> (msg.payload.data ()), msg.payload.size ()),
        RD_KAFKA_V_KEY (msg.key.data (), msg.key.size ()),
        RD_KAFKA_V_MSGFLAGS (RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_OPAQUE (reinterpret_cast<void *> (static_cast<guintptr> (*handle))),
        RD_KAFKA_V_END);
    if (!err)
      return Send::kHanded;
    *why = std::string ("Kafka topic \"") + msg.topic + "\": " + rd_kafka_err2str (err);
    return Send::kRefused;
  }

 private:
  void on_error (rd_kafka_t * rk, int err, const char *reason) {
    const Settings & s = pub_.settings ();
    if (err == RD_KAFKA_RESP_ERR__AUTHENTICATION)
      pub_.report (true, "The Kafka brokers at " + s.address + " refused username \"" +
          s.username + "\": " + reason);
    else if (err == RD_KAFKA_RESP_ERR__FATAL || err == RD_KAFKA_RESP_ERR__SSL)
      pub_.report (true, "Kafka producer for " + s.address + ": " + reason +
          (err == RD_KAFKA_RESP_ERR__SSL ? " (check cafile, certfile, keyfile)" : ""));
    else if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
      pub_.report (false, "All Kafka brokers at " + s.address + " are down (" + reason +
          "): results are queued and sent when they are back");
    (void) rk;
  }

  Publisher & pub_;
  rd_kafka_t *rk_ = nullptr;
  guint64 next_handle_ = 0;   /* feeder thread only */
};

}  // namespace

std::unique_ptr<Transport>
make_kafka_transport (Publisher & publisher)
{
  return std::make_unique<KafkaTransport> (publisher);
}

}  // namespace nypublish
