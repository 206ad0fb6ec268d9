#pragma once

// A cluster of real dynamo-node processes on loopback for tests: free ports
// from the kernel, a fresh temp folder, and every process SIGKILLed when the
// LocalCluster goes away (and by the kernel if the test process dies first).

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace dynamo::client::testing {

struct LocalClusterOptions {
  int nodes = 3;
  std::string storage = "memory";
  uint32_t replicas = 3;
  uint32_t read_quorum = 2;
  uint32_t write_quorum = 2;
  // Fast gossip: the cluster forms and notices failures in about a second.
  std::vector<std::string> extra_args = {"--gossip-interval-ms=200"};
  int64_t ready_wait_ms = 40000;
};

// Not thread-safe.
class LocalCluster {
 public:
  // Starts the nodes (the binary: $DYNAMO_NODE_BINARY, else found beside the
  // test as dynamoctl finds it) and waits until all are NORMAL, ready and see
  // each other alive. Retries with new ports if a port was taken meanwhile.
  static absl::StatusOr<std::unique_ptr<LocalCluster>> Start(const LocalClusterOptions& options);
  ~LocalCluster();

  int size() const { return static_cast<int>(nodes_.size()); }
  // Node i, 0-based: id "n<i+1>".
  const std::string& node_id(int i) const { return nodes_[i].id; }
  const std::string& address(int i) const { return nodes_[i].address; }
  const std::string& http(int i) const { return nodes_[i].http; }
  pid_t pid(int i) const { return nodes_[i].pid; }
  std::vector<std::string> addresses() const;
  int IndexOfAddress(const std::string& address) const;  // -1 if none

  // kill -9 and reap.
  void Kill(int i);
  // Starts node i again with the same flags (after Kill) and waits until the
  // whole cluster is ready again.
  [[nodiscard]] absl::Status Restart(int i);
  // Each node's last log lines, for a failed test's output.
  std::string LogTails(size_t lines) const;

 private:
  struct Node {
    std::string id, address, http, log;
    std::vector<std::string> args;
    pid_t pid = 0;
  };
  LocalCluster() = default;
  absl::Status Launch(const LocalClusterOptions& options, const std::string& binary);
  void KillAll();
  absl::Status Spawn(int i);
  absl::Status WaitReady(int64_t wait_ms);

  std::string binary_;
  int64_t ready_wait_ms_ = 0;
  std::string dir_;
  std::vector<Node> nodes_;
};

// GET http://host:port/path over HTTP/1.0: the body of a 200 answer.
[[nodiscard]] absl::StatusOr<std::string> HttpGet(const std::string& host_port,
                                                  const std::string& path, int64_t timeout_ms);

// Sum of the samples of `metric` in a Prometheus exposition whose labels
// include every one of `labels` (each like op="put"); 0 if none.
double MetricSum(const std::string& exposition, const std::string& metric,
                 const std::vector<std::string>& labels);

}  // namespace dynamo::client::testing
