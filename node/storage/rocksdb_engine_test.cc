// RocksDbEngine beyond the shared contract: persistence across restarts and
// crashes, corruption, disk full, bad paths, and the error mapping.

#include "dynamo/storage/rocksdb_engine.h"

#include <fcntl.h>
#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/file_system.h>
#include <rocksdb/options.h>
#include <rocksdb/status.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "info_log.h"

namespace dynamo::storage {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::UnorderedElementsAre;
using Durability = RocksDbOptions::Durability;

::testing::AssertionResult IsOk(const absl::Status& status) {
  if (status.ok()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << status;
}
#define EXPECT_OK(expr) EXPECT_TRUE(IsOk(expr))
#define ASSERT_OK(expr) ASSERT_TRUE(IsOk(expr))

std::string Message(const absl::Status& status) { return std::string(status.message()); }

// A directory of its own for each test, removed afterwards.
class TempDir {
 public:
  TempDir() {
    std::string pattern = std::filesystem::temp_directory_path() / "dynamo-rocksdb-XXXXXX";
    if (mkdtemp(pattern.data()) == nullptr) ADD_FAILURE() << "mkdtemp " << pattern;
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  std::string Sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

RocksDbOptions Options(const std::string& path, Durability durability = Durability::kDurable) {
  RocksDbOptions options;
  options.path = path;
  options.durability = durability;
  options.block_cache_bytes = 8 << 20;
  return options;
}

std::unique_ptr<RocksDbEngine> OpenOrFail(const RocksDbOptions& options) {
  absl::StatusOr<std::unique_ptr<RocksDbEngine>> engine = RocksDbEngine::Open(options);
  if (!engine.ok()) {
    ADD_FAILURE() << "Open(" << options.path << "): " << engine.status();
    return nullptr;
  }
  return std::move(*engine);
}

std::string Key(int i) {
  char buffer[32];
  snprintf(buffer, sizeof buffer, "key-%06d", i);
  return buffer;
}
std::string Value(int i) { return absl::StrCat("value-", i, "-", std::string(i % 97, 'x')); }

// Writes keys [first, first + count): even ones with Put to kData, odd ones in
// batches to both kData and kMeta.
absl::Status WriteKeys(StorageEngine& engine, int first, int count) {
  std::vector<WriteOp> batch;
  for (int i = first; i < first + count; ++i) {
    if (i % 2 == 0) {
      if (absl::Status s = engine.Put(Space::kData, Key(i), Value(i)); !s.ok()) return s;
      continue;
    }
    batch.push_back({Space::kData, Key(i), Value(i), false});
    batch.push_back({Space::kMeta, Key(i), Value(i), false});
    if (batch.size() >= 16) {
      if (absl::Status s = engine.Write(batch); !s.ok()) return s;
      batch.clear();
    }
  }
  return engine.Write(batch);
}

// How many of the keys [first, first + count) are there, whole, in every
// space WriteKeys put them.
int CountPresent(StorageEngine& engine, int first, int count) {
  auto holds = [&](Space space, int i) {
    absl::StatusOr<std::string> value = engine.Get(space, Key(i));
    if (!value.ok() && !absl::IsNotFound(value.status())) ADD_FAILURE() << value.status();
    return value.ok() && *value == Value(i);
  };
  int present = 0;
  for (int i = first; i < first + count; ++i) {
    if (holds(Space::kData, i) && (i % 2 == 0 || holds(Space::kMeta, i))) ++present;
  }
  return present;
}

// --- crashes ----------------------------------------------------------------

// Runs body in a forked child. body must end the child with Crash() while its
// engine is still open, as a crash would; if it returns, it returns why it
// could not. Returns "" when the child died of SIGKILL, else what went wrong.
std::string RunChildUntilCrash(const std::function<std::string()>& body) {
  fflush(nullptr);
  const pid_t pid = fork();
  if (pid < 0) return "fork failed";
  if (pid == 0) {
    const std::string error = body();
    fprintf(stderr, "crash child: %s\n", error.c_str());
    _exit(3);
  }
  int wait_status = 0;
  if (waitpid(pid, &wait_status, 0) != pid) return "waitpid failed";
  if (WIFSIGNALED(wait_status) && WTERMSIG(wait_status) == SIGKILL) return "";
  return absl::StrCat("the child did not die of SIGKILL (wait status ", wait_status,
                      "); its stderr says why");
}

[[noreturn]] void Crash() {
  raise(SIGKILL);
  _exit(4);  // not reached
}

// A file system over the real one that can (1) fail every write as a full
// disk does and (2) journal, for each file written, how many bytes had been
// written when it was last synced: after the process is killed, cutting each
// file back to that size is what a power loss does (SimulatePowerLoss).
class FaultFs : public rocksdb::FileSystemWrapper {
 public:
  explicit FaultFs(std::string journal_path = "")
      : FileSystemWrapper(rocksdb::FileSystem::Default()), journal_path_(std::move(journal_path)) {}

  static const char* kClassName() { return "DynamoTestFaultFs"; }
  const char* Name() const override { return kClassName(); }

  void set_disk_full(bool full) { disk_full_.store(full); }
  bool disk_full() const { return disk_full_.load(); }
  // What GetFreeSpace reports while the disk is not full (0: the real figure).
  void set_free_bytes(uint64_t bytes) { free_bytes_.store(bytes); }
  // Every file's sync fails with an I/O error (EIO from fsync).
  void set_syncs_fail(bool fail) { syncs_fail_.store(fail); }
  bool syncs_fail() const { return syncs_fail_.load(); }

  rocksdb::IOStatus NewWritableFile(const std::string& name, const rocksdb::FileOptions& options,
                                    std::unique_ptr<rocksdb::FSWritableFile>* file,
                                    rocksdb::IODebugContext* debug) override {
    if (disk_full()) return rocksdb::IOStatus::NoSpace("injected: disk full", name);
    rocksdb::IOStatus status = target()->NewWritableFile(name, options, file, debug);
    if (status.ok()) {
      Journal(name, 0);  // created empty: its contents are not durable yet
      *file = std::make_unique<File>(std::move(*file), this, name, 0);
    }
    return status;
  }

  rocksdb::IOStatus ReopenWritableFile(const std::string& name, const rocksdb::FileOptions& options,
                                       std::unique_ptr<rocksdb::FSWritableFile>* file,
                                       rocksdb::IODebugContext* debug) override {
    if (disk_full()) return rocksdb::IOStatus::NoSpace("injected: disk full", name);
    uint64_t size = 0;
    if (!target()->GetFileSize(name, rocksdb::IOOptions(), &size, debug).ok()) size = 0;
    rocksdb::IOStatus status = target()->ReopenWritableFile(name, options, file, debug);
    if (status.ok()) *file = std::make_unique<File>(std::move(*file), this, name, size);
    return status;
  }

  rocksdb::IOStatus GetFreeSpace(const std::string& path, const rocksdb::IOOptions& options,
                                 uint64_t* free_bytes, rocksdb::IODebugContext* debug) override {
    if (disk_full() || free_bytes_.load() != 0) {
      *free_bytes = disk_full() ? 0 : free_bytes_.load();
      return rocksdb::IOStatus::OK();
    }
    return target()->GetFreeSpace(path, options, free_bytes, debug);
  }

 private:
  class File : public rocksdb::FSWritableFileOwnerWrapper {
   public:
    File(std::unique_ptr<rocksdb::FSWritableFile> file, FaultFs* fs, std::string name,
         uint64_t size)
        : FSWritableFileOwnerWrapper(std::move(file)),
          fs_(fs),
          name_(std::move(name)),
          size_(size) {}

    rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& options,
                             rocksdb::IODebugContext* debug) override {
      if (fs_->disk_full()) return rocksdb::IOStatus::NoSpace("injected: disk full", name_);
      rocksdb::IOStatus status = FSWritableFileOwnerWrapper::Append(data, options, debug);
      if (status.ok()) size_ += data.size();
      return status;
    }
    rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& options,
                             const rocksdb::DataVerificationInfo& /*verification*/,
                             rocksdb::IODebugContext* debug) override {
      return Append(data, options, debug);
    }
    rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& data, uint64_t offset,
                                       const rocksdb::IOOptions& options,
                                       rocksdb::IODebugContext* debug) override {
      if (fs_->disk_full()) return rocksdb::IOStatus::NoSpace("injected: disk full", name_);
      rocksdb::IOStatus status =
          FSWritableFileOwnerWrapper::PositionedAppend(data, offset, options, debug);
      if (status.ok()) size_ = std::max<uint64_t>(size_, offset + data.size());
      return status;
    }
    rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& data, uint64_t offset,
                                       const rocksdb::IOOptions& options,
                                       const rocksdb::DataVerificationInfo& /*verification*/,
                                       rocksdb::IODebugContext* debug) override {
      return PositionedAppend(data, offset, options, debug);
    }
    rocksdb::IOStatus Truncate(uint64_t size, const rocksdb::IOOptions& options,
                               rocksdb::IODebugContext* debug) override {
      rocksdb::IOStatus status = FSWritableFileOwnerWrapper::Truncate(size, options, debug);
      if (status.ok()) size_ = size;
      return status;
    }
    rocksdb::IOStatus Sync(const rocksdb::IOOptions& options,
                           rocksdb::IODebugContext* debug) override {
      if (fs_->syncs_fail()) return rocksdb::IOStatus::IOError("injected: fsync failed", name_);
      const uint64_t size = size_;  // what was written before the sync began
      rocksdb::IOStatus status = FSWritableFileOwnerWrapper::Sync(options, debug);
      if (status.ok()) fs_->Journal(name_, size);
      return status;
    }
    rocksdb::IOStatus Fsync(const rocksdb::IOOptions& options,
                            rocksdb::IODebugContext* debug) override {
      if (fs_->syncs_fail()) return rocksdb::IOStatus::IOError("injected: fsync failed", name_);
      const uint64_t size = size_;
      rocksdb::IOStatus status = FSWritableFileOwnerWrapper::Fsync(options, debug);
      if (status.ok()) fs_->Journal(name_, size);
      return status;
    }

   private:
    FaultFs* const fs_;
    const std::string name_;
    std::atomic<uint64_t> size_;
  };

  // One line per event: "<durable size> <path>". Appends of a short line with
  // O_APPEND are atomic, and a killed process loses none of them (the page
  // cache survives it).
  void Journal(const std::string& name, uint64_t durable_size) {
    if (journal_path_.empty()) return;
    const std::string line = absl::StrCat(durable_size, " ", name, "\n");
    const int fd = ::open(journal_path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return;
    const ssize_t written = ::write(fd, line.data(), line.size());
    (void)written;
    ::close(fd);
  }

  const std::string journal_path_;
  std::atomic<bool> disk_full_{false};
  std::atomic<uint64_t> free_bytes_{0};
  std::atomic<bool> syncs_fail_{false};
};

// A database path on a FaultFs: `fs` injects the faults, `options` open it.
struct FaultyDisk {
  explicit FaultyDisk(const std::string& path, Durability durability = Durability::kDurable)
      : fs(std::make_shared<FaultFs>()),
        env(rocksdb::NewCompositeEnv(fs)),
        options(Options(path, durability)) {
    options.env = env.get();
  }
  std::shared_ptr<FaultFs> fs;
  std::unique_ptr<rocksdb::Env> env;
  RocksDbOptions options;
};

// Cuts every file of the journal back to what was synced: a power loss after
// the journaling process died. Returns how many bytes it dropped.
uint64_t SimulatePowerLoss(const std::string& journal_path) {
  std::map<std::string, uint64_t> durable_size;
  std::ifstream journal(journal_path);
  std::string line;
  while (std::getline(journal, line)) {
    std::istringstream fields(line);
    uint64_t size = 0;
    std::string name;
    fields >> size;
    fields.get();  // the space
    std::getline(fields, name);
    durable_size[name] = size;
  }
  uint64_t dropped = 0;
  for (const auto& [name, size] : durable_size) {
    std::error_code error;
    const uintmax_t now = std::filesystem::file_size(name, error);
    if (error || now <= size) continue;  // deleted since, or nothing to drop
    std::filesystem::resize_file(name, size, error);
    if (!error) dropped += now - size;
  }
  return dropped;
}

// --- open, close, reopen ------------------------------------------------------

TEST(RocksDbEngine, DataSurvivesCloseAndReopen) {
  TempDir dir;
  constexpr int kKeys = 600;
  for (Durability durability : {Durability::kDurable, Durability::kBuffered}) {
    const RocksDbOptions options =
        Options(dir.Sub(durability == Durability::kDurable ? "d" : "b"), durability);
    {
      std::unique_ptr<RocksDbEngine> engine = OpenOrFail(options);
      ASSERT_NE(engine, nullptr);
      ASSERT_OK(WriteKeys(*engine, 0, kKeys));
      ASSERT_OK(engine->Put(Space::kHints, "hint", "for node b"));
      ASSERT_OK(engine->Delete(Space::kData, Key(0)));
      // Closed without Sync(): a clean shutdown still keeps everything.
    }
    {
      std::unique_ptr<RocksDbEngine> engine = OpenOrFail(options);
      ASSERT_NE(engine, nullptr);
      EXPECT_EQ(CountPresent(*engine, 1, kKeys - 1), kKeys - 1);
      EXPECT_TRUE(absl::IsNotFound(engine->Get(Space::kData, Key(0)).status()));
      EXPECT_EQ(engine->Get(Space::kHints, "hint").value_or(""), "for node b");
      // Half in table files, half in the log.
      ASSERT_OK(engine->FlushMemTables());
      ASSERT_OK(WriteKeys(*engine, kKeys, kKeys));
    }
    std::unique_ptr<RocksDbEngine> engine = OpenOrFail(options);
    ASSERT_NE(engine, nullptr);
    EXPECT_EQ(CountPresent(*engine, 1, 2 * kKeys - 1), 2 * kKeys - 1);
  }
}

TEST(RocksDbEngine, CreatesOneColumnFamilyPerSpace) {
  TempDir dir;
  const std::string path = dir.Sub("db");
  ASSERT_NE(OpenOrFail(Options(path)), nullptr);
  std::vector<std::string> families;
  ASSERT_TRUE(rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), path, &families).ok());
  EXPECT_THAT(families, UnorderedElementsAre("default", "data", "hints", "meta", "item_hashes"));
}

TEST(RocksDbEngine, OpensColumnFamiliesItDoesNotKnowAndAddsItsOwn) {
  // A database written by a later version with another column family, and by
  // an earlier one without some of ours.
  TempDir dir;
  const std::string path = dir.Sub("db");
  {
    rocksdb::DBOptions options;
    options.create_if_missing = true;
    options.create_missing_column_families = true;
    std::vector<rocksdb::ColumnFamilyDescriptor> families = {
        {rocksdb::kDefaultColumnFamilyName, {}}, {"data", {}}, {"future", {}}};
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* db = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(options, path, families, &handles, &db).ok());
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), handles[1], "k", "v").ok());
    for (auto* handle : handles) ASSERT_TRUE(db->DestroyColumnFamilyHandle(handle).ok());
    delete db;
  }
  std::unique_ptr<RocksDbEngine> engine = OpenOrFail(Options(path));
  ASSERT_NE(engine, nullptr);
  EXPECT_EQ(engine->Get(Space::kData, "k").value_or(""), "v");
  EXPECT_OK(engine->Put(Space::kMeta, "m", "v"));
  EXPECT_OK(engine->Put(Space::kItemHashes, "k", "h"));
  EXPECT_EQ(engine->Get(Space::kItemHashes, "k").value_or(""), "h");
}

// Nice value of each of this process's threads named `name`.
std::vector<int> NiceOfThreads(const std::string& name) {
  std::vector<int> nice;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream comm_file(task.path() / "comm");
    std::string comm;
    std::getline(comm_file, comm);
    if (comm != name) continue;
    std::ifstream stat_file(task.path() / "stat");
    std::string stat;
    std::getline(stat_file, stat);
    // Fields after the command's closing parenthesis: state is field 3, nice field 19.
    std::istringstream rest(stat.substr(stat.rfind(')') + 2));
    std::string field;
    for (int i = 3; i <= 19 && rest >> field; ++i) {
      if (i == 19) nice.push_back(std::stoi(field));
    }
  }
  return nice;
}

TEST(RocksDbEngine, FlushesAndCompactionsRunAtTheLowestCpuPriority) {
  TempDir dir;
  std::unique_ptr<RocksDbEngine> engine = OpenOrFail(Options(dir.Sub("db")));
  ASSERT_NE(engine, nullptr);
  // A thread takes its priority when it next runs a job: make both pools
  // work. Four level-0 files start a compaction.
  for (int round = 0; round < 4; ++round) {
    for (int i = 0; i < 100; ++i) {
      ASSERT_OK(engine->Put(Space::kData, "k" + std::to_string(i), std::string(100, 'v')));
    }
    ASSERT_OK(engine->FlushMemTables());
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (engine->Stats().compaction_written_bytes == 0) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "no compaction ran";
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  for (const char* pool : {"rocksdb:high", "rocksdb:low"}) {
    const std::vector<int> nice = NiceOfThreads(pool);
    ASSERT_FALSE(nice.empty()) << pool;
    for (int n : nice) EXPECT_EQ(n, 19) << pool;
  }
}

TEST(RocksDbEngine, DescribeNamesModeAndPath) {
  TempDir dir;
  std::unique_ptr<RocksDbEngine> durable = OpenOrFail(Options(dir.Sub("d")));
  std::unique_ptr<RocksDbEngine> buffered =
      OpenOrFail(Options(dir.Sub("b"), Durability::kBuffered));
  ASSERT_NE(durable, nullptr);
  ASSERT_NE(buffered, nullptr);
  EXPECT_EQ(durable->Describe(), "rocksdb durable " + dir.Sub("d"));
  EXPECT_EQ(buffered->Describe(), "rocksdb buffered " + dir.Sub("b"));
}

// The background work the metrics report: flushes write table files, and
// enough overlapping level-0 files start a compaction, which reads more than
// it writes when the files hold the same keys.
TEST(RocksDbEngine, StatsCountFlushesCompactionsAndTheCache) {
  TempDir dir;
  RocksDbOptions options = Options(dir.Sub("db"));
  options.blob_min_bytes = 0;  // objects in the table files: compactions rewrite them
  absl::StatusOr<std::unique_ptr<RocksDbEngine>> engine = RocksDbEngine::Open(options);
  ASSERT_OK(engine.status());
  EXPECT_EQ((*engine)->Stats().flush_written_bytes, 0u);
  EXPECT_EQ((*engine)->Stats().compaction_written_bytes, 0u);
  uint64_t seed = 1;
  auto random_value = [&] {  // incompressible, so that table sizes follow the data
    std::string v(1000, '\0');
    for (char& c : v) {
      seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
      c = static_cast<char>(seed >> 56);
    }
    return v;
  };
  constexpr int kFiles = 6;  // more than RocksDB's level-0 trigger (4)
  constexpr int kKeys = 500;
  for (int f = 0; f < kFiles; ++f) {
    for (int k = 0; k < kKeys; ++k) {
      ASSERT_OK((*engine)->Put(Space::kData, absl::StrCat("key", k), random_value()));
    }
    ASSERT_OK((*engine)->FlushMemTables());
  }
  EXPECT_GE((*engine)->Stats().flush_written_bytes, uint64_t{kFiles} * kKeys * 1000);

  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while ((*engine)->Stats().compaction_written_bytes == 0 &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const EngineStats stats = (*engine)->Stats();
  ASSERT_GT(stats.compaction_written_bytes, 0u) << "no compaction after " << kFiles << " flushes";
  EXPECT_GT(stats.compaction_read_bytes, stats.compaction_written_bytes);
  EXPECT_GE(stats.compaction_written_bytes, uint64_t{kKeys} * 1000);  // one copy of each key

  for (int k = 0; k < kKeys; ++k) ASSERT_OK((*engine)->Get(Space::kData, absl::StrCat("key", k)).status());
  EXPECT_GT((*engine)->Stats().block_cache_bytes, uint64_t{kKeys} * 1000 / 2);
}

TEST(RocksDbEngine, CreatesMissingParentDirectories) {
  TempDir dir;
  std::unique_ptr<RocksDbEngine> engine = OpenOrFail(Options(dir.Sub("a/b/c")));
  ASSERT_NE(engine, nullptr);
  EXPECT_OK(engine->Put(Space::kData, "k", "v"));
}

TEST(RocksDbEngine, RejectsBadOptions) {
  TempDir dir;
  EXPECT_TRUE(absl::IsInvalidArgument(RocksDbEngine::Open(Options("")).status()));
  RocksDbOptions options = Options(dir.Sub("db"), Durability::kBuffered);
  options.buffered_sync_interval_ms = 0;
  absl::Status status = RocksDbEngine::Open(options).status();
  EXPECT_TRUE(absl::IsInvalidArgument(status)) << status;
  EXPECT_THAT(Message(status), HasSubstr("buffered_sync_interval_ms"));
  options = Options(dir.Sub("db"));
  options.memtable_bytes = 1000;
  status = RocksDbEngine::Open(options).status();
  EXPECT_TRUE(absl::IsInvalidArgument(status)) << status;
  EXPECT_THAT(Message(status), HasSubstr("memtable_bytes"));
}

TEST(RocksDbEngine, PathThatIsARegularFileFailsClearly) {
  TempDir dir;
  const std::string path = dir.Sub("not-a-directory");
  std::ofstream(path) << "hello";
  const absl::Status status = OpenRocksDb(Options(path)).status();
  EXPECT_TRUE(absl::IsFailedPrecondition(status)) << status;
  EXPECT_THAT(Message(status), HasSubstr(path));
  EXPECT_THAT(Message(status), HasSubstr("not a directory"));
  // The file is left alone.
  std::ifstream file(path);
  std::string contents;
  file >> contents;
  EXPECT_EQ(contents, "hello");
}

TEST(RocksDbEngine, MissingDatabaseWithoutCreateFailsClearly) {
  TempDir dir;
  RocksDbOptions options = Options(dir.Sub("db"));
  options.create_if_missing = false;
  absl::Status status = OpenRocksDb(options).status();
  EXPECT_TRUE(absl::IsFailedPrecondition(status)) << status;
  EXPECT_THAT(Message(status), HasSubstr(options.path));
  // An existing but empty directory is no database either.
  std::filesystem::create_directories(options.path);
  status = OpenRocksDb(options).status();
  EXPECT_TRUE(absl::IsFailedPrecondition(status)) << status;
  EXPECT_THAT(Message(status), HasSubstr(options.path));
}

TEST(RocksDbEngine, SecondOpenOfTheSamePathFails) {
  TempDir dir;
  const RocksDbOptions options = Options(dir.Sub("db"));
  std::unique_ptr<RocksDbEngine> first = OpenOrFail(options);
  ASSERT_NE(first, nullptr);
  const absl::Status status = OpenRocksDb(options).status();
  EXPECT_TRUE(absl::IsUnavailable(status)) << status;
  EXPECT_THAT(Message(status), HasSubstr(options.path));
  EXPECT_THAT(Message(status), HasSubstr("in use"));
  // Once the first is closed the path opens again.
  first.reset();
  EXPECT_NE(OpenOrFail(options), nullptr);
}

TEST(RocksDbEngine, BufferedModeStopsItsThreadPromptly) {
  TempDir dir;
  RocksDbOptions options = Options(dir.Sub("db"), Durability::kBuffered);
  options.buffered_sync_interval_ms = 3'600'000;
  const auto start = std::chrono::steady_clock::now();
  {
    std::unique_ptr<RocksDbEngine> engine = OpenOrFail(options);
    ASSERT_NE(engine, nullptr);
    EXPECT_OK(engine->Put(Space::kData, "k", "v"));
    EXPECT_OK(engine->Sync());
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
}

// --- crashes ----------------------------------------------------------------

constexpr int kCrashKeys = 500;

TEST(RocksDbEngineCrash, DurableSyncedWritesSurviveKill9) {
  TempDir dir;
  const RocksDbOptions options = Options(dir.Sub("db"), Durability::kDurable);
  ASSERT_EQ(RunChildUntilCrash([&]() -> std::string {
              absl::StatusOr<std::unique_ptr<RocksDbEngine>> engine = RocksDbEngine::Open(options);
              if (!engine.ok()) return engine.status().ToString();
              if (absl::Status s = WriteKeys(**engine, 0, kCrashKeys); !s.ok()) return s.ToString();
              if (absl::Status s = (*engine)->Sync(); !s.ok()) return s.ToString();
              Crash();
            }),
            "");
  std::unique_ptr<RocksDbEngine> engine = OpenOrFail(options);
  ASSERT_NE(engine, nullptr);
  EXPECT_EQ(CountPresent(*engine, 0, kCrashKeys), kCrashKeys);
}

TEST(RocksDbEngineCrash, BufferedWritesSurviveKill9EvenUnsynced) {
  // The paper's section 6.1 trade loses writes to a machine crash, never to a
  // crash of the process alone.
  TempDir dir;
  RocksDbOptions options = Options(dir.Sub("db"), Durability::kBuffered);
  options.buffered_sync_interval_ms = 3'600'000;  // no background sync in time
  ASSERT_EQ(RunChildUntilCrash([&]() -> std::string {
              absl::StatusOr<std::unique_ptr<RocksDbEngine>> engine = RocksDbEngine::Open(options);
              if (!engine.ok()) return engine.status().ToString();
              if (absl::Status s = WriteKeys(**engine, 0, kCrashKeys); !s.ok()) return s.ToString();
              Crash();
            }),
            "");
  std::unique_ptr<RocksDbEngine> engine = OpenOrFail(options);
  ASSERT_NE(engine, nullptr);
  EXPECT_EQ(CountPresent(*engine, 0, kCrashKeys), kCrashKeys);
}

// kill -9 alone cannot tell whether Sync() reached the disk: the page cache
// survives the process. These tests also cut every file back to what was
// fsynced, as a power loss would, and check what the engine promised.
struct PowerLossCase {
  Durability durability;
  int64_t sync_interval_ms;
  // What the child does after writing the first kCrashKeys keys, before it
  // writes kCrashKeys more and is killed.
  std::function<absl::Status(RocksDbEngine&)> after_first_writes;
  // Whether the second writes must be unsynced when the child dies (else the
  // power loss proves nothing). Not so where a background sync runs: on a
  // loaded machine it may catch them all.
  bool second_writes_unsynced = true;
};

std::string RunPowerLossCase(const TempDir& dir, const PowerLossCase& test_case, int* first_present,
                             int* second_present) {
  RocksDbOptions options = Options(dir.Sub("db"), test_case.durability);
  options.buffered_sync_interval_ms = test_case.sync_interval_ms;
  const std::string journal = dir.Sub("synced-sizes");
  const std::string child = RunChildUntilCrash([&]() -> std::string {
    auto fs = std::make_shared<FaultFs>(journal);
    std::unique_ptr<rocksdb::Env> env = rocksdb::NewCompositeEnv(fs);
    RocksDbOptions child_options = options;
    child_options.env = env.get();
    absl::StatusOr<std::unique_ptr<RocksDbEngine>> engine = RocksDbEngine::Open(child_options);
    if (!engine.ok()) return engine.status().ToString();
    if (absl::Status s = WriteKeys(**engine, 0, kCrashKeys); !s.ok()) return s.ToString();
    if (absl::Status s = test_case.after_first_writes(**engine); !s.ok()) return s.ToString();
    if (absl::Status s = WriteKeys(**engine, kCrashKeys, kCrashKeys); !s.ok()) return s.ToString();
    Crash();
  });
  if (!child.empty()) return child;
  if (SimulatePowerLoss(journal) == 0 && test_case.second_writes_unsynced) {
    return "the simulated power loss dropped nothing";
  }
  std::unique_ptr<RocksDbEngine> engine = OpenOrFail(options);
  if (engine == nullptr) return "reopen failed";
  *first_present = CountPresent(*engine, 0, kCrashKeys);
  *second_present = CountPresent(*engine, kCrashKeys, kCrashKeys);
  return "";
}

TEST(RocksDbEngineCrash, DurableSyncedWritesSurvivePowerLoss) {
  TempDir dir;
  int first = -1, second = -1;
  ASSERT_EQ(
      RunPowerLossCase(
          dir, {Durability::kDurable, 1000, [](RocksDbEngine& engine) { return engine.Sync(); }},
          &first, &second),
      "");
  EXPECT_EQ(first, kCrashKeys);
  // The writes after the last Sync() were never promised; that they are gone
  // shows the simulation really drops unsynced data.
  EXPECT_EQ(second, 0);
}

TEST(RocksDbEngineCrash, BufferedSyncDurablySurvivesPowerLoss) {
  TempDir dir;
  int first = -1, second = -1;
  ASSERT_EQ(RunPowerLossCase(dir,
                             {Durability::kBuffered, 3'600'000,
                              [](RocksDbEngine& engine) { return engine.SyncDurably(); }},
                             &first, &second),
            "");
  EXPECT_EQ(first, kCrashKeys);
  EXPECT_EQ(second, 0);
}

TEST(RocksDbEngineCrash, BufferedWritesSurvivePowerLossAfterTheBackgroundSync) {
  TempDir dir;
  int first = -1, second = -1;
  ASSERT_EQ(RunPowerLossCase(dir,
                             {Durability::kBuffered, 50,
                              [](RocksDbEngine&) {
                                std::this_thread::sleep_for(std::chrono::milliseconds(400));
                                return absl::OkStatus();
                              },
                              /*second_writes_unsynced=*/false},
                             &first, &second),
            "");
  EXPECT_EQ(first, kCrashKeys);
}

TEST(RocksDbEngineCrash, BufferedSyncDoesNotReachTheDisk) {
  // The other side of the trade: in buffered mode Sync() returns at once, and
  // a power loss before the background sync loses those writes.
  TempDir dir;
  int first = -1, second = -1;
  ASSERT_EQ(RunPowerLossCase(dir,
                             {Durability::kBuffered, 3'600'000,
                              [](RocksDbEngine& engine) { return engine.Sync(); }},
                             &first, &second),
            "");
  EXPECT_EQ(first, 0);
  EXPECT_EQ(second, 0);
}

// --- corruption -------------------------------------------------------------

// Writes keys into every space, flushes them to table files and closes.
void WriteFlushAndClose(const RocksDbOptions& options) {
  std::unique_ptr<RocksDbEngine> engine = OpenOrFail(options);
  ASSERT_NE(engine, nullptr);
  ASSERT_OK(WriteKeys(*engine, 0, 200));
  ASSERT_OK(engine->FlushMemTables());
}

// The database's files of one kind (".sst" tables, ".blob" blob files),
// oldest first (RocksDB numbers them).
std::vector<std::string> DbFiles(const std::string& path, const std::string& extension) {
  std::vector<std::string> files;
  for (const auto& entry : std::filesystem::directory_iterator(path)) {
    if (entry.path().extension() == extension) files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());  // zero-padded numbers
  return files;
}
std::vector<std::string> TableFiles(const std::string& path) { return DbFiles(path, ".sst"); }

void OverwriteWithGarbage(const std::string& file) {
  const uintmax_t size = std::filesystem::file_size(file);
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  out << std::string(size, '\xa5');
}

void ExpectRebuildAdvice(const absl::Status& status, const std::string& path) {
  EXPECT_TRUE(absl::IsDataLoss(status)) << status;
  EXPECT_THAT(Message(status), HasSubstr(path));
  EXPECT_THAT(Message(status), HasSubstr("corrupt"));
  EXPECT_THAT(Message(status), HasSubstr("delete"));
  EXPECT_THAT(Message(status), HasSubstr("replicas"));
}

TEST(RocksDbEngineCorruption, DamagedManifestFailsOpenWithDataLoss) {
  TempDir dir;
  const RocksDbOptions options = Options(dir.Sub("db"));
  ASSERT_NO_FATAL_FAILURE(WriteFlushAndClose(options));
  std::ifstream current(options.path + "/CURRENT");
  std::string manifest;
  std::getline(current, manifest);
  ASSERT_THAT(manifest, HasSubstr("MANIFEST-"));
  OverwriteWithGarbage(options.path + "/" + manifest);
  ExpectRebuildAdvice(OpenRocksDb(options).status(), options.path);
}

TEST(RocksDbEngineCorruption, DamagedTableFileFailsOpenWithDataLoss) {
  TempDir dir;
  const RocksDbOptions options = Options(dir.Sub("db"));
  ASSERT_NO_FATAL_FAILURE(WriteFlushAndClose(options));
  const std::vector<std::string> tables = TableFiles(options.path);
  ASSERT_FALSE(tables.empty());
  OverwriteWithGarbage(tables.back());
  ExpectRebuildAdvice(OpenRocksDb(options).status(), options.path);
}

TEST(RocksDbEngineCorruption, DamagedDataBlockFailsReadsWithDataLoss) {
  // A flipped byte inside a data block is found when the block is read.
  TempDir dir;
  const RocksDbOptions options = Options(dir.Sub("db"));
  {
    std::unique_ptr<RocksDbEngine> engine = OpenOrFail(options);
    ASSERT_NE(engine, nullptr);
    ASSERT_OK(engine->Put(Space::kData, "victim", std::string(1000, 'v')));
    ASSERT_OK(engine->FlushMemTables());
  }
  const std::vector<std::string> tables = TableFiles(options.path);
  ASSERT_EQ(tables.size(), 1u);
  {
    std::fstream file(tables[0], std::ios::binary | std::ios::in | std::ios::out);
    file.seekp(20);  // the first data block starts at offset 0
    file.put('\x00');
    file.seekp(21);
    file.put('\xff');
  }
  std::unique_ptr<RocksDbEngine> engine = OpenOrFail(options);
  ASSERT_NE(engine, nullptr);
  const absl::Status status = engine->Get(Space::kData, "victim").status();
  ExpectRebuildAdvice(status, options.path);
  EXPECT_TRUE(
      absl::IsDataLoss(engine->Scan(Space::kData, "", "", [](auto, auto) { return true; })));
  // The rest of the database still works.
  EXPECT_OK(engine->Put(Space::kMeta, "m", "v"));
  EXPECT_EQ(engine->Get(Space::kMeta, "m").value_or(""), "v");
}

TEST(RocksDbEngineCorruption, DamagedBlobFailsReadsWithDataLoss) {
  TempDir dir;
  const RocksDbOptions options = Options(dir.Sub("db"));
  {
    std::unique_ptr<RocksDbEngine> engine = OpenOrFail(options);
    ASSERT_NE(engine, nullptr);
    ASSERT_OK(engine->Put(Space::kData, "victim", std::string(options.blob_min_bytes, 'v')));
    ASSERT_OK(engine->FlushMemTables());
  }
  const std::vector<std::string> blobs = DbFiles(options.path, ".blob");
  ASSERT_EQ(blobs.size(), 1u);
  {
    // Past the blob file's header (30 bytes) and the record's (32 bytes) and key.
    std::fstream file(blobs[0], std::ios::binary | std::ios::in | std::ios::out);
    file.seekp(100);
    file.put('w');
  }
  std::unique_ptr<RocksDbEngine> engine = OpenOrFail(options);
  ASSERT_NE(engine, nullptr);
  ExpectRebuildAdvice(engine->Get(Space::kData, "victim").status(), options.path);
}

// --- value separation -----------------------------------------------------------

uint64_t TotalBytes(const std::vector<std::string>& files) {
  uint64_t total = 0;
  for (const std::string& file : files) total += std::filesystem::file_size(file);
  return total;
}

// Objects of at least blob_min_bytes live in blob files: compactions rewrite
// keys and pointers only, reads find the newest object through any number of
// flushes, compactions and reopens, and blob files holding nothing but
// overwritten objects are deleted.
TEST(RocksDbEngineValueSeparation, CompactionsRewriteKeysNotObjectsAndSpaceReturns) {
  TempDir dir;
  const RocksDbOptions options = Options(dir.Sub("db"));
  ASSERT_EQ(options.blob_min_bytes, 512u);  // the default
  // RocksDB's level-0 trigger: one compaction takes all four flushes, so the
  // blob files of the first three are left with nothing but garbage.
  constexpr int kFiles = 4;
  constexpr int kKeys = 500;
  constexpr size_t kValueBytes = 1000;
  constexpr uint64_t kOneCopyAndHeaders = kKeys * kValueBytes * 5 / 4;
  auto value = [](int round, int k) {
    std::string v = absl::StrCat("round ", round, " key ", k, " ");
    v.resize(kValueBytes, static_cast<char>('a' + round));
    return v;
  };
  {
    std::unique_ptr<RocksDbEngine> engine = OpenOrFail(options);
    ASSERT_NE(engine, nullptr);
    for (int round = 0; round < kFiles; ++round) {
      for (int k = 0; k < kKeys; ++k) {
        ASSERT_OK(engine->Put(Space::kData, absl::StrCat("key", k), value(round, k)));
      }
      ASSERT_OK(engine->Put(Space::kData, absl::StrCat("small", round), "under the threshold"));
      ASSERT_OK(engine->FlushMemTables());
    }
    EXPECT_GE(engine->Stats().flush_written_bytes, uint64_t{kFiles} * kKeys * kValueBytes);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while ((engine->Stats().compaction_written_bytes == 0 ||
            TotalBytes(DbFiles(options.path, ".blob")) > kOneCopyAndHeaders) &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    const EngineStats stats = engine->Stats();
    ASSERT_GT(stats.compaction_written_bytes, 0u) << "no compaction after " << kFiles << " flushes";
    // Inline, one copy of the objects alone would be kKeys * kValueBytes.
    EXPECT_LT(stats.compaction_written_bytes, uint64_t{kKeys} * kValueBytes / 4);
    // The overwritten objects' files are gone: one copy is left.
    EXPECT_LE(TotalBytes(DbFiles(options.path, ".blob")), kOneCopyAndHeaders);
    EXPECT_LT(TotalBytes(TableFiles(options.path)), uint64_t{kKeys} * kValueBytes / 4);
    // Files deleted gradually (FileDeletionBytesPerSecond) are gone too.
    while ((engine->Stats().trash_bytes > 0 || !DbFiles(options.path, ".trash").empty()) &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    EXPECT_EQ(engine->Stats().trash_bytes, 0u);
    EXPECT_THAT(DbFiles(options.path, ".trash"), IsEmpty());
  }
  std::unique_ptr<RocksDbEngine> engine = OpenOrFail(options);
  ASSERT_NE(engine, nullptr);
  for (int k = 0; k < kKeys; ++k) {
    EXPECT_EQ(engine->Get(Space::kData, absl::StrCat("key", k)).value_or(""), value(kFiles - 1, k));
  }
  EXPECT_EQ(engine->Get(Space::kData, "small0").value_or(""), "under the threshold");
  int scanned = 0;
  ASSERT_OK(engine->Scan(Space::kData, "key", "key:", [&](std::string_view key, std::string_view v) {
    EXPECT_EQ(v.size(), kValueBytes) << key;
    ++scanned;
    return true;
  }));
  EXPECT_EQ(scanned, kKeys);
}

TEST(RocksDbEngineValueSeparation, GarbageCollectionRunsFromHalfGarbageToAQuarter) {
  EXPECT_FALSE(BlobGarbageCollectionWanted(false, 0, 0));
  EXPECT_FALSE(BlobGarbageCollectionWanted(false, 50, 100));
  EXPECT_TRUE(BlobGarbageCollectionWanted(false, 51, 100));
  EXPECT_TRUE(BlobGarbageCollectionWanted(true, 26, 100));
  EXPECT_FALSE(BlobGarbageCollectionWanted(true, 25, 100));
  EXPECT_FALSE(BlobGarbageCollectionWanted(true, 0, 0));
}

// Random overwrites leave every blob file partly live, so none is deleted
// whole: without garbage collection nine in ten blob bytes here would be
// garbage. The engine turns collection on, and as writes go on (compactions
// collect, and they follow writes) the garbage comes down to at most half of
// the blob bytes, with the objects intact.
TEST(RocksDbEngineValueSeparation, RandomOverwritesAreCollected) {
  TempDir dir;
  const RocksDbOptions options = Options(dir.Sub("db"));
  std::unique_ptr<RocksDbEngine> engine = OpenOrFail(options);
  ASSERT_NE(engine, nullptr);
  constexpr int kKeys = 2000;
  constexpr int kRounds = 30;
  constexpr int kWritesPerRound = 500;
  std::vector<int> version(kKeys, 0);
  auto value = [](int k, int v) {
    std::string s = absl::StrCat("key ", k, " version ", v, " ");
    s.resize(600, '.');
    return s;
  };
  uint64_t seed = 7;
  auto write_round = [&] {
    for (int w = 0; w < kWritesPerRound; ++w) {
      seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
      const int k = static_cast<int>((seed >> 33) % kKeys);
      ASSERT_OK(engine->Put(Space::kData, absl::StrCat("key", k), value(k, ++version[k])));
    }
    ASSERT_OK(engine->FlushMemTables());
  };
  for (int round = 0; round < kRounds; ++round) ASSERT_NO_FATAL_FAILURE(write_round());
  EngineStats stats = engine->Stats();
  EXPECT_GT(stats.blob_garbage_bytes * 2, stats.blob_file_bytes) << "the test needs garbage";

  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (stats.blob_garbage_bytes * 2 > stats.blob_file_bytes &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    ASSERT_NO_FATAL_FAILURE(write_round());
    stats = engine->Stats();
  }
  EXPECT_LE(stats.blob_garbage_bytes * 2, stats.blob_file_bytes)
      << "garbage " << stats.blob_garbage_bytes << " of " << stats.blob_file_bytes;
  // The stats count the live blob files; the directory also holds, for a
  // moment, a compaction's file being written or an obsolete one not yet
  // deleted (deletions are rate-limited). Once background work settles they agree.
  const auto settle = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (engine->Stats().blob_file_bytes != TotalBytes(DbFiles(options.path, ".blob")) &&
         std::chrono::steady_clock::now() < settle) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(engine->Stats().blob_file_bytes, TotalBytes(DbFiles(options.path, ".blob")));
  for (int k = 0; k < kKeys; ++k) {
    if (version[k] == 0) continue;
    EXPECT_EQ(engine->Get(Space::kData, absl::StrCat("key", k)).value_or(""), value(k, version[k]));
  }
}

// A database written with objects inline opens with separation on, and the
// other way round: the setting may change at any restart.
TEST(RocksDbEngineValueSeparation, SettingMayChangeAtRestart) {
  TempDir dir;
  RocksDbOptions options = Options(dir.Sub("db"));
  const std::string big(2000, 'b');
  for (size_t blob_min_bytes : {size_t{0}, size_t{512}, size_t{0}}) {
    options.blob_min_bytes = blob_min_bytes;
    std::unique_ptr<RocksDbEngine> engine = OpenOrFail(options);
    ASSERT_NE(engine, nullptr);
    const std::string key = absl::StrCat("written with ", blob_min_bytes, " ", DbFiles(options.path, ".sst").size());
    ASSERT_OK(engine->Put(Space::kData, key, big));
    ASSERT_OK(engine->FlushMemTables());
    int found = 0;
    ASSERT_OK(engine->Scan(Space::kData, "", "", [&](std::string_view, std::string_view v) {
      EXPECT_EQ(v, big);
      ++found;
      return true;
    }));
    EXPECT_GE(found, 1);
  }
  EXPECT_FALSE(DbFiles(options.path, ".blob").empty());
}

// --- disk full --------------------------------------------------------------

// Writes stop while the volume has less free space than room for a flush of
// every memtable (4 memtables), so the reserve follows the memtable size.
TEST(RocksDbDiskReserve, FollowsTheMemtableSize) {
  TempDir dir;
  FaultyDisk disk(dir.Sub("db"));
  const std::shared_ptr<FaultFs>& fs = disk.fs;
  RocksDbOptions& options = disk.options;
  fs->set_free_bytes(6 << 20);
  options.memtable_bytes = 1 << 20;  // reserve 4 MiB: 6 MiB free is enough
  {
    std::unique_ptr<RocksDbEngine> engine = OpenOrFail(options);
    ASSERT_NE(engine, nullptr);
    EXPECT_OK(engine->Put(Space::kData, "k", "v"));
  }
  options.memtable_bytes = 2 << 20;  // reserve 8 MiB
  std::unique_ptr<RocksDbEngine> engine = OpenOrFail(options);
  ASSERT_NE(engine, nullptr);
  const absl::Status refused = engine->Put(Space::kData, "k2", "v");
  EXPECT_TRUE(absl::IsResourceExhausted(refused)) << refused;
  EXPECT_THAT(Message(refused), HasSubstr("below the reserve of 8 MiB"));
  EXPECT_EQ(engine->Get(Space::kData, "k").value_or(""), "v");  // reads keep working
}

// A full disk refuses writes, not the sync of those already made: a node would
// otherwise fail every answer that waits for a sync (core::SyncGate), reads too.
TEST(RocksDbDiskReserve, WritesMadeBeforeTheDiskFilledAreStillSynced) {
  TempDir dir;
  FaultyDisk disk(dir.Sub("db"));
  const std::shared_ptr<FaultFs>& fs = disk.fs;
  RocksDbOptions& options = disk.options;
  fs->set_free_bytes(1 << 30);
  options.memtable_bytes = 1 << 20;  // reserve 4 MiB
  std::unique_ptr<RocksDbEngine> engine = OpenOrFail(options);
  ASSERT_NE(engine, nullptr);
  ASSERT_OK(engine->Put(Space::kData, "before", "v"));  // not synced yet
  fs->set_free_bytes(1 << 20);
  // The engine reads the free space at a write, at most every 100 ms.
  absl::Status refused;
  for (int attempt = 0; attempt < 40 && refused.ok(); ++attempt) {
    refused = engine->Put(Space::kData, "k", "v");
    if (refused.ok()) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_TRUE(absl::IsResourceExhausted(refused)) << refused;
  EXPECT_OK(engine->Sync());
}

// After a failed log fsync RocksDB will not resume writes while open: the
// engine's health says so (Kubernetes then restarts the node), and a reopen
// brings back writes and every synced write.
TEST(RocksDbEngineHealth, AFailedLogSyncNeedsARestartWhichRestoresWrites) {
  TempDir dir;
  FaultyDisk disk(dir.Sub("db"));
  const std::shared_ptr<FaultFs>& fs = disk.fs;
  RocksDbOptions& options = disk.options;
  std::unique_ptr<RocksDbEngine> engine = OpenOrFail(options);
  ASSERT_NE(engine, nullptr);
  ASSERT_OK(engine->Put(Space::kData, "synced", "v"));
  ASSERT_OK(engine->Sync());
  EXPECT_OK(engine->Health());
  ASSERT_OK(engine->Put(Space::kData, "unsynced", "v"));
  fs->set_syncs_fail(true);
  EXPECT_FALSE(engine->Sync().ok());
  fs->set_syncs_fail(false);  // a working disk is not enough: RocksDB stays stopped
  // No write comes: the engine's background thread tries to resume (once a
  // second) and learns that only a restart will do; Health reports it.
  absl::Status health;
  for (int attempt = 0; attempt < 300 && health.ok(); ++attempt) {
    health = engine->Health();
    if (health.ok()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_FALSE(health.ok());
  EXPECT_THAT(health.message(), HasSubstr("restart the node"));
  EXPECT_FALSE(engine->Put(Space::kData, "k", "v").ok());
  engine.reset();
  engine = OpenOrFail(options);
  ASSERT_NE(engine, nullptr);
  EXPECT_OK(engine->Health());
  EXPECT_OK(engine->Put(Space::kData, "k", "v"));
  EXPECT_OK(engine->Sync());
  EXPECT_EQ(engine->Get(Space::kData, "synced").value_or(""), "v");
}

// Deleting big files at once stalls every fsync on a volume mounted with
// `discard` (bench/RESULTS.md, F16): they go gradually, unless space is short.
TEST(RocksDbFileDeletion, GradualUnlessLessThanFourReservesAreFree) {
  constexpr uint64_t kReserve = 64 << 20;
  EXPECT_GT(FileDeletionBytesPerSecond(~uint64_t{0}, kReserve), 0);  // free space unknown
  EXPECT_GT(FileDeletionBytesPerSecond(100 * kReserve, kReserve), 0);
  EXPECT_GT(FileDeletionBytesPerSecond(4 * kReserve, kReserve), 0);
  EXPECT_EQ(FileDeletionBytesPerSecond(4 * kReserve - 4, kReserve), 0);
  EXPECT_EQ(FileDeletionBytesPerSecond(kReserve, kReserve), 0);
  EXPECT_EQ(FileDeletionBytesPerSecond(0, kReserve), 0);
}

TEST(RocksDbFileDeletion, EngineFollowsTheFreeSpace) {
  TempDir dir;
  FaultyDisk disk(dir.Sub("db"));
  const std::shared_ptr<FaultFs>& fs = disk.fs;
  RocksDbOptions& options = disk.options;
  options.memtable_bytes = 1 << 20;  // reserve 4 MiB
  fs->set_free_bytes(1 << 30);
  std::unique_ptr<RocksDbEngine> engine = OpenOrFail(options);
  ASSERT_NE(engine, nullptr);
  ASSERT_OK(engine->Put(Space::kData, "k", "v"));
  const int64_t gradual = engine->file_deletion_bytes_per_second();
  EXPECT_GT(gradual, 0);

  // The engine reads the free space at a write, at most every 100 ms: write
  // until the rate changes from `before`.
  auto rate_once_changed_from = [&](int64_t before) {
    for (int attempt = 0; attempt < 40; ++attempt) {
      EXPECT_OK(engine->Put(Space::kData, "k", "v"));
      if (engine->file_deletion_bytes_per_second() != before) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return engine->file_deletion_bytes_per_second();
  };
  // Still room to write, but little: deleted files return their space at once.
  fs->set_free_bytes(8 << 20);
  EXPECT_EQ(rate_once_changed_from(gradual), 0);
  fs->set_free_bytes(1 << 30);
  EXPECT_EQ(rate_once_changed_from(0), gradual);
}

class RocksDbDiskFullTest : public ::testing::TestWithParam<Durability> {};

TEST_P(RocksDbDiskFullTest, RefusesWritesKeepsReadsAndRecovers) {
  TempDir dir;
  FaultyDisk disk(dir.Sub("db"), GetParam());
  const std::shared_ptr<FaultFs>& fs = disk.fs;
  RocksDbOptions& options = disk.options;
  options.buffered_sync_interval_ms = 10;  // the background sync runs into the full disk
  std::unique_ptr<RocksDbEngine> engine = OpenOrFail(options);
  ASSERT_NE(engine, nullptr);
  ASSERT_OK(WriteKeys(*engine, 0, 100));
  ASSERT_OK(engine->SyncWal());
  ASSERT_OK(engine->Put(Space::kData, "unsynced", "v"));  // written, not yet durable

  fs->set_disk_full(true);
  const absl::Status full = engine->Put(Space::kData, "late", "v");
  EXPECT_TRUE(absl::IsResourceExhausted(full)) << full;
  EXPECT_THAT(Message(full), HasSubstr("disk full"));
  EXPECT_THAT(Message(full), HasSubstr(options.path));
  // A batch is refused whole, and so is a sync of the log (which would have
  // to make "unsynced" durable).
  const absl::Status batch =
      engine->Write({{Space::kData, "b1", "v", false}, {Space::kMeta, "b2", "v", false}});
  EXPECT_TRUE(absl::IsResourceExhausted(batch)) << batch;
  const absl::Status sync = engine->SyncWal();
  EXPECT_TRUE(absl::IsResourceExhausted(sync)) << sync;
  // Reads keep working.
  EXPECT_EQ(CountPresent(*engine, 0, 100), 100);
  int scanned = 0;
  EXPECT_OK(engine->Scan(Space::kData, "", "", [&](auto, auto) { return ++scanned > 0; }));
  EXPECT_EQ(scanned, 101);  // with "unsynced"
  // Still full a while later: still refused, and nothing broke meanwhile.
  std::this_thread::sleep_for(std::chrono::milliseconds(250));
  EXPECT_TRUE(absl::IsResourceExhausted(engine->Put(Space::kData, "late", "v")));
  EXPECT_TRUE(absl::IsResourceExhausted(engine->SyncWal()));
  EXPECT_OK(engine->Health());  // a full disk needs space, not a restart

  // Space returns: writes resume without a restart.
  fs->set_disk_full(false);
  absl::Status retried;
  for (int attempt = 0; attempt < 40; ++attempt) {
    retried = engine->Put(Space::kData, "late", "v");
    if (retried.ok()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_OK(retried);
  EXPECT_OK(engine->Sync());
  EXPECT_OK(engine->SyncWal());
  EXPECT_EQ(engine->Get(Space::kData, "unsynced").value_or(""), "v");
  EXPECT_TRUE(absl::IsNotFound(engine->Get(Space::kData, "b1").status()));
  EXPECT_TRUE(absl::IsNotFound(engine->Get(Space::kMeta, "b2").status()));
  ASSERT_OK(WriteKeys(*engine, 100, 100));
  engine.reset();

  engine = OpenOrFail(Options(dir.Sub("db")));
  ASSERT_NE(engine, nullptr);
  EXPECT_EQ(CountPresent(*engine, 0, 200), 200);
  EXPECT_EQ(engine->Get(Space::kData, "late").value_or(""), "v");
  EXPECT_EQ(engine->Get(Space::kData, "unsynced").value_or(""), "v");
}

INSTANTIATE_TEST_SUITE_P(Modes, RocksDbDiskFullTest,
                         ::testing::Values(Durability::kDurable, Durability::kBuffered),
                         [](const ::testing::TestParamInfo<Durability>& info) {
                           return info.param == Durability::kDurable ? "Durable" : "Buffered";
                         });

// A node restarted on a full disk: opening replays the log into new table
// files, which needs room. It says so (and what to do) instead of dying.
TEST(RocksDbDiskFull, OpeningOnAFullDiskSaysWhatToDo) {
  TempDir dir;
  FaultyDisk disk(dir.Sub("db"));
  {
    std::unique_ptr<RocksDbEngine> engine = OpenOrFail(disk.options);
    ASSERT_NE(engine, nullptr);
    ASSERT_OK(WriteKeys(*engine, 0, 100));
  }
  disk.fs->set_disk_full(true);
  const absl::StatusOr<std::unique_ptr<RocksDbEngine>> full = RocksDbEngine::Open(disk.options);
  ASSERT_FALSE(full.ok());
  EXPECT_TRUE(absl::IsResourceExhausted(full.status())) << full.status();
  EXPECT_THAT(Message(full.status()), HasSubstr("disk full: cannot open the database"));
  EXPECT_THAT(Message(full.status()), HasSubstr("start the node again"));
  disk.fs->set_disk_full(false);
  std::unique_ptr<RocksDbEngine> reopened = OpenOrFail(disk.options);
  ASSERT_NE(reopened, nullptr);
  EXPECT_EQ(CountPresent(*reopened, 0, 100), 100);
}

std::string FileText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// RocksDB's own informational log aborts the process (an assertion in
// Debian's build) at the first line after a failed write: on a volume that
// has just filled up (where creating a file still works, appending does not),
// a node restarted there died in DB::Open without a word. Ours loses lines.
TEST(RocksDbInfoLog, AFullDiskLosesLinesNotTheProcess) {
  TempDir dir;
  auto fs = std::make_shared<FaultFs>();
  const std::string db = dir.Sub("db");
  std::filesystem::create_directories(db);
  {
    InfoLog log(fs, db, 1 << 20, 2);
    rocksdb::Log(&log, "before %d", 1);
    fs->set_disk_full(true);
    for (int i = 0; i < 3; ++i) rocksdb::Log(&log, "during %d", i);
    EXPECT_EQ(log.lines_lost(), 3u);
    fs->set_disk_full(false);
    rocksdb::Log(&log, "after %d\n", 2);  // a message's own newline is not doubled
  }
  const std::string text = FileText(db + "/LOG");
  EXPECT_THAT(text, HasSubstr(" before 1\n"));
  EXPECT_THAT(text, HasSubstr(" after 2\n"));
  EXPECT_THAT(text, Not(HasSubstr("\n\n")));
  EXPECT_THAT(text, Not(HasSubstr("during")));
}

TEST(RocksDbInfoLog, EachStartAndEachFullFileRollsOverKeepingAFew) {
  TempDir dir;
  const std::string db = dir.Sub("db");
  std::filesystem::create_directories(db);
  std::ofstream(db + "/LOG.old.1796567368067901") << "RocksDB's own naming";
  const std::shared_ptr<rocksdb::FileSystem> fs = rocksdb::FileSystem::Default();
  for (int start = 1; start <= 3; ++start) {
    InfoLog log(fs, db, 1 << 20, 2);
    rocksdb::Log(&log, "start %d", start);
  }
  { InfoLog failed_start(fs, db, 1 << 20, 2); }  // wrote nothing: rolls nothing away
  EXPECT_FALSE(std::filesystem::exists(db + "/LOG.old.1796567368067901"));
  EXPECT_FALSE(std::filesystem::exists(db + "/LOG.old.3"));
  EXPECT_THAT(FileText(db + "/LOG.old.1"), HasSubstr("start 3"));
  EXPECT_THAT(FileText(db + "/LOG.old.2"), HasSubstr("start 2"));

  InfoLog log(fs, db, 100, 2);
  for (int i = 0; i < 5; ++i) rocksdb::Log(&log, "line %d of a log that fills at 100 bytes", i);
  EXPECT_THAT(FileText(db + "/LOG"), HasSubstr("line 4"));
  // Two lines pass 100 bytes: lines 0-1, 2-3 and 4.
  EXPECT_THAT(FileText(db + "/LOG.old.1"), HasSubstr("line 3"));
  EXPECT_THAT(FileText(db + "/LOG.old.2"), HasSubstr("line 1"));
  EXPECT_FALSE(std::filesystem::exists(db + "/LOG.old.3"));
}

// --- error mapping ----------------------------------------------------------

TEST(FromRocksDbStatus, MapsEveryKindToAnActionableStatus) {
  const std::string path = "/var/lib/dynamo";
  EXPECT_OK(FromRocksDbStatus(rocksdb::Status::OK(), "put", path));

  absl::Status s = FromRocksDbStatus(rocksdb::Status::NoSpace("write failed"), "put", path);
  EXPECT_TRUE(absl::IsResourceExhausted(s)) << s;
  EXPECT_THAT(Message(s), HasSubstr("disk full"));
  EXPECT_THAT(Message(s), HasSubstr(path));
  EXPECT_THAT(Message(s), HasSubstr("write failed"));  // RocksDB's own words are kept
  EXPECT_TRUE(
      absl::IsResourceExhausted(FromRocksDbStatus(rocksdb::Status::SpaceLimit(), "put", path)));

  s = FromRocksDbStatus(rocksdb::Status::Corruption("block checksum mismatch"), "get", path);
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
  EXPECT_THAT(Message(s), HasSubstr(path));
  EXPECT_THAT(Message(s), HasSubstr("block checksum mismatch"));
  EXPECT_THAT(Message(s), HasSubstr("replicas"));

  s = FromRocksDbStatus(rocksdb::Status::IOError("read error"), "get", path);
  EXPECT_TRUE(absl::IsUnavailable(s)) << s;
  EXPECT_THAT(Message(s), HasSubstr(path));
  EXPECT_THAT(Message(s), HasSubstr("get"));

  EXPECT_TRUE(absl::IsUnavailable(FromRocksDbStatus(rocksdb::Status::Busy(), "put", path)));
  EXPECT_TRUE(absl::IsUnavailable(FromRocksDbStatus(rocksdb::Status::TryAgain(), "put", path)));
  EXPECT_TRUE(absl::IsUnavailable(FromRocksDbStatus(rocksdb::Status::TimedOut(), "put", path)));
  EXPECT_TRUE(
      absl::IsUnavailable(FromRocksDbStatus(rocksdb::Status::ShutdownInProgress(), "put", path)));

  // NotFound is Get's alone; elsewhere it is a bug, as is everything else.
  EXPECT_TRUE(absl::IsInternal(FromRocksDbStatus(rocksdb::Status::NotFound(), "scan", path)));
  EXPECT_TRUE(
      absl::IsInternal(FromRocksDbStatus(rocksdb::Status::InvalidArgument("bad"), "put", path)));
  EXPECT_TRUE(absl::IsInternal(FromRocksDbStatus(rocksdb::Status::NotSupported(), "put", path)));
  EXPECT_TRUE(absl::IsInternal(FromRocksDbStatus(rocksdb::Status::Aborted(), "put", path)));
}

}  // namespace
}  // namespace dynamo::storage
