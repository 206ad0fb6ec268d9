#pragma once

// The caller's side of a Node's sync contract (see node.h), kept once for the
// gRPC server, the simulator, the tests and the benchmarks: a step's outputs
// wait, in order, for the storage syncs they need, and a failed sync fails
// what waited for it.

#include <cstdint>
#include <deque>
#include <functional>
#include <vector>

#include "absl/status/status.h"
#include "dynamo/core/node.h"

namespace dynamo::core {

// Requests that need not wait for the sender's storage sync: replica reads,
// replica writes and forwards. What they carry may be lost by the sender in a
// power loss; replicas then hold values the sender forgot, which is why a node
// restarting after a crash takes a new clock actor (Node::Load).
bool MayLeaveBeforeSync(const v1::Envelope& envelope);
// Moves the messages of `out` for which MayLeaveBeforeSync holds into the
// Outputs returned; both keep their order.
Outputs TakeEarlyRequests(Outputs& out);
// What is left of `out` when the sync it waited for failed (the requests that
// left before it are gone already): its client replies become that error, its
// replies to peers error replies (their coordinators count a failure at once
// instead of waiting for a timeout), and its requests are dropped (they time
// out as lost).
void FailUnsynced(Outputs& out, const absl::Status& status);

class SyncGate {
 public:
  // `real_syncs` false: a sync only checks that writes still work (buffered
  // or in-memory storage, whose writes reach the OS as they are made). A
  // failed check then fails what waited for it, and nothing after it.
  explicit SyncGate(bool real_syncs = true) : real_syncs_(real_syncs) {}

  // Takes one step's outputs and returns what may leave now: all of them, or
  // only their requests that may leave before the sync (MayLeaveBeforeSync)
  // while they wait for one. Outputs with writes of their own (Outputs::sync)
  // need a sync, numbered requested(); the others still wait for the syncs
  // requested before them (a read may return a value whose write is not
  // durable yet). After a failed real sync every step's outputs need a sync
  // of their own until one succeeds: a write the failed sync covered, such as a
  // coordinator's own that counts towards W, is durable only then.
  Outputs Take(Outputs out);
  // The syncs through `through` ended with `status`. Returns, in order, the
  // outputs that may leave now, made by FailUnsynced if the sync failed.
  std::vector<Outputs> Synced(uint64_t through, const absl::Status& status);
  // Take, for a caller that syncs in line (tests, benchmarks): runs `sync`
  // at once if the outputs wait for one. Returns, in order, what may leave.
  std::vector<Outputs> TakeSyncingInLine(Outputs out,
                                         const std::function<absl::Status()>& sync);

  // Syncs needed so far; the caller runs one through this number.
  uint64_t requested() const { return requested_; }
  bool holding() const { return !held_.empty(); }
  // Why the last sync failed, or OK.
  const absl::Status& error() const { return error_; }

 private:
  struct Held {
    uint64_t after_sync;
    Outputs out;
  };
  bool real_syncs_;
  std::deque<Held> held_;
  uint64_t requested_ = 0;
  uint64_t done_ = 0;
  absl::Status error_;
};

}  // namespace dynamo::core
