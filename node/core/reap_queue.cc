#include "dynamo/core/reap_queue.h"

#include <algorithm>
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
  spilled_ = true;  // whatever earlier generations left
  size_ = 0;
  absl::Status counted = store_->ScanMeta(meta::kReapPrefix, PrefixEnd(meta::kReapPrefix),
                                          [&](std::string_view, std::string_view) {
                                            ++size_;
                                            return true;
                                          });
  if (!counted.ok()) return counted;
  return Refill();
}

absl::Status ReapQueue::Push(std::string key, uint64_t position, const VersionVector& clock,
                             int64_t due_ms) {
  Item item{std::move(key), position, clock, due_ms,
            RecordName(due_ms, generation_, next_sequence_++)};
  v1::ReapRecord record;
  record.set_key(item.key);
  record.set_position(item.position);
  item.clock.ToProto(record.mutable_clock());
  record.set_due_ms(item.due_ms);
  if (absl::Status s = store_->PutMeta(item.record, record.SerializeAsString()); !s.ok()) return s;
  ++size_;
  if (spilled_ || window_.size() >= window_max_) {
    spilled_ = true;
    return absl::OkStatus();
  }
  window_.push_back(std::move(item));
  return absl::OkStatus();
}

absl::StatusOr<const ReapQueue::Item*> ReapQueue::Front() {
  if (window_.empty() && spilled_) {
    if (absl::Status s = Refill(); !s.ok()) return s;
  }
  return window_.empty() ? nullptr : &window_.front();
}

absl::Status ReapQueue::Pop() {
  if (window_.empty()) return absl::OkStatus();
  if (absl::Status s = store_->DeleteMeta(window_.front().record); !s.ok()) return s;
  window_.pop_front();
  --size_;
  return absl::OkStatus();
}

// Called with an empty window: every record left in storage is queued, and a
// scan from the start meets the oldest first (popped records are deleted).
absl::Status ReapQueue::Refill() {
  std::vector<std::string> unreadable;
  size_t read = 0;
  absl::Status status = store_->ScanMeta(
      meta::kReapPrefix, PrefixEnd(meta::kReapPrefix),
      [&](std::string_view name, std::string_view value) {
        ++read;
        v1::ReapRecord record;
        absl::StatusOr<VersionVector> clock = absl::InvalidArgumentError("unparsed");
        if (name.size() == kRecordNameBytes &&
            record.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
          clock = VersionVector::FromProto(record.clock());
        }
        if (!clock.ok()) {
          // A record this code cannot have written: its tombstone stays.
          unreadable.emplace_back(name);
          return read < window_max_;
        }
        int64_t due_ms = record.due_ms();
        if (GenerationOf(name) != generation_) due_ms = std::min(due_ms, latest_due_ms_);
        window_.push_back({record.key(), record.position(), *std::move(clock), due_ms,
                           std::string(name)});
        return read < window_max_;
      });
  if (!status.ok()) return status;
  spilled_ = read >= window_max_;
  for (const std::string& name : unreadable) {
    if (absl::Status s = store_->DeleteMeta(name); !s.ok()) return s;
    --size_;
  }
  return absl::OkStatus();
}

}  // namespace dynamo::core
