// The etcd v3 driver: Range and Put over etcd's gRPC KV API, round robin over
// the members like clientv3's balancer (a follower forwards a Put to the
// leader, which commits it through raft: a majority fsyncs its log first).

#include <atomic>
#include <chrono>
#include <thread>

#include "dynamo/base/strings.h"
#include "driver.h"
#include "etcdserverpb/kv_subset.grpc.pb.h"
#include "grpc_util.h"

namespace dynamo::bench {
namespace {

class EtcdSession final : public Session {
 public:
  EtcdSession(std::vector<etcdserverpb::KV::Stub*> stubs, size_t first, const DriverOptions& o)
      : stubs_(std::move(stubs)), next_(first), timeout_ms_(o.timeout_ms),
        serializable_(o.etcd_serializable) {}

  absl::Status Read(uint64_t, std::string_view key, bool* found) override {
    etcdserverpb::RangeRequest request;
    request.set_key(std::string(key));
    request.set_serializable(serializable_);
    etcdserverpb::RangeResponse response;
    grpc::ClientContext context;
    SetTimeout(&context, timeout_ms_);
    absl::Status s = FromGrpc(Next().Range(&context, request, &response));
    if (s.ok()) *found = response.kvs_size() > 0;
    return s;
  }

  absl::Status Write(uint64_t, std::string_view key, std::string_view value) override {
    etcdserverpb::PutRequest request;
    request.set_key(std::string(key));
    request.set_value(std::string(value));
    etcdserverpb::PutResponse response;
    grpc::ClientContext context;
    SetTimeout(&context, timeout_ms_);
    return FromGrpc(Next().Put(&context, request, &response));
  }

  absl::Status ReadModifyWrite(uint64_t index, std::string_view key,
                               std::string_view value) override {
    bool found = false;
    if (absl::Status s = Read(index, key, &found); !s.ok()) return s;
    return Write(index, key, value);
  }

 private:
  etcdserverpb::KV::Stub& Next() { return *stubs_[next_++ % stubs_.size()]; }

  std::vector<etcdserverpb::KV::Stub*> stubs_;
  size_t next_;
  int64_t timeout_ms_;
  bool serializable_;
};

class EtcdDriver final : public Driver {
 public:
  explicit EtcdDriver(DriverOptions options) : options_(std::move(options)) {
    for (int c = 0; c < std::max(1, options_.channels); ++c) {
      for (const std::string& t : options_.targets) {
        stubs_.push_back(etcdserverpb::KV::NewStub(OwnChannel(t)));
      }
    }
  }

  absl::Status Prepare() override {
    // A cluster just started may still be electing its leader: wait until a
    // Put through every member succeeds.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    absl::Status last;
    while (std::chrono::steady_clock::now() < deadline) {
      bool all = true;
      for (size_t i = 0; i < stubs_.size(); ++i) {
        etcdserverpb::PutRequest request;
        request.set_key("dynamo-bench-ready");
        request.set_value("1");
        etcdserverpb::PutResponse response;
        grpc::ClientContext context;
        context.set_wait_for_ready(true);  // connecting is not a failure yet
        SetTimeout(&context, 5000);
        absl::Status s = FromGrpc(stubs_[i]->Put(&context, request, &response));
        if (!s.ok()) {
          all = false;
          last = absl::Status(
              s.code(), Cat(options_.targets[i % options_.targets.size()], ": ", s.message()));
        }
      }
      if (all) return absl::OkStatus();
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    return absl::DeadlineExceededError(Cat("etcd not ready after 60 s: ", last.message()));
  }

  absl::StatusOr<std::unique_ptr<Session>> NewSession(int index) override {
    std::vector<etcdserverpb::KV::Stub*> stubs;
    for (auto& s : stubs_) stubs.push_back(s.get());
    return std::unique_ptr<Session>(
        new EtcdSession(std::move(stubs), static_cast<size_t>(index), options_));
  }

  std::string Describe() const override {
    return Cat("etcd v3 gRPC KV (", options_.targets.size(), " members, round robin, ",
               options_.channels, " connection(s) per member, ",
               options_.etcd_serializable ? "serializable" : "linearizable", " reads)");
  }

  std::string Notes() const override {
    return "put: client -> member (-> leader) -> raft append to followers, majority fsync";
  }

 private:
  DriverOptions options_;
  std::vector<std::unique_ptr<etcdserverpb::KV::Stub>> stubs_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Driver>> MakeEtcdDriver(const DriverOptions& options) {
  if (options.targets.empty()) {
    return absl::InvalidArgumentError("etcd driver needs --targets host:port[,...] (client URLs)");
  }
  return std::unique_ptr<Driver>(new EtcdDriver(options));
}

}  // namespace dynamo::bench
