#pragma once

// A key's versioned state as a dotted version vector set: the concurrent values
// (siblings), each tagged with the dot of the write that made it, plus the
// causal context of everything the replica has seen for the key.
//
// Why dots and not plain vector clocks per value: with plain clocks a client
// that writes twice with the same stale context makes the two values look
// concurrent, and siblings pile up (Riak's "sibling explosion"). With dots, a
// write removes exactly the values its context has seen and keeps exactly
// the truly concurrent ones.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "dynamo/core/version_vector.h"

namespace dynamo::core {

struct Sibling {
  Dot dot;
  std::string value;
  bool tombstone = false;
  int64_t timestamp_ms = 0;  // coordinator's wall time of the write

  friend bool operator==(const Sibling&, const Sibling&) = default;
};

// Bounds on decoded objects, far above what the coordinator lets a key reach.
inline constexpr size_t kMaxSiblingsDecoded = 4096;

// Value type; not thread-safe. Invariant: every sibling's dot is covered by
// clock(), siblings are sorted by dot and dots are distinct.
class VersionedObject {
 public:
  VersionedObject() = default;
  // An object that has seen `clock` and holds no value: what a write whose
  // context covers the stored clock builds on (it drops every stored value).
  static VersionedObject OfClock(VersionVector clock);

  // A write coordinated with a fresh dot: removes every sibling the context
  // has seen, adds the new value. `dot` must not be covered by clock() or
  // context (the caller allocates it above both).
  void Write(const VersionVector& context, Dot dot, std::string value, bool tombstone,
             int64_t now_ms);

  // Join with another replica's state of the same key: keeps a sibling if both
  // have it or if the other side has not seen its dot. Commutative,
  // associative and idempotent. Returns true if this object changed.
  bool Merge(const VersionedObject& other);

  // The clock pruned to max_entries (oldest first), never an actor of a
  // sibling: it still covers every value held.
  VersionVector PrunedClock(size_t max_entries) const;
  // The same in place; returns how many entries went.
  size_t PruneClock(size_t max_entries);

  const VersionVector& clock() const { return clock_; }
  const std::vector<Sibling>& siblings() const { return siblings_; }
  size_t live_sibling_count() const;
  // True if the key reads as absent: no siblings or only tombstones.
  bool IsDeleted() const { return live_sibling_count() == 0; }
  bool empty() const { return siblings_.empty() && clock_.empty(); }
  // Bytes of values held, for limits and metrics.
  size_t value_bytes() const;

  // Canonical encoding: equal objects encode to equal bytes (Merkle trees
  // compare replicas by hashing these bytes).
  std::string Encode() const;
  void ToProto(v1::ObjectRecord* out) const;
  // InvalidArgument (for bytes from the network) or DataLoss-worthy garbage:
  // the caller decides the code; this returns InvalidArgument with why.
  static absl::StatusOr<VersionedObject> Decode(std::string_view bytes);
  static absl::StatusOr<VersionedObject> FromProto(const v1::ObjectRecord& record);

  friend bool operator==(const VersionedObject&, const VersionedObject&) = default;
  std::string ToString() const;

  // True if merging this object into any object whose clock is `clock` gives
  // this object unchanged, and changes that object: then a replica that knows
  // only its stored clock can store this object without reading its own.
  // Holds when this clock includes `clock` (counters and times) and every
  // sibling here is new to `clock`, so none is one the stored object dropped.
  bool ReplacesAnyWithClock(const VersionVector& clock) const;

 private:
  VersionVector clock_;
  std::vector<Sibling> siblings_;
};

}  // namespace dynamo::core
