#include "dynamo/core/reap_queue.h"

#include <algorithm>
#include <iterator>
#include <optional>
#include <utility>

#include "dynamo/core/storage_keys.h"
#include "dynamo/v1/replica.pb.h"

namespace dynamo::core {
namespace {

// "reap/" be64(due) be64(generation) be64(sequence): ordered by due time,
// unique across the node's generations.
constexpr size_t kRecordNameBytes = meta::kReapPrefix.size() + 3 * 8;

std::string RecordName(int64_t due_ms, uint64_t generation, uint64_t sequence) {
  std::string name(meta::kReapPrefix);
  name += EncodeBigEndian64(static_cast<uint64_t>(std::max<int64_t>(due_ms, 0)));
  name += EncodeBigEndian64(generation);
  name += EncodeBigEndian64(sequence);
  return name;
}

uint64_t GenerationOf(std::string_view record) {
  return DecodeBigEndian64(record.substr(meta::kReapPrefix.size() + 8, 8));
}

}  // namespace

ReapQueue::ReapQueue(LocalStore* store, size_t window_max)
    : store_(store), window_max_(std::max<size_t>(window_max, 1)) {}

absl::Status ReapQueue::Load(uint64_t generation, int64_t latest_due_ms) {
  generation_ = generation;
  latest_due_ms_ = latest_due_ms;
  next_sequence_ = 0;
  window_.clear();
  window_records_.clear();
  scan_from_ = std::string(meta::kReapPrefix);
  size_ = 0;
  return Refill(/*count_all=*/true);
}

absl::StatusOr<std::string> ReapQueue::Push(std::string key, uint64_t position,
                                            const VersionVector& clock, int64_t due_ms) {
  Item item{std::move(key), position, clock, due_ms,
            RecordName(due_ms, generation_, next_sequence_++)};
  v1::ReapRecord record;
  record.set_key(item.key);
  record.set_position(item.position);
  item.clock.ToProto(record.mutable_clock());
  record.set_due_ms(item.due_ms);
  if (absl::Status s = store_->PutMeta(item.record, record.SerializeAsString()); !s.ok()) return s;
  ++size_;
  std::string name = item.record;
  if (spilled_ || window_.size() >= window_max_) {
    spilled_ = true;
    // Left in storage only: the next refill must not start past it.
    if (name < scan_from_) scan_from_ = std::string(meta::kReapPrefix);
    return name;
  }
  window_records_.insert(name);
  window_.push_back(std::move(item));
  return name;
}

absl::StatusOr<const ReapQueue::Item*> ReapQueue::Front() {
  if (window_.empty() && spilled_) {
    if (absl::Status s = Refill(/*count_all=*/false); !s.ok()) return s;
  }
  return window_.empty() ? nullptr : &window_.front();
}

absl::Status ReapQueue::Pop() {
  if (window_.empty()) return absl::OkStatus();
  if (absl::Status s = store_->DeleteMeta(window_.front().record); !s.ok()) return s;
  window_records_.erase(window_.front().record);
  window_.pop_front();
  --size_;
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReapQueue::Postpone(int64_t due_ms) {
  if (window_.empty()) return absl::FailedPreconditionError("no reap is queued");
  const Item& front = window_.front();
  // Written before the old record goes: a crash in between queues the reap
  // twice (a second reap finds nothing), never not at all.
  absl::StatusOr<std::string> name = Push(front.key, front.position, front.clock, due_ms);
  if (!name.ok()) return name.status();
  if (absl::Status s = Pop(); !s.ok()) {
    (void)Remove(*name);  // else each later try would queue it once more
    return s;
  }
  return name;
}

absl::Status ReapQueue::Remove(const std::string& record) {
  if (window_records_.contains(record)) {
    if (absl::Status s = store_->DeleteMeta(record); !s.ok()) return s;
    // Most often the last pushed: searched from the back.
    for (auto it = window_.rbegin(); it != window_.rend(); ++it) {
      if (it->record != record) continue;
      window_.erase(std::next(it).base());
      break;
    }
    window_records_.erase(record);
    --size_;
    return absl::OkStatus();
  }
  if (!spilled_) return absl::OkStatus();  // not queued: popped already
  absl::StatusOr<std::optional<std::string>> stored = store_->GetMeta(record);
  if (!stored.ok()) return stored.status();
  if (!*stored) return absl::OkStatus();
  if (absl::Status s = store_->DeleteMeta(record); !s.ok()) return s;
  --size_;
  return absl::OkStatus();
}

// Called with an empty window: the records before scan_from_ were all popped
// (and deleted), so the scan starts there rather than over their deletions.
// Fills the window with the first records; with `count_all`, counts the rest.
absl::Status ReapQueue::Refill(bool count_all) {
  std::vector<std::string> unreadable;
  size_t read = 0;
  bool more = false;
  absl::Status status = store_->ScanMeta(
      scan_from_, PrefixEnd(meta::kReapPrefix),
      [&](std::string_view name, std::string_view value) {
        if (read >= window_max_) {
          more = true;
          if (count_all) ++size_;
          return count_all;
        }
        ++read;
        if (count_all) ++size_;
        scan_from_ = std::string(name);
        v1::ReapRecord record;
        absl::StatusOr<VersionVector> clock = absl::InvalidArgumentError("unparsed");
        if (name.size() == kRecordNameBytes &&
            record.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
          clock = VersionVector::FromProto(record.clock());
        }
        if (!clock.ok()) {
          // A record this code cannot have written: its tombstone stays.
          unreadable.emplace_back(name);
          return true;
        }
        int64_t due_ms = record.due_ms();
        if (GenerationOf(name) != generation_) due_ms = std::min(due_ms, latest_due_ms_);
        window_records_.emplace(name);
        window_.push_back({record.key(), record.position(), *std::move(clock), due_ms,
                           std::string(name)});
        return true;
      });
  if (!status.ok()) return status;
  spilled_ = more;
  for (const std::string& name : unreadable) {
    if (absl::Status s = store_->DeleteMeta(name); !s.ok()) {
      scan_from_ = std::string(meta::kReapPrefix);  // the next refill meets it again
      return s;
    }
    --size_;
  }
  return absl::OkStatus();
}

}  // namespace dynamo::core
