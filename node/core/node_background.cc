// Node: background work — gossip, hinted handoff, range handoff after ring
// changes, Merkle anti-entropy and tombstone reaping. All of it shares one
// byte budget that shrinks when foreground latency rises (the paper's
// section 6.5: background tasks must not hurt client requests).

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "dynamo/core/hash.h"
#include "dynamo/core/node.h"
#include "dynamo/core/storage_keys.h"
#include "node_internal.h"

namespace dynamo::core {
namespace {

constexpr size_t kAeLeavesPerExchangeMax = 256;
// Ranges per digest of an exchange's first step: 256 shared ranges are 16
// digests (~150 bytes) instead of 256 roots (~7 KB).
constexpr uint32_t kAeGroupRanges = 16;
constexpr size_t kReapsPerTickMax = 1000;

}  // namespace

// ---------------------------------------------------------------- gossip

void Node::Gossip(int64_t now_ms, Outputs* out) {
  membership_->BeatHeart();
  ++counters_.gossip_rounds;
  for (const Membership::Peer& peer : membership_->GossipTargets(now_ms, fd_, rng_)) {
    v1::Envelope env;
    *env.mutable_gossip() = membership_->MakeGossip(/*with_ring=*/false);  // see Gossip.ring
    if (peer.node_id.empty()) {
      SendToAddress(peer.address, std::move(env), out);
    } else {
      Send(peer.node_id, RequestKind::kGossip, 0, std::move(env), now_ms, out);
    }
  }
}

void Node::Farewell(int64_t now_ms, Outputs* out) {
  if (membership_->self().intent() != v1::MEMBER_INTENT_LEAVE) return;
  for (const Membership::Peer& peer : membership_->KnownPeers(now_ms, fd_).live) {
    v1::Envelope env;
    *env.mutable_gossip() = membership_->MakeGossip(/*with_ring=*/false);
    farewells_.insert(Send(peer.node_id, RequestKind::kGossip, 0, std::move(env), now_ms, out));
  }
}

void Node::OnGossip(const v1::Gossip& gossip, int64_t now_ms, Outputs* out) {
  Membership::MergeResult r = membership_->Merge(gossip, now_ms, fd_);
  heard_gossip_ = true;
  if (r.self_changed) PersistSelf(out);
  if (r.removals_changed) PersistRemovals(out);
  if (r.self_removed) OnSelfRemoved(*r.self_removed, out);
  if (r.ring_changed) OnRingChanged(now_ms, out);
}

void Node::OnSelfRemoved(const v1::MemberState& removal, Outputs* out) {
  if (removal_) return;
  // A storage that holds nothing can bring no deleted value back (say one
  // wiped and started again, whose clock, behind the remover's, made it look
  // born before the removal): it is born anew, after the removal.
  if (store_.total_keys() == 0 && store_.total_hints() == 0) {
    membership_->Reborn(removal.generation() + 1);
    if (!store_.PutMeta(meta::kStorageBorn, EncodeBigEndian64(removal.generation() + 1)).ok()) {
      ++counters_.storage_errors;
    }
    PersistSelf(out);
    return;
  }
  removal_ = removal;
  if (!store_.PutMeta(meta::kRemoved, removal.SerializeAsString()).ok()) {
    ++counters_.storage_errors;
  }
  out->sync = true;
}

bool Node::HeardFromCluster() const { return heard_gossip_ || !membership_->HasPeers(); }

void Node::PersistRemovals(Outputs* out) {
  if (!store_.PutMeta(meta::kRemovedMembers, membership_->Removals().SerializeAsString()).ok()) {
    ++counters_.storage_errors;
  }
  out->sync = true;
}

void Node::OnRingChanged(int64_t now_ms, Outputs* out) {
  if (!store_.PutMeta(meta::kRing, membership_->ring_state().SerializeAsString()).ok()) {
    ++counters_.storage_errors;
  }
  if (!store_.OnRingChange(membership_->ring()).ok()) ++counters_.storage_errors;
  out->sync = true;
  // Range indices may now mean other ranges: drop work keyed by them. Answers
  // still in flight find nothing to update; the work is redone from storage.
  ae_.reset();
  transfers_.clear();
  transfer_cursor_.clear();
  transfer_stats_.clear();
  (void)now_ms;
}

void Node::PersistSelf(Outputs* out) {
  const v1::MemberState& self = membership_->self();
  if (!store_.PutMeta(meta::kSelf, self.SerializeAsString()).ok() ||
      !store_.PutMeta(meta::kGeneration, EncodeBigEndian64(self.generation())).ok()) {
    ++counters_.storage_errors;
  }
  out->sync = true;
}

bool Node::TakeBackgroundBudget(int64_t bytes, int64_t now_ms) {
  const double rate = static_cast<double>(config_.background_bytes_per_s);
  const double slow = foreground_latency_ms_ > config_.foreground_latency_target_ms ? 0.25 : 1.0;
  budget_bytes_ += rate * slow * static_cast<double>(now_ms - budget_refilled_ms_) / 1000.0;
  budget_bytes_ = std::min(budget_bytes_, rate);  // at most one second of burst
  budget_refilled_ms_ = now_ms;
  if (budget_bytes_ <= 0) return false;
  budget_bytes_ -= static_cast<double>(bytes);  // may go negative: the next ones wait
  return true;
}

// ---------------------------------------------------------------- hinted handoff

void Node::DeliverHints(int64_t now_ms, Outputs* out) {
  std::vector<std::string> owners;
  for (const auto& [owner, count] : store_.hint_counts()) owners.push_back(owner);
  for (const std::string& owner : owners) {
    if (!hint_batches_[owner].empty()) continue;  // one batch in flight per owner
    const bool in_ring = membership_->InRing(owner);
    if (in_ring && !Healthy(owner, now_ms)) continue;  // wait until it is back
    absl::StatusOr<std::vector<LocalStore::Hint>> hints =
        store_.ScanHints(owner, config_.hint_batch_keys_max);
    if (!hints.ok()) {
      ++counters_.storage_errors;
      continue;
    }
    MessageBudget batch(config_.object_bytes_max);
    for (size_t n = 0; n < hints->size(); ++n) {
      if (!batch.Take((*hints)[n].encoded.size() + (*hints)[n].key.size())) {
        hints->resize(n);
        break;
      }
    }
    if (hints->empty()) continue;
    if (!TakeBackgroundBudget(static_cast<int64_t>(batch.used()), now_ms)) return;
    // The owner left the ring: the hints go to the keys' current owners.
    std::map<std::string, std::vector<const LocalStore::Hint*>> by_target;
    for (const LocalStore::Hint& h : *hints) {
      std::string target = owner;
      if (!in_ring) {
        Placement p = PlaceKey(membership_->ring(), h.position, config_.replicas_n,
                               [&](const std::string& n) { return Healthy(n, now_ms); });
        if (p.targets.empty()) continue;
        target = p.targets.front().node;
      }
      by_target[target].push_back(&h);
    }
    for (const auto& [target, items] : by_target) {
      v1::Envelope env;
      v1::ReplicaWrite* write = env.mutable_write();
      write->set_purpose(v1::WRITE_PURPOSE_HINT_DELIVERY);
      std::vector<HintBatchItem> sent;
      for (const LocalStore::Hint* h : items) {
        v1::KeyedObject* item = write->add_items();
        item->set_key(h->key);
        if (!item->mutable_object()->ParseFromString(h->encoded)) {
          write->mutable_items()->RemoveLast();
          continue;
        }
        sent.push_back({owner, h->key, h->position, h->encoded});
      }
      if (sent.empty()) continue;
      if (target == config_.node_id) {
        // This node now owns those keys: apply them here.
        for (const HintBatchItem& item : sent) {
          absl::StatusOr<VersionedObject> obj = VersionedObject::Decode(item.encoded);
          if (!obj.ok() || !StoreFor("", item.key, item.position, *obj, out).ok()) continue;
          // Applied to this node's own replica: nothing is forgotten.
          absl::StatusOr<bool> deleted =
              store_.DeleteHintIfUnchanged(owner, item.key, item.position, item.encoded);
          if (deleted.ok() && *deleted) ++counters_.hints_delivered;
        }
        continue;
      }
      const uint64_t id = Send(target, RequestKind::kHintDelivery, 0, std::move(env), now_ms, out);
      hint_batches_[owner].insert(id);
      hint_request_owner_[id] = owner;
      hint_request_items_[id] = std::move(sent);
    }
  }
}

void Node::OnHintAnswer(uint64_t request_id, const v1::Envelope* reply, Outputs* out) {
  auto owner_it = hint_request_owner_.find(request_id);
  if (owner_it == hint_request_owner_.end()) return;
  const std::string owner = owner_it->second;
  hint_request_owner_.erase(owner_it);
  hint_batches_[owner].erase(request_id);
  std::vector<HintBatchItem> items = std::move(hint_request_items_[request_id]);
  hint_request_items_.erase(request_id);
  if (reply == nullptr || !reply->has_write_ack()) return;  // kept: retried later
  for (const HintBatchItem& item : items) {
    absl::StatusOr<bool> deleted =
        store_.DeleteHintIfUnchanged(owner, item.key, item.position, item.encoded);
    if (!deleted.ok()) {
      ++counters_.storage_errors;
    } else if (*deleted) {
      ++counters_.hints_delivered;
      NoteForgetting(item.key, item.position, item.encoded);
    }
  }
  ApplyEpochChange(out);
  out->sync = true;
}

// ---------------------------------------------------------------- range handoff

void Node::HandOffRanges(int64_t now_ms, Outputs* out) {
  if (membership_->ring().empty()) return;
  for (size_t i = 0; i < store_.range_count(); ++i) {
    if (transfers_.size() >= config_.handoff_ranges_in_flight_max) break;
    if (transfers_.contains(i)) continue;
    if (store_.key_count(i) == 0 || Owns(i)) {
      transfer_stats_.erase(i);
      continue;
    }
    // Every owner must take the data before it is dropped here: if one is
    // down the transfer waits (and shows as stalled), it never skips it.
    std::vector<std::string> owners = OwnersOf(i);
    if (owners.empty() ||
        !std::all_of(owners.begin(), owners.end(),
                     [&](const std::string& o) { return Healthy(o, now_ms); })) {
      continue;
    }
    auto t = std::make_unique<Transfer>();
    t->id = next_transfer_id_++;
    t->range = i;
    t->targets = owners;
    MessageBudget batch(config_.object_bytes_max);
    absl::Status s = store_.ScanRange(
        store_.range(i), transfer_cursor_[i],
        [&](std::string_view key, uint64_t position, std::string_view encoded) {
          // The next batch resumes at a key that did not fit.
          if (!batch.Take(key.size() + encoded.size())) return false;
          t->items.push_back({std::string(key), position, std::string(encoded)});
          return t->items.size() < config_.handoff_batch_keys_max;
        });
    const auto bytes = static_cast<int64_t>(batch.used());
    if (!s.ok()) {
      ++counters_.storage_errors;
      continue;
    }
    if (t->items.empty()) {
      transfer_cursor_[i].clear();  // end of the pass: whatever is left changed meanwhile
      continue;
    }
    if (!TakeBackgroundBudget(bytes, now_ms)) return;
    t->last_stored_key = DataKey(t->items.back().position, t->items.back().key);
    v1::Envelope env;
    v1::ReplicaWrite* write = env.mutable_write();
    write->set_purpose(v1::WRITE_PURPOSE_HANDOFF);
    for (const Transfer::Item& item : t->items) {
      v1::KeyedObject* ko = write->add_items();
      ko->set_key(item.key);
      ko->mutable_object()->ParseFromString(item.encoded);
    }
    TransferStats& stats = transfer_stats_[i];
    stats.targets = owners;
    stats.keys_sent += t->items.size();
    stats.bytes_sent += static_cast<uint64_t>(bytes);
    for (const std::string& owner : owners) {
      Send(owner, RequestKind::kHandoff, t->id, env, now_ms, out);
    }
    transfers_[i] = std::move(t);
  }
}

void Node::OnHandoffAnswer(const PendingRequest& pending, const v1::Envelope* reply,
                           int64_t now_ms, Outputs* out) {
  auto it = std::find_if(transfers_.begin(), transfers_.end(),
                         [&](const auto& kv) { return kv.second->id == pending.owner_id; });
  if (it == transfers_.end()) return;
  Transfer& t = *it->second;
  t.answered.insert(pending.node);
  if (reply == nullptr || !reply->has_write_ack()) t.failed = true;
  if (t.answered.size() < t.targets.size()) return;
  if (!t.failed) {
    // Every owner holds the batch: drop what no write changed since.
    for (const Transfer::Item& item : t.items) {
      absl::StatusOr<bool> deleted = store_.DeleteIfUnchanged(item.key, item.position, item.encoded);
      if (!deleted.ok()) {
        ++counters_.storage_errors;
      } else if (*deleted) {
        NoteForgetting(item.key, item.position, item.encoded);
        ++counters_.handoff_keys;
        counters_.handoff_bytes += item.key.size() + item.encoded.size();
      }
    }
    transfer_cursor_[t.range] = t.last_stored_key;
    ApplyEpochChange(out);
    out->sync = true;
  }
  transfers_.erase(it);
  (void)now_ms;
}

// ---------------------------------------------------------------- anti-entropy

std::vector<size_t> Node::RangesSharedWith(const std::string& peer) const {
  std::vector<size_t> shared;
  for (size_t i = 0; i < store_.range_count(); ++i) {
    if (!Owns(i)) continue;
    const std::vector<std::string> owners = OwnersOf(i);
    if (std::find(owners.begin(), owners.end(), peer) != owners.end()) shared.push_back(i);
  }
  return shared;
}

std::vector<uint64_t> Node::RangeGroupDigests(const std::vector<size_t>& ranges,
                                              uint32_t group_ranges) const {
  std::vector<uint64_t> digests((ranges.size() + group_ranges - 1) / group_ranges, 0);
  for (size_t j = 0; j < ranges.size(); ++j) {
    const KeyRange& r = store_.range(ranges[j]);
    uint64_t& d = digests[j / group_ranges];
    d = HashCombine(HashCombine(HashCombine(d, r.start), r.end), store_.tree(ranges[j]).Root());
  }
  return digests;
}

void Node::StartAntiEntropy(int64_t now_ms, Outputs* out) {
  if (ae_ || membership_->ring().empty() || store_.range_count() == 0) return;
  // Peers in turn: every live node this one shares a range with.
  std::vector<std::string> peers;
  for (const RingNode& n : membership_->ring().nodes()) {
    if (n.id != config_.node_id && Healthy(n.id, now_ms)) peers.push_back(n.id);
  }
  if (peers.empty()) return;
  const std::string peer = peers[ae_next_peer_++ % peers.size()];
  const std::vector<size_t> shared = RangesSharedWith(peer);
  if (shared.empty()) return;
  v1::Envelope env;
  v1::RangeDigestsRequest* req = env.mutable_range_digests();
  req->set_group_ranges(kAeGroupRanges);
  req->set_ranges(static_cast<uint32_t>(shared.size()));
  for (uint64_t d : RangeGroupDigests(shared, kAeGroupRanges)) req->add_digests(d);
  ae_ = std::make_unique<AeSession>();
  ae_->id = next_ae_session_++;
  ae_->peer = peer;
  ae_->stage = AeSession::Stage::kDigests;
  ae_->differing_ranges.assign(shared.begin(), shared.end());  // narrowed by the replies
  Send(peer, RequestKind::kAeDigests, ae_->id, std::move(env), now_ms, out);
}

void Node::AeSendRoots(int64_t now_ms, Outputs* out) {
  AeSession& s = *ae_;
  if (s.differing_ranges.empty()) return AeNextRange(now_ms, out);  // in sync: done
  v1::Envelope env;
  v1::RangeRootsRequest* req = env.mutable_range_roots();
  for (size_t i : s.differing_ranges) {
    v1::RangeRoot* root = req->add_roots();
    root->set_range_start(store_.range(i).start);
    root->set_range_end(store_.range(i).end);
    root->set_root(store_.tree(i).Root());
  }
  s.stage = AeSession::Stage::kRoots;
  Send(s.peer, RequestKind::kAeRoots, s.id, std::move(env), now_ms, out);
}

void Node::AeNextRange(int64_t now_ms, Outputs* out) {
  AeSession& s = *ae_;
  if (s.differing_ranges.empty()) {
    ++counters_.antientropy_exchanges;
    ae_.reset();
    return;
  }
  s.range = s.differing_ranges.front();
  s.differing_ranges.pop_front();
  s.key_range = store_.range(s.range);
  s.stage = AeSession::Stage::kMerkle;
  s.comparison.emplace(store_.tree(s.range));
  s.leaves.clear();
  s.keys.clear();
  AeSendNext(now_ms, out);
}

void Node::AeSendNext(int64_t now_ms, Outputs* out) {
  AeSession& s = *ae_;
  v1::Envelope env;
  if (s.stage == AeSession::Stage::kMerkle) {
    std::optional<MerkleComparison::Request> req = s.comparison->NextRequest();
    if (req) {
      v1::MerkleRequest* m = env.mutable_merkle();
      m->set_range_start(s.key_range.start);
      m->set_range_end(s.key_range.end);
      m->set_level(req->level);
      m->mutable_indices()->Add(req->indices.begin(), req->indices.end());
      Send(s.peer, RequestKind::kAeMerkle, s.id, std::move(env), now_ms, out);
      return;
    }
    if (!s.comparison->done() || s.comparison->differing_leaves().empty()) {
      return AeNextRange(now_ms, out);
    }
    s.leaves = s.comparison->differing_leaves();
    if (s.leaves.size() > kAeLeavesPerExchangeMax) s.leaves.resize(kAeLeavesPerExchangeMax);
    s.stage = AeSession::Stage::kLeafKeys;
    v1::LeafKeysRequest* lk = env.mutable_leaf_keys();
    lk->set_range_start(s.key_range.start);
    lk->set_range_end(s.key_range.end);
    lk->mutable_leaves()->Add(s.leaves.begin(), s.leaves.end());
    Send(s.peer, RequestKind::kAeLeafKeys, s.id, std::move(env), now_ms, out);
  }
}

void Node::OnAeAnswer(const PendingRequest& pending, const v1::Envelope* reply, int64_t now_ms,
                      Outputs* out) {
  if (!ae_ || ae_->id != pending.owner_id) return;
  AeSession& s = *ae_;
  // The current range is done (or failed): on to the next differing one.
  auto end = [&] { AeNextRange(now_ms, out); };
  if (pending.kind == RequestKind::kAeDigests && reply != nullptr && reply->has_error()) {
    // A peer of an older version does not know digests: compare every root.
    return AeSendRoots(now_ms, out);
  }
  if (reply == nullptr || reply->has_error()) {
    ae_.reset();  // the peer is gone or refuses: the next round tries again
    return;
  }
  switch (pending.kind) {
    case RequestKind::kAeDigests: {
      if (!reply->has_range_digests_reply()) {
        ae_.reset();
        return;
      }
      const auto& groups = reply->range_digests_reply().differing();
      const std::set<uint32_t> differing(groups.begin(), groups.end());  // a peer may repeat one
      std::vector<size_t> shared(s.differing_ranges.begin(), s.differing_ranges.end());
      s.differing_ranges.clear();
      for (size_t j = 0; j < shared.size(); ++j) {
        if (differing.contains(static_cast<uint32_t>(j / kAeGroupRanges))) {
          s.differing_ranges.push_back(shared[j]);
        }
      }
      return AeSendRoots(now_ms, out);
    }
    case RequestKind::kAeRoots: {
      if (!reply->has_range_roots_reply()) {
        ae_.reset();
        return;
      }
      std::vector<size_t> shared(s.differing_ranges.begin(), s.differing_ranges.end());
      s.differing_ranges.clear();
      for (uint32_t i : reply->range_roots_reply().differing()) {
        if (i < shared.size()) s.differing_ranges.push_back(shared[i]);
      }
      return AeNextRange(now_ms, out);
    }
    case RequestKind::kAeMerkle: {
      if (!reply->has_merkle_reply()) return end();
      std::vector<uint64_t> hashes(reply->merkle_reply().hashes().begin(),
                                   reply->merkle_reply().hashes().end());
      if (!s.comparison->OnReply(hashes).ok()) return end();
      AeSendNext(now_ms, out);
      return;
    }
    case RequestKind::kAeLeafKeys: {
      if (!reply->has_leaf_keys_reply()) return end();
      std::vector<KeyItemHash> theirs;
      for (const v1::KeyHash& kh : reply->leaf_keys_reply().items()) {
        theirs.push_back({kh.key(), kh.hash()});
      }
      std::vector<KeyItemHash> mine;
      const MerkleTree& tree = store_.tree(s.range);
      for (uint32_t leaf : s.leaves) {
        absl::StatusOr<KeyRange> leaf_range = tree.LeafRange(leaf);
        if (!leaf_range.ok()) continue;
        (void)store_.ScanItemHashes(*leaf_range, [&](std::string_view key, uint64_t, uint64_t hash) {
          mine.push_back({std::string(key), hash});
          return true;
        });
      }
      s.keys = DifferingKeys(std::move(mine), std::move(theirs));
      if (s.keys.size() > config_.antientropy_keys_per_exchange_max) {
        s.keys.resize(config_.antientropy_keys_per_exchange_max);
      }
      if (s.keys.empty()) return end();
      s.stage = AeSession::Stage::kRead;
      v1::Envelope env;
      for (const std::string& key : s.keys) env.mutable_read()->add_keys(key);
      Send(s.peer, RequestKind::kAeRead, s.id, std::move(env), now_ms, out);
      return;
    }
    case RequestKind::kAeRead: {
      if (!reply->has_read_reply()) return end();
      // Take what the peer has, then give it what it lacks.
      v1::Envelope push;
      v1::ReplicaWrite* write = push.mutable_write();
      write->set_purpose(v1::WRITE_PURPOSE_ANTI_ENTROPY);
      MessageBudget batch(config_.object_bytes_max);
      for (const v1::ReadItem& item : reply->read_reply().items()) {
        const uint64_t position = KeyPosition(item.key());
        std::optional<VersionedObject> theirs;
        if (item.found()) {
          absl::StatusOr<VersionedObject> obj = ObjectFromPeer(item.object());
          if (!obj.ok()) continue;
          theirs = *std::move(obj);
          bool changed = false;
          if (!store_.Merge(item.key(), position, *theirs, &changed).ok()) {
            ++counters_.storage_errors;
            continue;
          }
          out->sync = true;
          if (changed) ++counters_.antientropy_keys_repaired;
        }
        absl::StatusOr<std::optional<StoredObject>> mine = store_.Get(item.key(), position);
        if (!mine.ok() || !*mine) continue;
        if (theirs && (*mine)->object == *theirs) continue;
        // What does not fit differs still, for a later round.
        if (!batch.Take((*mine)->encoded.size() + item.key().size())) continue;
        v1::KeyedObject* ko = write->add_items();
        ko->set_key(item.key());
        (*mine)->object.ToProto(ko->mutable_object());
      }
      if (write->items_size() == 0) return end();
      s.stage = AeSession::Stage::kPush;
      counters_.antientropy_keys_repaired += static_cast<uint64_t>(write->items_size());
      Send(s.peer, RequestKind::kAePush, s.id, std::move(push), now_ms, out);
      return;
    }
    case RequestKind::kAePush:
    default:
      return end();
  }
}

// ---------------------------------------------------------------- tombstones

void Node::ReapTombstones(int64_t now_ms, Outputs* out) {
  // While a node still holds copies bound for the owners (a slow handoff, a
  // hint), the values a tombstone deleted may be among them: reaped, the
  // tombstone could no longer cover them when they arrive. The reaps wait.
  // This node's own state is among the members' (UpdateHoldings keeps it
  // every tick, far more often than a grace period).
  for (size_t n = 0; n < kReapsPerTickMax; ++n) {
    absl::StatusOr<const ReapQueue::Item*> front = reap_queue_.Front();
    if (!front.ok()) {
      ++counters_.storage_errors;
      return;
    }
    if (*front == nullptr || (*front)->due_ms > now_ms) return;
    // Gossip first, which costs nothing: after a restart a peer's
    // handing_off is unknown until its state arrives.
    if (!membership_->KnowsEveryMember() || membership_->AnyHandingOff()) return;
    // But gossip can be old: a node that took a hint while partitioned away
    // tells only its side. Every peer must answer, after the reap was due,
    // that it holds nothing bound for others; one that cannot be reached
    // (down, cut off, or of an older version that does not know the query)
    // holds the reaps until it answers, as its hints would.
    if ((*front)->due_ms > nothing_handed_off_as_of_ms_) {
      // One round answers for every reap due by then: at most one a gossip
      // interval, so a coordinator with reaps due sends each peer one
      // message per interval.
      if (!handoff_query_ && now_ms >= next_handoff_query_ms_) {
        next_handoff_query_ms_ = now_ms + config_.gossip_interval_ms;
        SendHandoffQuery(now_ms, out);
      }
      return;
    }
    const ReapQueue::Item item = **front;
    std::vector<std::string> peers;
    bool reaped_here = true;
    if (!membership_->ring().empty()) {
      for (const std::string& owner : OwnersOf(membership_->ring().RangeIndex(item.position))) {
        if (owner != config_.node_id) {
          peers.push_back(owner);
        } else if (!ReapLocal(item.key, item.position, item.clock, out).ok()) {
          reaped_here = false;
        }
      }
    }
    if (peers.empty() && reaped_here) {
      if (!reap_queue_.Pop().ok()) {
        ++counters_.storage_errors;
        return;
      }
      continue;
    }
    // An owner that misses the reap (down, the message lost) would keep the
    // tombstone for good, and anti-entropy would copy it back to the others:
    // the reap stays queued, due again once any answer must have come, until
    // every owner acknowledges it.
    absl::StatusOr<std::string> again = reap_queue_.Postpone(
        now_ms + std::max(config_.tombstone_grace_ms, config_.request_timeout_ms));
    if (!again.ok()) {
      ++counters_.storage_errors;
      return;
    }
    if (peers.empty()) {
      ++counters_.reaps_retried;  // this node's storage failed
      continue;
    }
    const uint64_t attempt = next_reap_attempt_++;
    reap_attempts_[attempt] = ReapAttempt{*std::move(again), peers.size(), !reaped_here};
    for (const std::string& owner : peers) {
      v1::Envelope env;
      env.mutable_reap()->set_key(item.key);
      item.clock.ToProto(env.mutable_reap()->mutable_clock());
      Send(owner, RequestKind::kReap, attempt, std::move(env), now_ms, out);
    }
  }
}

void Node::OnReapAnswer(uint64_t attempt_id, const v1::Envelope* reply) {
  auto it = reap_attempts_.find(attempt_id);
  if (it == reap_attempts_.end()) return;
  ReapAttempt& attempt = it->second;
  if (reply == nullptr || !reply->has_write_ack()) attempt.failed = true;
  if (--attempt.unanswered > 0) return;
  if (attempt.failed) {
    ++counters_.reaps_retried;  // its record stays queued
  } else if (!reap_queue_.Remove(attempt.record).ok()) {
    ++counters_.storage_errors;  // done twice later: the second finds nothing
  }
  reap_attempts_.erase(it);
}

bool Node::HandingOff() const { return store_.total_hints() > 0 || UnownedKeys() > 0; }

void Node::SendHandoffQuery(int64_t now_ms, Outputs* out) {
  const Membership::Peers peers = membership_->KnownPeers(now_ms, fd_);
  HandoffQueryRound round;
  round.id = next_handoff_query_++;
  round.sent_ms = now_ms;
  round.unanswered = peers.live.size() + peers.unreachable.size();
  if (round.unanswered == 0) {
    nothing_handed_off_as_of_ms_ = now_ms;
    last_round_holding_.clear();
    return;
  }
  handoff_query_ = round;
  for (const std::vector<Membership::Peer>* group : {&peers.live, &peers.unreachable}) {
    for (const Membership::Peer& peer : *group) {
      v1::Envelope env;
      env.mutable_handoff_query();
      Send(peer.node_id, RequestKind::kHandoffQuery, round.id, std::move(env), now_ms, out);
    }
  }
}

void Node::OnHandoffQueryAnswer(uint64_t query_id, const std::string& peer,
                                const v1::Envelope* reply) {
  if (!handoff_query_ || handoff_query_->id != query_id) return;
  // No answer, an error (a node of an older version), or "handing off".
  if (reply == nullptr || !reply->has_handoff_query_reply() ||
      reply->handoff_query_reply().handing_off()) {
    handoff_query_->holding.push_back(peer);
  }
  if (--handoff_query_->unanswered > 0) return;
  if (handoff_query_->holding.empty()) nothing_handed_off_as_of_ms_ = handoff_query_->sent_ms;
  last_round_holding_ = std::move(handoff_query_->holding);
  handoff_query_.reset();
}

absl::Status Node::ReapLocal(const std::string& key, uint64_t position,
                             const VersionVector& clock, Outputs* out) {
  absl::StatusOr<std::optional<StoredObject>> stored = store_.Get(key, position);
  if (!stored.ok()) return stored.status();
  if (!*stored) return absl::OkStatus();
  const VersionedObject& obj = (*stored)->object;
  // Only the very tombstone every owner acknowledged: any newer write stays.
  if (!obj.IsDeleted() || !(obj.clock() == clock)) return absl::OkStatus();
  absl::StatusOr<bool> deleted = store_.DeleteIfUnchanged(key, position, (*stored)->encoded);
  if (!deleted.ok()) return deleted.status();
  if (*deleted) {
    ++counters_.tombstones_reaped;
    out->sync = true;
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------- leaving

void Node::UpdateHoldings(Outputs* out) {
  const v1::MemberState& self = membership_->self();
  const bool drained = self.intent() == v1::MEMBER_INTENT_LEAVE &&
                       !membership_->InRing(config_.node_id) && store_.total_keys() == 0 &&
                       store_.total_hints() == 0;
  if (drained != self.drained()) {
    membership_->SetDrained(drained);
    PersistSelf(out);
  }
  const bool handing_off = HandingOff();
  if (handing_off != self.handing_off()) {
    membership_->SetHandingOff(handing_off);
    PersistSelf(out);
  }
}

}  // namespace dynamo::core
