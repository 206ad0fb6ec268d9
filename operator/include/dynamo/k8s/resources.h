#pragma once

// The API resources the operator reads and writes, and their REST paths.

#include <string>
#include <string_view>

namespace dynamo::k8s {

struct ResourceType {
  std::string group;  // "" for the core group
  std::string version;
  std::string kind;
  std::string plural;
  bool namespaced = true;

  std::string ApiVersion() const { return group.empty() ? version : group + "/" + version; }
  // "/api/v1/namespaces/db/pods/x/status". An empty `ns` on a namespaced
  // type addresses every namespace (lists and watches).
  std::string Path(std::string_view ns, std::string_view name = "",
                   std::string_view subresource = "") const;
};

const ResourceType& Pods();
const ResourceType& Services();
const ResourceType& ConfigMaps();
const ResourceType& PersistentVolumeClaims();
const ResourceType& Events();
const ResourceType& StatefulSets();
const ResourceType& PodDisruptionBudgets();
const ResourceType& Leases();
const ResourceType& ServiceMonitors();
const ResourceType& DynamoClusters();
const ResourceType& Nodes();  // cluster-scoped: read for their zone labels

// One of the above by apiVersion and kind, or null.
const ResourceType* FindResource(std::string_view api_version, std::string_view kind);

}  // namespace dynamo::k8s
