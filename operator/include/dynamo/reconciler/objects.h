#pragma once

// The Kubernetes objects a DynamoCluster owns, rendered as JSON: names,
// labels, and the desired headless Service, client Service, seeds ConfigMap,
// PodDisruptionBudget, ServiceMonitor and StatefulSet. Pure functions.

#include <optional>
#include <string>

#include "dynamo/json/json.h"
#include "dynamo/reconciler/cluster.h"

namespace dynamo::reconciler {

std::string HeadlessServiceName(const Cluster& c);
std::string ConfigMapName(const Cluster& c);
std::string PodName(const Cluster& c, int ordinal);
// The claim the StatefulSet makes for a pod from its "data" template.
std::string ClaimName(const Cluster& c, int ordinal);
// The ordinal of "<cluster>-<n>" (or "data-<cluster>-<n>" with `prefix`), or -1.
int OrdinalOf(const Cluster& c, const std::string& name, std::string_view prefix = "");
// The stable DNS address of a pod's gRPC endpoint through the headless Service.
std::string PodDnsAddress(const Cluster& c, int ordinal);

// The labels of the storage nodes. The chart's ServiceMonitor, PodMonitor and
// NetworkPolicy select node pods and Services by name=dynamo and
// component=node; the operator's own pods are name=dynamo-operator,
// component=operator, so no selector here can match them.
inline constexpr char kNameLabel[] = "app.kubernetes.io/name";
inline constexpr char kInstanceLabel[] = "app.kubernetes.io/instance";
inline constexpr char kComponentLabel[] = "app.kubernetes.io/component";
inline constexpr char kManagedByLabel[] = "app.kubernetes.io/managed-by";
inline constexpr char kNodeName[] = "dynamo";
inline constexpr char kNodeComponent[] = "node";
inline constexpr char kManagedBy[] = "dynamo-operator";
// The image's user and group (Dockerfile: useradd --uid 10001).
inline constexpr int kNodeUid = 10001;

// app.kubernetes.io/{name,instance,component,managed-by}: on everything the
// cluster owns.
json::Value Labels(const Cluster& c);
// The subset that selects the cluster's pods: name, instance, component.
json::Value SelectorLabels(const Cluster& c);
// What the operator lists and watches the objects of every cluster by:
// managed-by=dynamo-operator and name=dynamo (not component: claims made
// from an older template may lack it). Never matches the operator's pods.
std::string OwnedObjectsSelector();
json::Value OwnerReference(const Cluster& c);

json::Value HeadlessService(const Cluster& c);
json::Value ClientService(const Cluster& c);
// `seeds`: host:port list for the data key "seeds".
json::Value SeedsConfigMap(const Cluster& c, const std::string& seeds);
json::Value PodDisruptionBudget(const Cluster& c);
json::Value ServiceMonitor(const Cluster& c);
// `replicas` is decided by the scaling rules, not taken from the spec.
// `existing` is the StatefulSet as observed: its immutable parts (selector,
// volume claim templates, partitions, replication factor) are kept from it.
json::Value StatefulSet(const Cluster& c, int replicas, const std::optional<json::Value>& existing);

// What an existing StatefulSet was created with (its annotations, else its
// node's flags); 0 when it does not say.
int KeptPartitions(const json::Value& stateful_set);
int KeptReplicationFactor(const json::Value& stateful_set);
// Why the spec's storage (size, class) differs from what the StatefulSet's
// volumes were made with, which cannot change; empty when it does not.
std::string StorageChange(const Cluster& c, const json::Value& stateful_set);

}  // namespace dynamo::reconciler
