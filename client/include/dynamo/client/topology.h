#pragma once

// The cluster's ring as a client sees it: a TopologyResponse turned into the
// same core::Ring the nodes route by, plus each node's address and liveness.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "dynamo/core/ring.h"
#include "dynamo/v1/kv.pb.h"

namespace dynamo::client {

// The ring of a Topology answer, built exactly as a node builds its own from
// its ring state (core::RingFromState), so that client and nodes agree on
// every preference list. An answer without tokens (a node that knows no ring
// yet) gives an empty ring; a malformed one is InvalidArgument.
[[nodiscard]] absl::StatusOr<core::Ring> RingFromTopology(const v1::TopologyResponse& topology);

// An immutable routing view. Safe to share between threads.
struct Topology {
  struct Node {
    std::string id;
    std::string address;  // host:port of its gRPC endpoint
    std::string zone;
    bool alive = false;  // as the answering node's failure detector saw it
  };

  uint64_t ring_version = 0;
  uint32_t replicas = 0;  // the cluster's N
  core::Ring ring;
  std::vector<Node> nodes;  // sorted by id

  const Node* FindNode(std::string_view id) const;
  // The key's preference order: every node owning tokens, the first
  // `replicas` being its replicas, the rest the sloppy-quorum fallbacks.
  // Empty for an empty ring.
  std::vector<const Node*> PreferenceOrder(std::string_view key) const;
};

[[nodiscard]] absl::StatusOr<Topology> TopologyFromResponse(const v1::TopologyResponse& response);

}  // namespace dynamo::client
