#pragma once

// The node's Prometheus metrics (see docs/metrics.md). Request latencies are
// observed by the I/O layer as calls finish; the core's state is published
// by the loop thread as a snapshot that scrapes read.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "dynamo/core/node.h"
#include "dynamo/metrics/registry.h"
#include "dynamo/storage/engine.h"

namespace dynamo::server {

// What scrapes show of the core, copied by the loop thread. Thread-safe.
struct CoreSnapshot {
  core::NodeCounters counters;
  std::map<std::string, uint64_t> hint_backlog;
  std::map<std::string, uint64_t> members_by_state;
  uint64_t members_unreachable = 0;
  uint64_t ring_version = 0;
  uint64_t owned_partitions = 0;
  double ownership_ratio = 0;
  uint64_t keys = 0;
  uint64_t unowned_keys = 0;
  uint64_t reaps_owed = 0;
  uint64_t inflight = 0;
  bool ready = false;  // what /readyz answers
  storage::EngineStats storage;
};

class NodeMetrics {
 public:
  static absl::StatusOr<std::unique_ptr<NodeMetrics>> Create(double sla_seconds);

  metrics::Registry& registry() { return registry_; }
  // op: get, put, delete; code: the gRPC code name.
  void ClientRequest(const std::string& op, const std::string& code, double seconds);
  // op: read, write.
  void ReplicaRequest(const std::string& op, double seconds);
  // rpc: call (one request) or batch (several to one node).
  void PeerCall(const std::string& rpc, size_t requests);
  // Requests sent on a Replica.Stream (which are not calls).
  void PeerStreamed(size_t requests);
  // A client's KV.Pipe opened or ended.
  void PipeOpened() { client_pipes_->Increment(); }
  void PipeEnded() { client_pipes_->Decrement(); }
  void SiblingsRead(size_t siblings);
  // One storage sync that acknowledgements waited for (a group commit), and
  // whether it failed.
  void StorageSync(double seconds, bool failed);
  void Publish(CoreSnapshot snapshot);

 private:
  NodeMetrics() = default;
  absl::Status Register(double sla_seconds);
  CoreSnapshot Snapshot() const;

  metrics::Registry registry_;
  metrics::Family<metrics::Histogram>* request_duration_ = nullptr;
  metrics::Family<metrics::IntCounter>* requests_ = nullptr;
  metrics::Family<metrics::Histogram>* replica_duration_ = nullptr;
  metrics::Histogram* siblings_ = nullptr;
  metrics::Histogram* storage_sync_ = nullptr;
  metrics::IntCounter* storage_sync_failures_ = nullptr;
  metrics::Family<metrics::IntCounter>* peer_calls_ = nullptr;
  metrics::Family<metrics::IntCounter>* peer_requests_ = nullptr;
  metrics::Gauge* client_pipes_ = nullptr;
  mutable absl::Mutex mu_;
  CoreSnapshot snapshot_ ABSL_GUARDED_BY(mu_);
};

}  // namespace dynamo::server
