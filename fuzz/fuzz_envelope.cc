// Fuzzes a real core::Node with one peer message: the bytes are parsed as a
// dynamo.v1.Envelope (protobuf's decoder) and given to Node::HandleMessage,
// then the node ticks.
//
// The node is a one-node ring over a MemoryEngine (one_node_ring.h) that
// already holds a value and a tombstone, so reads, Merkle and leaf-key
// requests and reaps find data. A fresh node per input keeps every crash
// reproducible from its input alone.
//
// Properties (the core's contract in node.h): a request envelope gets exactly
// one reply, to its sender, with its request_id, within the request timeout;
// a reply envelope gets none; and afterwards the node still serves a valid
// read-modify-write (and, while the ring is still this node alone, serves it
// successfully).

#include <cstddef>
#include <cstdint>
#include <string>

#include "dynamo/core/node.h"
#include "dynamo/v1/replica.pb.h"
#include "one_node_ring.h"

namespace dynamo::fuzz {
namespace {

// Replies in `out` to `request`; checks that each is addressed to its sender.
int CountReplies(const v1::Envelope& request, const core::Outputs& out) {
  int replies = 0;
  for (const core::OutMessage& m : out.messages) {
    if (!m.envelope.is_reply()) continue;
    FUZZ_CHECK(!request.is_reply(), "the node answered a reply envelope with a reply");
    FUZZ_CHECK(m.envelope.request_id() == request.request_id(),
               "a reply carries request_id %llu, the request had %llu",
               static_cast<unsigned long long>(m.envelope.request_id()),
               static_cast<unsigned long long>(request.request_id()));
    FUZZ_CHECK(m.to_node == request.from_node() && m.to_address == request.from_address(),
               "a reply goes to (%s, %s), not to the sender", m.to_node.c_str(),
               m.to_address.c_str());
    if (m.envelope.has_forward_reply()) {
      const v1::ForwardReply& fr = m.envelope.forward_reply();
      FUZZ_CHECK(fr.code() >= 0 && fr.code() <= 16, "forward reply with code %d", fr.code());
      FUZZ_CHECK(fr.code() == 0 || !fr.message().empty(),
                 "an error forward reply without a message");
    }
    if (m.envelope.has_error()) {
      FUZZ_CHECK(m.envelope.error().code() != 0 && !m.envelope.error().message().empty(),
                 "an error reply without a code or message");
    }
    ++replies;
  }
  return replies;
}

}  // namespace
}  // namespace dynamo::fuzz

DYNAMO_FUZZ_INITIALIZE

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace dynamo;
  v1::Envelope request;
  if (!request.ParseFromArray(data, static_cast<int>(size))) return 0;

  fuzz::OneNodeRing ring;
  ring.PutSeedData();

  core::Outputs out;
  ring.node().HandleMessage(request, ring.now_ms(), &out);
  int replies = 0;
  // A forwarded write may be answered only after the node's own requests
  // time out; ticking past request_timeout_ms settles everything.
  for (int tick = 0; tick <= fuzz::kTicksToReplyMax; ++tick) {
    replies += fuzz::CountReplies(request, out);
    FUZZ_CHECK(out.replies.empty(), "a peer message produced a client reply");
    ring.Deliver(&out);
    if (replies > 0 && tick >= 2) break;  // two more ticks catch a late duplicate
    ring.Tick(&out);
  }
  if (request.is_reply()) {
    FUZZ_CHECK(replies == 0, "a reply envelope was answered");
  } else {
    FUZZ_CHECK(replies == 1, "a request envelope got %d replies, expected exactly 1", replies);
  }

  ring.CheckServes(fuzz::kSeedValueKey, "after");
  ring.CheckServes("probe", "after");
  return 0;
}
