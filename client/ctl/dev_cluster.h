#pragma once

// `dynamoctl dev`: a local cluster of dynamo-node processes on 127.0.0.1,
// with every file under one folder:
//   DIR/nI/      data of node I     DIR/nI.log  its stdout and stderr
//   DIR/nI.pid   its process id     DIR/cluster.conf  addresses of all nodes
// The processes run in their own sessions and outlive dynamoctl.

#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace dynamo::ctl {

struct DevUpOptions {
  int nodes = 3;
  std::string dir = ".dev-cluster";
  int base_port = 7001;       // gRPC of node I: base_port + I - 1
  int http_base_port = 9101;  // HTTP of node I: http_base_port + I - 1
  std::string node_binary;    // "" = FindNodeBinary's search
  std::string storage = "rocksdb";
  uint32_t replicas = 3;
  uint32_t read_quorum = 2;
  uint32_t write_quorum = 2;
  int64_t wait_ms = 60000;  // until every node is NORMAL and ready
  int64_t rpc_timeout_ms = 2000;
};

inline constexpr int kDevNodesMax = 64;

// InvalidArgument for what cannot work (ports out of range or overlapping,
// R or W above N, N above the node count, unknown storage).
[[nodiscard]] absl::Status ValidateDevUp(const DevUpOptions& options);

// The arguments of node `index` (1-based), after argv[0]. `dir` is absolute.
std::vector<std::string> DevNodeArgs(const DevUpOptions& options, const std::string& dir,
                                     int index);

// Each returns the exit status (0 ok, 1 error) after printing to out / err.
int DevUp(const DevUpOptions& options, std::ostream& out, std::ostream& err);
int DevDown(const std::string& dir, bool wipe, int64_t wait_ms, std::ostream& out,
            std::ostream& err);
int DevStatus(const std::string& dir, int64_t rpc_timeout_ms, std::ostream& out, std::ostream& err);

}  // namespace dynamo::ctl
