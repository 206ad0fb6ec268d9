#pragma once

// When a client call is tried again, and after how long. Pure.

#include <cstdint>

#include "absl/status/status.h"

namespace dynamo::client::internal {

// Transport failures and timeouts: the request may not have reached a node,
// or its coordinator could not reach a quorum; another node may succeed.
// Everything else (INVALID_ARGUMENT above all) would fail the same way again.
bool Retryable(absl::StatusCode code);

struct RetryPolicy {
  int attempts_max = 3;
  int64_t backoff_initial_ms = 10;
  int64_t backoff_max_ms = 200;

  // Whether attempt number `next_attempt` (1-based) may start after a failure
  // with `code`, given the time left on the call's deadline.
  bool ShouldRetry(absl::StatusCode code, int next_attempt, int64_t remaining_ms) const;

  // Pause before attempt `attempt` (2 or more): initial * 2^(attempt - 2),
  // capped at backoff_max_ms, scaled by a jitter in [0.5, 1] from `random01`
  // (a number in [0, 1)) so that clients retrying together spread out.
  int64_t BackoffMs(int attempt, double random01) const;
};

}  // namespace dynamo::client::internal
