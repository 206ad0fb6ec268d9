#pragma once

// Settings of one node's protocol core. Every queue, batch and limit of the
// core is named here with its unit, and Validate() refuses nonsense.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "dynamo/core/merkle.h"
#include "dynamo/core/ring.h"

namespace dynamo::core {

// What one message (a read's answer, a replica write) holds besides a key and
// its values: the clock, each sibling's dot and time, the context, the
// envelope. A generous bound.
inline constexpr size_t kMessageReserveBytes = 64 << 10;
inline constexpr size_t kMessageBytesDefault = 8 << 20;
// The values of one object that a message of message_bytes can carry.
constexpr size_t ObjectBytesIn(size_t message_bytes, size_t key_bytes_max) {
  return message_bytes - key_bytes_max - kMessageReserveBytes;
}

// Peers drop gossiped states with longer zones (membership.cc), stricter than
// the ring's kRingNodeIdBytesMax.
inline constexpr size_t kZoneBytesMax = 128;

// A zone a node may take (from --zone or an admin Join): at most
// kZoneBytesMax bytes and no control characters; empty is no zone.
absl::Status ValidateZone(const std::string& zone);

struct NodeConfig {
  // Identity and placement.
  std::string node_id;
  std::string address;            // host:port peers and clients reach this node at
  std::string zone;  // failure domain for zone-aware placement (--zone); else a Join's, kept
  std::vector<std::string> seeds; // host:port of nodes to gossip with first
  bool auto_join = true;          // ask to join the ring at start (else: admin Join)
  uint32_t vnodes = 64;           // virtual nodes: tokens (strategies 1, 2) or weight (3)

  // Cluster-wide settings: every node must use the same ones.
  RingSpec ring;
  uint32_t replicas_n = 3;
  uint32_t read_quorum_r = 2;
  uint32_t write_quorum_w = 2;
  MerkleShape merkle{16, 2};

  // Requests.
  int64_t request_timeout_ms = 2000;
  size_t key_bytes_max = 4096;
  size_t value_bytes_max = 1 << 20;     // 1 MiB
  size_t siblings_warn = 25;            // past this, a write is counted as a warning
  size_t siblings_max = 100;            // past this, a concurrent write is refused
  // The values of a key's siblings together: past this, a concurrent write is
  // refused, so that every object still fits in one message (a read, a
  // replica write). The server derives it from its gRPC message limit.
  size_t object_bytes_max = ObjectBytesIn(kMessageBytesDefault, key_bytes_max);
  size_t clock_entries_max = 10;        // clients' contexts: the oldest entries past this go
  size_t operations_in_flight_max = 10000;

  // Membership.
  int64_t gossip_interval_ms = 1000;
  double phi_threshold = 8.0;
  int64_t ring_change_interval_ms = 1000;  // claimant: at most one ring change per interval

  // Background work, limited so that foreground latency stays protected.
  int64_t background_interval_ms = 100;    // how often background work is scheduled
  size_t hint_batch_keys_max = 64;
  size_t handoff_batch_keys_max = 128;
  size_t handoff_ranges_in_flight_max = 2;
  int64_t background_bytes_per_s = 8 << 20;  // shared budget: hints, handoff, repair
  int64_t foreground_latency_target_ms = 50; // above this, background work slows to 1/4
  int64_t antientropy_interval_ms = 5000;    // one exchange started per interval
  size_t antientropy_keys_per_exchange_max = 1000;
  int64_t tombstone_grace_ms = 60000;        // a fully replicated tombstone is reaped after this
  // Tombstones waiting for their reap held in memory; the rest wait in
  // storage (ReapQueue), so none is dropped.
  size_t reap_queue_max = 10000;

  absl::Status Validate() const;
  // The actor prefix of this node's clock entries.
};

}  // namespace dynamo::core
