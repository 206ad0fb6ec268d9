// The gRPC services of dynamo-node, served on the node's completion queue
// (completion_loop.h). Handlers run on the loop's thread and hand work to the
// stepper (the one thread at a time that owns the core, often the handler's
// own thread: see node_server_impl.h), which finishes the calls.

#include <chrono>
#include <memory>
#include <set>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "node_server_impl.h"
#include "stream_outbox.h"

namespace dynamo::server {
namespace {

using Clock = std::chrono::steady_clock;
using Impl = NodeServer::Impl;

// Time left before the caller's deadline, 0 if none was set.
int64_t TimeoutMs(const grpc::ServerContext& context) {
  const auto deadline = context.deadline();
  if (deadline == std::chrono::system_clock::time_point::max()) return 0;
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                        deadline - std::chrono::system_clock::now())
                        .count();
  return std::max<int64_t>(1, left);
}

constexpr char kShuttingDown[] = "node is shutting down: retry elsewhere";
constexpr char kOverloaded[] = "node is overloaded (request queue full): retry later or elsewhere";
constexpr char kWrongToken[] =
    "missing or wrong bearer token (metadata 'authorization: Bearer <token>')";
constexpr char kPeerCertificateNeeded[] =
    "node-to-node calls need a client certificate signed by the cluster CA";

template <typename Request, typename Response>
class UnaryCall;

// How calls of one unary method are asked for and served.
template <typename Request, typename Response>
struct UnaryMethod {
  // Asks the server for the method's next call (AsyncService::RequestX).
  std::function<void(grpc::ServerContext*, Request*, grpc::ServerAsyncResponseWriter<Response>*,
                     CompletionTag*)>
      ask;
  std::function<void(UnaryCall<Request, Response>*)> handle;
  const CompletionLoop* loop;  // drives the queue the calls complete on
};

// One unary call. Asked of the server, then handed to its method's handler,
// which ends it with Finish exactly once (at once, or later from the
// stepper); it deletes itself when the Finish has completed. The next call of
// the method is asked for first, so that calls keep coming while this one is
// served.
template <typename Request, typename Response>
class UnaryCall final : public CompletionTag, public Impl::UnaryCallEnd {
 public:
  using Method = UnaryMethod<Request, Response>;
  static void Ask(const Method* method) {
    auto* call = new UnaryCall(method);
    method->ask(&call->context_, &call->request_, &call->writer_, call);
  }

  grpc::ServerContext& context() { return context_; }
  const Request& request() const { return request_; }
  Request* mutable_request() { return &request_; }
  Response* response() { return &response_; }
  void Finish(const grpc::Status& status) override {
    writer_.Finish(response_, status, static_cast<CompletionTag*>(this));
  }

  void Done(bool ok) override {
    // Finished; or the server stopped (no call came); or the loop stops, and
    // the call may start nothing more on its queue.
    if (handled_ || !ok || method_->loop->stopping()) {
      delete this;
      return;
    }
    handled_ = true;
    Ask(method_);
    method_->handle(this);
  }

 private:
  explicit UnaryCall(const Method* method) : method_(method) {}

  const Method* const method_;
  grpc::ServerContext context_;
  Request request_;
  Response response_;
  grpc::ServerAsyncResponseWriter<Response> writer_{&context_};
  bool handled_ = false;
};

// Hands a call's task to the stepper, or refuses the call if the node cannot
// take it (false).
bool PostOrRefuse(Impl* impl, Impl::UnaryCallEnd* call, Impl::Task task) {
  if (impl->Post(std::move(task))) return true;
  call->Finish(grpc::Status(
      impl->draining() ? grpc::StatusCode::UNAVAILABLE : grpc::StatusCode::RESOURCE_EXHAUSTED,
      impl->draining() ? kShuttingDown : kOverloaded));
  return false;
}

// For a client call begun with BeginClientCall: a refused call ends here; a
// taken one ends where its task finishes it.
void PostClientOrRefuse(Impl* impl, Impl::UnaryCallEnd* call, Impl::Task task) {
  if (!PostOrRefuse(impl, call, std::move(task))) impl->EndClientCall();
}

// A client call (KV) allowed in: false, and the call refused, if its token is
// wrong or the node drains. Taken calls end with EndClientCall.
template <typename Call>
bool AdmitClient(Impl* impl, Call* call) {
  if (!impl->AllowsClient(&call->context())) {
    call->Finish(grpc::Status(grpc::StatusCode::UNAUTHENTICATED, kWrongToken));
    return false;
  }
  if (!impl->BeginClientCall()) {
    call->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, kShuttingDown));
    return false;
  }
  return true;
}

// A Get, Put or Delete, on a unary call or a pipe, to the core, which answers
// it (NodeServer::Impl::Dispatch) where `pending` says.
void PostClientRequest(Impl* impl, Impl::PendingClient pending, core::ClientRequest client) {
  PostClientOrRefuse(impl, pending.call,
                     [impl, pending, client = std::move(client)](
                         core::Node& node, int64_t now, core::Outputs* out) mutable {
                       const uint64_t id = impl->AddClient(pending);
                       node.HandleClient(id, std::move(client), now, out);
                     });
}

// Get, Put and Delete: the core answers them (NodeServer::Impl::Dispatch).
template <typename Request, typename Response>
void HandleClient(Impl* impl, UnaryCall<Request, Response>* call, const char* op) {
  if (!AdmitClient(impl, call)) return;
  // Moved, not copied: the call holds the request only for the core.
  core::ClientRequest client{std::move(*call->mutable_request()), TimeoutMs(call->context())};
  PostClientRequest(impl, {call, call->response(), op, Clock::now()}, std::move(client));
}

void HandleTopology(Impl* impl, UnaryCall<v1::TopologyRequest, v1::TopologyResponse>* call) {
  if (!AdmitClient(impl, call)) return;
  PostClientOrRefuse(impl, call, [impl, call](core::Node& node, int64_t now, core::Outputs*) {
    *call->response() = node.Topology(now);
    call->Finish(grpc::Status::OK);
    impl->EndClientCall();
  });
}

// A client's KV.Pipe: Get, Put and Delete requests on one stream, one at a
// time. Its operations run in a chain, one in flight at a time, so the
// stream needs no queue: asked of the server, then read a request, hand it
// to the stepper, which ends it with Finish (this class is its
// UnaryCallEnd), write the response, read the next; a failed read or write,
// or a refusal while the node drains, ends the stream with Finish, whose
// completion deletes it.
class ClientPipe final : public Impl::UnaryCallEnd {
 public:
  static void Ask(Impl* impl, v1::KV::AsyncService* service, grpc::ServerCompletionQueue* cq,
                  const CompletionLoop* loop) {
    auto* pipe = new ClientPipe(impl, service, cq, loop);
    service->RequestPipe(&pipe->context_, &pipe->stream_, cq, cq, pipe->asked_.tag());
  }

  // The stepper's answer, or a refusal on the loop's thread: write it.
  void Finish(const grpc::Status& status) override {
    response_.set_code(status.error_code());
    if (!status.ok()) {
      response_.set_message(status.error_message());
      response_.clear_result();
    }
    // Refused because the node drains: the client retries elsewhere, and
    // this stream ends once the answer has left.
    end_after_write_ = status.error_code() == grpc::StatusCode::UNAVAILABLE && impl_->draining();
    stream_.Write(response_, written_.tag());
  }

 private:
  ClientPipe(Impl* impl, v1::KV::AsyncService* service, grpc::ServerCompletionQueue* cq,
             const CompletionLoop* loop)
      : impl_(impl), service_(service), cq_(cq), loop_(loop) {}
  ~ClientPipe() {
    if (opened_) impl_->metrics().PipeEnded();
  }

  void OnAsked(bool ok) {
    if (!ok || loop_->stopping()) {  // no stream came (see UnaryCall::Done)
      delete this;
      return;
    }
    Ask(impl_, service_, cq_, loop_);
    opened_ = true;
    impl_->metrics().PipeOpened();
    ReadNext();
  }

  void ReadNext() {
    request_.Clear();
    stream_.Read(&request_, read_.tag());
  }

  void OnRead(bool ok) {
    if (!ok) {  // the client closed its side, or the stream broke
      End(grpc::Status::OK);
      return;
    }
    response_.Clear();
    response_.set_id(request_.id());
    // The token is checked on every request, as on every unary call: a
    // rotated token takes effect on open pipes too.
    if (!impl_->AllowsClient(&context_)) {
      End(grpc::Status(grpc::StatusCode::UNAUTHENTICATED, kWrongToken));
      return;
    }
    core::ClientRequest client;
    client.timeout_ms = request_.timeout_ms();
    Impl::PendingClient pending{this, {}, "", Clock::now()};
    switch (request_.op_case()) {
      case v1::PipeRequest::kGet:
        client.op = std::move(*request_.mutable_get());
        pending.response = response_.mutable_get();
        pending.op = "get";
        break;
      case v1::PipeRequest::kPut:
        client.op = std::move(*request_.mutable_put());
        pending.response = response_.mutable_put();
        pending.op = "put";
        break;
      case v1::PipeRequest::kDelete:
        client.op = std::move(*request_.mutable_delete_());
        pending.response = response_.mutable_delete_();
        pending.op = "delete";
        break;
      case v1::PipeRequest::OP_NOT_SET:
        Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                            "a pipe request holds one of get, put or delete"));
        return;
    }
    if (!impl_->BeginClientCall()) {
      Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, kShuttingDown));
      return;
    }
    PostClientRequest(impl_, std::move(pending), std::move(client));
  }

  void OnWritten(bool ok) {
    if (loop_->stopping()) {  // the queue shuts down: start nothing more
      delete this;
      return;
    }
    if (!ok) {  // the stream broke: Finish says so, if anyone still listens
      End(grpc::Status(grpc::StatusCode::UNAVAILABLE, "pipe broken"));
      return;
    }
    if (end_after_write_) {
      End(grpc::Status(grpc::StatusCode::UNAVAILABLE, kShuttingDown));
      return;
    }
    ReadNext();
  }

  void End(const grpc::Status& status) { stream_.Finish(status, finished_.tag()); }
  void OnFinished(bool) { delete this; }

  Impl* const impl_;
  v1::KV::AsyncService* const service_;
  grpc::ServerCompletionQueue* const cq_;
  const CompletionLoop* const loop_;
  grpc::ServerContext context_;
  grpc::ServerAsyncReaderWriter<v1::PipeResponse, v1::PipeRequest> stream_{&context_};
  MemberTag<ClientPipe, &ClientPipe::OnAsked> asked_{this};
  MemberTag<ClientPipe, &ClientPipe::OnRead> read_{this};
  MemberTag<ClientPipe, &ClientPipe::OnWritten> written_{this};
  MemberTag<ClientPipe, &ClientPipe::OnFinished> finished_{this};
  v1::PipeRequest request_;
  v1::PipeResponse response_;
  bool end_after_write_ = false;
  bool opened_ = false;  // counted in dynamo_client_pipes
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
// replies leave in batches through the stream's outbox. Its operations run in
// a chain: the stream is asked of the server, then reads follow each other
// until one fails or a batch is refused, then (once no write is in flight)
// Finish sends the status, and its completion deletes the stream. While the
// replies are backlogged the chain pauses after a read, and the write that
// drains them reads on. The replies' holder (ReplyStream) may outlive the
// stream, but touches it only while its outbox has a write in flight, which
// Finish waits for.
class InboundStream final {
 public:
  static void Ask(Impl* impl, v1::Replica::AsyncService* service,
                  grpc::ServerCompletionQueue* cq, const CompletionLoop* loop) {
    auto* stream = new InboundStream(impl, service, cq, loop);
    service->RequestStream(&stream->context_, &stream->stream_, cq, cq, stream->asked_.tag());
  }

 private:
  InboundStream(Impl* impl, v1::Replica::AsyncService* service, grpc::ServerCompletionQueue* cq,
                const CompletionLoop* loop)
      : impl_(impl),
        service_(service),
        cq_(cq),
        loop_(loop),
        replies_(std::make_shared<Replies>(this, impl->options().grpc_message_bytes_max)) {}

  void OnAsked(bool ok) {
    if (!ok || loop_->stopping()) {  // no stream came (see UnaryCall::Done)
      delete this;
      return;
    }
    Ask(impl_, service_, cq_, loop_);
    if (!impl_->AllowsPeer(&context_)) {
      End(grpc::Status(grpc::StatusCode::PERMISSION_DENIED, kPeerCertificateNeeded));
      return;
    }
    stream_.Read(&in_, read_.tag());
  }

  void OnRead(bool ok) {
    // The queue shuts down (the process ends): start nothing more on it. A
    // write of ours may still be in flight, so the stream is left, not deleted.
    if (loop_->stopping()) return;
    if (!ok) {  // the peer closed its side, or the stream broke
      End(grpc::Status::OK);
      return;
    }
    if (std::string why = InvalidBatch(in_, StreamOutbox::kBatchEnvelopesMax); !why.empty()) {
      End(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, why));
      return;
    }
    auto batch = std::make_shared<Batch>(std::move(in_), Clock::now());
    in_.Clear();
    if (!Take(std::move(batch))) {
      // Its peer sees the stream end, and each request on it as lost.
      End(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                       impl_->draining() ? kShuttingDown : kOverloaded));
      return;
    }
    if (replies_->Backlogged()) {  // OnWritten reads on once it is not
      reads_paused_ = true;
      return;
    }
    stream_.Read(&in_, read_.tag());
  }

  void OnWritten(bool ok) {
    if (loop_->stopping()) return;  // as in OnRead
    const StreamOutbox::Next next = replies_->outbox.WriteDone(ok);
    if (next.write != nullptr) stream_.Write(*next.write, written_.tag());
    if (next.end) {
      stream_.Finish(status_, finished_.tag());
      return;
    }
    if (!ok || !replies_->outbox.Backlogged()) {
      // Batches left while the replies were backlogged go to the stepper
      // again (a refused one is lost: its requester times out). A failed
      // write fails the next read too, which ends the stream.
      for (std::shared_ptr<Batch>& batch : replies_->TakeDeferred()) Take(std::move(batch));
      if (reads_paused_) {
        reads_paused_ = false;
        stream_.Read(&in_, read_.tag());
      }
    }
  }

  struct Batch {
    v1::EnvelopeBatch requests;
    Clock::time_point start;  // when it was read, for the latency metrics
  };
  // Hands a batch to the stepper, which leaves it with the replies' holder
  // while they are backlogged. False if the stepper refused it.
  bool Take(std::shared_ptr<Batch> batch) {
    Impl* impl = impl_;
    std::shared_ptr<Replies> replies = replies_;
    return impl_->Post([impl, batch, replies](core::Node& node, int64_t now, core::Outputs* out) {
      if (replies->DeferIfBacklogged(batch, impl->step_round())) return;
      for (const v1::Envelope& e : batch->requests.envelopes()) {
        impl->AddInbound(e, {nullptr, nullptr, OpName(e), batch->start, nullptr, replies});
      }
      const size_t first = out->messages.size();
      for (const v1::Envelope& e : batch->requests.envelopes()) node.HandleMessage(e, now, out);
      replies->Made(*out, first);
    });
  }

  void OnFinished(bool) { delete this; }

  struct Replies final : Impl::ReplyStream {
    Replies(InboundStream* stream, size_t message_bytes_max)
        : stream(stream), message_bytes_max(message_bytes_max), outbox(message_bytes_max) {}
    void Send(std::vector<v1::Envelope> replies) override {
      std::vector<v1::Envelope> too_large;
      const StreamOutbox::Added added = outbox.Add(&replies, &too_large);
      if (added.write != nullptr) stream->stream_.Write(*added.write, stream->written_.tag());
      if (too_large.empty()) return;
      // A reply too large for a message becomes an error reply: its requester
      // learns at once, as a call's would from RESOURCE_EXHAUSTED, instead of
      // waiting for its timeout. (If the Add above started a write, this one
      // finds it in flight and starts none.)
      std::vector<v1::Envelope> errors;
      for (const v1::Envelope& reply : too_large) errors.push_back(TooLarge(reply));
      const StreamOutbox::Added added_errors = outbox.Add(&errors, &too_large);
      if (added_errors.write != nullptr) {
        stream->stream_.Write(*added_errors.write, stream->written_.tag());
      }
    }
    v1::Envelope TooLarge(const v1::Envelope& reply) const {
      return core::ErrorReplyFor(
          reply, absl::ResourceExhaustedError(absl::StrCat("a reply of ", reply.ByteSizeLong(),
                                                           " bytes exceeds the message limit of ",
                                                           message_bytes_max, " bytes")));
    }
    // Backlogged replies, counting those the stepper's round made (they all
    // leave at its end), hold back the batches that come meanwhile: requests
    // are small, a read's reply may be megabytes (stepper only).
    bool DeferIfBacklogged(const std::shared_ptr<Batch>& batch, uint64_t round) {
      absl::MutexLock lock(&mu);
      if (round != round_) round_bytes_ = 0;
      round_ = round;
      if (!outbox.Backlogged(round_bytes_)) return false;
      deferred.push_back(batch);
      return true;
    }
    // After DeferIfBacklogged let a batch through, in the same round.
    void Made(const core::Outputs& out, size_t first) {
      absl::MutexLock lock(&mu);
      for (size_t i = first; i < out.messages.size(); ++i) {
        round_bytes_ += out.messages[i].envelope.ByteSizeLong();
      }
    }
    std::vector<std::shared_ptr<Batch>> TakeDeferred() {
      absl::MutexLock lock(&mu);
      return std::exchange(deferred, {});
    }
    bool Backlogged() {
      {
        absl::MutexLock lock(&mu);
        if (!deferred.empty()) return true;
      }
      return outbox.Backlogged();
    }
    InboundStream* const stream;
    const size_t message_bytes_max;
    StreamOutbox outbox;
    absl::Mutex mu;
    std::vector<std::shared_ptr<Batch>> deferred ABSL_GUARDED_BY(mu);
    uint64_t round_ ABSL_GUARDED_BY(mu) = 0;  // the stepper's round that made round_bytes_
    size_t round_bytes_ ABSL_GUARDED_BY(mu) = 0;
  };

  // Ends the stream with this status once the write in flight, if any, is
  // done. Called once, with no read in flight.
  void End(grpc::Status status) {
    status_ = std::move(status);
    if (replies_->outbox.Close()) stream_.Finish(status_, finished_.tag());
  }

  Impl* const impl_;
  v1::Replica::AsyncService* const service_;
  grpc::ServerCompletionQueue* const cq_;
  const CompletionLoop* const loop_;
  grpc::ServerContext context_;
  grpc::ServerAsyncReaderWriter<v1::EnvelopeBatch, v1::EnvelopeBatch> stream_{&context_};
  MemberTag<InboundStream, &InboundStream::OnAsked> asked_{this};
  MemberTag<InboundStream, &InboundStream::OnRead> read_{this};
  MemberTag<InboundStream, &InboundStream::OnWritten> written_{this};
  MemberTag<InboundStream, &InboundStream::OnFinished> finished_{this};
  const std::shared_ptr<Replies> replies_;
  bool reads_paused_ = false;  // while replies are backlogged; on the queue's thread only
  v1::EnvelopeBatch in_;
  grpc::Status status_;  // set by End, before the outbox can end the stream
};

using EnvelopeCall = UnaryCall<v1::Envelope, v1::Envelope>;
using BatchCall = UnaryCall<v1::EnvelopeBatch, v1::EnvelopeBatch>;

void HandleReplicaCall(Impl* impl, EnvelopeCall* call) {
  if (!impl->AllowsPeer(&call->context())) {
    call->Finish(grpc::Status(grpc::StatusCode::PERMISSION_DENIED, kPeerCertificateNeeded));
    return;
  }
  if (call->request().is_reply()) {
    call->Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "a reply cannot be sent as a call"));
    return;
  }
  const auto start = Clock::now();
  PostOrRefuse(impl, call, [impl, call, start](core::Node& node, int64_t now, core::Outputs* out) {
    const v1::Envelope& request = call->request();
    impl->AddInbound(request, {call, call->response(), OpName(request), start, {}});
    node.HandleMessage(request, now, out);
  });
}

void HandleReplicaBatch(Impl* impl, BatchCall* call) {
  if (!impl->AllowsPeer(&call->context())) {
    call->Finish(grpc::Status(grpc::StatusCode::PERMISSION_DENIED, kPeerCertificateNeeded));
    return;
  }
  if (std::string why = InvalidBatch(call->request(), Impl::kBatchMax); !why.empty()) {
    call->Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, why));
    return;
  }
  const int n = call->request().envelopes_size();
  // One reply slot per request, filled by the stepper as the core answers.
  for (int i = 0; i < n; ++i) call->response()->add_envelopes();
  const auto start = Clock::now();
  PostOrRefuse(impl, call, [impl, call, start, n](core::Node& node, int64_t now,
                                                  core::Outputs* out) {
    auto batch = std::make_shared<Impl::InboundBatch>();
    batch->unanswered = static_cast<size_t>(n);
    for (int i = 0; i < n; ++i) {
      const v1::Envelope& e = call->request().envelopes(i);
      impl->AddInbound(e, {call, call->response()->mutable_envelopes(i), OpName(e), start, batch});
    }
    for (const v1::Envelope& e : call->request().envelopes()) node.HandleMessage(e, now, out);
  });
}

// Calls of each method asked for ahead: a burst of calls waits in the server
// until each is asked for.
constexpr int kAsked = 4;

// Binds `method` to the server's RequestX of `service` on `cq`, and asks.
template <typename Request, typename Response, typename Service, typename Ask>
void Listen(UnaryMethod<Request, Response>* method, Service* service,
            grpc::ServerCompletionQueue* cq, const CompletionLoop* loop, Ask ask,
            std::type_identity_t<std::function<void(UnaryCall<Request, Response>*)>> handle) {
  method->ask = [service, cq, ask](grpc::ServerContext* context, Request* request,
                                   grpc::ServerAsyncResponseWriter<Response>* writer,
                                   CompletionTag* tag) {
    (service->*ask)(context, request, writer, cq, cq, tag);
  };
  method->handle = std::move(handle);
  method->loop = loop;
  for (int i = 0; i < kAsked; ++i) UnaryCall<Request, Response>::Ask(method);
}

// An admin answer of the core, or its error as the call's status (absl's
// codes are gRPC's).
template <typename Response>
grpc::Status Answer(absl::StatusOr<Response> answer, Response* response) {
  if (!answer.ok()) {
    return grpc::Status(static_cast<grpc::StatusCode>(answer.status().code()),
                        std::string(answer.status().message()));
  }
  *response = *std::move(answer);
  return grpc::Status::OK;
}

}  // namespace

// Every method's handler and its way of asking for calls, alive as long as
// the services.
struct Services::Methods {
  UnaryMethod<v1::GetRequest, v1::GetResponse> get;
  UnaryMethod<v1::PutRequest, v1::PutResponse> put;
  UnaryMethod<v1::DeleteRequest, v1::DeleteResponse> del;
  UnaryMethod<v1::TopologyRequest, v1::TopologyResponse> topology;
  UnaryMethod<v1::Envelope, v1::Envelope> call;
  UnaryMethod<v1::EnvelopeBatch, v1::EnvelopeBatch> batch;
  UnaryMethod<v1::StatusRequest, v1::NodeStatus> status;
  UnaryMethod<v1::MembersRequest, v1::MembersResponse> members;
  UnaryMethod<v1::JoinRequest, v1::JoinResponse> join;
  UnaryMethod<v1::LeaveRequest, v1::LeaveResponse> leave;
  UnaryMethod<v1::SetVirtualNodesRequest, v1::SetVirtualNodesResponse> vnodes;
  UnaryMethod<v1::RemoveNodeRequest, v1::RemoveNodeResponse> remove;
};

Services::Services(Impl* impl) : impl_(impl), methods_(std::make_unique<Methods>()) {}
Services::~Services() = default;


void Services::ListenKvAndReplica(grpc::ServerCompletionQueue* cq, const CompletionLoop* loop) {
  Impl* impl = impl_;
  Methods& m = *methods_;
  using KV = v1::KV::AsyncService;
  Listen(&m.get, &kv, cq, loop, &KV::RequestGet, [impl](auto* c) { HandleClient(impl, c, "get"); });
  Listen(&m.put, &kv, cq, loop, &KV::RequestPut, [impl](auto* c) { HandleClient(impl, c, "put"); });
  Listen(&m.del, &kv, cq, loop, &KV::RequestDelete,
         [impl](auto* c) { HandleClient(impl, c, "delete"); });
  Listen(&m.topology, &kv, cq, loop, &KV::RequestTopology,
         [impl](auto* c) { HandleTopology(impl, c); });
  for (int i = 0; i < kAsked; ++i) ClientPipe::Ask(impl, &kv, cq, loop);
  using Replica = v1::Replica::AsyncService;
  Listen(&m.call, &replica, cq, loop, &Replica::RequestCall,
         [impl](auto* c) { HandleReplicaCall(impl, c); });
  Listen(&m.batch, &replica, cq, loop, &Replica::RequestCallBatch,
         [impl](auto* c) { HandleReplicaBatch(impl, c); });
  for (int i = 0; i < kAsked; ++i) InboundStream::Ask(impl, &replica, cq, loop);
}

void Services::ListenAdmin(grpc::ServerCompletionQueue* cq, const CompletionLoop* loop) {
  Impl* impl = impl_;
  Methods& m = *methods_;
  // An admin call's work runs on the stepper: body(request, response, ...)
  // gives the call's status. The answer may leave before the change is
  // synced; the operator and dynamoctl repeat join and leave until the state
  // shows them.
  const auto serve = [&](auto* method, auto ask, auto body) {
    Listen(method, &admin, cq, loop, ask, [impl, body](auto* call) {
      if (!impl->AllowsAdmin(&call->context())) {
        call->Finish(grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                                  "missing or wrong admin bearer token"));
        return;
      }
      PostOrRefuse(impl, call, [call, body](core::Node& node, int64_t now, core::Outputs* out) {
        call->Finish(body(call->request(), call->response(), node, now, out));
      });
    });
  };
  using Admin = v1::Admin::AsyncService;
  serve(&m.status, &Admin::RequestStatus,
        [](const v1::StatusRequest&, v1::NodeStatus* response, core::Node& node, int64_t now,
           core::Outputs*) {
          *response = node.Status(now);
          return grpc::Status::OK;
        });
  serve(&m.members, &Admin::RequestMembers,
        [](const v1::MembersRequest&, v1::MembersResponse* response, core::Node& node,
           int64_t now, core::Outputs*) {
          *response = node.Members(now);
          return grpc::Status::OK;
        });
  serve(&m.join, &Admin::RequestJoin,
        [](const v1::JoinRequest& request, v1::JoinResponse* response, core::Node& node,
           int64_t now, core::Outputs* out) {
          return Answer(node.Join(request.seed(), request.zone(), now, out), response);
        });
  serve(&m.leave, &Admin::RequestLeave,
        [](const v1::LeaveRequest&, v1::LeaveResponse* response, core::Node& node, int64_t now,
           core::Outputs* out) {
          *response = node.Leave(now, out);
          return grpc::Status::OK;
        });
  serve(&m.vnodes, &Admin::RequestSetVirtualNodes,
        [](const v1::SetVirtualNodesRequest& request, v1::SetVirtualNodesResponse* response,
           core::Node& node, int64_t now, core::Outputs* out) {
          return Answer(node.SetVirtualNodes(request.vnodes(), now, out), response);
        });
  serve(&m.remove, &Admin::RequestRemoveNode,
        [](const v1::RemoveNodeRequest& request, v1::RemoveNodeResponse* response,
           core::Node& node, int64_t now, core::Outputs* out) {
          return Answer(node.RemoveNode(request.node_id(), now, out), response);
        });
}

}  // namespace dynamo::server
