// gossip_spread: how many gossip rounds a membership change takes to reach
// every one of S nodes, in the deterministic simulator (the real core, one
// process, simulated time). The change is a node's new virtual-node weight,
// which bumps the version of its gossiped state; a round is one gossip
// interval, in which every node sends its view to a random live peer (and
// now and then a seed) and merges the peer's view from the reply.
//
// The nodes form the membership only (auto-join off, no ring): what spreads
// is the same member state whatever the ring. Push-pull gossip to one random
// peer per round reaches everyone in about log2(S) + ln(S) rounds. With
// --join=1 they also join the ring first, which every gossip message carries
// too: what that adds to the bytes.
//
// usage: gossip_spread [--sizes=10,30,100,300,1000] [--seeds=3] [--interval-ms=1000] [--join=0]

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "flags.h"
#include "simulation.h"

namespace {

using dynamo::bench::Flag;

struct Spread {
  bool formed = false;
  double formed_s = 0;
  bool spread = false;
  double rounds = 0;
  uint64_t messages = 0;
  uint64_t bytes = 0;  // encoded messages, all kinds, during the spread
};

// Every node knows every other node (its member table has S entries).
bool AllKnowAll(dynamo::sim::Simulation& sim) {
  for (size_t i = 0; i < sim.size(); ++i) {
    if (sim.node(i)->membership().members().size() < sim.size()) return false;
  }
  return true;
}

size_t Seen(dynamo::sim::Simulation& sim, const std::string& id, uint64_t version) {
  size_t seen = 0;
  for (size_t i = 0; i < sim.size(); ++i) {
    const dynamo::v1::MemberState* m = sim.node(i)->membership().Find(id);
    if (m != nullptr && m->version() >= version) ++seen;
  }
  return seen;
}

Spread Measure(size_t nodes, uint64_t seed, int64_t interval_ms, bool join,
               std::vector<size_t>* curve) {
  dynamo::sim::SimOptions options = dynamo::sim::DefaultSimOptions(seed, nodes);
  options.node.auto_join = join;
  options.node.gossip_interval_ms = interval_ms;
  options.tick_ms = std::max<int64_t>(1, interval_ms / 20);
  options.trace_max = 16;
  dynamo::sim::Simulation sim(options);
  for (size_t i = 0; i < nodes; ++i) sim.Start(i);
  Spread out;
  // Learning the whole membership from one seed is itself a spread; wait for it.
  out.formed = sim.RunUntil([&] { return AllKnowAll(sim) && (!join || sim.AllInRing()); },
                            600 * interval_ms);
  out.formed_s = static_cast<double>(sim.now()) / 1000.0;
  if (!out.formed) return out;
  sim.RunFor(3 * interval_ms);  // settle: the failure detectors see everyone alive

  // The change, at a node that is not the seed.
  const size_t changer = nodes - 1;
  dynamo::core::Node* node = sim.node(changer);
  dynamo::core::Outputs ignored;
  const uint32_t vnodes = node->membership().self().vnodes() + 1;
  (void)node->SetVirtualNodes(vnodes, sim.now(), &ignored);
  const uint64_t version = node->membership().self().version();
  const std::string id = sim.id(changer);
  const int64_t start = sim.now();
  const uint64_t sent0 = sim.messages_sent();
  const uint64_t bytes0 = sim.bytes_sent();
  const int64_t step = std::max<int64_t>(1, interval_ms / 10);
  curve->clear();
  int64_t next_round = start + interval_ms;
  for (int64_t limit = start + 200 * interval_ms; sim.now() < limit;) {
    sim.RunFor(step);
    if (sim.now() >= next_round) {
      curve->push_back(Seen(sim, id, version));
      next_round += interval_ms;
    }
    if (Seen(sim, id, version) == nodes) {
      out.spread = true;
      break;
    }
  }
  out.rounds = static_cast<double>(sim.now() - start) / static_cast<double>(interval_ms);
  out.messages = sim.messages_sent() - sent0;
  out.bytes = sim.bytes_sent() - bytes0;
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<size_t> sizes;
  {
    std::string list = Flag(argc, argv, "sizes", "10,30,100,300,1000");
    size_t at = 0;
    while (at < list.size()) {
      size_t comma = list.find(',', at);
      if (comma == std::string::npos) comma = list.size();
      sizes.push_back(std::strtoul(list.substr(at, comma - at).c_str(), nullptr, 10));
      at = comma + 1;
    }
  }
  const int seeds = std::atoi(Flag(argc, argv, "seeds", "3").c_str());
  const int64_t interval_ms = std::atoll(Flag(argc, argv, "interval-ms", "1000").c_str());
  const bool join = Flag(argc, argv, "join", "0") == "1";

  std::printf("gossip_spread: rounds (gossip intervals of %lld ms) for a member-state change to "
              "reach all S nodes; %d seeds per size; %s\n",
              static_cast<long long>(interval_ms), seeds,
              join ? "nodes in the ring (gossip carries it)" : "membership only, no ring");
  std::printf("%6s %8s %8s %8s %8s %10s %12s %13s %12s  %s\n", "S", "log2(S)", "min", "mean",
              "max", "mean/log2", "msgs/node/rd", "KiB/node/rd", "formed (s)",
              "nodes reached after each round (seed 1)");
  for (size_t s : sizes) {
    double sum = 0, lo = 1e9, hi = 0, formed = 0, msgs = 0, kib = 0;
    int done = 0;
    std::vector<size_t> first_curve;
    for (int k = 1; k <= seeds; ++k) {
      std::vector<size_t> curve;
      const Spread r = Measure(s, static_cast<uint64_t>(k), interval_ms, join, &curve);
      if (!r.formed || !r.spread) {
        std::printf("%6zu seed %d: %s\n", s, k,
                    !r.formed ? "membership never formed" : "change did not reach everyone");
        continue;
      }
      if (k == 1) first_curve = curve;
      ++done;
      sum += r.rounds;
      lo = std::min(lo, r.rounds);
      hi = std::max(hi, r.rounds);
      formed += r.formed_s;
      msgs += static_cast<double>(r.messages) / (r.rounds * static_cast<double>(s));
      kib += static_cast<double>(r.bytes) / 1024.0 / (r.rounds * static_cast<double>(s));
    }
    if (done == 0) continue;
    const double mean = sum / done;
    std::string curve_text;
    for (size_t c : first_curve) curve_text += std::to_string(c) + " ";
    std::printf("%6zu %8.2f %8.1f %8.1f %8.1f %10.2f %12.2f %13.1f %12.1f  %s\n", s,
                std::log2(static_cast<double>(s)), lo, mean, hi,
                mean / std::log2(static_cast<double>(s)), msgs / done, kib / done, formed / done,
                curve_text.c_str());
    std::fflush(stdout);
  }
  return 0;
}
