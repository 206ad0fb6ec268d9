// Fuzzes core::VersionedObject::Decode, the decoder of every stored object
// and of every object a peer sends (replica writes, read replies, hints).
//
// Input: the whole input is decoded as one object; then, if it is at least
// two bytes long, its first byte n splits the rest into a first object (the
// next n bytes) and a second one (the remainder) for the merge laws.
//
// Properties: decoding fails only with InvalidArgument; a decoded object
// round-trips canonically (decode(encode(x)) == x, and encode is stable);
// merging an object with itself changes nothing; merge is commutative and
// idempotent, and its result is again a valid object (it re-decodes); pruning
// the clock keeps the object valid.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "dynamo/core/object.h"
#include "fuzz_check.h"

namespace dynamo::fuzz {
namespace {

// Every field, unlike ToString (two records of one dot may differ only in a
// timestamp).
std::string Describe(const core::VersionedObject& obj) {
  std::string out = "clock={";
  for (const auto& [actor, e] : obj.clock().entries()) {
    absl::StrAppend(&out, absl::CEscape(actor), ":", e.counter, "@", e.timestamp_ms, " ");
  }
  out += "} siblings=[";
  for (const core::Sibling& s : obj.siblings()) {
    absl::StrAppend(&out, absl::CEscape(s.dot.actor), ":", s.dot.counter, "=",
                    s.tombstone ? "<tombstone>" : absl::CEscape(s.value.substr(0, 32)), "@",
                    s.timestamp_ms, " ");
  }
  return out + "]";
}

// A canonical encoding decodes back to the same object and encodes again to
// the same bytes; so the object satisfies Decode's validation (sorted,
// distinct, covered dots, bounded clock).
void CheckCanonical(const core::VersionedObject& obj, const char* what) {
  const std::string encoded = obj.Encode();
  absl::StatusOr<core::VersionedObject> again = core::VersionedObject::Decode(encoded);
  FUZZ_CHECK(again.ok(), "%s: its encoding does not decode: %s", what,
             again.status().ToString().c_str());
  FUZZ_CHECK(*again == obj, "%s: round trip changed it: %s became %s", what, Describe(obj).c_str(),
             Describe(*again).c_str());
  FUZZ_CHECK(again->Encode() == encoded, "%s: encoding is not canonical", what);
}

std::optional<core::VersionedObject> DecodeChecked(std::string_view bytes) {
  absl::StatusOr<core::VersionedObject> obj = core::VersionedObject::Decode(bytes);
  if (!obj.ok()) {
    FUZZ_CHECK(absl::IsInvalidArgument(obj.status()) && !obj.status().message().empty(),
               "Decode failed with %s, expected InvalidArgument with a reason",
               obj.status().ToString().c_str());
    return std::nullopt;
  }
  FUZZ_CHECK(obj->siblings().size() <= core::kMaxSiblingsDecoded, "decoded %zu siblings",
             obj->siblings().size());
  CheckCanonical(*obj, "decoded object");

  core::VersionedObject self = *obj;
  FUZZ_CHECK(!self.Merge(*obj), "merging an object with itself reported a change");
  FUZZ_CHECK(self == *obj, "merging an object with itself changed it: %s became %s",
             Describe(*obj).c_str(), Describe(self).c_str());

  core::VersionedObject pruned = *obj;
  pruned.PruneClock(2);
  CheckCanonical(pruned, "pruned object");
  for (const core::Sibling& s : obj->siblings()) {
    FUZZ_CHECK(pruned.clock().Covers(s.dot), "pruning uncovered sibling %s",
               s.dot.ToString().c_str());
  }
  return *std::move(obj);
}

void CheckMergeLaws(const core::VersionedObject& a, const core::VersionedObject& b) {
  core::VersionedObject ab = a;
  ab.Merge(b);
  core::VersionedObject ba = b;
  ba.Merge(a);
  FUZZ_CHECK(ab == ba, "merge is not commutative:\n  a = %s\n  b = %s\n  a+b = %s\n  b+a = %s",
             Describe(a).c_str(), Describe(b).c_str(), Describe(ab).c_str(), Describe(ba).c_str());
  CheckCanonical(ab, "merged object");
  FUZZ_CHECK(ab.clock().Descends(a.clock()) && ab.clock().Descends(b.clock()),
             "a merge's clock does not cover both inputs");

  core::VersionedObject again = ab;
  FUZZ_CHECK(!again.Merge(b) && again == ab, "merge is not idempotent: (a+b)+b != a+b");
  FUZZ_CHECK(!again.Merge(a) && again == ab, "merge is not idempotent: (a+b)+a != a+b");
}

}  // namespace
}  // namespace dynamo::fuzz

DYNAMO_FUZZ_INITIALIZE

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  (void)dynamo::fuzz::DecodeChecked(bytes);
  if (size < 2) return 0;
  const size_t first_size = std::min<size_t>(data[0], size - 1);
  std::optional<dynamo::core::VersionedObject> a =
      dynamo::fuzz::DecodeChecked(bytes.substr(1, first_size));
  if (!a) return 0;
  std::optional<dynamo::core::VersionedObject> b =
      dynamo::fuzz::DecodeChecked(bytes.substr(1 + first_size));
  if (!b) return 0;
  dynamo::fuzz::CheckMergeLaws(*a, *b);
  return 0;
}
