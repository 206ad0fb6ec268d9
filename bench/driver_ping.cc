// The ping driver: one empty unary gRPC call per operation, the ceiling of
// what any gRPC store can do on this machine with the same client. Two
// servers: the bench's own trivial Ping service (`dynamo-bench serve-ping`, a
// separate process like a node; its handler answers inline on gRPC's thread),
// or KV.Topology of a dynamo-node (which also goes through the node's loop).
// With --ping-method=stream each session instead keeps one Ping.Stream open
// and sends one message and waits for its answer per operation: the round
// trip without a call's setup, what a streaming client API would pay.

#include <signal.h>

#include <thread>

#include "dynamo/base/strings.h"
#include "dynamo/bench/v1/ping.grpc.pb.h"
#include "dynamo/v1/kv.grpc.pb.h"
#include "driver.h"
#include "grpc_util.h"

namespace dynamo::bench {
namespace {

// Every operation is one empty round trip.
class RoundTripSession : public Session {
 public:
  absl::Status Read(uint64_t, std::string_view, bool* found) override {
    *found = true;
    return Ping();
  }
  absl::Status Write(uint64_t, std::string_view, std::string_view) override { return Ping(); }
  absl::Status ReadModifyWrite(uint64_t, std::string_view, std::string_view) override {
    return Ping();
  }

 protected:
  virtual absl::Status Ping() = 0;
};

class PingSession final : public RoundTripSession {
 public:
  PingSession(bench::v1::Ping::Stub* ping, dynamo::v1::KV::Stub* kv, int64_t timeout_ms)
      : ping_(ping), kv_(kv), timeout_ms_(timeout_ms) {}

 private:
  absl::Status Ping() override {
    grpc::ClientContext context;
    SetTimeout(&context, timeout_ms_);
    if (ping_ != nullptr) {
      bench::v1::PingRequest request;
      bench::v1::PingResponse response;
      return FromGrpc(ping_->Ping(&context, request, &response));
    }
    dynamo::v1::TopologyRequest request;
    dynamo::v1::TopologyResponse response;
    return FromGrpc(kv_->Topology(&context, request, &response));
  }

  bench::v1::Ping::Stub* ping_;
  dynamo::v1::KV::Stub* kv_;
  int64_t timeout_ms_;
};

// One stream per session, one message in flight on it. --timeout-ms does not
// apply: the blocking stream API has no deadline per message (one on the
// stream would end it), and serve-ping answers at once; a server that dies
// ends the stream, whose next operation then opens a new one.
class StreamPingSession final : public RoundTripSession {
 public:
  explicit StreamPingSession(bench::v1::Ping::Stub* ping) : ping_(ping) {}
  ~StreamPingSession() override {
    if (stream_ == nullptr) return;
    context_->TryCancel();
    stream_->Finish().IgnoreError();
  }

 private:
  absl::Status Ping() override {
    if (stream_ == nullptr) {
      context_ = std::make_unique<grpc::ClientContext>();
      stream_ = ping_->Stream(context_.get());
    }
    bench::v1::PingRequest request;
    bench::v1::PingResponse response;
    if (stream_->Write(request) && stream_->Read(&response)) return absl::OkStatus();
    // A broken stream: its status, and a new stream for the next operation.
    stream_->WritesDone();
    const grpc::Status status = stream_->Finish();
    stream_.reset();
    context_.reset();
    return status.ok() ? absl::UnavailableError("the ping stream ended") : FromGrpc(status);
  }

  bench::v1::Ping::Stub* ping_;
  std::unique_ptr<grpc::ClientContext> context_;
  std::unique_ptr<grpc::ClientReaderWriter<bench::v1::PingRequest, bench::v1::PingResponse>>
      stream_;
};

class PingDriver final : public Driver {
 public:
  explicit PingDriver(DriverOptions options) : options_(std::move(options)) {
    for (int c = 0; c < std::max(1, options_.channels); ++c) {
      for (const std::string& t : options_.targets) {
        auto channel = OwnChannel(t);
        if (options_.ping_method == "topology") {
          kv_.push_back(dynamo::v1::KV::NewStub(channel));
        } else {
          ping_.push_back(bench::v1::Ping::NewStub(channel));
        }
      }
    }
  }

  absl::Status Prepare() override {
    auto session = NewSession(0);
    absl::Status last;
    for (int i = 0; i < 100; ++i) {
      last = (*session)->Write(0, "", "");
      if (last.ok()) return last;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return last;
  }

  absl::StatusOr<std::unique_ptr<Session>> NewSession(int index) override {
    const size_t i = static_cast<size_t>(index);
    if (options_.ping_method == "stream") {
      return std::unique_ptr<Session>(new StreamPingSession(ping_[i % ping_.size()].get()));
    }
    if (!ping_.empty()) {
      return std::unique_ptr<Session>(
          new PingSession(ping_[i % ping_.size()].get(), nullptr, options_.timeout_ms));
    }
    return std::unique_ptr<Session>(
        new PingSession(nullptr, kv_[i % kv_.size()].get(), options_.timeout_ms));
  }

  std::string Describe() const override {
    if (options_.ping_method == "stream") {
      return Cat("ping: one empty message each way per operation on a Ping.Stream per session, "
                 "at ", options_.targets.size(), " target(s), ", options_.channels,
                 " connection(s) each");
    }
    return Cat("ping: empty unary gRPC ",
               options_.ping_method == "topology" ? "KV.Topology on dynamo-node"
                                                  : "Ping on `dynamo-bench serve-ping`",
               " at ", options_.targets.size(), " target(s), ", options_.channels,
               " connection(s) each");
  }

 private:
  DriverOptions options_;
  std::vector<std::unique_ptr<bench::v1::Ping::Stub>> ping_;
  std::vector<std::unique_ptr<dynamo::v1::KV::Stub>> kv_;
};

class PingService final : public bench::v1::Ping::CallbackService {
 public:
  grpc::ServerUnaryReactor* Ping(grpc::CallbackServerContext* context,
                                 const bench::v1::PingRequest* request,
                                 bench::v1::PingResponse* response) override {
    if (!request->payload().empty()) response->set_payload(request->payload());
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  grpc::ServerBidiReactor<bench::v1::PingRequest, bench::v1::PingResponse>* Stream(
      grpc::CallbackServerContext*) override {
    return new Echo();
  }

 private:
  // Reads a request, writes its response, reads the next: one at a time.
  class Echo final : public grpc::ServerBidiReactor<bench::v1::PingRequest,
                                                    bench::v1::PingResponse> {
   public:
    Echo() { StartRead(&request_); }
    void OnReadDone(bool ok) override {
      if (!ok) {
        Finish(grpc::Status::OK);
        return;
      }
      response_.set_payload(request_.payload());
      StartWrite(&response_);
    }
    void OnWriteDone(bool ok) override {
      if (!ok) {
        Finish(grpc::Status::CANCELLED);
        return;
      }
      StartRead(&request_);
    }
    void OnDone() override { delete this; }

   private:
    bench::v1::PingRequest request_;
    bench::v1::PingResponse response_;
  };
};

}  // namespace

absl::StatusOr<std::unique_ptr<Driver>> MakePingDriver(const DriverOptions& options) {
  if (options.targets.empty()) {
    return absl::InvalidArgumentError(
        "ping driver needs --targets host:port (a `dynamo-bench serve-ping` or, with "
        "--ping-method topology, a dynamo-node)");
  }
  if (options.ping_method != "echo" && options.ping_method != "topology" &&
      options.ping_method != "stream") {
    return absl::InvalidArgumentError("--ping-method must be echo, topology or stream");
  }
  return std::unique_ptr<Driver>(new PingDriver(options));
}

int ServePing(const std::string& listen) {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  PingService service;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) {
    std::fprintf(stderr, "dynamo-bench serve-ping: cannot listen on %s\n", listen.c_str());
    return 1;
  }
  std::fprintf(stderr, "dynamo-bench serve-ping: serving on %s (port %d)\n", listen.c_str(), port);
  int sig = 0;
  sigwait(&signals, &sig);
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  server->Wait();
  return 0;
}

absl::StatusOr<std::unique_ptr<Driver>> MakeDriver(const DriverOptions& options) {
  if (options.driver == "dynamo") return MakeDynamoDriver(options);
  if (options.driver == "etcd") return MakeEtcdDriver(options);
  if (options.driver == "redis") return MakeRedisDriver(options);
  if (options.driver == "ping") return MakePingDriver(options);
  return absl::InvalidArgumentError(
      Cat("unknown --driver '", options.driver, "': expected dynamo, etcd, redis or ping"));
}

}  // namespace dynamo::bench
