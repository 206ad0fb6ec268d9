#include "faults.h"

#include <set>
#include <vector>

#include "absl/strings/str_cat.h"

namespace dynamo::sim {

FaultCounts InjectRandomFaults(Simulation& sim, int64_t duration_ms, size_t max_down) {
  FaultCounts f;
  core::Random& rng = sim.rng();
  const int64_t end = sim.now() + duration_ms;
  while (sim.now() < end) {
    std::vector<size_t> up, down;
    for (size_t i = 0; i < sim.size(); ++i) (sim.up(i) ? up : down).push_back(i);
    switch (rng.Uniform(8)) {
      case 0:
        if (down.size() < max_down) {
          sim.Crash(up[rng.Uniform(up.size())]);
          ++f.crashes;
        }
        break;
      case 1:
        if (down.size() < max_down) {
          sim.PowerLoss(up[rng.Uniform(up.size())]);
          ++f.power_losses;
        }
        break;
      case 2:
        if (!down.empty()) {
          sim.Restart(down[rng.Uniform(down.size())]);
          ++f.restarts;
        }
        break;
      case 3: {
        std::set<size_t> a, b;
        for (size_t i = 0; i < sim.size(); ++i) (rng.Chance(0.5) ? a : b).insert(i);
        sim.Partition({a, b});
        ++f.partitions;
        break;
      }
      case 4:
        sim.Heal();
        sim.Log("heal");
        ++f.heals;
        break;
      case 5: {
        NetworkFaults n;
        n.drop_probability = rng.Unit() * 0.1;
        n.delay_min_ms = 1;
        n.delay_max_ms = rng.Between(2, 120);
        sim.SetNetwork(n);
        sim.Log(absl::StrCat("network: drop ", n.drop_probability, ", delay 1..", n.delay_max_ms,
                             " ms"));
        ++f.network_changes;
        break;
      }
      case 6: {
        const size_t i = rng.Uniform(sim.size());
        const int64_t skew = rng.Between(-3000, 3000);
        sim.SetSkew(i, skew);
        sim.Log(absl::StrCat("clock of ", sim.id(i), " skewed by ", skew, " ms"));
        ++f.skews;
        break;
      }
      case 7: {  // one failing disk at a time, until it is chosen again
        const size_t i = rng.Uniform(sim.size());
        bool another = false;
        for (size_t j = 0; j < sim.size(); ++j) another |= j != i && sim.disk_failing(j);
        if (another) break;
        sim.SetDiskFailing(i, !sim.disk_failing(i));
        f.disk_failures += sim.disk_failing(i);
        break;
      }
    }
    sim.RunFor(rng.Between(100, 1500));
  }
  return f;
}

void HealEverything(Simulation& sim) {
  sim.Heal();
  sim.SetNetwork(NetworkFaults{});
  for (size_t i = 0; i < sim.size(); ++i) {
    if (sim.disk_failing(i)) sim.SetDiskFailing(i, false);
    sim.Restart(i);
  }
  sim.Log("faults over: network healed, disks working, every node running");
}

}  // namespace dynamo::sim
