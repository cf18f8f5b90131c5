/* The publishing half of nymetapublish, without pads or buffers: a bounded queue
 * the streaming thread fills and a feeder thread empties into a transport (MQTT,
 * Kafka, a file) that later confirms each message it was handed.
 *
 *   auto pub = nypublish::Publisher::create (settings, report, &error);
 *   pub->push ({topic, payload, seq});      // never waits for the network
 *   pub->wait_idle (5000);                  // EOS: delivered, or the count left
 *   pub->shutdown (1000);                   // stop: bounded, then counted failed
 *
 * A message stays counted in `queued` until its transport confirms it (MQTT
 * QoS >= 1: the broker's PUBACK/PUBCOMP; Kafka: the delivery report; QoS 0 and
 * files: once written). When the queue is full the OLDEST waiting message is
 * dropped and counted; messages already handed to the client library are not
 * dropped, at most kWindow of them (the library re-sends them after a reconnect).
 *
 * Threading: push(), wait_idle(), set_flushing(), stats() and shutdown() from any
 * thread; transports call back from their own threads. The publisher lives in a
 * shared_ptr its threads also hold, so a thread stuck in a blocking connect()
 * past shutdown's deadline can be detached safely. */
#ifndef NYSTREAM_PLUGIN_PUBLISHER_H
#define NYSTREAM_PLUGIN_PUBLISHER_H

#include <glib.h>

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>

namespace nypublish {

enum class Method { kMqtt, kKafka, kFile };

/* The element's properties, copied at start. */
struct Settings {
  Method method = Method::kMqtt;
  std::string address = "localhost:1883";  /* host:port, bootstrap servers or a path */
  std::string client_id;                   /* resolved by the element, never empty */
  int qos = 1;
  std::string username, password;
  std::string cafile, certfile, keyfile;
  guint max_queue = 10000;
  guint reconnect_interval_ms = 1000;      /* doubled per failure up to kMaxReconnectMs */
  guint max_connect_attempts = 1;          /* before the first connection; 0: forever */
};

constexpr guint kMaxReconnectMs = 30000;
constexpr std::size_t kWindow = 1000;      /* handed to the library, not yet confirmed */

struct Message {
  std::string topic, payload;
  std::string key;                         /* Kafka: the publisher, one partition each */
  guint64 seq = 0;
};

struct Stats {
  guint64 published = 0, dropped = 0, reconnects = 0, failed = 0, queued = 0;
  bool connected = false;
};

/* How problems reach the element: fatal ones become GST_ELEMENT_ERROR (the
 * publisher then stops sending), the others element warnings. */
using Report = std::function<void (bool fatal, const std::string & text,
    const std::string & debug)>;

class Publisher;

/* One protocol. open() at start (no network, no waiting), run() is the body of
 * the network thread, send() is called by the feeder thread only. */
class Transport {
 public:
  enum class Send { kHanded, kDone, kRetry, kRefused };
  virtual ~Transport () = default;
  /* false and *error (naming the property and value) when the settings cannot work. */
  virtual bool open (std::string * error) = 0;
  /* Connects, reconnects and serves the library's callbacks until
   * Publisher::quitting(); may return at once (a file has no network). */
  virtual void run () = 0;
  /* Asks run() to return soon. */
  virtual void wake () {}
  /* kHanded: *handle set, delivered()/failed() with it follows; kDone: written
   * (QoS 0, file); kRetry: not connected now; kRefused: never deliverable (*why). */
  virtual Send send (const Message & msg, guint64 * handle, std::string * why) = 0;
};

class Publisher : public std::enable_shared_from_this<Publisher> {
 public:
  static std::shared_ptr<Publisher> create (const Settings & settings, Report report,
      std::string * error);
  ~Publisher ();

  /* Queues msg; when full drops the oldest waiting message. Returns how many
   * were dropped (0 or 1). */
  guint push (Message && msg);
  /* Waits until everything pushed is confirmed or given up, timeout_ms passes
   * (< 0: no limit) or set_flushing(true). Returns how many are still queued. */
  guint64 wait_idle (gint64 timeout_ms);
  void set_flushing (bool flushing);
  /* Waits up to timeout_ms for the queue to empty, ends the threads (at most
   * about a second more) and counts what is left as failed. Returns that count. */
  guint64 shutdown (gint64 timeout_ms);
  Stats stats ();

  /* --- for transports --- */
  const Settings & settings () const { return settings_; }
  bool quitting ();
  /* A fatal problem was reported: nothing more will be sent. */
  bool fatal ();
  /* Sleeps up to ms, less when quitting. */
  void sleep_ms (guint ms);
  void delivered (guint64 handle);
  void failed (guint64 handle);
  void connection_up (bool reconnected);
  void connection_down ();
  /* A fatal report also stops the feeder: nothing more is sent. */
  void report (bool fatal, const std::string & text, const std::string & debug = "");

 private:
  Publisher (const Settings & settings, Report report);
  void feed ();
  void resolve_locked (bool ok);

  const Settings settings_;
  const Report report_;
  std::unique_ptr<Transport> transport_;

  std::mutex mutex_;
  std::condition_variable work_;   /* feeder: something to send, or quit */
  std::condition_variable idle_;   /* waiters: a message resolved, or flushing */
  std::condition_variable stop_;   /* sleep_ms(): quit or fatal */
  std::deque<Message> pending_;    /* not yet handed to the library */
  std::unordered_map<guint64, guint64> inflight_;  /* handle -> seq */
  std::unordered_set<guint64> early_;  /* confirmed before send() returned */
  bool sending_ = false, ready_ = false, quit_ = false, fatal_ = false, flushing_ = false;
  guint64 epoch_ = 0;              /* connection_up count: a stale kRetry is ignored */
  Stats stats_;
  int running_ = 0;                /* threads not yet finished */
  std::condition_variable exited_;
  std::thread feeder_, network_;
};

/* Transports, each in its own file. */
std::unique_ptr<Transport> make_mqtt_transport (Publisher & publisher);
std::unique_ptr<Transport> make_kafka_transport (Publisher & publisher);  /* nullptr without rdkafka */
std::unique_ptr<Transport> make_file_transport (Publisher & publisher);

/* "host:port" (IPv6 as "[::1]:port"); false when the port is not a number. */
bool split_host_port (const std::string & address, int default_port, std::string * host,
    int *port);

}  // namespace nypublish

#endif
