#pragma once

// The dynamo-node server: the protocol core (core::Node) driven by one event
// loop thread, behind gRPC (KV, Replica and Admin services), with peers
// reached over gRPC, storage on RocksDB or in memory, and Prometheus metrics
// with health and readiness over HTTP.
//
// Threads: gRPC's threads only enqueue work for the loop and finish calls;
// the loop thread alone touches the core. A batch of inputs is stepped, the
// storage is synced once for the whole batch (group commit), then the batch's
// messages and replies go out: nothing is acknowledged before it is durable.

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "dynamo/server/options.h"

namespace dynamo::server {

class NodeServer {
 public:
  // Opens storage, starts the loop, the gRPC server and the HTTP endpoint.
  static absl::StatusOr<std::unique_ptr<NodeServer>> Start(const ServerOptions& options);
  ~NodeServer();  // Shuts down if still running.

  // Graceful shutdown: readiness goes false, new requests are refused,
  // in-flight ones get the grace period, storage is synced. Idempotent;
  // safe from any thread.
  void Shutdown();
  // Blocks until Shutdown has completed.
  void Wait();
  // Non-empty once the node stopped itself because an administrator removed
  // it from the cluster: the node through which they did.
  std::string removed_by() const;

  int grpc_port() const;
  int http_port() const;

  class Impl;

 private:
  explicit NodeServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace dynamo::server
