#include "dynamo/core/context.h"

#include "absl/strings/str_cat.h"
#include "dynamo/v1/versions.pb.h"

namespace dynamo::core {

std::string EncodeContext(uint64_t key_position, const VersionVector& clock) {
  v1::CausalContext ctx;
  ctx.set_magic(kContextMagic);
  ctx.set_key_hash(key_position);
  clock.ToProto(ctx.mutable_clock());
  return ctx.SerializeAsString();
}

absl::StatusOr<VersionVector> DecodeContext(std::string_view bytes, uint64_t key_position) {
  if (bytes.empty()) return VersionVector();
  v1::CausalContext ctx;
  if (!ctx.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())) ||
      ctx.magic() != kContextMagic) {
    return absl::InvalidArgumentError(
        "context is malformed: pass the context bytes exactly as a read of this key returned "
        "them, or none for a blind write");
  }
  if (ctx.key_hash() != key_position) {
    return absl::InvalidArgumentError(
        "context belongs to another key: pass the context returned by a read of this key");
  }
  absl::StatusOr<VersionVector> clock = VersionVector::FromProto(ctx.clock());
  if (!clock.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("context is malformed: ", clock.status().message()));
  }
  return clock;
}

}  // namespace dynamo::core
