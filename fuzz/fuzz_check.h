#pragma once

// What every fuzz target shares: FUZZ_CHECK, which prints why and aborts
// (libFuzzer reports an abort as a crash and keeps the input), and a switch
// for protobuf's log lines, which the fuzzer provokes by the thousand (for
// example "invalid UTF-8" on every malformed string field).

#include <cstdio>
#include <cstdlib>

#include "google/protobuf/stubs/logging.h"

#define FUZZ_CHECK(cond, ...)                                                                \
  do {                                                                                       \
    if (!(cond)) {                                                                           \
      std::fprintf(stderr, "FUZZ_CHECK failed at %s:%d: %s\n  ", __FILE__, __LINE__, #cond); \
      std::fprintf(stderr, __VA_ARGS__);                                                     \
      std::fprintf(stderr, "\n");                                                            \
      std::abort();                                                                          \
    }                                                                                        \
  } while (0)

namespace dynamo::fuzz {

// Drops protobuf's log lines (a fatal one still aborts). Call once, from
// LLVMFuzzerInitialize.
inline void SilenceProtobufLogs() { google::protobuf::SetLogHandler(nullptr); }

}  // namespace dynamo::fuzz

// Every target defines this: libFuzzer calls it once before the first input.
#define DYNAMO_FUZZ_INITIALIZE                         \
  extern "C" int LLVMFuzzerInitialize(int*, char***) { \
    dynamo::fuzz::SilenceProtobufLogs();               \
    return 0;                                          \
  }
