#include "peer_transport.h"

#include <chrono>

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

std::shared_ptr<v1::Replica::Stub> PeerTransport::StubFor(const std::string& address) {
  absl::MutexLock lock(&mu_);
  if (closed_) return nullptr;
  ++in_flight_;
  auto it = stubs_.find(address);
  if (it != stubs_.end()) return it->second;
  if (stubs_.size() >= kChannelsMax) stubs_.erase(stubs_.begin());
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(static_cast<int>(message_bytes_max_));
  args.SetMaxSendMessageSize(static_cast<int>(message_bytes_max_));
  // Reconnect fast after a peer restarts: failure detection is ours, not gRPC's.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  auto channel = grpc::CreateCustomChannel(address, credentials_, args);
  std::shared_ptr<v1::Replica::Stub> stub = v1::Replica::NewStub(channel);
  stubs_[address] = stub;
  return stub;
}

template <typename Message, typename DoneFn, typename Method>
void PeerTransport::Start(const std::string& address, Message request, int64_t timeout_ms,
                          DoneFn done, Method method) {
  std::shared_ptr<v1::Replica::Stub> stub = StubFor(address);
  if (stub == nullptr) {
    done(grpc::Status(grpc::StatusCode::UNAVAILABLE, "transport closed"), Message());
    return;
  }
  auto* call = new InFlight<Message, DoneFn>;
  call->request = std::move(request);
  call->done = std::move(done);
  call->context.set_deadline(std::chrono::system_clock::now() +
                             std::chrono::milliseconds(timeout_ms));
  method(stub->async(), &call->context, &call->request, &call->reply,
         [this, call](grpc::Status status) {
           call->done(status, std::move(call->reply));
           delete call;
           CallEnded();
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

void PeerTransport::CallEnded() {
  absl::MutexLock lock(&mu_);
  --in_flight_;
}

void PeerTransport::Close() {
  absl::MutexLock lock(&mu_);
  closed_ = true;
  mu_.Await(absl::Condition(
      +[](int* n) { return *n == 0; }, &in_flight_));
}

}  // namespace dynamo::server
