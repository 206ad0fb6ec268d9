// dynamo-sim: runs the cluster simulator on one scenario and tells what
// happened. Usage: dynamo-sim [--seed N] [--nodes N] [--fault-seconds N]

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "faults.h"
#include "simulation.h"
#include "workload.h"

namespace dynamo::sim {
namespace {

int Main(int argc, char** argv) {
  uint64_t seed = 1;
  size_t nodes = 5;
  int64_t fault_seconds = 30;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--seed") == 0) seed = std::strtoull(argv[i + 1], nullptr, 10);
    else if (std::strcmp(argv[i], "--nodes") == 0) nodes = std::strtoull(argv[i + 1], nullptr, 10);
    else if (std::strcmp(argv[i], "--fault-seconds") == 0) fault_seconds = std::atoll(argv[i + 1]);
    else {
      std::fprintf(stderr, "usage: dynamo-sim [--seed N] [--nodes N] [--fault-seconds N]\n");
      return 2;
    }
  }
  if (nodes < 3 || nodes > 64) {
    std::fprintf(stderr, "--nodes must be in 3..64\n");
    return 2;
  }
  Simulation sim(DefaultSimOptions(seed, nodes));
  std::printf("Simulating %zu Dynamo nodes (N=3, R=2, W=2) in one process, seed %llu.\n", nodes,
              static_cast<unsigned long long>(seed));
  if (!sim.FormCluster()) {
    std::printf("The cluster did not form.\n%s", sim.Trace(50).c_str());
    return 1;
  }
  std::printf("The ring formed after %.1f s of simulated time.\n", sim.now() / 1000.0);
  History history;
  Workload workload(sim, history, {});
  workload.Start();
  const FaultCounts f = InjectRandomFaults(sim, fault_seconds * 1000, 2);
  workload.Stop();
  std::printf(
      "For %lld s, 4 clients read and wrote 20 keys while the simulator injected %d crashes, %d "
      "power losses, %d restarts, %d partitions, %d changes of message loss and delay, %d "
      "clock skews and %d failing disks.\n",
      static_cast<long long>(fault_seconds), f.crashes, f.power_losses, f.restarts, f.partitions,
      f.network_changes, f.skews, f.disk_failures);
  HealEverything(sim);
  const int64_t healed = sim.now();
  std::string why;
  const bool converged = sim.RunUntil([&] { return Converged(sim, &why); }, 300000);
  core::NodeCounters total;
  for (size_t i = 0; i < sim.size(); ++i) {
    const core::NodeCounters& c = sim.node(i)->counters();
    total.hints_delivered += c.hints_delivered;
    total.hints_stored += c.hints_stored;
    total.read_repairs += c.read_repairs;
    total.antientropy_keys_repaired += c.antientropy_keys_repaired;
    total.antientropy_exchanges += c.antientropy_exchanges;
    total.quorum_failures += c.quorum_failures;
  }
  const CheckReport report = CheckHistory(history, sim);
  std::printf("Writes: %s.\n", report.Summary().c_str());
  std::printf("Reads: %llu answered; the most siblings one read returned was %llu.\n",
              static_cast<unsigned long long>(workload.reads_ok()),
              static_cast<unsigned long long>(workload.max_siblings_read()));
  std::printf("Requests refused for lack of a quorum (the client sees UNAVAILABLE): %llu.\n",
              static_cast<unsigned long long>(total.quorum_failures));
  std::printf(
      "Hinted handoff: %llu writes stored as hints on fallback nodes; %llu hinted keys "
      "delivered to their owners.\n",
              static_cast<unsigned long long>(total.hints_stored),
              static_cast<unsigned long long>(total.hints_delivered));
  std::printf("Repairs: %llu by read repair, %llu keys by Merkle anti-entropy (%llu exchanges).\n",
              static_cast<unsigned long long>(total.read_repairs),
              static_cast<unsigned long long>(total.antientropy_keys_repaired),
              static_cast<unsigned long long>(total.antientropy_exchanges));
  if (converged) {
    std::printf("After the faults ended, every replica held identical data %.1f s later.\n",
                (sim.now() - healed) / 1000.0);
  } else {
    std::printf("Replicas had NOT converged 300 s after the faults ended: %s\n", why.c_str());
  }
  const bool ok = converged && report.ok();
  std::printf("%s\n", ok ? "Verdict: no acknowledged write was lost, no value was invented, "
                           "nothing replaced came back."
                         : "Verdict: FAILED — see above.");
  if (!report.problems.empty()) std::printf("First problem: %s\n", report.problems[0].c_str());
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace dynamo::sim

int main(int argc, char** argv) { return dynamo::sim::Main(argc, argv); }
