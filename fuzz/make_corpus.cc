// Writes the seed corpora of the fuzz targets: small, valid inputs of every
// kind each decoder sees, from which the fuzzer mutates. Deterministic, so the
// committed seeds can be regenerated and reviewed:
//
//   build-fuzz/fuzz/fuzz_make_corpus fuzz/corpus
//
// Files are named for what they hold; existing files of the same name are
// overwritten, others (regression seeds from crashes) are left alone.

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "dynamo/core/context.h"
#include "dynamo/core/failure_detector.h"
#include "dynamo/core/hash.h"
#include "dynamo/core/membership.h"
#include "dynamo/core/object.h"
#include "dynamo/core/random.h"
#include "dynamo/v1/kv.pb.h"
#include "dynamo/v1/replica.pb.h"
#include "one_node_ring.h"

namespace dynamo::fuzz {
namespace {

namespace fs = std::filesystem;

// A peer's actor: "<node id>#<epoch>" as the core makes them.
inline constexpr char kPeerActor[] = "n2#00000000000000a1";

class CorpusWriter {
 public:
  explicit CorpusWriter(fs::path root) : root_(std::move(root)) {}

  void Write(const std::string& target, const std::string& name, const std::string& bytes) {
    const fs::path dir = root_ / target;
    fs::create_directories(dir);
    std::ofstream out(dir / name, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    FUZZ_CHECK(out.good(), "cannot write %s", (dir / name).c_str());
    ++files_;
  }
  int files() const { return files_; }

 private:
  fs::path root_;
  int files_ = 0;
};

core::VersionVector Clock(const std::vector<std::pair<std::string, uint64_t>>& entries) {
  core::VersionVector v;
  int64_t ts = kStartMs;
  for (const auto& [actor, counter] : entries) v.Advance(actor, counter, ts++);
  return v;
}

// ------------------------------------------------------------ contexts

void Contexts(CorpusWriter& w) {
  const uint64_t pos = core::KeyPosition("k1");
  w.Write("fuzz_context", "empty", "");
  w.Write("fuzz_context", "no_clock", core::EncodeContext(pos, core::VersionVector()));
  w.Write("fuzz_context", "one_actor", core::EncodeContext(pos, Clock({{kPeerActor, 3}})));
  w.Write("fuzz_context", "three_actors",
          core::EncodeContext(pos, Clock({{"n1#0000000000000001", 1},
                                          {"n2#00000000000000a1", 12},
                                          {"n3#0000000000000007", 1ull << 40}})));
  std::vector<std::pair<std::string, uint64_t>> many;
  for (int i = 0; i < 12; ++i) many.push_back({"n" + std::to_string(i) + "#1", uint64_t(i) + 1});
  w.Write("fuzz_context", "twelve_actors", core::EncodeContext(pos, Clock(many)));
}

// ------------------------------------------------------------ objects

core::VersionedObject OneValue(const std::string& actor, uint64_t counter, const std::string& v) {
  core::VersionedObject o;
  o.Write(core::VersionVector(), core::Dot{actor, counter}, v, false, kStartMs);
  return o;
}

// The pair format of fuzz_object: first byte = size of the first object.
std::string Pair(const std::string& a, const std::string& b) {
  FUZZ_CHECK(a.size() <= 255, "first object of a pair is %zu bytes", a.size());
  return std::string(1, static_cast<char>(a.size())) + a + b;
}

void Objects(CorpusWriter& w) {
  const core::VersionedObject single = OneValue("n1#0000000000000001", 1, "hello");
  core::VersionedObject siblings = single;
  siblings.Merge(OneValue(kPeerActor, 4, "world"));
  core::VersionedObject tombstone;
  tombstone.Write(siblings.clock(), core::Dot{"n1#0000000000000001", 2}, "", true, kStartMs + 5);
  core::VersionedObject overwritten = single;
  overwritten.Write(single.clock(), core::Dot{kPeerActor, 5}, "replaced", false, kStartMs + 9);

  w.Write("fuzz_object", "empty_object", core::VersionedObject().Encode());
  w.Write("fuzz_object", "one_value", single.Encode());
  w.Write("fuzz_object", "two_siblings", siblings.Encode());
  w.Write("fuzz_object", "tombstone", tombstone.Encode());
  w.Write("fuzz_object", "pair_concurrent",
          Pair(single.Encode(), OneValue(kPeerActor, 4, "w").Encode()));
  w.Write("fuzz_object", "pair_descends", Pair(single.Encode(), overwritten.Encode()));
  w.Write("fuzz_object", "pair_tombstone", Pair(siblings.Encode(), tombstone.Encode()));
  w.Write("fuzz_object", "pair_equal", Pair(siblings.Encode(), siblings.Encode()));
}

// ------------------------------------------------------------ envelopes

v1::Envelope Request(uint64_t id) {
  v1::Envelope e;
  e.set_from_node("n2");
  e.set_from_address("127.0.0.1:7002");
  e.set_request_id(id);
  return e;
}

void Envelopes(CorpusWriter& w) {
  // The state fuzz_envelope's node is in when the message arrives.
  OneNodeRing ring;
  ring.PutSeedData();
  const core::Node& node = ring.node();
  const uint64_t pos1 = core::KeyPosition(kSeedValueKey);
  // What the node holds for the seed keys, as a replica read returns it.
  core::VersionedObject value, tomb;
  {
    v1::Envelope read = Request(1);
    read.mutable_read()->add_keys(kSeedValueKey);
    read.mutable_read()->add_keys(kSeedTombstoneKey);
    core::Outputs o;
    ring.node().HandleMessage(read, ring.now_ms(), &o);
    FUZZ_CHECK(o.messages.size() == 1 && o.messages[0].envelope.has_read_reply() &&
                   o.messages[0].envelope.read_reply().items_size() == 2,
               "the seed read got no read reply");
    const v1::ReadReply& rr = o.messages[0].envelope.read_reply();
    absl::StatusOr<core::VersionedObject> v =
        core::VersionedObject::FromProto(rr.items(0).object());
    absl::StatusOr<core::VersionedObject> t =
        core::VersionedObject::FromProto(rr.items(1).object());
    FUZZ_CHECK(v.ok() && t.ok() && !v->IsDeleted() && t->IsDeleted(), "seed data missing");
    value = *std::move(v);
    tomb = *std::move(t);
  }
  auto out = [&](const std::string& name, const v1::Envelope& e) {
    w.Write("fuzz_envelope", name, e.SerializeAsString());
  };

  {  // a replica write of a concurrent sibling, and the same as a hint
    v1::Envelope e = Request(11);
    core::VersionedObject theirs = value;
    theirs.Merge(OneValue(kPeerActor, 3, "from n2"));
    v1::KeyedObject* item = e.mutable_write()->add_items();
    item->set_key(kSeedValueKey);
    theirs.ToProto(item->mutable_object());
    e.mutable_write()->set_purpose(v1::WRITE_PURPOSE_COORDINATED);
    out("write_concurrent", e);
    e.mutable_write()->set_hint_for("n3");  // held for n3 while it is down
    out("write_hint", e);
  }
  {  // reads: a value, a tombstone, a missing key
    v1::Envelope e = Request(12);
    e.mutable_read()->add_keys(kSeedValueKey);
    e.mutable_read()->add_keys(kSeedTombstoneKey);
    e.mutable_read()->add_keys("absent");
    out("read", e);
  }
  {  // forwarded writes: a blind put, a delete with the value's context
    v1::Envelope e = Request(13);
    v1::PutRequest* put = e.mutable_forward()->mutable_put();
    put->set_key("k3");
    put->set_value("forwarded");
    put->mutable_quorum()->set_n(1);
    put->mutable_quorum()->set_w(1);
    e.mutable_forward()->set_timeout_ms(250);
    out("forward_put", e);
    v1::Envelope d = Request(14);
    v1::DeleteRequest* del = d.mutable_forward()->mutable_delete_();
    del->set_key(kSeedValueKey);
    del->set_context(core::EncodeContext(pos1, value.clock()));
    out("forward_delete", d);
  }
  {  // gossip from a peer that wants to join, carrying the node's ring
    v1::Envelope e = Request(15);
    *e.mutable_gossip() = node.membership().MakeGossip(/*with_ring=*/true);
    v1::MemberState* peer = e.mutable_gossip()->add_members();
    peer->set_node_id("n2");
    peer->set_address("127.0.0.1:7002");
    peer->set_generation(kStartMs + 7);
    peer->set_version(2);
    peer->set_heartbeat(3);
    peer->set_intent(v1::MEMBER_INTENT_JOIN);
    peer->set_vnodes(8);
    out("gossip_join", e);
    e.set_request_id(0);  // gossip to a seed's address
    out("gossip_to_seed", e);
  }
  {  // anti-entropy: Merkle children and leaf keys of k1's range
    const size_t range = node.membership().ring().RangeIndex(pos1);
    const core::KeyRange& r = node.store().range(range);
    v1::Envelope e = Request(16);
    e.mutable_merkle()->set_range_start(r.start);
    e.mutable_merkle()->set_range_end(r.end);
    e.mutable_merkle()->set_level(0);
    e.mutable_merkle()->add_indices(0);
    out("merkle_root", e);
    v1::Envelope l = Request(17);
    l.mutable_leaf_keys()->set_range_start(r.start);
    l.mutable_leaf_keys()->set_range_end(r.end);
    for (uint32_t leaf = 0; leaf < 4; ++leaf) l.mutable_leaf_keys()->add_leaves(leaf);
    out("leaf_keys", l);
  }
  {  // reap of the tombstone, with its exact clock
    v1::Envelope e = Request(18);
    e.mutable_reap()->set_key(kSeedTombstoneKey);
    tomb.clock().ToProto(e.mutable_reap()->mutable_clock());
    out("reap_tombstone", e);
  }
  {  // replies: to nothing pending, and gossip from a seed (request_id 0)
    v1::Envelope e = Request(19);
    e.set_is_reply(true);
    e.mutable_write_ack()->add_tombstone_only(false);
    out("reply_write_ack", e);
    v1::Envelope g = Request(0);
    g.set_is_reply(true);
    *g.mutable_gossip_reply() = node.membership().MakeGossip(/*with_ring=*/true);
    out("reply_gossip_from_seed", g);
    v1::Envelope err = Request(20);
    err.set_is_reply(true);
    err.mutable_error()->set_code(14);
    err.mutable_error()->set_message("unavailable");
    out("reply_error", err);
  }
  {  // a request with no body, and a reply type sent as a request
    out("empty_request", Request(21));
    v1::Envelope e = Request(22);
    e.mutable_merkle_reply()->add_hashes(7);
    out("reply_body_as_request", e);
  }
}

// ------------------------------------------------------------ gossip

void Gossips(CorpusWriter& w) {
  OneNodeRing ring;
  const v1::Gossip own = ring.node().membership().MakeGossip(/*with_ring=*/true);
  w.Write("fuzz_gossip", "own_ring", own.SerializeAsString());

  // A two-node ring made by its claimant n0, which also names this node.
  core::NodeConfig config = OneNodeConfig();
  config.node_id = "n0";
  config.address = "127.0.0.1:7000";
  config.seeds = {config.address};
  v1::MemberState self;
  self.set_node_id("n0");
  self.set_address(config.address);
  self.set_generation(kStartMs - 100);
  self.set_version(1);
  self.set_intent(v1::MEMBER_INTENT_JOIN);
  self.set_vnodes(8);
  core::Membership m(config, self, v1::RingState());
  core::FailureDetector fd(config.phi_threshold, config.gossip_interval_ms);
  core::Random rng(7);
  FUZZ_CHECK(m.MaybeClaim(kStartMs, fd, rng), "n0 did not found its ring");
  v1::Gossip joining;
  *joining.add_members() = ring.node().membership().self();
  m.Merge(joining, kStartMs, fd);
  FUZZ_CHECK(m.MaybeClaim(kStartMs + 1000, fd, rng), "n0 did not add n1 to its ring");
  w.Write("fuzz_gossip", "two_node_ring", m.MakeGossip(/*with_ring=*/true).SerializeAsString());

  v1::Gossip newer_self = own;
  newer_self.clear_ring();
  newer_self.mutable_members(0)->set_generation(own.members(0).generation() + 5);
  w.Write("fuzz_gossip", "newer_state_of_self", newer_self.SerializeAsString());

  v1::Gossip leaving;
  v1::MemberState* peer = leaving.add_members();
  peer->set_node_id("n2");
  peer->set_address("127.0.0.1:7002");
  peer->set_zone("z2");
  peer->set_generation(3);
  peer->set_version(4);
  peer->set_heartbeat(5);
  peer->set_intent(v1::MEMBER_INTENT_LEAVE);
  peer->set_vnodes(16);
  w.Write("fuzz_gossip", "member_leaving", leaving.SerializeAsString());
}

// ------------------------------------------------------------ client requests

void ClientRequests(CorpusWriter& w) {
  auto out = [&](const std::string& name, uint8_t selector, const google::protobuf::Message& m) {
    w.Write("fuzz_client_request", name,
            std::string(1, static_cast<char>(selector)) + m.SerializeAsString());
  };
  v1::GetRequest get;
  get.set_key("user:42");
  out("get", 0, get);
  out("get_existing", 8, get);
  get.mutable_quorum()->set_n(1);
  get.mutable_quorum()->set_r(1);
  out("get_quorum", 0, get);
  get.mutable_quorum()->set_n(3);
  out("get_quorum_too_large", 0, get);

  v1::PutRequest put;
  put.set_key("user:42");
  put.set_value("{\"name\":\"ada\"}");
  out("put_blind", 1, put);
  out("put_over_existing", 9, put);
  put.set_context(core::EncodeContext(core::KeyPosition("user:42"), Clock({{kPeerActor, 2}})));
  out("put_with_context", 1, put);
  out("put_with_fixed_context", 5 | 8, put);
  put.set_context(core::EncodeContext(core::KeyPosition("other"), Clock({{kPeerActor, 2}})));
  out("put_context_of_other_key", 1, put);

  v1::DeleteRequest del;
  del.set_key("user:42");
  out("delete_blind", 2, del);
  del.set_context(core::EncodeContext(core::KeyPosition("user:42"), Clock({{kPeerActor, 9}})));
  out("delete_with_context", 2 | 8, del);
}

}  // namespace
}  // namespace dynamo::fuzz

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <corpus root, e.g. fuzz/corpus>\n", argv[0]);
    return 2;
  }
  dynamo::fuzz::CorpusWriter w{std::filesystem::path(argv[1])};
  dynamo::fuzz::Contexts(w);
  dynamo::fuzz::Objects(w);
  dynamo::fuzz::Envelopes(w);
  dynamo::fuzz::Gossips(w);
  dynamo::fuzz::ClientRequests(w);
  std::printf("wrote %d seed files under %s\n", w.files(), argv[1]);
  return 0;
}
