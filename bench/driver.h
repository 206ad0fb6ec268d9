#pragma once

// A driver connects the benchmark to one kind of store. The runner calls a
// Driver from one thread to set up, then gives each client thread its own
// Session; a Session is used by one thread at a time and may block.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace dynamo::bench {

class Session {
 public:
  virtual ~Session() = default;
  // `key_index` identifies the record (drivers may keep per-key state, such
  // as causal contexts); `key` is its name. A missing key is OK with
  // *found = false.
  virtual absl::Status Read(uint64_t key_index, std::string_view key, bool* found) = 0;
  // Insert (load phase) and update: replace the key's value.
  virtual absl::Status Write(uint64_t key_index, std::string_view key, std::string_view value) = 0;
  // Read the key, then write a new value based on that read.
  virtual absl::Status ReadModifyWrite(uint64_t key_index, std::string_view key,
                                       std::string_view value) = 0;
};

struct DriverOptions {
  std::string driver;                // dynamo | etcd | redis | ping
  std::vector<std::string> targets;  // host:port, meaning per driver
  uint64_t records = 0;              // key indices are below this
  int64_t timeout_ms = 5000;         // per call
  int channels = 1;                  // gRPC connections per target (etcd, ping)

  // dynamo
  std::string routing = "server";  // server | client
  uint32_t n = 0, r = 0, w = 0;    // 0: the cluster's default
  int attempts = 1;                // per call; >1 lets the client library retry
  bool context_cache = true;       // updates carry the last context seen for the key
  size_t wait_nodes = 0;           // Prepare waits until the ring has this many nodes
  bool pipes = true;               // requests on KV.Pipe streams, not unary calls

  // etcd
  bool etcd_serializable = false;  // member-local reads instead of linearizable ones

  // redis: targets[0] is the primary, the rest its replicas
  int redis_wait_replicas = 1;     // WAIT <this> after every write; 0: no WAIT
  int64_t redis_wait_timeout_ms = 1000;
  bool redis_read_replicas = false;  // spread reads over primary and replicas

  // ping
  // echo (Ping.Ping) | topology (KV.Topology) | stream (Ping.Stream)
  std::string ping_method = "echo";
};

class Driver {
 public:
  virtual ~Driver() = default;
  // Connects and waits until the store can serve (a ring is formed, say).
  virtual absl::Status Prepare() { return absl::OkStatus(); }
  virtual absl::StatusOr<std::unique_ptr<Session>> NewSession(int index) = 0;
  // One line for the report: what was driven and how.
  virtual std::string Describe() const = 0;
  // RPCs (or round trips) one operation costs, for the report; empty if unknown.
  virtual std::string Notes() const { return ""; }
};

absl::StatusOr<std::unique_ptr<Driver>> MakeDriver(const DriverOptions& options);

// Per driver (driver_*.cc).
absl::StatusOr<std::unique_ptr<Driver>> MakeDynamoDriver(const DriverOptions& options);
absl::StatusOr<std::unique_ptr<Driver>> MakeEtcdDriver(const DriverOptions& options);
absl::StatusOr<std::unique_ptr<Driver>> MakeRedisDriver(const DriverOptions& options);
absl::StatusOr<std::unique_ptr<Driver>> MakePingDriver(const DriverOptions& options);

// Serves the ping driver's trivial gRPC service on `listen` until SIGINT or
// SIGTERM (the `serve-ping` command); returns the process exit code.
int ServePing(const std::string& listen);

}  // namespace dynamo::bench
