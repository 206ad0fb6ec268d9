#pragma once

// Bounds of the node's settings that others must agree with: the operator
// refuses a DynamoCluster outside them (operator/reconciler/cluster.cc), and
// tests/packaging/check_crd.py reads this file to check the CRD's schema. One
// place, so a bound cannot change in the node alone.

#include <cstdint>
#include <string_view>

namespace dynamo::server {

inline constexpr uint32_t kReplicasMax = 16;        // N, R and W (--replicas, --*-quorum)
inline constexpr uint32_t kVirtualNodesMax = 4096;  // --vnodes
inline constexpr uint32_t kPartitionsMax = 65536;   // --partitions
inline constexpr int64_t kSyncDelayUsMax = 100000;  // --sync-delay-us

// A sync delay holds a durable node's log syncs. A buffered node acknowledges
// before any sync, where a delay would do nothing: both refuse it there.
inline bool SyncDelayAppliesTo(std::string_view durability, int64_t delay_us) {
  return delay_us == 0 || durability == "durable";
}

}  // namespace dynamo::server
