#include "dynamo/core/node.h"

#include <algorithm>
#include <iterator>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "dynamo/core/context.h"
#include "dynamo/core/hash.h"
#include "dynamo/core/storage_keys.h"
#include "node_internal.h"

namespace dynamo::core {

namespace {
v1::Envelope ErrorEnvelope(const absl::Status& status) {
  v1::Envelope error;
  error.mutable_error()->set_code(static_cast<int32_t>(status.code()));
  error.mutable_error()->set_message(std::string(status.message()));
  return error;
}
}  // namespace

v1::Envelope ErrorReplyFor(const v1::Envelope& reply, const absl::Status& status) {
  v1::Envelope error = ErrorEnvelope(status);
  error.set_from_node(reply.from_node());
  error.set_from_address(reply.from_address());
  error.set_request_id(reply.request_id());
  error.set_is_reply(true);
  return error;
}

Node::Node(const NodeConfig& config, storage::StorageEngine* engine, uint64_t random_seed)
    : config_(config),
      engine_(engine),
      store_(engine, config.merkle),
      rng_(random_seed),
      fd_(config.phi_threshold, config.gossip_interval_ms),
      reap_queue_(&store_, config.reap_queue_max) {}

Node::~Node() = default;

absl::StatusOr<std::unique_ptr<Node>> Node::Open(const NodeConfig& config,
                                                 storage::StorageEngine* engine,
                                                 uint64_t random_seed, int64_t now_ms) {
  if (absl::Status s = config.Validate(); !s.ok()) return s;
  std::unique_ptr<Node> node(new Node(config, engine, random_seed));
  if (absl::Status s = node->Load(now_ms); !s.ok()) return s;
  return node;
}

absl::Status Node::Load(int64_t now_ms) {
  // First, before this start changes anything in it.
  absl::StatusOr<std::optional<std::string>> removed = store_.GetMeta(meta::kRemoved);
  if (!removed.ok()) return removed.status();
  if (*removed) {
    v1::MemberState removal;
    removal.ParseFromString(**removed);
    return RemovedError(removal);
  }
  // Epoch: a storage without one is new or was wiped; a new actor then. So
  // after a crash: requests that left before their sync (MayLeaveBeforeSync)
  // may have put values of this actor on replicas that this node lost with
  // its unsynced writes, and counters of a block whose limit was not yet
  // durable may have been used.
  absl::StatusOr<std::optional<std::string>> epoch = store_.GetMeta(meta::kEpoch);
  if (!epoch.ok()) return epoch.status();
  absl::StatusOr<std::optional<std::string>> stop = store_.GetMeta(meta::kCleanStop);
  if (!stop.ok()) return stop.status();
  const bool stopped_cleanly = *stop && **stop == meta::kStopped;
  if (*epoch && (*epoch)->size() == 8 && stopped_cleanly) {
    actor_ = absl::StrFormat("%s#%016x", config_.node_id, DecodeBigEndian64(**epoch));
  } else if (absl::Status s = TakeNewEpoch(); !s.ok()) {
    return s;
  }

  if (absl::Status s = store_.PutMeta(meta::kCleanStop, ""); !s.ok()) return s;

  absl::StatusOr<std::optional<std::string>> limit = store_.GetMeta(meta::kCounterLimit);
  if (!limit.ok()) return limit.status();
  const uint64_t used = (*limit && (*limit)->size() == 8) ? DecodeBigEndian64(**limit) : 0;
  next_counter_ = used + 1;
  counter_limit_ = used + kCounterBlock;
  if (absl::Status s = store_.PutMeta(meta::kCounterLimit, EncodeBigEndian64(counter_limit_));
      !s.ok()) {
    return s;
  }

  absl::StatusOr<std::optional<std::string>> gen = store_.GetMeta(meta::kGeneration);
  if (!gen.ok()) return gen.status();
  std::optional<uint64_t> previous_generation;
  if (*gen && (*gen)->size() == 8) previous_generation = DecodeBigEndian64(**gen);
  const uint64_t generation =
      std::max<uint64_t>(previous_generation.value_or(0) + 1,
                         static_cast<uint64_t>(std::max<int64_t>(now_ms, 1)));
  if (absl::Status s = store_.PutMeta(meta::kGeneration, EncodeBigEndian64(generation)); !s.ok()) {
    return s;
  }
  if (absl::Status s = store_.BeginGeneration(previous_generation, generation); !s.ok()) return s;
  // A storage a version before removals started is taken as born before
  // every removal (its own generation may have jumped past one: an earlier
  // version took its removal for a newer state of itself).
  absl::StatusOr<std::optional<std::string>> born = store_.GetMeta(meta::kStorageBorn);
  if (!born.ok()) return born.status();
  uint64_t storage_born = previous_generation ? 1 : generation;
  if (*born && (*born)->size() == 8) {
    storage_born = DecodeBigEndian64(**born);
  } else if (absl::Status s = store_.PutMeta(meta::kStorageBorn, EncodeBigEndian64(storage_born));
             !s.ok()) {
    return s;
  }

  v1::MemberState self;
  absl::StatusOr<std::optional<std::string>> saved_self = store_.GetMeta(meta::kSelf);
  if (!saved_self.ok()) return saved_self.status();
  if (*saved_self) self.ParseFromString(**saved_self);
  if (self.vnodes() == 0) self.set_vnodes(config_.vnodes);
  if (self.intent() == v1::MEMBER_INTENT_NONE && config_.auto_join) {
    self.set_intent(v1::MEMBER_INTENT_JOIN);
  }
  self.set_node_id(config_.node_id);
  self.set_address(config_.address);
  // An explicit --zone wins; without one, the zone an admin Join gave is kept
  // (in Kubernetes the pod learns its machine's zone only from the operator).
  if (!config_.zone.empty() || !ValidateZone(self.zone()).ok()) self.set_zone(config_.zone);
  self.set_generation(generation);
  self.set_storage_born(storage_born);
  self.set_removed_by("");
  self.set_version(1);
  self.set_heartbeat(0);

  v1::RingState ring;
  absl::StatusOr<std::optional<std::string>> saved_ring = store_.GetMeta(meta::kRing);
  if (!saved_ring.ok()) return saved_ring.status();
  if (*saved_ring && !ring.ParseFromString(**saved_ring)) ring.Clear();

  membership_ = std::make_unique<Membership>(config_, std::move(self), std::move(ring));
  absl::StatusOr<std::optional<std::string>> removals = store_.GetMeta(meta::kRemovedMembers);
  if (!removals.ok()) return removals.status();
  std::optional<v1::MemberState> own_removal;  // learned before a crash took kRemoved
  if (*removals) {
    v1::RemovedMembers known;
    if (known.ParseFromString(**removals)) own_removal = membership_->RestoreRemovals(known);
  }
  for (const auto& [id, state] : membership_->members()) {
    if (id != config_.node_id) fd_.Track(id, now_ms);
  }
  Outputs ignored;
  PersistSelf(&ignored);
  if (absl::Status s = store_.Rebuild(membership_->ring()); !s.ok()) return s;
  if (own_removal) {  // once the store knows what it holds
    Outputs ignored;
    OnSelfRemoved(*own_removal, &ignored);
    if (removal_) return RemovedError(*removal_);
  }
  if (absl::Status s = reap_queue_.Load(generation, now_ms + config_.tombstone_grace_ms);
      !s.ok()) {
    return s;
  }
  // Before anything leaves, in buffered mode too: a power loss must not take
  // the record that this incarnation runs (kCleanStop), or a restart would
  // keep the actor and reuse the dots of the writes it lost (sim:
  // PowerLossSoonAfterACleanRestart...).
  if (absl::Status s = store_.SyncDurably(); !s.ok()) return s;
  // Request ids start at random: a late answer to a request of an earlier
  // incarnation must not match a request of this one.
  next_request_id_ = (rng_.Next() >> 2) | 1;
  next_gossip_ms_ = now_ms;
  next_background_ms_ = now_ms + config_.background_interval_ms;
  next_antientropy_ms_ = now_ms + config_.antientropy_interval_ms;
  budget_refilled_ms_ = now_ms;
  return absl::OkStatus();
}

absl::Status Node::RemovedError(const v1::MemberState& removal) const {
  return absl::FailedPreconditionError(absl::StrCat(
      "this storage was removed from the cluster (by ", removal.removed_by(),
      "): it holds data from before deletes whose tombstones may since be reaped, and would "
      "bring their values back. Wipe the data directory to start ",
      config_.node_id, " as a new node"));
}

absl::Status Node::Close() {
  if (absl::Status s = store_.PutMeta(meta::kCleanStop, meta::kStopped); !s.ok()) return s;
  return store_.SyncDurably();
}

absl::Status Node::TakeNewEpoch() {
  const uint64_t epoch = rng_.Next() | 1;
  if (absl::Status s = store_.PutMeta(meta::kEpoch, EncodeBigEndian64(epoch)); !s.ok()) return s;
  actor_ = absl::StrFormat("%s#%016x", config_.node_id, epoch);
  return absl::OkStatus();
}

void Node::NoteForgetting(const std::string& key, uint64_t position, std::string_view deleted) {
  absl::StatusOr<VersionedObject> obj = VersionedObject::Decode(deleted);
  if (!obj.ok()) return;
  std::optional<VersionedObject> remaining;
  bool read = false;
  for (const Sibling& s : obj->siblings()) {
    if (s.tombstone || s.dot.actor != actor_) continue;
    if (!read) {
      absl::StatusOr<std::optional<VersionedObject>> local = ReadLocal(key, position);
      if (!local.ok()) {
        epoch_change_pending_ = true;  // cannot tell: assume forgotten
        return;
      }
      remaining = *std::move(local);
      read = true;
    }
    // Still known here if what remains has seen the dot (holds or replaced it).
    if (!remaining || !remaining->clock().Covers(s.dot)) epoch_change_pending_ = true;
  }
}

void Node::ApplyEpochChange(Outputs* out) {
  if (!epoch_change_pending_) return;
  epoch_change_pending_ = false;
  if (!TakeNewEpoch().ok()) ++counters_.storage_errors;
  out->sync = true;
}

// ---------------------------------------------------------------- messaging

uint64_t Node::Send(const std::string& to_node, RequestKind kind, uint64_t owner_id,
                    v1::Envelope envelope, int64_t now_ms, Outputs* out, int64_t timeout_ms) {
  const uint64_t id = next_request_id_++;
  envelope.set_from_node(config_.node_id);
  envelope.set_from_address(config_.address);
  envelope.set_request_id(id);
  envelope.set_is_reply(false);
  const int64_t deadline = now_ms + (timeout_ms > 0 ? timeout_ms : config_.request_timeout_ms);
  requests_[id] = PendingRequest{kind, owner_id, to_node, deadline};
  request_deadlines_.insert({deadline, id});
  out->messages.push_back({to_node, membership_->AddressOf(to_node), std::move(envelope)});
  return id;
}

void Node::SendToAddress(const std::string& address, v1::Envelope envelope, Outputs* out) {
  envelope.set_from_node(config_.node_id);
  envelope.set_from_address(config_.address);
  envelope.set_request_id(0);  // gossip to a seed: its answer is merged whoever sends it
  envelope.set_is_reply(false);
  out->messages.push_back({"", address, std::move(envelope)});
}

void Node::Reply(const v1::Envelope& request, v1::Envelope reply, Outputs* out) {
  reply.set_from_node(config_.node_id);
  reply.set_from_address(config_.address);
  reply.set_request_id(request.request_id());
  reply.set_is_reply(true);
  out->messages.push_back({request.from_node(), request.from_address(), std::move(reply)});
}

void Node::ReplyError(const v1::Envelope& request, const absl::Status& status, Outputs* out) {
  Reply(request, ErrorEnvelope(status), out);
}

void Node::HandleMessage(const v1::Envelope& envelope, int64_t now_ms, Outputs* out) {
  // A removed node that still runs (its old disk started again) is not alive
  // as a member, and exchanges nothing but gossip, by which it learns of its
  // removal; nor does this node once removed.
  const bool from_removed = membership_->IsRemoved(envelope.from_node());
  if (!envelope.from_node().empty() && envelope.from_node() != config_.node_id && !from_removed) {
    fd_.Heard(envelope.from_node(), now_ms);
  }
  if (envelope.is_reply()) {
    OnReply(envelope, now_ms, out);
  } else if ((removal_ || from_removed) && envelope.body_case() != v1::Envelope::kGossip) {
    ReplyError(envelope,
               absl::FailedPreconditionError(absl::StrCat(
                   removal_ ? config_.node_id : envelope.from_node(),
                   " was removed from the cluster: it serves and sends nothing but gossip")),
               out);
  } else {
    ServeRequest(envelope, now_ms, out);
  }
}

void Node::OnReply(const v1::Envelope& reply, int64_t now_ms, Outputs* out) {
  if (reply.request_id() == 0) {  // gossip sent to a seed's address: not tracked
    if (reply.has_gossip_reply()) OnGossip(reply.gossip_reply(), now_ms, out);
    return;
  }
  auto it = requests_.find(reply.request_id());
  if (it == requests_.end()) return;  // late: already timed out
  PendingRequest pending = it->second;
  if (!pending.node.empty() && pending.node != reply.from_node()) return;  // not who we asked
  requests_.erase(it);
  request_deadlines_.erase({pending.deadline_ms, reply.request_id()});
  DispatchAnswer(pending, reply.request_id(), &reply, now_ms, out);
}

void Node::HandleSendFailure(const std::string& to_node, uint64_t request_id, int64_t now_ms,
                             Outputs* out) {
  if (!to_node.empty()) fd_.Suspect(to_node);
  OnRequestFailed(request_id, now_ms, out);
}

void Node::OnRequestFailed(uint64_t request_id, int64_t now_ms, Outputs* out) {
  auto it = requests_.find(request_id);
  if (it == requests_.end()) return;
  PendingRequest pending = it->second;
  requests_.erase(it);
  request_deadlines_.erase({pending.deadline_ms, request_id});
  DispatchAnswer(pending, request_id, nullptr, now_ms, out);
}

void Node::DispatchAnswer(const PendingRequest& pending, uint64_t request_id,
                          const v1::Envelope* reply, int64_t now_ms, Outputs* out) {
  switch (pending.kind) {
    case RequestKind::kOpRead:
    case RequestKind::kOpWrite:
    case RequestKind::kOpForward: {
      auto op = ops_.find(pending.owner_id);
      if (op != ops_.end()) OnOpAnswer(*op->second, pending.node, reply, pending.kind, now_ms, out);
      break;
    }
    case RequestKind::kHintDelivery:
      OnHintAnswer(request_id, reply, out);
      break;
    case RequestKind::kHandoff:
      OnHandoffAnswer(pending, reply, now_ms, out);
      break;
    case RequestKind::kGossip:
      farewells_.erase(request_id);
      if (reply != nullptr && reply->has_gossip_reply()) OnGossip(reply->gossip_reply(), now_ms, out);
      break;
    case RequestKind::kAeDigests:
    case RequestKind::kAeRoots:
    case RequestKind::kAeMerkle:
    case RequestKind::kAeLeafKeys:
    case RequestKind::kAeRead:
    case RequestKind::kAePush:
      OnAeAnswer(pending, reply, now_ms, out);
      break;
    case RequestKind::kReap:
      OnReapAnswer(pending.owner_id, reply);
      break;
    case RequestKind::kHandoffQuery:
      OnHandoffQueryAnswer(pending.owner_id, pending.node, reply);
      break;
    case RequestKind::kReadRepair:
      break;
  }
}

void Node::Tick(int64_t now_ms, Outputs* out) {
  // Requests that ran out of time count as failed answers; the peer is suspect.
  while (!request_deadlines_.empty() && request_deadlines_.begin()->first <= now_ms) {
    const uint64_t id = request_deadlines_.begin()->second;
    request_deadlines_.erase(request_deadlines_.begin());
    auto it = requests_.find(id);
    if (it != requests_.end() && !it->second.node.empty()) fd_.Suspect(it->second.node);
    OnRequestFailed(id, now_ms, out);
  }
  ExpireOps(now_ms, out);
  // A removed node starts nothing: above all it must not hand its old data to
  // the owners (see removal()).
  if (removal_) return;
  if (now_ms >= next_gossip_ms_) {
    next_gossip_ms_ = now_ms + config_.gossip_interval_ms;
    Gossip(now_ms, out);
  }
  if (membership_->MaybeClaim(now_ms, fd_, rng_)) {
    ++counters_.ring_changes;
    OnRingChanged(now_ms, out);
  }
  if (now_ms >= next_background_ms_) {
    next_background_ms_ = now_ms + config_.background_interval_ms;
    if (HeardFromCluster()) {
      DeliverHints(now_ms, out);
      HandOffRanges(now_ms, out);
      ReapTombstones(now_ms, out);
    }
    UpdateHoldings(out);
  }
  if (now_ms >= next_antientropy_ms_) {
    next_antientropy_ms_ = now_ms + config_.antientropy_interval_ms;
    if (HeardFromCluster()) StartAntiEntropy(now_ms, out);
  }
}

// ---------------------------------------------------------------- admin

absl::StatusOr<v1::JoinResponse> Node::Join(const std::string& seed, const std::string& zone,
                                            int64_t now_ms, Outputs* out) {
  if (!zone.empty() && zone != membership_->self().zone()) {
    // Before anything else: a refused join changes nothing.
    if (absl::Status s = ValidateZone(zone); !s.ok()) return s;
    membership_->SetZone(zone);
  }
  if (!seed.empty() &&
      std::find(config_.seeds.begin(), config_.seeds.end(), seed) == config_.seeds.end()) {
    config_.seeds.push_back(seed);
    membership_->SetSeeds(config_.seeds);
  }
  membership_->SetIntent(v1::MEMBER_INTENT_JOIN);
  PersistSelf(out);
  next_gossip_ms_ = now_ms;  // tell the cluster now
  v1::JoinResponse r;
  r.set_state(membership_->StateOf(config_.node_id));
  return r;
}

v1::LeaveResponse Node::Leave(int64_t now_ms, Outputs* out) {
  membership_->SetIntent(v1::MEMBER_INTENT_LEAVE);
  PersistSelf(out);
  next_gossip_ms_ = now_ms;
  v1::LeaveResponse r;
  r.set_state(membership_->StateOf(config_.node_id));
  return r;
}

absl::StatusOr<v1::SetVirtualNodesResponse> Node::SetVirtualNodes(uint32_t vnodes, int64_t now_ms,
                                                                  Outputs* out) {
  if (vnodes < 1 || vnodes > 4096) {
    return absl::InvalidArgumentError(absl::StrCat("vnodes must be in 1..4096, got ", vnodes));
  }
  membership_->SetVnodes(vnodes);
  PersistSelf(out);
  next_gossip_ms_ = now_ms;
  v1::SetVirtualNodesResponse r;
  r.set_vnodes(vnodes);
  return r;
}

absl::StatusOr<v1::RemoveNodeResponse> Node::RemoveNode(const std::string& node, int64_t now_ms,
                                                        Outputs* out) {
  if (node.empty()) return absl::InvalidArgumentError("node_id is required");
  const v1::MemberState* state = membership_->Find(node);
  if (state != nullptr && node != config_.node_id && !IsRemoval(*state) &&
      fd_.Alive(node, now_ms)) {
    return absl::FailedPreconditionError(absl::StrCat(
        node, " is alive as this node sees it: a live node leaves (dynamoctl leave), which "
        "hands its data off. Remove only a node gone for good, once it is unreachable"));
  }
  if (absl::Status s = membership_->Remove(node, now_ms); !s.ok()) return s;
  PersistRemovals(out);
  next_gossip_ms_ = now_ms;  // tell the cluster now
  v1::RemoveNodeResponse r;
  r.set_state(membership_->StateOf(node));
  return r;
}

std::optional<std::string> Node::NotServingWhy() const {
  if (removal_) {
    return absl::StrCat("node ", config_.node_id, " was removed from the cluster by ",
                        removal_->removed_by(), " and is stopping");
  }
  if (!HeardFromCluster()) {
    return absl::StrCat("node ", config_.node_id,
                        " has just started and waits for its first gossip from a peer");
  }
  return std::nullopt;
}

bool Node::Ready(std::string* why) const {
  if (std::optional<std::string> not_serving = NotServingWhy()) {
    if (why) *why = *std::move(not_serving);
    return false;
  }
  if (membership_->ring().empty()) {
    if (why) *why = "no ring known yet: waiting to found or join a cluster";
    return false;
  }
  if (membership_->StateOf(config_.node_id) == v1::NODE_STATE_LEFT) {
    if (why) *why = "this node has left the cluster";
    return false;
  }
  return true;
}

uint64_t Node::UnownedKeys() const {
  uint64_t keys = 0;
  for (size_t i = 0; i < store_.range_count(); ++i) {
    if (!Owns(i)) keys += store_.key_count(i);
  }
  return keys;
}

bool Node::Owns(size_t range_index) const {
  const Ring& ring = membership_->ring();
  if (ring.empty()) return false;
  const std::vector<uint32_t>& order = ring.PreferenceOrder(range_index);
  for (size_t i = 0; i < order.size() && i < config_.replicas_n; ++i) {
    if (ring.nodes()[order[i]].id == config_.node_id) return true;
  }
  return false;
}

std::vector<std::string> Node::OwnersOf(size_t range_index) const {
  const Ring& ring = membership_->ring();
  std::vector<std::string> owners;
  if (ring.empty()) return owners;
  const std::vector<uint32_t>& order = ring.PreferenceOrder(range_index);
  for (size_t i = 0; i < order.size() && i < config_.replicas_n; ++i) {
    owners.push_back(ring.nodes()[order[i]].id);
  }
  return owners;
}

v1::NodeStatus Node::Status(int64_t now_ms) const {
  v1::NodeStatus s;
  s.set_node_id(config_.node_id);
  s.set_address(config_.address);
  s.set_zone(membership_->self().zone());
  s.set_actor(actor_);
  s.set_state(membership_->StateOf(config_.node_id));
  s.set_ready(Ready(nullptr));
  s.set_ring_version(membership_->ring_state().version());
  s.set_vnodes(membership_->self().vnodes());
  uint32_t owned = 0;
  for (size_t i = 0; i < store_.range_count(); ++i) owned += Owns(i) ? 1 : 0;
  s.set_owned_partitions(owned);
  s.set_keys(store_.total_keys());
  s.set_unowned_keys(UnownedKeys());
  for (const auto& [owner, count] : store_.hint_counts()) {
    v1::HintBacklog* h = s.add_hints();
    h->set_target_node(owner);
    h->set_keys(count);
  }
  for (const auto& [range, stats] : transfer_stats_) {
    if (range >= store_.range_count()) continue;
    for (const std::string& target : stats.targets) {
      v1::HandoffTransfer* t = s.add_handoffs();
      t->set_range_start(store_.range(range).start);
      t->set_range_end(store_.range(range).end);
      t->set_target_node(target);
      t->set_keys_sent(stats.keys_sent);
      t->set_bytes_sent(stats.bytes_sent);
      t->set_keys_remaining(store_.key_count(range));
    }
  }
  s.set_hints_delivered(counters_.hints_delivered);
  s.set_read_repairs(counters_.read_repairs);
  s.set_tombstones_reaped(counters_.tombstones_reaped);
  s.set_reaps_owed(reap_queue_.size());
  s.set_reaps_retried(counters_.reaps_retried);
  if (reap_queue_.size() > 0) {
    std::set<std::string> held_by(last_round_holding_.begin(), last_round_holding_.end());
    for (const auto& [id, state] : membership_->members()) {  // this node's own among them
      if (state.handing_off()) held_by.insert(id);
    }
    for (const std::string& id : held_by) s.add_reaps_held_by(id);
  }
  s.set_antientropy_exchanges(counters_.antientropy_exchanges);
  s.set_antientropy_keys_repaired(counters_.antientropy_keys_repaired);
  s.set_keys_handed_off(counters_.handoff_keys);
  s.set_bytes_handed_off(counters_.handoff_bytes);
  (void)now_ms;
  return s;
}

v1::MembersResponse Node::Members(int64_t now_ms) const {
  v1::MembersResponse r;
  r.set_ring_version(membership_->ring_state().version());
  const Ring& ring = membership_->ring();
  for (const auto& [id, state] : membership_->members()) {
    v1::Member* m = r.add_members();
    m->set_node_id(id);
    m->set_address(membership_->AddressOf(id));
    m->set_zone(state.zone());
    m->set_state(membership_->StateOf(id));
    m->set_alive(id == config_.node_id || fd_.Alive(id, now_ms));
    m->set_phi(id == config_.node_id ? 0.0 : fd_.Phi(id, now_ms));
    m->set_vnodes(state.vnodes());
    m->set_generation(state.generation());
    m->set_heartbeat(state.heartbeat());
    m->set_removed_by(state.removed_by());
    if (!ring.empty()) {
      m->set_owned_partitions(static_cast<uint32_t>(ring.RangesReplicatedBy(id, config_.replicas_n).size()));
    }
  }
  return r;
}

v1::TopologyResponse Node::Topology(int64_t now_ms) const {
  v1::TopologyResponse t;
  const v1::RingState& ring = membership_->ring_state();
  t.set_ring_version(ring.version());
  t.set_strategy(ring.strategy());
  t.set_partitions(ring.partitions());
  t.set_replicas(config_.replicas_n);
  t.set_zone_aware(ring.zone_aware());
  *t.mutable_tokens() = ring.tokens();
  for (const v1::RingMember& m : ring.members()) {
    v1::NodeAddress* a = t.add_nodes();
    a->set_node_id(m.node_id());
    a->set_address(membership_->AddressOf(m.node_id()));
    a->set_zone(m.zone());
    a->set_alive(m.node_id() == config_.node_id || fd_.Alive(m.node_id(), now_ms));
  }
  return t;
}

}  // namespace dynamo::core
