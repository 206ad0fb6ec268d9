// Fuzzes client requests as the gRPC layer hands them to Node::HandleClient:
// the first byte selects the request and how it is prepared, the rest is
// parsed as that request's protobuf.
//
// First byte, bits 0-1: 0 GetRequest, 1 PutRequest, 2 DeleteRequest (3 is
// taken as 0). Bit 2: give the context the key's own position (so the clock
// inside reaches the clock decoder; the fuzzer cannot compute a key hash).
// Bit 3: write the key once before (so get and delete find a value).
//
// Properties: every request gets exactly one ClientReply (ticking until it
// comes); the reply is OK or InvalidArgument / ResourceExhausted with a
// message (the ring is this node alone and N = R = W = 1, so Unavailable or
// anything else is a bug); an OK reply carries the response of its kind, and
// its context decodes for the key and, for a write, is not covered by the
// context sent (the new dot is new); a value put reads back; and afterwards the node still serves
// a read-modify-write of the key.

#include <cstddef>
#include <cstdint>
#include <string>

#include "dynamo/core/context.h"
#include "dynamo/core/hash.h"
#include "dynamo/core/node.h"
#include "dynamo/v1/kv.pb.h"
#include "dynamo/v1/versions.pb.h"
#include "one_node_ring.h"

namespace dynamo::fuzz {
namespace {

inline constexpr uint8_t kFixContextBit = 1 << 2;
inline constexpr uint8_t kPrewriteBit = 1 << 3;

// The key's own position and the context magic, keeping the clock as sent.
void FixContext(const std::string& key, std::string* context) {
  v1::CausalContext ctx;
  if (!ctx.ParseFromString(*context)) return;
  ctx.set_magic(core::kContextMagic);
  ctx.set_key_hash(core::KeyPosition(key));
  *context = ctx.SerializeAsString();
}

bool ValidKey(const std::string& key) {
  return !key.empty() && key.size() <= OneNodeConfig().key_bytes_max;
}

void CheckReply(const core::ClientReply& reply, size_t op_index, const std::string& key,
                const std::string& request_context) {
  if (!reply.status.ok()) {
    FUZZ_CHECK((absl::IsInvalidArgument(reply.status) || absl::IsResourceExhausted(reply.status)) &&
                   !reply.status.message().empty(),
               "a request to a one-node ring failed with %s", reply.status.ToString().c_str());
    FUZZ_CHECK(std::holds_alternative<std::monostate>(reply.response),
               "a failed request carries a response");
    return;
  }
  FUZZ_CHECK(reply.response.index() == op_index + 1, "an OK reply of the wrong kind (%zu for %zu)",
             reply.response.index(), op_index);
  std::string context;
  if (auto* get = std::get_if<v1::GetResponse>(&reply.response)) {
    context = get->context();
    FUZZ_CHECK(get->found() == (get->siblings_size() > 0), "found=%d with %d siblings",
               get->found(), get->siblings_size());
  } else if (auto* put = std::get_if<v1::PutResponse>(&reply.response)) {
    context = put->context();
  } else {
    context = std::get<v1::DeleteResponse>(reply.response).context();
  }
  absl::StatusOr<core::VersionVector> clock = core::DecodeContext(context, core::KeyPosition(key));
  FUZZ_CHECK(clock.ok(), "the reply's context does not decode for its key: %s",
             clock.status().ToString().c_str());
  if (op_index == 0) return;
  // A write is a new event: the context it was based on must not cover its
  // clock (else its dot was seen already and replicas would drop it). Not
  // "strictly after": pruning may drop the context's oldest entries.
  absl::StatusOr<core::VersionVector> based_on =
      core::DecodeContext(request_context, core::KeyPosition(key));
  FUZZ_CHECK(based_on.ok(), "a write with an undecodable context succeeded");
  FUZZ_CHECK(!based_on->Descends(*clock), "a write's clock %s is covered by its context %s",
             clock->ToString().c_str(), based_on->ToString().c_str());
}

}  // namespace
}  // namespace dynamo::fuzz

DYNAMO_FUZZ_INITIALIZE

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace dynamo;
  if (size < 1) return 0;
  const uint8_t selector = data[0];
  const size_t op_index = (selector & 3) == 3 ? 0 : (selector & 3);
  const char* body = reinterpret_cast<const char*>(data + 1);
  const int body_size = static_cast<int>(size - 1);

  core::ClientRequest request;
  std::string key;
  std::string put_value;
  std::string context;
  if (op_index == 0) {
    v1::GetRequest get;
    if (!get.ParseFromArray(body, body_size)) return 0;
    key = get.key();
    request.op = std::move(get);
  } else if (op_index == 1) {
    v1::PutRequest put;
    if (!put.ParseFromArray(body, body_size)) return 0;
    key = put.key();
    put_value = put.value();
    if (selector & fuzz::kFixContextBit) fuzz::FixContext(key, put.mutable_context());
    context = put.context();
    request.op = std::move(put);
  } else {
    v1::DeleteRequest del;
    if (!del.ParseFromArray(body, body_size)) return 0;
    key = del.key();
    if (selector & fuzz::kFixContextBit) fuzz::FixContext(key, del.mutable_context());
    context = del.context();
    request.op = std::move(del);
  }

  fuzz::OneNodeRing ring;
  if ((selector & fuzz::kPrewriteBit) && fuzz::ValidKey(key)) {
    v1::PutRequest put;
    put.set_key(key);
    put.set_value("before");
    FUZZ_CHECK(ring.Call({put, 0}).status.ok(), "the setup put failed");
  }

  const core::ClientReply reply = ring.Call(std::move(request));
  fuzz::CheckReply(reply, op_index, key, context);
  if (reply.status.ok() && op_index == 1) {
    v1::GetRequest get;
    get.set_key(key);
    const core::ClientReply read = ring.Call({get, 0});
    FUZZ_CHECK(read.status.ok(), "a get after a put failed: %s", read.status.ToString().c_str());
    bool seen = false;
    for (const v1::Sibling& s : std::get<v1::GetResponse>(read.response).siblings()) {
      seen = seen || s.value() == put_value;
    }
    FUZZ_CHECK(seen, "a value put is not among the siblings read back");
  }
  ring.CheckServes(fuzz::ValidKey(key) ? key : std::string("probe"), "after");
  return 0;
}
