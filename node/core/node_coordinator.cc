// Node: coordination of client requests (the paper's sections 4.5 and 4.6).

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "dynamo/core/context.h"
#include "dynamo/core/hash.h"
#include "dynamo/core/node.h"
#include "dynamo/core/storage_keys.h"
#include "node_internal.h"

namespace dynamo::core {
namespace {

template <typename Req>
const std::string& KeyOf(const Req& r) {
  return r.key();
}

// The context a client gets: the object's clock pruned past
// clock_entries_max. Only the client's copy: the stored clock keeps every
// entry (up to kStoredClockEntriesMax), so that a write never leaves behind
// a value it replaced, whose actor a pruned clock would no longer cover.
std::string ClientContext(uint64_t position, const VersionedObject& object, size_t entries_max) {
  if (object.clock().size() <= entries_max) return EncodeContext(position, object.clock());
  return EncodeContext(position, object.PrunedClock(entries_max));
}

v1::GetResponse MakeGetResponse(uint64_t position, const VersionedObject& merged,
                                size_t context_entries_max) {
  v1::GetResponse r;
  for (const Sibling& s : merged.siblings()) {
    if (s.tombstone) continue;
    v1::Sibling* out = r.add_siblings();
    out->set_value(s.value);
    out->set_timestamp_ms(s.timestamp_ms);
  }
  r.set_found(r.siblings_size() > 0);
  r.set_context(ClientContext(position, merged, context_entries_max));
  return r;
}

}  // namespace

bool Node::Healthy(const std::string& node, int64_t now_ms) const {
  if (node == config_.node_id) return true;
  return fd_.Alive(node, now_ms) && membership_->StateOf(node) != v1::NODE_STATE_LEFT;
}

Dot Node::NextDot() {
  const uint64_t counter = next_counter_++;
  if (counter > counter_limit_) {
    counter_limit_ = counter + kCounterBlock;
    if (!store_.PutMeta(meta::kCounterLimit, EncodeBigEndian64(counter_limit_)).ok()) {
      ++counters_.storage_errors;
    }
  }
  return Dot{actor_, counter};
}

absl::Status Node::ResolveQuorum(const v1::Quorum& q, size_t* n, size_t* r, size_t* w) const {
  *n = q.n() == 0 ? config_.replicas_n : q.n();
  if (*n > config_.replicas_n) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "n=%d exceeds the cluster's replication factor N=%d", *n, config_.replicas_n));
  }
  *r = q.r() == 0 ? std::min<size_t>(config_.read_quorum_r, *n) : q.r();
  *w = q.w() == 0 ? std::min<size_t>(config_.write_quorum_w, *n) : q.w();
  if (*r < 1 || *r > *n) {
    return absl::InvalidArgumentError(absl::StrFormat("r=%d must be in 1..n (n=%d)", *r, *n));
  }
  if (*w < 1 || *w > *n) {
    return absl::InvalidArgumentError(absl::StrFormat("w=%d must be in 1..n (n=%d)", *w, *n));
  }
  return absl::OkStatus();
}

void Node::HandleClient(uint64_t client_id, ClientRequest request, int64_t now_ms, Outputs* out) {
  Coordinate(client_id, nullptr, std::move(request), now_ms, out);
}

void Node::Coordinate(uint64_t client_id, const v1::Envelope* origin, ClientRequest request,
                      int64_t now_ms, Outputs* out) {
  auto owned = std::make_unique<Op>();
  Op& op = *owned;
  op.id = next_op_id_++;
  op.client_id = client_id;
  if (origin != nullptr) {
    op.remote = true;
    op.origin = *origin;
  }
  op.start_ms = now_ms;
  const int64_t timeout = request.timeout_ms > 0
                              ? std::min(request.timeout_ms, config_.request_timeout_ms)
                              : config_.request_timeout_ms;
  op.deadline_ms = now_ms + timeout;

  const v1::Quorum* quorum = nullptr;
  std::string value;
  std::string context_bytes;
  if (auto* get = std::get_if<v1::GetRequest>(&request.op)) {
    op.kind = Op::Kind::kGet;
    op.key = get->key();
    quorum = &get->quorum();
    ++counters_.gets;
  } else if (auto* put = std::get_if<v1::PutRequest>(&request.op)) {
    op.kind = Op::Kind::kPut;
    op.key = put->key();
    quorum = &put->quorum();
    value = std::move(*put->mutable_value());
    context_bytes = put->context();
    ++counters_.puts;
  } else {
    auto& del = std::get<v1::DeleteRequest>(request.op);
    op.kind = Op::Kind::kDelete;
    op.key = del.key();
    quorum = &del.quorum();
    context_bytes = del.context();
    ++counters_.deletes;
  }
  op.position = KeyPosition(op.key);

  absl::Status invalid;
  if (op.key.empty()) {
    invalid = absl::InvalidArgumentError("key must not be empty");
  } else if (op.key.size() > config_.key_bytes_max) {
    invalid = absl::InvalidArgumentError(absl::StrFormat(
        "key is %d bytes, more than the limit of %d", op.key.size(), config_.key_bytes_max));
  } else if (value.size() > config_.value_bytes_max) {
    invalid = absl::InvalidArgumentError(absl::StrFormat(
        "value is %d bytes, more than the limit of %d", value.size(), config_.value_bytes_max));
  } else {
    invalid = ResolveQuorum(*quorum, &op.n, &op.r, &op.w);
  }
  absl::StatusOr<VersionVector> context = VersionVector();
  if (invalid.ok() && op.kind != Op::Kind::kGet) {
    context = DecodeContext(context_bytes, op.position);
    if (!context.ok()) invalid = context.status();
  }
  if (!invalid.ok()) {
    ++counters_.invalid_requests;
    Respond(op, invalid, std::monostate(), now_ms, out);
    return;
  }
  if (ops_.size() >= config_.operations_in_flight_max) {
    Respond(op, absl::ResourceExhaustedError(absl::StrFormat(
                    "node %s has %d requests in flight, its limit: retry later or elsewhere",
                    config_.node_id, ops_.size())),
            std::monostate(), now_ms, out);
    return;
  }
  if (membership_->ring().empty()) {
    Respond(op, absl::UnavailableError(absl::StrCat(
                    "node ", config_.node_id,
                    " knows no ring yet: it has not founded or joined a cluster")),
            std::monostate(), now_ms, out);
    return;
  }
  if (std::optional<std::string> why = NotServingWhy()) {
    Respond(op, absl::UnavailableError(absl::StrCat(*why, ": retry on another node")),
            std::monostate(), now_ms, out);
    return;
  }
  ops_[op.id] = std::move(owned);
  op_deadlines_.insert({op.deadline_ms, op.id});
  if (op.kind == Op::Kind::kGet) {
    StartGet(op, now_ms, out);
  } else {
    op.value = std::move(value);
    op.context = *std::move(context);
    StartWrite(op, now_ms, out);
  }
}

void Node::StartGet(Op& op, int64_t now_ms, Outputs* out) {
  op.placement = PlaceKey(membership_->ring(), op.position, op.n,
                          [&](const std::string& node) { return Healthy(node, now_ms); });
  if (op.placement.targets.size() < op.r) {
    Respond(op, absl::UnavailableError(absl::StrFormat(
                    "read quorum not reachable: %d healthy replicas for this key, R=%d",
                    op.placement.targets.size(), op.r)),
            std::monostate(), now_ms, out);
    AdvanceOp(op, now_ms, out);
    return;
  }
  op.read.emplace(op.placement.targets, op.r, op.key);
  // Digest reads: one target answers with its object, this node if it is one
  // (no message, and no object on the wire), the others with digests.
  std::string full_target = op.placement.targets.front().node;
  for (const Target& t : op.placement.targets) {
    if (t.node == config_.node_id) full_target = t.node;
  }
  op.read->ExpectFull(full_target);
  for (const Target& t : op.placement.targets) {
    if (t.node == config_.node_id) {
      absl::StatusOr<std::optional<VersionedObject>> local = ReadLocal(op.key, op.position);
      if (local.ok()) {
        op.read->OnResponse(t.node, *std::move(local));
      } else {
        ++counters_.storage_errors;
        op.read->OnFailure(t.node, std::string(local.status().message()));
      }
      continue;
    }
    SendReplicaRead(op, t.node, /*digest_only=*/t.node != full_target, now_ms, out);
  }
  AdvanceOp(op, now_ms, out);
}

void Node::SendReplicaRead(const Op& op, const std::string& node, bool digest_only,
                           int64_t now_ms, Outputs* out) {
  v1::Envelope env;
  env.mutable_read()->add_keys(op.key);
  env.mutable_read()->set_digest_only(digest_only);
  Send(node, RequestKind::kOpRead, op.id, std::move(env), now_ms, out);
}

void Node::StartWrite(Op& op, int64_t now_ms, Outputs* out) {
  op.placement = PlaceKey(membership_->ring(), op.position, op.n,
                          [&](const std::string& node) { return Healthy(node, now_ms); });
  if (op.placement.targets.size() < op.w) {
    Respond(op, absl::UnavailableError(absl::StrFormat(
                    "write quorum not reachable: %d healthy replicas for this key, W=%d",
                    op.placement.targets.size(), op.w)),
            std::monostate(), now_ms, out);
    AdvanceOp(op, now_ms, out);
    return;
  }
  const bool in_targets =
      std::any_of(op.placement.targets.begin(), op.placement.targets.end(),
                  [&](const Target& t) { return t.node == config_.node_id; });
  // Writes are coordinated by a node of the preference list, which makes the
  // new version's dot from its own counter (section 4.5). A forwarded request
  // is coordinated where it lands even if views differ: forwarding again
  // could loop.
  if (!in_targets && !op.remote && ForwardWrite(op, now_ms, out)) return;
  CoordinateWriteHere(op, now_ms, out);
}

bool Node::ForwardWrite(Op& op, int64_t now_ms, Outputs* out) {
  const Target* to = nullptr;
  for (const Target& t : op.placement.targets) {
    if (!op.forward_tried.contains(t.node) && Healthy(t.node, now_ms)) {
      to = &t;
      break;
    }
  }
  // Half of the time left: if that coordinator fails, there is time to write
  // through another (or here).
  const int64_t budget_ms = (op.deadline_ms - now_ms) / 2;
  if (to == nullptr || budget_ms < 1) return false;
  op.forwarded = true;
  op.forwarded_to = to->node;
  op.forward_tried.insert(to->node);
  ++counters_.forwarded;
  v1::Envelope env;
  v1::Forward* fwd = env.mutable_forward();
  v1::Quorum* quorum = nullptr;
  if (op.kind == Op::Kind::kPut) {
    v1::PutRequest* put = fwd->mutable_put();
    put->set_key(op.key);
    put->set_value(op.value);
    put->set_context(EncodeContext(op.position, op.context));
    quorum = put->mutable_quorum();
  } else {
    v1::DeleteRequest* del = fwd->mutable_delete_();
    del->set_key(op.key);
    del->set_context(EncodeContext(op.position, op.context));
    quorum = del->mutable_quorum();
  }
  quorum->set_n(static_cast<uint32_t>(op.n));
  quorum->set_r(static_cast<uint32_t>(op.r));
  quorum->set_w(static_cast<uint32_t>(op.w));
  fwd->set_timeout_ms(budget_ms);
  Send(op.forwarded_to, RequestKind::kOpForward, op.id, std::move(env), now_ms, out, budget_ms);
  return true;
}

absl::StatusOr<VersionedObject> Node::WriteBase(const Op& op, const std::string& hint_for,
                                                ReplicaRead* read) {
  // The new version is built on everything this node holds for the key, its
  // replica and its hints: its clock entry then truthfully covers every dot
  // this actor ever made for the key (the invariant that lets version vectors
  // stand for sets of dots; see TakeNewEpoch for when a node forgets some).
  if (store_.hint_counts().empty() && (hint_for.empty() || hint_for == config_.node_id)) {
    absl::StatusOr<std::optional<ItemMeta>> meta = store_.GetItemMeta(op.key, op.position);
    if (!meta.ok()) return meta.status();
    // Without an item meta (nothing stored, or stored by an older version)
    // the object read below tells.
    if (*meta && (*meta)->clock && op.context.Descends(*(*meta)->clock)) {
      VersionVector clock = *(*meta)->clock;
      *read = *std::move(meta);
      return VersionedObject::OfClock(std::move(clock));
    }
  }
  std::optional<StoredObject> replica;
  absl::StatusOr<std::optional<VersionedObject>> current = ReadLocal(op.key, op.position, &replica);
  if (!current.ok()) return current.status();
  *read = std::move(replica);
  return *current ? **std::move(current) : VersionedObject();
}

void Node::CoordinateWriteHere(Op& op, int64_t now_ms, Outputs* out) {
  op.forwarded = false;
  const VersionVector& context = op.context;
  const bool tombstone = op.kind == Op::Kind::kDelete;
  auto self = std::find_if(op.placement.targets.begin(), op.placement.targets.end(),
                           [&](const Target& t) { return t.node == config_.node_id; });
  std::vector<Target> targets = op.placement.targets;
  std::string hint_for;
  if (self != op.placement.targets.end()) {
    hint_for = self->hint_for;
  } else {
    targets.push_back({config_.node_id, ""});
  }

  ReplicaRead replica;
  absl::StatusOr<VersionedObject> base = WriteBase(op, hint_for, &replica);
  if (!base.ok()) {
    ++counters_.storage_errors;
    Respond(op, base.status(), std::monostate(), now_ms, out);
    AdvanceOp(op, now_ms, out);
    return;
  }
  VersionedObject object = *std::move(base);
  size_t survivors = 0;
  size_t survivor_bytes = 0;
  for (const Sibling& s : object.siblings()) {
    if (!s.tombstone && !context.Covers(s.dot)) {
      ++survivors;
      survivor_bytes += s.value.size();
    }
  }
  // Past either bound the key could no longer be read or replicated in one
  // message; the client resolves what is there first.
  std::string refusal;
  if (!tombstone && survivors + 1 > config_.siblings_max) {
    refusal = absl::StrFormat("key has %d concurrent values (siblings), the limit is %d",
                              survivors, config_.siblings_max);
  } else if (!tombstone && survivor_bytes + op.value.size() > config_.object_bytes_max) {
    refusal = absl::StrFormat(
        "key's %d concurrent values (siblings) hold %d bytes, and %d more would pass the limit "
        "of %d",
        survivors, survivor_bytes, op.value.size(), config_.object_bytes_max);
  }
  if (!refusal.empty()) {
    ++counters_.sibling_limit_refusals;
    Respond(op, absl::ResourceExhaustedError(absl::StrCat(
                    refusal, ": read it, resolve the siblings and write back with the read's "
                    "context")),
            std::monostate(), now_ms, out);
    AdvanceOp(op, now_ms, out);
    return;
  }
  if (!tombstone && survivors + 1 > config_.siblings_warn) ++counters_.sibling_warnings;

  // Every counter of this node's actor below next_counter_ was issued here,
  // and none above: a context (or a stored clock) that claims more was forged
  // or corrupted. Taking it as a floor would move the node's counter, shared
  // by every key and kept across restarts, past what any clock may hold.
  if (const uint64_t claimed = context.Counter(actor_); claimed >= next_counter_) {
    ++counters_.invalid_requests;
    Respond(op, absl::InvalidArgumentError(absl::StrFormat(
                    "the context claims version %d of %s's clock, which it has not issued: it "
                    "is corrupt or forged; read the key again and write with that context",
                    claimed, actor_)),
            std::monostate(), now_ms, out);
    AdvanceOp(op, now_ms, out);
    return;
  }
  if (const uint64_t claimed = object.clock().Counter(actor_); claimed >= next_counter_) {
    ++counters_.storage_errors;
    Respond(op, absl::DataLossError(absl::StrFormat(
                    "the key's stored clock claims version %d of %s's clock, which it has not "
                    "issued (a forged context written through another node?); write it through "
                    "another node",
                    claimed, actor_)),
            std::monostate(), now_ms, out);
    AdvanceOp(op, now_ms, out);
    return;
  }
  const Dot dot = NextDot();
  object.Write(context, dot, std::move(op.value), tombstone, now_ms + wall_clock_offset_ms_);
  absl::StatusOr<StoredObject> stored =
      StoreFor(hint_for, op.key, op.position, object, out, replica);
  if (!stored.ok()) {
    Respond(op, stored.status(), std::monostate(), now_ms, out);
    AdvanceOp(op, now_ms, out);
    return;
  }
  // Owners that are down with no fallback to stand in (a cluster of N nodes):
  // this node keeps their hints, delivered when they are back (they do not
  // count towards W: they are on this node).
  for (const std::string& owner : op.placement.unplaced_owners) {
    if (owner != config_.node_id) (void)StoreFor(owner, op.key, op.position, object, out);
  }
  op.written = std::move(object);
  op.write.emplace(targets, op.w);
  op.write->OnAck(config_.node_id, stored->object.IsDeleted());
  for (const Target& t : targets) {
    if (t.node == config_.node_id) continue;
    v1::Envelope env;
    v1::ReplicaWrite* write = env.mutable_write();
    v1::KeyedObject* item = write->add_items();
    item->set_key(op.key);
    op.written.ToProto(item->mutable_object());
    write->set_hint_for(t.hint_for);
    write->set_purpose(v1::WRITE_PURPOSE_COORDINATED);
    Send(t.node, RequestKind::kOpWrite, op.id, std::move(env), now_ms, out);
  }
  AdvanceOp(op, now_ms, out);
}

void Node::OnOpAnswer(Op& op, const std::string& node, const v1::Envelope* reply,
                      RequestKind kind, int64_t now_ms, Outputs* out) {
  const bool failed = reply == nullptr || reply->has_error();
  // Why the node failed, for the client's error if the quorum is not reached.
  auto why = [reply](const char* expected) -> std::string {
    if (reply == nullptr) return "did not answer";  // timed out, or unreachable
    if (reply->has_error()) return reply->error().message();
    return absl::StrCat("answered without ", expected);
  };
  switch (kind) {
    case RequestKind::kOpRead: {
      if (!op.read) break;
      if (failed || !reply->has_read_reply() || reply->read_reply().items_size() != 1) {
        op.read->OnFailure(node, why("one read item"));
        break;
      }
      const v1::ReadItem& item = reply->read_reply().items(0);
      if (!item.found() || !item.has_object()) {
        op.read->OnDigest(node, item.found() ? std::optional<uint64_t>(item.digest()) : std::nullopt);
        break;
      }
      absl::StatusOr<VersionedObject> obj = ObjectFromPeer(item.object());
      if (obj.ok()) {
        op.read->OnResponse(node, *std::move(obj));
      } else {
        op.read->OnFailure(node,
                           absl::StrCat("answered an invalid object: ", obj.status().message()));
      }
      break;
    }
    case RequestKind::kOpWrite:
      if (!op.write) break;
      if (failed || !reply->has_write_ack()) {
        op.write->OnFailure(node, why("a write ack"));
        // Keep a hint for the owner that did not take the write, as the
        // coordinator, whatever the outcome of the quorum.
        for (const Target& t : op.write->targets()) {
          if (t.node != node) continue;
          const std::string owner = t.hint_for.empty() ? t.node : t.hint_for;
          if (owner != config_.node_id) (void)StoreFor(owner, op.key, op.position, op.written, out);
        }
      } else {
        const auto& flags = reply->write_ack().tombstone_only();
        op.write->OnAck(node, !flags.empty() && flags[0]);
      }
      break;
    case RequestKind::kOpForward: {
      if (op.replied) break;
      if (failed && reply == nullptr) {
        // The coordinator did not answer: another one, else this node.
        fd_.Suspect(node);
        if (!ForwardWrite(op, now_ms, out)) CoordinateWriteHere(op, now_ms, out);
        return;  // the op advances from here on
      }
      if (failed || !reply->has_forward_reply()) {
        Respond(op, absl::UnavailableError(absl::StrCat(
                        "coordinator ", node, " for this key failed: ", why("a forward reply"))),
                std::monostate(), now_ms, out);
        break;
      }
      const v1::ForwardReply& fr = reply->forward_reply();
      const absl::Status status(static_cast<absl::StatusCode>(fr.code()), fr.message());
      Response response;
      if (status.ok() && op.kind == Op::Kind::kPut) {
        v1::PutResponse put;
        put.set_context(fr.context());
        response = std::move(put);
      } else if (status.ok()) {
        v1::DeleteResponse del;
        del.set_context(fr.context());
        response = std::move(del);
      }
      Respond(op, status, std::move(response), now_ms, out);
      break;
    }
    default:
      break;
  }
  AdvanceOp(op, now_ms, out);
}

void Node::AdvanceOp(Op& op, int64_t now_ms, Outputs* out) {
  bool done = op.replied && !op.read && !op.write;  // failed early, or forwarded and answered
  if (op.read) {
    for (const std::string& node : op.read->TakeFullReadsNeeded()) {
      ++counters_.read_digest_mismatches;
      SendReplicaRead(op, node, /*digest_only=*/false, now_ms, out);
    }
    if (!op.replied && op.read->Succeeded()) {
      Respond(op, absl::OkStatus(),
              MakeGetResponse(op.position, op.read->merged(), config_.clock_entries_max), now_ms,
              out);
    } else if (!op.replied && op.read->Failed()) {
      Respond(op, absl::UnavailableError(absl::StrFormat(
                      "read quorum not reached: %d of R=%d replicas answered (%d asked); "
                      "failed: %s",
                      op.read->responses(), op.r, op.read->targets().size(),
                      op.read->failed().Summary())),
              std::monostate(), now_ms, out);
    }
    if (op.read->Complete()) {
      ReadRepair(op, now_ms, out);
      done = true;
    }
  }
  if (op.write) {
    if (!op.replied && op.write->Succeeded()) {
      const std::string ctx = ClientContext(op.position, op.written, config_.clock_entries_max);
      if (op.kind == Op::Kind::kPut) {
        v1::PutResponse put;
        put.set_context(ctx);
        Respond(op, absl::OkStatus(), std::move(put), now_ms, out);
      } else {
        v1::DeleteResponse del;
        del.set_context(ctx);
        Respond(op, absl::OkStatus(), std::move(del), now_ms, out);
      }
    } else if (!op.replied && op.write->Failed()) {
      Respond(op, absl::UnavailableError(absl::StrFormat(
                      "write quorum not reached: %d of W=%d replicas acknowledged (%d asked; "
                      "failed: %s); the value may still be stored on those that did",
                      op.write->acks(), op.w, op.write->targets().size(),
                      op.write->failed().Summary())),
              std::monostate(), now_ms, out);
    }
    if (op.write->Complete()) {
      // A reap removes the tombstone everywhere, so every one of the key's N
      // owners must hold it: after a delete with a smaller n, the owners it
      // skipped still hold the value, which the reap would bring back.
      if (op.kind == Op::Kind::kDelete && op.n == config_.replicas_n &&
          op.write->AllOwnersHoldTombstone(op.placement.owners)) {
        // Failing, the tombstone stays: a key's worth of space, no harm.
        if (!reap_queue_.Push(op.key, op.position, op.written.clock(),
                              now_ms + config_.tombstone_grace_ms)
                 .ok()) {
          ++counters_.storage_errors;
        }
      }
      done = true;
    }
  }
  if (done) EraseOp(op.id);
}

void Node::EraseOp(uint64_t op_id) {
  auto it = ops_.find(op_id);
  if (it == ops_.end()) return;
  op_deadlines_.erase({it->second->deadline_ms, op_id});
  ops_.erase(it);
}

void Node::Respond(Op& op, const absl::Status& status, Response response, int64_t now_ms,
                   Outputs* out) {
  if (op.replied) return;
  op.replied = true;
  if (absl::IsUnavailable(status)) ++counters_.quorum_failures;
  const double latency = static_cast<double>(now_ms - op.start_ms);
  foreground_latency_ms_ = 0.9 * foreground_latency_ms_ + 0.1 * latency;
  if (op.remote) {
    v1::Envelope reply;
    v1::ForwardReply* fr = reply.mutable_forward_reply();
    fr->set_code(static_cast<int32_t>(status.code()));
    fr->set_message(std::string(status.message()));
    if (auto* put = std::get_if<v1::PutResponse>(&response)) fr->set_context(put->context());
    if (auto* del = std::get_if<v1::DeleteResponse>(&response)) fr->set_context(del->context());
    Reply(op.origin, std::move(reply), out);
    return;
  }
  out->replies.push_back({op.client_id, status, std::move(response)});
}

void Node::ReadRepair(Op& op, int64_t now_ms, Outputs* out) {
  const std::vector<Target> stale = op.read->StaleResponders();
  for (const Target& t : stale) {
    ++counters_.read_repairs;
    if (t.node == config_.node_id) {
      (void)StoreFor(t.hint_for, op.key, op.position, op.read->merged(), out);
      continue;
    }
    v1::Envelope env;
    v1::ReplicaWrite* write = env.mutable_write();
    v1::KeyedObject* item = write->add_items();
    item->set_key(op.key);
    op.read->merged().ToProto(item->mutable_object());
    write->set_hint_for(t.hint_for);
    write->set_purpose(v1::WRITE_PURPOSE_READ_REPAIR);
    Send(t.node, RequestKind::kReadRepair, 0, std::move(env), now_ms, out);
  }
}

void Node::ExpireOps(int64_t now_ms, Outputs* out) {
  while (!op_deadlines_.empty() && op_deadlines_.begin()->first <= now_ms) {
    const uint64_t id = op_deadlines_.begin()->second;
    op_deadlines_.erase(op_deadlines_.begin());
    auto it = ops_.find(id);
    if (it == ops_.end()) continue;
    Op& op = *it->second;
    if (!op.replied) {
      std::string progress;
      const FailedTargets* failed = nullptr;
      if (op.read) {
        progress = absl::StrFormat("%d of R=%d answered", op.read->responses(), op.r);
        failed = &op.read->failed();
      }
      if (op.write) {
        progress = absl::StrFormat("%d of W=%d acknowledged", op.write->acks(), op.w);
        failed = &op.write->failed();
      }
      if (failed != nullptr && failed->size() > 0) {
        absl::StrAppend(&progress, "; failed: ", failed->Summary());
      }
      if (op.forwarded) progress = absl::StrCat("coordinator ", op.forwarded_to, " did not answer");
      Respond(op, absl::UnavailableError(absl::StrCat("quorum not reached before the timeout: ",
                                                      progress)),
              std::monostate(), now_ms, out);
    }
    if (op.read) ReadRepair(op, now_ms, out);
    // A write whose replicas have not all answered waits for them (each
    // request fails by its own deadline, which can be later than the op's when
    // the client allowed less time): an owner that then fails gets its hint.
    // Its requests were all sent before now, so one request timeout more
    // bounds the wait.
    if (op.write && !op.write->Complete() && !op.overtime) {
      op.overtime = true;
      op.deadline_ms = now_ms + config_.request_timeout_ms;
      op_deadlines_.insert({op.deadline_ms, op.id});
      continue;
    }
    ops_.erase(it);
  }
}

}  // namespace dynamo::core
