#pragma once

// The nodes' Admin API as the controller uses it, behind an interface so that
// controller tests can stand in for nodes. GrpcNodeAdmin calls
// dynamo.v1.Admin over gRPC with a deadline per call, caching one channel per
// address (bounded). Thread-safe.

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "dynamo/reconciler/reconciler.h"

namespace grpc {
class Channel;
}

namespace dynamo::op {

class NodeAdmin {
 public:
  virtual ~NodeAdmin() = default;
  virtual absl::StatusOr<reconciler::NodeView> Status(const std::string& address) = 0;
  virtual absl::StatusOr<std::vector<reconciler::RingMemberView>> Members(
      const std::string& address) = 0;
  // `zone` empty: the node's zone is left as it is.
  virtual absl::Status Join(const std::string& address, const std::string& seed,
                            const std::string& zone) = 0;
  virtual absl::Status Leave(const std::string& address) = 0;
  virtual absl::Status SetVirtualNodes(const std::string& address, uint32_t vnodes) = 0;
};

class GrpcNodeAdmin final : public NodeAdmin {
 public:
  static constexpr size_t kChannelsMax = 1024;

  explicit GrpcNodeAdmin(int deadline_ms = 2000);
  ~GrpcNodeAdmin() override;

  absl::StatusOr<reconciler::NodeView> Status(const std::string& address) override;
  absl::StatusOr<std::vector<reconciler::RingMemberView>> Members(
      const std::string& address) override;
  absl::Status Join(const std::string& address, const std::string& seed,
                    const std::string& zone) override;
  absl::Status Leave(const std::string& address) override;
  absl::Status SetVirtualNodes(const std::string& address, uint32_t vnodes) override;

 private:
  std::shared_ptr<grpc::Channel> ChannelFor(const std::string& address);

  const int deadline_ms_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<grpc::Channel>> channels_;  // guarded by mu_
};

}  // namespace dynamo::op
