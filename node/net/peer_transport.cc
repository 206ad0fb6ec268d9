#include "peer_transport.h"

#include <algorithm>
#include <chrono>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "stream_outbox.h"

namespace dynamo::server {
namespace {

// Bound on cached channels: addresses come from gossip, which a bad peer
// could flood.
constexpr size_t kChannelsMax = 4096;

// A unary call in flight: it deletes itself once done.
template <typename Message>
struct InFlight final : CompletionTag {
  void Done(bool) override {
    done(status, std::move(reply));
    delete this;
  }
  grpc::ClientContext context;
  Message request;
  Message reply;
  grpc::Status status;
  std::unique_ptr<grpc::ClientAsyncResponseReader<Message>> reader;
  std::function<void(const grpc::Status&, Message)> done;
};

}  // namespace

PeerTransport::Peer PeerTransport::StartCall(const std::string& address,
                                             grpc::ClientContext* context, uint64_t* id) {
  absl::MutexLock lock(&mu_);
  if (closed_) return {};
  *id = next_call_id_++;
  in_flight_[*id] = context;
  return PeerFor(address);
}

PeerTransport::Peer PeerTransport::PeerFor(const std::string& address) {
  auto it = peers_.find(address);
  if (it != peers_.end()) return it->second;
  if (peers_.size() >= kChannelsMax) peers_.erase(peers_.begin());
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(static_cast<int>(message_bytes_max_));
  args.SetMaxSendMessageSize(static_cast<int>(message_bytes_max_));
  // Failure detection is ours, not gRPC's: short backoffs, reset in Start.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, keepalive_.interval_ms);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, keepalive_.timeout_ms);
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);  // a quiet stream still gets pings
  auto channel = grpc::CreateCustomChannel(address, credentials_, args);
  Peer peer{channel, v1::Replica::NewStub(channel)};
  peers_[address] = peer;
  return peer;
}

// One Replica.Stream to a peer. Its reads run in a chain, so that the last
// operation knows it is last: reads follow each other until one fails, then
// (once no write is in flight) Finish fetches the status. It holds itself
// (self_) until then. Writes start whenever its outbox hands out a batch,
// from any thread; the call's headers leave with the first (corked: a write
// may not start before the headers alone would have left, which would hold
// the first requests back for a round of the loop).
class PeerTransport::OutboundStream final {
 public:
  OutboundStream(PeerTransport* transport, std::string address)
      : transport_(transport),
        address_(std::move(address)),
        outbox_(transport->message_bytes_max_) {}

  // Starts the call and its first read. Nothing runs in line: the transport
  // may hold its lock.
  void Open(v1::Replica::Stub* stub, std::shared_ptr<OutboundStream> self) {
    self_ = std::move(self);
    context_.set_initial_metadata_corked(true);
    stream_ = stub->PrepareAsyncStream(&context_, transport_->cq_);
    stream_->StartCall(nullptr);  // corked: no operation, no tag
    stream_->Read(&in_, read_.tag());
  }
  void Cancel() { context_.TryCancel(); }

  // Queues the requests; those it cannot send (all of them once the stream
  // is closing) go to *rest.
  void Send(std::vector<core::OutMessage>& requests, int64_t timeout_ms,
            std::vector<core::OutMessage>* rest) {
    std::vector<uint64_t> ids;
    std::vector<v1::Envelope> envelopes;
    ids.reserve(requests.size());
    envelopes.reserve(requests.size());
    for (core::OutMessage& m : requests) {
      ids.push_back(m.envelope.request_id());
      envelopes.push_back(std::move(m.envelope));
    }
    std::vector<v1::Envelope> too_large;
    StreamOutbox::Added added;
    {
      // Queued and recorded as one step: OnFinished, which takes mu_, reports
      // every request queued as lost, and none that went back to the caller.
      absl::MutexLock lock(&mu_);
      added = outbox_.Add(&envelopes, &too_large);
      if (!added.accepted) {  // all of them go back, as they came
        for (size_t i = 0; i < requests.size(); ++i) {
          requests[i].envelope = std::move(envelopes[i]);
          rest->push_back(std::move(requests[i]));
        }
        return;
      }
      const int64_t deadline = NowMs() + timeout_ms;
      for (size_t i = 0; i < requests.size(); ++i) {
        outstanding_[ids[i]] = {requests[i].to_node, deadline};
      }
      for (v1::Envelope& e : too_large) {
        auto it = outstanding_.find(e.request_id());
        rest->push_back({it->second.to_node, address_, std::move(e)});
        outstanding_.erase(it);
      }
      ForgetExpired();
    }
    if (added.write != nullptr) stream_->Write(*added.write, written_.tag());
  }

 private:
  void OnRead(bool ok) {
    if (!ok) {  // the stream is over; Finish fetches its status
      if (outbox_.Close()) FinishCall();
      return;
    }
    std::vector<v1::Envelope> replies;
    replies.reserve(static_cast<size_t>(in_.envelopes_size()));
    {
      absl::MutexLock lock(&mu_);
      for (v1::Envelope& e : *in_.mutable_envelopes()) {
        outstanding_.erase(e.request_id());
        replies.push_back(std::move(e));
      }
    }
    in_.Clear();
    stream_->Read(&in_, read_.tag());
    if (!replies.empty()) transport_->stream_handlers_.replies(std::move(replies));
  }

  void OnWritten(bool ok) {
    const StreamOutbox::Next next = outbox_.WriteDone(ok);
    if (next.write != nullptr) stream_->Write(*next.write, written_.tag());
    if (next.end) FinishCall();
  }

  void FinishCall() { stream_->Finish(&status_, finished_.tag()); }

  void OnFinished(bool) {
    std::vector<SentRequest> lost;
    {
      absl::MutexLock lock(&mu_);
      const int64_t now = NowMs();
      for (auto& [id, request] : outstanding_) {
        if (request.deadline_ms > now) lost.emplace_back(std::move(request.to_node), id);
      }
      outstanding_.clear();
    }
    if (!lost.empty()) transport_->stream_handlers_.lost(std::move(lost));
    transport_->StreamEnded(address_, this, status_);
    self_.reset();  // may delete this: last
  }

  static int64_t NowMs() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
  // A request a peer never answers must not stay here for good: the map is
  // swept when it has doubled since the last sweep.
  void ForgetExpired() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (outstanding_.size() < sweep_at_) return;
    const int64_t now = NowMs();
    absl::erase_if(outstanding_, [now](const auto& kv) { return kv.second.deadline_ms <= now; });
    sweep_at_ = std::max<size_t>(kSweepMin, 2 * outstanding_.size());
  }
  static constexpr size_t kSweepMin = 1024;

  struct Outstanding {
    std::string to_node;
    int64_t deadline_ms;
  };
  PeerTransport* const transport_;
  const std::string address_;
  std::shared_ptr<OutboundStream> self_;
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientAsyncReaderWriter<v1::EnvelopeBatch, v1::EnvelopeBatch>> stream_;
  MemberTag<OutboundStream, &OutboundStream::OnRead> read_{this};
  MemberTag<OutboundStream, &OutboundStream::OnWritten> written_{this};
  MemberTag<OutboundStream, &OutboundStream::OnFinished> finished_{this};
  grpc::Status status_;  // set by Finish
  v1::EnvelopeBatch in_;
  StreamOutbox outbox_;
  absl::Mutex mu_;
  absl::flat_hash_map<uint64_t, Outstanding> outstanding_ ABSL_GUARDED_BY(mu_);
  size_t sweep_at_ ABSL_GUARDED_BY(mu_) = kSweepMin;
};

PeerTransport::~PeerTransport() { Close(); }

void PeerTransport::AcceptKeepalive(grpc::ServerBuilder& builder, Keepalive keepalive) {
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
                             keepalive.interval_ms / 2);
}

std::vector<core::OutMessage> PeerTransport::Stream(const std::string& address,
                                                    std::vector<core::OutMessage> requests,
                                                    int64_t timeout_ms) {
  std::shared_ptr<OutboundStream> stream;
  {
    absl::MutexLock lock(&mu_);
    if (closed_ || without_streams_.contains(address)) return requests;
    auto it = streams_.find(address);
    if (it != streams_.end()) {
      stream = it->second;
    } else {
      Peer peer = PeerFor(address);
      if (peer.channel->GetState(false) == GRPC_CHANNEL_TRANSIENT_FAILURE) return requests;
      stream = std::make_shared<OutboundStream>(this, address);
      stream->Open(peer.stub.get(), stream);
      streams_[address] = stream;
    }
  }
  // A stream that broke refuses them all; the next send opens another one.
  std::vector<core::OutMessage> rest;
  stream->Send(requests, timeout_ms, &rest);
  return rest;
}

void PeerTransport::StreamEnded(const std::string& address, const OutboundStream* stream,
                                const grpc::Status& status) {
  absl::MutexLock lock(&mu_);
  auto it = streams_.find(address);
  if (it != streams_.end() && it->second.get() == stream) streams_.erase(it);
  if (status.error_code() == grpc::StatusCode::UNIMPLEMENTED) without_streams_.insert(address);
}

template <typename Message, typename DoneFn, typename Prepare>
void PeerTransport::Start(const std::string& address, Message request, int64_t timeout_ms,
                          DoneFn done, Prepare prepare) {
  auto* call = new InFlight<Message>();
  call->request = std::move(request);
  call->context.set_deadline(std::chrono::system_clock::now() +
                             std::chrono::milliseconds(timeout_ms));
  uint64_t id = 0;
  Peer peer = StartCall(address, &call->context, &id);  // Close may cancel it from now on
  if (peer.stub == nullptr) {
    delete call;
    done(grpc::Status(grpc::StatusCode::UNAVAILABLE, "transport closed"), Message());
    return;
  }
  call->done = [this, id, done = std::move(done)](const grpc::Status& status, Message reply) {
    CallEnded(id);
    done(status, std::move(reply));
  };
  // The core calls only peers its failure detector holds alive, so a channel
  // still backing off from calls made while the peer was down (a restart)
  // must try again now, and the call must wait for that attempt: without
  // wait_for_ready it fails at once while the channel reports the failure.
  // A peer that is still down then fails the call by its deadline, as a
  // silent network would.
  if (peer.channel->GetState(false) == GRPC_CHANNEL_TRANSIENT_FAILURE) {
    grpc::experimental::ChannelResetConnectionBackoff(peer.channel.get());
    call->context.set_wait_for_ready(true);
  }
  call->reader = prepare(peer.stub.get(), &call->context, call->request, cq_);
  call->reader->StartCall();
  call->reader->Finish(&call->reply, &call->status, static_cast<CompletionTag*>(call));
}

void PeerTransport::Call(const std::string& address, v1::Envelope request, int64_t timeout_ms,
                         Done done) {
  Start(address, std::move(request), timeout_ms, std::move(done),
        [](v1::Replica::Stub* stub, grpc::ClientContext* context, const v1::Envelope& request,
           grpc::CompletionQueue* cq) { return stub->PrepareAsyncCall(context, request, cq); });
}

void PeerTransport::CallBatch(const std::string& address, v1::EnvelopeBatch requests,
                              int64_t timeout_ms, BatchDone done) {
  Start(address, std::move(requests), timeout_ms, std::move(done),
        [](v1::Replica::Stub* stub, grpc::ClientContext* context,
           const v1::EnvelopeBatch& request, grpc::CompletionQueue* cq) {
          return stub->PrepareAsyncCallBatch(context, request, cq);
        });
}

void PeerTransport::CallEnded(uint64_t id) {
  absl::MutexLock lock(&mu_);
  in_flight_.erase(id);
}

void PeerTransport::Close() {
  absl::MutexLock lock(&mu_);
  closed_ = true;
  // A call waiting for a peer that is down would otherwise hold the stop for
  // its deadline. Cancelling runs nothing in line: the calls end on the loop.
  for (const auto& [id, context] : in_flight_) context->TryCancel();
  for (const auto& [address, stream] : streams_) stream->Cancel();
  mu_.Await(absl::Condition(
      +[](PeerTransport* self) ABSL_NO_THREAD_SAFETY_ANALYSIS {
        return self->in_flight_.empty() && self->streams_.empty();
      },
      this));
}

}  // namespace dynamo::server
