#include "dynamo/core/config.h"

#include <cmath>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace dynamo::core {

absl::Status ValidateZone(const std::string& zone) {
  if (zone.size() > kZoneBytesMax) {
    return absl::InvalidArgumentError(
        absl::StrCat("zone must be at most ", kZoneBytesMax, " bytes, got ", zone.size()));
  }
  // It is printed in status, logs and dynamoctl's tables.
  for (const char c : zone) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      return absl::InvalidArgumentError(absl::StrCat(
          "zone must not contain control characters, got \"", absl::CEscape(zone), "\""));
    }
  }
  return absl::OkStatus();
}

absl::Status NodeConfig::Validate() const {
  auto bad = [](auto&&... parts) { return absl::InvalidArgumentError(absl::StrCat(parts...)); };
  if (node_id.empty()) return bad("node id must not be empty");
  if (node_id.size() > 128) return bad("node id must be at most 128 bytes");
  if (node_id.find('#') != std::string::npos) return bad("node id must not contain '#'");
  if (address.empty()) return bad("node address (host:port) must not be empty");
  // Peers drop gossiped states with longer addresses (membership.cc).
  if (address.size() > 256) return bad("node address must be at most 256 bytes");
  if (absl::Status s = ValidateZone(zone); !s.ok()) return s;
  if (replicas_n < 1 || replicas_n > 16) return bad("N must be in 1..16, got ", replicas_n);
  if (read_quorum_r < 1 || read_quorum_r > replicas_n) {
    return bad("R must be in 1..N (N=", replicas_n, "), got ", read_quorum_r);
  }
  if (write_quorum_w < 1 || write_quorum_w > replicas_n) {
    return bad("W must be in 1..N (N=", replicas_n, "), got ", write_quorum_w);
  }
  if (vnodes < 1 || vnodes > 4096) return bad("vnodes must be in 1..4096, got ", vnodes);
  if (request_timeout_ms < 1) return bad("request timeout must be positive");
  if (gossip_interval_ms < 1) return bad("gossip interval must be positive");
  if (background_interval_ms < 1) return bad("background interval must be positive");
  if (antientropy_interval_ms < 1) return bad("anti-entropy interval must be positive");
  if (siblings_warn < 1 || siblings_max < siblings_warn) {
    return bad("need 1 <= siblings_warn <= siblings_max");
  }
  if (clock_entries_max < 1) return bad("clock_entries_max must be at least 1");
  if (key_bytes_max < 1) return bad("key_bytes_max must be at least 1");
  if (value_bytes_max < 1) return bad("value_bytes_max must be at least 1");
  if (object_bytes_max < value_bytes_max) {
    return bad("object_bytes_max (", object_bytes_max, ") must be at least value_bytes_max (",
               value_bytes_max, ")");
  }
  if (hint_batch_keys_max < 1) return bad("hint_batch_keys_max must be at least 1");
  if (handoff_batch_keys_max < 1) return bad("handoff_batch_keys_max must be at least 1");
  if (antientropy_keys_per_exchange_max < 1) {
    return bad("antientropy_keys_per_exchange_max must be at least 1");
  }
  if (handoff_ranges_in_flight_max < 1) {
    return bad("handoff_ranges_in_flight_max must be at least 1");
  }
  if (operations_in_flight_max < 1) return bad("operations_in_flight_max must be at least 1");
  if (background_bytes_per_s < 1) return bad("background_bytes_per_s must be positive");
  if (!std::isfinite(phi_threshold) || phi_threshold <= 0) {
    return bad("phi_threshold must be a positive number, got ", phi_threshold);
  }
  if (absl::Status s = ValidateMerkleShape(merkle); !s.ok()) return s;
  // Without a valid ring spec the node could never found or claim a ring.
  if (absl::Status s = ValidateRingSpec(ring); !s.ok()) return bad("ring: ", s.message());
  return absl::OkStatus();
}

}  // namespace dynamo::core
