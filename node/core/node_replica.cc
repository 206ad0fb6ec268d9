// Node: serving other nodes' requests (replica reads and writes, forwarded
// writes, Merkle exchanges, reaping, gossip).

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "dynamo/core/hash.h"
#include "dynamo/core/node.h"
#include "node_internal.h"

namespace dynamo::core {
namespace {

// Bounds on what one request may ask of a replica.
constexpr int kItemsPerRequestMax = 4096;
constexpr size_t kLeafKeysReplyBytesMax = 4 << 20;
// Hint keys store the owner's length in one byte (storage_keys.h).
constexpr size_t kHintOwnerBytesMax = 255;

}  // namespace

void Node::ServeRequest(const v1::Envelope& request, int64_t now_ms, Outputs* out) {
  switch (request.body_case()) {
    case v1::Envelope::kWrite:
      ServeWrite(request, out);
      break;
    case v1::Envelope::kRead:
      ServeRead(request, out);
      break;
    case v1::Envelope::kForward:
      ServeForward(request, now_ms, out);
      break;
    case v1::Envelope::kGossip: {
      OnGossip(request.gossip(), now_ms, out);
      v1::Envelope reply;
      *reply.mutable_gossip_reply() =
          membership_->MakeGossip(/*with_ring=*/membership_->RingNewerThan(request.gossip()));
      Reply(request, std::move(reply), out);
      break;
    }
    case v1::Envelope::kMerkle:
      ServeMerkle(request, out);
      break;
    case v1::Envelope::kLeafKeys:
      ServeLeafKeys(request, out);
      break;
    case v1::Envelope::kReap:
      ServeReap(request, out);
      break;
    case v1::Envelope::kRangeRoots:
      ServeRangeRoots(request, out);
      break;
    case v1::Envelope::kRangeDigests:
      ServeRangeDigests(request, out);
      break;
    case v1::Envelope::kHandoffQuery: {
      v1::Envelope reply;
      reply.mutable_handoff_query_reply()->set_handing_off(HandingOff());
      Reply(request, std::move(reply), out);
      break;
    }
    default:
      ReplyError(request,
                 absl::InvalidArgumentError(absl::StrCat(
                     "unexpected request body ", static_cast<int>(request.body_case()))),
                 out);
  }
}

absl::StatusOr<std::optional<VersionedObject>> Node::ReadLocal(
    const std::string& key, uint64_t position, std::optional<StoredObject>* replica) {
  absl::StatusOr<std::optional<StoredObject>> data = store_.Get(key, position);
  if (!data.ok()) return data.status();
  std::optional<VersionedObject> result;
  if (*data) result = (*data)->object;
  if (replica != nullptr) *replica = *std::move(data);
  // A fallback answers with what it holds for the owners it stands in for.
  for (const auto& [owner, count] : store_.hint_counts()) {
    absl::StatusOr<std::optional<StoredObject>> hint = store_.GetHint(owner, key, position);
    if (!hint.ok()) return hint.status();
    if (!*hint) continue;
    if (!result) result.emplace();
    result->Merge((*hint)->object);
  }
  return result;
}

absl::Status Node::ObjectLocal(const std::string& key, uint64_t position, v1::ReadItem* item) {
  absl::StatusOr<std::optional<VersionedObject>> obj = ReadLocal(key, position);
  if (!obj.ok()) return obj.status();
  item->set_found(obj->has_value());
  if (*obj) (*obj)->ToProto(item->mutable_object());
  return absl::OkStatus();
}

absl::Status Node::DigestLocal(const std::string& key, uint64_t position, v1::ReadItem* item) {
  std::optional<uint64_t> digest;
  if (store_.hint_counts().empty()) {
    // The stored hash is the digest of the stored object: no object read.
    absl::StatusOr<std::optional<uint64_t>> hash = store_.GetItemHash(key, position);
    if (!hash.ok()) return hash.status();
    digest = *hash;
  } else {
    // A fallback's answer merges the hints it holds: hash what it answers.
    absl::StatusOr<std::optional<VersionedObject>> obj = ReadLocal(key, position);
    if (!obj.ok()) return obj.status();
    digest = ReadDigest(key, *obj);
  }
  item->set_found(digest.has_value());
  if (digest) item->set_digest(*digest);
  return absl::OkStatus();
}

absl::StatusOr<StoredObject> Node::StoreFor(const std::string& hint_for, const std::string& key,
                                            uint64_t position, const VersionedObject& object,
                                            Outputs* out, const ReplicaRead& read) {
  absl::StatusOr<StoredObject> stored;
  if (hint_for.empty() || hint_for == config_.node_id) {
    if (const auto* o = std::get_if<std::optional<StoredObject>>(&read)) {
      stored = store_.MergeWith(key, position, *o, object, nullptr);
    } else if (const auto* m = std::get_if<std::optional<ItemMeta>>(&read)) {
      stored = store_.MergeWith(key, position, *m, object, nullptr);
    } else {
      stored = store_.Merge(key, position, object, nullptr);
    }
  } else {
    stored = store_.MergeHint(hint_for, key, position, object);
    if (stored.ok()) ++counters_.hints_stored;
  }
  if (!stored.ok()) {
    ++counters_.storage_errors;
  } else {
    out->sync = true;
  }
  return stored;
}

void Node::ServeWrite(const v1::Envelope& request, Outputs* out) {
  const v1::ReplicaWrite& write = request.write();
  if (write.items_size() > kItemsPerRequestMax) {
    ReplyError(request, absl::InvalidArgumentError("too many items in one replica write"), out);
    return;
  }
  if (write.hint_for().size() > kHintOwnerBytesMax) {
    ReplyError(request, absl::InvalidArgumentError("replica write: hint owner id too long"), out);
    return;
  }
  // Validate everything first: a malformed request changes nothing.
  std::vector<VersionedObject> objects;
  objects.reserve(write.items_size());
  for (const v1::KeyedObject& item : write.items()) {
    if (item.key().empty() || item.key().size() > config_.key_bytes_max) {
      ReplyError(request, absl::InvalidArgumentError("replica write has an invalid key"), out);
      return;
    }
    absl::StatusOr<VersionedObject> obj = ObjectFromPeer(item.object());
    if (!obj.ok()) {
      ReplyError(request, obj.status(), out);
      return;
    }
    objects.push_back(*std::move(obj));
  }
  v1::Envelope reply;
  v1::WriteAck* ack = reply.mutable_write_ack();
  for (int i = 0; i < write.items_size(); ++i) {
    const std::string& key = write.items(i).key();
    absl::StatusOr<StoredObject> stored =
        StoreFor(write.hint_for(), key, KeyPosition(key), objects[i], out);
    if (!stored.ok()) {
      ReplyError(request, stored.status(), out);
      return;
    }
    ack->add_tombstone_only(stored->object.IsDeleted());
  }
  ++counters_.replica_writes;
  Reply(request, std::move(reply), out);
}

void Node::ServeRead(const v1::Envelope& request, Outputs* out) {
  const v1::ReplicaRead& read = request.read();
  if (read.keys_size() > kItemsPerRequestMax) {
    ReplyError(request, absl::InvalidArgumentError("too many keys in one replica read"), out);
    return;
  }
  v1::Envelope reply;
  v1::ReadReply* rr = reply.mutable_read_reply();
  MessageBudget batch(config_.object_bytes_max);
  for (const std::string& key : read.keys()) {
    v1::ReadItem* item = rr->add_items();
    item->set_key(key);
    absl::Status s = read.digest_only() ? DigestLocal(key, KeyPosition(key), item)
                                        : ObjectLocal(key, KeyPosition(key), item);
    if (!s.ok()) {
      ++counters_.storage_errors;
      ReplyError(request, s, out);
      return;
    }
    // A read of many keys (anti-entropy's) answers what fits; the keys left
    // out are asked again later. A one-key read (a client's) always answers.
    if (read.keys_size() > 1 && !batch.Take(item->ByteSizeLong())) {
      rr->mutable_items()->RemoveLast();
      break;
    }
  }
  ++counters_.replica_reads;
  Reply(request, std::move(reply), out);
}

void Node::ServeForward(const v1::Envelope& request, int64_t now_ms, Outputs* out) {
  const v1::Forward& fwd = request.forward();
  ClientRequest client;
  if (fwd.has_put()) {
    client.op = fwd.put();
  } else if (fwd.has_delete_()) {
    client.op = fwd.delete_();
  } else {
    ReplyError(request, absl::InvalidArgumentError("forward without a put or delete"), out);
    return;
  }
  client.timeout_ms = fwd.timeout_ms();
  Coordinate(0, &request, std::move(client), now_ms, out);
}

void Node::ServeMerkle(const v1::Envelope& request, Outputs* out) {
  const v1::MerkleRequest& m = request.merkle();
  std::optional<size_t> range = store_.FindRange(KeyRange{m.range_start(), m.range_end()});
  if (!range) {
    ReplyError(request, absl::FailedPreconditionError("no tree for that range (ring differs)"), out);
    return;
  }
  std::vector<uint32_t> indices(m.indices().begin(), m.indices().end());
  absl::StatusOr<std::vector<uint64_t>> hashes = store_.tree(*range).Children(m.level(), indices);
  if (!hashes.ok()) {
    ReplyError(request, hashes.status(), out);
    return;
  }
  v1::Envelope reply;
  reply.mutable_merkle_reply()->mutable_hashes()->Add(hashes->begin(), hashes->end());
  Reply(request, std::move(reply), out);
}

void Node::ServeLeafKeys(const v1::Envelope& request, Outputs* out) {
  const v1::LeafKeysRequest& lk = request.leaf_keys();
  std::optional<size_t> range = store_.FindRange(KeyRange{lk.range_start(), lk.range_end()});
  if (!range) {
    ReplyError(request, absl::FailedPreconditionError("no tree for that range (ring differs)"), out);
    return;
  }
  const MerkleTree& tree = store_.tree(*range);
  if (lk.leaves_size() > kItemsPerRequestMax) {
    ReplyError(request, absl::InvalidArgumentError("too many leaves in one request"), out);
    return;
  }
  v1::Envelope reply;
  v1::LeafKeysReply* r = reply.mutable_leaf_keys_reply();
  size_t bytes = 0;
  for (uint32_t leaf : lk.leaves()) {
    if (leaf >= tree.leaf_count()) {
      ReplyError(request, absl::InvalidArgumentError("leaf index out of range"), out);
      return;
    }
    absl::StatusOr<KeyRange> leaf_range = tree.LeafRange(leaf);
    if (absl::IsNotFound(leaf_range.status())) continue;  // a leaf with no positions
    if (!leaf_range.ok()) {
      ReplyError(request, leaf_range.status(), out);
      return;
    }
    absl::Status s =
        store_.ScanItemHashes(*leaf_range, [&](std::string_view key, uint64_t, uint64_t hash) {
          v1::KeyHash* kh = r->add_items();
          kh->set_key(std::string(key));
          kh->set_hash(hash);
          bytes += key.size() + 8;
          return bytes < kLeafKeysReplyBytesMax;
        });
    if (!s.ok()) {
      ReplyError(request, s, out);
      return;
    }
  }
  Reply(request, std::move(reply), out);
}

void Node::ServeRangeRoots(const v1::Envelope& request, Outputs* out) {
  const auto& roots = request.range_roots().roots();
  if (roots.size() > kItemsPerRequestMax * 16) {
    ReplyError(request, absl::InvalidArgumentError("too many ranges in one request"), out);
    return;
  }
  v1::Envelope reply;
  v1::RangeRootsReply* r = reply.mutable_range_roots_reply();
  for (int i = 0; i < roots.size(); ++i) {
    std::optional<size_t> range =
        store_.FindRange(KeyRange{roots[i].range_start(), roots[i].range_end()});
    if (!range || store_.tree(*range).Root() != roots[i].root()) r->add_differing(i);
  }
  Reply(request, std::move(reply), out);
}

void Node::ServeRangeDigests(const v1::Envelope& request, Outputs* out) {
  const v1::RangeDigestsRequest& req = request.range_digests();
  const uint32_t group = req.group_ranges();
  if (group == 0 || req.ranges() > store_.range_count() ||
      static_cast<uint64_t>(req.digests_size()) != (uint64_t{req.ranges()} + group - 1) / group) {
    ReplyError(request, absl::InvalidArgumentError("malformed range digests"), out);
    return;
  }
  // The same groups from this node's side; a different number of shared
  // ranges (the two views of the ring differ) makes every group differ.
  const std::vector<size_t> shared = RangesSharedWith(request.from_node());
  const std::vector<uint64_t> mine =
      shared.size() == req.ranges() ? RangeGroupDigests(shared, group) : std::vector<uint64_t>();
  v1::Envelope reply;
  v1::RangeDigestsReply* r = reply.mutable_range_digests_reply();
  for (int i = 0; i < req.digests_size(); ++i) {
    if (mine.empty() || mine[i] != req.digests(i)) r->add_differing(i);
  }
  Reply(request, std::move(reply), out);
}

void Node::ServeReap(const v1::Envelope& request, Outputs* out) {
  const v1::Reap& reap = request.reap();
  absl::StatusOr<VersionVector> clock = VersionVector::FromProto(reap.clock());
  if (!clock.ok() || reap.key().empty()) {
    ReplyError(request, absl::InvalidArgumentError("malformed reap"), out);
    return;
  }
  if (absl::Status s = ReapLocal(reap.key(), KeyPosition(reap.key()), *clock, out); !s.ok()) {
    ++counters_.storage_errors;
    ReplyError(request, s, out);  // the coordinator sends it again
    return;
  }
  v1::Envelope reply;
  reply.mutable_write_ack();
  Reply(request, std::move(reply), out);
}

absl::StatusOr<VersionedObject> Node::ObjectFromPeer(const v1::ObjectRecord& record) const {
  absl::StatusOr<VersionedObject> obj = VersionedObject::FromProto(record);
  if (!obj.ok()) return obj;
  if (const uint64_t claimed = obj->clock().Counter(actor_); claimed >= next_counter_) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "the object claims version %d of %s's clock, which it has not issued: it is corrupt or "
        "forged",
        claimed, actor_));
  }
  return obj;
}

}  // namespace dynamo::core
