#pragma once

// Sends replica-protocol envelopes to other nodes over gRPC (one unary Call
// per request, or one CallBatch for several; the reply comes back as the
// call's response). Channels are cached per address. Thread-safe.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "dynamo/v1/replica.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace dynamo::server {

class PeerTransport {
 public:
  // Called on a gRPC thread with the RPC's status and the reply envelope.
  using Done = std::function<void(const grpc::Status&, v1::Envelope reply)>;
  // The same for a batch: the replies in the requests' order.
  using BatchDone = std::function<void(const grpc::Status&, v1::EnvelopeBatch replies)>;

  PeerTransport(size_t message_bytes_max, std::shared_ptr<grpc::ChannelCredentials> credentials)
      : message_bytes_max_(message_bytes_max), credentials_(std::move(credentials)) {}

  void Call(const std::string& address, v1::Envelope request, int64_t timeout_ms, Done done);
  void CallBatch(const std::string& address, v1::EnvelopeBatch requests, int64_t timeout_ms,
                 BatchDone done);
  // Refuses new calls, cancels those in flight and waits until they have
  // ended, so no callback runs after Close returns.
  void Close();

 private:
  struct Peer {
    std::shared_ptr<grpc::Channel> channel;
    std::shared_ptr<v1::Replica::Stub> stub;
  };
  // Registers a call in flight as `*id` (its context, for Close to cancel)
  // and finds its peer's channel; an empty Peer once closed.
  Peer StartCall(const std::string& address, std::shared_ptr<grpc::ClientContext> context,
                 uint64_t* id);
  void CallEnded(uint64_t id);
  template <typename Message, typename DoneFn, typename Method>
  void Start(const std::string& address, Message request, int64_t timeout_ms, DoneFn done,
             Method method);

  const size_t message_bytes_max_;
  const std::shared_ptr<grpc::ChannelCredentials> credentials_;
  absl::Mutex mu_;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t next_call_id_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<uint64_t, std::shared_ptr<grpc::ClientContext>> in_flight_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Peer> peers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace dynamo::server
