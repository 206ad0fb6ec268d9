#include "peer_transport.h"

#include <chrono>
#include <vector>

namespace dynamo::server {
namespace {

// Bound on cached channels: addresses come from gossip, which a bad peer
// could flood.
constexpr size_t kChannelsMax = 4096;

template <typename Message, typename Done>
struct InFlight {
  grpc::ClientContext context;
  Message request;
  Message reply;
  Done done;
};

}  // namespace

PeerTransport::Peer PeerTransport::StartCall(const std::string& address,
                                             std::shared_ptr<grpc::ClientContext> context,
                                             uint64_t* id) {
  absl::MutexLock lock(&mu_);
  if (closed_) return {};
  *id = next_call_id_++;
  in_flight_[*id] = std::move(context);
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
  auto channel = grpc::CreateCustomChannel(address, credentials_, args);
  Peer peer{channel, v1::Replica::NewStub(channel)};
  peers_[address] = peer;
  return peer;
}

template <typename Message, typename DoneFn, typename Method>
void PeerTransport::Start(const std::string& address, Message request, int64_t timeout_ms,
                          DoneFn done, Method method) {
  auto call = std::make_shared<InFlight<Message, DoneFn>>();
  call->request = std::move(request);
  call->done = std::move(done);
  call->context.set_deadline(std::chrono::system_clock::now() +
                             std::chrono::milliseconds(timeout_ms));
  uint64_t id = 0;
  // Close may cancel the call through this (sharing the call's lifetime).
  Peer peer = StartCall(address, std::shared_ptr<grpc::ClientContext>(call, &call->context), &id);
  if (peer.stub == nullptr) {
    call->done(grpc::Status(grpc::StatusCode::UNAVAILABLE, "transport closed"), Message());
    return;
  }
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
  method(peer.stub->async(), &call->context, &call->request, &call->reply,
         [this, call, id](grpc::Status status) mutable {
           call->done(status, std::move(call->reply));
           CallEnded(id);
           call.reset();  // the context may go here, as gRPC allows in its callback
         });
}

void PeerTransport::Call(const std::string& address, v1::Envelope request, int64_t timeout_ms,
                         Done done) {
  Start(address, std::move(request), timeout_ms, std::move(done),
        [](auto* async, auto* context, auto* request, auto* reply, auto callback) {
          async->Call(context, request, reply, std::move(callback));
        });
}

void PeerTransport::CallBatch(const std::string& address, v1::EnvelopeBatch requests,
                              int64_t timeout_ms, BatchDone done) {
  Start(address, std::move(requests), timeout_ms, std::move(done),
        [](auto* async, auto* context, auto* request, auto* reply, auto callback) {
          async->CallBatch(context, request, reply, std::move(callback));
        });
}

void PeerTransport::CallEnded(uint64_t id) {
  absl::MutexLock lock(&mu_);
  in_flight_.erase(id);
}

void PeerTransport::Close() {
  std::vector<std::shared_ptr<grpc::ClientContext>> calls;
  {
    absl::MutexLock lock(&mu_);
    closed_ = true;
    for (const auto& [id, context] : in_flight_) calls.push_back(context);
  }
  // Outside the lock: a cancelled call's callback takes it. A call waiting
  // for a peer that is down would otherwise hold the stop for its deadline.
  for (const std::shared_ptr<grpc::ClientContext>& context : calls) context->TryCancel();
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(
      +[](std::map<uint64_t, std::shared_ptr<grpc::ClientContext>>* m) { return m->empty(); },
      &in_flight_));
}

}  // namespace dynamo::server
