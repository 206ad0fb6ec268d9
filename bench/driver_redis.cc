// The Redis driver (hiredis, synchronous, one connection per session): a
// primary and its replicas. Every write is SET followed by WAIT <replicas>
// (sent together in one round trip) so that it is acknowledged only once that
// many replicas hold it as well: with WAIT 1, two copies, like W=2.

#include <hiredis/hiredis.h>
#include <sys/time.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <charconv>

#include "dynamo/base/strings.h"
#include "driver.h"

namespace dynamo::bench {
namespace {

struct Endpoint {
  std::string host;
  int port = 0;
};

absl::StatusOr<Endpoint> ParseEndpoint(const std::string& target) {
  const size_t colon = target.rfind(':');
  if (colon == std::string::npos) return absl::InvalidArgumentError(Cat("not host:port: ", target));
  Endpoint e;
  e.host = target.substr(0, colon);
  const std::string port = target.substr(colon + 1);
  auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), e.port);
  if (ec != std::errc() || p != port.data() + port.size() || e.port <= 0 || e.port > 65535) {
    return absl::InvalidArgumentError(Cat("bad port in ", target));
  }
  return e;
}

timeval ToTimeval(int64_t ms) {
  timeval tv;
  tv.tv_sec = static_cast<time_t>(ms / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms % 1000) * 1000);
  return tv;
}

struct ReplyDeleter {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

// One connection, reconnected after an I/O error.
class Connection {
 public:
  Connection(Endpoint endpoint, int64_t timeout_ms)
      : endpoint_(std::move(endpoint)), timeout_ms_(timeout_ms) {}
  ~Connection() { Drop(); }

  absl::Status Ensure() {
    if (c_ != nullptr) return absl::OkStatus();
    c_ = redisConnectWithTimeout(endpoint_.host.c_str(), endpoint_.port, ToTimeval(timeout_ms_));
    if (c_ == nullptr || c_->err) {
      std::string why = c_ != nullptr ? c_->errstr : "out of memory";
      Drop();
      return absl::UnavailableError(Cat("redis ", endpoint_.host, ":", endpoint_.port, ": ", why));
    }
    redisSetTimeout(c_, ToTimeval(timeout_ms_));
    return absl::OkStatus();
  }

  // Sends the appended commands' replies back, one per command.
  absl::Status Receive(Reply* out) {
    void* raw = nullptr;
    if (redisGetReply(c_, &raw) != REDIS_OK) {
      const bool timeout = c_->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK);
      std::string why = c_->errstr;
      Drop();
      return timeout ? absl::DeadlineExceededError(Cat("redis: ", why))
                     : absl::UnavailableError(Cat("redis: ", why));
    }
    out->reset(static_cast<redisReply*>(raw));
    if ((*out)->type == REDIS_REPLY_ERROR) {
      return absl::InternalError(Cat("redis: ", std::string((*out)->str, (*out)->len)));
    }
    return absl::OkStatus();
  }

  redisContext* get() { return c_; }

 private:
  void Drop() {
    if (c_ != nullptr) redisFree(c_);
    c_ = nullptr;
  }

  Endpoint endpoint_;
  int64_t timeout_ms_;
  redisContext* c_ = nullptr;
};

class RedisSession final : public Session {
 public:
  RedisSession(const std::vector<Endpoint>& endpoints, const DriverOptions& o, size_t first)
      : wait_replicas_(o.redis_wait_replicas),
        wait_timeout_ms_(o.redis_wait_timeout_ms),
        read_replicas_(o.redis_read_replicas),
        next_read_(first) {
    for (const Endpoint& e : endpoints) connections_.push_back(std::make_unique<Connection>(e, o.timeout_ms));
  }

  absl::Status Read(uint64_t, std::string_view key, bool* found) override {
    Connection& c = read_replicas_ ? *connections_[next_read_++ % connections_.size()]
                                   : *connections_[0];
    if (absl::Status s = c.Ensure(); !s.ok()) return s;
    redisAppendCommand(c.get(), "GET %b", key.data(), key.size());
    Reply reply;
    if (absl::Status s = c.Receive(&reply); !s.ok()) return s;
    *found = reply->type == REDIS_REPLY_STRING;
    return absl::OkStatus();
  }

  absl::Status Write(uint64_t, std::string_view key, std::string_view value) override {
    Connection& c = *connections_[0];
    if (absl::Status s = c.Ensure(); !s.ok()) return s;
    redisAppendCommand(c.get(), "SET %b %b", key.data(), key.size(), value.data(), value.size());
    if (wait_replicas_ > 0) {
      redisAppendCommand(c.get(), "WAIT %d %lld", wait_replicas_,
                         static_cast<long long>(wait_timeout_ms_));
    }
    Reply set;
    const absl::Status set_status = c.Receive(&set);
    if (wait_replicas_ == 0) return set_status;
    // The WAIT's reply is read even after a refused SET: left unread, it
    // would be taken for the next command's reply, and every later one
    // for the one before it.
    Reply wait;
    const absl::Status wait_status = c.get() != nullptr ? c.Receive(&wait) : set_status;
    if (!set_status.ok()) return set_status;
    if (!wait_status.ok()) return wait_status;
    if (wait->type != REDIS_REPLY_INTEGER) return absl::InternalError("redis: WAIT: not an integer");
    if (wait->integer < wait_replicas_) {
      return absl::DeadlineExceededError(Cat("redis: WAIT: ", wait->integer, " of ", wait_replicas_,
                                             " replicas acknowledged within ", wait_timeout_ms_,
                                             " ms"));
    }
    return absl::OkStatus();
  }

  absl::Status ReadModifyWrite(uint64_t index, std::string_view key,
                               std::string_view value) override {
    bool found = false;
    if (absl::Status s = Read(index, key, &found); !s.ok()) return s;
    return Write(index, key, value);
  }

 private:
  std::vector<std::unique_ptr<Connection>> connections_;  // [0] is the primary
  int wait_replicas_;
  int64_t wait_timeout_ms_;
  bool read_replicas_;
  size_t next_read_;
};

class RedisDriver final : public Driver {
 public:
  RedisDriver(DriverOptions options, std::vector<Endpoint> endpoints)
      : options_(std::move(options)), endpoints_(std::move(endpoints)) {}

  absl::Status Prepare() override {
    // The replicas must be attached, or every WAIT would time out.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    Connection c(endpoints_[0], 2000);
    absl::Status last;
    while (std::chrono::steady_clock::now() < deadline) {
      last = c.Ensure();
      if (last.ok()) {
        redisAppendCommand(c.get(), "INFO replication");
        Reply reply;
        last = c.Receive(&reply);
        if (last.ok() && reply->type == REDIS_REPLY_STRING) {
          const std::string info(reply->str, reply->len);
          // A replica counts once its initial sync is done ("state=online").
          int online = 0;
          for (size_t at = info.find("state=online"); at != std::string::npos;
               at = info.find("state=online", at + 1)) {
            ++online;
          }
          if (online >= options_.redis_wait_replicas) return absl::OkStatus();
          last = absl::UnavailableError(Cat("primary has ", online, " replicas online"));
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    return absl::DeadlineExceededError(Cat("redis not ready after 60 s: ", last.message()));
  }

  absl::StatusOr<std::unique_ptr<Session>> NewSession(int index) override {
    return std::unique_ptr<Session>(
        new RedisSession(endpoints_, options_, static_cast<size_t>(index)));
  }

  std::string Describe() const override {
    return Cat("redis primary ", options_.targets[0], " + ", endpoints_.size() - 1,
               " replica(s); every write SET + WAIT ", options_.redis_wait_replicas, " ",
               options_.redis_wait_timeout_ms, " (pipelined); reads from ",
               options_.redis_read_replicas ? "all, round robin" : "the primary");
  }

  std::string Notes() const override {
    return "write: 1 round trip (SET and WAIT pipelined); the primary streams to replicas, "
           "which ack asynchronously (REPLCONF ACK)";
  }

 private:
  DriverOptions options_;
  std::vector<Endpoint> endpoints_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Driver>> MakeRedisDriver(const DriverOptions& options) {
  if (options.targets.empty()) {
    return absl::InvalidArgumentError("redis driver needs --targets primary:port[,replica:port...]");
  }
  std::vector<Endpoint> endpoints;
  for (const std::string& t : options.targets) {
    absl::StatusOr<Endpoint> e = ParseEndpoint(t);
    if (!e.ok()) return e.status();
    endpoints.push_back(*e);
  }
  return std::unique_ptr<Driver>(new RedisDriver(options, std::move(endpoints)));
}

}  // namespace dynamo::bench
