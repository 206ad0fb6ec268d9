#include "dynamo/core/local_store.h"

#include <algorithm>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "dynamo/core/storage_keys.h"

namespace dynamo::core {
namespace {

using storage::Space;
using storage::WriteOp;

// Keeps a stored clock decodable (kStoredClockEntriesMax); true if it pruned.
bool BoundClock(VersionedObject* object) {
  return object->PruneClock(kStoredClockEntriesMax) > 0;
}

// Item hashes written per batch while a store written before they were kept
// is converted: bounded memory, few write calls.
constexpr size_t kItemHashBatch = 1024;

// An item hash space value: the 8-byte item hash, then (since item metas)
// the object's clock as an ObjectRecord without siblings.
std::string EncodeItemHash(uint64_t hash) { return EncodeBigEndian64(hash); }

std::string EncodeItemMeta(uint64_t hash, const VersionVector& clock) {
  v1::ObjectRecord record;
  clock.ToProto(record.mutable_clock());
  return EncodeItemHash(hash) + record.SerializeAsString();
}

// ItemHash is never 0; fewer than 8 bytes or a zero hash is not ours.
std::optional<uint64_t> DecodeItemHash(std::string_view bytes) {
  if (bytes.size() < 8) return std::nullopt;
  const uint64_t hash = DecodeBigEndian64(bytes.substr(0, 8));
  if (hash == 0) return std::nullopt;
  return hash;
}

std::optional<ItemMeta> DecodeItemMeta(std::string_view bytes) {
  const std::optional<uint64_t> hash = DecodeItemHash(bytes);
  if (!hash) return std::nullopt;
  ItemMeta meta{*hash, std::nullopt};
  if (bytes.size() == 8) return meta;  // stored before item metas: hash only
  v1::ObjectRecord record;
  if (!record.ParseFromArray(bytes.data() + 8, static_cast<int>(bytes.size() - 8)) ||
      record.siblings_size() != 0) {
    return std::nullopt;
  }
  absl::StatusOr<VersionVector> clock = VersionVector::FromProto(record.clock());
  if (!clock.ok()) return std::nullopt;
  meta.clock = *std::move(clock);
  return meta;
}

absl::Status MalformedItemHash(std::string_view key) {
  return absl::DataLossError(absl::StrCat("stored item hash of key '",
                                          absl::CEscape(std::string(key)), "' is malformed"));
}

// Writes operations in batches of kItemHashBatch; the first error sticks.
class BatchWriter {
 public:
  explicit BatchWriter(storage::StorageEngine* engine) : engine_(engine) {}
  // False once a write failed.
  bool Add(WriteOp op) {
    batch_.push_back(std::move(op));
    if (batch_.size() >= kItemHashBatch) Flush();
    return status_.ok();
  }
  absl::Status Finish() {
    Flush();
    return status_;
  }

 private:
  void Flush() {
    if (status_.ok() && !batch_.empty()) status_ = engine_->Write(batch_);
    batch_.clear();
  }
  storage::StorageEngine* engine_;
  std::vector<WriteOp> batch_;
  absl::Status status_;
};

absl::StatusOr<StoredObject> DecodeStored(std::string_view key, std::string encoded) {
  absl::StatusOr<VersionedObject> obj = VersionedObject::Decode(encoded);
  if (!obj.ok()) {
    return absl::DataLossError(absl::StrCat("stored object of key '", absl::CEscape(std::string(key)),
                                            "' is corrupt: ", obj.status().message()));
  }
  return StoredObject{*std::move(obj), std::move(encoded)};
}

std::vector<KeyRange> RangesOf(const Ring& ring) {
  if (ring.empty()) return {KeyRange{0, 0}};
  return ring.ranges();
}

}  // namespace

LocalStore::LocalStore(storage::StorageEngine* engine, MerkleShape shape)
    : engine_(engine), shape_(shape) {}

absl::Status LocalStore::Rebuild(const Ring& ring) {
  ranges_ = RangesOf(ring);
  if (absl::Status s = ResetTrees(); !s.ok()) return s;
  absl::StatusOr<std::optional<std::string>> complete = GetMeta(meta::kItemHashesComplete);
  if (!complete.ok()) return complete.status();
  absl::Status s = *complete ? TrackStoredItemHashes() : TrackAndStoreItemHashesFromObjects();
  if (!s.ok()) return s;
  hint_counts_.clear();
  return engine_->Scan(Space::kHints, "", "", [&](std::string_view stored, std::string_view) {
    if (auto h = ParseHintKey(stored)) ++hint_counts_[std::string(h->owner)];
    return true;
  });
}

absl::Status LocalStore::ResetTrees() {
  trees_.clear();
  trees_.reserve(ranges_.size());
  for (const KeyRange& r : ranges_) {
    absl::StatusOr<MerkleTree> tree = MerkleTree::Create(r, shape_);
    if (!tree.ok()) return tree.status();
    trees_.push_back(*std::move(tree));
  }
  return absl::OkStatus();
}

absl::Status LocalStore::BeginGeneration(std::optional<uint64_t> previous, uint64_t current) {
  generation_ = current;
  absl::StatusOr<std::optional<std::string>> marker = GetMeta(meta::kItemHashesComplete);
  if (!marker.ok()) return marker.status();
  if (!*marker) return absl::OkStatus();
  if (previous && **marker == EncodeBigEndian64(*previous)) {
    return PutMeta(meta::kItemHashesComplete, EncodeBigEndian64(current));
  }
  return engine_->Delete(Space::kMeta, meta::kItemHashesComplete);
}

absl::Status LocalStore::TrackStoredItemHashes() {
  absl::Status s = ScanItemHashes(KeyRange{0, 0}, [&](std::string_view, uint64_t position,
                                                      uint64_t hash) {
    TrackItem(position, 0, hash);
    return true;
  });
  if (!absl::IsDataLoss(s)) return s;
  // A malformed hash, never from our writes: recompute every one rather than
  // trust the rest.
  if (absl::Status reset = ResetTrees(); !reset.ok()) return reset;
  if (absl::Status cleared = ClearItemHashes(); !cleared.ok()) return cleared;
  return TrackAndStoreItemHashesFromObjects();
}

absl::Status LocalStore::ClearItemHashes() {
  BatchWriter writer(engine_);
  absl::Status s =
      engine_->Scan(Space::kItemHashes, "", "", [&](std::string_view stored, std::string_view) {
        return writer.Add({Space::kItemHashes, std::string(stored), "", true});
      });
  absl::Status written = writer.Finish();
  return s.ok() ? written : s;
}

absl::Status LocalStore::TrackAndStoreItemHashesFromObjects() {
  BatchWriter writer(engine_);
  absl::Status s =
      engine_->Scan(Space::kData, "", "", [&](std::string_view stored, std::string_view value) {
        auto k = ParseDataKey(stored);
        if (!k) return true;
        const uint64_t hash = ItemHash(k->key, value);
        TrackItem(k->position, 0, hash);
        return writer.Add({Space::kItemHashes, std::string(stored), EncodeItemHash(hash), false});
      });
  absl::Status written = writer.Finish();
  if (!s.ok()) return s;
  if (!written.ok()) return written;
  return PutMeta(meta::kItemHashesComplete, EncodeBigEndian64(generation_));
}

absl::Status LocalStore::OnRingChange(const Ring& ring) {
  if (RangesOf(ring) == ranges_) return absl::OkStatus();
  return Rebuild(ring);
}

std::optional<size_t> LocalStore::RangeOf(uint64_t position) const {
  if (ranges_.empty()) return std::nullopt;
  auto it = std::upper_bound(ranges_.begin(), ranges_.end(), position,
                             [](uint64_t p, const KeyRange& r) { return p < r.start; });
  return it == ranges_.begin() ? ranges_.size() - 1 : static_cast<size_t>(it - ranges_.begin()) - 1;
}

MerkleTree* LocalStore::TreeFor(uint64_t position) {
  const std::optional<size_t> i = RangeOf(position);
  return i && *i < trees_.size() ? &trees_[*i] : nullptr;
}

absl::Status LocalStore::VerifyTrees() const {
  struct Item {
    uint64_t hash;
    VersionVector clock;
  };
  std::map<std::string, Item> items;  // stored key -> its object's item hash and clock
  std::vector<MerkleTree> expected;
  for (const KeyRange& r : ranges_) {
    absl::StatusOr<MerkleTree> tree = MerkleTree::Create(r, shape_);
    if (!tree.ok()) return tree.status();
    expected.push_back(*std::move(tree));
  }
  absl::Status s =
      engine_->Scan(Space::kData, "", "", [&](std::string_view stored, std::string_view value) {
        auto k = ParseDataKey(stored);
        if (!k) return true;
        const uint64_t hash = ItemHash(k->key, value);
        absl::StatusOr<VersionedObject> object = VersionedObject::Decode(value);
        items[std::string(stored)] = {hash, object.ok() ? object->clock() : VersionVector()};
        if (auto i = RangeOf(k->position)) (void)expected[*i].Update(k->position, 0, hash);
        return true;
      });
  if (!s.ok()) return s;
  std::string differs;
  auto check = [&](std::string_view stored, std::string_view value) -> std::string_view {
    auto it = items.find(std::string(stored));
    if (it == items.end()) return " has no object";
    const std::optional<ItemMeta> meta = DecodeItemMeta(value);
    if (!meta || meta->hash != it->second.hash) return " is not its object's";
    if (meta->clock && *meta->clock != it->second.clock) return " has another clock";
    items.erase(it);
    return "";
  };
  s = engine_->Scan(Space::kItemHashes, "", "", [&](std::string_view stored, std::string_view value) {
    const std::string_view what = check(stored, value);
    if (what.empty()) return true;
    differs = absl::StrCat("the stored item meta of ",
                           absl::CHexEscape(absl::string_view(stored.data(), stored.size())),
                           absl::string_view(what.data(), what.size()));
    return false;
  });
  if (!s.ok()) return s;
  if (differs.empty() && !items.empty()) {
    differs = absl::StrCat(absl::CHexEscape(items.begin()->first), " has no stored item hash");
  }
  for (size_t i = 0; differs.empty() && i < expected.size(); ++i) {
    if (expected[i].Root() != trees_[i].Root() || expected[i].key_count() != trees_[i].key_count()) {
      differs = absl::StrCat("the tree of range ", i, " holds ", trees_[i].key_count(),
                             " keys and is not what the ", expected[i].key_count(),
                             " stored objects make");
    }
  }
  return differs.empty() ? absl::OkStatus() : absl::DataLossError(differs);
}

std::optional<size_t> LocalStore::FindRange(const KeyRange& range) const {
  auto it = std::lower_bound(ranges_.begin(), ranges_.end(), range);
  if (it == ranges_.end() || !(*it == range)) return std::nullopt;
  return static_cast<size_t>(it - ranges_.begin());
}

void LocalStore::TrackItem(uint64_t position, uint64_t old_hash, uint64_t new_hash) {
  MerkleTree* tree = TreeFor(position);
  if (tree == nullptr) return;
  // Update only fails on a position outside the tree's range, which TreeFor rules out.
  (void)tree->Update(position, old_hash, new_hash);
}

uint64_t LocalStore::total_keys() const {
  uint64_t n = 0;
  for (const MerkleTree& t : trees_) n += t.key_count();
  return n;
}

absl::StatusOr<std::optional<StoredObject>> LocalStore::Get(std::string_view key, uint64_t position) {
  absl::StatusOr<std::string> v = engine_->Get(Space::kData, DataKey(position, key));
  if (absl::IsNotFound(v.status())) return std::nullopt;
  if (!v.ok()) return v.status();
  absl::StatusOr<StoredObject> stored = DecodeStored(key, *std::move(v));
  if (!stored.ok()) return stored.status();
  return std::optional<StoredObject>(*std::move(stored));
}

absl::StatusOr<std::optional<uint64_t>> LocalStore::GetItemHash(std::string_view key,
                                                                uint64_t position) {
  absl::StatusOr<std::string> v = engine_->Get(Space::kItemHashes, DataKey(position, key));
  if (absl::IsNotFound(v.status())) return std::nullopt;
  if (!v.ok()) return v.status();
  const std::optional<uint64_t> hash = DecodeItemHash(*v);
  if (!hash) return MalformedItemHash(key);
  return hash;
}

absl::StatusOr<std::optional<ItemMeta>> LocalStore::GetItemMeta(std::string_view key,
                                                                uint64_t position) {
  absl::StatusOr<std::string> v = engine_->Get(Space::kItemHashes, DataKey(position, key));
  if (absl::IsNotFound(v.status())) return std::nullopt;
  if (!v.ok()) return v.status();
  std::optional<ItemMeta> meta = DecodeItemMeta(*v);
  if (!meta) return MalformedItemHash(key);
  return meta;
}

absl::StatusOr<StoredObject> LocalStore::Replace(std::string_view key, uint64_t position,
                                                 const std::optional<StoredObject>& previous,
                                                 const VersionedObject& object) {
  StoredObject next{object, object.Encode()};
  if (previous && previous->encoded == next.encoded) return next;
  return Store(key, position, previous ? ItemHash(key, previous->encoded) : 0, std::move(next));
}

absl::StatusOr<StoredObject> LocalStore::Store(std::string_view key, uint64_t position,
                                               uint64_t old_hash, StoredObject next) {
  std::string stored = DataKey(position, key);
  const uint64_t hash = ItemHash(key, next.encoded);
  absl::Status s = engine_->Write(
      {{Space::kData, stored, next.encoded, false},
       {Space::kItemHashes, std::move(stored), EncodeItemMeta(hash, next.object.clock()), false}});
  if (!s.ok()) return s;
  TrackItem(position, old_hash, hash);
  return next;
}

absl::StatusOr<StoredObject> LocalStore::Merge(std::string_view key, uint64_t position,
                                               const VersionedObject& incoming, bool* changed) {
  absl::StatusOr<std::optional<ItemMeta>> meta = GetItemMeta(key, position);
  if (!meta.ok()) return meta.status();
  return MergeWith(key, position, *meta, incoming, changed);
}

absl::StatusOr<StoredObject> LocalStore::MergeWith(std::string_view key, uint64_t position,
                                                   const std::optional<ItemMeta>& current,
                                                   const VersionedObject& incoming, bool* changed) {
  if (current && current->clock && incoming.ReplacesAnyWithClock(*current->clock)) {
    if (changed != nullptr) *changed = true;
    return Store(key, position, current->hash, StoredObject{incoming, incoming.Encode()});
  }
  absl::StatusOr<std::optional<StoredObject>> object = Get(key, position);
  if (!object.ok()) return object.status();
  return MergeWith(key, position, *object, incoming, changed);
}

absl::StatusOr<StoredObject> LocalStore::MergeWith(std::string_view key, uint64_t position,
                                                   const std::optional<StoredObject>& current,
                                                   const VersionedObject& incoming, bool* changed) {
  if (!current && incoming.empty()) {  // nothing to store: no record of nothing
    if (changed != nullptr) *changed = false;
    return StoredObject{};
  }
  VersionedObject merged = current ? current->object : VersionedObject();
  const bool did_change = (merged.Merge(incoming) | BoundClock(&merged)) || !current;
  if (changed != nullptr) *changed = did_change;
  if (!did_change) return *current;
  return Replace(key, position, current, merged);
}

absl::StatusOr<bool> LocalStore::DeleteIfUnchanged(std::string_view key, uint64_t position,
                                                   std::string_view expected) {
  absl::StatusOr<std::optional<StoredObject>> current = Get(key, position);
  if (!current.ok()) return current.status();
  if (!*current || (*current)->encoded != expected) return false;
  std::string stored = DataKey(position, key);
  absl::Status s = engine_->Write({{Space::kData, stored, "", true},
                                   {Space::kItemHashes, std::move(stored), "", true}});
  if (!s.ok()) return s;
  TrackItem(position, ItemHash(key, (*current)->encoded), 0);
  return true;
}

absl::Status LocalStore::ScanSpaceRange(Space space, const KeyRange& range, std::string_view after,
                                        const StoredVisitor& visit) {
  // A wrapping (or whole-ring) range is two scans: [start, max] then [0, end).
  struct Segment {
    std::string begin, end;
  };
  std::vector<Segment> segments;
  if (range.start < range.end) {
    segments.push_back({EncodeBigEndian64(range.start), EncodeBigEndian64(range.end)});
  } else {
    segments.push_back({EncodeBigEndian64(range.start), ""});
    if (range.end > 0) segments.push_back({"", EncodeBigEndian64(range.end)});
  }
  if (!after.empty()) {
    auto parsed = ParseDataKey(after);
    if (!parsed) return absl::InvalidArgumentError("scan resume key is malformed");
    const bool in_first = range.start < range.end || parsed->position >= range.start;
    if (!in_first) segments.erase(segments.begin());
    if (segments.empty()) return absl::OkStatus();  // resume point past the range's end
    // Never before the segment's start: a resume key outside the range must
    // not widen the scan.
    std::string resume = std::string(after) + '\0';
    if (resume > segments.front().begin) segments.front().begin = std::move(resume);
  }
  bool stopped = false;
  for (const Segment& seg : segments) {
    if (stopped) break;
    absl::Status s = engine_->Scan(space, seg.begin, seg.end,
                                   [&](std::string_view stored, std::string_view value) {
                                     if (visit(stored, value)) return true;
                                     stopped = true;
                                     return false;
                                   });
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status LocalStore::ScanRange(const KeyRange& range, std::string_view after,
                                   const ObjectVisitor& visit) {
  return ScanSpaceRange(Space::kData, range, after,
                        [&](std::string_view stored, std::string_view value) {
                          auto k = ParseDataKey(stored);
                          return !k || visit(k->key, k->position, value);
                        });
}

absl::Status LocalStore::ScanItemHashes(const KeyRange& range, const ItemHashVisitor& visit) {
  absl::Status malformed = absl::OkStatus();
  absl::Status s = ScanSpaceRange(
      Space::kItemHashes, range, "", [&](std::string_view stored, std::string_view value) {
        auto k = ParseDataKey(stored);
        if (!k) return true;
        const std::optional<uint64_t> hash = DecodeItemHash(value);
        if (!hash) {
          malformed = MalformedItemHash(k->key);
          return false;
        }
        return visit(k->key, k->position, *hash);
      });
  return s.ok() ? malformed : s;
}

absl::StatusOr<std::optional<StoredObject>> LocalStore::GetHint(std::string_view owner,
                                                                std::string_view key,
                                                                uint64_t position) {
  absl::StatusOr<std::string> v = engine_->Get(Space::kHints, HintKey(owner, position, key));
  if (absl::IsNotFound(v.status())) return std::nullopt;
  if (!v.ok()) return v.status();
  absl::StatusOr<StoredObject> stored = DecodeStored(key, *std::move(v));
  if (!stored.ok()) return stored.status();
  return std::optional<StoredObject>(*std::move(stored));
}

absl::StatusOr<StoredObject> LocalStore::MergeHint(std::string_view owner, std::string_view key,
                                                   uint64_t position, const VersionedObject& incoming) {
  absl::StatusOr<std::optional<StoredObject>> current = GetHint(owner, key, position);
  if (!current.ok()) return current.status();
  if (!*current && incoming.empty()) return StoredObject{};
  VersionedObject merged = *current ? (*current)->object : VersionedObject();
  merged.Merge(incoming);
  BoundClock(&merged);
  StoredObject next{merged, merged.Encode()};
  if (*current && (*current)->encoded == next.encoded) return next;
  absl::Status s = engine_->Put(Space::kHints, HintKey(owner, position, key), next.encoded);
  if (!s.ok()) return s;
  if (!*current) ++hint_counts_[std::string(owner)];
  return next;
}

absl::StatusOr<bool> LocalStore::DeleteHintIfUnchanged(std::string_view owner, std::string_view key,
                                                       uint64_t position, std::string_view expected) {
  absl::StatusOr<std::optional<StoredObject>> current = GetHint(owner, key, position);
  if (!current.ok()) return current.status();
  if (!*current || (*current)->encoded != expected) return false;
  absl::Status s = engine_->Delete(Space::kHints, HintKey(owner, position, key));
  if (!s.ok()) return s;
  auto it = hint_counts_.find(owner);
  if (it != hint_counts_.end() && --it->second == 0) hint_counts_.erase(it);
  return true;
}

absl::StatusOr<std::vector<LocalStore::Hint>> LocalStore::ScanHints(std::string_view owner,
                                                                    size_t limit) {
  std::vector<Hint> out;
  const std::string prefix = HintPrefix(owner);
  absl::Status s = engine_->Scan(Space::kHints, prefix, PrefixEnd(prefix),
                                 [&](std::string_view stored, std::string_view value) {
                                   if (auto h = ParseHintKey(stored)) {
                                     out.push_back({std::string(h->key), h->position, std::string(value)});
                                   }
                                   return out.size() < limit;
                                 });
  if (!s.ok()) return s;
  return out;
}

uint64_t LocalStore::total_hints() const {
  uint64_t n = 0;
  for (const auto& [owner, count] : hint_counts_) n += count;
  return n;
}

absl::StatusOr<std::optional<std::string>> LocalStore::GetMeta(std::string_view name) {
  absl::StatusOr<std::string> v = engine_->Get(Space::kMeta, name);
  if (absl::IsNotFound(v.status())) return std::nullopt;
  if (!v.ok()) return v.status();
  return std::optional<std::string>(*std::move(v));
}

absl::Status LocalStore::PutMeta(std::string_view name, std::string_view value) {
  return engine_->Put(Space::kMeta, name, value);
}

absl::Status LocalStore::DeleteMeta(std::string_view name) {
  return engine_->Delete(Space::kMeta, name);
}

absl::Status LocalStore::ScanMeta(std::string_view begin, std::string_view end,
                                  const storage::ScanVisitor& visit) {
  return engine_->Scan(Space::kMeta, begin, end, visit);
}

}  // namespace dynamo::core
