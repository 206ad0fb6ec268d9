#include "dynamo/core/object.h"

#include <algorithm>
#include <set>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace dynamo::core {
namespace {

bool DotLess(const Sibling& a, const Sibling& b) { return a.dot < b.dot; }

// A dot names one write, so replicas agree on its sibling; should two records
// of one dot ever differ (corruption, a faulty peer), both sides of a merge
// keep the same one: Merge stays commutative and replicas still converge.
bool RecordLess(const Sibling& a, const Sibling& b) {
  return std::tie(a.tombstone, a.timestamp_ms, a.value) <
         std::tie(b.tombstone, b.timestamp_ms, b.value);
}

}  // namespace

VersionedObject VersionedObject::OfClock(VersionVector clock) {
  VersionedObject obj;
  obj.clock_ = std::move(clock);
  return obj;
}

bool VersionedObject::ReplacesAnyWithClock(const VersionVector& clock) const {
  if (siblings_.empty()) return false;  // the merge might change nothing
  for (const Sibling& s : siblings_) {
    if (clock.Covers(s.dot)) return false;  // the stored object may have dropped it
  }
  for (const auto& [actor, entry] : clock.entries()) {
    auto it = clock_.entries().find(actor);
    if (it == clock_.entries().end() || it->second.counter < entry.counter ||
        it->second.timestamp_ms < entry.timestamp_ms) {
      return false;  // the merged clock would differ from ours
    }
  }
  return true;
}

void VersionedObject::Write(const VersionVector& context, Dot dot, std::string value,
                            bool tombstone, int64_t now_ms) {
  std::erase_if(siblings_, [&](const Sibling& s) { return context.Covers(s.dot); });
  clock_.Merge(context);
  clock_.Advance(dot.actor, dot.counter, now_ms);
  Sibling added{std::move(dot), std::move(value), tombstone, now_ms};
  siblings_.insert(std::upper_bound(siblings_.begin(), siblings_.end(), added, DotLess),
                   std::move(added));
}

bool VersionedObject::Merge(const VersionedObject& other) {
  std::vector<Sibling> merged;
  merged.reserve(siblings_.size() + other.siblings_.size());
  // Both lists are sorted by dot: walk them together.
  auto a = siblings_.begin();
  auto b = other.siblings_.begin();
  while (a != siblings_.end() || b != other.siblings_.end()) {
    if (b == other.siblings_.end() || (a != siblings_.end() && a->dot < b->dot)) {
      if (!other.clock_.Covers(a->dot)) merged.push_back(*a);  // other has not seen it
      ++a;
    } else if (a == siblings_.end() || b->dot < a->dot) {
      if (!clock_.Covers(b->dot)) merged.push_back(*b);  // we have not seen it
      ++b;
    } else {
      merged.push_back(RecordLess(*a, *b) ? *b : *a);  // both hold it
      ++a;
      ++b;
    }
  }
  VersionVector clock = clock_;
  clock.Merge(other.clock_);
  const bool changed = merged != siblings_ || !(clock == clock_);
  siblings_ = std::move(merged);
  clock_ = std::move(clock);
  return changed;
}

VersionVector VersionedObject::PrunedClock(size_t max_entries) const {
  VersionVector pruned = clock_;
  if (pruned.size() <= max_entries) return pruned;
  std::set<std::string> keep;
  for (const Sibling& s : siblings_) keep.insert(s.dot.actor);
  pruned.Prune(max_entries, keep);
  return pruned;
}

size_t VersionedObject::PruneClock(size_t max_entries) {
  if (clock_.size() <= max_entries) return 0;
  const size_t before = clock_.size();
  clock_ = PrunedClock(max_entries);
  return before - clock_.size();
}

size_t VersionedObject::live_sibling_count() const {
  return static_cast<size_t>(
      std::count_if(siblings_.begin(), siblings_.end(), [](const Sibling& s) { return !s.tombstone; }));
}

size_t VersionedObject::value_bytes() const {
  size_t bytes = 0;
  for (const Sibling& s : siblings_) bytes += s.value.size();
  return bytes;
}

void VersionedObject::ToProto(v1::ObjectRecord* out) const {
  clock_.ToProto(out->mutable_clock());
  out->clear_siblings();
  for (const Sibling& s : siblings_) {
    v1::SiblingRecord* r = out->add_siblings();
    r->mutable_dot()->set_actor(s.dot.actor);
    r->mutable_dot()->set_counter(s.dot.counter);
    r->set_value(s.value);
    r->set_tombstone(s.tombstone);
    r->set_timestamp_ms(s.timestamp_ms);
  }
}

std::string VersionedObject::Encode() const {
  v1::ObjectRecord record;
  ToProto(&record);
  return record.SerializeAsString();
}

absl::StatusOr<VersionedObject> VersionedObject::FromProto(const v1::ObjectRecord& record) {
  absl::StatusOr<VersionVector> clock = VersionVector::FromProto(record.clock());
  if (!clock.ok()) return clock.status();
  if (static_cast<size_t>(record.siblings_size()) > kMaxSiblingsDecoded) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "object has %d siblings, more than the limit of %d", record.siblings_size(),
        kMaxSiblingsDecoded));
  }
  VersionedObject obj;
  obj.clock_ = *std::move(clock);
  obj.siblings_.reserve(record.siblings_size());
  for (const v1::SiblingRecord& r : record.siblings()) {
    Sibling s{Dot{r.dot().actor(), r.dot().counter()}, r.value(), r.tombstone(), r.timestamp_ms()};
    if (s.dot.actor.empty() || s.dot.counter == 0) {
      return absl::InvalidArgumentError("object has a sibling without a valid dot");
    }
    if (!obj.clock_.Covers(s.dot)) {
      return absl::InvalidArgumentError(
          absl::StrCat("object sibling ", s.dot.ToString(), " is not covered by its clock"));
    }
    obj.siblings_.push_back(std::move(s));
  }
  std::sort(obj.siblings_.begin(), obj.siblings_.end(), DotLess);
  for (size_t i = 1; i < obj.siblings_.size(); ++i) {
    if (obj.siblings_[i - 1].dot == obj.siblings_[i].dot) {
      return absl::InvalidArgumentError(
          absl::StrCat("object holds dot ", obj.siblings_[i].dot.ToString(), " twice"));
    }
  }
  return obj;
}

absl::StatusOr<VersionedObject> VersionedObject::Decode(std::string_view bytes) {
  v1::ObjectRecord record;
  if (!record.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return absl::InvalidArgumentError("object bytes are not a valid ObjectRecord");
  }
  return FromProto(record);
}

std::string VersionedObject::ToString() const {
  std::string out = absl::StrCat("clock=", clock_.ToString(), " siblings=[");
  for (size_t i = 0; i < siblings_.size(); ++i) {
    if (i > 0) out += ", ";
    absl::StrAppend(&out, siblings_[i].dot.ToString(), "=",
                    siblings_[i].tombstone ? "<tombstone>" : siblings_[i].value);
  }
  return out + "]";
}

}  // namespace dynamo::core
