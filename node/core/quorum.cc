#include "dynamo/core/quorum.h"

#include "absl/strings/str_cat.h"
#include "dynamo/core/merkle.h"

namespace dynamo::core {

Placement PlaceKey(const Ring& ring, uint64_t position, size_t n,
                   const std::function<bool(const std::string&)>& healthy) {
  Placement p;
  if (ring.empty()) return p;
  p.range_index = ring.RangeIndex(position);
  const std::vector<uint32_t>& order = ring.PreferenceOrder(p.range_index);
  std::vector<std::string> down_owners;
  for (size_t i = 0; i < order.size(); ++i) {
    const std::string& node = ring.nodes()[order[i]].id;
    const bool is_owner = i < n;
    if (is_owner) p.owners.push_back(node);
    if (p.targets.size() >= n) {
      if (!is_owner) break;
      continue;
    }
    if (healthy(node)) {
      std::string hint_for;
      if (!is_owner && !down_owners.empty()) {
        hint_for = down_owners.front();
        down_owners.erase(down_owners.begin());
      }
      p.targets.push_back({node, std::move(hint_for)});
    } else if (is_owner) {
      down_owners.push_back(node);
    }
  }
  p.unplaced_owners = std::move(down_owners);
  return p;
}

void WriteQuorum::OnAck(const std::string& node, bool tombstone_only) {
  if (answered_.contains(node)) return;
  answered_[node] = tombstone_only;
  ++acks_;
}

std::string FailedTargets::Summary() const {
  std::string summary;
  for (const auto& [node, why] : why_) {
    absl::StrAppend(&summary, summary.empty() ? "" : ", ", node, " (", why, ")");
  }
  return summary;
}

void WriteQuorum::OnFailure(const std::string& node, std::string why) {
  if (answered_.contains(node)) return;
  answered_[node] = false;
  failed_.Add(node, std::move(why));
}

bool WriteQuorum::AllOwnersHoldTombstone(const std::vector<std::string>& owners) const {
  for (const std::string& owner : owners) {
    auto it = answered_.find(owner);
    if (it == answered_.end() || !it->second) return false;
  }
  return !owners.empty();
}

std::optional<uint64_t> ReadDigest(std::string_view key,
                                   const std::optional<VersionedObject>& object) {
  if (!object) return std::nullopt;
  return ItemHash(key, object->Encode());
}

void ReadQuorum::OnResponse(const std::string& node, std::optional<VersionedObject> object) {
  if (responses_.contains(node) || failed_.contains(node)) return;
  full_pending_.erase(node);
  digests_.erase(node);
  if (object) merged_.Merge(*object);
  if (digest_reads_) response_digests_[node] = ReadDigest(key_, object);
  responses_[node] = std::move(object);
}

void ReadQuorum::OnDigest(const std::string& node, std::optional<uint64_t> digest) {
  if (!digest) {  // "nothing for the key" says as much as a full answer
    OnResponse(node, std::nullopt);
    return;
  }
  if (responses_.contains(node) || failed_.contains(node) || digests_.contains(node)) return;
  digests_[node] = *digest;
}

void ReadQuorum::OnFailure(const std::string& node, std::string why) {
  if (responses_.contains(node)) return;
  full_pending_.erase(node);
  digests_.erase(node);
  failed_.Add(node, std::move(why));
}

const std::optional<VersionedObject>* ReadQuorum::AgreeingAnswer(uint64_t digest) const {
  for (const auto& [node, answer_digest] : response_digests_) {
    if (answer_digest == digest) return &responses_.at(node);
  }
  return nullptr;
}

std::vector<std::string> ReadQuorum::TakeFullReadsNeeded() {
  std::vector<std::string> needed;
  // Until a full answer arrives, a digest may yet agree with it.
  if (responses_.empty() && !full_pending_.empty()) return needed;
  for (const auto& [node, digest] : digests_) {
    if (full_pending_.contains(node) || AgreeingAnswer(digest) != nullptr) continue;
    needed.push_back(node);
  }
  for (const std::string& node : needed) full_pending_.insert(node);
  return needed;
}

bool ReadQuorum::DigestCounts(const std::string& node) const {
  auto digest = digests_.find(node);
  return digest != digests_.end() && !full_pending_.contains(node) &&
         AgreeingAnswer(digest->second) != nullptr;
}

size_t ReadQuorum::responses() const {
  size_t agreeing = 0;
  for (const auto& [node, digest] : digests_) agreeing += DigestCounts(node);
  return responses_.size() + agreeing;
}

bool ReadQuorum::Complete() const {
  for (const Target& t : targets_) {
    if (!responses_.contains(t.node) && !failed_.contains(t.node) && !DigestCounts(t.node)) {
      return false;
    }
  }
  return true;
}

std::vector<Target> ReadQuorum::StaleResponders() const {
  std::vector<Target> stale;
  if (merged_.empty()) return stale;
  for (const Target& t : targets_) {
    const std::optional<VersionedObject>* answer = nullptr;
    if (auto it = responses_.find(t.node); it != responses_.end()) {
      answer = &it->second;
    } else if (auto d = digests_.find(t.node); d != digests_.end()) {
      answer = AgreeingAnswer(d->second);  // it holds what that answer held
    }
    if (answer == nullptr) continue;
    if (!*answer) {
      stale.push_back(t);
      continue;
    }
    VersionedObject theirs = **answer;
    if (theirs.Merge(merged_)) stale.push_back(t);  // merging taught them something
  }
  return stale;
}

}  // namespace dynamo::core
