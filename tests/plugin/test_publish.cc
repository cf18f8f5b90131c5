// Issue 20, nymetapublish: every result reaches a real mosquitto broker (started
// here on 127.0.0.1, a free port) exactly once after dedup by (publisher, seq),
// equal to nymetaconvert's line; a broker restart loses nothing; a broker down
// at start queues (max-connect-attempts=0, dropping the oldest when full) or is
// an error (the default, as gvametapublish); TLS, refused credentials, wildcard
// topics and unreadable TLS files; Kafka on librdkafka's mock cluster.
// `test-publish --benchmark`: results/s to a loopback broker and the delay the
// element adds to each buffer.
#include <arpa/inet.h>
#include <gst/app/gstappsrc.h>
#include <gst/check/gstharness.h>
#include <gst/gst.h>
#include <gtest/gtest.h>
#include <mosquitto.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#ifdef NYSTREAM_TEST_KAFKA
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#endif

#include "gstnystreammeta.h"

namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

std::string test_file(const char* name) { return env("NYSTREAM_TEST_MODELS") + "/" + name; }

bool wait_until(const std::function<bool()>& done, double seconds) {
  const auto end = Clock::now() + std::chrono::duration<double>(seconds);
  while (!done()) {
    if (Clock::now() > end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

struct TempDir {
  std::string path;
  TempDir() {
    gchar* p = g_dir_make_tmp("nymetapublish-XXXXXX", nullptr);
    path = p;
    g_free(p);
  }
  ~TempDir() {
    if (!std::getenv("NYSTREAM_KEEP_TMP")) std::system(("rm -rf '" + path + "'").c_str());
  }
  std::string operator/(const std::string& name) const { return path + "/" + name; }
};

int free_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

bool port_open(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool ok = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  close(fd);
  return ok;
}

// Runs a program to completion; its output goes to the test log.
void run_program(const std::vector<std::string>& args) {
  std::vector<gchar*> argv;
  for (const auto& a : args) argv.push_back(const_cast<gchar*>(a.c_str()));
  argv.push_back(nullptr);
  gint status = -1;
  GError* error = nullptr;
  gchar *out = nullptr, *err = nullptr;
  ASSERT_TRUE(g_spawn_sync(nullptr, argv.data(), nullptr, G_SPAWN_DEFAULT, nullptr, nullptr, &out, &err,
                           &status, &error))
      << args[0] << ": " << (error ? error->message : "");
  EXPECT_TRUE(g_spawn_check_wait_status(status, nullptr)) << args[0] << " failed: " << err;
  g_free(out);
  g_free(err);
}

// A mosquitto broker on 127.0.0.1:port with the given extra configuration.
// persistence: its state (sessions, queued messages) is saved on SIGTERM and
// restored at the next start.
class Broker {
 public:
  Broker(const TempDir& dir, int port, std::string conf = "", bool persistence = false)
      : dir_(dir), port_(port) {
    conf_path_ = dir / ("mosquitto-" + std::to_string(port) + ".conf");
    std::ofstream f(conf_path_);
    f << "user root\n"  // no privilege drop: the test's files stay readable
      << "log_dest file " << (dir / ("mosquitto-" + std::to_string(port) + ".log")) << "\n"
      << "log_type all\n"
      << "max_queued_messages 0\nmax_inflight_messages 100\n"
      // Without it each PUBACK waits behind Nagle (~40 ms): sync=true would crawl.
      << "set_tcp_nodelay true\n";
    if (persistence)
      f << "persistence true\npersistence_location " << dir.path << "/\nautosave_interval 3600\n";
    else
      f << "persistence false\n";
    if (conf.empty()) conf = "listener " + std::to_string(port) + " 127.0.0.1\nallow_anonymous true\n";
    f << conf;
  }
  ~Broker() { stop(SIGKILL); }
  void start() {
    const std::string exe = env("NYSTREAM_MOSQUITTO");
    ASSERT_FALSE(exe.empty()) << "mosquitto not found at build time: apt-get install mosquitto";
    gchar* argv[] = {const_cast<gchar*>(exe.c_str()), const_cast<gchar*>("-c"),
                     const_cast<gchar*>(conf_path_.c_str()), nullptr};
    GError* error = nullptr;
    ASSERT_TRUE(g_spawn_async(nullptr, argv, nullptr, G_SPAWN_DO_NOT_REAP_CHILD, nullptr, nullptr, &pid_,
                              &error))
        << (error ? error->message : "");
    ASSERT_TRUE(wait_until([this] { return port_open(port_); }, 10)) << "mosquitto did not listen";
  }
  void stop(int sig) {
    if (pid_ <= 0) return;
    kill(pid_, sig);
    int status;
    waitpid(pid_, &status, 0);
    pid_ = -1;
  }
  int port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  const TempDir& dir_;
  int port_;
  std::string conf_path_;
  GPid pid_ = -1;
};

// A QoS 1 subscriber with a persistent session (clean_session=false), its own
// network thread and automatic reconnects; every message is parsed and kept by
// (publisher, seq).
class Subscriber {
 public:
  Subscriber(int port, const std::string& id, const std::string& topic) : topic_(topic) {
    mosquitto_lib_init();
    mosq_ = mosquitto_new(id.c_str(), false, this);
    mosquitto_reconnect_delay_set(mosq_, 1, 1, false);
    mosquitto_connect_callback_set(mosq_, [](mosquitto* m, void* self, int rc) {
      if (rc == 0) mosquitto_subscribe(m, nullptr, static_cast<Subscriber*>(self)->topic_.c_str(), 1);
    });
    mosquitto_subscribe_callback_set(mosq_, [](mosquitto*, void* self, int, int, const int*) {
      static_cast<Subscriber*>(self)->subscribed_ = true;
    });
    mosquitto_message_callback_set(mosq_, [](mosquitto*, void* self, const mosquitto_message* m) {
      static_cast<Subscriber*>(self)->on_message(m);
    });
    mosquitto_connect_async(mosq_, "127.0.0.1", port, 30);
    mosquitto_loop_start(mosq_);
  }
  ~Subscriber() {
    mosquitto_disconnect(mosq_);
    mosquitto_loop_stop(mosq_, false);
    mosquitto_destroy(mosq_);
  }
  bool wait_subscribed(double s) { return wait_until([this] { return subscribed_.load(); }, s); }
  std::size_t unique() {
    std::lock_guard<std::mutex> lock(mutex_);
    return messages_.size();
  }
  bool wait_unique(std::size_t n, double s) { return wait_until([&] { return unique() >= n; }, s); }
  std::size_t duplicates() {
    std::lock_guard<std::mutex> lock(mutex_);
    return duplicates_;
  }
  std::size_t bad() {
    std::lock_guard<std::mutex> lock(mutex_);
    return bad_;
  }
  // The payloads of one publisher, by seq.
  std::map<guint64, json> of(const std::string& publisher) {
    std::lock_guard<std::mutex> lock(mutex_);
    std::map<guint64, json> out;
    for (const auto& [key, value] : messages_)
      if (key.first == publisher) out[key.second] = value;
    return out;
  }
  std::map<std::string, std::size_t> topics() {
    std::lock_guard<std::mutex> lock(mutex_);
    return topics_;
  }

 private:
  void on_message(const mosquitto_message* m) {
    const std::string text(static_cast<const char*>(m->payload), m->payloadlen);
    std::lock_guard<std::mutex> lock(mutex_);
    json j = json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.contains("seq") || !j.contains("publisher")) {
      bad_++;
      return;
    }
    topics_[m->topic]++;
    const auto key = std::make_pair(j["publisher"].get<std::string>(), j["seq"].get<guint64>());
    if (!messages_.emplace(key, std::move(j)).second) duplicates_++;
  }
  std::string topic_;
  mosquitto* mosq_;
  std::atomic<bool> subscribed_{false};
  std::mutex mutex_;
  std::map<std::pair<std::string, guint64>, json> messages_;
  std::map<std::string, std::size_t> topics_;
  std::size_t duplicates_ = 0, bad_ = 0;
};

// A buffer with `per_buffer` synthetic results, numbered from token.
GstBuffer* result_buffer(guint64 token, int per_buffer, std::mt19937* rng) {
  static const gchar* classes[] = {"speech", "music", "alarm", nullptr};
  GstBuffer* b = gst_buffer_new();
  GST_BUFFER_PTS(b) = token * 10 * GST_MSECOND;
  GST_BUFFER_DURATION(b) = per_buffer * 10 * GST_MSECOND;
  std::uniform_real_distribution<float> u(0.f, 1.f);
  for (int k = 0; k < per_buffer; ++k) {
    const float scores[3] = {u(*rng), u(*rng), u(*rng)};
    gst_buffer_add_nystream_meta(b, "test-model.safetensors", "det", classes, 3, scores, 0.5f, token + k,
                                 (token + k) * 10 * GST_MSECOND, 10 * GST_MSECOND);
  }
  return b;
}

struct BusLog {
  std::vector<std::string> errors, warnings;
  bool eos = false;
};

// Pops bus messages until EOS or ERROR (or timeout), keeping errors and warnings.
void drain_bus(GstElement* pipeline, BusLog* log, double seconds, bool until_eos = true) {
  GstBus* bus = gst_element_get_bus(pipeline);
  const auto end = Clock::now() + std::chrono::duration<double>(seconds);
  while (Clock::now() < end) {
    GstMessage* msg = gst_bus_timed_pop_filtered(
        bus, 20 * GST_MSECOND, (GstMessageType)(GST_MESSAGE_EOS | GST_MESSAGE_ERROR | GST_MESSAGE_WARNING));
    if (!msg) {
      if (!until_eos) break;
      continue;
    }
    GError* error = nullptr;
    gchar* debug = nullptr;
    bool stop = false;
    if (GST_MESSAGE_TYPE(msg) == GST_MESSAGE_ERROR) {
      gst_message_parse_error(msg, &error, &debug);
      log->errors.push_back(std::string(error->message) + " | " + (debug ? debug : ""));
      stop = true;
    } else if (GST_MESSAGE_TYPE(msg) == GST_MESSAGE_WARNING) {
      gst_message_parse_warning(msg, &error, &debug);
      log->warnings.push_back(error->message);
    } else {
      log->eos = stop = true;
    }
    g_clear_error(&error);
    g_free(debug);
    gst_message_unref(msg);
    if (stop) break;
  }
  gst_object_unref(bus);
}

bool any_contains(const std::vector<std::string>& v, const std::string& what) {
  return std::any_of(v.begin(), v.end(), [&](const std::string& s) { return s.find(what) != std::string::npos; });
}

guint64 stat(GstElement* publisher, const char* field) {
  GstStructure* s = nullptr;
  g_object_get(publisher, "stats", &s, nullptr);
  guint64 v = 0;
  gst_structure_get_uint64(s, field, &v);
  gst_structure_free(s);
  return v;
}

// appsrc ! [middle] ! fakesink, results pushed by the caller.
struct Pipeline {
  GstElement* pipeline = nullptr;
  GstElement* src = nullptr;
  GstElement* pub = nullptr;
  explicit Pipeline(const std::string& middle) {
    const std::string launch =
        "appsrc name=src format=time caps=application/x-nystream-test max-buffers=500 block=true ! " + middle +
        " ! fakesink sync=false";
    GError* error = nullptr;
    pipeline = gst_parse_launch(launch.c_str(), &error);
    EXPECT_TRUE(pipeline) << (error ? error->message : "");
    src = gst_bin_get_by_name(GST_BIN(pipeline), "src");
    pub = gst_bin_get_by_name(GST_BIN(pipeline), "pub");
  }
  ~Pipeline() {
    gst_element_set_state(pipeline, GST_STATE_NULL);
    if (src) gst_object_unref(src);
    if (pub) gst_object_unref(pub);
    gst_object_unref(pipeline);
  }
  GstStateChangeReturn play() { return gst_element_set_state(pipeline, GST_STATE_PLAYING); }
  void push(guint64 first, int buffers, int per_buffer, std::mt19937* rng) {
    for (int i = 0; i < buffers; ++i)
      gst_app_src_push_buffer(GST_APP_SRC(src), result_buffer(first + guint64(i) * per_buffer, per_buffer, rng));
  }
  void eos() { gst_app_src_end_of_stream(GST_APP_SRC(src)); }
};

std::vector<json> read_lines(const std::string& path) {
  std::vector<json> out;
  std::ifstream f(path);
  for (std::string line; std::getline(f, line);) out.push_back(json::parse(line));
  return out;
}

// The received payloads of one publisher equal nymetaconvert's lines, in seq
// order, once seq and publisher are removed.
void expect_equal_to_converter(const std::map<guint64, json>& received, const std::vector<json>& lines,
                               const std::string& publisher) {
  ASSERT_EQ(received.size(), lines.size()) << publisher;
  guint64 seq = 0;
  for (const auto& [s, payload] : received) {
    ASSERT_EQ(s, seq) << publisher;
    EXPECT_EQ(payload["publisher"], publisher);
    json stripped = payload;
    stripped.erase("seq");
    stripped.erase("publisher");
    ASSERT_EQ(stripped, lines[seq]) << publisher << " seq " << seq;
    seq++;
  }
}

class Publish : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { gst_init(nullptr, nullptr); }
  void SetUp() override {
    ASSERT_FALSE(env("NYSTREAM_MOSQUITTO").empty())
        << "mosquitto was not found when the tests were configured (apt-get install mosquitto)";
    ASSERT_NE(gst_element_factory_find("nymetapublish"), nullptr) << "nymetapublish is not in the plugin";
  }
  TempDir dir;
};

TEST_F(Publish, EightPipelinesEveryResultOnceEqualToNymetaconvert) {
  constexpr int kPipelines = 8, kBuffers = 5000, kPerBuffer = 2;  // 10 000 results each
  Broker broker(dir, free_port());
  broker.start();
  Subscriber sub(broker.port(), "fleet-sub", "nystream/+/results");
  ASSERT_TRUE(sub.wait_subscribed(10));

  std::vector<std::unique_ptr<Pipeline>> pipelines;
  for (int i = 0; i < kPipelines; ++i) {
    const std::string cam = "cam-" + std::to_string(i);
    pipelines.push_back(std::make_unique<Pipeline>(
        "nymetaconvert location=" + (dir / (cam + ".jsonl")) + " source=" + cam +
        " ! nymetapublish name=pub address=" + broker.address() + " source=" + cam + " client-id=pub-" +
        std::to_string(i) + " max-queue=20000 flush-timeout=30000"));
    ASSERT_NE(pipelines.back()->play(), GST_STATE_CHANGE_FAILURE);
  }
  const auto t0 = Clock::now();
  std::vector<std::thread> pushers;
  for (int i = 0; i < kPipelines; ++i)
    pushers.emplace_back([&, i] {
      std::mt19937 rng(i);
      pipelines[i]->push(0, kBuffers, kPerBuffer, &rng);
      pipelines[i]->eos();
    });
  for (auto& t : pushers) t.join();
  for (auto& p : pipelines) {
    BusLog log;
    drain_bus(p->pipeline, &log, 60);
    EXPECT_TRUE(log.eos) << (log.errors.empty() ? "timeout" : log.errors[0]);
    EXPECT_TRUE(log.warnings.empty()) << log.warnings[0];
    EXPECT_EQ(stat(p->pub, "published"), guint64(kBuffers * kPerBuffer));
    EXPECT_EQ(stat(p->pub, "dropped"), 0u);
    EXPECT_EQ(stat(p->pub, "failed"), 0u);
    EXPECT_EQ(stat(p->pub, "queued"), 0u);
  }
  ASSERT_TRUE(sub.wait_unique(kPipelines * kBuffers * kPerBuffer, 60)) << sub.unique();
  const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  std::printf("%d x %d results through the broker in %.2f s (%zu duplicates)\n", kPipelines,
              kBuffers * kPerBuffer, seconds, sub.duplicates());
  EXPECT_EQ(sub.bad(), 0u);
  EXPECT_EQ(sub.unique(), std::size_t(kPipelines * kBuffers * kPerBuffer));
  for (int i = 0; i < kPipelines; ++i) {
    const std::string cam = "cam-" + std::to_string(i);
    expect_equal_to_converter(sub.of("pub-" + std::to_string(i)), read_lines(dir / (cam + ".jsonl")),
                              "pub-" + std::to_string(i));
    EXPECT_EQ(sub.topics()["nystream/" + cam + "/results"], std::size_t(kBuffers * kPerBuffer)) << cam;
  }
}

TEST_F(Publish, BrokerRestartMidStreamLosesNothing) {
  constexpr int kResults = 30000;
  Broker broker(dir, free_port(), "", /*persistence=*/true);
  broker.start();
  Subscriber sub(broker.port(), "restart-sub", "nystream/#");
  ASSERT_TRUE(sub.wait_subscribed(10));
  Pipeline p("nymetapublish name=pub address=" + broker.address() +
             " source=cam client-id=restart-pub reconnect-interval=50 max-queue=100000 flush-timeout=30000");
  ASSERT_NE(p.play(), GST_STATE_CHANGE_FAILURE);

  std::atomic<int> pushed{0};
  std::thread pusher([&] {
    std::mt19937 rng(7);
    for (int i = 0; i < kResults; i += 100) {  // ~10 000 results/s: the stream goes on meanwhile
      p.push(i, 100, 1, &rng);
      pushed = i + 100;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    p.eos();
  });
  ASSERT_TRUE(wait_until([&] { return pushed >= 8000; }, 30));
  broker.stop(SIGTERM);  // a clean stop saves the subscriber's session and its queue
  const int at_stop = pushed;
  ASSERT_TRUE(wait_until([&] { return pushed >= at_stop + 8000; }, 30));
  const int at_restart = pushed;
  broker.start();
  pusher.join();
  BusLog log;
  drain_bus(p.pipeline, &log, 60);
  EXPECT_TRUE(log.eos) << (log.errors.empty() ? "timeout" : log.errors[0]);
  EXPECT_TRUE(any_contains(log.warnings, "Lost the MQTT broker")) << "the loss was not reported";
  ASSERT_TRUE(sub.wait_unique(kResults, 30)) << sub.unique() << " of " << kResults;
  EXPECT_GT(at_restart - at_stop, 5000) << "results made while the broker was down";
  const guint64 published = stat(p.pub, "published");
  std::printf("broker down between results %d and %d; received %zu unique, %zu duplicates; "
              "published %" G_GUINT64_FORMAT ", reconnects %" G_GUINT64_FORMAT "\n",
              at_stop, at_restart, sub.unique(), sub.duplicates(), published, stat(p.pub, "reconnects"));
  EXPECT_EQ(published, guint64(kResults));
  EXPECT_EQ(sub.unique(), published);  // the stats agree with what arrived
  EXPECT_EQ(stat(p.pub, "dropped"), 0u);
  EXPECT_EQ(stat(p.pub, "failed"), 0u);
  EXPECT_GE(stat(p.pub, "reconnects"), 1u);
  const auto received = sub.of("restart-pub");
  ASSERT_EQ(received.size(), std::size_t(kResults));
  EXPECT_EQ(received.begin()->first, 0u);
  EXPECT_EQ(received.rbegin()->first, guint64(kResults - 1));
}

// The broker is started once so that the subscriber's session exists in its
// saved state, then stopped: the publisher starts with no broker.
TEST_F(Publish, BrokerDownAtStartQueuesDropsOldestThenDelivers) {
  Broker broker(dir, free_port(), "", /*persistence=*/true);
  broker.start();
  {
    Subscriber first(broker.port(), "late-sub", "nystream/#");
    ASSERT_TRUE(first.wait_subscribed(10));
  }
  broker.stop(SIGTERM);

  Pipeline p("nymetapublish name=pub address=" + broker.address() +
             " source=cam client-id=late-pub max-connect-attempts=0 max-queue=100 reconnect-interval=50");
  const auto t0 = Clock::now();
  ASSERT_NE(p.play(), GST_STATE_CHANGE_FAILURE);
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - t0).count(), 1.0) << "the state change waited";
  std::mt19937 rng(3);
  p.push(0, 150, 1, &rng);
  ASSERT_TRUE(wait_until([&] { return stat(p.pub, "queued") == 100 && stat(p.pub, "dropped") == 50; }, 10))
      << stat(p.pub, "queued") << " queued, " << stat(p.pub, "dropped") << " dropped";
  EXPECT_EQ(stat(p.pub, "published"), 0u);
  BusLog log;  // the warnings come from the publisher's thread: wait for them
  wait_until([&] {
    drain_bus(p.pipeline, &log, 0.05, false);
    return any_contains(log.warnings, "unreachable") && any_contains(log.warnings, "results dropped");
  }, 10);
  EXPECT_TRUE(any_contains(log.warnings, "unreachable")) << "no warning about the broker";
  EXPECT_TRUE(any_contains(log.warnings, "results dropped")) << "no warning about the dropped results";

  broker.start();
  Subscriber sub(broker.port(), "late-sub", "nystream/#");
  p.eos();
  drain_bus(p.pipeline, &log, 30);
  EXPECT_TRUE(log.eos);
  ASSERT_TRUE(sub.wait_unique(100, 20)) << sub.unique();
  const auto received = sub.of("late-pub");
  ASSERT_EQ(received.size(), 100u);
  EXPECT_EQ(received.begin()->first, 50u);  // the oldest 50 were dropped
  EXPECT_EQ(received.rbegin()->first, 149u);
  EXPECT_EQ(stat(p.pub, "published"), 100u);
  EXPECT_EQ(stat(p.pub, "dropped"), 50u);
}

TEST_F(Publish, BrokerDownAtStartIsAnErrorByDefault) {
  const std::string address = "127.0.0.1:" + std::to_string(free_port());
  Pipeline p("nymetapublish name=pub address=" + address);
  const auto t0 = Clock::now();
  ASSERT_NE(p.play(), GST_STATE_CHANGE_FAILURE);
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - t0).count(), 1.0) << "the state change waited";
  std::mt19937 rng(3);
  std::thread pusher([&] {
    p.push(0, 10, 1, &rng);
    p.eos();
  });
  BusLog log;
  drain_bus(p.pipeline, &log, 10);
  pusher.join();
  ASSERT_EQ(log.errors.size(), 1u);
  EXPECT_NE(log.errors[0].find(address), std::string::npos) << log.errors[0];
  EXPECT_NE(log.errors[0].find("max-connect-attempts"), std::string::npos) << log.errors[0];
}

TEST_F(Publish, TlsWithATestCa) {
  const std::string openssl = env("NYSTREAM_OPENSSL");
  ASSERT_FALSE(openssl.empty()) << "openssl not found when the tests were configured";
  std::ofstream(dir / "ext.cnf") << "subjectAltName=IP:127.0.0.1,DNS:localhost\n";
  for (const char* ca : {"ca", "other-ca"})
    run_program({openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", dir / (std::string(ca) + ".key"),
                 "-out", dir / (std::string(ca) + ".pem"), "-days", "2", "-subj", std::string("/CN=nystream test ") + ca});
  run_program({openssl, "req", "-newkey", "rsa:2048", "-nodes", "-keyout", dir / "server.key", "-out",
               dir / "server.csr", "-subj", "/CN=localhost"});
  run_program({openssl, "x509", "-req", "-in", dir / "server.csr", "-CA", dir / "ca.pem", "-CAkey", dir / "ca.key",
               "-CAcreateserial", "-out", dir / "server.pem", "-days", "2", "-extfile", dir / "ext.cnf"});
  const int plain = free_port(), tls = free_port();
  Broker broker(dir, tls,
                "listener " + std::to_string(plain) + " 127.0.0.1\nlistener " + std::to_string(tls) +
                    " 127.0.0.1\ncafile " + (dir / "ca.pem") + "\ncertfile " + (dir / "server.pem") +
                    "\nkeyfile " + (dir / "server.key") + "\nallow_anonymous true\n");
  broker.start();
  ASSERT_TRUE(wait_until([&] { return port_open(plain); }, 5));
  Subscriber sub(plain, "tls-sub", "nystream/#");
  ASSERT_TRUE(sub.wait_subscribed(10));
  {
    Pipeline p("nymetapublish name=pub address=localhost:" + std::to_string(tls) + " cafile=" + (dir / "ca.pem") +
               " source=tls client-id=tls-pub");
    ASSERT_NE(p.play(), GST_STATE_CHANGE_FAILURE);
    std::mt19937 rng(5);
    p.push(0, 50, 1, &rng);
    p.eos();
    BusLog log;
    drain_bus(p.pipeline, &log, 20);
    EXPECT_TRUE(log.eos) << (log.errors.empty() ? "timeout" : log.errors[0]);
    EXPECT_EQ(stat(p.pub, "published"), 50u);
  }
  ASSERT_TRUE(sub.wait_unique(50, 10)) << sub.unique();
  EXPECT_EQ(sub.of("tls-pub").size(), 50u);

  // A CA that did not sign the broker's certificate: an error that names cafile.
  Pipeline wrong("nymetapublish name=pub address=localhost:" + std::to_string(tls) + " cafile=" +
                 (dir / "other-ca.pem") + " client-id=tls-wrong");
  ASSERT_NE(wrong.play(), GST_STATE_CHANGE_FAILURE);
  BusLog log;
  drain_bus(wrong.pipeline, &log, 10);
  ASSERT_EQ(log.errors.size(), 1u);
  EXPECT_NE(log.errors[0].find("cafile"), std::string::npos) << log.errors[0];
  EXPECT_NE(log.errors[0].find("other-ca.pem"), std::string::npos) << log.errors[0];
}

TEST_F(Publish, WrongPasswordIsAnErrorNamingTheUser) {
  const std::string passwd = env("NYSTREAM_MOSQUITTO_PASSWD");
  ASSERT_FALSE(passwd.empty()) << "mosquitto_passwd not found when the tests were configured";
  run_program({passwd, "-c", "-b", dir / "passwords", "alice", "secret"});
  const int port = free_port();
  Broker broker(dir, port,
                "listener " + std::to_string(port) + " 127.0.0.1\nallow_anonymous false\npassword_file " +
                    (dir / "passwords") + "\n");
  broker.start();
  for (const char* password : {"secret", "wrong"}) {
    Pipeline p("nymetapublish name=pub address=" + broker.address() + " username=alice password=" + password +
               " client-id=pw-" + password);
    ASSERT_NE(p.play(), GST_STATE_CHANGE_FAILURE);
    std::mt19937 rng(5);
    std::thread pusher([&] {
      p.push(0, 5, 1, &rng);
      p.eos();
    });
    BusLog log;
    drain_bus(p.pipeline, &log, 10);
    pusher.join();
    if (std::string(password) == "secret") {
      EXPECT_TRUE(log.eos) << (log.errors.empty() ? "timeout" : log.errors[0]);
      EXPECT_EQ(stat(p.pub, "published"), 5u);
    } else {
      ASSERT_EQ(log.errors.size(), 1u);
      EXPECT_NE(log.errors[0].find("username \"alice\""), std::string::npos) << log.errors[0];
    }
  }
}

// Settings that cannot work fail the state change, naming the property.
TEST_F(Publish, BadSettingsFailAtStartNamingTheProperty) {
  const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
      {"topic=nystream/+/results", {"topic", "nystream/+/results", "wildcard"}},
      {"topic=nystream/#", {"topic", "wildcard"}},
      {"cafile=/nonexistent/ca.pem", {"cafile", "/nonexistent/ca.pem"}},
      {"cafile=" + test_file("audio-random.safetensors") + " certfile=/nonexistent/c.pem keyfile=/x.key",
       {"certfile", "/nonexistent/c.pem"}},
      {"address=localhost:notaport", {"address", "localhost:notaport"}},
#ifndef NYSTREAM_TEST_KAFKA
      {"method=kafka", {"Kafka", "librdkafka"}},
#endif
  };
  for (const auto& [props, words] : cases) {
    Pipeline p("nymetapublish name=pub " + props);
    const auto t0 = Clock::now();
    EXPECT_EQ(p.play(), GST_STATE_CHANGE_FAILURE) << props;
    EXPECT_LT(std::chrono::duration<double>(Clock::now() - t0).count(), 1.0);
    BusLog log;
    drain_bus(p.pipeline, &log, 2);
    ASSERT_FALSE(log.errors.empty()) << props;
    for (const auto& w : words) EXPECT_NE(log.errors[0].find(w), std::string::npos) << props << ": " << log.errors[0];
  }
}

// A real detector: its results on buffers and those it completes at EOS (the
// results event) are all published, equal to nymetaconvert's lines.
TEST_F(Publish, DetectorResultsIncludingThoseAtEos) {
  Broker broker(dir, free_port());
  broker.start();
  Subscriber sub(broker.port(), "det-sub", "mics/#");
  ASSERT_TRUE(sub.wait_subscribed(10));
  const std::string launch =
      "audiotestsrc wave=pink-noise num-buffers=41 samplesperbuffer=1234 ! audio/x-raw,rate=22050,channels=1 ! "
      "nyaudiodetect name=audio model=" + test_file("audio-random.safetensors") +
      " ! nymetaconvert location=" + (dir / "det.jsonl") +
      " source=mic-1 ! nymetapublish name=pub address=" + broker.address() +
      " source=mic-1 client-id=det-pub topic=mics/{source}/{element}/{model} ! fakesink";
  GstElement* pipeline = gst_parse_launch(launch.c_str(), nullptr);
  ASSERT_TRUE(pipeline);
  gst_element_set_state(pipeline, GST_STATE_PLAYING);
  BusLog log;
  drain_bus(pipeline, &log, 30);
  EXPECT_TRUE(log.eos) << (log.errors.empty() ? "timeout" : log.errors[0]);
  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_object_unref(pipeline);
  const auto lines = read_lines(dir / "det.jsonl");
  ASSERT_GE(lines.size(), 20u);  // 41 * 1234 / 22050 = 2.3 s: 22 tokens
  ASSERT_TRUE(sub.wait_unique(lines.size(), 10)) << sub.unique() << " of " << lines.size();
  expect_equal_to_converter(sub.of("det-pub"), lines, "det-pub");
  const std::string model = lines[0]["model"];
  EXPECT_EQ(model, "audio-random");
  EXPECT_EQ(sub.topics()["mics/mic-1/pub/" + model], lines.size());
}

TEST_F(Publish, FileMethodWritesTheSameLines) {
  {
    Pipeline p("nymetaconvert location=" + (dir / "convert.jsonl") + " source=f ! nymetapublish name=pub " +
               "method=file address=" + (dir / "published.jsonl") + " source=f client-id=file-pub");
    ASSERT_NE(p.play(), GST_STATE_CHANGE_FAILURE);
    std::mt19937 rng(9);
    p.push(0, 300, 3, &rng);
    p.eos();
    BusLog log;
    drain_bus(p.pipeline, &log, 20);
    EXPECT_TRUE(log.eos);
    EXPECT_EQ(stat(p.pub, "published"), 900u);
  }
  const auto published = read_lines(dir / "published.jsonl");
  std::map<guint64, json> by_seq;
  for (const auto& j : published) by_seq[j["seq"].get<guint64>()] = j;
  EXPECT_EQ(by_seq.size(), published.size());
  expect_equal_to_converter(by_seq, read_lines(dir / "convert.jsonl"), "file-pub");
}

// examples/fleet_table.py: one row per source with its last label and counts.
TEST_F(Publish, FleetTableExampleShowsEverySource) {
  const std::string python = env("NYSTREAM_PYTHON"), script = env("NYSTREAM_FLEET_TABLE");
  ASSERT_FALSE(python.empty() || script.empty()) << "python3 or examples/fleet_table.py not given";
  Broker broker(dir, free_port());
  broker.start();
  const std::string port = std::to_string(broker.port());
  std::vector<std::string> args = {python, script, "--address", "127.0.0.1:" + port, "--count", "3000",
                                   "--once", "--timeout", "60"};
  std::vector<gchar*> argv;
  for (auto& a : args) argv.push_back(const_cast<gchar*>(a.c_str()));
  argv.push_back(nullptr);
  GPid pid;
  gint out_fd, err_fd;
  ASSERT_TRUE(g_spawn_async_with_pipes(nullptr, argv.data(), nullptr, G_SPAWN_DO_NOT_REAP_CHILD, nullptr, nullptr,
                                       &pid, nullptr, &out_fd, &err_fd, nullptr));
  std::string err;
  char c;
  while (err.find("subscribed") == std::string::npos && read(err_fd, &c, 1) == 1) err += c;
  ASSERT_NE(err.find("subscribed"), std::string::npos) << err;
  std::map<std::string, std::string> last_label;
  for (const char* cam : {"cam-a", "cam-b", "cam-c"}) {
    Pipeline p("nymetaconvert location=" + (dir / (std::string(cam) + ".jsonl")) + " source=" + cam +
               " ! nymetapublish name=pub address=" + broker.address() + " source=" + cam + " client-id=pub-" + cam);
    ASSERT_NE(p.play(), GST_STATE_CHANGE_FAILURE);
    std::mt19937 rng(cam[4]);
    p.push(0, 500, 2, &rng);
    p.eos();
    BusLog log;
    drain_bus(p.pipeline, &log, 30);
    EXPECT_TRUE(log.eos);
    last_label[cam] = read_lines(dir / (std::string(cam) + ".jsonl")).back()["label"];
  }
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = read(out_fd, buf, sizeof buf)) > 0;) out.append(buf, n);
  int status;
  waitpid(pid, &status, 0);
  close(out_fd);
  close(err_fd);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << out;
  std::printf("%s", out.c_str());
  for (const auto& [cam, label] : last_label) {
    std::istringstream lines(out);
    bool found = false;
    for (std::string line; std::getline(lines, line);) {
      std::istringstream row(line);
      std::string source, detector, last, conf, at, results, lost;
      row >> source >> detector >> last >> conf >> at >> results >> lost;
      if (source != cam) continue;
      found = true;
      EXPECT_EQ(detector, "det");
      EXPECT_EQ(last, label) << line;
      EXPECT_EQ(results, "1000") << line;
      EXPECT_EQ(lost, "0") << line;
    }
    EXPECT_TRUE(found) << cam << " missing from\n" << out;
  }
  EXPECT_NE(out.find("3000 results, 0 duplicates, 0 unreadable, 3 publishers"), std::string::npos) << out;
}

// sync=true: a buffer leaves only once its results are acknowledged.
TEST_F(Publish, SyncHoldsEachBufferUntilDelivered) {
  Broker broker(dir, free_port());
  broker.start();
  GstHarness* h = gst_harness_new_parse(
      ("nymetapublish address=" + broker.address() + " client-id=sync-pub sync=true").c_str());
  gst_harness_set_src_caps_str(h, "application/x-nystream-test");
  GstElement* pub = gst_harness_find_element(h, "nymetapublish");
  std::mt19937 rng(1);
  for (int i = 0; i < 50; ++i) {
    ASSERT_EQ(gst_harness_push(h, result_buffer(i * 3, 3, &rng)), GST_FLOW_OK);
    ASSERT_EQ(stat(pub, "published"), guint64(i + 1) * 3) << "buffer " << i << " left before delivery";
    gst_buffer_unref(gst_harness_pull(h));
  }
  gst_object_unref(pub);
  gst_harness_teardown(h);
}

#ifdef NYSTREAM_TEST_KAFKA
// librdkafka's mock cluster (in this process, on a loopback port): N results
// published, then read back by a consumer.
TEST_F(Publish, KafkaMockClusterReceivesEveryResult) {
  constexpr int kResults = 2000;
  char errstr[256];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_t* owner = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
  ASSERT_TRUE(owner) << errstr;
  rd_kafka_mock_cluster_t* cluster = rd_kafka_mock_cluster_new(owner, 1);
  ASSERT_TRUE(cluster);
  const std::string bootstraps = rd_kafka_mock_cluster_bootstraps(cluster);
  ASSERT_EQ(rd_kafka_mock_topic_create(cluster, "nystream-results", 1, 1), RD_KAFKA_RESP_ERR_NO_ERROR);
  {
    Pipeline p("nymetapublish name=pub method=kafka address=" + bootstraps + " source=k client-id=kafka-pub");
    ASSERT_NE(p.play(), GST_STATE_CHANGE_FAILURE);
    std::mt19937 rng(2);
    p.push(0, kResults, 1, &rng);
    p.eos();
    BusLog log;
    drain_bus(p.pipeline, &log, 60);
    EXPECT_TRUE(log.eos) << (log.errors.empty() ? "timeout" : log.errors[0]);
    EXPECT_EQ(stat(p.pub, "published"), guint64(kResults));
    EXPECT_EQ(stat(p.pub, "failed"), 0u);
  }
  rd_kafka_conf_t* cconf = rd_kafka_conf_new();
  rd_kafka_conf_set(cconf, "bootstrap.servers", bootstraps.c_str(), errstr, sizeof errstr);
  rd_kafka_conf_set(cconf, "group.id", "nystream-test", errstr, sizeof errstr);
  rd_kafka_t* consumer = rd_kafka_new(RD_KAFKA_CONSUMER, cconf, errstr, sizeof errstr);
  ASSERT_TRUE(consumer) << errstr;
  rd_kafka_topic_partition_list_t* parts = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(parts, "nystream-results", 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
  ASSERT_EQ(rd_kafka_assign(consumer, parts), RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_topic_partition_list_destroy(parts);
  std::set<guint64> seqs;
  const auto end = Clock::now() + std::chrono::seconds(30);
  while (seqs.size() < std::size_t(kResults) && Clock::now() < end) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(consumer, 100);
    if (!m) continue;
    if (!m->err) {
      const json j = json::parse(std::string(static_cast<const char*>(m->payload), m->len));
      EXPECT_EQ(j["publisher"], "kafka-pub");
      EXPECT_EQ(std::string(static_cast<const char*>(m->key), m->key_len), "\"kafka-pub\"");
      seqs.insert(j["seq"].get<guint64>());
    }
    rd_kafka_message_destroy(m);
  }
  rd_kafka_consumer_close(consumer);
  rd_kafka_destroy(consumer);
  rd_kafka_mock_cluster_destroy(cluster);
  rd_kafka_destroy(owner);
  ASSERT_EQ(seqs.size(), std::size_t(kResults));
  EXPECT_EQ(*seqs.rbegin(), guint64(kResults - 1));
}
#endif

// --- benchmark ---------------------------------------------------------------

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, std::size_t(p * v.size()))];
}

double cpu_seconds() {
  rusage u;
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// Pushes n one-result buffers through a harness around `element`; prints the
// per-buffer time (what a detector upstream waits) and, with a publisher, the
// results/s until all are acknowledged and per CPU second of this process.
void bench_row(const std::string& label, const std::string& element, int n) {
  GstHarness* h = gst_harness_new_parse(element.c_str());
  gst_harness_set_src_caps_str(h, "application/x-nystream-test");
  GstElement* pub = gst_harness_find_element(h, "nymetapublish");
  std::mt19937 rng(1);
  std::vector<GstBuffer*> buffers;
  for (int i = 0; i < n; ++i) buffers.push_back(result_buffer(i, 1, &rng));
  std::vector<double> push_us;
  push_us.reserve(n);
  const double cpu0 = cpu_seconds();
  const auto t0 = Clock::now();
  for (GstBuffer* b : buffers) {
    const auto a = Clock::now();
    gst_harness_push(h, b);
    push_us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - a).count());
    gst_buffer_unref(gst_harness_pull(h));
  }
  if (pub) wait_until([&] { return stat(pub, "published") >= guint64(n); }, 120);
  const double wall = std::chrono::duration<double>(Clock::now() - t0).count();
  const double cpu = cpu_seconds() - cpu0;
  std::printf("%-34s %9.0f %12.0f %9.1f %9.1f %9.1f\n", label.c_str(), n / wall, n / cpu,
              percentile(push_us, 0.5), percentile(push_us, 0.99), percentile(push_us, 1.0));
  if (pub) {
    if (stat(pub, "published") != guint64(n)) std::printf("  ERROR: only %" G_GUINT64_FORMAT " delivered\n", stat(pub, "published"));
    gst_object_unref(pub);
  }
  gst_harness_teardown(h);
}

int run_benchmark() {
  gst_init(nullptr, nullptr);
  if (env("NYSTREAM_MOSQUITTO").empty() || !gst_element_factory_find("nymetapublish")) {
    std::fprintf(stderr, "mosquitto or nymetapublish missing\n");
    return 1;
  }
  TempDir dir;
  Broker broker(dir, free_port());
  broker.start();
  constexpr int kResults = 100000;
  std::printf("nymetapublish to mosquitto on 127.0.0.1, %d results, one per buffer (GstHarness)\n", kResults);
  std::printf("%-34s %9s %12s %9s %9s %9s\n", "", "results/s", "per CPU s", "p50 us", "p99 us", "max us");
  bench_row("identity (no publisher)", "identity", kResults);
  const std::string common = "nymetapublish address=" + broker.address() + " max-queue=200000 client-id=bench-";
  bench_row("nymetapublish qos=0", common + "q0 qos=0", kResults);
  bench_row("nymetapublish qos=1", common + "q1 qos=1", kResults);
  bench_row("nymetapublish qos=2", common + "q2 qos=2", kResults / 4);
  bench_row("nymetapublish method=file", "nymetapublish method=file address=" + (dir / "bench.jsonl"), kResults);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i)
    if (std::strcmp(argv[i], "--benchmark") == 0) return run_benchmark();
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
