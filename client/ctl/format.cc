#include "ctl/format.h"

#include <algorithm>

#include "absl/strings/escaping.h"
#include "absl/strings/str_format.h"
#include "dynamo/base/strings.h"
#include "dynamo/client/base64.h"

namespace dynamo::ctl {
namespace {

std::string YesNo(bool b) { return b ? "yes" : "no"; }

std::string Percent(double fraction) { return absl::StrFormat("%.1f%%", 100.0 * fraction); }

std::string StrategyName(uint32_t strategy) {
  switch (strategy) {
    case 1:
      return "1 (random tokens per node)";
    case 2:
      return "2 (random tokens, equal partitions)";
    case 3:
      return "3 (equal partitions, Q/S per node)";
    default:
      return Cat(strategy, " (unknown)");
  }
}

}  // namespace

std::string PrintableValue(std::string_view value) {
  const bool plain = std::none_of(value.begin(), value.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
  });
  if (plain) return std::string(value);
  return Cat("\"", absl::CEscape(ToAbsl(value)), "\"");
}

std::string FormatGet(const client::GetResult& result) {
  std::string out;
  if (!result.found || result.siblings.empty()) {
    out = "not found\n";
  } else {
    if (result.siblings.size() > 1) out += Cat(result.siblings.size(), " siblings:\n");
    for (const client::Sibling& s : result.siblings) out += Cat(PrintableValue(s.value), "\n");
  }
  out += Cat("context: ", client::Base64Encode(result.context), "\n");
  return out;
}

std::string FormatTable(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  for (const auto& row : rows) {
    if (width.size() < row.size()) width.resize(row.size(), 0);
    for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(width[i] - row[i].size() + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + "\n";
  }
  return out;
}

std::string NodeStateName(v1::NodeState state) {
  switch (state) {
    case v1::NODE_STATE_STANDBY:
      return "STANDBY";
    case v1::NODE_STATE_JOINING:
      return "JOINING";
    case v1::NODE_STATE_NORMAL:
      return "NORMAL";
    case v1::NODE_STATE_LEAVING:
      return "LEAVING";
    case v1::NODE_STATE_LEFT:
      return "LEFT";
    default:
      return "UNKNOWN";
  }
}

std::string FormatClusterStatus(
    const std::string& addr, const v1::MembersResponse& members,
    const std::map<std::string, absl::StatusOr<v1::NodeStatus>>& status) {
  std::string out =
      Cat("ring version ", members.ring_version(), " (as ", addr, " sees it), ",
          members.members_size(), " member", members.members_size() == 1 ? "" : "s", "\n");
  std::vector<std::vector<std::string>> rows = {{"NODE", "ADDRESS", "STATE", "ALIVE", "READY",
                                                 "RING", "PARTITIONS", "KEYS", "HINTS",
                                                 "HANDOFF-LEFT"}};
  std::string problems;
  std::string reaps;
  for (const v1::Member& m : members.members()) {
    if (!m.removed_by().empty()) {
      rows.push_back({m.node_id(), m.address(), Cat("REMOVED (by ", m.removed_by(), ")"),
                      YesNo(m.alive()), "-", "-", Cat(m.owned_partitions()), "-", "-", "-"});
      continue;
    }
    auto it = status.find(m.node_id());
    if (it == status.end() || !it->second.ok()) {
      // The member's own view is missing: show what `addr` knows of it.
      rows.push_back({m.node_id(), m.address(), NodeStateName(m.state()), YesNo(m.alive()), "-",
                      "-", Cat(m.owned_partitions()), "-", "-", "-"});
      if (it != status.end()) {
        problems +=
            Cat("  ", m.node_id(), ": ", absl::StatusCodeToString(it->second.status().code()), ": ",
                it->second.status().message(), "\n");
      }
      continue;
    }
    const v1::NodeStatus& s = *it->second;
    uint64_t hints = 0;
    for (const v1::HintBacklog& h : s.hints()) hints += h.keys();
    rows.push_back({m.node_id(), m.address(), NodeStateName(s.state()), YesNo(m.alive()),
                    YesNo(s.ready()), Cat(s.ring_version()), Cat(s.owned_partitions()),
                    Cat(s.keys()), Cat(hints), Cat(s.unowned_keys())});
    if (s.reaps_owed() > 0 && s.reaps_held_by_size() > 0) {
      reaps += Cat("  ", m.node_id(), " owes ", s.reaps_owed(), ", waiting for ",
                   absl::StrJoin(s.reaps_held_by(), ", "), "\n");
    }
  }
  out += FormatTable(rows);
  out +=
      "ALIVE: as the failure detector of the asked node sees it; STATE, READY, RING and the\n"
      "counts: each node's own report. HINTS: writes held for down nodes; HANDOFF-LEFT:\n"
      "keys held for ranges the node no longer owns.\n";
  if (!problems.empty()) out += Cat("unreachable:\n", problems);
  if (!reaps.empty()) {
    out += Cat("tombstone reaps held (until every node answers that it holds no hints or "
               "unowned keys):\n",
               reaps);
  }
  return out;
}

std::string FormatRing(const client::Topology& topology, const v1::TopologyResponse& response) {
  const core::Ring& ring = topology.ring;
  std::string out =
      Cat("ring version ", topology.ring_version, ", strategy ", StrategyName(response.strategy()));
  if (response.strategy() != 1) out += Cat(", ", response.partitions(), " partitions");
  out += Cat(", N=", topology.replicas, ", zone-aware ", YesNo(response.zone_aware()), "\n");
  if (ring.empty()) return out + "the ring is empty: no node has founded or joined it yet\n";
  const std::vector<double> replicated = ring.ReplicaShares(topology.replicas);
  std::vector<std::vector<std::string>> rows = {
      {"NODE", "ADDRESS", "ZONE", "ALIVE", "TOKENS", "PRIMARY", "REPLICATED"}};
  for (size_t i = 0; i < ring.nodes().size(); ++i) {
    const core::RingNode& rn = ring.nodes()[i];
    const client::Topology::Node* n = topology.FindNode(rn.id);
    const size_t tokens = static_cast<size_t>(
        std::count_if(ring.tokens().begin(), ring.tokens().end(),
                      [&](const core::RingToken& t) { return t.node == rn.id; }));
    rows.push_back({rn.id, n ? n->address : "?", rn.zone.empty() ? "-" : rn.zone,
                    n ? YesNo(n->alive) : "?", Cat(tokens), Percent(ring.PrimaryShare(rn.id)),
                    Percent(i < replicated.size() ? replicated[i] : 0.0)});
  }
  out += FormatTable(rows);
  const size_t copies = std::min<size_t>(topology.replicas, ring.nodes().size());
  out +=
      Cat(ring.ranges().size(), " ranges; PRIMARY: share of keys a node is first for; ",
          "REPLICATED: share it stores (sums to ", copies,
          copies < topology.replicas ? Cat(": fewer nodes than N=", topology.replicas) : "", ")\n");
  return out;
}

std::string FormatHandoffProgress(const v1::NodeStatus& s) {
  uint64_t sent = 0, bytes = 0, hints = 0;
  for (const v1::HandoffTransfer& t : s.handoffs()) {
    sent += t.keys_sent();
    bytes += t.bytes_sent();
  }
  for (const v1::HintBacklog& h : s.hints()) hints += h.keys();
  return Cat(s.node_id(), " ", NodeStateName(s.state()), ": ", s.owned_partitions(),
             " partitions owned, ", s.unowned_keys(), " keys left to hand off, ",
             s.keys_handed_off(), " handed off (", s.bytes_handed_off(), " bytes), ",
             s.handoffs_size(), " transfers active (", sent, " keys, ", bytes, " bytes), ", hints,
             " hints held");
}

}  // namespace dynamo::ctl
