#include "dynamo/core/version_vector.h"

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace dynamo::core {

std::string Dot::ToString() const { return absl::StrCat(actor, ":", counter); }

uint64_t VersionVector::Counter(std::string_view actor) const {
  auto it = entries_.find(actor);
  return it == entries_.end() ? 0 : it->second.counter;
}

void VersionVector::Advance(const std::string& actor, uint64_t counter, int64_t timestamp_ms) {
  Entry& e = entries_[actor];
  e.counter = std::max(e.counter, counter);
  e.timestamp_ms = std::max(e.timestamp_ms, timestamp_ms);
}

bool VersionVector::Descends(const VersionVector& other) const {
  for (const auto& [actor, entry] : other.entries_) {
    if (Counter(actor) < entry.counter) return false;
  }
  return true;
}

Causality VersionVector::Compare(const VersionVector& other) const {
  const bool ge = Descends(other);
  const bool le = other.Descends(*this);
  if (ge && le) return Causality::kEqual;
  if (ge) return Causality::kAfter;
  if (le) return Causality::kBefore;
  return Causality::kConcurrent;
}

void VersionVector::Merge(const VersionVector& other) {
  for (const auto& [actor, entry] : other.entries_) Advance(actor, entry.counter, entry.timestamp_ms);
}

size_t VersionVector::Prune(size_t max_entries, const std::set<std::string>& keep) {
  if (entries_.size() <= max_entries) return 0;
  std::vector<std::pair<int64_t, std::string>> candidates;
  for (const auto& [actor, entry] : entries_) {
    if (!keep.contains(actor)) candidates.emplace_back(entry.timestamp_ms, actor);
  }
  std::sort(candidates.begin(), candidates.end());
  size_t dropped = 0;
  for (const auto& [ts, actor] : candidates) {
    if (entries_.size() <= max_entries) break;
    entries_.erase(actor);
    ++dropped;
  }
  return dropped;
}

void VersionVector::ToProto(google::protobuf::RepeatedPtrField<v1::ClockEntry>* out) const {
  out->Clear();
  out->Reserve(static_cast<int>(entries_.size()));
  for (const auto& [actor, entry] : entries_) {
    v1::ClockEntry* e = out->Add();
    e->set_actor(actor);
    e->set_counter(entry.counter);
    e->set_timestamp_ms(entry.timestamp_ms);
  }
}

absl::StatusOr<VersionVector> VersionVector::FromProto(
    const google::protobuf::RepeatedPtrField<v1::ClockEntry>& entries) {
  if (static_cast<size_t>(entries.size()) > kMaxClockEntriesDecoded) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "version vector has %d entries, more than the limit of %d", entries.size(),
        kMaxClockEntriesDecoded));
  }
  VersionVector vv;
  for (const v1::ClockEntry& e : entries) {
    if (e.actor().empty() || e.actor().size() > kMaxActorBytes) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "version vector actor must be 1..%d bytes, got %d", kMaxActorBytes, e.actor().size()));
    }
    if (e.counter() == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("version vector entry for actor '", e.actor(), "' has counter 0"));
    }
    if (e.counter() > kMaxCounterDecoded) {
      return absl::InvalidArgumentError(absl::StrCat("version vector entry for actor '", e.actor(),
                                                     "' has counter ", e.counter(),
                                                     ", above the limit of ", kMaxCounterDecoded));
    }
    if (vv.entries_.contains(e.actor())) {
      return absl::InvalidArgumentError(
          absl::StrCat("version vector names actor '", e.actor(), "' twice"));
    }
    vv.entries_[e.actor()] = Entry{e.counter(), e.timestamp_ms()};
  }
  return vv;
}

std::string VersionVector::ToString() const {
  std::string out = "{";
  for (const auto& [actor, entry] : entries_) {
    if (out.size() > 1) out += ", ";
    absl::StrAppend(&out, actor, ":", entry.counter);
  }
  return out + "}";
}

}  // namespace dynamo::core
