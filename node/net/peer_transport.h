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
  // Refuses new calls and waits until those in flight have ended (each has a
  // deadline), so no callback runs after Close returns.
  void Close();

 private:
  struct Peer {
    std::shared_ptr<grpc::Channel> channel;
    std::shared_ptr<v1::Replica::Stub> stub;
  };
  // Counts a call in flight; an empty Peer once closed.
  Peer PeerFor(const std::string& address);
  void CallEnded();
  template <typename Message, typename DoneFn, typename Method>
  void Start(const std::string& address, Message request, int64_t timeout_ms, DoneFn done,
             Method method);

  const size_t message_bytes_max_;
  const std::shared_ptr<grpc::ChannelCredentials> credentials_;
  absl::Mutex mu_;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, Peer> peers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace dynamo::server
