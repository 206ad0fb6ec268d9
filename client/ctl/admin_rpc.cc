#include "ctl/admin_rpc.h"

#include <chrono>
#include <map>
#include <memory>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "ctl/format.h"
#include "ctl/process.h"
#include "dynamo/base/strings.h"
#include "dynamo/v1/admin.grpc.pb.h"
#include "dynamo/v1/kv.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace dynamo::ctl {
namespace {

constexpr size_t kChannelsMax = 256;
constexpr int64_t kPollMs = 100;

struct ChannelCache {
  absl::Mutex mu;
  std::map<std::string, std::shared_ptr<grpc::Channel>> channels ABSL_GUARDED_BY(mu);
};

std::shared_ptr<grpc::Channel> ChannelFor(const std::string& addr) {
  static ChannelCache* cache = new ChannelCache;  // never destroyed: used until exit
  absl::MutexLock lock(&cache->mu);
  auto it = cache->channels.find(addr);
  if (it != cache->channels.end()) {
    // A failed channel waits seconds before it connects again: start afresh
    // (see Client's StubFor).
    if (it->second->GetState(false) != GRPC_CHANNEL_TRANSIENT_FAILURE) return it->second;
    cache->channels.erase(it);
  }
  if (cache->channels.size() >= kChannelsMax) cache->channels.clear();
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  auto channel = grpc::CreateCustomChannel(addr, grpc::InsecureChannelCredentials(), args);
  cache->channels[addr] = channel;
  return channel;
}

void SetDeadline(grpc::ClientContext* context, int64_t timeout_ms) {
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(timeout_ms));
}

template <typename Response>
absl::StatusOr<Response> Finish(const std::string& addr, const grpc::Status& status,
                                Response response) {
  if (!status.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                        Cat(addr, ": ", status.error_message()));
  }
  return response;
}

}  // namespace

absl::StatusOr<v1::NodeStatus> NodeStatus(const std::string& addr, int64_t timeout_ms) {
  grpc::ClientContext context;
  SetDeadline(&context, timeout_ms);
  v1::NodeStatus response;
  const grpc::Status s = v1::Admin::NewStub(ChannelFor(addr))->Status(&context, {}, &response);
  return Finish(addr, s, std::move(response));
}

absl::StatusOr<v1::MembersResponse> Members(const std::string& addr, int64_t timeout_ms) {
  grpc::ClientContext context;
  SetDeadline(&context, timeout_ms);
  v1::MembersResponse response;
  const grpc::Status s = v1::Admin::NewStub(ChannelFor(addr))->Members(&context, {}, &response);
  return Finish(addr, s, std::move(response));
}

absl::StatusOr<v1::JoinResponse> Join(const std::string& addr, const std::string& seed,
                                      const std::string& zone, int64_t timeout_ms) {
  grpc::ClientContext context;
  SetDeadline(&context, timeout_ms);
  v1::JoinRequest request;
  request.set_seed(seed);
  request.set_zone(zone);
  v1::JoinResponse response;
  const grpc::Status s = v1::Admin::NewStub(ChannelFor(addr))->Join(&context, request, &response);
  return Finish(addr, s, std::move(response));
}

absl::StatusOr<v1::LeaveResponse> Leave(const std::string& addr, int64_t timeout_ms) {
  grpc::ClientContext context;
  SetDeadline(&context, timeout_ms);
  v1::LeaveResponse response;
  const grpc::Status s = v1::Admin::NewStub(ChannelFor(addr))->Leave(&context, {}, &response);
  return Finish(addr, s, std::move(response));
}

absl::StatusOr<v1::RemoveNodeResponse> RemoveNode(const std::string& addr,
                                                  const std::string& node_id,
                                                  int64_t timeout_ms) {
  grpc::ClientContext context;
  SetDeadline(&context, timeout_ms);
  v1::RemoveNodeRequest request;
  request.set_node_id(node_id);
  v1::RemoveNodeResponse response;
  const grpc::Status s =
      v1::Admin::NewStub(ChannelFor(addr))->RemoveNode(&context, request, &response);
  return Finish(addr, s, std::move(response));
}

absl::StatusOr<v1::SetVirtualNodesResponse> SetVirtualNodes(const std::string& addr,
                                                            uint32_t vnodes, int64_t timeout_ms) {
  grpc::ClientContext context;
  SetDeadline(&context, timeout_ms);
  v1::SetVirtualNodesRequest request;
  request.set_vnodes(vnodes);
  v1::SetVirtualNodesResponse response;
  const grpc::Status s =
      v1::Admin::NewStub(ChannelFor(addr))->SetVirtualNodes(&context, request, &response);
  return Finish(addr, s, std::move(response));
}

absl::StatusOr<v1::TopologyResponse> Topology(const std::string& addr, int64_t timeout_ms) {
  grpc::ClientContext context;
  SetDeadline(&context, timeout_ms);
  v1::TopologyResponse response;
  const grpc::Status s = v1::KV::NewStub(ChannelFor(addr))->Topology(&context, {}, &response);
  return Finish(addr, s, std::move(response));
}

absl::Status ClusterReady(const std::vector<std::string>& addresses, size_t members,
                          int64_t timeout_ms) {
  for (const std::string& addr : addresses) {
    absl::StatusOr<v1::NodeStatus> status = NodeStatus(addr, timeout_ms);
    if (!status.ok()) {
      return absl::FailedPreconditionError(
          Cat(absl::StatusCodeToString(status.status().code()), ": ", status.status().message()));
    }
    if (status->state() != v1::NODE_STATE_NORMAL || !status->ready()) {
      return absl::FailedPreconditionError(Cat(addr, " (", status->node_id(), ") is ",
                                               NodeStateName(status->state()),
                                               status->ready() ? " and ready" : " and not ready"));
    }
    absl::StatusOr<v1::MembersResponse> m = Members(addr, timeout_ms);
    if (!m.ok()) {
      return absl::FailedPreconditionError(
          Cat(absl::StatusCodeToString(m.status().code()), ": ", m.status().message()));
    }
    size_t good = 0;
    std::string missing;
    for (const v1::Member& member : m->members()) {
      if (member.state() == v1::NODE_STATE_NORMAL && member.alive()) {
        ++good;
      } else {
        missing += Cat(" ", member.node_id(), "=", NodeStateName(member.state()),
                       member.alive() ? "" : "/down");
      }
    }
    if (good != members || static_cast<size_t>(m->members_size()) != members) {
      return absl::FailedPreconditionError(
          Cat(addr, " sees ", good, " of ", members, " members NORMAL and alive", missing));
    }
  }
  return absl::OkStatus();
}

absl::Status WaitForCluster(const std::vector<std::string>& addresses, size_t members,
                            int64_t wait_ms, int64_t timeout_ms,
                            const std::function<absl::Status()>& check) {
  const int64_t deadline = MonotonicMs() + wait_ms;
  absl::Status last = absl::DeadlineExceededError("not checked yet");
  while (true) {
    if (check) {
      if (absl::Status s = check(); !s.ok()) return s;
    }
    // No gRPC call before the node listens: each refused call would cost a
    // new channel (see ChannelFor), a TCP probe costs nothing.
    last = absl::OkStatus();
    for (const std::string& addr : addresses) {
      if (!Accepting(addr)) {
        last = absl::FailedPreconditionError(Cat(addr, " does not accept connections yet"));
        break;
      }
    }
    const int64_t left = deadline - MonotonicMs();
    if (last.ok()) {
      last = ClusterReady(addresses, members, std::max<int64_t>(1, std::min(timeout_ms, left)));
    }
    if (last.ok()) return last;
    if (MonotonicMs() >= deadline) {
      return absl::DeadlineExceededError(
          Cat("cluster not ready after ", wait_ms, " ms: ", last.message()));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(kPollMs));
  }
}

}  // namespace dynamo::ctl
