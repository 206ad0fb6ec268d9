// Fuzzes core::DecodeContext, the decoder of the causal context bytes clients
// send back with every put and delete.
//
// Properties: decoding never crashes and fails only with InvalidArgument; a
// decoded context holds a valid clock (bounded, no empty actor, no zero
// counter), re-encodes canonically (encode, decode, encode gives the same
// bytes and the same clock) and is refused for any other key position.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "dynamo/core/context.h"
#include "dynamo/core/version_vector.h"
#include "dynamo/v1/versions.pb.h"
#include "fuzz_check.h"

namespace dynamo::fuzz {
namespace {

void CheckPosition(std::string_view bytes, uint64_t position) {
  absl::StatusOr<core::VersionVector> clock = core::DecodeContext(bytes, position);
  if (!clock.ok()) {
    FUZZ_CHECK(absl::IsInvalidArgument(clock.status()) && !clock.status().message().empty(),
               "DecodeContext failed with %s, expected InvalidArgument with a reason",
               clock.status().ToString().c_str());
    return;
  }
  if (bytes.empty()) FUZZ_CHECK(clock->empty(), "empty bytes decoded to a non-empty clock");
  FUZZ_CHECK(clock->size() <= core::kMaxClockEntriesDecoded, "decoded clock has %zu entries",
             clock->size());
  for (const auto& [actor, entry] : clock->entries()) {
    FUZZ_CHECK(!actor.empty() && actor.size() <= core::kMaxActorBytes,
               "decoded clock has an actor of %zu bytes", actor.size());
    FUZZ_CHECK(entry.counter > 0 && entry.counter <= core::kMaxCounterDecoded,
               "decoded clock has counter %llu", static_cast<unsigned long long>(entry.counter));
  }

  const std::string encoded = core::EncodeContext(position, *clock);
  absl::StatusOr<core::VersionVector> again = core::DecodeContext(encoded, position);
  FUZZ_CHECK(again.ok(), "a re-encoded context does not decode: %s",
             again.status().ToString().c_str());
  FUZZ_CHECK(*again == *clock, "context round trip changed the clock: %s became %s",
             clock->ToString().c_str(), again->ToString().c_str());
  FUZZ_CHECK(core::EncodeContext(position, *again) == encoded, "context encoding is not canonical");
  FUZZ_CHECK(!core::DecodeContext(encoded, position + 1).ok(),
             "a context was accepted for another key");
}

}  // namespace
}  // namespace dynamo::fuzz

DYNAMO_FUZZ_INITIALIZE

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  // Fixed positions, and the one the bytes name (so that a well-formed
  // context reaches the clock decoder instead of stopping at the key check).
  dynamo::fuzz::CheckPosition(bytes, 0);
  dynamo::fuzz::CheckPosition(bytes, ~uint64_t{0});
  dynamo::fuzz::CheckPosition(bytes, 0x9e3779b97f4a7c15);
  dynamo::v1::CausalContext ctx;
  if (ctx.ParseFromArray(data, static_cast<int>(size))) {
    dynamo::fuzz::CheckPosition(bytes, ctx.key_hash());
  }
  return 0;
}
