#pragma once

// A range of ring positions, [start, end), wrapping past 2^64 - 1 to 0 when
// start >= end. start == end is the whole ring (a ring with one range).

#include <cstdint>
#include <string>

namespace dynamo::core {

struct KeyRange {
  uint64_t start = 0;
  uint64_t end = 0;

  bool Contains(uint64_t position) const {
    if (start < end) return position >= start && position < end;
    return position >= start || position < end;  // wraps, or whole ring
  }
  bool IsWholeRing() const { return start == end; }
  // Number of positions in the range; the whole ring reports 2^64 - 1.
  uint64_t Width() const { return IsWholeRing() ? ~0ULL : end - start; }
  // Offset of a contained position from the start of the range.
  uint64_t Offset(uint64_t position) const { return position - start; }

  friend bool operator==(const KeyRange&, const KeyRange&) = default;
  friend auto operator<=>(const KeyRange&, const KeyRange&) = default;
  std::string ToString() const;
};

}  // namespace dynamo::core
