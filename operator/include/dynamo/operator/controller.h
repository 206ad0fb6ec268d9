#pragma once

// The DynamoCluster controller: keeps caches of the clusters and the objects
// they own (list + watch), turns every change into a work-queue key for its
// cluster, and on each key gathers the observation (a fresh read of the
// cluster, the cached objects, and each pod's node Admin.Status), asks the
// pure reconciler for a plan, and carries it out: server-side apply, merge
// patches, deletes, node Join/Leave/SetVirtualNodes calls, the status
// subresource (re-read and retried on 409), and Events.
//
// Workers act only while this replica leads (SetLeading); caches stay warm
// either way. Start/Stop/SetLeading are for one owning thread; everything
// else is internal and thread-safe.

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "dynamo/json/json.h"
#include "dynamo/k8s/client.h"
#include "dynamo/k8s/events.h"
#include "dynamo/k8s/reflector.h"
#include "dynamo/metrics/registry.h"
#include "dynamo/operator/node_admin.h"
#include "dynamo/operator/work_queue.h"
#include "dynamo/reconciler/reconciler.h"

namespace dynamo::op {

struct ControllerOptions {
  std::string ns;       // empty: every namespace
  bool pod_ip = false;  // reach nodes at podIP:7000 (else through the headless Service's DNS)
  int workers = 2;
  int watch_timeout_s = 300;
  int resync_s = 300;             // every cluster is reconciled at least this often
  // After a 403 or 404 on ServiceMonitors, they are not asked for again
  // (every cluster is told why) until this much time has passed.
  int service_monitor_retry_s = 300;
  reconciler::Options reconcile;  // `now` is filled in per reconcile
};

class Controller {
 public:
  Controller(k8s::Client* client, NodeAdmin* nodes, k8s::EventRecorder* events,
             metrics::Registry* registry, ControllerOptions options);
  ~Controller();

  void Start();
  void Stop();
  // Becoming leader re-queues every known cluster.
  void SetLeading(bool leading);
  bool leading() const { return leading_.load(); }
  // Every cache has listed at least once.
  bool Synced() const;

  // One reconcile of "namespace/name", as a worker runs it. Returns whether
  // every (non-optional) action succeeded; *requeue_s is the plan's delay.
  bool ReconcileKey(const std::string& key, int* requeue_s);

 private:
  void Enqueue(const json::Value& object, bool is_cluster);
  // A watch event of a DynamoCluster: queued unless only its status (or the
  // server's bookkeeping) changed since the last event (ReconcileInput).
  void OnClusterEvent(std::string_view type, const json::Value& object);
  void Work();
  reconciler::Observed Observe(const reconciler::Cluster& c);
  absl::Status Execute(const reconciler::Action& a, const json::Value& cluster,
                       const reconciler::Observed& observed);
  std::string NodeAddress(const reconciler::Cluster& c, const reconciler::Observed& observed,
                          const std::string& pod) const;
  // ServiceMonitors are not watched (their CRD may be missing, or RBAC may
  // not grant them): each reconcile lists the cluster's one, unless a 403 or
  // 404 said recently that it is no use. Transitions are logged once.
  void ObserveServiceMonitor(const reconciler::Cluster& c, reconciler::Observed* obs);
  // Zone-aware clusters: the zone label of each Kubernetes Node running a pod.
  void ObserveZones(const reconciler::Cluster& c, reconciler::Observed* obs);
  // Records what an answer about ServiceMonitors says; true if it was a 403
  // or a 404 of the resource type (then already logged).
  bool NoteServiceMonitorAnswer(const absl::Status& status, bool listing);

  k8s::Client* const client_;
  NodeAdmin* const nodes_;
  k8s::EventRecorder* const events_;
  const ControllerOptions options_;
  WorkQueue queue_;
  k8s::Cancellation cancel_;
  std::atomic<bool> leading_{false};

  std::unique_ptr<k8s::Reflector> clusters_;
  std::vector<std::unique_ptr<k8s::Reflector>> owned_;  // sts, services, cms, pdbs, pvcs, pods
  std::vector<std::thread> threads_;

  std::mutex inputs_mu_;
  std::map<std::string, json::Value> cluster_inputs_;  // "ns/name"; guarded by inputs_mu_

  std::mutex sm_mu_;
  reconciler::ServiceMonitorAccess sm_access_ = reconciler::ServiceMonitorAccess::kAvailable;
  int64_t sm_retry_at_ms_ = 0;  // steady clock; while unavailable

  metrics::Family<metrics::IntCounter>* reconciles_ = nullptr;
  metrics::Family<metrics::IntCounter>* actions_ = nullptr;
};

}  // namespace dynamo::op
