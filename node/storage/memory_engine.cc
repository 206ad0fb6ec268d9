#include "dynamo/storage/memory_engine.h"

#include <algorithm>
#include <cstddef>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"

namespace dynamo::storage {
namespace {

// A scan copies at most this many entries (or about this many bytes) per lock
// acquisition, so that the visitor runs without the lock (it may write to the
// engine) and a long scan neither stalls writers nor copies a whole space.
constexpr size_t kScanBatchEntriesMax = 256;
constexpr size_t kScanBatchBytesMax = 4 << 20;


}  // namespace

void MemoryEngine::ApplyLocked(Space space, std::string_view key, const std::string_view* value) {
  Map& map = spaces_[static_cast<int>(space)];
  auto it = map.find(key);
  Undo undo{space, std::string(key), std::nullopt};
  if (it != map.end()) undo.previous = it->second;
  if (value == nullptr) {
    if (it != map.end()) map.erase(it);
  } else if (it != map.end()) {
    it->second.assign(value->data(), value->size());
  } else {
    map.emplace(std::string(key), std::string(*value));
  }
  unsynced_.push_back(std::move(undo));
}

absl::StatusOr<std::string> MemoryEngine::Get(Space space, std::string_view key) {
  if (!IsValidSpace(space)) return InvalidSpaceError(space);
  gets_[static_cast<int>(space)].fetch_add(1, std::memory_order_relaxed);
  absl::ReaderMutexLock lock(&mu_);
  const Map& map = spaces_[static_cast<int>(space)];
  auto it = map.find(key);
  if (it == map.end()) return absl::NotFoundError("key not found");
  return it->second;
}

uint64_t MemoryEngine::GetCount(Space space) const {
  return IsValidSpace(space) ? gets_[static_cast<int>(space)].load(std::memory_order_relaxed) : 0;
}

absl::Status MemoryEngine::Put(Space space, std::string_view key, std::string_view value) {
  if (!IsValidSpace(space)) return InvalidSpaceError(space);
  absl::MutexLock lock(&mu_);
  ApplyLocked(space, key, &value);
  return absl::OkStatus();
}

absl::Status MemoryEngine::Delete(Space space, std::string_view key) {
  if (!IsValidSpace(space)) return InvalidSpaceError(space);
  absl::MutexLock lock(&mu_);
  ApplyLocked(space, key, nullptr);
  return absl::OkStatus();
}

absl::Status MemoryEngine::Write(const std::vector<WriteOp>& ops) {
  // Validate first: a batch applies completely or not at all.
  for (const WriteOp& op : ops) {
    if (!IsValidSpace(op.space)) return InvalidSpaceError(op.space);
  }
  absl::MutexLock lock(&mu_);
  for (const WriteOp& op : ops) {
    const std::string_view value = op.value;
    ApplyLocked(op.space, op.key, op.is_delete ? nullptr : &value);
  }
  return absl::OkStatus();
}

absl::Status MemoryEngine::Scan(Space space, std::string_view begin, std::string_view end,
                                const ScanVisitor& visit) {
  if (!IsValidSpace(space)) return InvalidSpaceError(space);
  if (!end.empty() && begin >= end) return absl::OkStatus();
  std::vector<std::pair<std::string, std::string>> batch;
  std::string resume_after;  // last key visited; the next batch starts after it
  bool first = true;
  while (true) {
    batch.clear();
    bool more = false;  // the batch stopped at a limit, not at the end
    {
      absl::ReaderMutexLock lock(&mu_);
      const Map& map = spaces_[static_cast<int>(space)];
      auto it = first ? map.lower_bound(begin) : map.upper_bound(resume_after);
      size_t batch_bytes = 0;
      for (; it != map.end(); ++it) {
        if (!end.empty() && std::string_view(it->first) >= end) break;
        if (batch.size() == kScanBatchEntriesMax || batch_bytes >= kScanBatchBytesMax) {
          more = true;
          break;
        }
        batch_bytes += it->first.size() + it->second.size();
        batch.emplace_back(it->first, it->second);
      }
    }
    first = false;
    for (const auto& [key, value] : batch) {
      if (!visit(key, value)) return absl::OkStatus();
    }
    if (!more) return absl::OkStatus();
    resume_after = std::move(batch.back().first);
  }
}

absl::Status MemoryEngine::Sync() { return SyncOldest(std::numeric_limits<size_t>::max()); }

absl::Status MemoryEngine::SyncOldest(size_t writes) {
  if (syncs_fail()) {
    return absl::InternalError("fsync: Input/output error (simulated failing disk)");
  }
  absl::MutexLock lock(&mu_);
  unsynced_.erase(unsynced_.begin(),
                  unsynced_.begin() + static_cast<std::ptrdiff_t>(std::min(writes, unsynced_.size())));
  return absl::OkStatus();
}

std::optional<std::string> MemoryEngine::DurableValue(Space space, std::string_view key) const {
  absl::ReaderMutexLock lock(&mu_);
  // The oldest unsynced write of the key remembers what the sync left.
  for (const Undo& undo : unsynced_) {
    if (undo.space == space && undo.key == key) return undo.previous;
  }
  const Map& map = spaces_[static_cast<int>(space)];
  auto it = map.find(key);
  if (it == map.end()) return std::nullopt;
  return it->second;
}

std::set<std::string> MemoryEngine::UnsyncedKeys(Space space) const {
  absl::ReaderMutexLock lock(&mu_);
  std::set<std::string> keys;
  for (const Undo& undo : unsynced_) {
    if (undo.space == space) keys.insert(undo.key);
  }
  return keys;
}

std::string MemoryEngine::Describe() const { return "memory"; }

void MemoryEngine::Clear() {
  absl::MutexLock lock(&mu_);
  for (Map& map : spaces_) map.clear();
  unsynced_.clear();
}

void MemoryEngine::DropUnsyncedWrites() {
  absl::MutexLock lock(&mu_);
  for (auto it = unsynced_.rbegin(); it != unsynced_.rend(); ++it) {
    Map& map = spaces_[static_cast<int>(it->space)];
    if (it->previous.has_value()) {
      map.insert_or_assign(std::move(it->key), std::move(*it->previous));
    } else {
      map.erase(it->key);
    }
  }
  unsynced_.clear();
}

size_t MemoryEngine::UnsyncedWriteCount() const {
  absl::ReaderMutexLock lock(&mu_);
  return unsynced_.size();
}

std::unique_ptr<StorageEngine> NewMemoryEngine() { return std::make_unique<MemoryEngine>(); }

}  // namespace dynamo::storage
