#include "dynamo/k8s/resources.h"

#include "dynamo/base/strings.h"

namespace dynamo::k8s {

std::string ResourceType::Path(std::string_view ns, std::string_view name,
                               std::string_view subresource) const {
  std::string p = group.empty() ? Cat("/api/", version) : Cat("/apis/", group, "/", version);
  if (namespaced && !ns.empty()) p += Cat("/namespaces/", ns);
  p += Cat("/", plural);
  if (!name.empty()) p += Cat("/", name);
  if (!subresource.empty()) p += Cat("/", subresource);
  return p;
}

#define DYNAMO_RESOURCE_SCOPED(fn, group, version, kind, plural, namespaced)  \
  const ResourceType& fn() {                                                  \
    static const ResourceType* const kType =                                  \
        new ResourceType{group, version, kind, plural, namespaced};           \
    return *kType;                                                            \
  }
#define DYNAMO_RESOURCE(fn, group, version, kind, plural) \
  DYNAMO_RESOURCE_SCOPED(fn, group, version, kind, plural, /*namespaced=*/true)
DYNAMO_RESOURCE(Pods, "", "v1", "Pod", "pods")
DYNAMO_RESOURCE(Services, "", "v1", "Service", "services")
DYNAMO_RESOURCE(ConfigMaps, "", "v1", "ConfigMap", "configmaps")
DYNAMO_RESOURCE(PersistentVolumeClaims, "", "v1", "PersistentVolumeClaim", "persistentvolumeclaims")
DYNAMO_RESOURCE(Events, "", "v1", "Event", "events")
DYNAMO_RESOURCE(StatefulSets, "apps", "v1", "StatefulSet", "statefulsets")
DYNAMO_RESOURCE(PodDisruptionBudgets, "policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets")
DYNAMO_RESOURCE(Leases, "coordination.k8s.io", "v1", "Lease", "leases")
DYNAMO_RESOURCE(ServiceMonitors, "monitoring.coreos.com", "v1", "ServiceMonitor", "servicemonitors")
DYNAMO_RESOURCE(DynamoClusters, "dynamo.dev", "v1alpha1", "DynamoCluster", "dynamoclusters")
DYNAMO_RESOURCE_SCOPED(Nodes, "", "v1", "Node", "nodes", /*namespaced=*/false)
#undef DYNAMO_RESOURCE
#undef DYNAMO_RESOURCE_SCOPED

const ResourceType* FindResource(std::string_view api_version, std::string_view kind) {
  for (const ResourceType* t :
       {&Pods(), &Services(), &ConfigMaps(), &PersistentVolumeClaims(), &Events(), &StatefulSets(),
        &PodDisruptionBudgets(), &Leases(), &ServiceMonitors(), &DynamoClusters()}) {
    if (t->kind == kind && t->ApiVersion() == api_version) return t;
  }
  return nullptr;
}

}  // namespace dynamo::k8s
