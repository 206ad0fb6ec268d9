#pragma once

// The causal context clients carry between a read and the write based on it.
// Clients see opaque bytes; inside is the version vector of what the read saw
// and the ring position of its key, so that a context passed to another key
// is refused instead of silently dropping values.

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "dynamo/core/version_vector.h"

namespace dynamo::core {

inline constexpr uint32_t kContextMagic = 0x44594e43;  // "DYNC"

std::string EncodeContext(uint64_t key_position, const VersionVector& clock);

// Empty bytes decode to an empty context (a blind write). Anything else must
// be a context made by EncodeContext for the same key; otherwise
// InvalidArgument saying why.
absl::StatusOr<VersionVector> DecodeContext(std::string_view bytes, uint64_t key_position);

}  // namespace dynamo::core
