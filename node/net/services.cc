// The gRPC services of dynamo-node. Handlers hand work to the stepper (the
// one thread at a time that owns the core, often the handler's own thread:
// see node_server_impl.h), which finishes the calls.

#include <chrono>
#include <set>

#include "absl/strings/str_cat.h"
#include "node_server_impl.h"
#include "stream_outbox.h"

namespace dynamo::server {
namespace {

using Clock = std::chrono::steady_clock;

// Time left before the caller's deadline, 0 if none was set.
int64_t TimeoutMs(grpc::CallbackServerContext* context) {
  const auto deadline = context->deadline();
  if (deadline == std::chrono::system_clock::time_point::max()) return 0;
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                        deadline - std::chrono::system_clock::now())
                        .count();
  return std::max<int64_t>(1, left);
}

grpc::ServerUnaryReactor* Refuse(grpc::CallbackServerContext* context, grpc::StatusCode code,
                                 const std::string& why) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status(code, why));
  return reactor;
}

constexpr char kShuttingDown[] = "node is shutting down: retry elsewhere";
constexpr char kOverloaded[] = "node is overloaded (request queue full): retry later or elsewhere";
constexpr char kPeerCertificateNeeded[] =
    "node-to-node calls need a client certificate signed by the cluster CA";

// A stream refused at once: it reads nothing and deletes itself when done.
class RefusedStream final : public grpc::ServerBidiReactor<v1::EnvelopeBatch, v1::EnvelopeBatch> {
  void OnDone() override { delete this; }
};

// Hands a call's task to the stepper; false, and the call refused, if the
// node cannot take it.
bool PostOrRefuse(NodeServer::Impl* impl, grpc::ServerUnaryReactor* reactor,
                  NodeServer::Impl::Task task) {
  if (impl->Post(std::move(task))) return true;
  reactor->Finish(grpc::Status(
      impl->draining() ? grpc::StatusCode::UNAVAILABLE : grpc::StatusCode::RESOURCE_EXHAUSTED,
      impl->draining() ? kShuttingDown : kOverloaded));
  return false;
}

grpc::ServerUnaryReactor* Enqueue(NodeServer::Impl* impl, grpc::ServerUnaryReactor* reactor,
                                  NodeServer::Impl::Task task) {
  PostOrRefuse(impl, reactor, std::move(task));
  return reactor;
}

// Enqueue for a client call begun with BeginClientCall: a refused call ends
// here; a taken one ends where its task finishes it.
grpc::ServerUnaryReactor* EnqueueClient(NodeServer::Impl* impl, grpc::ServerUnaryReactor* reactor,
                                        NodeServer::Impl::Task task) {
  if (!PostOrRefuse(impl, reactor, std::move(task))) impl->EndClientCall();
  return reactor;
}

class KvService final : public v1::KV::CallbackService {
 public:
  explicit KvService(NodeServer::Impl* impl) : impl_(impl) {}

  grpc::ServerUnaryReactor* Get(grpc::CallbackServerContext* context, const v1::GetRequest* request,
                                v1::GetResponse* response) override {
    return Client(context, *request, response, "get");
  }
  grpc::ServerUnaryReactor* Put(grpc::CallbackServerContext* context, const v1::PutRequest* request,
                                v1::PutResponse* response) override {
    return Client(context, *request, response, "put");
  }
  grpc::ServerUnaryReactor* Delete(grpc::CallbackServerContext* context,
                                   const v1::DeleteRequest* request,
                                   v1::DeleteResponse* response) override {
    return Client(context, *request, response, "delete");
  }
  grpc::ServerUnaryReactor* Topology(grpc::CallbackServerContext* context,
                                     const v1::TopologyRequest*,
                                     v1::TopologyResponse* response) override {
    if (!impl_->AllowsClient(context)) {
      return Refuse(context, grpc::StatusCode::UNAUTHENTICATED, "missing or wrong bearer token");
    }
    if (!impl_->BeginClientCall()) return Refuse(context, grpc::StatusCode::UNAVAILABLE, kShuttingDown);
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    NodeServer::Impl* impl = impl_;
    return EnqueueClient(impl_, reactor, [impl, reactor, response](core::Node& node, int64_t now,
                                                                  core::Outputs*) {
      *response = node.Topology(now);
      reactor->Finish(grpc::Status::OK);
      impl->EndClientCall();
    });
  }

 private:
  template <typename Request, typename Response>
  grpc::ServerUnaryReactor* Client(grpc::CallbackServerContext* context, const Request& request,
                                   Response* response, const char* op) {
    if (!impl_->AllowsClient(context)) {
      return Refuse(context, grpc::StatusCode::UNAUTHENTICATED,
                    "missing or wrong bearer token (metadata 'authorization: Bearer <token>')");
    }
    if (!impl_->BeginClientCall()) return Refuse(context, grpc::StatusCode::UNAVAILABLE, kShuttingDown);
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    core::ClientRequest client{request, TimeoutMs(context)};
    NodeServer::Impl* impl = impl_;
    const auto start = Clock::now();
    // The call ends when the core replies (NodeServer::Impl::Dispatch).
    return EnqueueClient(impl_, reactor,
                         [impl, reactor, response, op, start, client = std::move(client)](
                             core::Node& node, int64_t now, core::Outputs* out) mutable {
                           const uint64_t id = impl->AddClient({reactor, response, op, start});
                           node.HandleClient(id, std::move(client), now, out);
                         });
  }

  NodeServer::Impl* impl_;
};

// The latency metric a replica request counts in ("read", "write"), if any.
std::string OpName(const v1::Envelope& request) {
  if (request.has_read()) return "read";
  if (request.has_write()) return "write";
  return {};
}

// Why a batch of requests from a peer cannot be taken, or "" if it can.
std::string InvalidBatch(const v1::EnvelopeBatch& batch, int max) {
  const int n = batch.envelopes_size();
  if (n == 0 || n > max) {
    return absl::StrCat("a batch holds 1 to ", max, " requests, got ", n);
  }
  std::set<std::pair<std::string, uint64_t>> ids;
  for (const v1::Envelope& e : batch.envelopes()) {
    if (!NodeServer::Impl::Batchable(e) || e.is_reply()) {
      return "a batch holds only replica reads and writes with a request id";
    }
    if (!ids.emplace(e.from_node(), e.request_id()).second) {
      return absl::StrCat("request id ", e.request_id(), " appears twice in the batch");
    }
  }
  return "";
}

// A peer's Replica.Stream: each batch read goes to the stepper, and the
// replies leave in batches through the stream's outbox. gRPC holds the
// reactor until OnDone; the replies' holder (ReplyStream) may outlive it, but
// touches it only while its outbox has a write in flight, which the stream's
// end waits for.
class InboundStream final : public grpc::ServerBidiReactor<v1::EnvelopeBatch, v1::EnvelopeBatch> {
 public:
  explicit InboundStream(NodeServer::Impl* impl)
      : impl_(impl), replies_(std::make_shared<Replies>(this, impl->options().grpc_message_bytes_max / 2)) {
    StartRead(&in_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {  // the peer closed its side, or the stream broke
      End(grpc::Status::OK);
      return;
    }
    if (std::string why = InvalidBatch(in_, StreamOutbox::kBatchEnvelopesMax); !why.empty()) {
      End(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, why));
      return;
    }
    auto batch = std::make_shared<v1::EnvelopeBatch>(std::move(in_));
    in_.Clear();
    StartRead(&in_);
    const auto start = Clock::now();
    NodeServer::Impl* impl = impl_;
    std::shared_ptr<Replies> replies = replies_;
    if (!impl_->Post([impl, batch, replies, start](core::Node& node, int64_t now,
                                                  core::Outputs* out) {
          for (const v1::Envelope& e : batch->envelopes()) {
            impl->AddInbound(e, {nullptr, nullptr, OpName(e), start, nullptr, replies});
          }
          for (const v1::Envelope& e : batch->envelopes()) node.HandleMessage(e, now, out);
        })) {
      // Its peer sees the stream end, and each request on it as lost.
      End(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                       impl_->draining() ? kShuttingDown : kOverloaded));
    }
  }
  void OnWriteDone(bool ok) override {
    const StreamOutbox::Next next = replies_->outbox.WriteDone(ok);
    if (next.write != nullptr) StartWrite(next.write);
    if (next.end) Finish(final_status());
  }
  void OnDone() override { delete this; }

 private:
  struct Replies final : NodeServer::Impl::ReplyStream {
    Replies(InboundStream* stream, size_t bytes_max) : stream(stream), outbox(bytes_max) {}
    void Send(std::vector<v1::Envelope> replies) override {
      std::vector<v1::Envelope> too_large;  // dropped: their requesters time out
      const StreamOutbox::Added added = outbox.Add(&replies, &too_large);
      if (added.write != nullptr) stream->StartWrite(added.write);
    }
    InboundStream* const stream;
    StreamOutbox outbox;
  };

  // Ends the stream with this status (the first one given), once the write
  // in flight, if any, is done.
  void End(grpc::Status status) {
    {
      absl::MutexLock lock(&mu_);
      if (status_set_) return;
      status_set_ = true;
      status_ = std::move(status);
    }
    if (replies_->outbox.Close()) Finish(final_status());
  }
  grpc::Status final_status() {
    absl::MutexLock lock(&mu_);
    return status_;
  }

  NodeServer::Impl* const impl_;
  const std::shared_ptr<Replies> replies_;
  v1::EnvelopeBatch in_;
  absl::Mutex mu_;
  bool status_set_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status status_ ABSL_GUARDED_BY(mu_);
};

class ReplicaService final : public v1::Replica::CallbackService {
 public:
  explicit ReplicaService(NodeServer::Impl* impl) : impl_(impl) {}

  grpc::ServerBidiReactor<v1::EnvelopeBatch, v1::EnvelopeBatch>* Stream(
      grpc::CallbackServerContext* context) override {
    if (!impl_->AllowsPeer(context)) {
      auto* refused = new RefusedStream();
      refused->Finish(grpc::Status(grpc::StatusCode::PERMISSION_DENIED, kPeerCertificateNeeded));
      return refused;
    }
    return new InboundStream(impl_);
  }

  grpc::ServerUnaryReactor* Call(grpc::CallbackServerContext* context, const v1::Envelope* request,
                                 v1::Envelope* response) override {
    if (!impl_->AllowsPeer(context)) {
      return Refuse(context, grpc::StatusCode::PERMISSION_DENIED, kPeerCertificateNeeded);
    }
    if (request->is_reply()) {
      return Refuse(context, grpc::StatusCode::INVALID_ARGUMENT, "a reply cannot be sent as a call");
    }
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    NodeServer::Impl* impl = impl_;
    const auto start = Clock::now();
    return Enqueue(impl_, reactor,
                   [impl, reactor, request, response, start](core::Node& node, int64_t now,
                                                             core::Outputs* out) {
                     impl->AddInbound(*request, {reactor, response, OpName(*request), start, {}});
                     node.HandleMessage(*request, now, out);
                   });
  }

  grpc::ServerUnaryReactor* CallBatch(grpc::CallbackServerContext* context,
                                      const v1::EnvelopeBatch* request,
                                      v1::EnvelopeBatch* response) override {
    if (!impl_->AllowsPeer(context)) {
      return Refuse(context, grpc::StatusCode::PERMISSION_DENIED, kPeerCertificateNeeded);
    }
    if (std::string why = InvalidBatch(*request, NodeServer::Impl::kBatchMax); !why.empty()) {
      return Refuse(context, grpc::StatusCode::INVALID_ARGUMENT, why);
    }
    const int n = request->envelopes_size();
    // One reply slot per request, filled by the stepper as the core answers.
    for (int i = 0; i < n; ++i) response->add_envelopes();
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    NodeServer::Impl* impl = impl_;
    const auto start = Clock::now();
    return Enqueue(impl_, reactor,
                   [impl, reactor, request, response, start, n](core::Node& node, int64_t now,
                                                                core::Outputs* out) {
                     auto batch = std::make_shared<NodeServer::Impl::InboundBatch>();
                     batch->unanswered = static_cast<size_t>(n);
                     for (int i = 0; i < n; ++i) {
                       const v1::Envelope& e = request->envelopes(i);
                       impl->AddInbound(e, {reactor, response->mutable_envelopes(i), OpName(e),
                                            start, batch});
                     }
                     for (const v1::Envelope& e : request->envelopes()) {
                       node.HandleMessage(e, now, out);
                     }
                   });
  }

 private:
  NodeServer::Impl* impl_;
};

class AdminService final : public v1::Admin::CallbackService {
 public:
  explicit AdminService(NodeServer::Impl* impl) : impl_(impl) {}

  grpc::ServerUnaryReactor* Status(grpc::CallbackServerContext* context, const v1::StatusRequest*,
                                   v1::NodeStatus* response) override {
    return Run(context, [response](core::Node& node, int64_t now, core::Outputs*) {
      *response = node.Status(now);
      return grpc::Status::OK;
    });
  }
  grpc::ServerUnaryReactor* Members(grpc::CallbackServerContext* context, const v1::MembersRequest*,
                                    v1::MembersResponse* response) override {
    return Run(context, [response](core::Node& node, int64_t now, core::Outputs*) {
      *response = node.Members(now);
      return grpc::Status::OK;
    });
  }
  grpc::ServerUnaryReactor* Join(grpc::CallbackServerContext* context, const v1::JoinRequest* request,
                                 v1::JoinResponse* response) override {
    return Run(context, [request, response](core::Node& node, int64_t now, core::Outputs* out) {
      *response = node.Join(request->seed(), now, out);
      return grpc::Status::OK;
    });
  }
  grpc::ServerUnaryReactor* Leave(grpc::CallbackServerContext* context, const v1::LeaveRequest*,
                                  v1::LeaveResponse* response) override {
    return Run(context, [response](core::Node& node, int64_t now, core::Outputs* out) {
      *response = node.Leave(now, out);
      return grpc::Status::OK;
    });
  }
  grpc::ServerUnaryReactor* SetVirtualNodes(grpc::CallbackServerContext* context,
                                            const v1::SetVirtualNodesRequest* request,
                                            v1::SetVirtualNodesResponse* response) override {
    return Run(context, [request, response](core::Node& node, int64_t now, core::Outputs* out) {
      absl::StatusOr<v1::SetVirtualNodesResponse> r = node.SetVirtualNodes(request->vnodes(), now, out);
      if (!r.ok()) {
        return grpc::Status(static_cast<grpc::StatusCode>(r.status().code()),
                            std::string(r.status().message()));
      }
      *response = *std::move(r);
      return grpc::Status::OK;
    });
  }

 private:
  using Body = std::function<grpc::Status(core::Node&, int64_t, core::Outputs*)>;

  // Runs on the stepper. The answer may leave before the change is synced; the
  // operator and dynamoctl repeat join and leave until the state shows them.
  grpc::ServerUnaryReactor* Run(grpc::CallbackServerContext* context, Body body) {
    if (!impl_->AllowsAdmin(context)) {
      return Refuse(context, grpc::StatusCode::UNAUTHENTICATED, "missing or wrong admin bearer token");
    }
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    return Enqueue(impl_, reactor,
                   [reactor, body = std::move(body)](core::Node& node, int64_t now,
                                                     core::Outputs* out) {
                     reactor->Finish(body(node, now, out));
                   });
  }

  NodeServer::Impl* impl_;
};

}  // namespace

Services MakeServices(NodeServer::Impl* impl) {
  return Services{std::make_unique<KvService>(impl), std::make_unique<ReplicaService>(impl),
                  std::make_unique<AdminService>(impl)};
}

}  // namespace dynamo::server
