#include "dynamo/storage/rocksdb_engine.h"

#include <rocksdb/cache.h>
#include <rocksdb/convenience.h>
#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/listener.h>
#include <rocksdb/metadata.h>
#include <rocksdb/options.h>
#include <rocksdb/sst_file_manager.h>
#include <rocksdb/status.h>
#include <rocksdb/table.h>
#include <rocksdb/table_properties.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <system_error>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "info_log.h"

namespace dynamo::storage {
namespace {

// Column family of each Space, indexed by the Space's value.
constexpr std::array<const char*, kSpaceCount> kSpaceColumnFamilies = {"data", "hints", "meta",
                                                                         "item_hashes"};
static_assert(static_cast<int>(Space::kData) == 0 && static_cast<int>(Space::kHints) == 1 &&
              static_cast<int>(Space::kMeta) == 2 && static_cast<int>(Space::kItemHashes) == 3);

// Memory and file limits for a node on a small machine. The block cache is the
// caller's; these bound the rest.
constexpr size_t kMemtablesPerBudget = 4;      // all memtables together: 4 memtables' worth
constexpr size_t kWalPerMemtablesBudget = 2;   // then flush the oldest memtables
// A read that misses the cache reads, checks and decompresses one whole block
// to return one object (~1 KiB): small blocks keep that cost flat as the data
// outgrows the cache, for an index of ~8 MiB per GiB (held in the cache).
constexpr size_t kBlockBytes = 4 << 10;
constexpr double kBloomBitsPerKey = 10;             // about 1% false positives
constexpr double kMemtableBloomRatio = 0.02;        // of each memtable, for its Bloom filter
constexpr uint64_t kBackgroundSyncBytes = 1 << 20;  // smooth writeback of table files
constexpr size_t kInfoLogFilesMax = 4;
constexpr size_t kInfoLogFileBytesMax = 8 << 20;
constexpr int kBackgroundJobsMax = 2;
constexpr double kBlobGcAgeCutoff = 0.25;
constexpr double kBlobGcForceThreshold = 0.5;
// A durable node's background thread: blob collection checks, resume attempts.
constexpr int64_t kBackgroundIntervalMs = 1000;
// While writes are stopped, at most one attempt to resume them per interval,
// and only with room for the memtables (MemtablesBytesMax): a resume flushes
// them, and one that runs out of space again turns RocksDB's error fatal
// (until reopened).
constexpr int64_t kResumeIntervalMs = 100;
constexpr int64_t kSpaceCheckIntervalMs = 100;

// Deleting a large file at once, on a volume mounted with `discard`, holds up
// every fsync there for tens of milliseconds (the discard rides the next
// journal commit): after a bulk load, 118 MiB of log files deleted together
// slowed each log sync of a durable node from under 1 ms to 3-10 ms for half a
// second, on every replica at once (bench/RESULTS.md, F20). Files RocksDB no longer
// needs are therefore renamed *.trash and deleted at this rate, a chunk at a
// time; the trash may grow to the size of the tables and blob files, and
// beyond that (or on a nearly full volume) files go at once.
constexpr int64_t kFileDeletionBytesPerSecond = 64 << 20;
constexpr uint64_t kFileDeletionChunkBytes = 2 << 20;
constexpr double kTrashPerDataMax = 1.0;
constexpr uint64_t kDeleteAtOnceBelowReserves = 4;

// All memtables together. It is also the room kept free for their flush:
// writes stop below it, and resume only with at least this much free space.
uint64_t MemtablesBytesMax(const RocksDbOptions& options) {
  return kMemtablesPerBudget * options.memtable_bytes;
}

std::string_view ToView(const rocksdb::Slice& slice) { return {slice.data(), slice.size()}; }
rocksdb::Slice ToSlice(std::string_view view) { return {view.data(), view.size()}; }

const char* DurabilityName(RocksDbOptions::Durability durability) {
  return durability == RocksDbOptions::Durability::kDurable ? "durable" : "buffered";
}


// LZ4 is cheap enough to leave on for every level; a build without it stores
// blocks uncompressed rather than failing to open.
rocksdb::CompressionType ChooseCompression() {
  const std::vector<rocksdb::CompressionType> supported = rocksdb::GetSupportedCompressions();
  const bool has_lz4 =
      std::find(supported.begin(), supported.end(), rocksdb::kLZ4Compression) != supported.end();
  return has_lz4 ? rocksdb::kLZ4Compression : rocksdb::kNoCompression;
}

// RocksDB's own recovery from a full disk polls the free space every 5 s and
// refuses writes meanwhile. The engine recovers on demand instead (the next
// write or sync calls DB::Resume), so that writes come back as soon as space
// does.
class RecoverOnDemand final : public rocksdb::EventListener {
 public:
  const char* Name() const override { return "DynamoRecoverOnDemand"; }
  void OnErrorRecoveryBegin(rocksdb::BackgroundErrorReason /*reason*/, rocksdb::Status bg_error,
                            bool* auto_recovery) override {
    bg_error.PermitUncheckedError();
    *auto_recovery = false;
  }
};

}  // namespace

// Sums what flushes and compactions write, as RocksDB reports each job done.
class RocksDbEngine::BackgroundWorkCounter final : public rocksdb::EventListener {
 public:
  const char* Name() const override { return "DynamoBackgroundWorkCounter"; }
  void OnFlushCompleted(rocksdb::DB* /*db*/, const rocksdb::FlushJobInfo& info) override {
    const rocksdb::TableProperties& t = info.table_properties;
    uint64_t written = t.data_size + t.index_size + t.filter_size;
    for (const rocksdb::BlobFileAdditionInfo& blob : info.blob_file_addition_infos) {
      written += blob.total_blob_bytes;
    }
    flush_written.fetch_add(written, std::memory_order_relaxed);
  }
  // Blob bytes count too: garbage collection reads and rewrites objects.
  void OnCompactionCompleted(rocksdb::DB* /*db*/, const rocksdb::CompactionJobInfo& info) override {
    if (!info.status.ok()) return;
    compaction_read.fetch_add(info.stats.total_input_bytes + info.stats.total_blob_bytes_read,
                              std::memory_order_relaxed);
    compaction_written.fetch_add(info.stats.total_output_bytes + info.stats.total_output_bytes_blob,
                                 std::memory_order_relaxed);
  }

  std::atomic<uint64_t> flush_written{0};
  std::atomic<uint64_t> compaction_read{0};
  std::atomic<uint64_t> compaction_written{0};
};

namespace {

int64_t SteadyNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

rocksdb::DBOptions MakeDbOptions(const RocksDbOptions& options) {
  rocksdb::DBOptions db;
  db.create_if_missing = options.create_if_missing;
  db.create_missing_column_families = true;
  // Verify checksums while recovering and stop writing on any background
  // error rather than carry on with a damaged database.
  db.paranoid_checks = true;
  if (options.env != nullptr) db.env = options.env;
  // Each write reaches the OS at once (a process crash loses nothing); what
  // reaches the disk is decided by Sync() or the background sync.
  db.manual_wal_flush = false;
  // A torn tail of the log after a machine crash is dropped; anything before
  // it is recovered.
  db.wal_recovery_mode = rocksdb::WALRecoveryMode::kPointInTimeRecovery;
  // Keep every table file open (the default): Open then reads each file's
  // footer and index, so a damaged table fails Open instead of a later read.
  // One descriptor per table file: about one per 64 MiB of data.
  db.max_open_files = -1;
  db.max_background_jobs = kBackgroundJobsMax;
  db.bytes_per_sync = kBackgroundSyncBytes;
  db.db_write_buffer_size = MemtablesBytesMax(options);
  // Rarely written families (hints, meta) would otherwise pin old log files.
  db.max_total_wal_size = kWalPerMemtablesBudget * MemtablesBytesMax(options);
  db.listeners.push_back(std::make_shared<RecoverOnDemand>());
  // No trash directory is given, so creating the manager cannot fail.
  db.sst_file_manager.reset(rocksdb::NewSstFileManager(
      db.env, db.env->GetFileSystem(), /*info_log=*/nullptr, /*trash_dir=*/"",
      kFileDeletionBytesPerSecond, /*delete_existing_trash=*/true, /*status=*/nullptr,
      kTrashPerDataMax, kFileDeletionChunkBytes));
  return db;
}

rocksdb::ColumnFamilyOptions MakeColumnFamilyOptions(
    const RocksDbOptions& options, const std::shared_ptr<rocksdb::Cache>& block_cache) {
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = block_cache;
  table.block_size = kBlockBytes;
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(kBloomBitsPerKey));
  // Index and filter blocks live in (and are bounded by) the shared cache; the
  // newest level's stay pinned because every Get consults them.
  table.cache_index_and_filter_blocks = true;
  table.pin_l0_filter_and_index_blocks_in_cache = true;
  table.optimize_filters_for_memory = true;
  // Index and filter in 4 KiB partitions under a small pinned top level. A
  // table of a million keys (with objects in blob files, its keys alone) has a
  // filter of 1.2 MiB and an index of hundreds of KiB: whole, they do not fit
  // a shard of the cache (64 MiB in 64 shards), so every read would fetch,
  // checksum and copy them again.
  table.index_type = rocksdb::BlockBasedTableOptions::kTwoLevelIndexSearch;
  table.partition_filters = true;
  table.metadata_block_size = kBlockBytes;
  table.pin_top_level_index_and_filter = true;

  rocksdb::ColumnFamilyOptions cf;
  cf.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  cf.write_buffer_size = options.memtable_bytes;
  cf.compaction_style = rocksdb::kCompactionStyleLevel;
  // Sizes levels from the bottom up: less space amplification.
  cf.level_compaction_dynamic_level_bytes = true;
  cf.compression = ChooseCompression();
  // A Bloom filter of each memtable's keys: a point read of a key the
  // memtables lack (most reads once the keys outnumber what the memtables
  // hold) skips searching their skip lists. Costs 2% of the memtable budget.
  cf.memtable_prefix_bloom_size_ratio = kMemtableBloomRatio;
  cf.memtable_whole_key_filtering = true;
  return cf;
}

// The data space's objects apart from its keys (RocksDbOptions::blob_min_bytes).
// Blobs are not compressed: a read is then one pread of the object, where a
// compressed one would decompress it every time.
rocksdb::ColumnFamilyOptions WithValueSeparation(rocksdb::ColumnFamilyOptions cf,
                                                 const RocksDbOptions& options) {
  if (options.blob_min_bytes == 0) return cf;
  cf.enable_blob_files = true;
  cf.min_blob_size = options.blob_min_bytes;
  cf.blob_compression_type = rocksdb::kNoCompression;
  // While garbage collection runs (RocksDbEngine::AdjustBlobGarbageCollection),
  // compactions relocate the live objects of the oldest quarter of the blob
  // files, and are forced there once half of those files' bytes are garbage.
  cf.enable_blob_garbage_collection = false;
  cf.blob_garbage_collection_age_cutoff = kBlobGcAgeCutoff;
  cf.blob_garbage_collection_force_threshold = kBlobGcForceThreshold;
  return cf;
}

// The actionable error for a failed Open.
absl::Status OpenError(const rocksdb::Status& status, const std::string& path) {
  const std::string detail = status.ToString();
  if (status.IsIOError() && !status.IsNoSpace() && absl::StrContains(detail, "/LOCK")) {
    return absl::UnavailableError(absl::StrCat(
        "cannot open the database at ", path,
        ": it is in use by another process (or another engine in this process); stop that "
        "dynamo-node first (",
        detail, ")"));
  }
  if (status.IsInvalidArgument()) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot open the database at ", path, ": ", detail));
  }
  if (status.IsNoSpace()) {
    // Opening replays the log into new table files: it needs some room.
    return absl::ResourceExhaustedError(absl::StrCat(
        "disk full: cannot open the database at ", path, " (", detail,
        "); free space on its volume (or give it a larger one) and start the node again"));
  }
  if (status.IsCorruption()) {
    return absl::DataLossError(absl::StrCat(
        "the database at ", path, " is corrupted and cannot be opened (", detail,
        "). This node's data cannot be trusted; rebuild it from its replicas: stop the node, "
        "delete the directory ",
        path,
        ", and start the node again empty. Anti-entropy and hinted handoff then restore "
        "its data from the other replicas."));
  }
  return FromRocksDbStatus(status, "open", path);
}

}  // namespace

absl::Status FromRocksDbStatus(const rocksdb::Status& status, std::string_view operation_view,
                               std::string_view path_view) {
  if (status.ok()) return absl::OkStatus();
  // Debian's absl has its own string_view, which std::string_view does not convert to.
  const absl::string_view operation(operation_view.data(), operation_view.size());
  const absl::string_view path(path_view.data(), path_view.size());
  const std::string detail = status.ToString();
  const bool space_limit = status.IsIOError() && status.subcode() == rocksdb::Status::kSpaceLimit;
  if (status.IsNoSpace() || space_limit) {
    return absl::ResourceExhaustedError(
        absl::StrCat("disk full: ", operation, " on ", path, " failed (", detail,
                     "); free space on the volume of ", path,
                     " and writes resume by themselves, reads keep working meanwhile"));
  }
  if (status.IsCorruption()) {
    return absl::DataLossError(absl::StrCat(
        "data corruption: ", operation, " on ", path, " failed (", detail,
        "); this node's data cannot be trusted: stop the node, delete ", path,
        " and start it again empty, anti-entropy restores its data from the replicas"));
  }
  if (status.IsIOError()) {
    return absl::UnavailableError(absl::StrCat("I/O error: ", operation, " on ", path, " failed (",
                                               detail, "); check the disk and the permissions of ",
                                               path));
  }
  if (status.IsBusy() || status.IsTryAgain() || status.IsTimedOut() ||
      status.IsShutdownInProgress()) {
    return absl::UnavailableError(
        absl::StrCat(operation, " on ", path, " failed for now (", detail, "); retry"));
  }
  return absl::InternalError(absl::StrCat(operation, " on ", path, " failed: ", detail));
}

absl::StatusOr<std::unique_ptr<RocksDbEngine>> RocksDbEngine::Open(const RocksDbOptions& options) {
  if (options.path.empty()) {
    return absl::InvalidArgumentError("RocksDB engine: the data directory path is empty");
  }
  if (options.memtable_bytes < (size_t{1} << 20)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "RocksDB engine: memtable_bytes must be at least 1 MiB, got ", options.memtable_bytes));
  }
  if (options.durability == RocksDbOptions::Durability::kBuffered &&
      options.buffered_sync_interval_ms <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("RocksDB engine: buffered_sync_interval_ms must be positive, got ",
                     options.buffered_sync_interval_ms));
  }
  const std::string& path = options.path;
  std::error_code error;
  const std::filesystem::file_status file = std::filesystem::status(path, error);
  if (std::filesystem::exists(file) && !std::filesystem::is_directory(file)) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot open the database at ", path,
                     ": it exists and is not a directory; point the data directory elsewhere"));
  }
  if (!std::filesystem::exists(file)) {
    if (!options.create_if_missing) {
      return absl::FailedPreconditionError(
          absl::StrCat("no database at ", path, " and create_if_missing is false"));
    }
    // RocksDB creates the last component only; a fresh volume may need more.
    std::filesystem::create_directories(path, error);
    if (error) {
      return absl::UnavailableError(
          absl::StrCat("cannot create the data directory ", path, ": ", error.message()));
    }
  }

  rocksdb::DBOptions db_options = MakeDbOptions(options);
  db_options.info_log =
      std::make_shared<InfoLog>(db_options.env->GetFileSystem(), path, kInfoLogFileBytesMax,
                                kInfoLogFilesMax - 1, db_options.info_log_level);
  auto background_work = std::make_shared<BackgroundWorkCounter>();
  db_options.listeners.push_back(background_work);
  const rocksdb::ColumnFamilyOptions cf_options =
      MakeColumnFamilyOptions(options, rocksdb::NewLRUCache(options.block_cache_bytes));

  // RocksDB must open every column family the database has, ours or not.
  std::vector<std::string> names = {rocksdb::kDefaultColumnFamilyName};
  names.insert(names.end(), kSpaceColumnFamilies.begin(), kSpaceColumnFamilies.end());
  std::vector<std::string> existing;
  if (rocksdb::DB::ListColumnFamilies(db_options, path, &existing).ok()) {
    for (const std::string& name : existing) {
      if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
    }
  }  // else a new database, or one DB::Open reports on below
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (const std::string& name : names) {
    const bool data = name == kSpaceColumnFamilies[static_cast<int>(Space::kData)];
    descriptors.emplace_back(name, data ? WithValueSeparation(cf_options, options) : cf_options);
  }

  // Flushes and compactions run at the lowest CPU priority (nice 19). Replicas
  // take the same writes, so every node of a key range flushes at the same
  // moment; on busy cores that burst would otherwise delay every request
  // (bench/RESULTS.md, F16). Starved background work throttles itself: writes
  // slow down once memtables or level-0 files pile up, which frees the cores.
  for (auto pool : {rocksdb::Env::Priority::LOW, rocksdb::Env::Priority::HIGH}) {
    db_options.env->LowerThreadPoolCPUPriority(pool, rocksdb::CpuPriority::kLow);
  }
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw_db = nullptr;
  const rocksdb::Status status =
      rocksdb::DB::Open(db_options, path, descriptors, &handles, &raw_db);
  if (!status.ok()) return OpenError(status, path);
  std::unique_ptr<rocksdb::DB> db(raw_db);

  std::array<rocksdb::ColumnFamilyHandle*, kSpaceCount> spaces{};
  for (int i = 0; i < kSpaceCount; ++i) spaces[i] = handles[i + 1];  // names[0] is default
  return std::unique_ptr<RocksDbEngine>(
      new RocksDbEngine(options, std::move(db), std::move(handles), spaces,
                        std::move(background_work)));
}

absl::StatusOr<std::unique_ptr<StorageEngine>> OpenRocksDb(const RocksDbOptions& options) {
  absl::StatusOr<std::unique_ptr<RocksDbEngine>> engine = RocksDbEngine::Open(options);
  if (!engine.ok()) return engine.status();
  return std::unique_ptr<StorageEngine>(std::move(*engine));
}

RocksDbEngine::RocksDbEngine(RocksDbOptions options, std::unique_ptr<rocksdb::DB> db,
                             std::vector<rocksdb::ColumnFamilyHandle*> handles,
                             std::array<rocksdb::ColumnFamilyHandle*, kSpaceCount> spaces,
                             std::shared_ptr<BackgroundWorkCounter> background_work)
    : options_(std::move(options)),
      db_(std::move(db)),
      handles_(std::move(handles)),
      spaces_(spaces),
      background_work_(std::move(background_work)),
      file_manager_(db_->GetDBOptions().sst_file_manager) {
  background_thread_ = std::thread([this] { BackgroundLoop(); });
}

RocksDbEngine::~RocksDbEngine() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (background_thread_.joinable()) background_thread_.join();
  // DB::Close does not fsync the log; a clean shutdown should lose nothing.
  // Nobody is left to report a failure to: the next Open recovers what it can.
  SyncWal().IgnoreError();
  for (rocksdb::ColumnFamilyHandle* handle : handles_) {
    db_->DestroyColumnFamilyHandle(handle).PermitUncheckedError();
  }
  db_->Close().PermitUncheckedError();
}

int64_t FileDeletionBytesPerSecond(uint64_t free_bytes, uint64_t reserve_bytes) {
  return free_bytes / kDeleteAtOnceBelowReserves < reserve_bytes ? 0 : kFileDeletionBytesPerSecond;
}

bool BlobGarbageCollectionWanted(bool running, uint64_t garbage_bytes, uint64_t total_bytes) {
  return running ? garbage_bytes * 4 > total_bytes : garbage_bytes * 2 > total_bytes;
}

void RocksDbEngine::BackgroundLoop() {
  const bool buffered = options_.durability == RocksDbOptions::Durability::kBuffered;
  const absl::Duration interval =
      absl::Milliseconds(buffered ? options_.buffered_sync_interval_ms : kBackgroundIntervalMs);
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (mu_.AwaitWithTimeout(absl::Condition(&stopping_), interval)) return;
    }
    // A failure stops writes; the writes and Sync() report it.
    if (buffered) SyncWal().IgnoreError();
    // An idle node resumes too, and learns if only a restart will do (Health).
    ResumeWrites().IgnoreError();
    if (options_.blob_min_bytes > 0) AdjustBlobGarbageCollection();
  }
}

void RocksDbEngine::AdjustBlobGarbageCollection() {
  rocksdb::ColumnFamilyMetaData meta;
  db_->GetColumnFamilyMetaData(spaces_[static_cast<int>(Space::kData)], &meta);
  uint64_t garbage = 0;
  uint64_t total = 0;
  for (const rocksdb::BlobMetaData& blob : meta.blob_files) {
    garbage += blob.garbage_blob_bytes;
    total += blob.total_blob_bytes;
  }
  const bool wanted = BlobGarbageCollectionWanted(blob_gc_running_, garbage, total);
  if (wanted == blob_gc_running_) return;
  // On failure (a stopped database) the next round tries again.
  const rocksdb::Status status = db_->SetOptions(
      spaces_[static_cast<int>(Space::kData)],
      {{"enable_blob_garbage_collection", wanted ? "true" : "false"}});
  if (status.ok()) blob_gc_running_ = wanted;
}

absl::StatusOr<std::string> RocksDbEngine::Get(Space space, std::string_view key) {
  if (!IsValidSpace(space)) return InvalidSpaceError(space);
  rocksdb::PinnableSlice value;
  const rocksdb::Status status =
      db_->Get(rocksdb::ReadOptions(), spaces_[static_cast<int>(space)], ToSlice(key), &value);
  if (status.IsNotFound()) return absl::NotFoundError("key not found");
  if (!status.ok()) return FromRocksDbStatus(status, "get", options_.path);
  return std::string(ToView(value));
}

absl::Status RocksDbEngine::Put(Space space, std::string_view key, std::string_view value) {
  if (!IsValidSpace(space)) return InvalidSpaceError(space);
  rocksdb::WriteBatch batch;
  rocksdb::Status status =
      batch.Put(spaces_[static_cast<int>(space)], ToSlice(key), ToSlice(value));
  if (!status.ok()) return FromRocksDbStatus(status, "put", options_.path);
  return Commit(&batch, "put", /*sync=*/false);
}

absl::Status RocksDbEngine::Delete(Space space, std::string_view key) {
  if (!IsValidSpace(space)) return InvalidSpaceError(space);
  rocksdb::WriteBatch batch;
  rocksdb::Status status = batch.Delete(spaces_[static_cast<int>(space)], ToSlice(key));
  if (!status.ok()) return FromRocksDbStatus(status, "delete", options_.path);
  return Commit(&batch, "delete", /*sync=*/false);
}

absl::Status RocksDbEngine::Write(const std::vector<WriteOp>& ops) {
  if (ops.empty()) return absl::OkStatus();
  rocksdb::WriteBatch batch;
  for (const WriteOp& op : ops) {
    if (!IsValidSpace(op.space)) return InvalidSpaceError(op.space);
    rocksdb::ColumnFamilyHandle* family = spaces_[static_cast<int>(op.space)];
    const rocksdb::Status status = op.is_delete
                                       ? batch.Delete(family, ToSlice(op.key))
                                       : batch.Put(family, ToSlice(op.key), ToSlice(op.value));
    if (!status.ok()) return FromRocksDbStatus(status, "write", options_.path);
  }
  return Commit(&batch, "write", /*sync=*/false);
}

absl::Status RocksDbEngine::CheckFreeSpace() {
  absl::MutexLock lock(&mu_);
  const int64_t now_ms = SteadyNowMs();
  if (now_ms - space_checked_ms_ >= kSpaceCheckIntervalMs) {
    space_checked_ms_ = now_ms;
    uint64_t free_bytes = 0;
    const rocksdb::Status s = db_->GetEnv()->GetFreeSpace(options_.path, &free_bytes);
    free_bytes_ = s.ok() ? free_bytes : ~uint64_t{0};  // unknown: do not refuse
    const int64_t rate = FileDeletionBytesPerSecond(free_bytes_, MemtablesBytesMax(options_));
    if (rate != file_manager_->GetDeleteRateBytesPerSecond()) {
      file_manager_->SetDeleteRateBytesPerSecond(rate);
    }
  }
  const uint64_t reserve = MemtablesBytesMax(options_);
  if (free_bytes_ >= reserve) return absl::OkStatus();
  return absl::ResourceExhaustedError(absl::StrCat(
      "disk full: ", free_bytes_ >> 20, " MiB free on the volume of ", options_.path,
      ", below the reserve of ", reserve >> 20,
      " MiB; writes resume by themselves once space is freed, reads keep working"));
}

absl::Status RocksDbEngine::Commit(rocksdb::WriteBatch* batch, std::string_view operation,
                                   bool sync) {
  // A sync's log record is a few bytes and makes durable what was written
  // before: the reserve does not hold it back.
  if (!sync) {
    if (absl::Status space = CheckFreeSpace(); !space.ok()) return space;
  }
  if (absl::Status resumed = ResumeWrites(); !resumed.ok()) return resumed;
  rocksdb::WriteOptions write_options;
  write_options.sync = sync;
  const rocksdb::Status status = db_->Write(write_options, batch);
  if (status.ok()) {
    if (!sync) writes_.fetch_add(1, std::memory_order_release);
    return absl::OkStatus();
  }
  absl::Status error = FromRocksDbStatus(status, operation, options_.path);
  // With paranoid_checks a failed log write or sync stops all writes until
  // resumed.
  if (status.IsIOError()) {
    absl::MutexLock lock(&mu_);
    stopped_status_ = error;
    ++stop_count_;
    writes_stopped_.store(true, std::memory_order_release);
  }
  return error;
}

absl::Status RocksDbEngine::ResumeWrites() {
  if (!writes_stopped_.load(std::memory_order_acquire)) return absl::OkStatus();
  uint64_t stop_count = 0;
  {
    absl::MutexLock lock(&mu_);
    const int64_t now_ms = SteadyNowMs();
    if (now_ms < next_resume_ms_) return stopped_status_;
    next_resume_ms_ = now_ms + kResumeIntervalMs;
    stop_count = stop_count_;
  }
  uint64_t free_bytes = 0;
  const rocksdb::Status space = db_->GetEnv()->GetFreeSpace(options_.path, &free_bytes);
  if (space.ok() && free_bytes < MemtablesBytesMax(options_)) {
    absl::MutexLock lock(&mu_);
    return stopped_status_;
  }
  // Without a free-space figure (NotSupported), try anyway.
  const rocksdb::Status resumed = db_->Resume();
  absl::MutexLock lock(&mu_);
  if (resumed.ok()) {
    // Unless a write failed again meanwhile, which stopped RocksDB anew.
    if (stop_count_ == stop_count) {
      writes_stopped_.store(false, std::memory_order_release);
      stopped_status_ = absl::OkStatus();
    }
    return absl::OkStatus();
  }
  if (resumed.severity() >= rocksdb::Status::Severity::kFatalError) {
    needs_restart_ = true;
    stopped_status_ =
        absl::UnavailableError(absl::StrCat("the database at ", options_.path,
                                            " stopped writing after an error it cannot recover "
                                            "from while open (",
                                            resumed.ToString(), "); restart the node"));
  }
  return stopped_status_;
}

absl::Status RocksDbEngine::Scan(Space space, std::string_view begin, std::string_view end,
                                 const ScanVisitor& visit) {
  if (!IsValidSpace(space)) return InvalidSpaceError(space);
  if (!end.empty() && begin >= end) return absl::OkStatus();
  const rocksdb::Slice upper_bound = ToSlice(end);  // must outlive the iterator
  rocksdb::ReadOptions read_options;
  read_options.fill_cache = false;
  if (!end.empty()) read_options.iterate_upper_bound = &upper_bound;
  std::unique_ptr<rocksdb::Iterator> it(
      db_->NewIterator(read_options, spaces_[static_cast<int>(space)]));
  for (it->Seek(ToSlice(begin)); it->Valid(); it->Next()) {
    if (!visit(ToView(it->key()), ToView(it->value()))) return absl::OkStatus();
  }
  return FromRocksDbStatus(it->status(), "scan", options_.path);
}

absl::Status RocksDbEngine::Health() {
  absl::MutexLock lock(&mu_);
  return needs_restart_ ? stopped_status_ : absl::OkStatus();
}

absl::Status RocksDbEngine::Sync() {
  if (options_.durability == RocksDbOptions::Durability::kDurable) return SyncWal();
  if (!writes_stopped_.load(std::memory_order_acquire)) return absl::OkStatus();
  absl::MutexLock lock(&mu_);
  return stopped_status_;
}

absl::Status RocksDbEngine::SyncWal() {
  // Everything that returned before this point is in the log before the
  // marker below; nothing to do if no write returned since the last sync.
  const uint64_t written = writes_.load(std::memory_order_acquire);
  if (written == synced_.load(std::memory_order_acquire)) return absl::OkStatus();
  // A log-only record written with sync = true: RocksDB fsyncs the log in its
  // write path, which orders the fsync after the writes and refuses it while
  // writes are stopped. DB::SyncWAL does neither: next to a write that fails
  // it syncs a broken log writer (an assertion failure in a debug build of
  // RocksDB, as Debian's is, and an error otherwise).
  rocksdb::WriteBatch marker;
  if (rocksdb::Status s = marker.PutLogData("sync"); !s.ok()) {
    return FromRocksDbStatus(s, "log sync", options_.path);
  }
  if (absl::Status status = Commit(&marker, "log sync", /*sync=*/true); !status.ok()) {
    return status;
  }
  uint64_t synced = synced_.load(std::memory_order_relaxed);
  while (synced < written &&
         !synced_.compare_exchange_weak(synced, written, std::memory_order_acq_rel)) {
  }
  return absl::OkStatus();
}

int64_t RocksDbEngine::file_deletion_bytes_per_second() const {
  return file_manager_->GetDeleteRateBytesPerSecond();
}

absl::Status RocksDbEngine::FlushMemTables() {
  rocksdb::FlushOptions flush_options;
  flush_options.wait = true;
  return FromRocksDbStatus(db_->Flush(flush_options, handles_), "flush", options_.path);
}

std::string RocksDbEngine::Describe() const {
  return absl::StrCat("rocksdb ", DurabilityName(options_.durability), " ", options_.path);
}

EngineStats RocksDbEngine::Stats() const {
  EngineStats stats;
  stats.flush_written_bytes = background_work_->flush_written.load(std::memory_order_relaxed);
  stats.compaction_read_bytes = background_work_->compaction_read.load(std::memory_order_relaxed);
  stats.compaction_written_bytes =
      background_work_->compaction_written.load(std::memory_order_relaxed);
  uint64_t value = 0;
  if (db_->GetAggregatedIntProperty("rocksdb.estimate-pending-compaction-bytes", &value)) {
    stats.pending_compaction_bytes = value;
  }
  rocksdb::ColumnFamilyMetaData meta;
  db_->GetColumnFamilyMetaData(spaces_[static_cast<int>(Space::kData)], &meta);
  for (const rocksdb::BlobMetaData& blob : meta.blob_files) {
    stats.blob_file_bytes += blob.blob_file_size;
    stats.blob_garbage_bytes += blob.garbage_blob_bytes;
  }
  stats.trash_bytes = file_manager_->GetTotalTrashSize();
  // One cache serves every column family: ask one of them.
  if (db_->GetIntProperty(spaces_[static_cast<int>(Space::kData)], "rocksdb.block-cache-usage",
                          &value)) {
    stats.block_cache_bytes = value;
  }
  return stats;
}

}  // namespace dynamo::storage
