#pragma once

// What a benchmark run does: the operation mix (YCSB's core workloads and a
// few of our own), the keys and the values.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "dynamo/core/random.h"

namespace dynamo::bench {

enum class OpType : int { kRead = 0, kUpdate = 1, kInsert = 2, kReadModifyWrite = 3 };
inline constexpr int kOpTypes = 4;
const char* OpName(OpType op);

// Proportions of each operation in the run phase; they sum to 1.
struct WorkloadSpec {
  std::string name;
  double read = 0;
  double update = 0;
  double rmw = 0;
};

// a (50% read, 50% update), b (95/5), c (read only), write (update only),
// rmw (read-modify-write only: a read, then a write with the read's context),
// f (YCSB F: 50% read, 50% read-modify-write). InvalidArgument otherwise.
absl::StatusOr<WorkloadSpec> WorkloadByName(std::string_view name);
std::string WorkloadNames();

// Picks the next operation by the spec's proportions.
OpType ChooseOp(const WorkloadSpec& spec, core::Random& rng);

// The key of record `index`: "user" and a 64-bit mix of the index, so that
// consecutive records are not neighbours in ordered stores (YCSB hashes its
// insert order the same way). Unique per index.
std::string KeyName(uint64_t index);

// Values of a fixed size, different at every call (a counter in the first
// bytes, random printable filler after). Not thread-safe: one per thread.
class ValueMaker {
 public:
  ValueMaker(size_t bytes, uint64_t seed);
  std::string_view Next();

 private:
  std::string buffer_;
  uint64_t counter_ = 0;
};

}  // namespace dynamo::bench
