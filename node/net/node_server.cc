#include "dynamo/net/node_server.h"

#include <pthread.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "dynamo/base/strings.h"
#include "dynamo/storage/memory_engine.h"
#include "dynamo/storage/rocksdb_engine.h"
#include "node_server_impl.h"

namespace dynamo::server {
namespace {

int64_t WallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The core's clock: wall time at start, then advanced by the monotonic clock.
// A wall clock stepped backwards (NTP, a restored VM) must not stall ticks,
// deadlines and the failure detector. Timestamps follow the wall clock: the
// core gets its lead over this clock every tick (WallClockOffsetMs).
int64_t NowMs() {
  static const int64_t wall_at_start = WallMs();
  static const auto steady_at_start = std::chrono::steady_clock::now();
  return wall_at_start + std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::steady_clock::now() - steady_at_start)
                             .count();
}

int64_t WallClockOffsetMs(int64_t now_ms) { return WallMs() - now_ms; }

constexpr int64_t kSnapshotIntervalMs = 100;
// How long no client may have called before a draining node stops its gRPC
// server (see Shutdown).
constexpr int64_t kDrainQuietMs = 100;

}  // namespace

// ---------------------------------------------------------------- NodeServer

NodeServer::NodeServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
NodeServer::~NodeServer() { impl_->Shutdown(); }
void NodeServer::Shutdown() { impl_->Shutdown(); }
void NodeServer::Wait() { impl_->Wait(); }
std::string NodeServer::removed_by() const { return impl_->removed_by(); }
int NodeServer::grpc_port() const { return impl_->grpc_port(); }
int NodeServer::http_port() const { return impl_->http_port(); }

absl::StatusOr<std::unique_ptr<NodeServer>> NodeServer::Start(const ServerOptions& options) {
  auto impl = std::make_unique<Impl>(options);
  if (absl::Status s = impl->Start(); !s.ok()) return s;
  return std::unique_ptr<NodeServer>(new NodeServer(std::move(impl)));
}

// ---------------------------------------------------------------- Impl

NodeServer::Impl::~Impl() {
  if (self_stop_.joinable()) self_stop_.join();
  Shutdown();
}

int NodeServer::Impl::http_port() const { return http_ ? http_->port() : 0; }

absl::Status NodeServer::Impl::Start() {
  // Storage first: a node that cannot open its data must not join anything.
  if (options_.storage == "memory") {
    storage_ = storage::NewMemoryEngine();
  } else {
    std::error_code ec;
    std::filesystem::create_directories(options_.data_dir, ec);
    if (ec) {
      return absl::FailedPreconditionError(
          Cat("cannot create data directory ", options_.data_dir, ": ", ec.message()));
    }
    storage::RocksDbOptions ro;
    ro.path = (std::filesystem::path(options_.data_dir) / "db").string();
    ro.durability = options_.durability == "buffered" ? storage::RocksDbOptions::Durability::kBuffered
                                                      : storage::RocksDbOptions::Durability::kDurable;
    ro.block_cache_bytes = options_.block_cache_mib << 20;
    ro.memtable_bytes = options_.memtable_mib << 20;
    ro.blob_min_bytes = options_.blob_min_bytes;
    absl::StatusOr<std::unique_ptr<storage::StorageEngine>> db = storage::OpenRocksDb(ro);
    if (!db.ok()) return db.status();
    storage_ = *std::move(db);
  }
  uint64_t seed = static_cast<uint64_t>(WallMs()) ^
                  static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  absl::StatusOr<std::unique_ptr<core::Node>> node =
      core::Node::Open(options_.node, storage_.get(), seed, NowMs());
  if (!node.ok()) return node.status();
  node_ = *std::move(node);
  node_->SetWallClockOffset(WallClockOffsetMs(NowMs()));

  absl::StatusOr<std::unique_ptr<NodeMetrics>> m = NodeMetrics::Create(options_.sla_seconds);
  if (!m.ok()) return m.status();
  metrics_ = *std::move(m);
  PublishSnapshot(*node_, NowMs());

  absl::StatusOr<Credentials> creds = MakeCredentials(options_);
  if (!creds.ok()) return creds.status();
  creds_ = *std::move(creds);
  if (absl::Status s = client_token_.Load(); !s.ok()) return s;
  if (absl::Status s = admin_token_.Load(); !s.ok()) return s;
  services_ = std::make_unique<Services>(this);
  const bool separate_admin = !options_.admin_listen.empty() && options_.admin_listen != options_.listen;
  std::vector<grpc::Service*> services = {&services_->kv, &services_->replica};
  if (!separate_admin) services.push_back(&services_->admin);
  absl::StatusOr<Served> main = Serve(options_.listen, "gRPC", services, &grpc_port_);
  if (!main.ok()) return main.status();
  server_ = std::move(main->server);
  completion_loop_ = std::move(main->loop);
  // Replies and losses on the streams to peers go to the core as messages
  // do (see SendRequests).
  PeerTransport::StreamHandlers on_stream;
  on_stream.replies = [this](std::vector<v1::Envelope> replies) { PostReplies(std::move(replies)); };
  on_stream.lost = [this](std::vector<SentRequest> lost) { PostLost(std::move(lost)); };
  peers_ = std::make_unique<PeerTransport>(main->cq, options_.grpc_message_bytes_max, creds_.peer,
                                           std::move(on_stream));
  services_->ListenKvAndReplica(main->cq, completion_loop_.get());
  if (!separate_admin) services_->ListenAdmin(main->cq, completion_loop_.get());
  // Named for top -H, perf and dynamo-bench's CPU split by thread.
  completion_loop_->Start("dynamo-grpc");
  if (separate_admin) {
    int port = 0;
    absl::StatusOr<Served> admin =
        Serve(options_.admin_listen, "the admin API", {&services_->admin}, &port);
    if (!admin.ok()) return admin.status();
    admin_server_ = std::move(admin->server);
    admin_completion_loop_ = std::move(admin->loop);
    services_->ListenAdmin(admin->cq, admin_completion_loop_.get());
    admin_completion_loop_->Start("dynamo-admin");
  }

  http_ = std::make_unique<metrics::HttpEndpoint>(
      options_.http, &metrics_->registry(), [this](std::string* why) {
        if (draining_.load()) {
          *why = "shutting down";
          return false;
        }
        if (!ready_.load()) {
          absl::MutexLock lock(&mu_);
          *why = not_ready_why_;
          return false;
        }
        return true;
      },
      [this](std::string* why) {
        const absl::Status health = storage_->Health();
        if (!health.ok()) *why = std::string(health.message());
        return health.ok();
      });
  if (absl::Status s = http_->Start(); !s.ok()) return s;

  {
    absl::MutexLock lock(&mu_);
    loop_started_ = true;
  }
  // Named for top -H, perf and dynamo-bench's CPU split by thread.
  loop_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "dynamo-loop");
    Loop();
  });
  if (sync_in_background_) {
    syncer_ = std::thread([this] {
      pthread_setname_np(pthread_self(), "dynamo-sync");
      SyncLoop();
    });
  }
  return absl::OkStatus();
}

absl::StatusOr<NodeServer::Impl::Served> NodeServer::Impl::Serve(
    const std::string& listen, const char* what, const std::vector<grpc::Service*>& services,
    int* port) {
  grpc::ServerBuilder builder;
  builder.AddListeningPort(listen, creds_.server, port);
  // gRPC binds with SO_REUSEPORT by default: a second node given the same
  // port would start and share the first one's connections instead of failing.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.SetMaxReceiveMessageSize(static_cast<int>(options_.grpc_message_bytes_max));
  builder.SetMaxSendMessageSize(static_cast<int>(options_.grpc_message_bytes_max));
  PeerTransport::AcceptKeepalive(builder);
  for (grpc::Service* service : services) builder.RegisterService(service);
  std::unique_ptr<grpc::ServerCompletionQueue> cq = builder.AddCompletionQueue();
  Served served;
  served.server = builder.BuildAndStart();
  if (!served.server || *port == 0) {
    return absl::UnavailableError(Cat("cannot serve ", what, " on ", listen, " (is the port in use?)"));
  }
  served.cq = cq.get();
  served.loop = std::make_unique<CompletionLoop>(std::move(cq));
  return served;
}

bool NodeServer::Impl::PeerCallsDone() {
  absl::MutexLock lock(&mu_);
  return tasks_.empty() && !stepping_ && inbound_in_flight_ == 0;
}

bool NodeServer::Impl::Post(Task task, Priority priority) {
  {
    absl::MutexLock lock(&mu_);
    if (loop_stopping_) return false;
    // New client work is refused first when the core falls behind; answers
    // from peers are taken until a far higher bound (dropping one is a lost
    // message, which the core survives, but it wastes the work done).
    const size_t limit = priority == Priority::kNewWork ? kNewWorkQueueMax : kQueueMax;
    if (tasks_.size() >= limit) return false;
    tasks_.push_back(std::move(task));
    // The stepper takes it with the rest; or else the loop thread does, once
    // it runs (a node that failed to start still steps its stop in line).
    if (stepping_ || (!step_in_line_ && loop_started_)) return true;
    stepping_ = true;
  }
  Step(kInlineRoundsMax);
  return true;
}

void NodeServer::Impl::AddInbound(const v1::Envelope& request, PendingInbound pending) {
  auto [it, inserted] = pending_inbound_.try_emplace(
      {request.from_address(), request.from_node(), request.request_id()}, pending);
  if (!inserted) {
    // The same request again while the first waits (a peer's bug or a
    // replay): the first call ends, so that no call is left without an end.
    FinishInbound(it->second, grpc::Status(grpc::StatusCode::ABORTED,
                                           "superseded by a request with the same id"));
    it->second = std::move(pending);
  }
}

void NodeServer::Impl::Loop() {
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      const int64_t wait_ms = std::max<int64_t>(0, next_tick_ms_.load() - NowMs());
      // Work no one steps (an in-line stepper left it, or sync results), or
      // the stop; else the tick when it is due.
      mu_.AwaitWithTimeout(
          absl::Condition(
              +[](Impl* self) ABSL_NO_THREAD_SAFETY_ANALYSIS {
                return !self->stepping_ &&
                       (!self->tasks_.empty() || !self->sync_results_.empty() ||
                        (self->loop_stopping_ && !self->outputs_held_));
              },
              this),
          absl::Milliseconds(wait_ms));
      mu_.Await(absl::Condition(
          +[](Impl* self) ABSL_NO_THREAD_SAFETY_ANALYSIS { return !self->stepping_; }, this));
      // Stops once nothing is left to answer: held outputs wait for their sync.
      if (loop_stopping_ && tasks_.empty() && sync_results_.empty() && !outputs_held_) break;
      stepping_ = true;
    }
    Step(std::numeric_limits<int>::max());
  }
}

void NodeServer::Impl::Step(int max_rounds) {
  for (int round = 0;; ++round) {
    std::deque<Task> batch;
    std::deque<SyncResult> synced;
    {
      absl::MutexLock lock(&mu_);
      if (round > 0 && (round == max_rounds || (tasks_.empty() && sync_results_.empty()))) {
        outputs_held_ = sync_gate_.holding();
        inbound_in_flight_ = pending_inbound_.size();
        stepping_ = false;  // work left now wakes the loop thread
        return;
      }
      batch.swap(tasks_);
      synced.swap(sync_results_);
    }
    for (const SyncResult& result : synced) OnSynced(result);
    ++step_round_;
    const int64_t now = NowMs();
    core::Outputs out;
    const bool tick = now >= next_tick_ms_.load();
    if (tick) node_->SetWallClockOffset(WallClockOffsetMs(now));
    for (Task& task : batch) task(*node_, now, &out);
    if (tick) {
      node_->Tick(now, &out);
      next_tick_ms_.store(now + options_.tick_ms);
    }
    if (farewell_.load() == kFarewellSent && node_->FarewellAnswered()) {
      farewell_.store(kFarewellAnswered);
    }
    Release(std::move(out));
    if (now >= next_snapshot_ms_) {
      next_snapshot_ms_ = now + kSnapshotIntervalMs;
      PublishSnapshot(*node_, now);
      ExpireInbound();
    }
  }
}

void NodeServer::Impl::SyncLoop() {
  while (true) {
    uint64_t through = 0;
    bool delay = false;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](Impl* self) ABSL_NO_THREAD_SAFETY_ANALYSIS {
            return self->syncs_requested_ > self->syncs_taken_ || self->syncer_stopping_;
          },
          this));
      if (syncs_requested_ == syncs_taken_) return;  // stopping, nothing asked
      delay = options_.sync_delay_us > 0 && !syncer_stopping_;
      if (!delay) through = syncs_taken_ = syncs_requested_;
    }
    if (delay) {
      // Group commit over a longer window: the writes that arrive meanwhile
      // share this fsync (bench/RESULTS.md, F35).
      std::this_thread::sleep_for(std::chrono::microseconds(options_.sync_delay_us));
      absl::MutexLock lock(&mu_);
      through = syncs_taken_ = syncs_requested_;
    }
    // Covers every write made before the request was counted: the stepper
    // counts a request after the writes of its batch returned.
    absl::Status status = SyncStorage();
    absl::MutexLock lock(&mu_);
    sync_results_.push_back({through, std::move(status)});
  }
}

void NodeServer::Impl::Release(core::Outputs out) {
  const uint64_t requested_before = sync_gate_.requested();
  core::Outputs now = sync_gate_.Take(std::move(out));
  if (!now.messages.empty() || !now.replies.empty()) Dispatch(now);
  const uint64_t requested = sync_gate_.requested();
  if (requested == requested_before) return;
  if (sync_in_background_) {
    absl::MutexLock lock(&mu_);
    syncs_requested_ = requested;
    return;
  }
  // Not a real fsync (memory, or buffered: a check that writes still work),
  // so it is done here, in line.
  OnSynced({requested, SyncStorage()});
}

absl::Status NodeServer::Impl::SyncStorage() {
  const auto start = std::chrono::steady_clock::now();
  absl::Status status = storage_->Sync();
  metrics_->StorageSync(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(),
      !status.ok());
  return status;
}

void NodeServer::Impl::OnSynced(const SyncResult& result) {
  for (core::Outputs& out : sync_gate_.Synced(result.through, result.status)) Dispatch(out);
}

void NodeServer::Impl::Dispatch(core::Outputs& out) {
  const auto now = std::chrono::steady_clock::now();
  // Replica reads and writes for one node leave together (on its stream,
  // or in a CallBatch).
  std::map<std::string, std::vector<core::OutMessage>> batched;
  std::vector<std::pair<std::shared_ptr<ReplyStream>, std::vector<v1::Envelope>>> streamed;
  for (core::OutMessage& m : out.messages) {
    if (!m.envelope.is_reply()) {
      if (Batchable(m.envelope)) {
        auto& [address, batch] = *batched.try_emplace(m.to_address).first;
        batch.push_back(std::move(m));
        if (batch.size() == kBatchMax) SendBatchable(address, std::exchange(batch, {}));
      } else {
        const std::string address = m.to_address;
        std::vector<core::OutMessage> one;
        one.push_back(std::move(m));
        SendRequests(address, std::move(one));
      }
      continue;
    }
    auto it = pending_inbound_.find({m.to_address, m.to_node, m.envelope.request_id()});
    if (it == pending_inbound_.end()) continue;  // the caller gave up
    PendingInbound p = std::move(it->second);
    pending_inbound_.erase(it);
    if (p.batch != nullptr && p.batch->finished) continue;  // the batch's call ended
    if (!p.op.empty()) {
      metrics_->ReplicaRequest(p.op, std::chrono::duration<double>(now - p.start).count());
    }
    if (p.stream != nullptr) {
      // A stream's replies of this step leave together.
      auto s = std::find_if(streamed.begin(), streamed.end(),
                            [&p](const auto& sr) { return sr.first == p.stream; });
      if (s == streamed.end()) s = streamed.insert(streamed.end(), {p.stream, {}});
      s->second.push_back(std::move(m.envelope));
      continue;
    }
    *p.response = std::move(m.envelope);
    FinishInbound(p, grpc::Status::OK);
  }
  for (auto& [stream, replies] : streamed) stream->Send(std::move(replies));
  for (auto& [address, messages] : batched) {
    if (!messages.empty()) SendBatchable(address, std::move(messages));
  }
  for (core::ClientReply& r : out.replies) {
    auto it = pending_clients_.find(r.client_id);
    if (it == pending_clients_.end()) continue;
    PendingClient p = it->second;
    pending_clients_.erase(it);
    if (r.status.ok()) {
      if (auto* get = std::get_if<v1::GetResponse>(&r.response)) {
        metrics_->SiblingsRead(static_cast<size_t>(get->siblings_size()));
        if (const size_t bytes = get->ByteSizeLong(); bytes > options_.grpc_message_bytes_max) {
          // Merged on a replica from concurrent writes that each fit (the
          // coordinator's bound, NodeConfig::object_bytes_max): say how to
          // get at them rather than fail the send with gRPC's own words.
          r.status = absl::ResourceExhaustedError(
              Cat("the key's ", get->siblings_size(), " concurrent values (siblings) make an ",
                  bytes, "-byte answer, more than --grpc-message-bytes-max (",
                  options_.grpc_message_bytes_max,
                  ") allows: raise it on every node to read and resolve them"));
        } else {
          *std::get<v1::GetResponse*>(p.response) = std::move(*get);
        }
      } else if (auto* put = std::get_if<v1::PutResponse>(&r.response)) {
        *std::get<v1::PutResponse*>(p.response) = std::move(*put);
      } else if (auto* del = std::get_if<v1::DeleteResponse>(&r.response)) {
        *std::get<v1::DeleteResponse*>(p.response) = std::move(*del);
      }
    }
    const grpc::Status status(static_cast<grpc::StatusCode>(r.status.code()),
                              std::string(r.status.message()));
    metrics_->ClientRequest(p.op, absl::StatusCodeToString(r.status.code()),
                            std::chrono::duration<double>(now - p.start).count());
    p.call->Finish(status);
    EndClientCall();
  }
}

void NodeServer::Impl::SendBatchable(const std::string& address,
                                     std::vector<core::OutMessage> messages) {
  const size_t count = messages.size();
  std::vector<core::OutMessage> rest =
      peers_->Stream(address, std::move(messages), options_.node.request_timeout_ms + 100);
  if (rest.size() < count) metrics_->PeerStreamed(count - rest.size());
  if (!rest.empty()) SendRequests(address, std::move(rest));
}

void NodeServer::Impl::SendRequests(const std::string& address,
                                    std::vector<core::OutMessage> messages) {
  // What the answers go to: the node and request id of each request, but
  // those without an id (gossip to a seed's address) await no answer.
  std::vector<SentRequest> sent;
  for (const core::OutMessage& m : messages) {
    if (m.envelope.request_id() != 0) sent.emplace_back(m.to_node, m.envelope.request_id());
  }
  auto answered = [this, sent = std::move(sent)](const grpc::Status& status,
                                                 std::vector<v1::Envelope> replies) {
    if (status.ok()) {
      std::erase_if(replies, [](const v1::Envelope& r) {
        return r.body_case() == v1::Envelope::BODY_NOT_SET;  // no reply: the request times out
      });
      PostReplies(std::move(replies));
    } else {
      PostLost(sent);
    }
  };
  const int64_t timeout_ms = options_.node.request_timeout_ms + 100;
  metrics_->PeerCall(messages.size() == 1 ? "call" : "batch", messages.size());
  if (messages.size() == 1) {
    peers_->Call(address, std::move(messages[0].envelope), timeout_ms,
                 [answered = std::move(answered)](const grpc::Status& status, v1::Envelope reply) {
                   std::vector<v1::Envelope> replies;
                   replies.push_back(std::move(reply));
                   answered(status, std::move(replies));
                 });
    return;
  }
  v1::EnvelopeBatch batch;
  for (core::OutMessage& m : messages) *batch.add_envelopes() = std::move(m.envelope);
  peers_->CallBatch(address, std::move(batch), timeout_ms,
                    [answered = std::move(answered)](const grpc::Status& status,
                                                     v1::EnvelopeBatch batch) {
                      std::vector<v1::Envelope> replies;
                      for (v1::Envelope& r : *batch.mutable_envelopes()) {
                        replies.push_back(std::move(r));
                      }
                      answered(status, std::move(replies));
                    });
}

void NodeServer::Impl::PostReplies(std::vector<v1::Envelope> replies) {
  if (replies.empty()) return;
  (void)Post(
      [replies = std::move(replies)](core::Node& n, int64_t now, core::Outputs* out) {
        for (const v1::Envelope& reply : replies) n.HandleMessage(reply, now, out);
      },
      Priority::kAnswer);
}

void NodeServer::Impl::PostLost(std::vector<SentRequest> lost) {
  if (lost.empty()) return;
  (void)Post(
      [lost = std::move(lost)](core::Node& n, int64_t now, core::Outputs* out) {
        for (const auto& [to_node, request_id] : lost) {
          n.HandleSendFailure(to_node, request_id, now, out);
        }
      },
      Priority::kAnswer);
}

void NodeServer::Impl::FinishInbound(PendingInbound& pending, const grpc::Status& status) {
  if (pending.stream != nullptr) return;  // its requester times out, or its stream broke
  if (pending.batch == nullptr) {
    pending.call->Finish(status);
    return;
  }
  InboundBatch& batch = *pending.batch;
  if (batch.finished) return;
  // A failure ends the whole call: the caller treats every request in it as
  // unanswered, as it would a lost message.
  if (!status.ok() || --batch.unanswered == 0) {
    batch.finished = true;
    pending.call->Finish(status);
  }
}

void NodeServer::Impl::ExpireInbound() {
  // The core answers every request; this only guards against a caller whose
  // answer would never come (a bug): its call ends instead of leaking.
  const auto limit = std::chrono::steady_clock::now() -
                     std::chrono::milliseconds(4 * options_.node.request_timeout_ms + 1000);
  for (auto it = pending_inbound_.begin(); it != pending_inbound_.end();) {
    if (it->second.start < limit) {
      FinishInbound(it->second, grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "no answer"));
      it = pending_inbound_.erase(it);
    } else {
      ++it;
    }
  }
}

void NodeServer::Impl::PublishSnapshot(core::Node& node, int64_t now_ms) {
  CoreSnapshot s;
  s.counters = node.counters();
  for (const auto& [owner, count] : node.store().hint_counts()) s.hint_backlog[owner] = count;
  const core::Membership& m = node.membership();
  const v1::MembersResponse members = node.Members(now_ms);
  for (const v1::Member& member : members.members()) {
    std::string state = v1::NodeState_Name(member.state());
    state = state.substr(std::string("NODE_STATE_").size());
    for (char& c : state) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    ++s.members_by_state[state];
    // A node that left, or was removed, is gone for good, not unreachable.
    if (!member.alive() && member.state() != v1::NODE_STATE_LEFT && member.removed_by().empty()) {
      ++s.members_unreachable;
    }
  }
  s.ring_version = m.ring_state().version();
  const v1::NodeStatus status = node.Status(now_ms);
  s.owned_partitions = status.owned_partitions();
  s.keys = status.keys();
  s.unowned_keys = status.unowned_keys();
  s.reaps_owed = status.reaps_owed();
  s.inflight = node.operations_in_flight();
  s.storage = storage_->Stats();
  const core::Ring& ring = m.ring();
  if (!ring.empty()) {
    double share = 0;
    for (size_t r : ring.RangesReplicatedBy(node.id(), node.config().replicas_n)) {
      share += static_cast<double>(ring.ranges()[r].Width()) / 18446744073709551616.0;
    }
    s.ownership_ratio = share;
  }
  std::string why;
  bool ready = node.Ready(&why);
  if (ready && !sync_gate_.error().ok()) {  // it acknowledges nothing: clients go elsewhere
    ready = false;
    why = Cat("storage could not sync: ", sync_gate_.error().message());
  }
  s.ready = ready;
  metrics_->Publish(std::move(s));
  {
    absl::MutexLock lock(&mu_);
    not_ready_why_ = why;
  }
  ready_.store(ready);
  if (node.removal()) {
    absl::MutexLock lock(&mu_);
    if (removed_by_.empty()) {
      removed_by_ = node.removal()->removed_by();
      std::fprintf(stderr,
                   "dynamo-node %s: removed from the cluster by %s; stopping. Its data is kept, "
                   "but this storage may not start again: wipe it to bring the node back anew\n",
                   node.id().c_str(), removed_by_.c_str());
      self_stop_ = std::thread([this] { Shutdown(); });
    }
  }
}

bool NodeServer::Impl::BeginClientCall() {
  // Counted before draining_ is read, and Shutdown sets draining_ before it
  // reads the count: a call either sees the drain or is waited for.
  clients_in_flight_.fetch_add(1);
  if (!draining_.load()) return true;
  clients_in_flight_.fetch_sub(1);
  last_refused_ms_.store(NowMs());
  return false;
}

void NodeServer::Impl::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    if (shut_down_) return;
    shut_down_ = true;
  }
  draining_.store(true);
  const auto grace = std::chrono::system_clock::now() +
                     std::chrono::milliseconds(options_.shutdown_grace_ms);
  // Each step of the stop waits for its condition, and all of them together
  // for the grace period at most.
  const auto wait_until = [&grace](const auto& done) {
    while (std::chrono::system_clock::now() < grace && !done()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  };
  // First the node drains with its gRPC server still up: a client call that
  // arrives now is refused by BeginClientCall with UNAVAILABLE ("retry
  // elsewhere"). Stopping the gRPC server at once would have it cancel calls
  // that race the stop (CANCELLED, which clients do not retry). The drain
  // ends when no client call is in flight and clients have stopped sending
  // for a moment, or when the grace period ends.
  last_refused_ms_.store(NowMs());
  wait_until([this] {
    return clients_in_flight_.load() == 0 && NowMs() - last_refused_ms_.load() >= kDrainQuietMs;
  });
  // A leaving node tells its live peers its last state and waits for their
  // answers: stopping right after it turned LEFT, gossip might never carry
  // that to them, and they would show it LEAVING for good. A node whose start
  // failed never served: it has nobody to tell, and no transport to tell it.
  bool served = false;
  {
    absl::MutexLock lock(&mu_);
    served = loop_started_;
  }
  if (node_ && served && Post(
                   [this](core::Node& node, int64_t now_ms, core::Outputs* out) {
                     node.Farewell(now_ms, out);
                     farewell_.store(node.FarewellAnswered() ? kFarewellAnswered
                                                             : kFarewellSent);
                   },
                   Priority::kAnswer)) {
    wait_until([this] { return farewell_.load() == kFarewellAnswered; });
  }
  // Then the calls in flight from peers finish, the core still stepping, and
  // the gRPC servers stop at once: a shutdown with a later deadline also
  // waits for idle connections a client keeps open (the whole grace in
  // bench/stop-time, RESULTS F22). A peer call that races the stop is
  // cancelled, a failed send the peer survives.
  wait_until([this] { return PeerCallsDone(); });
  const auto now = std::chrono::system_clock::now();
  if (admin_server_) admin_server_->Shutdown(now);
  if (server_) server_->Shutdown(now);
  if (peers_) peers_->Close();
  {
    absl::MutexLock lock(&mu_);
    loop_stopping_ = true;
  }
  if (loop_.joinable()) loop_.join();
  {
    absl::MutexLock lock(&mu_);
    syncer_stopping_ = true;
  }
  if (syncer_.joinable()) syncer_.join();
  if (http_) http_->Stop();
  // The loop has stopped, and Post refuses work: no step follows, the node
  // records its clean stop.
  if (node_) {
    if (absl::Status s = node_->Close(); !s.ok()) {
      std::fprintf(stderr,
                   "dynamo-node %s: could not record the clean stop (the next start takes a new "
                   "clock actor): %s\n",
                   options_.node.node_id.c_str(), s.ToString().c_str());
    }
  } else if (storage_) {
    (void)storage_->Sync();
  }
  // Calls the core will never answer now.
  for (auto& [id, p] : pending_clients_) {
    p.call->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "node shutting down"));
    EndClientCall();
  }
  pending_clients_.clear();
  for (auto& [key, p] : pending_inbound_) {
    FinishInbound(p, grpc::Status(grpc::StatusCode::UNAVAILABLE, "node shutting down"));
  }
  pending_inbound_.clear();
  // The queues go last: every call has ended or been finished above.
  if (completion_loop_) completion_loop_->Stop();
  if (admin_completion_loop_) admin_completion_loop_->Stop();
  if (server_) server_->Wait();
  if (admin_server_) admin_server_->Wait();
}

void NodeServer::Impl::Wait() {
  if (server_) server_->Wait();
  bool stopped_itself = false;
  {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](Impl* self) ABSL_NO_THREAD_SAFETY_ANALYSIS { return self->loop_stopping_; }, this));
    // The thread was started before its Shutdown could set loop_stopping_.
    stopped_itself = !removed_by_.empty();
  }
  // A node that stopped itself is stopped once that thread's Shutdown ends
  // (its storage synced, the clean stop recorded).
  if (stopped_itself && self_stop_.joinable()) self_stop_.join();
}

}  // namespace dynamo::server
