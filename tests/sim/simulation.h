#pragma once

// A deterministic simulation of a whole cluster in one process: many nodes of
// the pure core over in-memory storage, a network that loses, delays,
// reorders and partitions messages, crashes and restarts, and clock skew.
// Every random choice comes from one seed; a run with the same seed and the
// same calls replays exactly (the FoundationDB way). Not thread-safe.

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <queue>
#include <set>
#include <string>
#include <vector>

#include "dynamo/core/node.h"
#include "dynamo/core/random.h"
#include "dynamo/core/sync_gate.h"
#include "dynamo/storage/memory_engine.h"

namespace dynamo::sim {

struct NetworkFaults {
  double drop_probability = 0.0;
  int64_t delay_min_ms = 1;
  int64_t delay_max_ms = 5;  // delays vary per message: messages are reordered
};

struct SimOptions {
  uint64_t seed = 1;
  size_t nodes = 5;
  core::NodeConfig node;  // node_id, address, seeds are filled in per node
  int64_t tick_ms = 10;
  // How long a storage sync takes, drawn per sync: the window in which a
  // node's replica requests have left and its own writes are not yet durable.
  int64_t sync_min_ms = 0;
  int64_t sync_max_ms = 0;
  // The deadline each client request carries, drawn per request, as a gRPC
  // client's does (0: none; the node's request timeout applies). Shorter than
  // the request timeout, a coordinator answers before its replicas' requests
  // have all failed or been answered.
  int64_t client_deadline_min_ms = 0;
  int64_t client_deadline_max_ms = 0;
  size_t trace_max = 4000;
};

// Defaults that make a simulated cluster converge in seconds of simulated time.
SimOptions DefaultSimOptions(uint64_t seed, size_t nodes);

class Simulation {
 public:
  using ReplyCallback = std::function<void(const core::ClientReply&)>;

  explicit Simulation(SimOptions options);
  ~Simulation();

  // --- time ---
  int64_t now() const { return now_ms_; }
  // Runs `run` after `ms` of simulated time.
  void After(int64_t ms, std::function<void()> run) { Schedule(now_ms_ + ms, std::move(run)); }
  void RunFor(int64_t ms);
  // Runs until done() holds (checked every simulated 100 ms) or max_ms pass.
  bool RunUntil(const std::function<bool()>& done, int64_t max_ms);
  // Starts every node and waits until all are ring members.
  bool FormCluster(int64_t max_ms = 60000);

  // --- nodes ---
  size_t size() const { return nodes_.size(); }
  const std::string& id(size_t i) const { return nodes_[i].id; }
  size_t IndexOf(const std::string& id) const;
  core::Node* node(size_t i) { return nodes_[i].node.get(); }
  bool up(size_t i) const { return nodes_[i].node != nullptr; }
  storage::MemoryEngine& engine(size_t i) { return *nodes_[i].engine; }
  void Start(size_t i);
  // A clean stop (SIGTERM): what waits for a sync leaves, the node records
  // the stop (core::Node::Close).
  void Stop(size_t i);
  // A process crash: memory is lost, storage is kept.
  void Crash(size_t i);
  // A machine crash: also loses storage writes that were not synced.
  void PowerLoss(size_t i);
  void Restart(size_t i) { Start(i); }
  // The disk is replaced: storage is empty at the next start.
  void Wipe(size_t i);
  // Node i is gone for good, so an administrator removes it: the checks leave
  // its storage out from now on (it is kept: the node may yet start on it).
  void Retire(size_t i) { nodes_[i].retired = true; }
  bool retired(size_t i) const { return nodes_[i].retired; }
  // An administrator's call to node i (join, leave, remove), if it is up. As
  // dynamo-node does, a node that learns it was removed stops at once.
  void Admin(size_t i, const std::function<void(core::Node&, int64_t, core::Outputs*)>& call) {
    Step(i, call);
  }
  // Node i's wall clock runs skew_ms ahead of true time (behind if negative).
  // As on a real node (NodeServer), the core's clock keeps the wall clock's
  // lead at its start and never steps; the timestamps of its writes follow
  // the wall clock at once (core::Node::SetWallClockOffset).
  void SetSkew(size_t i, int64_t skew_ms) { nodes_[i].skew_ms = skew_ms; }
  // A failing disk: while set, node i's syncs fail. What waited for one leaves
  // as core::FailUnsynced makes it, and the writes it covered stay unsynced
  // (a later sync that succeeds covers them; a power loss drops them). Every
  // sync fails, the node's own start and stop records' too: it cannot start.
  void SetDiskFailing(size_t i, bool failing);
  bool disk_failing(size_t i) const { return nodes_[i].engine->syncs_fail(); }

  // --- network ---
  void SetNetwork(const NetworkFaults& faults) { faults_ = faults; }
  // Nodes in different groups cannot reach each other; unlisted nodes are
  // reachable by everyone.
  void Partition(const std::vector<std::set<size_t>>& groups);
  void BlockOneWay(size_t from, size_t to) { blocked_.insert({from, to}); }
  void Heal() { blocked_.clear(); }
  bool Reachable(size_t from, size_t to) const { return !blocked_.contains({from, to}); }

  // --- clients ---
  // The reply comes back through the callback, or a DeadlineExceeded reply if
  // the node crashed or did not answer within client_timeout_ms.
  void Get(size_t at, const std::string& key, ReplyCallback done, v1::Quorum quorum = {});
  void Put(size_t at, const std::string& key, const std::string& value,
           const std::string& context, ReplyCallback done, v1::Quorum quorum = {});
  void Delete(size_t at, const std::string& key, const std::string& context,
              ReplyCallback done, v1::Quorum quorum = {});
  int64_t client_timeout_ms = 5000;
  // Called for every reply a coordinator emits, before it travels back
  // (checkers look at the cluster at the moment of an acknowledgement).
  std::function<void(size_t node, const core::ClientReply&)> on_coordinator_reply;

  // --- inspection ---
  // What node i stores for the key: its replica merged with its hints.
  std::optional<core::VersionedObject> Stored(size_t i, const std::string& key);
  // The same, as a machine crash of node i now would leave it: synced writes only.
  std::optional<core::VersionedObject> StoredDurably(size_t i, const std::string& key);
  // Every key stored on any node (replicas and hints), retired ones apart.
  std::set<std::string> AllKeys();
  bool AllInRing() const;
  uint64_t messages_sent() const { return messages_sent_; }
  uint64_t bytes_sent() const { return bytes_sent_; }  // encoded envelopes, as on the wire
  uint64_t messages_dropped() const { return messages_dropped_; }

  void Log(const std::string& line);
  std::string Trace(size_t last_lines = 200) const;
  uint64_t seed() const { return options_.seed; }
  core::Random& rng() { return rng_; }

 private:
  struct SimNode {
    std::string id;
    std::string address;
    std::unique_ptr<storage::MemoryEngine> engine;
    std::unique_ptr<core::Node> node;
    int64_t skew_ms = 0;          // of its wall clock
    int64_t clock_anchor_ms = 0;  // skew_ms at its start: its core clock's lead
    uint64_t incarnation = 0;  // events scheduled for an older incarnation are void
    core::SyncGate gate;  // outputs waiting for syncs, as in NodeServer
    bool syncing = false;
    bool retired = false;
  };
  struct Event {
    int64_t time_ms;
    uint64_t seq;
    std::function<void()> run;
  };
  struct EventOrder {
    bool operator()(const Event& a, const Event& b) const {
      return a.time_ms != b.time_ms ? a.time_ms > b.time_ms : a.seq > b.seq;
    }
  };

  void Schedule(int64_t at_ms, std::function<void()> run);
  // The process of node i ends (stopped or crashed).
  void Down(size_t i, const std::string& how);
  void Step(size_t i, const std::function<void(core::Node&, int64_t, core::Outputs*)>& input);
  // Applies the sync contract of core/node.h to a step's outputs; Emit sends them.
  void Process(size_t i, core::Outputs& out);
  void StartSync(size_t i);
  void Emit(size_t i, core::Outputs& out);
  void Deliver(size_t from, const core::OutMessage& message);
  void TickLoop(size_t i, uint64_t incarnation);
  void Client(size_t at, core::ClientRequest request, ReplyCallback done);
  int64_t NodeTime(size_t i) const { return now_ms_ + nodes_[i].clock_anchor_ms; }

  SimOptions options_;
  core::Random rng_;
  int64_t now_ms_ = 0;
  uint64_t next_seq_ = 0;
  std::priority_queue<Event, std::vector<Event>, EventOrder> events_;
  std::vector<SimNode> nodes_;
  std::map<std::string, size_t> by_address_;
  NetworkFaults faults_;
  std::set<std::pair<size_t, size_t>> blocked_;
  uint64_t next_client_id_ = 1;
  std::map<uint64_t, ReplyCallback> pending_clients_;
  std::optional<core::VersionedObject> StoredIn(size_t i, const std::string& key, bool durable_only);

  uint64_t messages_sent_ = 0;
  uint64_t bytes_sent_ = 0;
  uint64_t messages_dropped_ = 0;
  std::vector<std::string> trace_;
  size_t trace_next_ = 0;
};

}  // namespace dynamo::sim
