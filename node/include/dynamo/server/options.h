#pragma once

// Settings of a dynamo-node process: command-line flags and an optional
// config file of "name = value" lines using the same names as the flags.
// Flags win over the file. Parsing is pure (no I/O) so it can be fuzzed.

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "dynamo/core/config.h"

namespace dynamo::server {

struct ServerOptions {
  core::NodeConfig node;           // protocol settings; node.address is the advertised one
  std::string listen = "0.0.0.0:7000";  // gRPC: KV, Replica and Admin services
  std::string http = "0.0.0.0:9100";    // /metrics, /healthz, /readyz
  std::string data_dir = "./data";
  std::string storage = "rocksdb";      // rocksdb | memory
  std::string durability = "durable";   // durable | buffered
  size_t block_cache_mib = 64;          // RocksDB's cache of data, index and filter blocks
  size_t memtable_mib = 16;             // RocksDB's memtable per column family
  size_t blob_min_bytes = 512;          // objects this large go to blob files; 0: never
  int64_t sync_delay_us = 0;            // durable: a log sync waits this long to cover more writes
  double sla_seconds = 0.3;             // an extra latency bucket for the SLA panel
  int64_t tick_ms = 5;
  int64_t shutdown_grace_ms = 5000;     // in-flight requests get this long on SIGTERM
  size_t grpc_message_bytes_max = core::kMessageBytesDefault;

  // Security (all optional). With a certificate, gRPC speaks TLS; node-to-node
  // calls then need a client certificate from the CA (mutual TLS), and the
  // files are re-read when they change.
  std::string tls_cert;
  std::string tls_key;
  std::string tls_ca;
  int64_t tls_reload_s = 10;
  std::string client_token_file;  // KV calls need "authorization: Bearer <token>"
  std::string admin_listen;       // serve Admin here only (default: with KV)
  std::string admin_token_file;   // Admin calls need this bearer token
};

// One "name = value" setting per line; '#' starts a comment; blank lines are
// ignored. InvalidArgument names the line of any malformed entry.
absl::StatusOr<std::map<std::string, std::string>> ParseConfigText(std::string_view text);

// Applies settings (from a file or flags) by name. Unknown names and bad
// values are InvalidArgument with the name and what is expected.
absl::Status ApplySetting(const std::string& name, const std::string& value, ServerOptions* out);

// The help text listing every setting.
std::string Usage();

// Parses argv (--name=value or --name value; --config=FILE is read by the
// caller and passed as config_text). hostname fills in defaults.
absl::StatusOr<ServerOptions> ParseOptions(const std::vector<std::string>& args,
                                           std::string_view config_text,
                                           std::string_view hostname);

// The value of --config in args, if any.
std::string ConfigPathFromArgs(const std::vector<std::string>& args);

}  // namespace dynamo::server
