#include "node_metrics.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>

namespace dynamo::server {
namespace {

double ResidentBytes() {
  long pages = 0, resident = 0;
  FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
  std::fclose(f);
  return static_cast<double>(resident) * static_cast<double>(sysconf(_SC_PAGESIZE));
}

double OpenFds() {
  DIR* d = opendir("/proc/self/fd");
  if (d == nullptr) return 0;
  double n = 0;
  while (readdir(d) != nullptr) ++n;
  closedir(d);
  return n - 3;  // ".", ".." and the directory itself
}

double CpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

}  // namespace

absl::StatusOr<std::unique_ptr<NodeMetrics>> NodeMetrics::Create(double sla_seconds) {
  std::unique_ptr<NodeMetrics> m(new NodeMetrics());
  if (absl::Status s = m->Register(sla_seconds); !s.ok()) return s;
  return m;
}

CoreSnapshot NodeMetrics::Snapshot() const {
  absl::MutexLock lock(&mu_);
  return snapshot_;
}

void NodeMetrics::Publish(CoreSnapshot snapshot) {
  absl::MutexLock lock(&mu_);
  snapshot_ = std::move(snapshot);
}

absl::Status NodeMetrics::Register(double sla_seconds) {
  absl::StatusOr<std::vector<double>> latency =
      metrics::AddBucketBound(metrics::LatencyBucketsSeconds(), sla_seconds);
  if (!latency.ok()) return latency.status();
  auto req = registry_.AddHistogramFamily(
      "dynamo_request_duration_seconds",
      "Client requests coordinated by this node, from arrival to reply.", {"op"}, *latency);
  if (!req.ok()) return req.status();
  request_duration_ = *req;
  auto total = registry_.AddIntCounterFamily("dynamo_requests_total",
                                             "Client requests answered, by gRPC status code.",
                                             {"op", "code"});
  if (!total.ok()) return total.status();
  requests_ = *total;
  auto rep = registry_.AddHistogramFamily("dynamo_replica_request_duration_seconds",
                                          "Replica reads and writes served for coordinators.",
                                          {"op"}, *latency);
  if (!rep.ok()) return rep.status();
  replica_duration_ = *rep;
  auto sib = registry_.AddHistogram("dynamo_siblings_per_read",
                                    "Concurrent values (siblings) a get returned.",
                                    {1, 2, 3, 4, 5, 10, 25, 100});
  if (!sib.ok()) return sib.status();
  siblings_ = *sib;
  auto sync = registry_.AddHistogram(
      "dynamo_storage_sync_duration_seconds",
      "Storage syncs (write-ahead log fsyncs when durable) that replies and acknowledgements "
      "waited for; one per group commit.",
      *latency);
  if (!sync.ok()) return sync.status();
  storage_sync_ = *sync;
  auto sync_failures = registry_.AddIntCounter(
      "dynamo_storage_sync_failures_total",
      "Storage syncs that failed; what waited for them failed too.");
  if (!sync_failures.ok()) return sync_failures.status();
  storage_sync_failures_ = *sync_failures;
  // Every series a dashboard plots or an alert watches exists from the start,
  // at zero: a series born at its first error would hide that error (and
  // every other of its first scrape interval) from rate() and increase().
  for (const char* op : {"get", "put", "delete"}) {
    request_duration_->WithLabels({op});
    for (absl::StatusCode code :
         {absl::StatusCode::kOk, absl::StatusCode::kInvalidArgument,
          absl::StatusCode::kResourceExhausted, absl::StatusCode::kUnavailable,
          absl::StatusCode::kDeadlineExceeded, absl::StatusCode::kDataLoss,
          absl::StatusCode::kInternal}) {
      requests_->WithLabels({op, absl::StatusCodeToString(code)});
    }
  }
  for (const char* op : {"read", "write"}) replica_duration_->WithLabels({op});
  auto calls = registry_.AddIntCounterFamily(
      "dynamo_peer_calls_total", "Calls this node made to other nodes, by RPC (call, batch).",
      {"rpc"});
  if (!calls.ok()) return calls.status();
  peer_calls_ = *calls;
  auto sent = registry_.AddIntCounterFamily(
      "dynamo_peer_requests_total",
      "Requests this node sent to other nodes, by the RPC that carried them (call, batch, "
      "stream).",
      {"rpc"});
  if (!sent.ok()) return sent.status();
  peer_requests_ = *sent;
  auto pipes = registry_.AddGauge("dynamo_client_pipes", "Clients' KV.Pipe streams open on this node.");
  if (!pipes.ok()) return pipes.status();
  client_pipes_ = *pipes;
  for (const char* rpc : {"call", "batch"}) peer_calls_->WithLabels({rpc});
  for (const char* rpc : {"call", "batch", "stream"}) peer_requests_->WithLabels({rpc});

  using metrics::LabeledValue;
  auto counter = [&](const char* name, const char* help, uint64_t core::NodeCounters::*field) {
    return registry_.AddCallbackCounter(name, help, [this, field] {
      return static_cast<double>(Snapshot().counters.*field);
    });
  };
  auto gauge = [&](const char* name, const char* help, std::function<double(const CoreSnapshot&)> f) {
    return registry_.AddCallbackGauge(name, help, [this, f] { return f(Snapshot()); });
  };
  auto storage_counter = [&](const char* name, const char* help,
                             uint64_t storage::EngineStats::*field) {
    return registry_.AddCallbackCounter(name, help, [this, field] {
      return static_cast<double>(Snapshot().storage.*field);
    });
  };
  auto storage_gauge = [&](const char* name, const char* help, uint64_t storage::EngineStats::*field) {
    return gauge(name, help, [field](const CoreSnapshot& s) { return static_cast<double>(s.storage.*field); });
  };
  for (absl::Status s : {
           counter("dynamo_hints_delivered_total", "Hinted keys delivered to their owners.",
                   &core::NodeCounters::hints_delivered),
           counter("dynamo_read_repairs_total", "Stale replicas repaired after reads.",
                   &core::NodeCounters::read_repairs),
           counter("dynamo_read_digest_mismatches_total",
                   "Replicas read again in full after a digest read: their digest differed from "
                   "the full answer, or no full answer came to compare it with.",
                   &core::NodeCounters::read_digest_mismatches),
           counter("dynamo_antientropy_exchanges_total", "Merkle tree exchanges finished.",
                   &core::NodeCounters::antientropy_exchanges),
           counter("dynamo_antientropy_keys_repaired_total", "Keys repaired by anti-entropy.",
                   &core::NodeCounters::antientropy_keys_repaired),
           counter("dynamo_tombstones_reaped_total",
                   "Tombstones this node removed once every owner held them (the reaps it "
                   "coordinated or was sent).",
                   &core::NodeCounters::tombstones_reaped),
           counter("dynamo_reaps_retried_total",
                   "Reaps this node coordinated that an owner did not acknowledge (the message "
                   "lost, its storage failing): they are sent again at least a grace period later.",
                   &core::NodeCounters::reaps_retried),
           counter("dynamo_handoff_keys_total", "Keys handed off to their owners after ring changes.",
                   &core::NodeCounters::handoff_keys),
           counter("dynamo_handoff_bytes_total", "Bytes handed off to their owners.",
                   &core::NodeCounters::handoff_bytes),
           counter("dynamo_forwarded_total",
                   "Writes this node passed to a node of the key's preference list to coordinate.",
                   &core::NodeCounters::forwarded),
           counter("dynamo_gossip_rounds_total", "Gossip rounds started.",
                   &core::NodeCounters::gossip_rounds),
           counter("dynamo_sibling_warnings_total",
                   "Writes that left a key with more siblings than the warning threshold.",
                   &core::NodeCounters::sibling_warnings),
           counter("dynamo_storage_errors_total", "Storage operations that failed.",
                   &core::NodeCounters::storage_errors),
           storage_counter("dynamo_storage_flush_written_bytes_total",
                           "Bytes the storage engine wrote from memory to table files.",
                           &storage::EngineStats::flush_written_bytes),
           storage_counter("dynamo_storage_compaction_read_bytes_total",
                           "Bytes the storage engine's compactions read.",
                           &storage::EngineStats::compaction_read_bytes),
           storage_counter("dynamo_storage_compaction_written_bytes_total",
                           "Bytes the storage engine's compactions wrote.",
                           &storage::EngineStats::compaction_written_bytes),
           storage_gauge("dynamo_storage_pending_compaction_bytes",
                         "Estimate of the bytes compactions still have to rewrite.",
                         &storage::EngineStats::pending_compaction_bytes),
           storage_gauge("dynamo_storage_block_cache_bytes",
                         "Bytes held in the storage engine's block cache.",
                         &storage::EngineStats::block_cache_bytes),
           storage_gauge("dynamo_storage_blob_file_bytes",
                         "Bytes of the storage engine's blob files (objects kept apart from keys).",
                         &storage::EngineStats::blob_file_bytes),
           storage_gauge("dynamo_storage_blob_garbage_bytes",
                         "Bytes in blob files that belong to overwritten or deleted objects.",
                         &storage::EngineStats::blob_garbage_bytes),
           storage_gauge("dynamo_storage_trash_bytes",
                         "Bytes of deleted storage files whose space is not yet returned.",
                         &storage::EngineStats::trash_bytes),
           gauge("dynamo_handoff_keys_remaining",
                 "Keys this node holds for ranges it no longer owns.",
                 [](const CoreSnapshot& s) { return static_cast<double>(s.unowned_keys); }),
           gauge("dynamo_reaps_owed",
                 "Fully replicated tombstones this node will reap, waiting for their grace "
                 "period, for every node to stop handing off (hints held) or for every node "
                 "that has not left to answer.",
                 [](const CoreSnapshot& s) { return static_cast<double>(s.reaps_owed); }),
           gauge("dynamo_members_unreachable", "Members this node's failure detector considers down.",
                 [](const CoreSnapshot& s) { return static_cast<double>(s.members_unreachable); }),
           gauge("dynamo_ring_version", "Version of the ring this node routes by.",
                 [](const CoreSnapshot& s) { return static_cast<double>(s.ring_version); }),
           gauge("dynamo_ring_owned_partitions", "Ranges this node replicates.",
                 [](const CoreSnapshot& s) { return static_cast<double>(s.owned_partitions); }),
           gauge("dynamo_ring_ownership_ratio",
                 "Fraction of the key space this node replicates (all nodes sum to N).",
                 [](const CoreSnapshot& s) { return s.ownership_ratio; }),
           gauge("dynamo_keys", "Keys stored.",
                 [](const CoreSnapshot& s) { return static_cast<double>(s.keys); }),
           gauge("dynamo_inflight_requests",
                 "Client requests being coordinated, including answered writes still waiting "
                 "on a replica.",
                 [](const CoreSnapshot& s) { return static_cast<double>(s.inflight); }),
           gauge("dynamo_ready", "1 while the node takes traffic (/readyz answers 200), else 0.",
                 [](const CoreSnapshot& s) { return s.ready ? 1.0 : 0.0; }),
           registry_.AddCallbackGauge("dynamo_sla_seconds", "The latency SLA target.",
                                      [sla_seconds] { return sla_seconds; }),
           registry_.AddCallbackGauge("process_resident_memory_bytes", "Resident memory.",
                                      ResidentBytes),
           registry_.AddCallbackGauge("process_open_fds", "Open file descriptors.", OpenFds),
           registry_.AddCallbackCounter("process_cpu_seconds_total", "CPU time used.", CpuSeconds),
           registry_.AddCallbackGaugeFamily(
               "dynamo_hint_backlog_keys", "Hints held for a down node.", {"target"},
               [this] {
                 std::vector<LabeledValue> out;
                 for (const auto& [target, keys] : Snapshot().hint_backlog) {
                   out.push_back({{target}, static_cast<double>(keys)});
                 }
                 return out;
               }),
           registry_.AddCallbackGaugeFamily(
               "dynamo_members", "Members by state, as this node sees them.", {"state"},
               [this] {
                 std::vector<LabeledValue> out;
                 CoreSnapshot s = Snapshot();
                 for (const char* state : {"standby", "joining", "normal", "leaving", "left"}) {
                   out.push_back({{state}, static_cast<double>(s.members_by_state[state])});
                 }
                 return out;
               }),
       }) {
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

void NodeMetrics::ClientRequest(const std::string& op, const std::string& code, double seconds) {
  request_duration_->WithLabels({op}).Observe(seconds);
  requests_->WithLabels({op, code}).Increment();
}

void NodeMetrics::ReplicaRequest(const std::string& op, double seconds) {
  replica_duration_->WithLabels({op}).Observe(seconds);
}

void NodeMetrics::StorageSync(double seconds, bool failed) {
  storage_sync_->Observe(seconds);
  if (failed) storage_sync_failures_->Increment();
}

void NodeMetrics::PeerCall(const std::string& rpc, size_t requests) {
  peer_calls_->WithLabels({rpc}).Increment();
  peer_requests_->WithLabels({rpc}).Increment(requests);
}

void NodeMetrics::PeerStreamed(size_t requests) {
  peer_requests_->WithLabels({"stream"}).Increment(requests);
}

void NodeMetrics::SiblingsRead(size_t siblings) { siblings_->Observe(static_cast<double>(siblings)); }

}  // namespace dynamo::server
