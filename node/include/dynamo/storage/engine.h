#pragma once

// The pluggable local store of a node (the paper's section 4.1: "pluggable
// local persistence"). The protocol core reads and writes through this
// interface only; it never sees files or RocksDB.

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace dynamo::storage {

// Separate key spaces (column families in RocksDB).
enum class Space : int {
  kData = 0,   // objects this node replicates, keyed by ring position then key
  kHints = 1,  // objects held for another node (hinted handoff)
  kMeta = 2,   // node metadata: epoch, counters, ring, handoff cursors
  kItemHashes = 3,  // kData's keys with each object's 8-byte Merkle item hash and its clock
};
inline constexpr int kSpaceCount = 4;

inline bool IsValidSpace(Space space) {
  const int index = static_cast<int>(space);
  return index >= 0 && index < kSpaceCount;
}

inline absl::Status InvalidSpaceError(Space space) {
  return absl::InvalidArgumentError(
      absl::StrCat("invalid storage space ", static_cast<int>(space)));
}

struct WriteOp {
  Space space = Space::kData;
  std::string key;
  std::string value;
  bool is_delete = false;
};

// An engine's own background work, for metrics: what it rewrites behind the
// writes (the cost that grows with the data). Zero for engines without any.
struct EngineStats {
  uint64_t flush_written_bytes = 0;       // memtables written to table files, since open
  uint64_t compaction_read_bytes = 0;     // read by compactions, since open
  uint64_t compaction_written_bytes = 0;  // written by compactions, since open
  uint64_t pending_compaction_bytes = 0;  // estimate of what compactions still have to rewrite
  uint64_t block_cache_bytes = 0;         // held in the block cache now
  uint64_t blob_file_bytes = 0;           // objects kept apart from the keys, on disk now
  uint64_t blob_garbage_bytes = 0;        // of which overwritten or deleted, not yet collected
  uint64_t trash_bytes = 0;               // deleted files whose space is not yet returned
};

// Visitor of a scan: return false to stop early.
using ScanVisitor = std::function<bool(std::string_view key, std::string_view value)>;

// An ordered byte-string key-value store with separate key spaces. Keys order
// bytewise (memcmp) within a space. A write is visible to reads at once and
// durable once Sync() returns (durable engines) or after the engine's own
// periodic flush (buffered engines). Implementations are safe for concurrent
// use from several threads without external synchronization.
//
// Errors: NotFound only from Get; ResourceExhausted when the disk is full;
// DataLoss for detected corruption; Unavailable/Internal for other I/O errors.
class StorageEngine {
 public:
  virtual ~StorageEngine() = default;

  virtual absl::StatusOr<std::string> Get(Space space, std::string_view key) = 0;
  virtual absl::Status Put(Space space, std::string_view key, std::string_view value) = 0;
  virtual absl::Status Delete(Space space, std::string_view key) = 0;
  // Applies every operation or none.
  virtual absl::Status Write(const std::vector<WriteOp>& ops) = 0;
  // Visits keys in [begin, end) in order; an empty end means "to the end of
  // the space". Writes made during a scan may or may not be seen.
  virtual absl::Status Scan(Space space, std::string_view begin, std::string_view end,
                            const ScanVisitor& visit) = 0;
  // Makes every write that returned before this call durable. Group commit:
  // one Sync after many writes costs one fsync.
  virtual absl::Status Sync() = 0;
  // The same whatever the durability mode: a buffered engine, whose Sync
  // returns at once, syncs now. For the rare records that must not be lost
  // (a node's start and stop, Node::Load and Node::Close).
  virtual absl::Status SyncDurably() { return Sync(); }
  // One line for logs and the admin API, e.g. "rocksdb durable /var/lib/dynamo".
  virtual std::string Describe() const = 0;
  // Cheap (no I/O), from any thread.
  virtual EngineStats Stats() const { return {}; }
  // OK unless the engine hit an error that only closing and reopening it
  // clears (the process's liveness check: a restart is the remedy). From any
  // thread.
  virtual absl::Status Health() { return absl::OkStatus(); }
};

}  // namespace dynamo::storage
