#include "workload.h"

#include <cstdio>

#include "dynamo/base/strings.h"
#include "dynamo/core/hash.h"

namespace dynamo::bench {

const char* OpName(OpType op) {
  switch (op) {
    case OpType::kRead:
      return "read";
    case OpType::kUpdate:
      return "update";
    case OpType::kInsert:
      return "insert";
    case OpType::kReadModifyWrite:
      return "rmw";
  }
  return "?";
}

absl::StatusOr<WorkloadSpec> WorkloadByName(std::string_view name) {
  if (name == "a") return WorkloadSpec{"a", 0.5, 0.5, 0};
  if (name == "b") return WorkloadSpec{"b", 0.95, 0.05, 0};
  if (name == "c") return WorkloadSpec{"c", 1.0, 0, 0};
  if (name == "write") return WorkloadSpec{"write", 0, 1.0, 0};
  if (name == "rmw") return WorkloadSpec{"rmw", 0, 0, 1.0};
  if (name == "f") return WorkloadSpec{"f", 0.5, 0, 0.5};
  return absl::InvalidArgumentError(
      Cat("unknown workload '", name, "': expected one of ", WorkloadNames()));
}

std::string WorkloadNames() { return "a, b, c, write, rmw, f"; }

OpType ChooseOp(const WorkloadSpec& spec, core::Random& rng) {
  const double u = rng.Unit();
  if (u < spec.read) return OpType::kRead;
  if (u < spec.read + spec.update) return OpType::kUpdate;
  if (spec.rmw > 0) return OpType::kReadModifyWrite;
  return spec.update > 0 ? OpType::kUpdate : OpType::kRead;
}

std::string KeyName(uint64_t index) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "user%016llx",
                static_cast<unsigned long long>(core::Mix64(index + 1)));
  return buf;
}

ValueMaker::ValueMaker(size_t bytes, uint64_t seed) : buffer_(bytes, 'x') {
  core::Random rng(seed);
  static constexpr char kAlphabet[] =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  for (char& c : buffer_) c = kAlphabet[rng.Uniform(sizeof kAlphabet - 1)];
}

std::string_view ValueMaker::Next() {
  ++counter_;
  // The counter in hex over the first bytes: every value differs.
  uint64_t c = counter_;
  for (size_t i = 0; i < buffer_.size() && i < 16; ++i) {
    buffer_[i] = "0123456789abcdef"[c & 15];
    c >>= 4;
  }
  return buffer_;
}

}  // namespace dynamo::bench
