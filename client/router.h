#pragma once

// Where a client sends a request, and in what order it tries other nodes.
// Pure: time comes in as `now_ms`, so tests drive it without a network.

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "dynamo/client/topology.h"

namespace dynamo::client::internal {

// Nodes (by address) that failed an attempt recently: they are tried last
// until `down_ms` has passed, then given another chance. A routing hint only;
// it never excludes a node. Not thread-safe.
class HealthTracker {
 public:
  static constexpr size_t kAddressesMax = 4096;  // as many as a ring may have nodes

  explicit HealthTracker(int64_t down_ms) : down_ms_(down_ms) {}

  void MarkFailed(const std::string& address, int64_t now_ms);
  void MarkSucceeded(const std::string& address);
  bool Healthy(const std::string& address, int64_t now_ms) const;
  size_t size() const { return down_until_ms_.size(); }

 private:
  int64_t down_ms_;
  std::map<std::string, int64_t> down_until_ms_;
};

// Client-driven routing (the paper's section 6.4): the key's preference
// order, healthy nodes first. The first entry is a healthy node among the
// key's N replicas, so it coordinates the request itself instead of
// forwarding it; `rotation` picks which one (rotation % their number), so
// that a hot key's traffic is shared by its replicas instead of falling on
// one coordinator. After them come the other healthy nodes in ring order,
// then the unhealthy ones. A node is healthy when the topology says it is
// alive and `tracker` has no recent failure for it. Every ring node appears
// once; nodes without an address are left out.
std::vector<std::string> PlanClientDriven(const Topology& topology, std::string_view key,
                                          const HealthTracker& tracker, int64_t now_ms,
                                          uint64_t rotation);

// Server-driven routing: every address once, rotated to start at
// `rotation % size` (round robin), healthy addresses first.
std::vector<std::string> PlanRoundRobin(const std::vector<std::string>& addresses,
                                        uint64_t rotation, const HealthTracker& tracker,
                                        int64_t now_ms);

// The seeds, then the topology's node addresses not among them, without
// duplicates or empty addresses.
std::vector<std::string> KnownAddresses(const std::vector<std::string>& seeds,
                                        const Topology* topology);

}  // namespace dynamo::client::internal
