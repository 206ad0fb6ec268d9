#include "dynamo/core/key_range.h"

#include <cstdio>

namespace dynamo::core {

std::string KeyRange::ToString() const {
  char buf[48];
  std::snprintf(buf, sizeof buf, "[%016llx,%016llx)", static_cast<unsigned long long>(start),
                static_cast<unsigned long long>(end));
  return buf;
}

}  // namespace dynamo::core
