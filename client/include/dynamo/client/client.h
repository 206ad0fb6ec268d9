#pragma once

// The C++ client of a dynamo cluster: get, put and delete with siblings and
// contexts, retries on another node, sibling resolution, and optionally the
// paper's client-driven coordination (section 6.4), where the client routes
// each request to a node of the key's preference list by the ring it learned.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "dynamo/client/topology.h"

namespace dynamo::client {

// Per-request replication settings; 0 keeps the client's default, whose 0
// in turn means the cluster's default. Must satisfy 1 <= r, w <= n <= the
// cluster's N (the node answers INVALID_ARGUMENT otherwise).
struct Quorum {
  uint32_t n = 0;
  uint32_t r = 0;
  uint32_t w = 0;
};

// One concurrent value of a key.
struct Sibling {
  std::string value;
  int64_t timestamp_ms = 0;  // the coordinator's wall clock at write: a hint, not an order

  friend bool operator==(const Sibling&, const Sibling&) = default;
};

struct GetResult {
  bool found = false;
  // Every concurrent value; more than one means writes to resolve. Empty when
  // !found.
  std::vector<Sibling> siblings;
  // Opaque causal context: pass it to the Put or Delete based on this read.
  // Present even when !found.
  std::string context;
  // The siblings were merged by a resolver and the merge was written back;
  // `siblings` then holds the one merged value and `context` that write's.
  bool resolved = false;
};

struct WriteResult {
  std::string context;  // of the version written, for a follow-up write
};

// Merges siblings into one value (or, for Update, computes the new value from
// the current ones; it gets an empty vector for a missing key). Called on the
// calling thread; it may be called more than once per Update, so it must not
// have side effects beyond computing its result.
using Resolver = std::function<std::string(const std::vector<Sibling>&)>;

enum class Routing {
  // Any node coordinates: requests go round robin over the known nodes, and a
  // write landing outside the key's preference list is forwarded by the node.
  kServerDriven,
  // The client learns the ring (Topology) from any node, refreshes it
  // periodically and after failures, and sends each request to the first
  // healthy node of the key's preference list, saving the forward hop.
  kClientDriven,
};

// Bounds and defaults. Times are wall-clock milliseconds.
struct ClientOptions {
  std::vector<std::string> seeds;  // host:port of nodes to start from (at least one)
  Routing routing = Routing::kServerDriven;
  Quorum quorum;                // default for every request
  int64_t deadline_ms = 10000;  // whole call, retries included (and all of an Update's rounds)
  // One attempt. Longer than the nodes' request timeout (2 s by default) so a
  // coordinator that cannot reach a quorum says so before the client gives up.
  int64_t attempt_timeout_ms = 3000;
  int attempts_max = 3;             // per call, each on another node where possible
  int64_t backoff_initial_ms = 10;  // before the 2nd attempt; doubles, with jitter
  int64_t backoff_max_ms = 200;
  int64_t ring_refresh_interval_ms = 30000;
  int64_t node_down_ms = 5000;  // a node that failed an attempt is tried last for this long
  // Learn the nodes' addresses from Topology in server-driven mode too, so
  // that round robin and retries are not limited to the seeds.
  bool discover_nodes = true;
  // Send Get, Put and Delete on KV.Pipe streams kept open to each node (one
  // per request in flight) instead of a unary call each: less CPU per request
  // on both ends (bench/RESULTS.md, F36). Retries, deadlines and routing are
  // the same. A node that does not serve KV.Pipe (older than it) gets unary
  // calls instead.
  bool pipes = true;
  Resolver resolver;            // used by Get with GetOptions::resolve
  int update_attempts_max = 3;  // read-modify-write rounds of Update
  size_t grpc_message_bytes_max = 16 << 20;
};

struct GetOptions {
  Quorum quorum;
  // With more than one sibling, merge them with the resolver (this call's, or
  // else the client's) and write the merge back with the read's context. If
  // the write-back fails, the read is returned unresolved.
  bool resolve = false;
  Resolver resolver;
};

struct WriteOptions {
  Quorum quorum;
};

// What the client has done, for tests and monitoring.
struct ClientStats {
  uint64_t calls = 0;
  uint64_t attempts = 0;
  uint64_t retries = 0;  // attempts after the first of a call
  uint64_t topology_refreshes = 0;
  uint64_t topology_refresh_failures = 0;
};

// A client of one cluster. Thread-safe: one Client may be shared by any
// number of threads, which is also the cheap way to use it (it keeps one gRPC
// channel per node). Calls block the calling thread until done or the deadline.
//
// Retries: a call that fails with UNAVAILABLE or DEADLINE_EXCEEDED is retried
// on another node, at most attempts_max times within deadline_ms; no other
// error is retried (INVALID_ARGUMENT never is). As in Dynamo, a retried Put
// whose first attempt was in fact applied leaves the value twice, as two
// siblings (the same value with two versions); the next read with resolution
// merges them. Delete is idempotent.
class Client {
 public:
  // InvalidArgument for options that cannot work (no seeds, a bound <= 0).
  // Connects lazily: a cluster that is down fails the calls, not Create.
  static absl::StatusOr<std::unique_ptr<Client>> Create(ClientOptions options);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  [[nodiscard]] absl::StatusOr<GetResult> Get(std::string_view key, const GetOptions& options = {});
  // `context` comes from the read this write is based on ("" for a blind
  // write, which becomes a sibling of whatever is there). A blind Delete
  // therefore removes nothing that exists (reads skip its tombstone and still
  // return the values): delete with the context of a read.
  [[nodiscard]] absl::StatusOr<WriteResult> Put(std::string_view key, std::string_view value,
                                                std::string_view context = {},
                                                const WriteOptions& options = {});
  [[nodiscard]] absl::StatusOr<WriteResult> Delete(std::string_view key,
                                                   std::string_view context = {},
                                                   const WriteOptions& options = {});

  // Read-modify-write: reads the key, computes the new value with `fn` from
  // every sibling, and writes it with the read's context, which replaces all
  // of them. Dynamo has no compare-and-set, so a concurrent writer does not
  // make this fail: it leaves a sibling that the next read resolves. A round
  // that fails with a retryable error (after the calls' own retries) is
  // started over from the read, at most update_attempts_max times; `fn` is
  // then called again on what the new read returns. A failed write may still
  // be stored on the replicas that took it, and that read may return it: `fn`
  // then applies to its own earlier result, so it must be idempotent (or set
  // update_attempts_max to 1 and decide after an UNAVAILABLE or
  // DEADLINE_EXCEEDED yourself).
  [[nodiscard]] absl::StatusOr<WriteResult> Update(std::string_view key, const Resolver& fn,
                                                   const WriteOptions& options = {});

  // Fetches the topology now (from any node) and routes by it from then on.
  [[nodiscard]] absl::StatusOr<std::shared_ptr<const Topology>> RefreshTopology();
  // The topology last learned; null before the first one.
  std::shared_ptr<const Topology> topology() const;

  ClientStats stats() const;
  const ClientOptions& options() const;

 private:
  class Impl;
  explicit Client(std::unique_ptr<Impl> impl);
  // Get and Put ending by `deadline_ms` (steady clock): what Update's rounds
  // and a resolving Get's write-back share.
  absl::StatusOr<GetResult> GetBefore(std::string_view key, const GetOptions& options,
                                      int64_t deadline_ms);
  absl::StatusOr<WriteResult> PutBefore(std::string_view key, std::string_view value,
                                        std::string_view context, const WriteOptions& options,
                                        int64_t deadline_ms);
  std::unique_ptr<Impl> impl_;
};

}  // namespace dynamo::client
