#pragma once

// Version vectors: per actor, the highest event counter seen. An actor is one
// incarnation of a node ("<node id>#<epoch>"), so a node that lost its storage
// starts a new actor instead of reusing counters it handed out before.

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "dynamo/v1/versions.pb.h"

namespace dynamo::core {

// The event that wrote one value: unique cluster-wide.
struct Dot {
  std::string actor;
  uint64_t counter = 0;

  friend bool operator==(const Dot&, const Dot&) = default;
  friend auto operator<=>(const Dot&, const Dot&) = default;
  std::string ToString() const;
};

enum class Causality { kEqual, kBefore, kAfter, kConcurrent };

// Limits on what a decoded clock may hold; beyond them it is malformed.
inline constexpr size_t kMaxActorBytes = 256;
inline constexpr size_t kMaxClockEntriesDecoded = 1024;
// A stored object's clock keeps every actor that wrote the key (merges bring
// back what a coordinator pruned from the copy it sent) up to this many, then
// the oldest go: far below the decoding bound, so a key that outlived many
// node incarnations stays readable.
inline constexpr size_t kStoredClockEntriesMax = 256;
// Far above any real counter; a larger one could wrap when the coordinator
// allocates the next dot (counter + 1), which would then be covered already.
inline constexpr uint64_t kMaxCounterDecoded = uint64_t{1} << 62;

// A map actor -> (counter, timestamp). Merge is the pointwise maximum of both
// fields, which makes it a join semilattice (commutative, associative,
// idempotent). The timestamp is the actor's latest wall time, used only to
// choose which entries to prune. Value type; not thread-safe.
class VersionVector {
 public:
  struct Entry {
    uint64_t counter = 0;
    int64_t timestamp_ms = 0;
    friend bool operator==(const Entry&, const Entry&) = default;
  };

  uint64_t Counter(std::string_view actor) const;
  // Raises the actor's entry to at least (counter, timestamp_ms).
  void Advance(const std::string& actor, uint64_t counter, int64_t timestamp_ms);
  // True if the dot's event is part of this history.
  bool Covers(const Dot& dot) const { return dot.counter <= Counter(dot.actor); }
  // True if this history includes all of other's (this >= other).
  bool Descends(const VersionVector& other) const;
  Causality Compare(const VersionVector& other) const;
  void Merge(const VersionVector& other);

  // Drops the oldest entries (by timestamp, then actor) until at most
  // max_entries remain, never dropping an actor in `keep`. Pruning can only
  // make old values look concurrent again (an extra sibling), never lose one.
  // Returns the number of entries dropped.
  size_t Prune(size_t max_entries, const std::set<std::string>& keep);

  size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }
  const std::map<std::string, Entry, std::less<>>& entries() const { return entries_; }

  void ToProto(google::protobuf::RepeatedPtrField<v1::ClockEntry>* out) const;
  // InvalidArgument on an empty or oversized actor, a zero or oversized
  // counter, a duplicate actor or too many entries.
  static absl::StatusOr<VersionVector> FromProto(
      const google::protobuf::RepeatedPtrField<v1::ClockEntry>& entries);

  friend bool operator==(const VersionVector&, const VersionVector&) = default;
  std::string ToString() const;

 private:
  std::map<std::string, Entry, std::less<>> entries_;
};

}  // namespace dynamo::core
