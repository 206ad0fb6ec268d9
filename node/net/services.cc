// The gRPC services of dynamo-node. Handlers only hand work to the loop
// thread (which owns the core) and finish calls from there.

#include <chrono>
#include <set>

#include "absl/strings/str_cat.h"
#include "node_server_impl.h"

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

// Hands a call's task to the loop; false, and the call refused, if the loop
// cannot take it.
bool PostOrRefuse(NodeServer::Impl* impl, grpc::ServerUnaryReactor* reactor,
                  NodeServer::Impl::Task task) {
  if (impl->Post(std::move(task))) return true;
  reactor->Finish(grpc::Status(
      impl->draining() ? grpc::StatusCode::UNAVAILABLE : grpc::StatusCode::RESOURCE_EXHAUSTED,
      impl->draining() ? kShuttingDown
                       : "node is overloaded (request queue full): retry later or elsewhere"));
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

class ReplicaService final : public v1::Replica::CallbackService {
 public:
  explicit ReplicaService(NodeServer::Impl* impl) : impl_(impl) {}

  grpc::ServerUnaryReactor* Call(grpc::CallbackServerContext* context, const v1::Envelope* request,
                                 v1::Envelope* response) override {
    if (!impl_->AllowsPeer(context)) {
      return Refuse(context, grpc::StatusCode::PERMISSION_DENIED,
                    "node-to-node calls need a client certificate signed by the cluster CA");
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
      return Refuse(context, grpc::StatusCode::PERMISSION_DENIED,
                    "node-to-node calls need a client certificate signed by the cluster CA");
    }
    const int n = request->envelopes_size();
    if (n == 0 || n > NodeServer::Impl::kBatchMax) {
      return Refuse(context, grpc::StatusCode::INVALID_ARGUMENT,
                    absl::StrCat("a batch holds 1 to ", NodeServer::Impl::kBatchMax,
                                 " requests, got ", n));
    }
    std::set<std::pair<std::string, uint64_t>> ids;
    for (const v1::Envelope& e : request->envelopes()) {
      if (!NodeServer::Impl::Batchable(e) || e.is_reply()) {
        return Refuse(context, grpc::StatusCode::INVALID_ARGUMENT,
                      "a batch holds only replica reads and writes with a request id");
      }
      if (!ids.emplace(e.from_node(), e.request_id()).second) {
        return Refuse(context, grpc::StatusCode::INVALID_ARGUMENT,
                      absl::StrCat("request id ", e.request_id(), " appears twice in the batch"));
      }
    }
    // One reply slot per request, filled by the loop as the core answers.
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

  // Runs on the loop. The answer may leave before the change is synced; the
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
