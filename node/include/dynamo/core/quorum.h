#pragma once

// The pieces of request coordination that are pure bookkeeping: choosing the
// nodes of a sloppy quorum, and counting the answers of a read or a write.

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "dynamo/core/object.h"
#include "dynamo/core/ring.h"

namespace dynamo::core {

// A node a request goes to; hint_for names the owner a fallback stands in for.
struct Target {
  std::string node;
  std::string hint_for;
  friend bool operator==(const Target&, const Target&) = default;
};

struct Placement {
  size_t range_index = 0;
  std::vector<std::string> owners;  // the first n of the preference list
  std::vector<Target> targets;      // the first n healthy nodes (sloppy quorum)
  // Unhealthy owners no fallback stands in for (too few nodes): the
  // coordinator keeps their hints itself.
  std::vector<std::string> unplaced_owners;
};

// Owners are the first n nodes of the key's preference list; targets are the
// first n nodes of it that `healthy` accepts, each fallback paired with an
// unhealthy owner it holds hints for (the paper's section 4.6).
Placement PlaceKey(const Ring& ring, uint64_t position, size_t n,
                   const std::function<bool(const std::string&)>& healthy);

// Counts write acknowledgements. Never reports success before w acks.
class WriteQuorum {
 public:
  WriteQuorum(std::vector<Target> targets, size_t w) : targets_(std::move(targets)), w_(w) {}
  void OnAck(const std::string& node, bool tombstone_only);
  void OnFailure(const std::string& node);
  size_t acks() const { return acks_; }
  size_t w() const { return w_; }
  bool Succeeded() const { return acks_ >= w_; }
  // Too many failures for w acks to remain possible.
  bool Failed() const { return targets_.size() - failures_ < w_; }
  bool Complete() const { return acks_ + failures_ >= targets_.size(); }
  bool Answered(const std::string& node) const { return answered_.contains(node); }
  // Every owner acknowledged and holds only tombstones: the delete is reapable.
  bool AllOwnersHoldTombstone(const std::vector<std::string>& owners) const;
  const std::vector<Target>& targets() const { return targets_; }

 private:
  std::vector<Target> targets_;
  size_t w_;
  size_t acks_ = 0;
  size_t failures_ = 0;
  std::map<std::string, bool> answered_;  // node -> acked with tombstone only
};

// Collects read answers and merges them; knows which answers were stale.
class ReadQuorum {
 public:
  ReadQuorum(std::vector<Target> targets, size_t r) : targets_(std::move(targets)), r_(r) {}
  // `object` empty: the node has nothing for the key.
  void OnResponse(const std::string& node, std::optional<VersionedObject> object);
  void OnFailure(const std::string& node);
  bool Succeeded() const { return responses_.size() >= r_; }
  bool Failed() const { return targets_.size() - failed_.size() < r_; }
  bool Complete() const { return responses_.size() + failed_.size() >= targets_.size(); }
  size_t responses() const { return responses_.size(); }
  size_t r() const { return r_; }
  const VersionedObject& merged() const { return merged_; }
  // Nodes that answered with less than the merged result: read repair targets.
  std::vector<Target> StaleResponders() const;
  const std::vector<Target>& targets() const { return targets_; }

 private:
  std::vector<Target> targets_;
  size_t r_;
  std::set<std::string> failed_;
  std::map<std::string, std::optional<VersionedObject>> responses_;
  VersionedObject merged_;
};

}  // namespace dynamo::core
