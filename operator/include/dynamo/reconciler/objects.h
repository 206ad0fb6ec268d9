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

// app.kubernetes.io/{name,instance,managed-by}: on everything the cluster owns.
json::Value Labels(const Cluster& c);
// The subset that selects the cluster's pods.
json::Value SelectorLabels(const Cluster& c);
// "key=value,..." for a list call.
std::string LabelSelector(const Cluster& c);
json::Value OwnerReference(const Cluster& c);

json::Value HeadlessService(const Cluster& c);
json::Value ClientService(const Cluster& c);
// `seeds`: host:port list for the data key "seeds".
json::Value SeedsConfigMap(const Cluster& c, const std::string& seeds);
json::Value PodDisruptionBudget(const Cluster& c);
json::Value ServiceMonitor(const Cluster& c);
// `replicas` is decided by the scaling rules, not taken from the spec.
// `existing` is the StatefulSet as observed: its immutable parts (the volume
// claim templates, partitions) are kept from it.
json::Value StatefulSet(const Cluster& c, int replicas, const std::optional<json::Value>& existing);

}  // namespace dynamo::reconciler
