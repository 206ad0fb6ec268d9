#pragma once

// Base64 (RFC 4648) of opaque contexts, for people and shell scripts. Pure.

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace dynamo::client {

// The standard alphabet with '=' padding.
std::string Base64Encode(std::string_view bytes);

// Accepts the standard and the URL-safe alphabets, with or without padding.
// InvalidArgument names the offending position for anything else (a stray
// character, a lone final character, non-zero trailing bits, misplaced '=').
[[nodiscard]] absl::StatusOr<std::string> Base64Decode(std::string_view text);

}  // namespace dynamo::client
