#pragma once

// Debian's absl is built with its own string_view (ABSL_OPTION_USE_STD_STRING_VIEW
// is 0), which absl::StrCat does not take from std::string_view. Cat() does.

#include <string>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace dynamo {

inline absl::string_view ToAbsl(std::string_view s) { return absl::string_view(s.data(), s.size()); }

namespace strings_internal {
inline absl::string_view Adapt(std::string_view s) { return ToAbsl(s); }
template <typename T>
const T& Adapt(const T& v) {
  return v;
}
}  // namespace strings_internal

template <typename... Args>
std::string Cat(const Args&... args) {
  return absl::StrCat(strings_internal::Adapt(args)...);
}

}  // namespace dynamo
