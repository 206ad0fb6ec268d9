// The StorageEngine contract: one suite that every engine passes unchanged.

#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "dynamo/storage/engine.h"
#include "dynamo/storage/memory_engine.h"
#include "dynamo/storage/rocksdb_engine.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dynamo::storage {
namespace {

using namespace std::string_literals;  // "\x00"s keeps the NUL byte
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Pair;

::testing::AssertionResult IsOk(const absl::Status& status) {
  if (status.ok()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << status;
}
#define EXPECT_OK(expr) EXPECT_TRUE(IsOk(expr))
#define ASSERT_OK(expr) ASSERT_TRUE(IsOk(expr))

// Opens a fresh engine whose files, if any, go under dir.
struct EngineFactory {
  std::string name;
  std::function<absl::StatusOr<std::unique_ptr<StorageEngine>>(const std::string& dir)> open;
};

std::ostream& operator<<(std::ostream& os, const EngineFactory& factory) {
  return os << factory.name;
}

RocksDbOptions RocksOptions(const std::string& dir, RocksDbOptions::Durability durability) {
  RocksDbOptions options;
  options.path = dir + "/db";
  options.durability = durability;
  options.block_cache_bytes = 8 << 20;
  return options;
}

using KeyValues = std::vector<std::pair<std::string, std::string>>;

class EngineContractTest : public ::testing::TestWithParam<EngineFactory> {
 protected:
  void SetUp() override {
    std::string pattern = (std::filesystem::temp_directory_path() / "dynamo-contract-XXXXXX");
    ASSERT_NE(mkdtemp(pattern.data()), nullptr) << "mkdtemp " << pattern;
    dir_ = pattern;
    absl::StatusOr<std::unique_ptr<StorageEngine>> engine = GetParam().open(dir_);
    ASSERT_TRUE(engine.ok()) << engine.status();
    engine_ = std::move(*engine);
  }

  void TearDown() override {
    engine_.reset();
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  // The value of key, or nullopt if it is absent; other errors fail the test.
  std::optional<std::string> Read(Space space, std::string_view key) {
    absl::StatusOr<std::string> value = engine_->Get(space, key);
    if (absl::IsNotFound(value.status())) return std::nullopt;
    EXPECT_TRUE(value.ok()) << value.status();
    if (!value.ok()) return std::nullopt;
    return *value;
  }

  KeyValues ScanRange(Space space, std::string_view begin, std::string_view end,
                      size_t limit = SIZE_MAX) {
    KeyValues seen;
    EXPECT_OK(engine_->Scan(space, begin, end, [&](std::string_view key, std::string_view value) {
      seen.emplace_back(key, value);
      return seen.size() < limit;
    }));
    return seen;
  }

  KeyValues ScanAll(Space space) { return ScanRange(space, "", ""); }

  std::string dir_;
  std::unique_ptr<StorageEngine> engine_;
};

TEST_P(EngineContractTest, PutThenGetThenDelete) {
  EXPECT_EQ(Read(Space::kData, "apple"), std::nullopt);
  EXPECT_OK(engine_->Put(Space::kData, "apple", "red"));
  EXPECT_EQ(Read(Space::kData, "apple"), "red");
  EXPECT_OK(engine_->Delete(Space::kData, "apple"));
  EXPECT_EQ(Read(Space::kData, "apple"), std::nullopt);
}

TEST_P(EngineContractTest, OverwriteReplacesTheValue) {
  EXPECT_OK(engine_->Put(Space::kData, "k", "first, and longer than the second"));
  EXPECT_OK(engine_->Put(Space::kData, "k", "second"));
  EXPECT_EQ(Read(Space::kData, "k"), "second");
  EXPECT_OK(engine_->Put(Space::kData, "k", ""));
  EXPECT_EQ(Read(Space::kData, "k"), "");
  EXPECT_THAT(ScanAll(Space::kData), ElementsAre(Pair("k", "")));
}

TEST_P(EngineContractTest, NotFoundOnlyForAbsentKeys) {
  absl::StatusOr<std::string> missing = engine_->Get(Space::kData, "nobody");
  EXPECT_TRUE(absl::IsNotFound(missing.status())) << missing.status();
  // An empty value is a value, and an empty key is a key.
  EXPECT_OK(engine_->Put(Space::kData, "empty", ""));
  EXPECT_EQ(Read(Space::kData, "empty"), "");
  EXPECT_OK(engine_->Put(Space::kData, "", "empty key"));
  EXPECT_EQ(Read(Space::kData, ""), "empty key");
  // Deleting what is absent succeeds, alone or in a batch, and so does a scan
  // that finds nothing.
  EXPECT_OK(engine_->Delete(Space::kData, "nobody"));
  EXPECT_OK(engine_->Write({{Space::kHints, "nobody", "", true}}));
  EXPECT_OK(engine_->Scan(Space::kMeta, "a", "z", [](auto, auto) { return true; }));
  EXPECT_TRUE(absl::IsNotFound(engine_->Get(Space::kHints, "nobody").status()));
}

TEST_P(EngineContractTest, SpacesAreIndependent) {
  EXPECT_OK(engine_->Put(Space::kData, "k", "data"));
  EXPECT_OK(engine_->Put(Space::kHints, "k", "hint"));
  EXPECT_OK(engine_->Put(Space::kMeta, "k", "meta"));
  EXPECT_OK(engine_->Put(Space::kMeta, "only-meta", "m"));
  EXPECT_EQ(Read(Space::kData, "k"), "data");
  EXPECT_EQ(Read(Space::kHints, "k"), "hint");
  EXPECT_EQ(Read(Space::kMeta, "k"), "meta");
  EXPECT_EQ(Read(Space::kData, "only-meta"), std::nullopt);

  EXPECT_OK(engine_->Delete(Space::kHints, "k"));
  EXPECT_EQ(Read(Space::kHints, "k"), std::nullopt);
  EXPECT_EQ(Read(Space::kData, "k"), "data");
  EXPECT_EQ(Read(Space::kMeta, "k"), "meta");

  EXPECT_THAT(ScanAll(Space::kData), ElementsAre(Pair("k", "data")));
  EXPECT_THAT(ScanAll(Space::kHints), IsEmpty());
  EXPECT_THAT(ScanAll(Space::kMeta), ElementsAre(Pair("k", "meta"), Pair("only-meta", "m")));
}

TEST_P(EngineContractTest, InvalidSpaceIsRejected) {
  const Space bad = static_cast<Space>(kSpaceCount);
  EXPECT_TRUE(absl::IsInvalidArgument(engine_->Get(bad, "k").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(engine_->Put(bad, "k", "v")));
  EXPECT_TRUE(absl::IsInvalidArgument(engine_->Delete(bad, "k")));
  EXPECT_TRUE(absl::IsInvalidArgument(engine_->Scan(bad, "", "", [](auto, auto) { return true; })));
  // A batch with one bad operation applies none of them.
  EXPECT_TRUE(absl::IsInvalidArgument(
      engine_->Write({{Space::kData, "good", "v", false}, {bad, "k", "v", false}})));
  EXPECT_EQ(Read(Space::kData, "good"), std::nullopt);
}

TEST_P(EngineContractTest, ScanVisitsKeysInOrderWithinBounds) {
  // Inserted out of order on purpose.
  for (std::string key : {"d", "a", "c", "e", "b", "bb", "f"}) {
    EXPECT_OK(engine_->Put(Space::kData, key, "v" + key));
  }
  auto keys = [](const KeyValues& entries) {
    std::vector<std::string> out;
    for (const auto& entry : entries) out.push_back(entry.first);
    return out;
  };
  EXPECT_THAT(keys(ScanAll(Space::kData)), ElementsAre("a", "b", "bb", "c", "d", "e", "f"));
  EXPECT_THAT(ScanRange(Space::kData, "b", "d"),
              ElementsAre(Pair("b", "vb"), Pair("bb", "vbb"), Pair("c", "vc")));
  // begin is inclusive and need not exist; end is exclusive and need not exist.
  EXPECT_THAT(keys(ScanRange(Space::kData, "ba", "cc")), ElementsAre("bb", "c"));
  // An empty end means "to the end of the space".
  EXPECT_THAT(keys(ScanRange(Space::kData, "d", "")), ElementsAre("d", "e", "f"));
  EXPECT_THAT(keys(ScanRange(Space::kData, "", "b")), ElementsAre("a"));
  // Empty ranges: begin == end, begin > end, and ranges with no keys.
  EXPECT_THAT(ScanRange(Space::kData, "c", "c"), IsEmpty());
  EXPECT_THAT(ScanRange(Space::kData, "d", "b"), IsEmpty());
  EXPECT_THAT(ScanRange(Space::kData, "g", ""), IsEmpty());
  EXPECT_THAT(ScanRange(Space::kData, "bc", "bz"), IsEmpty());
  EXPECT_THAT(ScanRange(Space::kData, "", "a"), IsEmpty());
  // The visitor stops the scan by returning false.
  EXPECT_THAT(keys(ScanRange(Space::kData, "b", "", /*limit=*/2)), ElementsAre("b", "bb"));
  EXPECT_THAT(keys(ScanRange(Space::kData, "", "", /*limit=*/1)), ElementsAre("a"));
}

TEST_P(EngineContractTest, BinaryKeysOrderBytewise) {
  // Bytes compare as unsigned: 0x00 first, 0xff last, a prefix before its extensions.
  const std::vector<std::string> sorted = {
      ""s,         "\x00"s,   "\x00\x00"s, "\x00\xff"s, "\x01"s,        "a"s,
      "a\x00"s,    "a\x00z"s, "a\xff"s,    "b"s,        "\x7f"s,        "\x80"s,
      "\xfe\xff"s, "\xff"s,   "\xff\x00"s, "\xff\xff"s, "\xff\xff\xff"s};
  std::vector<std::string> shuffled = sorted;
  std::mt19937 random(7);
  std::shuffle(shuffled.begin(), shuffled.end(), random);
  for (const std::string& key : shuffled) {
    EXPECT_OK(engine_->Put(Space::kData, key, "value of " + key));
  }
  for (const std::string& key : sorted) EXPECT_EQ(Read(Space::kData, key), "value of " + key);

  std::vector<std::string> seen;
  for (const auto& [key, value] : ScanAll(Space::kData)) {
    EXPECT_EQ(value, "value of " + key);
    seen.push_back(key);
  }
  EXPECT_EQ(seen, sorted);

  // Bounds with NUL and 0xff bytes inside them.
  seen.clear();
  for (const auto& entry : ScanRange(Space::kData, "\x00"s, "\x01"s)) seen.push_back(entry.first);
  EXPECT_EQ(seen, (std::vector<std::string>{"\x00"s, "\x00\x00"s, "\x00\xff"s}));
  seen.clear();
  for (const auto& entry : ScanRange(Space::kData, "a\x00"s, "a\xff"s)) seen.push_back(entry.first);
  EXPECT_EQ(seen, (std::vector<std::string>{"a\x00"s, "a\x00z"s}));
  seen.clear();
  for (const auto& entry : ScanRange(Space::kData, "\xff"s, "")) seen.push_back(entry.first);
  EXPECT_EQ(seen, (std::vector<std::string>{"\xff"s, "\xff\x00"s, "\xff\xff"s, "\xff\xff\xff"s}));
  seen.clear();
  for (const auto& entry : ScanRange(Space::kData, "\xff\x00"s, "\xff\xff"s)) {
    seen.push_back(entry.first);
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"\xff\x00"s}));
  // A key that differs from another only after a NUL is a different key.
  EXPECT_OK(engine_->Delete(Space::kData, "a\x00"s));
  EXPECT_EQ(Read(Space::kData, "a"), "value of a");
  EXPECT_EQ(Read(Space::kData, "a\x00"s), std::nullopt);
  EXPECT_EQ(Read(Space::kData, "a\x00z"s), "value of a\x00z"s);
}

TEST_P(EngineContractTest, WriteAppliesAMixedBatch) {
  EXPECT_OK(engine_->Put(Space::kData, "old", "1"));
  EXPECT_OK(engine_->Put(Space::kHints, "hint-old", "2"));
  EXPECT_OK(engine_->Write({
      {Space::kData, "new", "3", false},
      {Space::kData, "old", "", true},
      {Space::kHints, "hint-old", "", true},
      {Space::kHints, "hint-new", "4", false},
      {Space::kMeta, "epoch", "5", false},
      // Later operations on the same key win.
      {Space::kData, "put-then-delete", "x", false},
      {Space::kData, "put-then-delete", "", true},
      {Space::kData, "delete-then-put", "", true},
      {Space::kData, "delete-then-put", "y", false},
      {Space::kData, "twice", "first", false},
      {Space::kData, "twice", "second", false},
  }));
  EXPECT_THAT(ScanAll(Space::kData),
              ElementsAre(Pair("delete-then-put", "y"), Pair("new", "3"), Pair("twice", "second")));
  EXPECT_THAT(ScanAll(Space::kHints), ElementsAre(Pair("hint-new", "4")));
  EXPECT_THAT(ScanAll(Space::kMeta), ElementsAre(Pair("epoch", "5")));
  EXPECT_OK(engine_->Write({}));
}

TEST_P(EngineContractTest, LargeValues) {
  constexpr size_t kValueBytes = 1 << 20;
  std::mt19937 random(42);
  auto random_value = [&] {
    std::string value(kValueBytes, '\0');
    for (char& c : value) c = static_cast<char>(random() & 0xff);  // includes NUL bytes
    return value;
  };
  std::vector<std::string> values;
  for (int i = 0; i < 4; ++i) values.push_back(random_value());
  EXPECT_OK(engine_->Put(Space::kData, "big-0", values[0]));
  EXPECT_OK(engine_->Put(Space::kData, "big-1", values[1]));
  EXPECT_OK(engine_->Write(
      {{Space::kHints, "big-2", values[2], false}, {Space::kMeta, "big-3", values[3], false}}));
  EXPECT_OK(engine_->Sync());
  // EXPECT_TRUE, not EXPECT_EQ: a failure should not print megabytes.
  EXPECT_TRUE(Read(Space::kData, "big-0") == values[0]);
  EXPECT_TRUE(Read(Space::kData, "big-1") == values[1]);
  EXPECT_TRUE(Read(Space::kHints, "big-2") == values[2]);
  EXPECT_TRUE(Read(Space::kMeta, "big-3") == values[3]);
  // Overwrite with a different large value, then with a small one.
  EXPECT_OK(engine_->Put(Space::kData, "big-0", values[3]));
  EXPECT_TRUE(Read(Space::kData, "big-0") == values[3]);
  EXPECT_OK(engine_->Put(Space::kData, "big-1", "small"));
  const KeyValues data = ScanAll(Space::kData);
  ASSERT_EQ(data.size(), 2u);
  EXPECT_TRUE(data[0].second == values[3]) << "scan returned a different value for big-0";
  EXPECT_EQ(data[1].second, "small");
}

TEST_P(EngineContractTest, ScanCrossesManyKeysAndTheVisitorMayWrite) {
  // More keys than an engine is likely to buffer per step of a scan.
  constexpr int kKeys = 1000;
  auto key = [](int i) {
    char buffer[16];
    snprintf(buffer, sizeof buffer, "key-%05d", i);
    return std::string(buffer);
  };
  for (int i = 0; i < kKeys; ++i) EXPECT_OK(engine_->Put(Space::kData, key(i), std::to_string(i)));
  EXPECT_EQ(ScanAll(Space::kData).size(), size_t{kKeys});
  EXPECT_EQ(ScanRange(Space::kData, key(100), key(900)).size(), 800u);
  EXPECT_EQ(ScanRange(Space::kData, key(0), "", 700).size(), 700u);

  // Handoff-style: move every key to another space from inside the visitor.
  int visited = 0;
  EXPECT_OK(engine_->Scan(Space::kData, "", "", [&](std::string_view k, std::string_view v) {
    EXPECT_OK(engine_->Put(Space::kHints, k, v));
    EXPECT_OK(engine_->Delete(Space::kData, k));
    ++visited;
    return true;
  }));
  EXPECT_EQ(visited, kKeys);
  EXPECT_THAT(ScanAll(Space::kData), IsEmpty());
  const KeyValues hints = ScanAll(Space::kHints);
  ASSERT_EQ(hints.size(), size_t{kKeys});
  for (int i = 0; i < kKeys; ++i) {
    EXPECT_EQ(hints[i].first, key(i));
    EXPECT_EQ(hints[i].second, std::to_string(i));
  }
}

TEST_P(EngineContractTest, ConcurrentWritersAndReadersLoseNothing) {
  constexpr int kWriters = 4;
  constexpr int kKeysPerWriter = 400;
  constexpr int kBatch = 8;
  auto key = [](int writer, int i) {
    return "w" + std::to_string(writer) + "-" + std::to_string(i);
  };
  auto value = [](std::string_view k) { return "value-of-" + std::string(k); };

  std::atomic<int> writers_running{kWriters};
  std::atomic<int> reader_failures{0};
  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&, w] {
      std::vector<WriteOp> batch;
      for (int i = 0; i < kKeysPerWriter; ++i) {
        const std::string k = key(w, i);
        if (i % 2 == 0) {
          EXPECT_OK(engine_->Put(Space::kData, k, value(k)));
        } else {
          batch.push_back({Space::kData, k, value(k), false});
          if (batch.size() == kBatch) {
            EXPECT_OK(engine_->Write(batch));
            batch.clear();
          }
        }
        // Every writer also fights over one hot key.
        EXPECT_OK(engine_->Put(Space::kMeta, "hot", "writer-" + std::to_string(w)));
        if (i % 100 == 0) {
          EXPECT_OK(engine_->Sync());
        }
      }
      EXPECT_OK(engine_->Write(batch));
      writers_running.fetch_sub(1);
    });
  }
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&, r] {
      std::mt19937 random(r);
      while (writers_running.load() > 0) {
        const std::string k = key(random() % kWriters, random() % kKeysPerWriter);
        absl::StatusOr<std::string> got = engine_->Get(Space::kData, k);
        if (got.ok() ? *got != value(k) : !absl::IsNotFound(got.status())) {
          reader_failures.fetch_add(1);
        }
        std::string previous;
        const absl::Status scanned =
            engine_->Scan(Space::kData, "", "", [&](std::string_view sk, std::string_view sv) {
              if (sv != value(sk) || (!previous.empty() && sk <= previous)) {
                reader_failures.fetch_add(1);
              }
              previous = std::string(sk);
              return true;
            });
        if (!scanned.ok()) reader_failures.fetch_add(1);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(reader_failures.load(), 0);
  EXPECT_OK(engine_->Sync());

  for (int w = 0; w < kWriters; ++w) {
    for (int i = 0; i < kKeysPerWriter; ++i) {
      const std::string k = key(w, i);
      EXPECT_EQ(Read(Space::kData, k), value(k)) << "lost write " << k;
    }
  }
  EXPECT_EQ(ScanAll(Space::kData).size(), size_t{kWriters * kKeysPerWriter});
  const std::optional<std::string> hot = Read(Space::kMeta, "hot");
  ASSERT_TRUE(hot.has_value());
  EXPECT_THAT(*hot, ::testing::MatchesRegex("writer-[0-3]"));
}

TEST_P(EngineContractTest, SyncIsCallableAnytime) {
  EXPECT_OK(engine_->Sync());  // nothing written yet
  EXPECT_OK(engine_->Sync());
  EXPECT_OK(engine_->Put(Space::kData, "k", "v"));
  EXPECT_OK(engine_->Sync());
  EXPECT_OK(engine_->Delete(Space::kData, "k"));
  EXPECT_OK(engine_->Write({{Space::kMeta, "m", "v", false}}));
  EXPECT_OK(engine_->Sync());
  // From several threads at once, with writes in between.
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20; ++i) {
        EXPECT_OK(engine_->Put(Space::kData, "t" + std::to_string(t), std::to_string(i)));
        EXPECT_OK(engine_->Sync());
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(Read(Space::kData, "t0"), "19");
  EXPECT_EQ(Read(Space::kMeta, "m"), "v");
}

TEST_P(EngineContractTest, DescribeSaysWhatItIs) { EXPECT_FALSE(engine_->Describe().empty()); }

INSTANTIATE_TEST_SUITE_P(
    Engines, EngineContractTest,
    ::testing::Values(
        EngineFactory{"Memory",
                      [](const std::string&) -> absl::StatusOr<std::unique_ptr<StorageEngine>> {
                        return NewMemoryEngine();
                      }},
        EngineFactory{"RocksDbDurable",
                      [](const std::string& dir) {
                        return OpenRocksDb(RocksOptions(dir, RocksDbOptions::Durability::kDurable));
                      }},
        EngineFactory{"RocksDbBuffered",
                      [](const std::string& dir) {
                        return OpenRocksDb(
                            RocksOptions(dir, RocksDbOptions::Durability::kBuffered));
                      }}),
    [](const ::testing::TestParamInfo<EngineFactory>& info) { return info.param.name; });

// --- MemoryEngine's test hooks (not part of the contract) ---------------------

TEST(MemoryEngine, ClearDropsEverySpace) {
  MemoryEngine engine;
  for (Space space : {Space::kData, Space::kHints, Space::kMeta}) {
    EXPECT_OK(engine.Put(space, "k", "v"));
  }
  engine.Clear();
  for (Space space : {Space::kData, Space::kHints, Space::kMeta}) {
    EXPECT_TRUE(absl::IsNotFound(engine.Get(space, "k").status()));
  }
  EXPECT_EQ(engine.UnsyncedWriteCount(), 0u);
  EXPECT_OK(engine.Put(Space::kData, "after", "v"));  // still usable
  EXPECT_EQ(engine.Get(Space::kData, "after").value_or(""), "v");
}

TEST(MemoryEngine, DropUnsyncedWritesRevertsToTheLastSync) {
  MemoryEngine engine;
  EXPECT_OK(engine.Put(Space::kData, "a", "1"));
  EXPECT_OK(engine.Put(Space::kMeta, "b", "2"));
  EXPECT_EQ(engine.UnsyncedWriteCount(), 2u);
  EXPECT_OK(engine.Sync());
  EXPECT_EQ(engine.UnsyncedWriteCount(), 0u);

  EXPECT_OK(engine.Put(Space::kData, "a", "3"));
  EXPECT_OK(engine.Put(Space::kData, "a", "4"));
  EXPECT_OK(engine.Delete(Space::kMeta, "b"));
  EXPECT_OK(engine.Put(Space::kData, "c", "5"));
  EXPECT_OK(engine.Write({{Space::kHints, "d", "6", false}, {Space::kData, "a", "", true}}));
  EXPECT_EQ(engine.UnsyncedWriteCount(), 6u);
  // What a crash would leave, without one.
  EXPECT_EQ(engine.DurableValue(Space::kData, "a"), "1");
  EXPECT_EQ(engine.DurableValue(Space::kMeta, "b"), "2");
  EXPECT_EQ(engine.DurableValue(Space::kData, "c"), std::nullopt);
  EXPECT_EQ(engine.DurableValue(Space::kHints, "d"), std::nullopt);
  EXPECT_THAT(engine.UnsyncedKeys(Space::kData), ElementsAre("a", "c"));
  EXPECT_THAT(engine.UnsyncedKeys(Space::kMeta), ElementsAre("b"));
  EXPECT_EQ(engine.Get(Space::kData, "c").value_or(""), "5");  // still there until the crash

  engine.DropUnsyncedWrites();
  EXPECT_EQ(engine.Get(Space::kData, "a").value_or(""), "1");
  EXPECT_EQ(engine.Get(Space::kMeta, "b").value_or(""), "2");
  EXPECT_TRUE(absl::IsNotFound(engine.Get(Space::kData, "c").status()));
  EXPECT_TRUE(absl::IsNotFound(engine.Get(Space::kHints, "d").status()));
  EXPECT_EQ(engine.UnsyncedWriteCount(), 0u);

  // A crash right after a Sync loses nothing.
  EXPECT_OK(engine.Put(Space::kData, "e", "7"));
  EXPECT_OK(engine.Sync());
  EXPECT_EQ(engine.DurableValue(Space::kData, "e"), "7");
  EXPECT_THAT(engine.UnsyncedKeys(Space::kData), IsEmpty());
  engine.DropUnsyncedWrites();
  EXPECT_EQ(engine.Get(Space::kData, "e").value_or(""), "7");
}

TEST(MemoryEngine, SyncOldestKeepsOnlyTheWritesBeforeTheSyncBegan) {
  MemoryEngine engine;
  EXPECT_OK(engine.Put(Space::kData, "a", "1"));
  EXPECT_OK(engine.Put(Space::kData, "a", "2"));
  const size_t before_the_sync = engine.UnsyncedWriteCount();
  EXPECT_OK(engine.Put(Space::kData, "a", "3"));  // while the sync runs
  EXPECT_OK(engine.Put(Space::kData, "b", "4"));
  EXPECT_OK(engine.SyncOldest(before_the_sync));
  EXPECT_EQ(engine.UnsyncedWriteCount(), 2u);
  engine.DropUnsyncedWrites();
  EXPECT_EQ(engine.Get(Space::kData, "a").value_or(""), "2");
  EXPECT_TRUE(absl::IsNotFound(engine.Get(Space::kData, "b").status()));
  EXPECT_OK(engine.SyncOldest(5));  // more than there are: all of them
  EXPECT_EQ(engine.UnsyncedWriteCount(), 0u);
}

TEST(MemoryEngine, ASyncOnAFailingDiskFailsAndACrashStillDropsTheWrites) {
  MemoryEngine engine;
  EXPECT_OK(engine.Put(Space::kData, "a", "1"));
  EXPECT_OK(engine.Sync());
  EXPECT_OK(engine.Put(Space::kData, "a", "2"));
  engine.set_syncs_fail(true);
  EXPECT_FALSE(engine.Sync().ok());
  EXPECT_FALSE(engine.SyncDurably().ok());
  EXPECT_FALSE(engine.SyncOldest(1).ok());
  EXPECT_EQ(engine.UnsyncedWriteCount(), 1u);
  engine.DropUnsyncedWrites();
  EXPECT_EQ(engine.Get(Space::kData, "a").value_or(""), "1");
  engine.set_syncs_fail(false);
  EXPECT_OK(engine.Put(Space::kData, "a", "3"));
  EXPECT_OK(engine.Sync());
  EXPECT_EQ(engine.DurableValue(Space::kData, "a"), "3");
}

TEST(MemoryEngine, DescribesItself) { EXPECT_EQ(NewMemoryEngine()->Describe(), "memory"); }

}  // namespace
}  // namespace dynamo::storage
