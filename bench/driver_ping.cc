// The ping driver: one empty unary gRPC call per operation, the ceiling of
// what any gRPC store can do on this machine with the same client. Two
// servers: the bench's own trivial Ping service (`dynamo-bench serve-ping`, a
// separate process like a node; its handler answers inline on gRPC's thread),
// or KV.Topology of a dynamo-node (which also goes through the node's loop).

#include <signal.h>

#include <thread>

#include "dynamo/base/strings.h"
#include "dynamo/bench/v1/ping.grpc.pb.h"
#include "dynamo/v1/kv.grpc.pb.h"
#include "driver.h"
#include "grpc_util.h"

namespace dynamo::bench {
namespace {

class PingSession final : public Session {
 public:
  PingSession(bench::v1::Ping::Stub* ping, dynamo::v1::KV::Stub* kv, int64_t timeout_ms)
      : ping_(ping), kv_(kv), timeout_ms_(timeout_ms) {}

  absl::Status Read(uint64_t, std::string_view, bool* found) override {
    *found = true;
    return Ping();
  }
  absl::Status Write(uint64_t, std::string_view, std::string_view) override { return Ping(); }
  absl::Status ReadModifyWrite(uint64_t, std::string_view, std::string_view) override {
    return Ping();
  }

 private:
  absl::Status Ping() {
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
    if (!ping_.empty()) {
      return std::unique_ptr<Session>(
          new PingSession(ping_[i % ping_.size()].get(), nullptr, options_.timeout_ms));
    }
    return std::unique_ptr<Session>(
        new PingSession(nullptr, kv_[i % kv_.size()].get(), options_.timeout_ms));
  }

  std::string Describe() const override {
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
};

}  // namespace

absl::StatusOr<std::unique_ptr<Driver>> MakePingDriver(const DriverOptions& options) {
  if (options.targets.empty()) {
    return absl::InvalidArgumentError(
        "ping driver needs --targets host:port (a `dynamo-bench serve-ping` or, with "
        "--ping-method topology, a dynamo-node)");
  }
  if (options.ping_method != "echo" && options.ping_method != "topology") {
    return absl::InvalidArgumentError("--ping-method must be echo or topology");
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
