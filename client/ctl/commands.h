#pragma once

// dynamoctl's commands: parse the command line, run one command, print.

#include <iosfwd>
#include <string>
#include <vector>

namespace dynamo::ctl {

inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;  // the cluster or the system said no
inline constexpr int kExitUsage = 2;  // the command line is wrong

// Runs dynamoctl with `args` (argv without the program name). `env_addr` is
// $DYNAMO_ADDR (may be null). Returns the exit status.
int RunDynamoctl(const std::vector<std::string>& args, const char* env_addr, std::istream& in,
                 std::ostream& out, std::ostream& err);

}  // namespace dynamo::ctl
