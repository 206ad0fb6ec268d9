#pragma once

// An in-memory StorageEngine for tests and the deterministic simulator.

#include <array>
#include <atomic>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "dynamo/storage/engine.h"

namespace dynamo::storage {

// Keeps every space in an ordered map in memory. It also remembers which
// writes came after the last Sync() so that a simulated machine crash can drop
// exactly those (DropUnsyncedWrites), which lets the simulator check that a
// node syncs before it acknowledges. Safe for concurrent use from several
// threads; a scan visitor may call back into the engine.
class MemoryEngine final : public StorageEngine {
 public:
  MemoryEngine() = default;
  MemoryEngine(const MemoryEngine&) = delete;
  MemoryEngine& operator=(const MemoryEngine&) = delete;

  absl::StatusOr<std::string> Get(Space space, std::string_view key) override;
  absl::Status Put(Space space, std::string_view key, std::string_view value) override;
  absl::Status Delete(Space space, std::string_view key) override;
  absl::Status Write(const std::vector<WriteOp>& ops) override;
  absl::Status Scan(Space space, std::string_view begin, std::string_view end,
                    const ScanVisitor& visit) override;
  absl::Status Sync() override;
  std::string Describe() const override;

  // Drops every key of every space: the simulator's "disk replaced" event.
  void Clear();
  // Makes the oldest `writes` unsynced writes durable: what a sync begun after
  // them (and before the rest) does when it ends.
  absl::Status SyncOldest(size_t writes);
  // A failing disk: every sync fails and leaves the writes unsynced, so a
  // machine crash still drops them (the simulator's disk fault).
  void set_syncs_fail(bool fail) { syncs_fail_.store(fail); }
  bool syncs_fail() const { return syncs_fail_.load(); }
  // Reverts every write made since the last Sync(): what a machine crash
  // (power loss) does to a durable engine.
  void DropUnsyncedWrites();
  // Number of writes a machine crash would lose now (tests).
  size_t UnsyncedWriteCount() const;
  // What a machine crash now would leave of the key: its value as of the last
  // sync (nullopt if absent then). Tests, to count durable copies.
  std::optional<std::string> DurableValue(Space space, std::string_view key) const;
  // Keys of the space written (or deleted) since the last sync.
  std::set<std::string> UnsyncedKeys(Space space) const;
  // Gets of the space since the engine was made (tests, to count reads).
  uint64_t GetCount(Space space) const;

 private:
  using Map = std::map<std::string, std::string, std::less<>>;
  // How to undo one write: the key's value before it, or nullopt if absent.
  struct Undo {
    Space space;
    std::string key;
    std::optional<std::string> previous;
  };

  void ApplyLocked(Space space, std::string_view key, const std::string_view* value)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  std::array<Map, kSpaceCount> spaces_ ABSL_GUARDED_BY(mu_);
  // Writes since the last Sync(), oldest first. Bounded by what the node
  // writes between two Syncs (it syncs before every acknowledgement).
  std::vector<Undo> unsynced_ ABSL_GUARDED_BY(mu_);
  std::array<std::atomic<uint64_t>, kSpaceCount> gets_{};
  std::atomic<bool> syncs_fail_{false};
};

// A fresh, empty in-memory engine.
std::unique_ptr<StorageEngine> NewMemoryEngine();

}  // namespace dynamo::storage
