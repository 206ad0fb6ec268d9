#include "stream_outbox.h"

#include <utility>

namespace dynamo::server {

StreamOutbox::Added StreamOutbox::Add(std::vector<v1::Envelope>* envelopes,
                                      std::vector<v1::Envelope>* too_large) {
  absl::MutexLock lock(&mu_);
  if (writes_over_) return {};
  for (v1::Envelope& e : *envelopes) {
    const size_t bytes = e.ByteSizeLong();
    if (bytes > envelope_bytes_max_) {
      too_large->push_back(std::move(e));
    } else {
      queued_.push_back({std::move(e), bytes});
      queued_bytes_ += bytes;
    }
  }
  envelopes->clear();
  Added added{.accepted = true};
  if (!in_flight_) added.write = TakeBatch();
  return added;
}

StreamOutbox::Next StreamOutbox::WriteDone(bool ok) {
  absl::MutexLock lock(&mu_);
  in_flight_ = false;
  writing_.Clear();
  if (!ok) {  // a broken stream takes no more writes
    writes_over_ = true;
    DropQueued();
  }
  if (closed_) {
    if (ended_) return {};
    ended_ = true;
    return {.end = true};
  }
  if (writes_over_) return {};
  return {.write = TakeBatch()};
}

bool StreamOutbox::Close() {
  absl::MutexLock lock(&mu_);
  writes_over_ = closed_ = true;
  DropQueued();
  if (in_flight_ || ended_) return false;
  ended_ = true;
  return true;
}

bool StreamOutbox::Backlogged(size_t coming) {
  absl::MutexLock lock(&mu_);
  return !writes_over_ && queued_bytes_ + coming > backlog_bytes_max_;
}

void StreamOutbox::DropQueued() {
  queued_.clear();
  queued_from_ = 0;
  queued_bytes_ = 0;
}

const v1::EnvelopeBatch* StreamOutbox::TakeBatch() {
  if (queued_from_ == queued_.size()) return nullptr;
  size_t bytes = 0;
  while (queued_from_ < queued_.size()) {
    Queued& q = queued_[queued_from_];
    if (writing_.envelopes_size() == kBatchEnvelopesMax) break;
    if (writing_.envelopes_size() > 0 && bytes + q.bytes > batch_bytes_max_) break;
    bytes += q.bytes;
    queued_bytes_ -= q.bytes;
    *writing_.add_envelopes() = std::move(q.envelope);
    ++queued_from_;
  }
  if (queued_from_ == queued_.size()) {
    queued_.clear();
    queued_from_ = 0;
  }
  in_flight_ = true;
  return &writing_;
}

}  // namespace dynamo::server
