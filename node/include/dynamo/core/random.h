#pragma once

// The only source of randomness in the core. It is passed in, never global, so
// a simulation run seeded with the same number replays exactly.

#include <cstdint>

#include "dynamo/core/hash.h"

namespace dynamo::core {

// xoshiro256** seeded through splitmix64. Not thread-safe; cheap to copy.
class Random {
 public:
  explicit Random(uint64_t seed) {
    uint64_t x = seed;
    for (uint64_t& s : state_) {
      x += 0x9e3779b97f4a7c15ULL;
      s = Mix64(x);
    }
  }

  uint64_t Next() {
    const uint64_t result = Rotl(state_[1] * 5, 7) * 9;
    const uint64_t t = state_[1] << 17;
    state_[2] ^= state_[0];
    state_[3] ^= state_[1];
    state_[1] ^= state_[2];
    state_[0] ^= state_[3];
    state_[2] ^= t;
    state_[3] = Rotl(state_[3], 45);
    return result;
  }

  // Uniform in [0, n); n > 0. Multiply-shift: no modulo bias worth caring about.
  uint64_t Uniform(uint64_t n) {
    __extension__ typedef unsigned __int128 Wide;  // a GCC/Clang extension: say so to -Wpedantic
    return static_cast<uint64_t>((static_cast<Wide>(Next()) * n) >> 64);
  }

  // Uniform in [lo, hi].
  int64_t Between(int64_t lo, int64_t hi) {
    return lo + static_cast<int64_t>(Uniform(static_cast<uint64_t>(hi - lo) + 1));
  }

  // Uniform in [0, 1).
  double Unit() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }

  bool Chance(double p) { return Unit() < p; }

 private:
  static uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t state_[4];
};

}  // namespace dynamo::core
