#include "dynamo/core/config.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

namespace dynamo::core {
namespace {

NodeConfig Valid() {
  NodeConfig c;
  c.node_id = "n1";
  c.address = "127.0.0.1:7000";
  c.seeds = {"127.0.0.1:7000"};
  return c;
}

struct BadCase {
  std::string name;  // what the case breaks
  std::function<void(NodeConfig&)> mutate;
  std::string fragment;  // the message must name the setting
};

std::vector<BadCase> BadCases() {
  return {
      {"empty node id", [](NodeConfig& c) { c.node_id = ""; }, "node id"},
      {"long node id", [](NodeConfig& c) { c.node_id = std::string(129, 'x'); }, "node id"},
      {"node id with #", [](NodeConfig& c) { c.node_id = "a#b"; }, "node id"},
      {"empty address", [](NodeConfig& c) { c.address = ""; }, "address"},
      // Peers drop gossiped states whose address or zone is too long: such a
      // node could never be seen by anyone.
      {"long address", [](NodeConfig& c) { c.address = std::string(257, 'a'); }, "address"},
      {"long zone", [](NodeConfig& c) { c.zone = std::string(129, 'z'); }, "zone"},
      {"zone with a control character", [](NodeConfig& c) { c.zone = "eu\nwest"; }, "zone"},
      {"N zero", [](NodeConfig& c) { c.replicas_n = 0; }, "N must"},
      {"N too big", [](NodeConfig& c) { c.replicas_n = 17; }, "N must"},
      {"R zero", [](NodeConfig& c) { c.read_quorum_r = 0; }, "R must"},
      {"R above N", [](NodeConfig& c) { c.read_quorum_r = c.replicas_n + 1; }, "R must"},
      {"W zero", [](NodeConfig& c) { c.write_quorum_w = 0; }, "W must"},
      {"W above N", [](NodeConfig& c) { c.write_quorum_w = c.replicas_n + 1; }, "W must"},
      {"vnodes zero", [](NodeConfig& c) { c.vnodes = 0; }, "vnodes"},
      {"vnodes too many", [](NodeConfig& c) { c.vnodes = 4097; }, "vnodes"},
      {"request timeout", [](NodeConfig& c) { c.request_timeout_ms = 0; }, "request timeout"},
      {"gossip interval", [](NodeConfig& c) { c.gossip_interval_ms = 0; }, "gossip interval"},
      {"background interval", [](NodeConfig& c) { c.background_interval_ms = -5; },
       "background interval"},
      {"anti-entropy interval", [](NodeConfig& c) { c.antientropy_interval_ms = 0; },
       "anti-entropy interval"},
      {"siblings_warn zero", [](NodeConfig& c) { c.siblings_warn = 0; }, "siblings_warn"},
      {"siblings_max below warn",
       [](NodeConfig& c) {
         c.siblings_warn = 10;
         c.siblings_max = 9;
       },
       "siblings_max"},
      {"clock entries", [](NodeConfig& c) { c.clock_entries_max = 0; }, "clock_entries_max"},
      {"key size", [](NodeConfig& c) { c.key_bytes_max = 0; }, "key_bytes_max"},
      {"value size", [](NodeConfig& c) { c.value_bytes_max = 0; }, "value_bytes_max"},
      {"object size below the value size",
       [](NodeConfig& c) { c.object_bytes_max = c.value_bytes_max - 1; }, "object_bytes_max"},
      {"hint batch", [](NodeConfig& c) { c.hint_batch_keys_max = 0; }, "hint_batch_keys_max"},
      {"handoff batch", [](NodeConfig& c) { c.handoff_batch_keys_max = 0; },
       "handoff_batch_keys_max"},
      {"anti-entropy keys", [](NodeConfig& c) { c.antientropy_keys_per_exchange_max = 0; },
       "antientropy_keys_per_exchange_max"},
      {"handoff ranges", [](NodeConfig& c) { c.handoff_ranges_in_flight_max = 0; },
       "handoff_ranges_in_flight_max"},
      {"operations in flight", [](NodeConfig& c) { c.operations_in_flight_max = 0; },
       "operations_in_flight_max"},
      {"background bytes", [](NodeConfig& c) { c.background_bytes_per_s = 0; },
       "background_bytes_per_s"},
      {"phi threshold zero", [](NodeConfig& c) { c.phi_threshold = 0; }, "phi"},
      {"phi threshold NaN",
       [](NodeConfig& c) { c.phi_threshold = std::numeric_limits<double>::quiet_NaN(); }, "phi"},
      {"merkle branching", [](NodeConfig& c) { c.merkle.branching = 1; }, "Merkle"},
      {"merkle depth", [](NodeConfig& c) { c.merkle.depth = 0; }, "Merkle"},
      {"merkle too many leaves", [](NodeConfig& c) { c.merkle.depth = 6; }, "Merkle"},
      // A ring spec no ring can be built from: the node could never found or
      // claim a ring, silently.
      {"ring partitions not a power of two", [](NodeConfig& c) { c.ring.partitions = 3; },
       "partitions"},
      {"ring partitions zero", [](NodeConfig& c) { c.ring.partitions = 0; }, "partitions"},
      {"ring strategy unknown",
       [](NodeConfig& c) { c.ring.strategy = static_cast<PartitionStrategy>(9); }, "strategy"},
  };
}

TEST(NodeConfigTest, DefaultsWithIdentityAreValid) {
  EXPECT_TRUE(Valid().Validate().ok()) << Valid().Validate();
  // Edges that are allowed.
  NodeConfig c = Valid();
  c.replicas_n = 16;
  c.read_quorum_r = 16;
  c.write_quorum_w = 1;
  c.node_id = std::string(128, 'x');
  c.zone = std::string(128, 'z');
  c.vnodes = 4096;
  c.ring.strategy = PartitionStrategy::kRandomTokens;
  c.ring.partitions = 3;  // unused by strategy 1
  EXPECT_TRUE(c.Validate().ok()) << c.Validate();
}

TEST(NodeConfigTest, RefusesEachBadSettingNamingIt) {
  for (const BadCase& bad : BadCases()) {
    NodeConfig c = Valid();
    bad.mutate(c);
    const absl::Status s = c.Validate();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad.name << ": " << s;
    EXPECT_NE(s.message().find(bad.fragment), std::string::npos)
        << bad.name << ": message \"" << s.message() << "\" does not name \"" << bad.fragment
        << "\"";
  }
}

}  // namespace
}  // namespace dynamo::core
