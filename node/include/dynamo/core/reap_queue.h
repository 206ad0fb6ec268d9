#pragma once

// The tombstones a coordinator will reap, in the order queued (their due
// times are nearly in that order: each is its delete's time plus the grace
// period). A delete that every owner of its key acknowledged is queued here,
// and reaped once its grace has passed and no node hands data off
// (Node::ReapTombstones); a reap stays queued until every owner acknowledged
// it. The queue lives in the meta space: a restart, or a long pause of the
// reaps (a node down for days holds hints), loses none, where a lost reap
// would leave its tombstone for good. A window of the first is held in
// memory; the rest is read back as the window drains.

#include <cstddef>
#include <cstdint>
#include <deque>
#include <limits>
#include <string>
#include <unordered_set>

#include "absl/status/statusor.h"
#include "dynamo/core/local_store.h"
#include "dynamo/core/version_vector.h"

namespace dynamo::core {

class ReapQueue {
 public:
  struct Item {
    std::string key;
    uint64_t position = 0;
    VersionVector clock;
    int64_t due_ms = 0;
    std::string record;  // its name in the meta space
  };

  // At most `window_max` (at least 1) items are held in memory.
  ReapQueue(LocalStore* store, size_t window_max);

  // Starts generation `generation` of the node. Records queued by earlier
  // generations keep their order, but the clock that set their due times
  // may not have survived (a reboot, a stepped clock): none of them is due
  // later than `latest_due_ms`.
  absl::Status Load(uint64_t generation, int64_t latest_due_ms);
  // Queues a reap; returns its record's name.
  absl::StatusOr<std::string> Push(std::string key, uint64_t position, const VersionVector& clock,
                                   int64_t due_ms);
  // The first item, or null when none is queued. Reads the next records
  // from storage when the window is empty.
  absl::StatusOr<const Item*> Front();
  // Removes the first item, which Front() returned.
  absl::Status Pop();
  // Queues the first item again, due at `due_ms`, in place of itself, and
  // returns its new record's name: a reap that stays owed until its owners
  // acknowledge it.
  absl::StatusOr<std::string> Postpone(int64_t due_ms);
  // Removes the record named `record` (a reap done before it was due again),
  // wherever it waits; nothing if it is no longer queued.
  absl::Status Remove(const std::string& record);
  bool empty() const { return window_.empty() && !spilled_; }
  // Items queued, in memory and in storage.
  uint64_t size() const { return size_; }

 private:
  absl::Status Refill(bool count_all);

  LocalStore* store_;
  const size_t window_max_;
  uint64_t generation_ = 0;
  int64_t latest_due_ms_ = std::numeric_limits<int64_t>::max();
  uint64_t next_sequence_ = 0;
  std::deque<Item> window_;
  std::unordered_set<std::string> window_records_;  // the names of window_'s items
  bool spilled_ = false;  // records in storage past the window
  // Where the next refill's scan starts: every record before it was popped.
  std::string scan_from_;
  uint64_t size_ = 0;
};

}  // namespace dynamo::core
