#pragma once

// Blocking calls to one node's Admin and KV.Topology services, for dynamoctl
// and the tests. Thread-safe; channels are cached per address.

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "dynamo/v1/admin.pb.h"
#include "dynamo/v1/kv.pb.h"

namespace dynamo::ctl {

// Errors carry the gRPC code and "ADDR: message".
[[nodiscard]] absl::StatusOr<v1::NodeStatus> NodeStatus(const std::string& addr,
                                                        int64_t timeout_ms);
[[nodiscard]] absl::StatusOr<v1::MembersResponse> Members(const std::string& addr,
                                                          int64_t timeout_ms);
// An empty seed or zone leaves the node's as they are.
[[nodiscard]] absl::StatusOr<v1::JoinResponse> Join(const std::string& addr,
                                                    const std::string& seed,
                                                    const std::string& zone, int64_t timeout_ms);
[[nodiscard]] absl::StatusOr<v1::LeaveResponse> Leave(const std::string& addr, int64_t timeout_ms);
[[nodiscard]] absl::StatusOr<v1::RemoveNodeResponse> RemoveNode(const std::string& addr,
                                                              const std::string& node_id,
                                                              int64_t timeout_ms);
[[nodiscard]] absl::StatusOr<v1::SetVirtualNodesResponse> SetVirtualNodes(const std::string& addr,
                                                                          uint32_t vnodes,
                                                                          int64_t timeout_ms);
[[nodiscard]] absl::StatusOr<v1::TopologyResponse> Topology(const std::string& addr,
                                                            int64_t timeout_ms);

// OK when every address answers that it is NORMAL and ready, and lists
// `members` members, all NORMAL and alive. Otherwise FailedPrecondition
// saying what is missing.
[[nodiscard]] absl::Status ClusterReady(const std::vector<std::string>& addresses, size_t members,
                                        int64_t timeout_ms);

// Polls ClusterReady until it holds or `wait_ms` passed (then DeadlineExceeded
// with the last reason). `check`, called every round, aborts the wait with
// its error (a process that died).
[[nodiscard]] absl::Status WaitForCluster(const std::vector<std::string>& addresses, size_t members,
                                          int64_t wait_ms, int64_t timeout_ms,
                                          const std::function<absl::Status()>& check);

}  // namespace dynamo::ctl
