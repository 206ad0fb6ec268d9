#pragma once

// Simulated application clients and the cluster-wide checks the scenarios use.

#include <map>
#include <string>
#include <vector>

#include "history.h"
#include "simulation.h"

namespace dynamo::sim {

struct WorkloadOptions {
  size_t keys = 20;
  size_t clients = 4;
  double blind_write_fraction = 0.2;  // writes without reading first
  double delete_fraction = 0.1;       // of the writes after a read: deletes with its context
  int64_t think_ms_min = 20;
  int64_t think_ms_max = 200;
};

// Clients that read a key and write a unique value with the read's context
// (read-modify-write) or delete it with that context, or now and then write
// blind. Every write, delete and acknowledgement goes into the History.
class Workload {
 public:
  Workload(Simulation& sim, History& history, WorkloadOptions options)
      : sim_(sim), history_(history), options_(options) {}
  void Start();
  void Stop() { stopped_ = true; }
  uint64_t reads_ok() const { return reads_ok_; }
  uint64_t max_siblings_read() const { return max_siblings_read_; }

 private:
  void Next(size_t client);
  size_t PickNode();
  void Write(size_t client, const std::string& key, const std::string& context,
             std::set<std::string> seen);

  Simulation& sim_;
  History& history_;
  WorkloadOptions options_;
  bool stopped_ = false;
  uint64_t next_value_ = 0;
  uint64_t reads_ok_ = 0;
  uint64_t max_siblings_read_ = 0;
};

// Every key's owners (by node 0's ring) hold identical objects, no other node
// holds it, no hints are left, and every node has the same ring.
bool Converged(Simulation& sim, std::string* why);

// For every key, the live versions (values) of the merge of everything any
// node holds.
std::map<std::string, std::vector<FinalVersion>> FinalVersions(Simulation& sim);
std::map<std::string, std::vector<std::string>> FinalValues(Simulation& sim);

// The history against the final state: nothing acknowledged lost, nothing
// invented, and nothing an acknowledged write or delete replaced come back.
CheckReport CheckHistory(const History& history, Simulation& sim);

}  // namespace dynamo::sim
