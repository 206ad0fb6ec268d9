#pragma once

// The production StorageEngine: RocksDB with one column family per Space
// ("data", "hints", "meta", plus the "default" that RocksDB requires).

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "dynamo/storage/engine.h"

namespace rocksdb {
class ColumnFamilyHandle;
class DB;
class Env;
class SstFileManager;
class Status;
class WriteBatch;
}  // namespace rocksdb

namespace dynamo::storage {

struct RocksDbOptions {
  // The database directory; created (with its parents) if missing and
  // create_if_missing is set.
  std::string path;

  // When a write that returned becomes durable: the trade of the paper's
  // section 6.1.
  //
  // kDurable: every write goes to the write-ahead log (in the OS page cache at
  // once, so a process crash loses nothing) and Sync() fsyncs the log. The node
  // calls Sync() once for a group of writes before it acknowledges them, so an
  // acknowledged write survives a machine crash; the cost is one fsync per group.
  //
  // kBuffered: Sync() does not fsync; a background thread fsyncs the log every
  // buffered_sync_interval_ms. Writes are faster (no fsync on the request path)
  // and still survive a crash of the process, but a machine crash or power loss
  // loses up to the last interval of acknowledged writes. Replication (N copies
  // on distinct machines) is what then keeps the data; the paper also has one
  // of the N replicas write durably, which SyncWal() provides in this mode.
  enum class Durability { kDurable, kBuffered };
  Durability durability = Durability::kDurable;

  // One LRU cache shared by every column family, holding data blocks and the
  // index and filter blocks, so that it bounds most of the read-side memory.
  size_t block_cache_bytes = 64 << 20;
  // Size of one column family's memtable (at least 1 MiB). All memtables
  // together take at most 4 times this much memory, and writes stop while the
  // disk has less free space than that (room for their flush). Larger
  // memtables make fewer, larger level-0 files: less compaction per byte
  // written when keys are spread over a large key space.
  size_t memtable_bytes = 16 << 20;
  // Stored objects (data space) of at least this many bytes are kept apart
  // from the keys, in blob files (RocksDB's integrated BlobDB, the WiscKey
  // design); 0 keeps every object in the table files. Compactions then rewrite
  // keys and 16-byte pointers instead of whole objects, and the tables, small
  // enough to stay in the block cache, lead each read to its object with one
  // file read. Blob files holding mostly overwritten objects are rewritten by
  // compaction (garbage collection), so space returns as keys are overwritten.
  // Garbage collection runs only while the blob files hold much garbage
  // (BlobGarbageCollectionWanted). Changing the threshold is safe at any
  // restart: objects stay readable where they are.
  size_t blob_min_bytes = 512;
  bool create_if_missing = true;

  // kBuffered only: interval of the background fsync of the log (> 0).
  int64_t buffered_sync_interval_ms = 1000;

  // Tests only: an Env that injects faults. nullptr means rocksdb::Env::Default().
  // Must outlive the engine.
  rocksdb::Env* env = nullptr;
};

// A StorageEngine on a RocksDB database in options.path, which it holds open
// (and locked against other processes) for its lifetime. Safe for concurrent
// use from several threads.
//
// Disk full: a failed write or log fsync stops RocksDB's writes (reads keep
// working). The next write or sync, once the volume has room again, asks
// RocksDB to resume, which rewrites the memtables to new files, so the node
// recovers by itself, without losing what it acknowledged, as soon as space is
// freed.
class RocksDbEngine final : public StorageEngine {
 public:
  // Opens (or creates) the database. Fails with InvalidArgument for bad
  // options, FailedPrecondition if the path is not a directory (or there is no
  // database and create_if_missing is false), Unavailable if another process
  // holds the database or on an I/O error, and DataLoss if the database is
  // corrupted (the message says how to rebuild the node from its replicas).
  static absl::StatusOr<std::unique_ptr<RocksDbEngine>> Open(const RocksDbOptions& options);

  RocksDbEngine(const RocksDbEngine&) = delete;
  RocksDbEngine& operator=(const RocksDbEngine&) = delete;
  // Stops the background sync, fsyncs the log (in both modes: a clean
  // shutdown loses nothing) and closes the database.
  ~RocksDbEngine() override;

  absl::StatusOr<std::string> Get(Space space, std::string_view key) override;
  absl::Status Put(Space space, std::string_view key, std::string_view value) override;
  absl::Status Delete(Space space, std::string_view key) override;
  absl::Status Write(const std::vector<WriteOp>& ops) override;
  // Scans do not fill the block cache: they serve anti-entropy and handoff,
  // which read whole ranges once, and must not evict the hot set of Get.
  absl::Status Scan(Space space, std::string_view begin, std::string_view end,
                    const ScanVisitor& visit) override;
  // kDurable: fsyncs the write-ahead log. kBuffered: returns at once, and
  // fails only while writes are stopped (see above).
  absl::Status Sync() override;
  // SyncWal, in both modes.
  absl::Status SyncDurably() override { return SyncWal(); }
  // "rocksdb durable /path" or "rocksdb buffered /path".
  std::string Describe() const override;
  EngineStats Stats() const override;
  // Not OK once RocksDB refused to resume writes after an error it "cannot
  // recover from while open" (a failed log write or fsync, for one): writes
  // and syncs fail until the node restarts. Only reads that state: the
  // attempts to resume, which find it out and may flush the memtables, run on
  // the write path and the background thread (a durable node's every second,
  // a buffered node's every buffered_sync_interval_ms), never on the caller's
  // (the HTTP thread answering /healthz and /metrics).
  absl::Status Health() override;

  // Makes every write that returned before this call durable, whatever the
  // durability mode: for the replica that writes durably in buffered mode, a
  // graceful shutdown that wants to see the status, and tests.
  absl::Status SyncWal();
  // Writes every memtable to a table file and waits (tests, before a backup).
  absl::Status FlushMemTables();

  const RocksDbOptions& options() const { return options_; }
  // How fast files RocksDB no longer needs are deleted now (bytes per second;
  // 0: at once). See FileDeletionBytesPerSecond.
  int64_t file_deletion_bytes_per_second() const;

 private:
  class BackgroundWorkCounter;
  RocksDbEngine(RocksDbOptions options, std::unique_ptr<rocksdb::DB> db,
                std::vector<rocksdb::ColumnFamilyHandle*> handles,
                std::array<rocksdb::ColumnFamilyHandle*, kSpaceCount> spaces,
                std::shared_ptr<BackgroundWorkCounter> background_work);

  absl::Status Commit(rocksdb::WriteBatch* batch, std::string_view operation, bool sync);
  // OK if writes are not stopped, or if RocksDB resumed them now; else why
  // they are stopped.
  absl::Status ResumeWrites();
  // ResourceExhausted while the volume has less free space than the reserve:
  // writes are refused before RocksDB runs out of space mid-write (whose
  // recovery from a failed log write is fragile), and resume by themselves.
  absl::Status CheckFreeSpace();
  // Buffered mode's periodic log sync, and the blob garbage collection switch.
  void BackgroundLoop();
  void AdjustBlobGarbageCollection();

  const RocksDbOptions options_;
  std::unique_ptr<rocksdb::DB> db_;
  // Every open column family, including "default" and any this version does
  // not know (RocksDB requires opening all of them); owned, closed with db_.
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  std::array<rocksdb::ColumnFamilyHandle*, kSpaceCount> spaces_;
  std::shared_ptr<BackgroundWorkCounter> background_work_;  // a listener of the database
  std::shared_ptr<rocksdb::SstFileManager> file_manager_;    // deletes obsolete files

  absl::Mutex mu_;
  // Set when a write or log sync failed with an I/O error: RocksDB then
  // refuses writes until resumed (see ResumeWrites).
  std::atomic<bool> writes_stopped_{false};
  absl::Status stopped_status_ ABSL_GUARDED_BY(mu_);
  uint64_t stop_count_ ABSL_GUARDED_BY(mu_) = 0;     // failed writes so far
  int64_t next_resume_ms_ ABSL_GUARDED_BY(mu_) = 0;  // steady clock; one try per interval
  bool needs_restart_ ABSL_GUARDED_BY(mu_) = false;  // a resume failed with a fatal error
  // Writes that returned OK, and how many of them the last sync covered.
  std::atomic<uint64_t> writes_{0};
  std::atomic<uint64_t> synced_{0};
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  int64_t space_checked_ms_ ABSL_GUARDED_BY(mu_) = -1000000;
  uint64_t free_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  bool blob_gc_running_ = false;  // BackgroundLoop's thread only
  std::thread background_thread_;  // syncs (kBuffered), blob collection, resumes
};

// How fast files RocksDB no longer needs (old log files, compacted tables,
// collected blob files) are deleted, given the volume's free bytes and the
// write reserve: gradually (see rocksdb_engine.cc, kFileDeletionBytesPerSecond),
// or at once (0) while less than 4 reserves are free, when the space matters
// more than a stall.
int64_t FileDeletionBytesPerSecond(uint64_t free_bytes, uint64_t reserve_bytes);

// Whether compactions should relocate the live objects of the oldest blob files
// (garbage collection), given the blob files' garbage and total bytes now: on
// from half garbage (twice the space the live objects need), off again below a
// quarter. Relocation rewrites objects whatever their files' garbage, so left
// on it would rewrite them at every compaction, the cost value separation
// removes.
bool BlobGarbageCollectionWanted(bool running, uint64_t garbage_bytes, uint64_t total_bytes);

// The StorageEngine factory the node uses: RocksDbEngine::Open.
absl::StatusOr<std::unique_ptr<StorageEngine>> OpenRocksDb(const RocksDbOptions& options);

// Maps a RocksDB status to the StorageEngine error codes, with a message that
// names the operation and the path and says what to do: NoSpace (and space
// limit) -> ResourceExhausted, Corruption -> DataLoss, other I/O errors,
// Busy, TryAgain, TimedOut and shutdown -> Unavailable, anything else ->
// Internal. NotFound is mapped to Internal: Get handles it before.
absl::Status FromRocksDbStatus(const rocksdb::Status& status, std::string_view operation,
                               std::string_view path);

}  // namespace dynamo::storage
