#pragma once

// NodeServer's insides, shared by node_server.cc (stepping the core) and
// services.cc (the gRPC handlers).
//
// One thread at a time steps the core: the one holding the stepper role. A
// thread that posts work while no one steps takes the role and steps at once,
// in line (a gRPC handler or a peer call's callback; not on durable nodes,
// see step_in_line_); otherwise the stepper takes the work with the rest of
// the queue. The loop thread steps when the tick is due, when a sync is done,
// and takes over work left when an in-line stepper stops after a few rounds.
// Handing every task to a sleeping loop thread cost a futex wake and two
// context switches per message (bench/RESULTS.md, F24). The gRPC handlers,
// and the callbacks of calls to peers, run on the thread of the node's
// completion queue (completion_loop.h), which is thus most often the stepper
// of a buffered node.

#include <atomic>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <tuple>
#include <variant>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "dynamo/core/node.h"
#include "dynamo/core/sync_gate.h"
#include "dynamo/metrics/http_endpoint.h"
#include "dynamo/net/node_server.h"
#include "dynamo/storage/engine.h"
#include "dynamo/v1/admin.grpc.pb.h"
#include "dynamo/v1/kv.grpc.pb.h"
#include "dynamo/v1/replica.grpc.pb.h"
#include "completion_loop.h"
#include "grpcpp/grpcpp.h"
#include "node_metrics.h"
#include "peer_transport.h"
#include "security.h"

namespace dynamo::server {

class Services;

class NodeServer::Impl {
 public:
  // Work for the stepper: it may step the core and append outputs.
  using Task = std::function<void(core::Node& node, int64_t now_ms, core::Outputs* out)>;

  explicit Impl(ServerOptions options) : options_(std::move(options)) {}
  ~Impl();

  absl::Status Start();
  void Shutdown();
  void Wait();
  std::string removed_by() {
    absl::MutexLock lock(&mu_);
    return removed_by_;
  }
  int grpc_port() const { return grpc_port_; }
  int http_port() const;

  // Thread-safe: queue work for the stepper, and step now, in this thread,
  // if no other thread does. False (and the task is dropped) once the loop
  // has stopped or when the queue is full: the caller answers its call
  // itself then. Callers must not hold locks the stepper takes.
  enum class Priority { kNewWork, kAnswer };
  static constexpr size_t kNewWorkQueueMax = 20000;
  static constexpr size_t kQueueMax = 200000;
  [[nodiscard]] bool Post(Task task, Priority priority = Priority::kNewWork);
  // True when the stepper has answered every peer call it was given.
  bool PeerCallsDone();

  // A unary call, or a request on a client's KV.Pipe, being served
  // (services.cc): the stepper ends it, once.
  class UnaryCallEnd {
   public:
    virtual void Finish(const grpc::Status& status) = 0;

   protected:
    ~UnaryCallEnd() = default;
  };
  // A client call waiting for the core's reply (stepper only).
  struct PendingClient {
    UnaryCallEnd* call;
    std::variant<v1::GetResponse*, v1::PutResponse*, v1::DeleteResponse*> response;
    std::string op;
    std::chrono::steady_clock::time_point start;
  };
  // A CallBatch from a peer: its call ends when every request has its reply,
  // or at the first failure (stepper only).
  struct InboundBatch {
    size_t unanswered;
    bool finished = false;
  };
  // Where the replies to a peer's Replica.Stream leave (services.cc).
  class ReplyStream {
   public:
    virtual ~ReplyStream() = default;
    virtual void Send(std::vector<v1::Envelope> replies) = 0;
  };
  // A peer's request waiting for the core's reply (stepper only).
  struct PendingInbound {
    UnaryCallEnd* call;      // null for a streamed request
    v1::Envelope* response;  // the call's response, or its slot in a batch's
    std::string op;          // "read" or "write" for latency metrics, else empty
    std::chrono::steady_clock::time_point start;
    std::shared_ptr<InboundBatch> batch;  // null for a single Call
    std::shared_ptr<ReplyStream> stream = nullptr;  // set for a streamed request
  };
  // Requests with these bodies may share a CallBatch or travel on a Stream:
  // the core answers them in the step that receives them. At most this many
  // per CallBatch.
  static bool Batchable(const v1::Envelope& request) {
    return request.request_id() != 0 && (request.has_read() || request.has_write());
  }
  static constexpr int kBatchMax = 64;
  using InboundKey = std::tuple<std::string, std::string, uint64_t>;  // address, node, request id

  uint64_t AddClient(PendingClient pending) { pending_clients_[next_client_id_] = pending; return next_client_id_++; }
  void AddInbound(const v1::Envelope& request, PendingInbound pending);
  // Counts the stepper's rounds: what one round's tasks produce leaves together
  // at its end (stepper only).
  uint64_t step_round() const { return step_round_; }
  bool draining() const { return draining_.load(); }
  // A client call (KV service) starts: false once the node drains, and the
  // caller refuses it. Every call begun ends with EndClientCall, so that the
  // drain can wait for them (see Shutdown).
  bool BeginClientCall();
  void EndClientCall() { clients_in_flight_.fetch_sub(1); }
  // Authorization of calls (see security.h).
  bool AllowsClient(const grpc::ServerContextBase* c) { return client_token_.Allows(c); }
  bool AllowsAdmin(const grpc::ServerContextBase* c) { return admin_token_.Allows(c); }
  bool AllowsPeer(const grpc::ServerContextBase* c) const {
    return IsAuthenticatedPeer(c, creds_.tls && !options_.tls_ca.empty());
  }
  NodeMetrics& metrics() { return *metrics_; }
  const ServerOptions& options() const { return options_; }

 private:
  // A started gRPC server on `listen` with these services, and a loop (not
  // yet started) for its completion queue; `what` names it in the error.
  struct Served {
    std::unique_ptr<grpc::Server> server;
    std::unique_ptr<CompletionLoop> loop;
    grpc::ServerCompletionQueue* cq = nullptr;  // the loop's
  };
  absl::StatusOr<Served> Serve(const std::string& listen, const char* what,
                               const std::vector<grpc::Service*>& services, int* port);
  void Loop();
  // Steps the core with the queued work, round after round while work is
  // queued, at most max_rounds; the caller holds the stepper role, and this
  // gives it up. The first round always steps (the tick may be due).
  void Step(int max_rounds);
  // Rounds an in-line stepper takes before it leaves what is queued to the
  // loop thread: a gRPC thread stepping for long would not serve its calls.
  static constexpr int kInlineRoundsMax = 4;
  void SyncLoop();
  // Sends what stepping the core produced, once every write it may depend on
  // is durable: at once, or held until the syncer reports (see Loop()).
  void Release(core::Outputs out);
  struct SyncResult;
  void OnSynced(const SyncResult& result);
  // storage_->Sync(), timed and counted in the metrics (syncer thread, or the
  // stepper for syncs done in line).
  absl::Status SyncStorage();
  void Dispatch(core::Outputs& out);
  // Sends replica reads and writes to one node: on its stream, or else as
  // SendRequests does.
  void SendBatchable(const std::string& address, std::vector<core::OutMessage> messages);
  // Sends requests to one node: one Call, or one CallBatch for several.
  void SendRequests(const std::string& address, std::vector<core::OutMessage> messages);
  // What peers answered, and the requests that will have no answer (a failed
  // call, a broken stream), go to the core.
  using SentRequest = PeerTransport::SentRequest;
  void PostReplies(std::vector<v1::Envelope> replies);
  void PostLost(std::vector<SentRequest> lost);
  // Ends a peer's call with this status; a batch's ends once; a streamed
  // request that fails stays unanswered (stepper only).
  void FinishInbound(PendingInbound& pending, const grpc::Status& status);
  void PublishSnapshot(core::Node& node, int64_t now_ms);
  void ExpireInbound();

  ServerOptions options_;
  std::unique_ptr<storage::StorageEngine> storage_;
  std::unique_ptr<core::Node> node_;
  std::unique_ptr<NodeMetrics> metrics_;
  std::unique_ptr<metrics::HttpEndpoint> http_;
  std::unique_ptr<PeerTransport> peers_;
  Credentials creds_;
  TokenFile client_token_{options_.client_token_file};
  TokenFile admin_token_{options_.admin_token_file};
  // Declared so that the servers go first, their queues and services after.
  std::unique_ptr<Services> services_;
  // Drive the servers' queues: the main one also carries the calls to peers.
  std::unique_ptr<CompletionLoop> completion_loop_;
  std::unique_ptr<CompletionLoop> admin_completion_loop_;  // with --admin-listen
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<grpc::Server> admin_server_;
  int grpc_port_ = 0;

  absl::Mutex mu_;
  std::deque<Task> tasks_ ABSL_GUARDED_BY(mu_);
  bool loop_started_ ABSL_GUARDED_BY(mu_) = false;
  bool loop_stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
  std::thread loop_;

  // Pipelined group commit (durable RocksDB only). The stepper counts the
  // syncs it asks for; the syncer thread syncs everything written up to the
  // latest request and reports (count, status); the core keeps stepping
  // meanwhile, so the next batch forms during the fsync.
  struct SyncResult {
    uint64_t through;  // every sync request up to this one is answered
    absl::Status status;
  };
  const bool sync_in_background_ =
      options_.storage != "memory" && options_.durability != "buffered";
  // Durable nodes leave all stepping to the loop thread: stepping in line on
  // the gRPC thread cost them 20% of their write throughput and doubled p99
  // (bench/RESULTS.md, F26), where it gains buffered nodes 18%.
  const bool step_in_line_ = !sync_in_background_;
  uint64_t syncs_requested_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t syncs_taken_ ABSL_GUARDED_BY(mu_) = 0;
  std::deque<SyncResult> sync_results_ ABSL_GUARDED_BY(mu_);
  bool syncer_stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool outputs_held_ ABSL_GUARDED_BY(mu_) = false;  // held_ is not empty
  // A thread holds the stepper role; and for the stop, the peer calls taken
  // and not answered (pending_inbound_'s size when the role was last left).
  bool stepping_ ABSL_GUARDED_BY(mu_) = false;
  size_t inbound_in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread syncer_;
  // The stop's farewell (core::Node::Farewell): set by the stepper.
  static constexpr int kFarewellNotSent = 0, kFarewellSent = 1, kFarewellAnswered = 2;
  std::atomic<int> farewell_{kFarewellNotSent};
  std::atomic<bool> draining_{false};
  std::atomic<int> clients_in_flight_{0};
  std::atomic<int64_t> last_refused_ms_{0};  // steady clock; client calls refused while draining
  std::atomic<bool> ready_{false};
  std::string not_ready_why_ ABSL_GUARDED_BY(mu_);
  // Once the node learns it was removed from the cluster, it stops itself:
  // this thread runs Shutdown (the stepper cannot: Shutdown joins it).
  std::string removed_by_ ABSL_GUARDED_BY(mu_);
  std::thread self_stop_;

  // When the core ticks next: set by the stepper, read by the loop thread.
  std::atomic<int64_t> next_tick_ms_{0};

  // Stepper only.
  uint64_t next_client_id_ = 1;
  std::map<uint64_t, PendingClient> pending_clients_;
  std::map<InboundKey, PendingInbound> pending_inbound_;
  int64_t next_snapshot_ms_ = 0;
  // Outputs waiting for syncs; while the last sync failed, the node is not
  // ready.
  core::SyncGate sync_gate_{sync_in_background_};
  uint64_t step_round_ = 0;
};

// The KV, Replica and Admin services of a node (services.cc): register them
// with a server, build it, then listen on its completion queue.
class Services {
 public:
  explicit Services(NodeServer::Impl* impl);
  ~Services();
  v1::KV::AsyncService kv;
  v1::Replica::AsyncService replica;
  v1::Admin::AsyncService admin;
  // Asks the server for calls of these services on `cq`, which `loop` drives.
  void ListenKvAndReplica(grpc::ServerCompletionQueue* cq, const CompletionLoop* loop);
  void ListenAdmin(grpc::ServerCompletionQueue* cq, const CompletionLoop* loop);

 private:
  struct Methods;
  NodeServer::Impl* const impl_;
  std::unique_ptr<Methods> methods_;
};

}  // namespace dynamo::server
