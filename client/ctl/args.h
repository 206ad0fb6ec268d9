#pragma once

// dynamoctl's command line: the commands, their flags and help, and a pure
// parser (no I/O) so that every usage error is testable.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace dynamo::ctl {

inline constexpr char kDefaultAddr[] = "127.0.0.1:7001";
inline constexpr int64_t kDefaultTimeoutMs = 5000;

struct FlagSpec {
  std::string name;         // without dashes: "context" is --context
  bool takes_value = true;  // else a switch (--wipe)
  std::string alias;        // a short spelling with its dash, e.g. "-n"; "" for none
  std::string help;         // "B64  context of the read this write is based on"
};

struct CommandSpec {
  std::string name;      // one or two words: "get", "cluster status", "dev up"
  std::string synopsis;  // after the name: "KEY [--n N] [--r R]"
  std::string summary;   // one line
  std::string details;   // more lines of help, may be ""
  std::vector<FlagSpec> flags;
  size_t positional_min = 0;
  size_t positional_max = 0;
};

// Every command, in the order the help lists them.
const std::vector<CommandSpec>& Commands();
const CommandSpec* FindCommand(const std::string& name);

struct Invocation {
  const CommandSpec* command = nullptr;  // null with help: the top-level help
  std::vector<std::string> positional;
  std::map<std::string, std::string> flags;  // by name; "true" for a switch given
  std::string addr = kDefaultAddr;           // --addr, else $DYNAMO_ADDR, else the default
  int64_t timeout_ms = kDefaultTimeoutMs;    // --timeout-ms: per RPC
  bool help = false;                         // --help / -h / `help [COMMAND]`

  bool Has(const std::string& flag) const { return flags.contains(flag); }
  std::string Flag(const std::string& flag, const std::string& fallback = "") const;
};

// Parses argv after the program name. `env_addr` is $DYNAMO_ADDR (null or ""
// when unset). Global flags (--addr, --timeout-ms, --help) may come before or
// after the command; a command's flags come after it, as --name=value,
// --name value, or their short alias; "--" ends the flags. Errors are usage
// errors: InvalidArgument with a message for the user.
[[nodiscard]] absl::StatusOr<Invocation> ParseCommandLine(const std::vector<std::string>& args,
                                                          const char* env_addr);

// A flag's value as an unsigned number in [min, max]; `fallback` when absent.
[[nodiscard]] absl::StatusOr<uint64_t> FlagUint(const Invocation& inv, const std::string& flag,
                                                uint64_t fallback, uint64_t min, uint64_t max);
// A string as an unsigned number in [min, max]; `what` names it in errors.
[[nodiscard]] absl::StatusOr<uint64_t> ParseUint(const std::string& text, const std::string& what,
                                                 uint64_t min, uint64_t max);

std::string TopLevelUsage();
std::string CommandUsage(const CommandSpec& command);

}  // namespace dynamo::ctl
