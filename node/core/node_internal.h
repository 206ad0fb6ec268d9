#pragma once

// State the parts of Node (node*.cc) share: one coordinated client request,
// one range transfer batch, one anti-entropy exchange.

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "dynamo/core/merkle.h"
#include "dynamo/core/node.h"
#include "dynamo/core/quorum.h"

namespace dynamo::core {

// Dot counters are reserved in blocks, the limit persisted when a block is
// taken, so a restart after a clean stop never hands out a counter twice
// (after a crash the actor changes: see Load).
inline constexpr uint64_t kCounterBlock = 100000;

// What a batch of keys sent in one message (hints, handoff, anti-entropy) may
// hold: at most bytes_max (object_bytes_max: what a message carries beside a
// key and the reserve), and always its first item, so that a batch of one
// large object still goes. A batch capped by key count alone outgrew the
// message limit with large values and failed every time.
class MessageBudget {
 public:
  explicit MessageBudget(size_t bytes_max) : bytes_max_(bytes_max) {}
  // Whether an item of `bytes` fits; if it does, it is counted.
  bool Take(size_t bytes) {
    if (items_ > 0 && used_ + bytes > bytes_max_) return false;
    used_ += bytes;
    ++items_;
    return true;
  }
  size_t used() const { return used_; }

 private:
  const size_t bytes_max_;
  size_t used_ = 0;
  size_t items_ = 0;
};

struct Node::Op {
  enum class Kind { kGet, kPut, kDelete };
  uint64_t id = 0;
  Kind kind = Kind::kGet;
  // Who asked: a local client, or another node that forwarded the request.
  uint64_t client_id = 0;
  bool remote = false;
  v1::Envelope origin;  // the Forward envelope, to reply to
  std::string key;
  uint64_t position = 0;
  Placement placement;
  size_t n = 0, r = 0, w = 0;
  int64_t start_ms = 0;
  int64_t deadline_ms = 0;
  bool overtime = false;  // past deadline_ms, a write waiting for its replicas' answers
  bool replied = false;
  // put/delete: what to write, kept for a retry of the forward.
  std::string value;
  VersionVector context;
  bool forwarded = false;  // waiting for another node to coordinate it
  std::string forwarded_to;
  std::set<std::string> forward_tried;
  std::optional<ReadQuorum> read;
  std::optional<WriteQuorum> write;
  VersionedObject written;  // put/delete: the object the coordinator made
};

struct Node::Transfer {
  uint64_t id = 0;
  size_t range = 0;
  std::vector<std::string> targets;
  std::set<std::string> answered;
  bool failed = false;
  struct Item {
    std::string key;
    uint64_t position;
    std::string encoded;
  };
  std::vector<Item> items;
  std::string last_stored_key;  // resume point after this batch
};

// One anti-entropy round with one peer: compare digests of groups of the
// ranges both replicate, then the roots of the ranges in differing groups,
// then walk the trees of the ranges that differ, one by one.
struct Node::AeSession {
  enum class Stage { kDigests, kRoots, kMerkle, kLeafKeys, kRead, kPush };
  uint64_t id = 0;
  std::deque<size_t> differing_ranges;  // still to compare after the current one
  size_t range = 0;
  KeyRange key_range;
  std::string peer;
  Stage stage = Stage::kDigests;
  std::optional<MerkleComparison> comparison;
  std::vector<uint32_t> leaves;
  std::vector<std::string> keys;
};

}  // namespace dynamo::core
