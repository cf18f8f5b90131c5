#include "publisher.h"

#include <chrono>
#include <cstdio>
#include <cstring>

namespace nypublish {

namespace {

using Clock = std::chrono::steady_clock;

/* method=file: one line per message, appended; written is delivered. */
class FileTransport : public Transport {
 public:
  explicit FileTransport (Publisher & publisher) : pub_ (publisher) {}
  ~FileTransport () override {
    if (out_)
      std::fclose (out_);
  }
  bool open (std::string * error) override {
    const std::string & path = pub_.settings ().address;
    out_ = std::fopen (path.c_str (), "a");
    if (!out_) {
      *error = "address: could not open \"" + path + "\" for appending: " + std::strerror (errno);
      return false;
    }
    return true;
  }
  void run () override {}
  Send send (const Message & msg, guint64 *, std::string * why) override {
    /* One fwrite + fflush per line: whole lines, even with other writers (O_APPEND). */
    std::string line = msg.payload + "\n";
    if (std::fwrite (line.data (), 1, line.size (), out_) != line.size () || std::fflush (out_)) {
      *why = std::string ("write failed: ") + std::strerror (errno);
      return Send::kRefused;
    }
    return Send::kDone;
  }

 private:
  Publisher & pub_;
  FILE *out_ = nullptr;
};

}  // namespace

#ifndef NYSTREAM_HAVE_KAFKA
std::unique_ptr<Transport>
make_kafka_transport (Publisher &)
{
  return nullptr;
}
#endif

std::unique_ptr<Transport>
make_file_transport (Publisher & publisher)
{
  return std::make_unique<FileTransport> (publisher);
}

bool
split_host_port (const std::string & address, int default_port, std::string * host, int *port)
{
  std::string rest;
  if (!address.empty () && address[0] == '[') {
    const auto close = address.find (']');
    if (close == std::string::npos)
      return false;
    *host = address.substr (1, close - 1);
    rest = address.substr (close + 1);
  } else {
    const auto colon = address.rfind (':');
    *host = address.substr (0, colon);
    rest = colon == std::string::npos ? "" : address.substr (colon);
  }
  *port = default_port;
  if (rest.empty ())
    return !host->empty ();
  if (rest[0] != ':' || rest.size () < 2)
    return false;
  char *end = nullptr;
  const long p = std::strtol (rest.c_str () + 1, &end, 10);
  if (*end || p <= 0 || p > 65535)
    return false;
  *port = static_cast<int> (p);
  return !host->empty ();
}

Publisher::Publisher (const Settings & settings, Report report)
    : settings_ (settings), report_ (std::move (report))
{
}

std::shared_ptr<Publisher>
Publisher::create (const Settings & settings, Report report, std::string * error)
{
  std::shared_ptr<Publisher> pub (new Publisher (settings, std::move (report)));
  switch (settings.method) {
    case Method::kMqtt:
      pub->transport_ = make_mqtt_transport (*pub);
      break;
    case Method::kKafka:
      pub->transport_ = make_kafka_transport (*pub);
      if (!pub->transport_) {
        *error = "method=kafka: this build of nystream has no Kafka support "
            "(librdkafka-dev was not found when it was built)";
        return nullptr;
      }
      break;
    case Method::kFile:
      pub->transport_ = make_file_transport (*pub);
      pub->ready_ = pub->stats_.connected = true;
      break;
  }
  if (!pub->transport_->open (error))
    return nullptr;
  /* The threads hold the publisher: see shutdown(). */
  pub->running_ = 2;
  pub->feeder_ = std::thread ([self = pub] { self->feed (); });
  pub->network_ = std::thread ([self = pub] {
    self->transport_->run ();
    std::lock_guard<std::mutex> lock (self->mutex_);
    self->running_--;
    self->exited_.notify_all ();
  });
  return pub;
}

Publisher::~Publisher ()
{
  /* shutdown() joined or detached both; the transport goes before the queue. */
  transport_.reset ();
}

guint
Publisher::push (Message && msg)
{
  std::lock_guard<std::mutex> lock (mutex_);
  guint dropped = 0;
  if (pending_.size () >= std::max (settings_.max_queue, 1u)) {
    pending_.pop_front ();   /* the oldest: the newest results matter most live */
    stats_.dropped++;
    dropped = 1;
  }
  pending_.push_back (std::move (msg));
  work_.notify_one ();
  return dropped;
}

void
Publisher::resolve_locked (bool ok)
{
  if (ok)
    stats_.published++;
  else
    stats_.failed++;
  work_.notify_one ();   /* the window has room again */
  idle_.notify_all ();
}

void
Publisher::feed ()
{
  std::unique_lock<std::mutex> lock (mutex_);
  while (!quit_) {
    if (fatal_ || !ready_ || pending_.empty () || inflight_.size () >= kWindow) {
      work_.wait (lock);
      continue;
    }
    Message msg = std::move (pending_.front ());
    pending_.pop_front ();
    sending_ = true;
    const guint64 epoch = epoch_;
    lock.unlock ();
    guint64 handle = 0;
    std::string why;
    const Transport::Send r = transport_->send (msg, &handle, &why);
    lock.lock ();
    sending_ = false;
    switch (r) {
      case Transport::Send::kHanded:
        /* The confirmation may already have come, on the network thread. */
        if (early_.erase (handle))
          resolve_locked (true);
        else
          inflight_.emplace (handle, msg.seq);
        break;
      case Transport::Send::kDone:
        resolve_locked (true);
        break;
      case Transport::Send::kRetry:
        pending_.push_front (std::move (msg));
        if (epoch == epoch_)   /* no reconnect since: wait for connection_up */
          ready_ = false;
        break;
      case Transport::Send::kRefused:
        resolve_locked (false);
        lock.unlock ();
        report (false, "A result could not be published: " + why);
        lock.lock ();
        break;
    }
  }
  running_--;
  exited_.notify_all ();
}

guint64
Publisher::wait_idle (gint64 timeout_ms)
{
  std::unique_lock<std::mutex> lock (mutex_);
  auto done = [this] {
    return flushing_ || fatal_ || (pending_.empty () && inflight_.empty () && !sending_);
  };
  if (timeout_ms < 0)
    idle_.wait (lock, done);
  else
    idle_.wait_for (lock, std::chrono::milliseconds (timeout_ms), done);
  return pending_.size () + inflight_.size () + (sending_ ? 1 : 0);
}

void
Publisher::set_flushing (bool flushing)
{
  std::lock_guard<std::mutex> lock (mutex_);
  flushing_ = flushing;
  idle_.notify_all ();
}

guint64
Publisher::shutdown (gint64 timeout_ms)
{
  wait_idle (timeout_ms);
  {
    std::lock_guard<std::mutex> lock (mutex_);
    quit_ = true;
    work_.notify_all ();
    idle_.notify_all ();
    stop_.notify_all ();
  }
  transport_->wake ();
  std::unique_lock<std::mutex> lock (mutex_);
  /* Bounded: a thread in a blocking connect() to an unreachable host is left to
   * finish on its own; it holds its own reference to this publisher. */
  const bool all = exited_.wait_for (lock, std::chrono::seconds (2), [this] {
    return running_ == 0;
  });
  const guint64 left = pending_.size () + inflight_.size ();
  stats_.failed += left;
  stats_.queued = 0;
  pending_.clear ();
  inflight_.clear ();
  lock.unlock ();
  for (std::thread * t : { &feeder_, &network_ }) {
    if (!t->joinable ())
      continue;
    if (all)
      t->join ();
    else
      t->detach ();
  }
  return left;
}

Stats
Publisher::stats ()
{
  std::lock_guard<std::mutex> lock (mutex_);
  Stats s = stats_;
  s.queued = pending_.size () + inflight_.size () + (sending_ ? 1 : 0);
  return s;
}

bool
Publisher::quitting ()
{
  std::lock_guard<std::mutex> lock (mutex_);
  return quit_ || fatal_;
}

bool
Publisher::fatal ()
{
  std::lock_guard<std::mutex> lock (mutex_);
  return fatal_;
}

void
Publisher::sleep_ms (guint ms)
{
  std::unique_lock<std::mutex> lock (mutex_);
  stop_.wait_for (lock, std::chrono::milliseconds (ms), [this] { return quit_ || fatal_; });
}

void
Publisher::delivered (guint64 handle)
{
  std::lock_guard<std::mutex> lock (mutex_);
  if (inflight_.erase (handle))
    resolve_locked (true);
  else
    early_.insert (handle);
}

void
Publisher::failed (guint64 handle)
{
  std::lock_guard<std::mutex> lock (mutex_);
  if (inflight_.erase (handle))
    resolve_locked (false);
}

void
Publisher::connection_up (bool reconnected)
{
  std::lock_guard<std::mutex> lock (mutex_);
  stats_.connected = true;
  if (reconnected)
    stats_.reconnects++;
  ready_ = true;
  epoch_++;
  work_.notify_one ();
}

void
Publisher::connection_down ()
{
  std::lock_guard<std::mutex> lock (mutex_);
  stats_.connected = false;
  ready_ = false;
}

void
Publisher::report (bool fatal, const std::string & text, const std::string & debug)
{
  /* Posted before fatal_ releases an EOS waiting in wait_idle(): the error
   * reaches the bus first. */
  report_ (fatal, text, debug);
  if (fatal) {
    std::lock_guard<std::mutex> lock (mutex_);
    fatal_ = true;
    work_.notify_all ();
    idle_.notify_all ();
    stop_.notify_all ();
  }
}

}  // namespace nypublish
