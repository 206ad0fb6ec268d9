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
#include <memory>
#include <string>
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
  reconciler::Options reconcile;  // `now` is filled in per reconcile
};

class Controller {
 public:
  static constexpr char kManagedBySelector[] = "app.kubernetes.io/managed-by=dynamo-operator";

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
  void Work();
  reconciler::Observed Observe(const reconciler::Cluster& c);
  absl::Status Execute(const reconciler::Action& a, const json::Value& cluster,
                       const reconciler::Observed& observed);
  std::string NodeAddress(const reconciler::Cluster& c, const reconciler::Observed& observed,
                          const std::string& pod) const;

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

  metrics::Family<metrics::IntCounter>* reconciles_ = nullptr;
  metrics::Family<metrics::IntCounter>* actions_ = nullptr;
};

}  // namespace dynamo::op
