#include "dynamo/core/ring.h"

#include <algorithm>
#include <bit>
#include <limits>
#include <utility>

#include "absl/strings/str_format.h"

namespace dynamo::core {

namespace {

constexpr uint32_t kNone = std::numeric_limits<uint32_t>::max();

// Width of a range as a double; the single range of a one-range ring is the whole 2^64.
double RangeWidth(const KeyRange& range) {
  return range.IsWholeRing() ? 0x1p64 : static_cast<double>(range.end - range.start);
}

std::optional<uint32_t> IndexOf(const std::vector<RingNode>& sorted_nodes, std::string_view id) {
  auto it = std::lower_bound(sorted_nodes.begin(), sorted_nodes.end(), id,
                             [](const RingNode& node, std::string_view v) { return node.id < v; });
  if (it == sorted_nodes.end() || it->id != id) return std::nullopt;
  return static_cast<uint32_t>(it - sorted_nodes.begin());
}

}  // namespace

absl::Status ValidateRingSpec(const RingSpec& spec) {
  switch (spec.strategy) {
    case PartitionStrategy::kRandomTokens:
      return absl::OkStatus();  // partitions is unused
    case PartitionStrategy::kRandomTokensEqualPartitions:
    case PartitionStrategy::kEqualPartitions:
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrFormat("unknown partition strategy %d; expected 1, 2 or 3",
                          static_cast<uint32_t>(spec.strategy)));
  }
  if (spec.partitions == 0 || spec.partitions > kRingPartitionsMax ||
      !std::has_single_bit(spec.partitions)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("partitions must be a power of two in [1, %d], got %d", kRingPartitionsMax,
                        spec.partitions));
  }
  return absl::OkStatus();
}

uint64_t PartitionStart(uint32_t partitions, uint32_t index) {
  if (partitions <= 1) return 0;
  // Partition width is 2^(64 - log2 Q); the shift keeps the arithmetic exact.
  return static_cast<uint64_t>(index) << (64 - std::countr_zero(partitions));
}

struct Ring::Rep {
  RingSpec spec;
  std::vector<RingToken> tokens;
  std::vector<RingNode> nodes;
  std::vector<KeyRange> ranges;
  // Strategies 2 and 3 with Q > 1: RangeIndex(position) = position >> partition_shift.
  int partition_shift = 64;
  // Distinct preference orders (strategy 2 can map many partitions to one token, and so to
  // one order) and, per range, which of them applies.
  std::vector<std::vector<uint32_t>> orders;
  std::vector<uint32_t> range_order;
  std::vector<uint32_t> empty_order;
};

Ring::Ring() : rep_(std::make_shared<const Rep>()) {}

Ring::Ring(std::shared_ptr<const Rep> rep) : rep_(std::move(rep)) {}

absl::StatusOr<Ring> Ring::Create(RingSpec spec, std::vector<RingToken> tokens,
                                  std::vector<RingNode> nodes) {
  if (absl::Status status = ValidateRingSpec(spec); !status.ok()) return status;

  if (nodes.size() > kRingNodesMax) {
    return absl::InvalidArgumentError(
        absl::StrFormat("ring has %d nodes; at most %d allowed", nodes.size(), kRingNodesMax));
  }
  for (const RingNode& node : nodes) {
    if (node.id.empty()) return absl::InvalidArgumentError("ring node id must not be empty");
    if (node.id.size() > kRingNodeIdBytesMax || node.zone.size() > kRingNodeIdBytesMax) {
      return absl::InvalidArgumentError(
          absl::StrFormat("ring node \"%s\": id and zone are limited to %d bytes",
                          node.id.substr(0, 32), kRingNodeIdBytesMax));
    }
  }
  std::sort(nodes.begin(), nodes.end(),
            [](const RingNode& a, const RingNode& b) { return a.id < b.id; });
  for (size_t i = 1; i < nodes.size(); ++i) {
    if (nodes[i].id == nodes[i - 1].id) {
      return absl::InvalidArgumentError(
          absl::StrFormat("ring node \"%s\" is listed twice", nodes[i].id));
    }
  }

  if (tokens.size() > kRingTokensMax) {
    return absl::InvalidArgumentError(
        absl::StrFormat("ring has %d tokens; at most %d allowed", tokens.size(), kRingTokensMax));
  }
  std::sort(tokens.begin(), tokens.end(), [](const RingToken& a, const RingToken& b) {
    return a.position != b.position ? a.position < b.position : a.node < b.node;
  });
  for (size_t i = 1; i < tokens.size(); ++i) {
    if (tokens[i].position == tokens[i - 1].position) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "two tokens at position 0x%016x (nodes \"%s\" and \"%s\"); positions must be distinct",
          tokens[i].position, tokens[i - 1].node, tokens[i].node));
    }
  }

  auto rep = std::make_shared<Rep>();
  rep->spec = spec;
  rep->nodes = std::move(nodes);
  std::vector<uint32_t> token_node(tokens.size());
  std::vector<uint32_t> tokens_per_node(rep->nodes.size(), 0);
  for (size_t i = 0; i < tokens.size(); ++i) {
    std::optional<uint32_t> node = IndexOf(rep->nodes, tokens[i].node);
    if (!node) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "token at position 0x%016x names node \"%s\", which is not among the ring's nodes",
          tokens[i].position, tokens[i].node));
    }
    token_node[i] = *node;
    ++tokens_per_node[*node];
  }
  const uint32_t q = spec.partitions;
  if (spec.strategy == PartitionStrategy::kEqualPartitions) {
    if (!tokens.empty() && tokens.size() != q) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "strategy 3 with %d partitions needs exactly one token per partition, got %d tokens", q,
          tokens.size()));
    }
    for (uint32_t i = 0; i < tokens.size(); ++i) {
      if (tokens[i].position != PartitionStart(q, i)) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "strategy 3 token %d (node \"%s\") is at 0x%016x, not at its partition start 0x%016x",
            i, tokens[i].node, tokens[i].position, PartitionStart(q, i)));
      }
    }
  } else {
    for (size_t v = 0; v < tokens_per_node.size(); ++v) {
      if (tokens_per_node[v] > kRingTokensPerNodeMax) {
        return absl::InvalidArgumentError(
            absl::StrFormat("ring node \"%s\" has %d tokens; at most %d allowed", rep->nodes[v].id,
                            tokens_per_node[v], kRingTokensPerNodeMax));
      }
    }
  }
  rep->tokens = std::move(tokens);
  if (rep->tokens.empty()) return Ring(std::move(rep));

  // Ranges, and for each the index of the token its preference walk starts from.
  const size_t n = rep->tokens.size();
  std::vector<uint32_t> start_token;
  if (spec.strategy == PartitionStrategy::kRandomTokens) {
    rep->ranges.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      rep->ranges.push_back({rep->tokens[i].position, rep->tokens[(i + 1) % n].position});
      start_token.push_back(static_cast<uint32_t>(i));
    }
  } else {
    rep->partition_shift = 64 - std::countr_zero(q);
    rep->ranges.reserve(q);
    for (uint32_t i = 0; i < q; ++i) {
      const uint64_t start = PartitionStart(q, i);
      rep->ranges.push_back({start, PartitionStart(q, (i + 1) % q)});
      // The token owning `start`: the last one at or before it, else the last one (wrapping).
      auto it = std::upper_bound(
          rep->tokens.begin(), rep->tokens.end(), start,
          [](uint64_t position, const RingToken& token) { return position < token.position; });
      start_token.push_back(
          static_cast<uint32_t>(it == rep->tokens.begin() ? n - 1 : it - rep->tokens.begin() - 1));
    }
  }

  std::vector<uint32_t> order_of_token(n, kNone);
  uint32_t distinct_orders = 0;
  rep->range_order.reserve(rep->ranges.size());
  for (uint32_t t : start_token) {
    if (order_of_token[t] == kNone) order_of_token[t] = distinct_orders++;
    rep->range_order.push_back(order_of_token[t]);
  }
  const uint64_t owning = static_cast<uint64_t>(
      std::count_if(tokens_per_node.begin(), tokens_per_node.end(), [](uint32_t c) { return c; }));
  if (distinct_orders * owning > kRingPreferenceEntriesMax) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "ring too large: %d preference orders of %d nodes exceed %d entries; use fewer "
        "partitions or tokens",
        distinct_orders, owning, kRingPreferenceEntriesMax));
  }

  // The order from token i is the order from token i+1 with node(i) moved to the front: walking
  // the tokens backwards twice round the ring with a move-to-front list yields every token's
  // first-occurrence order in O(1) per token plus the copy-out.
  const size_t node_count = rep->nodes.size();
  std::vector<uint32_t> next(node_count, kNone);
  std::vector<uint32_t> prev(node_count, kNone);
  std::vector<bool> listed(node_count, false);
  uint32_t head = kNone;
  rep->orders.resize(distinct_orders);
  for (size_t k = 2 * n; k-- > 0;) {
    const uint32_t v = token_node[k % n];
    if (head != v) {
      if (listed[v]) {  // unlink; v is not the head, so it has a predecessor
        next[prev[v]] = next[v];
        if (next[v] != kNone) prev[next[v]] = prev[v];
      }
      listed[v] = true;
      prev[v] = kNone;
      next[v] = head;
      if (head != kNone) prev[head] = v;
      head = v;
    }
    if (k < n && order_of_token[k] != kNone) {
      std::vector<uint32_t>& order = rep->orders[order_of_token[k]];
      order.reserve(owning);
      for (uint32_t u = head; u != kNone; u = next[u]) order.push_back(u);
    }
  }

  if (spec.zone_aware) {
    // Round r takes each zone's r-th node; within a round, walk order. That is exactly the
    // "earliest remaining node of a zone not yet used in this round" rule.
    std::vector<std::string_view> zones;
    for (const RingNode& node : rep->nodes) zones.push_back(node.zone);
    std::sort(zones.begin(), zones.end());
    zones.erase(std::unique(zones.begin(), zones.end()), zones.end());
    std::vector<uint32_t> zone_of(node_count);
    for (size_t v = 0; v < node_count; ++v) {
      zone_of[v] = static_cast<uint32_t>(
          std::lower_bound(zones.begin(), zones.end(), rep->nodes[v].zone) - zones.begin());
    }
    std::vector<uint32_t> seen(zones.size(), 0);
    std::vector<std::pair<uint32_t, uint32_t>> keyed;  // (round, node)
    for (std::vector<uint32_t>& order : rep->orders) {
      keyed.clear();
      for (uint32_t v : order) keyed.emplace_back(seen[zone_of[v]]++, v);
      for (uint32_t v : order) seen[zone_of[v]] = 0;
      std::stable_sort(keyed.begin(), keyed.end(),
                       [](const auto& a, const auto& b) { return a.first < b.first; });
      for (size_t i = 0; i < order.size(); ++i) order[i] = keyed[i].second;
    }
  }
  return Ring(std::move(rep));
}

const RingSpec& Ring::spec() const { return rep_->spec; }
const std::vector<RingToken>& Ring::tokens() const { return rep_->tokens; }
const std::vector<RingNode>& Ring::nodes() const { return rep_->nodes; }
bool Ring::empty() const { return rep_->tokens.empty(); }
const std::vector<KeyRange>& Ring::ranges() const { return rep_->ranges; }

size_t Ring::RangeIndex(uint64_t position) const {
  const std::vector<KeyRange>& ranges = rep_->ranges;
  if (ranges.empty()) return 0;
  if (rep_->spec.strategy != PartitionStrategy::kRandomTokens) {
    return rep_->partition_shift >= 64 ? 0 : position >> rep_->partition_shift;
  }
  auto it = std::upper_bound(ranges.begin(), ranges.end(), position,
                             [](uint64_t p, const KeyRange& r) { return p < r.start; });
  // Before the first token: inside the last range, which wraps.
  return it == ranges.begin() ? ranges.size() - 1 : static_cast<size_t>(it - ranges.begin() - 1);
}

const std::vector<uint32_t>& Ring::PreferenceOrder(size_t range_index) const {
  if (range_index >= rep_->range_order.size()) return rep_->empty_order;
  return rep_->orders[rep_->range_order[range_index]];
}

std::vector<std::string> Ring::PreferenceList(uint64_t position, size_t n) const {
  std::vector<std::string> ids;
  if (empty()) return ids;
  const std::vector<uint32_t>& order = PreferenceOrder(RangeIndex(position));
  const size_t count = std::min(n, order.size());
  ids.reserve(count);
  for (size_t i = 0; i < count; ++i) ids.push_back(rep_->nodes[order[i]].id);
  return ids;
}

std::vector<size_t> Ring::RangesReplicatedBy(std::string_view node, size_t n) const {
  std::vector<size_t> result;
  const std::optional<uint32_t> index = NodeIndex(node);
  if (!index) return result;
  for (size_t r = 0; r < rep_->ranges.size(); ++r) {
    const std::vector<uint32_t>& order = PreferenceOrder(r);
    const auto end = order.begin() + static_cast<std::ptrdiff_t>(std::min(n, order.size()));
    if (std::find(order.begin(), end, *index) != end) result.push_back(r);
  }
  return result;
}

double Ring::PrimaryShare(std::string_view node) const {
  const std::optional<uint32_t> index = NodeIndex(node);
  if (!index) return 0;
  double share = 0;
  for (size_t r = 0; r < rep_->ranges.size(); ++r) {
    if (PreferenceOrder(r)[0] == *index) share += RangeWidth(rep_->ranges[r]);
  }
  return share * 0x1p-64;
}

std::vector<double> Ring::ReplicaShares(size_t n) const {
  std::vector<double> shares(rep_->nodes.size(), 0);
  for (size_t r = 0; r < rep_->ranges.size(); ++r) {
    const std::vector<uint32_t>& order = PreferenceOrder(r);
    const double width = RangeWidth(rep_->ranges[r]);
    for (size_t i = 0; i < std::min(n, order.size()); ++i) shares[order[i]] += width;
  }
  for (double& share : shares) share *= 0x1p-64;
  return shares;
}

const RingNode* Ring::FindNode(std::string_view id) const {
  const std::optional<uint32_t> index = NodeIndex(id);
  return index ? &rep_->nodes[*index] : nullptr;
}

std::optional<uint32_t> Ring::NodeIndex(std::string_view id) const {
  return IndexOf(rep_->nodes, id);
}

}  // namespace dynamo::core
