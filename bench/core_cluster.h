// CoreCluster: real core::Node instances in one process, over storage engines
// the caller makes, joined by an instant, lossless network: the protocol the
// servers run, without gRPC, threads or clocks. For the benchmarks that
// measure what the core and its storage cost (antientropy_bytes, core_cost).
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "dynamo/core/hash.h"
#include "dynamo/core/node.h"
#include "dynamo/core/sync_gate.h"
#include "dynamo/storage/engine.h"

namespace dynamo::bench {

// The i-th key the in-process benchmarks write: spread over the ring.
inline std::string Key(uint64_t i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "user%016llx", static_cast<unsigned long long>(core::Mix64(i + 1)));
  return buf;
}

class CoreCluster {
 public:
  // One engine per node; `make_engine(i)` exits the process on failure.
  using EngineFactory = std::function<std::unique_ptr<storage::StorageEngine>(size_t node)>;
  // Called with every message delivered (counting, by type).
  using Observer = std::function<void(const core::OutMessage&)>;
  // Called with every client reply.
  using ReplyHandler = std::function<void(const core::ClientReply&)>;

  CoreCluster(size_t n, const core::NodeConfig& base, const EngineFactory& make_engine) {
    for (size_t i = 0; i < n; ++i) {
      core::NodeConfig c = base;
      c.node_id = "n" + std::to_string(i);
      c.address = "10.0.0." + std::to_string(i + 1) + ":7000";
      c.seeds = {"10.0.0.1:7000"};
      configs_.push_back(c);
      by_address_[c.address] = i;
      engines_.push_back(make_engine(i));
    }
    for (size_t i = 0; i < n; ++i) {
      auto node = core::Node::Open(configs_[i], engines_[i].get(), 1000 + i, now_);
      if (!node.ok()) {
        std::fprintf(stderr, "open: %s\n", std::string(node.status().message()).c_str());
        std::exit(1);
      }
      nodes_.push_back(*std::move(node));
    }
    gates_.resize(n);
  }

  core::Node& node(size_t i) { return *nodes_[i]; }
  storage::StorageEngine& engine(size_t i) { return *engines_[i]; }
  size_t size() const { return nodes_.size(); }
  int64_t now() const { return now_; }
  void set_observer(Observer observer) { observer_ = std::move(observer); }
  void set_reply_handler(ReplyHandler handler) { reply_handler_ = std::move(handler); }
  uint64_t client_errors() const { return client_errors_; }

  // Hands a client request to node `at`; Drain delivers what follows.
  uint64_t Client(size_t at, core::ClientRequest request) {
    const uint64_t id = next_client_++;
    core::Outputs out;
    nodes_[at]->HandleClient(id, std::move(request), now_, &out);
    Process(at, std::move(out));
    return id;
  }

  void Drain() {
    while (!queue_.empty()) {
      auto [from, m] = std::move(queue_.front());
      queue_.pop_front();
      auto it = by_address_.find(m.to_address);
      if (it == by_address_.end()) continue;
      if (observer_) observer_(m);
      core::Outputs out;
      nodes_[it->second]->HandleMessage(m.envelope, now_, &out);
      Process(it->second, std::move(out));
    }
  }

  // Advances time by `ms`, ticking every node every 10 ms and delivering at once.
  void Advance(int64_t ms) {
    for (int64_t t = 0; t < ms; t += 10) {
      now_ += 10;
      for (size_t i = 0; i < nodes_.size(); ++i) {
        core::Outputs out;
        nodes_[i]->Tick(now_, &out);
        Process(i, std::move(out));
      }
      Drain();
    }
  }

  // Advances time until every node holds the same ring of all nodes.
  bool FormRing(int64_t max_ms = 60000) {
    for (int64_t t = 0; t < max_ms; t += 100) {
      bool formed = true;
      for (size_t i = 0; i < size() && formed; ++i) {
        formed = node(i).membership().ring().nodes().size() == size() &&
                 node(i).membership().ring_state().version() ==
                     node(0).membership().ring_state().version();
      }
      if (formed) return true;
      Advance(100);
    }
    return false;
  }

 private:
  // The servers' sync contract, with every sync at once.
  void Process(size_t i, core::Outputs step) {
    for (core::Outputs& out :
         gates_[i].TakeSyncingInLine(std::move(step), [&] { return engines_[i]->Sync(); })) {
      for (core::OutMessage& m : out.messages) queue_.emplace_back(i, std::move(m));
      for (const core::ClientReply& r : out.replies) {
        if (!r.status.ok()) {
          if (client_errors_ < 5) {
            std::fprintf(stderr, "client error: %s\n", std::string(r.status.message()).c_str());
          }
          ++client_errors_;
        }
        if (reply_handler_) reply_handler_(r);
      }
    }
  }

  std::vector<core::NodeConfig> configs_;
  std::map<std::string, size_t> by_address_;
  std::vector<std::unique_ptr<storage::StorageEngine>> engines_;
  std::vector<std::unique_ptr<core::Node>> nodes_;
  std::vector<core::SyncGate> gates_;
  std::deque<std::pair<size_t, core::OutMessage>> queue_;
  int64_t now_ = 1'700'000'000'000;
  uint64_t next_client_ = 1;
  Observer observer_;
  ReplyHandler reply_handler_;
  uint64_t client_errors_ = 0;
};

}  // namespace dynamo::bench
