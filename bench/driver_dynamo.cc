// The driver of our store, through the C++ client library (dynamo_client):
// server-driven (round robin over the nodes, any node coordinates) or
// client-driven (the client routes each request to the first healthy node of
// the key's preference list, from the ring learned by KV.Topology).

#include <chrono>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "dynamo/base/strings.h"
#include "dynamo/client/client.h"
#include "driver.h"

namespace dynamo::bench {
namespace {

// The last causal context the benchmark saw for each record, so that an
// update replaces the value it read or wrote last instead of becoming a new
// sibling (a write without a context is concurrent with everything: repeated
// blind updates of one key pile up siblings until the node refuses more).
// An application keeps contexts the same way. Sharded locks: many threads.
class ContextCache {
 public:
  explicit ContextCache(uint64_t records) : contexts_(records) {}

  std::string Get(uint64_t index) {
    if (index >= contexts_.size()) return {};
    absl::MutexLock lock(&shards_[index % kShards]);
    return contexts_[index];
  }
  void Set(uint64_t index, std::string context) {
    if (index >= contexts_.size()) return;
    absl::MutexLock lock(&shards_[index % kShards]);
    contexts_[index] = std::move(context);
  }

 private:
  static constexpr size_t kShards = 256;
  absl::Mutex shards_[kShards];
  std::vector<std::string> contexts_;  // guarded by shards_[index % kShards]
};

// One cache per process, shared by the drivers of every routing mode: a
// context is the key's causal history, valid whichever node or client mode
// wrote it, so a run of client-driven after server-driven keeps its contexts.
std::shared_ptr<ContextCache> SharedContextCache(uint64_t records) {
  static absl::Mutex mu(absl::kConstInit);
  static std::shared_ptr<ContextCache>* cache ABSL_GUARDED_BY(mu) = nullptr;
  static uint64_t cache_records ABSL_GUARDED_BY(mu) = 0;
  absl::MutexLock lock(&mu);
  if (cache == nullptr || cache_records != records) {
    delete cache;
    cache = new std::shared_ptr<ContextCache>(std::make_shared<ContextCache>(records));
    cache_records = records;
  }
  return *cache;
}

class DynamoSession final : public Session {
 public:
  DynamoSession(client::Client* client, ContextCache* cache, client::Quorum quorum)
      : client_(client), cache_(cache) {
    get_.quorum = quorum;
    write_.quorum = quorum;
  }

  absl::Status Read(uint64_t index, std::string_view key, bool* found) override {
    absl::StatusOr<client::GetResult> r = client_->Get(key, get_);
    if (!r.ok()) return r.status();
    *found = r->found;
    if (cache_ != nullptr) cache_->Set(index, std::move(r->context));
    return absl::OkStatus();
  }

  absl::Status Write(uint64_t index, std::string_view key, std::string_view value) override {
    const std::string context = cache_ != nullptr ? cache_->Get(index) : std::string();
    absl::StatusOr<client::WriteResult> w = client_->Put(key, value, context, write_);
    if (!w.ok()) return w.status();
    if (cache_ != nullptr) cache_->Set(index, std::move(w->context));
    return absl::OkStatus();
  }

  absl::Status ReadModifyWrite(uint64_t index, std::string_view key,
                               std::string_view value) override {
    absl::StatusOr<client::GetResult> r = client_->Get(key, get_);
    if (!r.ok()) return r.status();
    absl::StatusOr<client::WriteResult> w = client_->Put(key, value, r->context, write_);
    if (!w.ok()) return w.status();
    if (cache_ != nullptr) cache_->Set(index, std::move(w->context));
    return absl::OkStatus();
  }

 private:
  client::Client* client_;
  ContextCache* cache_;
  client::GetOptions get_;
  client::WriteOptions write_;
};

class DynamoDriver final : public Driver {
 public:
  explicit DynamoDriver(DriverOptions options) : options_(std::move(options)) {}

  absl::Status Init() {
    client::ClientOptions co;
    co.seeds = options_.targets;
    co.routing = options_.routing == "client" ? client::Routing::kClientDriven
                                              : client::Routing::kServerDriven;
    co.quorum = {options_.n, options_.r, options_.w};
    co.deadline_ms = options_.timeout_ms;
    co.attempt_timeout_ms = options_.timeout_ms;
    co.attempts_max = options_.attempts;
    co.pipes = options_.pipes;
    absl::StatusOr<std::unique_ptr<client::Client>> c = client::Client::Create(co);
    if (!c.ok()) return c.status();
    client_ = *std::move(c);
    if (options_.context_cache) cache_ = SharedContextCache(options_.records);
    return absl::OkStatus();
  }

  absl::Status Prepare() override {
    // The ring must be formed (and, client-driven, learned) before the clock
    // starts; a cluster still joining would make the first seconds errors.
    // Every target's own view counts: a node whose ring still lacks members
    // refuses writes it cannot place (server-driven requests reach them all).
    const size_t want = options_.wait_nodes > 0 ? options_.wait_nodes : options_.targets.size();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    for (const std::string& target : options_.targets) {
      client::ClientOptions one;
      one.seeds = {target};
      one.deadline_ms = one.attempt_timeout_ms = options_.timeout_ms;
      absl::StatusOr<std::unique_ptr<client::Client>> c = client::Client::Create(one);
      if (!c.ok()) return c.status();
      absl::Status last;
      while (true) {
        absl::StatusOr<std::shared_ptr<const client::Topology>> t = (*c)->RefreshTopology();
        if (t.ok()) {
          size_t owning = 0;
          for (size_t i = 0; i < (*t)->ring.nodes().size(); ++i) {
            if (!(*t)->ring.RangesReplicatedBy((*t)->ring.nodes()[i].id, 1).empty()) ++owning;
          }
          if (owning >= want) {
            topology_line_ = Cat((*t)->nodes.size(), " nodes, ", owning, " owning ranges, N=",
                                 (*t)->replicas, ", ring v", (*t)->ring_version);
            break;
          }
          last = absl::UnavailableError(Cat(target, "'s ring has ", owning,
                                            " owning nodes, want ", want));
        } else {
          last = t.status();
        }
        if (std::chrono::steady_clock::now() >= deadline) {
          return absl::DeadlineExceededError(
              Cat("cluster not ready after 60 s: ", last.message()));
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
      }
    }
    return client_->RefreshTopology().status();
  }

  absl::StatusOr<std::unique_ptr<Session>> NewSession(int) override {
    return std::unique_ptr<Session>(new DynamoSession(client_.get(), cache_.get(),
                                                      {options_.n, options_.r, options_.w}));
  }

  std::string Describe() const override {
    return Cat("dynamo ", options_.routing, "-driven via dynamo_client (", topology_line_,
               "; quorum n=", options_.n, " r=", options_.r, " w=", options_.w,
               " (0 = cluster default); contexts ", options_.context_cache ? "cached" : "none",
               options_.pipes ? "; requests on pipes" : "; a unary call per request", ")");
  }

  std::string Notes() const override {
    return options_.routing == "client"
               ? "client-driven: a write is 1 client RPC + N-1 replica RPCs; a read 1 + N-1"
               : "server-driven: as client-driven, plus a forward hop when the node is not "
                 "a replica of the key (never with 3 nodes and N=3)";
  }

 private:
  DriverOptions options_;
  std::unique_ptr<client::Client> client_;
  std::shared_ptr<ContextCache> cache_;
  std::string topology_line_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Driver>> MakeDynamoDriver(const DriverOptions& options) {
  if (options.targets.empty()) {
    return absl::InvalidArgumentError("dynamo driver needs --targets host:port[,host:port...]");
  }
  if (options.routing != "server" && options.routing != "client") {
    return absl::InvalidArgumentError("--routing must be server or client");
  }
  auto driver = std::make_unique<DynamoDriver>(options);
  if (absl::Status s = driver->Init(); !s.ok()) return s;
  return std::unique_ptr<Driver>(std::move(driver));
}

}  // namespace dynamo::bench
