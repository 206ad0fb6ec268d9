// Flags of the bench/ programs that take `--name=value` arguments: the value
// of its first occurrence, or the default.
#pragma once

#include <cstdlib>
#include <string>

namespace dynamo::bench {

inline std::string Flag(int argc, char** argv, const char* name, const std::string& dflt) {
  const std::string prefix = std::string("--") + name + "=";
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind(prefix, 0) == 0) return arg.substr(prefix.size());
  }
  return dflt;
}

inline long Flag(int argc, char** argv, const char* name, long dflt) {
  const std::string value = Flag(argc, argv, name, std::string());
  return value.empty() ? dflt : std::atol(value.c_str());
}

}  // namespace dynamo::bench
