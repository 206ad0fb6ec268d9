#include "dynamo/client/client.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "dynamo/base/strings.h"
#include "dynamo/v1/kv.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "pipe_pool.h"
#include "retry.h"
#include "router.h"

namespace dynamo::client {
namespace {

// After a failure asks for a new topology, at most one refresh per this long:
// a cluster in trouble is not also flooded with Topology calls.
constexpr int64_t kRefreshSpacingMs = 500;
// A refresh that failed is tried again after this long (or the interval, if shorter).
constexpr int64_t kRefreshRetryMs = 1000;
// Error summaries name at most this many attempts, each message cut to this.
constexpr size_t kErrorsListedMax = 8;
constexpr size_t kErrorMessageBytesMax = 200;

int64_t SteadyMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// A call's deadline on the steady clock: deadline_ms from now.
int64_t DeadlineOf(const ClientOptions& options) { return SteadyMs() + options.deadline_ms; }

int64_t WallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

absl::Status FromGrpc(const grpc::Status& s) {
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
}

uint32_t Pick(uint32_t call, uint32_t fallback) { return call != 0 ? call : fallback; }

void SetQuorum(const Quorum& call, const Quorum& dflt, v1::Quorum* out) {
  out->set_n(Pick(call.n, dflt.n));
  out->set_r(Pick(call.r, dflt.r));
  out->set_w(Pick(call.w, dflt.w));
}

// Per operation (picked by its response's type): its unary call, and its
// result in a pipe's answer.
grpc::Status CallUnary(v1::KV::Stub& kv, grpc::ClientContext* context,
                       const v1::PipeRequest& request, v1::GetResponse* response) {
  return kv.Get(context, request.get(), response);
}
grpc::Status CallUnary(v1::KV::Stub& kv, grpc::ClientContext* context,
                       const v1::PipeRequest& request, v1::PutResponse* response) {
  return kv.Put(context, request.put(), response);
}
grpc::Status CallUnary(v1::KV::Stub& kv, grpc::ClientContext* context,
                       const v1::PipeRequest& request, v1::DeleteResponse* response) {
  return kv.Delete(context, request.delete_(), response);
}
v1::GetResponse* ResultIn(v1::PipeResponse& answer, v1::GetResponse*) {
  return answer.has_get() ? answer.mutable_get() : nullptr;
}
v1::PutResponse* ResultIn(v1::PipeResponse& answer, v1::PutResponse*) {
  return answer.has_put() ? answer.mutable_put() : nullptr;
}
v1::DeleteResponse* ResultIn(v1::PipeResponse& answer, v1::DeleteResponse*) {
  return answer.has_delete_() ? answer.mutable_delete_() : nullptr;
}

GetResult FromResponse(v1::GetResponse& r) {
  GetResult out;
  out.found = r.found();
  out.context = std::move(*r.mutable_context());
  out.siblings.reserve(r.siblings_size());
  for (v1::Sibling& s : *r.mutable_siblings()) {
    out.siblings.push_back({std::move(*s.mutable_value()), s.timestamp_ms()});
  }
  return out;
}

}  // namespace

class Client::Impl {
 public:
  explicit Impl(ClientOptions options)
      : options_(std::move(options)),
        policy_{options_.attempts_max, options_.backoff_initial_ms, options_.backoff_max_ms},
        health_(options_.node_down_ms),
        rng_(std::random_device{}()) {}

  const ClientOptions& options() const { return options_; }

  // Runs one Get, Put or Delete: picks nodes by the routing mode and retries
  // on another node while the failure is retryable, the attempts last and
  // the deadline allows. The request is built once, in a PipeRequest, and
  // each attempt sends it on a pipe or as a unary call; the result lands in
  // *response.
  template <typename Response>
  absl::Status Run(std::string_view key, v1::PipeRequest& request, Response* response,
                   int64_t deadline_ms) {
    return Run(key, deadline_ms, [&](Channel& channel, grpc::ClientContext& context,
                        std::chrono::system_clock::time_point deadline) {
      response->Clear();
      if (channel.pipes != nullptr && channel.pipes->served()) {
        grpc::Status status = PipeAttempt(*channel.pipes, request, response, deadline);
        // A node older than KV.Pipe gets this request, and the next ones, as calls.
        if (status.error_code() != grpc::StatusCode::UNIMPLEMENTED) return status;
      }
      return CallUnary(*channel.kv, &context, request, response);
    });
  }

  // A node's channel, its KV stub, and its pipes when the client uses them.
  struct Channel {
    std::shared_ptr<grpc::Channel> channel;
    std::shared_ptr<v1::KV::Stub> kv;
    std::shared_ptr<internal::PipePool> pipes;
  };
  using Attempt = std::function<grpc::Status(Channel&, grpc::ClientContext&,
                                             std::chrono::system_clock::time_point deadline)>;

  // One attempt on a pipe: the request's own status, as a unary call's.
  template <typename Response>
  static grpc::Status PipeAttempt(internal::PipePool& pipes, v1::PipeRequest& request,
                                  Response* response,
                                  std::chrono::system_clock::time_point deadline) {
    request.set_timeout_ms(static_cast<uint32_t>(std::max<int64_t>(
        1, std::chrono::duration_cast<std::chrono::milliseconds>(
               deadline - std::chrono::system_clock::now())
               .count())));
    v1::PipeResponse answer;
    grpc::Status status = pipes.Call(request, &answer, deadline);
    if (!status.ok()) return status;
    if (answer.code() != grpc::StatusCode::OK) {
      return grpc::Status(static_cast<grpc::StatusCode>(answer.code()), answer.message());
    }
    Response* result = ResultIn(answer, response);
    if (result == nullptr) {
      return grpc::Status(grpc::StatusCode::INTERNAL,
                          "the node answered on the pipe without the request's kind of result");
    }
    *response = std::move(*result);
    return grpc::Status::OK;
  }

  // deadline_ms: steady clock; a call's is deadline_ms from its start, and
  // the calls an Update makes share the Update's.
  absl::Status Run(std::string_view key, int64_t deadline_ms, const Attempt& attempt) {
    ++calls_;
    const int64_t start_ms = SteadyMs();
    if (start_ms >= deadline_ms) {
      return absl::DeadlineExceededError("the call's deadline passed before it could start");
    }
    MaybeRefreshTopology(start_ms, deadline_ms);
    const std::vector<std::string> plan = Plan(key, start_ms);
    if (plan.empty()) return absl::FailedPreconditionError("no node address known");

    struct Failure {
      std::string address;
      absl::StatusCode code;
      std::string message;
      int times;
    };
    std::vector<Failure> errors;
    absl::Status last;
    for (int n = 1;; ++n) {
      const std::string& address = plan[(n - 1) % plan.size()];
      const int64_t now_ms = SteadyMs();
      grpc::ClientContext context;
      const auto attempt_deadline =
          std::chrono::system_clock::now() +
          std::chrono::milliseconds(
              std::max<int64_t>(1, std::min(options_.attempt_timeout_ms, deadline_ms - now_ms)));
      context.set_deadline(attempt_deadline);
      ++attempts_;
      if (n > 1) ++retries_;
      Channel channel = ChannelFor(address);
      const grpc::Status status = attempt(channel, context, attempt_deadline);
      if (status.ok()) {
        absl::MutexLock lock(&mu_);
        health_.MarkSucceeded(address);
        return absl::OkStatus();
      }
      last = FromGrpc(status);
      const absl::StatusCode code = last.code();
      if (internal::Retryable(code) || code == absl::StatusCode::kFailedPrecondition) {
        // The node may be down, cut off, or no longer in the ring: try others
        // first for a while, and learn the ring again.
        absl::MutexLock lock(&mu_);
        health_.MarkFailed(address, now_ms);
        next_refresh_ms_ = std::min(next_refresh_ms_, last_refresh_ms_ + kRefreshSpacingMs);
      }
      // Every attempt's answer: the first node may say why (a quorum it cannot
      // reach) while the last only says it is down.
      std::string message(last.message());
      if (message.size() > kErrorMessageBytesMax) {
        message = message.substr(0, kErrorMessageBytesMax) + "...";
      }
      auto same = std::find_if(errors.begin(), errors.end(), [&](const Failure& f) {
        return f.address == address && f.code == code && f.message == message;
      });
      if (same != errors.end()) {
        ++same->times;
      } else if (errors.size() < kErrorsListedMax) {
        errors.push_back({address, code, std::move(message), 1});
      }
      const int64_t backoff_ms = policy_.BackoffMs(n + 1, Random01());
      const int64_t remaining_ms = deadline_ms - SteadyMs() - backoff_ms;
      if (!policy_.ShouldRetry(code, n + 1, remaining_ms)) {
        if (n == 1) return absl::Status(code, Cat(address, ": ", last.message()));
        std::string summary = Cat(n, " attempts failed: ");
        for (size_t i = 0; i < errors.size(); ++i) {
          const Failure& f = errors[i];
          summary += Cat(i > 0 ? "; " : "", f.address,
                         f.times > 1 ? Cat(" (", f.times, " times)") : std::string(), ": ",
                         absl::StatusCodeToString(f.code), ": ", f.message);
        }
        return absl::Status(code, summary);
      }
      if (backoff_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(backoff_ms));
    }
  }

  absl::StatusOr<std::shared_ptr<const Topology>> RefreshTopology(int64_t deadline_ms) {
    {
      absl::MutexLock lock(&mu_);
      last_refresh_ms_ = SteadyMs();
    }
    ++topology_refreshes_;
    std::vector<std::string> addresses;
    {
      absl::MutexLock lock(&mu_);
      // Seeds first, in their order: the round robin of requests is not disturbed.
      addresses = internal::PlanRoundRobin(
          internal::KnownAddresses(options_.seeds, topology_.get()), 0, health_, SteadyMs());
    }
    absl::Status last = absl::FailedPreconditionError("no node address known");
    for (const std::string& address : addresses) {
      const int64_t now_ms = SteadyMs();
      if (now_ms >= deadline_ms) break;
      grpc::ClientContext context;
      context.set_deadline(
          std::chrono::system_clock::now() +
          std::chrono::milliseconds(std::min(options_.attempt_timeout_ms, deadline_ms - now_ms)));
      v1::TopologyResponse response;
      const grpc::Status status = ChannelFor(address).kv->Topology(&context, {}, &response);
      if (!status.ok()) {
        last = absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                            Cat(address, ": ", status.error_message()));
        absl::MutexLock lock(&mu_);
        health_.MarkFailed(address, now_ms);
        continue;
      }
      absl::StatusOr<Topology> topology = TopologyFromResponse(response);
      if (!topology.ok()) {
        last =
            absl::Status(topology.status().code(), Cat(address, ": ", topology.status().message()));
        continue;
      }
      if (topology->ring.empty()) {  // it has not founded or joined a ring: ask another
        last = absl::UnavailableError(Cat(address, ": the node knows no ring yet"));
        continue;
      }
      auto shared = std::make_shared<const Topology>(*std::move(topology));
      absl::MutexLock lock(&mu_);
      health_.MarkSucceeded(address);
      // A lagging node may answer with an older ring than one already known.
      if (topology_ == nullptr || shared->ring_version >= topology_->ring_version) {
        topology_ = shared;
      }
      next_refresh_ms_ = SteadyMs() + options_.ring_refresh_interval_ms;
      return topology_;
    }
    ++topology_refresh_failures_;
    absl::MutexLock lock(&mu_);
    next_refresh_ms_ = SteadyMs() + std::min(kRefreshRetryMs, options_.ring_refresh_interval_ms);
    return last;
  }

  std::shared_ptr<const Topology> topology() const {
    absl::MutexLock lock(&mu_);
    return topology_;
  }

  ClientStats stats() const {
    return {calls_.load(), attempts_.load(), retries_.load(), topology_refreshes_.load(),
            topology_refresh_failures_.load()};
  }

 private:
  // Refreshes the topology when it is due and no other thread is at it. The
  // first one is waited for (client-driven routing needs it); later ones too,
  // by the one caller that found them due, within part of its deadline.
  void MaybeRefreshTopology(int64_t now_ms, int64_t deadline_ms) {
    if (options_.routing != Routing::kClientDriven && !options_.discover_nodes) return;
    {
      absl::MutexLock lock(&mu_);
      if (refreshing_ || now_ms < next_refresh_ms_) return;
      refreshing_ = true;
    }
    // Half of the call's time at most, so that the call itself can still run.
    (void)RefreshTopology(now_ms + (deadline_ms - now_ms) / 2);
    absl::MutexLock lock(&mu_);
    refreshing_ = false;
  }

  std::vector<std::string> Plan(std::string_view key, int64_t now_ms) {
    absl::MutexLock lock(&mu_);
    if (options_.routing == Routing::kClientDriven && topology_ != nullptr &&
        !topology_->ring.empty()) {
      std::vector<std::string> plan = internal::PlanClientDriven(*topology_, key, health_, now_ms,
                                                                     rotation_++);
      if (!plan.empty()) return plan;
    }
    // Server-driven, or client-driven without a ring yet.
    return internal::PlanRoundRobin(internal::KnownAddresses(options_.seeds, topology_.get()),
                                    rotation_++, health_, now_ms);
  }

  Channel ChannelFor(const std::string& address) {
    absl::MutexLock lock(&mu_);
    auto it = stubs_.find(address);
    if (it != stubs_.end()) {
      // A channel whose connection failed keeps failing calls at once for
      // seconds after the node is back (gRPC 1.51's pick_first waits before it
      // connects again, whatever the backoff settings). A call sent to it means
      // we want to know now: a new channel connects at once, and to a node
      // still down fails within a millisecond (connection refused).
      if (it->second.channel->GetState(false) != GRPC_CHANNEL_TRANSIENT_FAILURE) {
        return it->second;
      }
      stubs_.erase(it);
    }
    if (stubs_.size() >= kChannelsMax) {
      // Nodes come and go: keep the channels of nodes still known.
      const std::vector<std::string> known =
          internal::KnownAddresses(options_.seeds, topology_.get());
      const std::set<std::string> keep(known.begin(), known.end());
      std::erase_if(stubs_, [&](const auto& e) { return !keep.contains(e.first); });
      if (stubs_.size() >= kChannelsMax) stubs_.erase(stubs_.begin());
    }
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(static_cast<int>(options_.grpc_message_bytes_max));
    args.SetMaxSendMessageSize(static_cast<int>(options_.grpc_message_bytes_max));
    // Its own connection, not one shared through gRPC's global subchannel
    // pool with the channel just dropped (which would inherit its wait).
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    Channel channel;
    channel.channel = grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
    channel.kv = v1::KV::NewStub(channel.channel);
    if (options_.pipes) channel.pipes = std::make_shared<internal::PipePool>(channel.kv);
    return stubs_.emplace(address, std::move(channel)).first->second;
  }

  double Random01() {
    absl::MutexLock lock(&mu_);
    return std::uniform_real_distribution<double>(0.0, 1.0)(rng_);
  }

  static constexpr size_t kChannelsMax = core::kRingNodesMax + 64;

  const ClientOptions options_;
  const internal::RetryPolicy policy_;
  std::atomic<uint64_t> calls_{0}, attempts_{0}, retries_{0}, topology_refreshes_{0},
      topology_refresh_failures_{0};

  mutable absl::Mutex mu_;
  std::shared_ptr<const Topology> topology_ ABSL_GUARDED_BY(mu_);
  int64_t next_refresh_ms_ ABSL_GUARDED_BY(mu_) = 0;  // steady clock; 0: now
  int64_t last_refresh_ms_ ABSL_GUARDED_BY(mu_) = 0;
  bool refreshing_ ABSL_GUARDED_BY(mu_) = false;
  internal::HealthTracker health_ ABSL_GUARDED_BY(mu_);
  uint64_t rotation_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, Channel> stubs_ ABSL_GUARDED_BY(mu_);
  std::mt19937_64 rng_ ABSL_GUARDED_BY(mu_);
};

absl::StatusOr<std::unique_ptr<Client>> Client::Create(ClientOptions options) {
  if (options.seeds.empty()) {
    return absl::InvalidArgumentError("client needs at least one seed address (host:port)");
  }
  for (const std::string& s : options.seeds) {
    if (s.empty()) return absl::InvalidArgumentError("client seed address is empty");
  }
  if (options.deadline_ms <= 0 || options.attempt_timeout_ms <= 0 || options.attempts_max < 1 ||
      options.update_attempts_max < 1 || options.ring_refresh_interval_ms <= 0 ||
      options.node_down_ms < 0 || options.backoff_initial_ms < 0 ||
      options.backoff_max_ms < options.backoff_initial_ms) {
    return absl::InvalidArgumentError(
        "client options: deadline_ms, attempt_timeout_ms, ring_refresh_interval_ms must be > 0, "
        "attempts_max and update_attempts_max >= 1, node_down_ms >= 0, and "
        "0 <= backoff_initial_ms <= backoff_max_ms");
  }
  if (options.attempts_max > 100 || options.update_attempts_max > 100) {
    return absl::InvalidArgumentError("client options: at most 100 attempts");
  }
  return std::unique_ptr<Client>(new Client(std::make_unique<Impl>(std::move(options))));
}

Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Client::~Client() = default;

absl::StatusOr<GetResult> Client::Get(std::string_view key, const GetOptions& options) {
  return GetBefore(key, options, DeadlineOf(impl_->options()));
}

absl::StatusOr<GetResult> Client::GetBefore(std::string_view key, const GetOptions& options,
                                            int64_t deadline_ms) {
  const Resolver& resolver = options.resolver ? options.resolver : impl_->options().resolver;
  if (options.resolve && !resolver) {
    return absl::InvalidArgumentError(
        "Get with resolve needs a resolver (GetOptions or ClientOptions)");
  }
  v1::PipeRequest envelope;
  v1::GetRequest& request = *envelope.mutable_get();
  request.set_key(std::string(key));
  SetQuorum(options.quorum, impl_->options().quorum, request.mutable_quorum());
  v1::GetResponse response;
  absl::Status status = impl_->Run(key, envelope, &response, deadline_ms);
  if (!status.ok()) return status;
  GetResult result = FromResponse(response);
  if (!options.resolve || result.siblings.size() < 2) return result;

  std::string merged = resolver(result.siblings);
  WriteOptions write;
  write.quorum = options.quorum;
  absl::StatusOr<WriteResult> written = PutBefore(key, merged, result.context, write, deadline_ms);
  if (!written.ok()) return result;  // the read still stands, with its siblings
  result.siblings = {Sibling{std::move(merged), WallMs()}};
  result.context = std::move(written->context);
  result.resolved = true;
  return result;
}

absl::StatusOr<WriteResult> Client::Put(std::string_view key, std::string_view value,
                                        std::string_view context, const WriteOptions& options) {
  return PutBefore(key, value, context, options, DeadlineOf(impl_->options()));
}

absl::StatusOr<WriteResult> Client::PutBefore(std::string_view key, std::string_view value,
                                              std::string_view context,
                                              const WriteOptions& options, int64_t deadline_ms) {
  v1::PipeRequest envelope;
  v1::PutRequest& request = *envelope.mutable_put();
  request.set_key(std::string(key));
  request.set_value(std::string(value));
  request.set_context(std::string(context));
  SetQuorum(options.quorum, impl_->options().quorum, request.mutable_quorum());
  v1::PutResponse response;
  absl::Status status = impl_->Run(key, envelope, &response, deadline_ms);
  if (!status.ok()) return status;
  return WriteResult{std::move(*response.mutable_context())};
}

absl::StatusOr<WriteResult> Client::Delete(std::string_view key, std::string_view context,
                                           const WriteOptions& options) {
  v1::PipeRequest envelope;
  v1::DeleteRequest& request = *envelope.mutable_delete_();
  request.set_key(std::string(key));
  request.set_context(std::string(context));
  SetQuorum(options.quorum, impl_->options().quorum, request.mutable_quorum());
  v1::DeleteResponse response;
  absl::Status status = impl_->Run(key, envelope, &response, DeadlineOf(impl_->options()));
  if (!status.ok()) return status;
  return WriteResult{std::move(*response.mutable_context())};
}

absl::StatusOr<WriteResult> Client::Update(std::string_view key, const Resolver& fn,
                                           const WriteOptions& options) {
  if (!fn) return absl::InvalidArgumentError("Update needs a function");
  // One deadline for the whole Update, its rounds included.
  const int64_t deadline_ms = DeadlineOf(impl_->options());
  absl::Status last;
  for (int round = 1; round <= impl_->options().update_attempts_max; ++round) {
    if (round > 1 && SteadyMs() >= deadline_ms) break;
    GetOptions read;
    read.quorum = options.quorum;
    absl::StatusOr<GetResult> current = GetBefore(key, read, deadline_ms);
    if (!current.ok()) {
      last = current.status();
      if (!internal::Retryable(last.code())) return last;
      continue;
    }
    absl::StatusOr<WriteResult> written =
        PutBefore(key, fn(current->siblings), current->context, options, deadline_ms);
    if (written.ok() || !internal::Retryable(written.status().code())) return written;
    last = written.status();
  }
  return last;
}

absl::StatusOr<std::shared_ptr<const Topology>> Client::RefreshTopology() {
  return impl_->RefreshTopology(DeadlineOf(impl_->options()));
}

std::shared_ptr<const Topology> Client::topology() const { return impl_->topology(); }

ClientStats Client::stats() const { return impl_->stats(); }

const ClientOptions& Client::options() const { return impl_->options(); }

}  // namespace dynamo::client
