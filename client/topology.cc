#include "dynamo/client/topology.h"

#include <algorithm>

#include "dynamo/base/strings.h"
#include "dynamo/core/hash.h"
#include "dynamo/core/membership.h"
#include "dynamo/v1/replica.pb.h"

namespace dynamo::client {

absl::StatusOr<core::Ring> RingFromTopology(const v1::TopologyResponse& topology) {
  // The nodes build their ring from a RingState; going through the very same
  // function rules out any difference in how tokens and members are read.
  v1::RingState state;
  state.set_version(topology.ring_version());
  state.set_strategy(topology.strategy());
  state.set_partitions(topology.partitions());
  state.set_zone_aware(topology.zone_aware());
  *state.mutable_tokens() = topology.tokens();
  for (const v1::NodeAddress& n : topology.nodes()) {
    v1::RingMember* m = state.add_members();
    m->set_node_id(n.node_id());
    m->set_address(n.address());
    m->set_zone(n.zone());
  }
  absl::StatusOr<core::Ring> ring = core::RingFromState(state);
  if (!ring.ok()) {
    return absl::InvalidArgumentError(Cat("topology of ring version ", topology.ring_version(),
                                          " is not a valid ring: ", ring.status().message()));
  }
  return ring;
}

const Topology::Node* Topology::FindNode(std::string_view id) const {
  auto it = std::lower_bound(nodes.begin(), nodes.end(), id,
                             [](const Node& n, std::string_view v) { return n.id < v; });
  return it != nodes.end() && it->id == id ? &*it : nullptr;
}

std::vector<const Topology::Node*> Topology::PreferenceOrder(std::string_view key) const {
  std::vector<const Node*> order;
  if (ring.empty()) return order;
  for (uint32_t index : ring.PreferenceOrder(ring.RangeIndex(core::KeyPosition(key)))) {
    // Ring::Create refuses tokens of unknown nodes, and every ring node came
    // from `nodes`, so the lookup cannot fail.
    order.push_back(FindNode(ring.nodes()[index].id));
  }
  return order;
}

absl::StatusOr<Topology> TopologyFromResponse(const v1::TopologyResponse& response) {
  absl::StatusOr<core::Ring> ring = RingFromTopology(response);
  if (!ring.ok()) return ring.status();
  Topology t;
  t.ring_version = response.ring_version();
  t.replicas = response.replicas();
  t.ring = *std::move(ring);
  for (const v1::NodeAddress& n : response.nodes()) {
    t.nodes.push_back({n.node_id(), n.address(), n.zone(), n.alive()});
  }
  std::sort(t.nodes.begin(), t.nodes.end(),
            [](const Topology::Node& a, const Topology::Node& b) { return a.id < b.id; });
  for (size_t i = 1; i < t.nodes.size(); ++i) {
    if (t.nodes[i].id == t.nodes[i - 1].id) {
      return absl::InvalidArgumentError(Cat("topology names node ", t.nodes[i].id, " twice"));
    }
  }
  if (!t.ring.empty() && t.replicas == 0) {
    return absl::InvalidArgumentError("topology has a ring but replicas (N) is 0");
  }
  return t;
}

}  // namespace dynamo::client
