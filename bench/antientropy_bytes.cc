// antientropy_bytes: the bytes anti-entropy moves to repair one differing key
// among many, counted on the node-to-node messages of real core::Node
// instances (the protocol the servers run), in one process over in-memory
// storage and an instant, lossless network.
//
// Three nodes (N=3, so every node replicates every range) are loaded with
// --keys keys through ordinary coordinated puts. Then one key is written at
// one node only (a put with n=1, w=1 at the key's first owner), and time runs
// until anti-entropy has repaired both other replicas. Every envelope is
// counted by type with its protobuf size; gRPC/HTTP2 framing adds roughly
// 100 bytes per RPC (length prefixes, frame headers, HPACK-compressed
// headers), which the report adds as an estimate.
//
// usage: antientropy_bytes [--keys=1000000] [--value-bytes=16] [--partitions=256]
//                          [--merkle-branching=16] [--merkle-depth=2]

#include <cstdio>
#include <cstdlib>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core_cluster.h"
#include "flags.h"
#include "dynamo/core/hash.h"
#include "dynamo/core/node.h"
#include "dynamo/storage/memory_engine.h"

namespace {

using dynamo::core::NodeConfig;
using Cluster = dynamo::bench::CoreCluster;
using dynamo::bench::Flag;
using dynamo::bench::Key;
namespace v1 = dynamo::v1;

constexpr int64_t kRpcOverheadBytes = 100;  // estimate: gRPC + HTTP/2 framing per round trip

struct Tally {
  uint64_t messages = 0;
  uint64_t bytes = 0;
};

dynamo::core::ClientRequest Put(const std::string& key, std::string value, uint32_t n = 0,
                                uint32_t w = 0) {
  v1::PutRequest p;
  p.set_key(key);
  p.set_value(std::move(value));
  if (n > 0) {
    p.mutable_quorum()->set_n(n);
    p.mutable_quorum()->set_r(1);
    p.mutable_quorum()->set_w(w);
  }
  return {std::move(p), 0};
}

// Ranges whose trees differ between any two nodes.
size_t DifferingRanges(Cluster& c) {
  size_t differing = 0;
  const auto& s0 = c.node(0).store();
  for (size_t r = 0; r < s0.range_count(); ++r) {
    for (size_t i = 1; i < c.size(); ++i) {
      const auto& si = c.node(i).store();
      auto j = si.FindRange(s0.range(r));
      if (!j || si.tree(*j).Root() != s0.tree(r).Root()) {
        ++differing;
        break;
      }
    }
  }
  return differing;
}

void Report(std::map<std::string, Tally>& tally, const char* title) {
  uint64_t ae_bytes = 0, ae_rpcs = 0, gossip_bytes = 0;
  std::printf("%s\n  %-20s %9s %12s\n", title, "message", "count", "bytes");
  for (const auto& [kind, t] : tally) {
    std::printf("  %-20s %9llu %12llu\n", kind.c_str(), static_cast<unsigned long long>(t.messages),
                static_cast<unsigned long long>(t.bytes));
    if (kind.rfind("gossip", 0) == 0) {
      gossip_bytes += t.bytes;
    } else {
      ae_bytes += t.bytes;
      if (kind.find("reply") == std::string::npos && kind.find("ack") == std::string::npos) {
        ae_rpcs += t.messages;
      }
    }
  }
  std::printf("  anti-entropy payload: %llu bytes in %llu RPCs; with ~%lld bytes of gRPC/HTTP2 "
              "framing per RPC: ~%llu bytes (%.1f KiB); gossip meanwhile: %llu bytes\n",
              static_cast<unsigned long long>(ae_bytes), static_cast<unsigned long long>(ae_rpcs),
              static_cast<long long>(kRpcOverheadBytes),
              static_cast<unsigned long long>(ae_bytes + ae_rpcs * kRpcOverheadBytes),
              static_cast<double>(ae_bytes + ae_rpcs * kRpcOverheadBytes) / 1024.0,
              static_cast<unsigned long long>(gossip_bytes));
}

}  // namespace

int main(int argc, char** argv) {
  const uint64_t keys = static_cast<uint64_t>(Flag(argc, argv, "keys", 1000000));
  const size_t value_bytes = static_cast<size_t>(Flag(argc, argv, "value-bytes", 16));
  NodeConfig base;
  base.replicas_n = 3;
  base.read_quorum_r = 2;
  base.write_quorum_w = 2;
  base.ring.partitions = static_cast<uint32_t>(Flag(argc, argv, "partitions", 256));
  base.merkle.branching = static_cast<uint32_t>(Flag(argc, argv, "merkle-branching", 16));
  base.merkle.depth = static_cast<uint32_t>(Flag(argc, argv, "merkle-depth", 2));
  base.gossip_interval_ms = 1000;
  base.antientropy_interval_ms = 5000;
  base.request_timeout_ms = 100000;  // time stands still while loading
  base.background_bytes_per_s = 1 << 30;

  Cluster c(3, base, [](size_t) { return std::make_unique<dynamo::storage::MemoryEngine>(); });
  std::map<std::string, Tally> tally;
  bool counting = false;
  c.set_observer([&](const dynamo::core::OutMessage& m) {
    if (!counting) return;
    const auto* field = v1::Envelope::GetDescriptor()->FindFieldByNumber(
        static_cast<int>(m.envelope.body_case()));
    Tally& t = tally[field != nullptr ? std::string(field->name()) : "empty"];
    ++t.messages;
    t.bytes += m.envelope.ByteSizeLong();
  });
  c.FormRing();
  c.Advance(3000);
  std::printf("antientropy_bytes: 3 nodes, N=3, Q=%u partitions, Merkle %ux%u per range; "
              "ring v%llu with %zu nodes\n",
              base.ring.partitions, base.merkle.branching, base.merkle.depth,
              static_cast<unsigned long long>(c.node(0).membership().ring_state().version()),
              c.node(0).membership().ring().nodes().size());

  std::string filler(value_bytes, 'v');
  for (uint64_t k = 0; k < keys; ++k) {
    c.Client(k % 3, Put(Key(k), filler));
    if (k % 1000 == 999) c.Drain();
    if (k % 100000 == 99999) {
      std::fprintf(stderr, "  loaded %llu keys\n", static_cast<unsigned long long>(k + 1));
    }
  }
  c.Drain();
  std::printf("loaded %llu keys of %zu-byte values (client errors: %llu); keys per node: %llu %llu "
              "%llu; differing ranges: %zu\n",
              static_cast<unsigned long long>(keys), value_bytes,
              static_cast<unsigned long long>(c.client_errors()),
              static_cast<unsigned long long>(c.node(0).store().total_keys()),
              static_cast<unsigned long long>(c.node(1).store().total_keys()),
              static_cast<unsigned long long>(c.node(2).store().total_keys()),
              DifferingRanges(c));

  // A round of anti-entropy between replicas that agree: what each round costs anyway.
  counting = true;
  const uint64_t ex0 = c.node(0).counters().antientropy_exchanges +
                       c.node(1).counters().antientropy_exchanges +
                       c.node(2).counters().antientropy_exchanges;
  c.Advance(base.antientropy_interval_ms + 100);
  const uint64_t ex1 = c.node(0).counters().antientropy_exchanges +
                       c.node(1).counters().antientropy_exchanges +
                       c.node(2).counters().antientropy_exchanges;
  Report(tally, "\nidle: one anti-entropy interval with nothing to repair");
  std::printf("  exchanges completed: %llu\n", static_cast<unsigned long long>(ex1 - ex0));
  tally.clear();

  // One key written at its first owner only.
  std::string key;
  for (uint64_t k = keys;; ++k) {
    key = Key(k);
    auto prefs = c.node(0).membership().ring().PreferenceList(dynamo::core::KeyPosition(key), 1);
    if (!prefs.empty() && prefs[0] == "n0") break;
  }
  c.Client(0, Put(key, std::string(1024, 'd'), /*n=*/1, /*w=*/1));
  c.Drain();
  std::printf("\nwrote key %s (1 KiB) at n0 only; differing ranges now: %zu\n", key.c_str(),
              DifferingRanges(c));
  const uint64_t repaired0 = c.node(0).counters().antientropy_keys_repaired +
                             c.node(1).counters().antientropy_keys_repaired +
                             c.node(2).counters().antientropy_keys_repaired;
  const int64_t start = c.now();
  int64_t waited = 0;
  while (DifferingRanges(c) > 0 && waited < 120000) {
    c.Advance(100);
    waited += 100;
  }
  const uint64_t repaired1 = c.node(0).counters().antientropy_keys_repaired +
                             c.node(1).counters().antientropy_keys_repaired +
                             c.node(2).counters().antientropy_keys_repaired;
  Report(tally, "repair: from the write until every replica agrees");
  std::printf("  converged after %.1f s of simulated time; keys repaired %llu; differing ranges "
              "%zu\n",
              static_cast<double>(c.now() - start) / 1000.0,
              static_cast<unsigned long long>(repaired1 - repaired0), DifferingRanges(c));
  return DifferingRanges(c) == 0 ? 0 : 1;
}
