#include "simulation.h"

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "dynamo/core/hash.h"
#include "dynamo/core/storage_keys.h"

namespace dynamo::sim {

SimOptions DefaultSimOptions(uint64_t seed, size_t nodes) {
  SimOptions o;
  o.seed = seed;
  o.nodes = nodes;
  core::NodeConfig& c = o.node;
  c.replicas_n = 3;
  c.read_quorum_r = 2;
  c.write_quorum_w = 2;
  c.ring.partitions = 32;
  c.merkle = {4, 2};
  c.vnodes = 8;
  c.request_timeout_ms = 500;
  c.gossip_interval_ms = 200;
  c.ring_change_interval_ms = 200;
  c.background_interval_ms = 50;
  c.antientropy_interval_ms = 300;
  c.tombstone_grace_ms = 5000;
  c.hint_batch_keys_max = 32;
  c.handoff_batch_keys_max = 32;
  o.sync_max_ms = 3;
  return o;
}

Simulation::Simulation(SimOptions options) : options_(std::move(options)), rng_(options_.seed) {
  trace_.resize(options_.trace_max);
  nodes_.resize(options_.nodes);
  for (size_t i = 0; i < nodes_.size(); ++i) {
    nodes_[i].id = absl::StrCat("n", i);
    nodes_[i].address = absl::StrCat("10.0.0.", i + 1, ":7000");
    nodes_[i].engine = std::make_unique<storage::MemoryEngine>();
    by_address_[nodes_[i].address] = i;
  }
}

Simulation::~Simulation() = default;

void Simulation::Log(const std::string& line) {
  if (trace_.empty()) return;
  trace_[trace_next_ % trace_.size()] = absl::StrFormat("%8d ms  %s", now_ms_, line);
  ++trace_next_;
}

std::string Simulation::Trace(size_t last_lines) const {
  std::string out;
  const size_t n = std::min({last_lines, trace_next_, trace_.size()});
  for (size_t k = trace_next_ - n; k < trace_next_; ++k) {
    absl::StrAppend(&out, trace_[k % trace_.size()], "\n");
  }
  return out;
}

void Simulation::Schedule(int64_t at_ms, std::function<void()> run) {
  events_.push(Event{std::max(at_ms, now_ms_), next_seq_++, std::move(run)});
}

void Simulation::RunFor(int64_t ms) {
  const int64_t until = now_ms_ + ms;
  while (!events_.empty() && events_.top().time_ms <= until) {
    Event e = events_.top();
    events_.pop();
    now_ms_ = e.time_ms;
    e.run();
  }
  now_ms_ = until;
}

bool Simulation::RunUntil(const std::function<bool()>& done, int64_t max_ms) {
  const int64_t until = now_ms_ + max_ms;
  while (now_ms_ < until) {
    if (done()) return true;
    RunFor(std::min<int64_t>(100, until - now_ms_));
  }
  return done();
}

size_t Simulation::IndexOf(const std::string& id) const {
  for (size_t i = 0; i < nodes_.size(); ++i) {
    if (nodes_[i].id == id) return i;
  }
  return nodes_.size();
}

void Simulation::Start(size_t i) {
  SimNode& n = nodes_[i];
  if (n.node) return;
  core::NodeConfig config = options_.node;
  config.node_id = n.id;
  config.address = n.address;
  config.seeds = {nodes_[0].address};
  n.clock_anchor_ms = n.skew_ms;
  absl::StatusOr<std::unique_ptr<core::Node>> node =
      core::Node::Open(config, n.engine.get(), rng_.Next(), NodeTime(i));
  if (!node.ok()) {
    Log(absl::StrCat(n.id, " failed to start: ", node.status().ToString()));
    return;
  }
  n.node = *std::move(node);
  ++n.incarnation;
  Log(absl::StrCat(n.id, " started as ", n.node->actor()));
  const uint64_t incarnation = n.incarnation;
  Schedule(now_ms_ + static_cast<int64_t>(rng_.Uniform(options_.tick_ms)) + 1,
           [this, i, incarnation] { TickLoop(i, incarnation); });
}

void Simulation::Stop(size_t i) {
  SimNode& n = nodes_[i];
  if (!n.node) return;
  const absl::Status synced = n.engine->Sync();
  for (core::Outputs& out : n.gate.Synced(n.gate.requested(), synced)) Emit(i, out);
  if (absl::Status s = n.node->Close(); !s.ok()) Log(absl::StrCat(n.id, " close: ", s.ToString()));
  Down(i, "stopped");
}

void Simulation::Crash(size_t i) {
  if (nodes_[i].node) Down(i, "crashed");
}

void Simulation::Down(size_t i, const std::string& how) {
  SimNode& n = nodes_[i];
  n.node.reset();
  ++n.incarnation;  // its pending syncs and held outputs die with the process
  n.gate = core::SyncGate();
  n.syncing = false;
  Log(absl::StrCat(n.id, " ", how));
}

void Simulation::PowerLoss(size_t i) {
  Crash(i);
  nodes_[i].engine->DropUnsyncedWrites();
  Log(absl::StrCat(nodes_[i].id, " lost power: unsynced writes dropped"));
}

void Simulation::SetDiskFailing(size_t i, bool failing) {
  nodes_[i].engine->set_syncs_fail(failing);
  Log(absl::StrCat(nodes_[i].id, failing ? " disk failing: syncs fail" : " disk working again"));
}

void Simulation::Wipe(size_t i) {
  Crash(i);
  nodes_[i].engine->Clear();
  Log(absl::StrCat(nodes_[i].id, " storage wiped"));
}

void Simulation::Partition(const std::vector<std::set<size_t>>& groups) {
  blocked_.clear();
  for (size_t a = 0; a < groups.size(); ++a) {
    for (size_t b = 0; b < groups.size(); ++b) {
      if (a == b) continue;
      for (size_t x : groups[a]) {
        for (size_t y : groups[b]) blocked_.insert({x, y});
      }
    }
  }
  std::string desc;
  for (const auto& g : groups) {
    absl::StrAppend(&desc, "{");
    for (size_t x : g) absl::StrAppend(&desc, " ", nodes_[x].id);
    absl::StrAppend(&desc, " }");
  }
  Log(absl::StrCat("partition ", desc));
}

void Simulation::TickLoop(size_t i, uint64_t incarnation) {
  if (!nodes_[i].node || nodes_[i].incarnation != incarnation) return;
  Step(i, [](core::Node& node, int64_t now, core::Outputs* out) { node.Tick(now, out); });
  Schedule(now_ms_ + options_.tick_ms, [this, i, incarnation] { TickLoop(i, incarnation); });
}

void Simulation::Step(size_t i,
                      const std::function<void(core::Node&, int64_t, core::Outputs*)>& input) {
  SimNode& n = nodes_[i];
  if (!n.node) return;
  n.node->SetWallClockOffset(n.skew_ms - n.clock_anchor_ms);
  core::Outputs out;
  input(*n.node, NodeTime(i), &out);
  Process(i, out);
  if (n.node->removal()) {
    Log(absl::StrCat(n.id, " was removed by ", n.node->removal()->removed_by()));
    Stop(i);
  }
}

void Simulation::Process(size_t i, core::Outputs& out) {
  // The node's contract: storage is synced before anything leaves, but for
  // the requests that may leave first; outputs leave in order.
  SimNode& n = nodes_[i];
  core::Outputs now = n.gate.Take(std::move(out));
  Emit(i, now);
  if (n.gate.holding() && !n.syncing) StartSync(i);
}

void Simulation::StartSync(size_t i) {
  SimNode& n = nodes_[i];
  n.syncing = true;
  const uint64_t through = n.gate.requested();
  const uint64_t incarnation = n.incarnation;
  // Like an fsync, it covers the writes made before it began, not those made
  // while it runs.
  const size_t writes = n.engine->UnsyncedWriteCount();
  Schedule(now_ms_ + rng_.Between(options_.sync_min_ms, options_.sync_max_ms),
           [this, i, through, incarnation, writes] {
             SimNode& n = nodes_[i];
             if (n.incarnation != incarnation) return;
             n.syncing = false;
             const absl::Status synced = n.engine->SyncOldest(writes);
             for (core::Outputs& out : n.gate.Synced(through, synced)) Emit(i, out);
             if (n.gate.holding()) StartSync(i);
           });
}

void Simulation::Emit(size_t i, core::Outputs& out) {
  for (const core::OutMessage& m : out.messages) Deliver(i, m);
  for (core::ClientReply& r : out.replies) {
    if (on_coordinator_reply) on_coordinator_reply(i, r);
    const uint64_t id = r.client_id;
    Schedule(now_ms_ + rng_.Between(faults_.delay_min_ms, faults_.delay_max_ms),
             [this, id, reply = std::move(r)] {
               auto it = pending_clients_.find(id);
               if (it == pending_clients_.end()) return;
               ReplyCallback done = std::move(it->second);
               pending_clients_.erase(it);
               done(reply);
             });
  }
}

void Simulation::Deliver(size_t from, const core::OutMessage& message) {
  ++messages_sent_;
  bytes_sent_ += message.envelope.ByteSizeLong();
  auto to_it = by_address_.find(message.to_address);
  if (to_it == by_address_.end()) {
    ++messages_dropped_;
    return;
  }
  const size_t to = to_it->second;
  if (!Reachable(from, to) || rng_.Chance(faults_.drop_probability)) {
    ++messages_dropped_;
    return;
  }
  const int64_t delay = rng_.Between(faults_.delay_min_ms, faults_.delay_max_ms);
  const uint64_t from_incarnation = nodes_[from].incarnation;
  Schedule(now_ms_ + delay, [this, from, to, from_incarnation, message] {
    if (!nodes_[to].node) {
      // Connection refused: the sender learns at once that a request failed.
      const v1::Envelope& env = message.envelope;
      if (env.is_reply() || env.request_id() == 0) return;
      Schedule(now_ms_ + 1, [this, from, from_incarnation, to_node = message.to_node,
                             id = env.request_id()] {
        if (nodes_[from].incarnation != from_incarnation) return;
        Step(from, [&](core::Node& n, int64_t now, core::Outputs* out) {
          n.HandleSendFailure(to_node, id, now, out);
        });
      });
      return;
    }
    Step(to, [&](core::Node& n, int64_t now, core::Outputs* out) {
      n.HandleMessage(message.envelope, now, out);
    });
  });
}

void Simulation::Client(size_t at, core::ClientRequest request, ReplyCallback done) {
  const uint64_t id = next_client_id_++;
  if (options_.client_deadline_max_ms > 0) {
    request.timeout_ms =
        rng_.Between(options_.client_deadline_min_ms, options_.client_deadline_max_ms);
  }
  pending_clients_[id] = std::move(done);
  Schedule(now_ms_ + rng_.Between(faults_.delay_min_ms, faults_.delay_max_ms),
           [this, at, id, request = std::move(request)]() mutable {
             Step(at, [&](core::Node& n, int64_t now, core::Outputs* out) {
               n.HandleClient(id, std::move(request), now, out);
             });
           });
  Schedule(now_ms_ + client_timeout_ms, [this, id] {
    auto it = pending_clients_.find(id);
    if (it == pending_clients_.end()) return;
    ReplyCallback cb = std::move(it->second);
    pending_clients_.erase(it);
    core::ClientReply r;
    r.client_id = id;
    r.status = absl::DeadlineExceededError("no answer: the node crashed or the reply was lost");
    cb(r);
  });
}

void Simulation::Get(size_t at, const std::string& key, ReplyCallback done, v1::Quorum quorum) {
  v1::GetRequest g;
  g.set_key(key);
  *g.mutable_quorum() = quorum;
  Client(at, core::ClientRequest{std::move(g), 0}, std::move(done));
}

void Simulation::Put(size_t at, const std::string& key, const std::string& value,
                     const std::string& context, ReplyCallback done, v1::Quorum quorum) {
  v1::PutRequest p;
  p.set_key(key);
  p.set_value(value);
  p.set_context(context);
  *p.mutable_quorum() = quorum;
  Client(at, core::ClientRequest{std::move(p), 0}, std::move(done));
}

void Simulation::Delete(size_t at, const std::string& key, const std::string& context,
                        ReplyCallback done, v1::Quorum quorum) {
  v1::DeleteRequest d;
  d.set_key(key);
  d.set_context(context);
  *d.mutable_quorum() = quorum;
  Client(at, core::ClientRequest{std::move(d), 0}, std::move(done));
}

std::optional<core::VersionedObject> Simulation::Stored(size_t i, const std::string& key) {
  return StoredIn(i, key, /*durable_only=*/false);
}

std::optional<core::VersionedObject> Simulation::StoredDurably(size_t i, const std::string& key) {
  return StoredIn(i, key, /*durable_only=*/true);
}

std::optional<core::VersionedObject> Simulation::StoredIn(size_t i, const std::string& key,
                                                          bool durable_only) {
  if (nodes_[i].retired) return std::nullopt;
  storage::MemoryEngine& e = *nodes_[i].engine;
  auto read = [&](storage::Space space, std::string_view k) -> std::optional<std::string> {
    if (durable_only) return e.DurableValue(space, k);
    absl::StatusOr<std::string> value = e.Get(space, k);
    if (!value.ok()) return std::nullopt;
    return *std::move(value);
  };
  std::optional<core::VersionedObject> result;
  auto merge = [&](const std::optional<std::string>& encoded) {
    if (!encoded) return;
    absl::StatusOr<core::VersionedObject> obj = core::VersionedObject::Decode(*encoded);
    if (!obj.ok()) return;
    if (!result) result.emplace();
    result->Merge(*obj);
  };
  merge(read(storage::Space::kData, core::DataKey(core::KeyPosition(key), key)));
  // The key's hints now, and (durably) those deleted since the last sync.
  std::set<std::string> hint_keys;
  (void)e.Scan(storage::Space::kHints, "", "", [&](std::string_view k, std::string_view) {
    if (auto h = core::ParseHintKey(k); h && h->key == key) hint_keys.emplace(k);
    return true;
  });
  if (durable_only) {
    for (const std::string& k : e.UnsyncedKeys(storage::Space::kHints)) {
      if (auto h = core::ParseHintKey(k); h && h->key == key) hint_keys.insert(k);
    }
  }
  for (const std::string& k : hint_keys) merge(read(storage::Space::kHints, k));
  return result;
}

std::set<std::string> Simulation::AllKeys() {
  std::set<std::string> keys;
  for (SimNode& n : nodes_) {
    if (n.retired) continue;
    (void)n.engine->Scan(storage::Space::kData, "", "", [&](std::string_view k, std::string_view) {
      if (auto d = core::ParseDataKey(k)) keys.insert(std::string(d->key));
      return true;
    });
    (void)n.engine->Scan(storage::Space::kHints, "", "", [&](std::string_view k, std::string_view) {
      if (auto h = core::ParseHintKey(k)) keys.insert(std::string(h->key));
      return true;
    });
  }
  return keys;
}

bool Simulation::AllInRing() const {
  for (const SimNode& n : nodes_) {
    if (n.retired) continue;
    if (!n.node) return false;
    for (const SimNode& m : nodes_) {
      if (m.retired) continue;
      if (n.node->membership().StateOf(m.id) != v1::NODE_STATE_NORMAL) return false;
    }
  }
  return true;
}

bool Simulation::FormCluster(int64_t max_ms) {
  for (size_t i = 0; i < nodes_.size(); ++i) Start(i);
  const bool formed = RunUntil([this] { return AllInRing(); }, max_ms);
  Log(formed ? "cluster formed" : "cluster did NOT form");
  return formed;
}

}  // namespace dynamo::sim
