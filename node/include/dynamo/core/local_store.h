#pragma once

// The core's view of its node's storage: versioned objects by key, hints
// held for other nodes, node metadata, and one Merkle tree per ring range
// kept current as every write lands. Every mutation of stored objects goes
// through here so that the trees and counts never drift from the data.

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "dynamo/core/merkle.h"
#include "dynamo/core/object.h"
#include "dynamo/core/ring.h"
#include "dynamo/storage/engine.h"

namespace dynamo::core {

// A stored object with its canonical encoding (what Merkle trees hash and
// what conditional deletes compare).
struct StoredObject {
  VersionedObject object;
  std::string encoded;
};

// Not thread-safe: owned by the node's single protocol thread.
class LocalStore {
 public:
  LocalStore(storage::StorageEngine* engine, MerkleShape shape);

  // Builds the trees and hint counts with one scan (at start, and when the
  // ring's ranges change). Ranges of an empty ring: one whole-ring tree.
  absl::Status Rebuild(const Ring& ring);
  // Keeps the trees if the ranges are unchanged (strategies 2 and 3), else
  // rebuilds them.
  absl::Status OnRingChange(const Ring& ring);

  // --- objects this node replicates ---
  absl::StatusOr<std::optional<StoredObject>> Get(std::string_view key, uint64_t position);
  // Merges `incoming` into what is stored; returns the result.
  absl::StatusOr<StoredObject> Merge(std::string_view key, uint64_t position,
                                     const VersionedObject& incoming, bool* changed);
  // Stores `object` in place of `previous` (which the caller read).
  absl::StatusOr<StoredObject> Replace(std::string_view key, uint64_t position,
                                       const std::optional<StoredObject>& previous,
                                       const VersionedObject& object);
  // Deletes the key if its stored encoding is still `expected` (a handed-off
  // or reaped object that no write changed since). Returns true if deleted.
  absl::StatusOr<bool> DeleteIfUnchanged(std::string_view key, uint64_t position,
                                         std::string_view expected);
  // Visits keys in a range of ring positions, in position order, starting at
  // the stored key `after` (exclusive; empty = from the start), until the
  // visitor returns false.
  using ObjectVisitor = std::function<bool(std::string_view key, uint64_t position,
                                           std::string_view encoded)>;
  absl::Status ScanRange(const KeyRange& range, std::string_view after, const ObjectVisitor& visit);

  size_t range_count() const { return trees_.size(); }
  const KeyRange& range(size_t i) const { return ranges_[i]; }
  const MerkleTree& tree(size_t i) const { return trees_[i]; }
  uint64_t key_count(size_t i) const { return trees_[i].key_count(); }
  uint64_t total_keys() const;
  // Index of the tree whose range is exactly `range`, if any.
  std::optional<size_t> FindRange(const KeyRange& range) const;

  // --- hints: objects held for another node (sloppy quorum) ---
  absl::StatusOr<std::optional<StoredObject>> GetHint(std::string_view owner, std::string_view key,
                                                       uint64_t position);
  absl::StatusOr<StoredObject> MergeHint(std::string_view owner, std::string_view key,
                                         uint64_t position, const VersionedObject& incoming);
  absl::StatusOr<bool> DeleteHintIfUnchanged(std::string_view owner, std::string_view key,
                                             uint64_t position, std::string_view expected);
  struct Hint {
    std::string key;
    uint64_t position;
    std::string encoded;
  };
  absl::StatusOr<std::vector<Hint>> ScanHints(std::string_view owner, size_t limit);
  const std::map<std::string, uint64_t, std::less<>>& hint_counts() const { return hint_counts_; }
  uint64_t total_hints() const;

  // --- metadata ---
  absl::StatusOr<std::optional<std::string>> GetMeta(std::string_view name);
  absl::Status PutMeta(std::string_view name, std::string_view value);

  absl::Status Sync() { return engine_->Sync(); }
  storage::StorageEngine* engine() { return engine_; }

 private:
  MerkleTree* TreeFor(uint64_t position);
  void TrackItem(std::string_view key, uint64_t position, std::string_view old_encoded,
                 std::string_view new_encoded);

  storage::StorageEngine* engine_;
  MerkleShape shape_;
  std::vector<KeyRange> ranges_;  // sorted by start, covering the ring
  std::vector<MerkleTree> trees_;
  std::map<std::string, uint64_t, std::less<>> hint_counts_;
};

}  // namespace dynamo::core
