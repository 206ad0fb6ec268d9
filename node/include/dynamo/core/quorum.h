#pragma once

// The pieces of request coordination that are pure bookkeeping: choosing the
// nodes of a sloppy quorum, and counting the answers of a read or a write.

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
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

// The targets of a read or write that failed, and why: the error a client
// sees when the quorum is not reached names them.
class FailedTargets {
 public:
  // False if `node` had already failed (its first reason stays).
  bool Add(const std::string& node, std::string why) {
    return why_.emplace(node, std::move(why)).second;
  }
  bool contains(const std::string& node) const { return why_.contains(node); }
  size_t size() const { return why_.size(); }
  // "n2 (did not answer), n3 (storage could not sync: ...)", or "" if none.
  std::string Summary() const;

 private:
  std::map<std::string, std::string> why_;
};

// Counts write acknowledgements. Never reports success before w acks.
class WriteQuorum {
 public:
  WriteQuorum(std::vector<Target> targets, size_t w) : targets_(std::move(targets)), w_(w) {}
  void OnAck(const std::string& node, bool tombstone_only);
  void OnFailure(const std::string& node, std::string why);
  size_t acks() const { return acks_; }
  size_t w() const { return w_; }
  bool Succeeded() const { return acks_ >= w_; }
  // Too many failures for w acks to remain possible.
  bool Failed() const { return targets_.size() - failed_.size() < w_; }
  bool Complete() const { return acks_ + failed_.size() >= targets_.size(); }
  const FailedTargets& failed() const { return failed_; }
  bool Answered(const std::string& node) const { return answered_.contains(node); }
  // Every owner acknowledged and holds only tombstones: the delete is reapable.
  bool AllOwnersHoldTombstone(const std::vector<std::string>& owners) const;
  const std::vector<Target>& targets() const { return targets_; }

 private:
  std::vector<Target> targets_;
  size_t w_;
  size_t acks_ = 0;
  FailedTargets failed_;
  std::map<std::string, bool> answered_;  // node -> acked with tombstone only
};

// Collects read answers and merges them; knows which answers were stale.
//
// Digest reads (Cassandra's, for Dynamo's reads): the coordinator asks one
// target for its object (the full target) and the others for a digest, the
// ItemHash of what they would answer. A digest equal to a full answer's
// counts as that answer without moving the object; one that differs, or one
// left without a full answer to compare (the full target failed), makes the
// coordinator read that node in full (TakeFullReadsNeeded) before it counts.
// The result is the merge of full answers, as if every target had answered
// in full.
class ReadQuorum {
 public:
  ReadQuorum(std::vector<Target> targets, size_t r, std::string key = "")
      : targets_(std::move(targets)), r_(r), key_(std::move(key)) {}
  // `object` empty: the node has nothing for the key.
  void OnResponse(const std::string& node, std::optional<VersionedObject> object);
  // `digest` empty: the node has nothing for the key (a full answer).
  void OnDigest(const std::string& node, std::optional<uint64_t> digest);
  void OnFailure(const std::string& node, std::string why);
  // The coordinator asks `node` for its whole object and the others for
  // digests (call before any answer).
  void ExpectFull(const std::string& node) {
    digest_reads_ = true;
    full_pending_.insert(node);
  }
  // Nodes whose digest cannot count (it differs from every full answer, or no
  // full answer can come): read them in full. Each is returned once.
  std::vector<std::string> TakeFullReadsNeeded();
  bool Succeeded() const { return responses() >= r_; }
  bool Failed() const { return targets_.size() - failed_.size() < r_; }
  bool Complete() const;
  // Full answers and digests that agree with one.
  size_t responses() const;
  size_t r() const { return r_; }
  const FailedTargets& failed() const { return failed_; }
  const VersionedObject& merged() const { return merged_; }
  // Nodes that answered with less than the merged result: read repair targets.
  std::vector<Target> StaleResponders() const;
  const std::vector<Target>& targets() const { return targets_; }

 private:
  // The full answer a digest stands for, if one matches it.
  const std::optional<VersionedObject>* AgreeingAnswer(uint64_t digest) const;
  // The node answered with a digest that counts as a full answer: it agrees
  // with one, and no full re-read of the node is under way.
  bool DigestCounts(const std::string& node) const;

  std::vector<Target> targets_;
  size_t r_;
  std::string key_;  // digests are ItemHash(key, object)
  bool digest_reads_ = false;
  FailedTargets failed_;
  std::map<std::string, std::optional<VersionedObject>> responses_;
  std::map<std::string, std::optional<uint64_t>> response_digests_;
  std::map<std::string, uint64_t> digests_;  // found, and no full answer from the node (yet)
  std::set<std::string> full_pending_;
  VersionedObject merged_;
};

// What a digest read answers for `object` of `key`: its ItemHash, or empty
// when the node has nothing for it.
std::optional<uint64_t> ReadDigest(std::string_view key, const std::optional<VersionedObject>& object);

}  // namespace dynamo::core
