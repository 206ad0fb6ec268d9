#include "dynamo/server/options.h"

#include <charconv>
#include <functional>

#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "dynamo/base/strings.h"
#include "dynamo/server/limits.h"

namespace dynamo::server {
namespace {

constexpr size_t kConfigBytesMax = 1 << 20;
constexpr size_t kConfigLinesMax = 10000;

std::string Trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && (s[b] == ' ' || s[b] == '\t' || s[b] == '\r')) ++b;
  while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t' || s[e - 1] == '\r')) --e;
  return std::string(s.substr(b, e - b));
}

absl::Status Bad(const std::string& name, const std::string& value, std::string_view expected) {
  return absl::InvalidArgumentError(Cat("setting ", name, "='", value, "': expected ", expected));
}

template <typename T>
absl::Status ParseInt(const std::string& name, const std::string& value, T lo, T hi, T* out) {
  T v{};
  auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
  if (ec != std::errc() || ptr != value.data() + value.size() || v < lo || v > hi) {
    return Bad(name, value, Cat("an integer in ", lo, "..", hi));
  }
  *out = v;
  return absl::OkStatus();
}

absl::Status ParseBool(const std::string& name, const std::string& value, bool* out) {
  if (value == "true" || value == "1" || value == "yes") {
    *out = true;
  } else if (value == "false" || value == "0" || value == "no") {
    *out = false;
  } else {
    return Bad(name, value, "true or false");
  }
  return absl::OkStatus();
}

// Port 0 (any free port) only where nobody needs to find the port: an
// address peers and clients dial must name the port the node serves on.
enum class PortZero { kAllowed, kRefused };

absl::Status ParseHostPort(const std::string& name, const std::string& value,
                           PortZero zero = PortZero::kAllowed) {
  const size_t colon = value.rfind(':');
  uint32_t port = 0;
  if (colon == std::string::npos || colon == 0 ||
      !ParseInt<uint32_t>(name, value.substr(colon + 1), 0, 65535, &port).ok()) {
    return Bad(name, value, "host:port");
  }
  if (port == 0 && zero == PortZero::kRefused) {
    return Bad(name, value, "host:port with a port other than 0 (peers and clients dial it)");
  }
  return absl::OkStatus();
}

using Setter = std::function<absl::Status(const std::string&, const std::string&, ServerOptions*)>;

const std::map<std::string, std::pair<std::string, Setter>>& Settings() {
  static const auto* settings = new std::map<std::string, std::pair<std::string, Setter>>{
      {"node-id", {"this node's unique, stable id (default: hostname)",
                   [](auto& n, auto& v, ServerOptions* o) {
                     if (v.empty()) return Bad(n, v, "a non-empty id");
                     o->node.node_id = v;
                     return absl::OkStatus();
                   }}},
      {"listen", {"host:port of the gRPC services (default 0.0.0.0:7000)",
                  [](auto& n, auto& v, ServerOptions* o) {
                    if (auto s = ParseHostPort(n, v, PortZero::kRefused); !s.ok()) return s;
                    o->listen = v;
                    return absl::OkStatus();
                  }}},
      {"advertise", {"host:port other nodes and clients use to reach this node (default: --listen, "
                     "with the hostname for 0.0.0.0)",
                     [](auto& n, auto& v, ServerOptions* o) {
                       if (auto s = ParseHostPort(n, v, PortZero::kRefused); !s.ok()) return s;
                       o->node.address = v;
                       return absl::OkStatus();
                     }}},
      {"http", {"host:port of /metrics, /healthz and /readyz (default 0.0.0.0:9100)",
                [](auto& n, auto& v, ServerOptions* o) {
                  if (auto s = ParseHostPort(n, v); !s.ok()) return s;
                  o->http = v;
                  return absl::OkStatus();
                }}},
      {"data-dir", {"directory of the node's data (default ./data)",
                    [](auto& n, auto& v, ServerOptions* o) {
                      if (v.empty()) return Bad(n, v, "a path");
                      o->data_dir = v;
                      return absl::OkStatus();
                    }}},
      {"storage", {"rocksdb (default) or memory (nothing survives a restart)",
                   [](auto& n, auto& v, ServerOptions* o) {
                     if (v != "rocksdb" && v != "memory") return Bad(n, v, "rocksdb or memory");
                     o->storage = v;
                     return absl::OkStatus();
                   }}},
      {"durability", {"durable (default: acknowledged writes are fsynced) or buffered (the paper's "
                      "section 6.1: faster, a machine crash may lose the last second)",
                      [](auto& n, auto& v, ServerOptions* o) {
                        if (v != "durable" && v != "buffered") return Bad(n, v, "durable or buffered");
                        o->durability = v;
                        return absl::OkStatus();
                      }}},
      {"block-cache-mib", {"RocksDB block cache in MiB: data, index and filter blocks (default 64); "
                           "reads of data beyond it cost a block read from the page cache or disk",
                           [](auto& n, auto& v, ServerOptions* o) {
                             return ParseInt<size_t>(n, v, 8, size_t{1} << 20, &o->block_cache_mib);
                           }}},
      {"memtable-mib", {"RocksDB memtable size in MiB (default 16); all memtables take up to 4x "
                        "this memory, and writes stop while the disk has less free space than that",
                        [](auto& n, auto& v, ServerOptions* o) {
                          return ParseInt<size_t>(n, v, 1, 4096, &o->memtable_mib);
                        }}},
      {"blob-min-bytes", {"stored objects of at least this many bytes live in RocksDB blob files, "
                          "apart from the keys: compaction then rewrites keys, not objects "
                          "(default 512; 0 keeps every object in the table files)",
                          [](auto& n, auto& v, ServerOptions* o) {
                            return ParseInt<size_t>(n, v, 0, size_t{1} << 30, &o->blob_min_bytes);
                          }}},
      {"sync-delay-us", {Cat("durable nodes: wait this many microseconds before each log sync, "
                             "so that one fsync covers the writes that arrive meanwhile: less CPU "
                             "per write under a heavy write load, this much more latency per "
                             "write (default 0; at most ",
                             kSyncDelayUsMax, "; bench/RESULTS.md F35)"),
                         [](auto& n, auto& v, ServerOptions* o) {
                           return ParseInt<int64_t>(n, v, 0, kSyncDelayUsMax, &o->sync_delay_us);
                         }}},
      {"seeds", {"comma-separated host:port of nodes to gossip with first",
                 [](auto& n, auto& v, ServerOptions* o) {
                   o->node.seeds.clear();
                   for (absl::string_view part : absl::StrSplit(v, ',', absl::SkipWhitespace())) {
                     std::string seed = Trim(std::string_view(part.data(), part.size()));
                     if (auto s = ParseHostPort(n, seed, PortZero::kRefused); !s.ok()) return s;
                     o->node.seeds.push_back(seed);
                   }
                   return absl::OkStatus();
                 }}},
      {"zone", {"failure domain of this node, for zone-aware placement (default: the zone "
                "an admin Join gave, kept across restarts)",
                [](auto&, auto& v, ServerOptions* o) {
                  o->node.zone = v;
                  return absl::OkStatus();
                }}},
      {"join", {"auto (default: ask to join the ring at start) or manual (wait for admin Join)",
                [](auto& n, auto& v, ServerOptions* o) {
                  if (v != "auto" && v != "manual") return Bad(n, v, "auto or manual");
                  o->node.auto_join = v == "auto";
                  return absl::OkStatus();
                }}},
      {"replicas", {"N, copies of each key (cluster-wide; default 3)",
                    [](auto& n, auto& v, ServerOptions* o) {
                      return ParseInt<uint32_t>(n, v, 1, kReplicasMax, &o->node.replicas_n);
                    }}},
      {"read-quorum", {"R, default replicas a read waits for (default 2)",
                       [](auto& n, auto& v, ServerOptions* o) {
                         return ParseInt<uint32_t>(n, v, 1, kReplicasMax, &o->node.read_quorum_r);
                       }}},
      {"write-quorum", {"W, default replicas a write waits for (default 2)",
                        [](auto& n, auto& v, ServerOptions* o) {
                          return ParseInt<uint32_t>(n, v, 1, kReplicasMax, &o->node.write_quorum_w);
                        }}},
      {"partitions", {"Q, ring partitions (strategies 2, 3; a power of two; default 256)",
                      [](auto& n, auto& v, ServerOptions* o) {
                        return ParseInt<uint32_t>(n, v, 1, kPartitionsMax, &o->node.ring.partitions);
                      }}},
      {"strategy", {"partitioning strategy of the paper: 1, 2 or 3 (default 3)",
                    [](auto& n, auto& v, ServerOptions* o) {
                      uint32_t s = 0;
                      if (auto st = ParseInt<uint32_t>(n, v, 1, 3, &s); !st.ok()) return st;
                      o->node.ring.strategy = static_cast<core::PartitionStrategy>(s);
                      return absl::OkStatus();
                    }}},
      {"zone-aware", {"place replicas in distinct zones first (default false)",
                      [](auto& n, auto& v, ServerOptions* o) {
                        return ParseBool(n, v, &o->node.ring.zone_aware);
                      }}},
      {"vnodes", {"virtual nodes this node asks for (default 64)",
                  [](auto& n, auto& v, ServerOptions* o) {
                    return ParseInt<uint32_t>(n, v, 1, kVirtualNodesMax, &o->node.vnodes);
                  }}},
      {"request-timeout-ms", {"how long a coordinator waits for a quorum (default 2000)",
                              [](auto& n, auto& v, ServerOptions* o) {
                                return ParseInt<int64_t>(n, v, 1, 600000, &o->node.request_timeout_ms);
                              }}},
      {"gossip-interval-ms", {"gossip period (default 1000)",
                              [](auto& n, auto& v, ServerOptions* o) {
                                return ParseInt<int64_t>(n, v, 10, 600000, &o->node.gossip_interval_ms);
                              }}},
      {"antientropy-interval-ms", {"one Merkle exchange per period (default 5000)",
                                   [](auto& n, auto& v, ServerOptions* o) {
                                     return ParseInt<int64_t>(n, v, 10, 86400000,
                                                              &o->node.antientropy_interval_ms);
                                   }}},
      {"background-bytes-per-s", {"budget of hint delivery, handoff and repair (default 8 MiB/s)",
                                  [](auto& n, auto& v, ServerOptions* o) {
                                    return ParseInt<int64_t>(n, v, 1, int64_t{1} << 40,
                                                             &o->node.background_bytes_per_s);
                                  }}},
      {"tombstone-grace-ms", {"fully replicated tombstones are reaped after this (default 60000)",
                              [](auto& n, auto& v, ServerOptions* o) {
                                return ParseInt<int64_t>(n, v, 0, int64_t{1} << 40,
                                                         &o->node.tombstone_grace_ms);
                              }}},
      {"value-bytes-max", {"largest value accepted (default 1048576)",
                           [](auto& n, auto& v, ServerOptions* o) {
                             return ParseInt<size_t>(n, v, 1, 64 << 20, &o->node.value_bytes_max);
                           }}},
      {"grpc-message-bytes-max",
       {"largest gRPC message sent or received; bounds a key's values together (default 8388608)",
        [](auto& n, auto& v, ServerOptions* o) {
          return ParseInt<size_t>(n, v, size_t{1} << 20, size_t{1} << 30,
                                  &o->grpc_message_bytes_max);
        }}},
      {"siblings-max", {"concurrent values per key before writes are refused (default 100)",
                        [](auto& n, auto& v, ServerOptions* o) {
                          return ParseInt<size_t>(n, v, 1, 4096, &o->node.siblings_max);
                        }}},
      {"sla-seconds", {"latency SLA target: an exact histogram bucket for it (default 0.3)",
                       [](auto& n, auto& v, ServerOptions* o) {
                         double d = 0;
                         auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), d);
                         if (ec != std::errc() || ptr != v.data() + v.size() || !(d > 0) || d > 60) {
                           return Bad(n, v, "seconds in (0, 60]");
                         }
                         o->sla_seconds = d;
                         return absl::OkStatus();
                       }}},
      {"tls-cert", {"PEM certificate (chain) of this node: enables TLS on gRPC",
                    [](auto&, auto& v, ServerOptions* o) {
                      o->tls_cert = v;
                      return absl::OkStatus();
                    }}},
      {"tls-key", {"PEM private key of --tls-cert",
                   [](auto&, auto& v, ServerOptions* o) {
                     o->tls_key = v;
                     return absl::OkStatus();
                   }}},
      {"tls-ca", {"PEM CA bundle that signs every node's certificate (mutual TLS between nodes)",
                  [](auto&, auto& v, ServerOptions* o) {
                    o->tls_ca = v;
                    return absl::OkStatus();
                  }}},
      {"tls-reload-s", {"how often certificate files are checked for changes (default 10)",
                        [](auto& n, auto& v, ServerOptions* o) {
                          return ParseInt<int64_t>(n, v, 1, 86400, &o->tls_reload_s);
                        }}},
      {"client-token-file", {"file holding the bearer token KV clients must send",
                             [](auto&, auto& v, ServerOptions* o) {
                               o->client_token_file = v;
                               return absl::OkStatus();
                             }}},
      {"admin-listen", {"host:port of a separate Admin endpoint (default: on --listen)",
                        [](auto& n, auto& v, ServerOptions* o) {
                          if (auto s = ParseHostPort(n, v); !s.ok()) return s;
                          o->admin_listen = v;
                          return absl::OkStatus();
                        }}},
      {"admin-token-file", {"file holding the bearer token Admin calls must send",
                            [](auto&, auto& v, ServerOptions* o) {
                              o->admin_token_file = v;
                              return absl::OkStatus();
                            }}},
      {"shutdown-grace-ms", {"on SIGTERM, how long in-flight requests may finish (default 5000)",
                             [](auto& n, auto& v, ServerOptions* o) {
                               return ParseInt<int64_t>(n, v, 0, 600000, &o->shutdown_grace_ms);
                             }}},
  };
  return *settings;
}

}  // namespace

absl::StatusOr<std::map<std::string, std::string>> ParseConfigText(std::string_view text) {
  if (text.size() > kConfigBytesMax) {
    return absl::InvalidArgumentError(Cat("config is larger than ", kConfigBytesMax, " bytes"));
  }
  std::map<std::string, std::string> out;
  size_t line_no = 0;
  for (absl::string_view raw : absl::StrSplit(ToAbsl(text), '\n')) {
    if (++line_no > kConfigLinesMax) {
      return absl::InvalidArgumentError(Cat("config has more than ", kConfigLinesMax, " lines"));
    }
    std::string line(raw.data(), raw.size());
    if (const size_t hash = line.find('#'); hash != std::string::npos) line.resize(hash);
    line = Trim(line);
    if (line.empty()) continue;
    const size_t eq = line.find('=');
    if (eq == std::string::npos) {
      return absl::InvalidArgumentError(
          Cat("config line ", line_no, ": expected 'name = value', got '", line, "'"));
    }
    std::string name = Trim(std::string_view(line).substr(0, eq));
    std::string value = Trim(std::string_view(line).substr(eq + 1));
    if (name.empty()) {
      return absl::InvalidArgumentError(Cat("config line ", line_no, ": missing name before '='"));
    }
    out[name] = value;
  }
  return out;
}

absl::Status ApplySetting(const std::string& name, const std::string& value, ServerOptions* out) {
  auto it = Settings().find(name);
  if (it == Settings().end()) {
    return absl::InvalidArgumentError(Cat("unknown setting '", name, "' (see --help)"));
  }
  return it->second.second(name, value, out);
}

std::string Usage() {
  std::string out =
      "usage: dynamo-node [--name=value ...] [--config=FILE]\n"
      "A config file holds 'name = value' lines with the same names; flags win.\n\n";
  for (const auto& [name, setting] : Settings()) out += Cat("  --", name, "\n      ", setting.first, "\n");
  return out;
}

std::string ConfigPathFromArgs(const std::vector<std::string>& args) {
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i].rfind("--config=", 0) == 0) return args[i].substr(9);
    if (args[i] == "--config" && i + 1 < args.size()) return args[i + 1];
  }
  return "";
}

absl::StatusOr<ServerOptions> ParseOptions(const std::vector<std::string>& args,
                                           std::string_view config_text,
                                           std::string_view hostname) {
  ServerOptions o;
  o.node.node_id = std::string(hostname);
  absl::StatusOr<std::map<std::string, std::string>> file = ParseConfigText(config_text);
  if (!file.ok()) return file.status();
  for (const auto& [name, value] : *file) {
    if (absl::Status s = ApplySetting(name, value, &o); !s.ok()) return s;
  }
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a.rfind("--", 0) != 0) {
      return absl::InvalidArgumentError(Cat("unexpected argument '", a, "' (see --help)"));
    }
    std::string name = a.substr(2), value;
    if (const size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name.resize(eq);
    } else if (i + 1 < args.size() && args[i + 1].rfind("--", 0) != 0) {
      value = args[++i];
    } else {
      return absl::InvalidArgumentError(Cat("flag --", name, " needs a value: --", name, "=VALUE"));
    }
    if (name == "config") continue;
    if (absl::Status s = ApplySetting(name, value, &o); !s.ok()) return s;
  }
  if (o.node.address.empty()) {
    o.node.address = o.listen;
    if (o.node.address.rfind("0.0.0.0:", 0) == 0) {
      o.node.address = Cat(hostname, o.node.address.substr(7));
    }
  }
  if (o.tls_cert.empty() != o.tls_key.empty()) {
    return absl::InvalidArgumentError("--tls-cert and --tls-key go together");
  }
  if (!o.tls_ca.empty() && o.tls_cert.empty()) {
    return absl::InvalidArgumentError("--tls-ca needs --tls-cert and --tls-key (mutual TLS)");
  }
  if (!SyncDelayAppliesTo(o.durability, o.sync_delay_us)) {
    return absl::InvalidArgumentError(
        Cat("--sync-delay-us applies to durable nodes only; this node is --durability ",
            o.durability, " (its writes do not wait for a sync)"));
  }
  // Every object must fit in one message, with its key, clock and framing.
  const size_t reserve = o.node.key_bytes_max + core::kMessageReserveBytes;
  if (o.node.value_bytes_max + reserve > o.grpc_message_bytes_max) {
    return absl::InvalidArgumentError(
        Cat("--value-bytes-max (", o.node.value_bytes_max,
            ") does not fit in a message of --grpc-message-bytes-max (", o.grpc_message_bytes_max,
            "); raise --grpc-message-bytes-max to at least ", o.node.value_bytes_max + reserve));
  }
  o.node.object_bytes_max = core::ObjectBytesIn(o.grpc_message_bytes_max, o.node.key_bytes_max);
  if (absl::Status s = o.node.Validate(); !s.ok()) return s;
  return o;
}

}  // namespace dynamo::server
