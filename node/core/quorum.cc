#include "dynamo/core/quorum.h"

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

void WriteQuorum::OnFailure(const std::string& node) {
  if (answered_.contains(node)) return;
  answered_[node] = false;
  ++failures_;
}

bool WriteQuorum::AllOwnersHoldTombstone(const std::vector<std::string>& owners) const {
  for (const std::string& owner : owners) {
    auto it = answered_.find(owner);
    if (it == answered_.end() || !it->second) return false;
  }
  return !owners.empty();
}

void ReadQuorum::OnResponse(const std::string& node, std::optional<VersionedObject> object) {
  if (responses_.contains(node) || failed_.contains(node)) return;
  if (object) merged_.Merge(*object);
  responses_[node] = std::move(object);
}

void ReadQuorum::OnFailure(const std::string& node) {
  if (responses_.contains(node)) return;
  failed_.insert(node);
}

std::vector<Target> ReadQuorum::StaleResponders() const {
  std::vector<Target> stale;
  for (const Target& t : targets_) {
    auto it = responses_.find(t.node);
    if (it == responses_.end()) continue;
    if (merged_.empty()) continue;
    if (!it->second) {
      stale.push_back(t);
      continue;
    }
    VersionedObject theirs = *it->second;
    if (theirs.Merge(merged_)) stale.push_back(t);  // merging taught them something
  }
  return stale;
}

}  // namespace dynamo::core
