#pragma once

// The core's view of its node's storage: versioned objects by key, hints
// held for other nodes, node metadata, and one Merkle tree per ring range
// kept current as every write lands. Every mutation of stored objects goes
// through here so that the trees, counts and stored item hashes never drift
// from the data: an object and its item hash are written in one atomic batch.

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

// What a write needs of a stored object without reading it: its item hash
// and its clock. Stored beside the object (the item hash space); the clock is
// absent where a version before it stored the hash, or the hashes were
// rebuilt from the objects: a write then reads the object.
struct ItemMeta {
  uint64_t hash = 0;
  std::optional<VersionVector> clock;
};

// Not thread-safe: owned by the node's single protocol thread.
class LocalStore {
 public:
  LocalStore(storage::StorageEngine* engine, MerkleShape shape);

  // Builds the trees and hint counts (at start, and when the ring's ranges
  // change) from the stored item hashes, without reading objects. A store
  // written before item hashes were stored is read whole once, and its
  // hashes are stored. Ranges of an empty ring: one whole-ring tree.
  absl::Status Rebuild(const Ring& ring);
  // Called at each start, after the node stored its new generation and before
  // Rebuild: the stored item hashes are trusted only if they were complete at
  // the previous generation. Every version bumps the generation at start, so
  // otherwise a version that did not keep item hashes (or a start that did
  // not finish filling them) came in between, and Rebuild recomputes them.
  absl::Status BeginGeneration(std::optional<uint64_t> previous, uint64_t current);
  // Keeps the trees if the ranges are unchanged (strategies 2 and 3), else
  // rebuilds them.
  absl::Status OnRingChange(const Ring& ring);

  // --- objects this node replicates ---
  absl::StatusOr<std::optional<StoredObject>> Get(std::string_view key, uint64_t position);
  // The stored ItemHash of the key's object, without reading the object (a
  // digest read); empty if there is none. DataLoss if it is malformed.
  absl::StatusOr<std::optional<uint64_t>> GetItemHash(std::string_view key, uint64_t position);
  // The stored item hash and clock, without reading the object; empty if
  // there is no object. DataLoss if malformed.
  absl::StatusOr<std::optional<ItemMeta>> GetItemMeta(std::string_view key, uint64_t position);
  // Merges `incoming` into what is stored; returns the result. Reads only the
  // stored item meta when that shows the result is `incoming` itself
  // (VersionedObject::ReplacesAnyWithClock), the common replica write.
  absl::StatusOr<StoredObject> Merge(std::string_view key, uint64_t position,
                                     const VersionedObject& incoming, bool* changed);
  // The same with what the caller read (Get, or GetItemMeta) and nothing
  // wrote since: saves reading it again.
  absl::StatusOr<StoredObject> MergeWith(std::string_view key, uint64_t position,
                                         const std::optional<StoredObject>& current,
                                         const VersionedObject& incoming, bool* changed);
  absl::StatusOr<StoredObject> MergeWith(std::string_view key, uint64_t position,
                                         const std::optional<ItemMeta>& current,
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
  // The same for the keys' item hashes (what anti-entropy compares), without
  // reading the objects.
  using ItemHashVisitor =
      std::function<bool(std::string_view key, uint64_t position, uint64_t item_hash)>;
  absl::Status ScanItemHashes(const KeyRange& range, const ItemHashVisitor& visit);

  size_t range_count() const { return trees_.size(); }
  const KeyRange& range(size_t i) const { return ranges_[i]; }
  const MerkleTree& tree(size_t i) const { return trees_[i]; }
  uint64_t key_count(size_t i) const { return trees_[i].key_count(); }
  uint64_t total_keys() const;
  // Index of the tree whose range is exactly `range`, if any.
  std::optional<size_t> FindRange(const KeyRange& range) const;
  // A full check, for tests and repair tools: DataLoss saying what differs if
  // a stored item hash is not its object's, or a tree is not what the stored
  // objects make. Reads every object.
  absl::Status VerifyTrees() const;

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
  absl::Status DeleteMeta(std::string_view name);
  // Metadata records with names in [begin, end) in order, until `visit`
  // returns false.
  absl::Status ScanMeta(std::string_view begin, std::string_view end,
                        const storage::ScanVisitor& visit);

  absl::Status SyncDurably() { return engine_->SyncDurably(); }
  storage::StorageEngine* engine() { return engine_; }

 private:
  // Index of the range holding `position`; none if there are no ranges.
  std::optional<size_t> RangeOf(uint64_t position) const;
  MerkleTree* TreeFor(uint64_t position);
  // Writes `next` and its item meta over the object whose item hash is
  // `old_hash` (0: none), keeping the tree current.
  absl::StatusOr<StoredObject> Store(std::string_view key, uint64_t position, uint64_t old_hash,
                                     StoredObject next);
  // Empty trees for ranges_.
  absl::Status ResetTrees();
  // Hashes are ItemHash values, 0 for "absent".
  void TrackItem(uint64_t position, uint64_t old_hash, uint64_t new_hash);
  // Trees from the item hash space; from the objects (hashes stored anew) if
  // the space holds a malformed entry.
  absl::Status TrackStoredItemHashes();
  // Trees from the objects, storing each one's item hash as it goes.
  absl::Status TrackAndStoreItemHashesFromObjects();
  absl::Status ClearItemHashes();
  // Visits the stored keys of `space` (kData or kItemHashes) in a range of
  // ring positions, from after the stored key `after` (empty: the start).
  using StoredVisitor = std::function<bool(std::string_view stored_key, std::string_view value)>;
  absl::Status ScanSpaceRange(storage::Space space, const KeyRange& range, std::string_view after,
                              const StoredVisitor& visit);

  storage::StorageEngine* engine_;
  MerkleShape shape_;
  std::vector<KeyRange> ranges_;  // sorted by start, covering the ring
  std::vector<MerkleTree> trees_;
  std::map<std::string, uint64_t, std::less<>> hint_counts_;
  uint64_t generation_ = 0;  // the node's, for the item hash marker
};

}  // namespace dynamo::core
