// dynamoctl: reads and writes keys, shows and changes a cluster's membership,
// and runs a local dev cluster. See `dynamoctl --help`.

#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "ctl/commands.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  return dynamo::ctl::RunDynamoctl(args, std::getenv("DYNAMO_ADDR"), std::cin, std::cout,
                                   std::cerr);
}
