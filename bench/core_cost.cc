// core_cost: what the core and its storage cost per operation as the number
// of keys grows, without the network. Three real core::Node (N=3, R=2, W=2)
// in one thread, each over its own RocksDB engine with dynamo-node's default
// options (or in memory), joined by CoreCluster's instant network: the CPU a
// cluster of dynamo-node spends in its event loops and storage, minus gRPC.
//
// Loads --keys keys of --value-bytes (default 1 KiB) through coordinated puts,
// then runs --ops operations of workload A (50% reads, 50% updates with the
// context of the key's last read or write, as dynamo-bench does), keys
// uniform, --concurrency requests handed to the coordinators before the
// messages are delivered, 10 ms of node time (ticks: gossip, anti-entropy,
// hints) per batch. Prints CPU microseconds per operation: the thread's own
// (the three event loops' share) and the whole process's (adds RocksDB's
// flushes and compactions). Run it once per key count to see the growth:
//
//   core_cost --keys=10000  &&  core_cost --keys=1000000
//
// usage: core_cost [--keys=1000000] [--ops=200000] [--value-bytes=1024]
//                  [--concurrency=32] [--engine=rocksdb|memory] [--dir=DIR]
//                  [--memtable-mib=16] [--block-cache-mib=64] [--seed=1]

#include <sys/resource.h>
#include <time.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "core_cluster.h"
#include "flags.h"
#include "dynamo/core/hash.h"
#include "dynamo/core/random.h"
#include "dynamo/storage/memory_engine.h"
#include "dynamo/storage/rocksdb_engine.h"

namespace {

namespace v1 = dynamo::v1;
using dynamo::bench::CoreCluster;
using dynamo::bench::Flag;
using dynamo::bench::Key;
using dynamo::core::ClientReply;
using dynamo::core::ClientRequest;

// CPU seconds: this thread's, and the process's (every thread).
double ThreadCpu() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}
double ProcessCpu() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}
double WallSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

struct Meter {
  double thread = ThreadCpu(), process = ProcessCpu(), wall = WallSeconds();
  void Print(const char* phase, uint64_t ops) const {
    const double n = static_cast<double>(ops);
    std::printf("  %-8s %9llu ops  loop CPU %7.1f us/op  process CPU %7.1f us/op  wall %6.1f s\n",
                phase, static_cast<unsigned long long>(ops), (ThreadCpu() - thread) * 1e6 / n,
                (ProcessCpu() - process) * 1e6 / n, WallSeconds() - wall);
  }
};

}  // namespace

int main(int argc, char** argv) {
  const uint64_t keys = static_cast<uint64_t>(Flag(argc, argv, "keys", 1000000L));
  const uint64_t ops = static_cast<uint64_t>(Flag(argc, argv, "ops", 200000L));
  const size_t value_bytes = static_cast<size_t>(Flag(argc, argv, "value-bytes", 1024L));
  const size_t concurrency = static_cast<size_t>(Flag(argc, argv, "concurrency", 32L));
  const std::string engine = Flag(argc, argv, "engine", std::string("rocksdb"));
  const uint64_t seed = static_cast<uint64_t>(Flag(argc, argv, "seed", 1L));
  if (keys == 0 || ops == 0 || concurrency == 0 || (engine != "rocksdb" && engine != "memory")) {
    std::fprintf(stderr, "core_cost: --keys, --ops and --concurrency must be > 0 and --engine "
                         "rocksdb or memory\n");
    return 2;
  }
  dynamo::storage::RocksDbOptions rocks;  // dynamo-node's defaults
  rocks.durability = dynamo::storage::RocksDbOptions::Durability::kBuffered;
  rocks.memtable_bytes = static_cast<size_t>(Flag(argc, argv, "memtable-mib", 16L)) << 20;
  rocks.block_cache_bytes = static_cast<size_t>(Flag(argc, argv, "block-cache-mib", 64L)) << 20;
  std::string dir = Flag(argc, argv, "dir", std::string());
  const bool own_dir = dir.empty();
  if (own_dir && engine == "rocksdb") {
    std::string tmpl = (std::filesystem::temp_directory_path() / "core_cost.XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) {
      std::perror("core_cost: mkdtemp");
      return 1;
    }
    dir = tmpl;
  }

  dynamo::core::NodeConfig base;
  base.replicas_n = 3;
  base.read_quorum_r = 2;
  base.write_quorum_w = 2;
  int rc = 0;
  {
    CoreCluster c(3, base, [&](size_t i) -> std::unique_ptr<dynamo::storage::StorageEngine> {
      if (engine == "memory") return std::make_unique<dynamo::storage::MemoryEngine>();
      dynamo::storage::RocksDbOptions o = rocks;
      o.path = dir + "/n" + std::to_string(i);
      auto e = dynamo::storage::RocksDbEngine::Open(o);
      if (!e.ok()) {
        std::fprintf(stderr, "core_cost: %s\n", std::string(e.status().message()).c_str());
        std::exit(1);
      }
      return *std::move(e);
    });
    if (!c.FormRing()) {
      std::fprintf(stderr, "core_cost: the three nodes formed no ring\n");
      return 1;
    }
    std::printf("core_cost: 3 nodes (N=3 R=2 W=2), %s engine%s, %llu keys of %zu bytes, "
                "workload A, uniform keys, %zu requests per batch\n",
                engine.c_str(), engine == "rocksdb" ? " (buffered, dynamo-node's options)" : "",
                static_cast<unsigned long long>(keys), value_bytes, concurrency);

    // The context each key's last answer carried, by key index.
    std::vector<std::string> contexts(keys);
    std::vector<uint64_t> key_of_request;  // client id - first id -> key index
    uint64_t first_id = 0;
    c.set_reply_handler([&](const ClientReply& r) {
      const uint64_t k = key_of_request[r.client_id - first_id];
      if (const auto* g = std::get_if<v1::GetResponse>(&r.response)) contexts[k] = g->context();
      if (const auto* p = std::get_if<v1::PutResponse>(&r.response)) contexts[k] = p->context();
    });
    const std::string value(value_bytes, 'v');
    const auto put = [&](uint64_t k) {
      v1::PutRequest p;
      p.set_key(Key(k));
      p.set_value(value);
      p.set_context(contexts[k]);
      return ClientRequest{std::move(p), 0};
    };
    const auto get = [&](uint64_t k) {
      v1::GetRequest g;
      g.set_key(Key(k));
      return ClientRequest{std::move(g), 0};
    };
    // Runs `count` operations, `concurrency` at a time through the three coordinators in turn.
    const auto run = [&](uint64_t count, const std::function<ClientRequest(uint64_t, uint64_t&)>& next) {
      for (uint64_t done = 0; done < count;) {
        for (size_t j = 0; j < concurrency && done < count; ++j, ++done) {
          uint64_t k = 0;
          ClientRequest request = next(done, k);
          const uint64_t id = c.Client(done % 3, std::move(request));
          if (first_id == 0) first_id = id;
          if (key_of_request.size() <= id - first_id) key_of_request.resize(id - first_id + 1);
          key_of_request[id - first_id] = k;
        }
        c.Drain();
        c.Advance(10);
      }
    };

    Meter load;
    run(keys, [&](uint64_t i, uint64_t& k) { k = i; return put(i); });
    load.Print("load", keys);
    dynamo::core::Random rng(seed);
    Meter a;
    run(ops, [&](uint64_t, uint64_t& k) {
      k = rng.Uniform(keys);
      return rng.Chance(0.5) ? get(k) : put(k);
    });
    a.Print("A", ops);
    std::printf("  client errors: %llu; keys per node: %llu %llu %llu\n",
                static_cast<unsigned long long>(c.client_errors()),
                static_cast<unsigned long long>(c.node(0).store().total_keys()),
                static_cast<unsigned long long>(c.node(1).store().total_keys()),
                static_cast<unsigned long long>(c.node(2).store().total_keys()));
    rc = c.client_errors() == 0 ? 0 : 1;
  }
  if (own_dir && !dir.empty()) std::filesystem::remove_all(dir);
  return rc;
}
