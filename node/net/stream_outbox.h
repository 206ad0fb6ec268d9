#pragma once

// Envelopes waiting to leave on one gRPC stream. A stream allows one write at
// a time, so what is queued while a write is in flight leaves together in the
// next one (up to a size bound): the batch grows with the load, by itself.
// Knows nothing of gRPC: the stream's owner starts the writes it hands out,
// and ends the stream (Finish) when told: once its reads are over (Close)
// and no write is in flight, so that the end is its last operation.
// Thread-safe.

#include <cstddef>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "dynamo/v1/replica.pb.h"

namespace dynamo::server {

class StreamOutbox {
 public:
  // One write holds at most this many envelopes (a receiver refuses more)
  // and gathers them up to half the stream's message limit (the rest is
  // room for their framing); an envelope larger than that leaves alone, and
  // one too large for a message of its own never leaves on the stream.
  static constexpr int kBatchEnvelopesMax = 1024;
  static constexpr size_t kFramingBytes = 16;  // of a batch holding one envelope
  // Queued beyond this many messages' worth, the stream is backlogged.
  static constexpr size_t kBacklogMessages = 4;
  explicit StreamOutbox(size_t message_bytes_max)
      : batch_bytes_max_(message_bytes_max / 2),
        envelope_bytes_max_(message_bytes_max - kFramingBytes),
        backlog_bytes_max_(kBacklogMessages * message_bytes_max) {}

  struct Added {
    bool accepted = false;                     // false once closed: nothing was queued
    const v1::EnvelopeBatch* write = nullptr;  // the caller starts this write now
  };
  // Takes the envelopes out of *envelopes into the queue, but those too large
  // for a message into *too_large. Once closed, takes nothing.
  Added Add(std::vector<v1::Envelope>* envelopes, std::vector<v1::Envelope>* too_large);

  struct Next {
    const v1::EnvelopeBatch* write = nullptr;  // the caller starts this write now
    bool end = false;  // closed, and no write is in flight: the caller ends the stream
  };
  // The write in flight ended (ok: it left; else the stream broke: nothing
  // more is written, and the reads will fail too).
  Next WriteDone(bool ok);
  // The stream's reads are over: no more envelopes, those queued are
  // dropped. True when the caller ends the stream now; else WriteDone says
  // when (once, either way).
  bool Close();

  // More is queued (plus `coming`, made and not yet added) than
  // kBacklogMessages messages hold, while writes go on: a write is then in
  // flight or about to start, and its WriteDone is the first moment it may
  // stop being backlogged. The owner takes no more requests meanwhile: a peer
  // that sends requests but does not read the replies would otherwise make
  // the node queue replies without bound.
  bool Backlogged(size_t coming = 0);

 private:
  // Moves queued envelopes into writing_, up to the bound (mu_ held).
  const v1::EnvelopeBatch* TakeBatch() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DropQueued() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const size_t batch_bytes_max_;
  const size_t envelope_bytes_max_;
  const size_t backlog_bytes_max_;
  absl::Mutex mu_;
  struct Queued {
    v1::Envelope envelope;
    size_t bytes;  // its encoded size (a moved message loses its cached size)
  };
  std::vector<Queued> queued_ ABSL_GUARDED_BY(mu_);
  size_t queued_from_ ABSL_GUARDED_BY(mu_) = 0;  // queued_[..queued_from_) already left
  size_t queued_bytes_ ABSL_GUARDED_BY(mu_) = 0;  // of queued_[queued_from_..)
  v1::EnvelopeBatch writing_ ABSL_GUARDED_BY(mu_);  // alive until its write is done
  bool in_flight_ ABSL_GUARDED_BY(mu_) = false;
  bool writes_over_ ABSL_GUARDED_BY(mu_) = false;  // closed, or a write failed
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace dynamo::server
