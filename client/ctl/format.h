#pragma once

// What dynamoctl prints, as pure functions of what the cluster answered.

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "dynamo/client/client.h"
#include "dynamo/client/topology.h"
#include "dynamo/v1/admin.pb.h"
#include "dynamo/v1/kv.pb.h"

namespace dynamo::ctl {

// The value as is when it is printable on one line; else C-escaped in double
// quotes, so that one value stays one line.
std::string PrintableValue(std::string_view value);

// `get`: "not found", the value, or "K siblings:" and one value per line; then
// "context: <base64>".
std::string FormatGet(const client::GetResult& result);

// Columns padded to their widest cell, two spaces apart, no trailing blanks.
std::string FormatTable(const std::vector<std::vector<std::string>>& rows);

// "NORMAL", "LEAVING", ... ("UNKNOWN" for anything else).
std::string NodeStateName(v1::NodeState state);

// `cluster status`: the members as `addr` sees them, each with its own status
// where it answered (else the error).
std::string FormatClusterStatus(
    const std::string& addr, const v1::MembersResponse& members,
    const std::map<std::string, absl::StatusOr<v1::NodeStatus>>& status);

// `ring`: strategy, partitions, N and each node's primary and replicated share.
std::string FormatRing(const client::Topology& topology, const v1::TopologyResponse& response);

// One line of `leave --wait` progress.
std::string FormatHandoffProgress(const v1::NodeStatus& status);

}  // namespace dynamo::ctl
