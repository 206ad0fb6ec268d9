#pragma once

// Sends replica-protocol envelopes to other nodes over gRPC: one unary Call
// per request, or one CallBatch for several (the reply comes back as the
// call's response), or on a long-lived Replica.Stream per peer (the replies
// come back on it, to the handlers). Channels are cached per address. The
// calls complete on a CompletionLoop's queue, whose thread runs the callbacks.
// Thread-safe.

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "completion_loop.h"
#include "dynamo/core/node.h"
#include "dynamo/v1/replica.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace dynamo::server {

// A connection to a peer that answers nothing (a half-open TCP connection:
// the peer's machine vanished, or a partition drops its packets) is closed
// once a keepalive ping goes unanswered: its stream then reports its requests
// lost, and the channel connects again. Without it the kernel would keep the
// connection for many minutes.
struct PeerKeepalive {
  int interval_ms = 10000;
  int timeout_ms = 5000;
};

class PeerTransport {
 public:
  // Called on the loop's thread with the RPC's status and the reply envelope.
  using Done = std::function<void(const grpc::Status&, v1::Envelope reply)>;
  // The same for a batch: the replies in the requests' order.
  using BatchDone = std::function<void(const grpc::Status&, v1::EnvelopeBatch replies)>;

  // A request sent: its (to_node, request_id).
  using SentRequest = std::pair<std::string, uint64_t>;
  // What becomes of requests sent on streams (called on the loop's thread).
  struct StreamHandlers {
    std::function<void(std::vector<v1::Envelope> replies)> replies;
    // Requests a stream will not answer (it broke).
    std::function<void(std::vector<SentRequest> lost)> lost;
  };

  using Keepalive = PeerKeepalive;
  // What a node's gRPC server must accept of its peers' keepalive pings
  // (by default a server takes pings on an idle connection as abuse).
  static void AcceptKeepalive(grpc::ServerBuilder& builder, Keepalive keepalive = {});

  // The calls complete on `cq`, which a CompletionLoop drives; it must stop
  // after this transport closes.
  PeerTransport(grpc::CompletionQueue* cq, size_t message_bytes_max,
                std::shared_ptr<grpc::ChannelCredentials> credentials,
                StreamHandlers stream_handlers = {}, Keepalive keepalive = {})
      : cq_(cq),
        message_bytes_max_(message_bytes_max),
        credentials_(std::move(credentials)),
        stream_handlers_(std::move(stream_handlers)),
        keepalive_(keepalive) {}
  ~PeerTransport();

  void Call(const std::string& address, v1::Envelope request, int64_t timeout_ms, Done done);
  void CallBatch(const std::string& address, v1::EnvelopeBatch requests, int64_t timeout_ms,
                 BatchDone done);
  // Sends requests (each with a request id, awaiting a reply) on the stream
  // to `address`, opening it if need be; a request unanswered after
  // timeout_ms is forgotten. Returns the messages it could not send that way,
  // for the caller to call: all of them when the peer answered a stream with
  // UNIMPLEMENTED (an older node), when its channel is failing (a call waits
  // for its reconnection; a stream would not), or once closed; and any too
  // large for one stream message.
  std::vector<core::OutMessage> Stream(const std::string& address,
                                       std::vector<core::OutMessage> requests, int64_t timeout_ms);
  // Refuses new calls, cancels the calls and streams in flight and waits
  // until they have ended, so no callback runs after Close returns.
  void Close();

 private:
  struct Peer {
    std::shared_ptr<grpc::Channel> channel;
    std::shared_ptr<v1::Replica::Stub> stub;
  };
  // Registers a call in flight as `*id` (its context, for Close to cancel)
  // and finds its peer's channel; an empty Peer once closed.
  Peer StartCall(const std::string& address, grpc::ClientContext* context, uint64_t* id);
  void CallEnded(uint64_t id);
  template <typename Message, typename DoneFn, typename Prepare>
  void Start(const std::string& address, Message request, int64_t timeout_ms, DoneFn done,
             Prepare prepare);

  // The channel to `address`, created on first use.
  Peer PeerFor(const std::string& address) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  class OutboundStream;
  // A stream ended: a later send opens a new one, unless the peer has none.
  void StreamEnded(const std::string& address, const OutboundStream* stream,
                   const grpc::Status& status);

  grpc::CompletionQueue* const cq_;
  const size_t message_bytes_max_;
  const std::shared_ptr<grpc::ChannelCredentials> credentials_;
  const StreamHandlers stream_handlers_;
  const Keepalive keepalive_;
  absl::Mutex mu_;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t next_call_id_ ABSL_GUARDED_BY(mu_) = 0;
  // Contexts of calls in flight: alive until CallEnded removes them.
  std::map<uint64_t, grpc::ClientContext*> in_flight_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Peer> peers_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::shared_ptr<OutboundStream>> streams_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> without_streams_ ABSL_GUARDED_BY(mu_);  // answered UNIMPLEMENTED
};

}  // namespace dynamo::server
