#include "dynamo/operator/node_admin.h"

#include <grpcpp/grpcpp.h>

#include <chrono>

#include "dynamo/base/strings.h"
#include "dynamo/v1/admin.grpc.pb.h"

namespace dynamo::op {
namespace {

using reconciler::NodeState;

NodeState FromProto(v1::NodeState s) {
  switch (s) {
    case v1::NODE_STATE_STANDBY:
      return NodeState::kStandby;
    case v1::NODE_STATE_JOINING:
      return NodeState::kJoining;
    case v1::NODE_STATE_NORMAL:
      return NodeState::kNormal;
    case v1::NODE_STATE_LEAVING:
      return NodeState::kLeaving;
    case v1::NODE_STATE_LEFT:
      return NodeState::kLeft;
    default:
      return NodeState::kUnknown;
  }
}

absl::Status FromGrpc(const grpc::Status& s, std::string_view what, const std::string& address) {
  if (s.ok()) return absl::OkStatus();
  return absl::UnavailableError(Cat(what, " on ", address, ": ", s.error_message(), " (gRPC code ",
                                    static_cast<int>(s.error_code()), ")"));
}

}  // namespace

GrpcNodeAdmin::GrpcNodeAdmin(int deadline_ms) : deadline_ms_(deadline_ms) {}
GrpcNodeAdmin::~GrpcNodeAdmin() = default;

std::shared_ptr<grpc::Channel> GrpcNodeAdmin::ChannelFor(const std::string& address) {
  std::lock_guard<std::mutex> lock(mu_);
  const auto it = channels_.find(address);
  if (it != channels_.end()) return it->second;
  if (channels_.size() >= kChannelsMax) channels_.clear();  // pod IPs churn: start over
  grpc::ChannelArguments args;
  // Fail fast on a pod that is gone instead of waiting out the deadline in
  // reconnect backoff.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  auto channel = grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
  channels_.emplace(address, channel);
  return channel;
}

#define DYNAMO_CONTEXT(ctx) \
  grpc::ClientContext ctx;  \
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(deadline_ms_))

absl::StatusOr<reconciler::NodeView> GrpcNodeAdmin::Status(const std::string& address) {
  auto stub = v1::Admin::NewStub(ChannelFor(address));
  DYNAMO_CONTEXT(ctx);
  v1::StatusRequest req;
  v1::NodeStatus resp;
  const grpc::Status s = stub->Status(&ctx, req, &resp);
  if (!s.ok()) return FromGrpc(s, "Admin.Status", address);
  reconciler::NodeView v;
  v.reachable = true;
  v.node_id = resp.node_id();
  v.address = resp.address();
  v.zone = resp.zone();
  v.state = FromProto(resp.state());
  v.ready = resp.ready();
  v.owned_partitions = resp.owned_partitions();
  v.keys = resp.keys();
  v.unowned_keys = resp.unowned_keys();
  for (const v1::HintBacklog& h : resp.hints()) v.hint_keys += h.keys();
  v.vnodes = resp.vnodes();
  v.ring_version = resp.ring_version();
  for (const v1::HandoffTransfer& t : resp.handoffs()) {
    ++v.handoff_ranges;
    v.handoff_keys_remaining += t.keys_remaining();
    v.handoff_keys_sent += t.keys_sent();
    v.handoff_bytes_sent += t.bytes_sent();
  }
  return v;
}

absl::StatusOr<std::vector<reconciler::RingMemberView>> GrpcNodeAdmin::Members(
    const std::string& address) {
  auto stub = v1::Admin::NewStub(ChannelFor(address));
  DYNAMO_CONTEXT(ctx);
  v1::MembersRequest req;
  v1::MembersResponse resp;
  const grpc::Status s = stub->Members(&ctx, req, &resp);
  if (!s.ok()) return FromGrpc(s, "Admin.Members", address);
  std::vector<reconciler::RingMemberView> out;
  for (const v1::Member& m : resp.members()) {
    out.push_back({m.node_id(), FromProto(m.state()), m.alive()});
  }
  return out;
}

absl::Status GrpcNodeAdmin::Join(const std::string& address, const std::string& seed,
                                 const std::string& zone) {
  auto stub = v1::Admin::NewStub(ChannelFor(address));
  DYNAMO_CONTEXT(ctx);
  v1::JoinRequest req;
  req.set_seed(seed);
  req.set_zone(zone);
  v1::JoinResponse resp;
  return FromGrpc(stub->Join(&ctx, req, &resp), "Admin.Join", address);
}

absl::Status GrpcNodeAdmin::Leave(const std::string& address) {
  auto stub = v1::Admin::NewStub(ChannelFor(address));
  DYNAMO_CONTEXT(ctx);
  v1::LeaveRequest req;
  v1::LeaveResponse resp;
  return FromGrpc(stub->Leave(&ctx, req, &resp), "Admin.Leave", address);
}

absl::Status GrpcNodeAdmin::SetVirtualNodes(const std::string& address, uint32_t vnodes) {
  auto stub = v1::Admin::NewStub(ChannelFor(address));
  DYNAMO_CONTEXT(ctx);
  v1::SetVirtualNodesRequest req;
  req.set_vnodes(vnodes);
  v1::SetVirtualNodesResponse resp;
  return FromGrpc(stub->SetVirtualNodes(&ctx, req, &resp), "Admin.SetVirtualNodes", address);
}

#undef DYNAMO_CONTEXT

}  // namespace dynamo::op
