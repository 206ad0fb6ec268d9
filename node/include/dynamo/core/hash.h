#pragma once

// Hashing used for ring placement and Merkle trees. The functions are fixed
// forever: every node and client must place a key at the same ring position,
// and every replica must hash an object to the same value.

#include <cstdint>
#include <string_view>

namespace dynamo::core {

// Finalizer of a 64-bit mixer: spreads every input bit over every output bit.
constexpr uint64_t Mix64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

// 64-bit hash of bytes (FNV-1a over the bytes, then Mix64 for avalanche).
constexpr uint64_t Hash64(std::string_view bytes, uint64_t seed = 0) {
  uint64_t h = 0xcbf29ce484222325ULL ^ Mix64(seed);
  for (char c : bytes) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ULL;
  }
  return Mix64(h ^ bytes.size());
}

// Position of a key on the ring.
constexpr uint64_t KeyPosition(std::string_view key) { return Hash64(key, /*seed=*/0x6b6579); }

// Combines two hashes, order-sensitive.
constexpr uint64_t HashCombine(uint64_t a, uint64_t b) {
  return Mix64(a ^ (Mix64(b) + 0x9e3779b97f4a7c15ULL + (a << 6) + (a >> 2)));
}

}  // namespace dynamo::core
