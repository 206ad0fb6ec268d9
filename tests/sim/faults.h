#pragma once

// The random fault schedule shared by the scenario tests and dynamo-sim.

#include <cstddef>
#include <cstdint>

#include "simulation.h"

namespace dynamo::sim {

struct FaultCounts {
  int crashes = 0, power_losses = 0, restarts = 0, partitions = 0, heals = 0;
  int network_changes = 0, skews = 0, disk_failures = 0;
};

// For duration_ms: crashes and power losses (at most max_down nodes down at
// once), restarts, random two-way partitions, heals, message loss up to 10%
// with delays up to 120 ms, clock skew up to 3 s, and a node's disk whose
// syncs fail for a while, at random intervals.
FaultCounts InjectRandomFaults(Simulation& sim, int64_t duration_ms, size_t max_down);

// Ends every fault: network healed and clean, disks working, every node running.
void HealEverything(Simulation& sim);

}  // namespace dynamo::sim
