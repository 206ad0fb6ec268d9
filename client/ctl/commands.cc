#include "ctl/commands.h"

#include <chrono>
#include <functional>
#include <future>
#include <istream>
#include <iterator>
#include <map>
#include <ostream>
#include <thread>

#include "ctl/admin_rpc.h"
#include "ctl/args.h"
#include "ctl/dev_cluster.h"
#include "ctl/format.h"
#include "ctl/process.h"
#include "dynamo/base/strings.h"
#include "dynamo/client/base64.h"
#include "dynamo/client/client.h"

namespace dynamo::ctl {
namespace {

constexpr uint64_t kQuorumMax = 64;
constexpr int64_t kWaitPollMs = 1000;

// What a command gives back: OK, an error from the cluster or the system
// (exit 1), or a usage error (exit 2).
struct Outcome {
  int code = kExitOk;
  std::string message;

  static Outcome Ok() { return {}; }
  static Outcome Usage(std::string m) { return {kExitUsage, std::move(m)}; }
  static Outcome Error(const absl::Status& s) {
    return {kExitError, Cat(absl::StatusCodeToString(s.code()), ": ", s.message())};
  }
};

struct Env {
  const Invocation& inv;
  std::istream& in;
  std::ostream& out;
  std::ostream& err;
};

absl::StatusOr<std::unique_ptr<client::Client>> MakeClient(const Invocation& inv) {
  client::ClientOptions options;
  options.seeds = {inv.addr};
  options.routing = client::Routing::kServerDriven;  // --addr coordinates the first attempt
  options.attempt_timeout_ms = inv.timeout_ms;
  options.deadline_ms = inv.timeout_ms * options.attempts_max;
  return client::Client::Create(std::move(options));
}

// --n, --r, --w of a request.
absl::StatusOr<client::Quorum> QuorumFlags(const Invocation& inv) {
  client::Quorum q;
  for (auto [flag, field] : {std::pair{"n", &q.n}, std::pair{"r", &q.r}, std::pair{"w", &q.w}}) {
    absl::StatusOr<uint64_t> v = FlagUint(inv, flag, 0, 1, kQuorumMax);
    if (!v.ok()) return v.status();
    *field = static_cast<uint32_t>(*v);
  }
  return q;
}

absl::StatusOr<std::string> ContextFlag(const Invocation& inv) {
  if (!inv.Has("context")) return std::string();
  absl::StatusOr<std::string> bytes = client::Base64Decode(inv.Flag("context"));
  if (!bytes.ok()) {
    return absl::InvalidArgumentError(Cat("--context: ", bytes.status().message()));
  }
  return bytes;
}

Outcome GetCommand(Env& e) {
  absl::StatusOr<client::Quorum> quorum = QuorumFlags(e.inv);
  if (!quorum.ok()) return Outcome::Usage(std::string(quorum.status().message()));
  absl::StatusOr<std::unique_ptr<client::Client>> c = MakeClient(e.inv);
  if (!c.ok()) return Outcome::Error(c.status());
  client::GetOptions options;
  options.quorum = *quorum;
  absl::StatusOr<client::GetResult> r = (*c)->Get(e.inv.positional[0], options);
  if (!r.ok()) return Outcome::Error(r.status());
  e.out << FormatGet(*r);
  return Outcome::Ok();
}

Outcome Write(Env& e, bool del) {
  absl::StatusOr<client::Quorum> quorum = QuorumFlags(e.inv);
  if (!quorum.ok()) return Outcome::Usage(std::string(quorum.status().message()));
  absl::StatusOr<std::string> context = ContextFlag(e.inv);
  if (!context.ok()) return Outcome::Usage(std::string(context.status().message()));
  std::string value;
  if (!del) {
    value = e.inv.positional[1];
    if (value == "-") value.assign(std::istreambuf_iterator<char>(e.in), {});
  }
  absl::StatusOr<std::unique_ptr<client::Client>> c = MakeClient(e.inv);
  if (!c.ok()) return Outcome::Error(c.status());
  client::WriteOptions options;
  options.quorum = *quorum;
  const std::string& key = e.inv.positional[0];
  if (del && !e.inv.Has("context")) {
    // A delete with no context removes nothing that exists: its tombstone is
    // one more sibling beside the values, which reads still return. Delete
    // what a read returns now instead.
    client::GetOptions read;
    read.quorum.n = quorum->n;
    absl::StatusOr<client::GetResult> got = (*c)->Get(key, read);
    if (!got.ok()) return Outcome::Error(got.status());
    *context = got->context;
  }
  absl::StatusOr<client::WriteResult> r =
      del ? (*c)->Delete(key, *context, options) : (*c)->Put(key, value, *context, options);
  if (!r.ok()) return Outcome::Error(r.status());
  if (del) e.out << "deleted\n";
  e.out << "context: " << client::Base64Encode(r->context) << "\n";
  return Outcome::Ok();
}

Outcome ClusterStatusCommand(Env& e) {
  absl::StatusOr<v1::MembersResponse> members = Members(e.inv.addr, e.inv.timeout_ms);
  if (!members.ok()) return Outcome::Error(members.status());
  // Every member at once: a node that is down costs one timeout, not one each.
  std::map<std::string, std::future<absl::StatusOr<v1::NodeStatus>>> pending;
  for (const v1::Member& m : members->members()) {
    if (m.address().empty() || !m.removed_by().empty()) continue;  // removed: not asked
    pending[m.node_id()] = std::async(std::launch::async, [addr = m.address(), &e] {
      return NodeStatus(addr, e.inv.timeout_ms);
    });
  }
  std::map<std::string, absl::StatusOr<v1::NodeStatus>> status;
  for (auto& [id, f] : pending) status.emplace(id, f.get());
  e.out << FormatClusterStatus(e.inv.addr, *members, status);
  return Outcome::Ok();
}

Outcome RingCommand(Env& e) {
  absl::StatusOr<v1::TopologyResponse> response = Topology(e.inv.addr, e.inv.timeout_ms);
  if (!response.ok()) return Outcome::Error(response.status());
  absl::StatusOr<client::Topology> topology = client::TopologyFromResponse(*response);
  if (!topology.ok()) return Outcome::Error(topology.status());
  e.out << FormatRing(*topology, *response);
  return Outcome::Ok();
}

absl::StatusOr<std::string> NodeFlag(const Invocation& inv) {
  if (!inv.Has("node") || inv.Flag("node").empty()) {
    return absl::InvalidArgumentError(
        Cat("'", inv.command->name, "' needs --node ADDR (host:port of the node to act on)"));
  }
  return inv.Flag("node");
}

// Calls `done` every kWaitPollMs until it holds or --wait-s has passed, and
// `between` (if any) after each wait; a failing call is an error only once
// the wait is over. `not_done` names what did not happen in time.
Outcome PollUntil(Env& e, const std::function<absl::StatusOr<bool>()>& done,
                  const std::string& not_done, const std::function<absl::Status()>& between) {
  absl::StatusOr<uint64_t> wait_s = FlagUint(e.inv, "wait-s", 60, 1, 86400);
  if (!wait_s.ok()) return Outcome::Usage(std::string(wait_s.status().message()));
  const int64_t deadline = MonotonicMs() + static_cast<int64_t>(*wait_s) * 1000;
  while (true) {
    absl::StatusOr<bool> d = done();
    if (d.ok() && *d) return Outcome::Ok();
    if (!d.ok() && MonotonicMs() >= deadline) return Outcome::Error(d.status());
    if (MonotonicMs() >= deadline) {
      return Outcome::Error(absl::DeadlineExceededError(
          Cat(not_done, " after ", *wait_s, " s (see --wait-s)")));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(kWaitPollMs));
    if (!between) continue;
    if (absl::Status st = between(); !st.ok() && MonotonicMs() >= deadline) {
      return Outcome::Error(st);
    }
  }
}

// Repeats `ask` (join and leave answer before their change is gossiped, so
// they are re-sent until the state shows it) and reports progress until the
// node is in `target` state or the wait is over.
Outcome WaitForState(Env& e, const std::string& node, v1::NodeState target,
                     const std::function<absl::Status()>& ask, bool show_handoff) {
  std::string last_line;
  const auto done = [&]() -> absl::StatusOr<bool> {
    absl::StatusOr<v1::NodeStatus> s = NodeStatus(node, e.inv.timeout_ms);
    if (!s.ok()) return s.status();
    const std::string line = show_handoff ? FormatHandoffProgress(*s)
                                          : Cat(s->node_id(), " ", NodeStateName(s->state()));
    if (line != last_line) e.out << line << std::endl;
    last_line = line;
    return s->state() == target;
  };
  return PollUntil(e, done, Cat(node, " is not ", NodeStateName(target)), ask);
}

Outcome JoinCommand(Env& e) {
  absl::StatusOr<std::string> node = NodeFlag(e.inv);
  if (!node.ok()) return Outcome::Usage(std::string(node.status().message()));
  const std::string seed = e.inv.Flag("seed");
  const std::string zone = e.inv.Flag("zone");
  // An empty zone would silently leave the node's as it is.
  if (e.inv.Has("zone") && zone.empty()) {
    return Outcome::Usage("--zone needs a zone name (omit it to keep the node's zone)");
  }
  auto ask = [&]() -> absl::Status {
    return ctl::Join(*node, seed, zone, e.inv.timeout_ms).status();
  };
  absl::StatusOr<v1::JoinResponse> r = ctl::Join(*node, seed, zone, e.inv.timeout_ms);
  if (!r.ok()) return Outcome::Error(r.status());
  e.out << *node << ": " << NodeStateName(r->state()) << std::endl;
  if (!e.inv.Has("wait")) return Outcome::Ok();
  return WaitForState(e, *node, v1::NODE_STATE_NORMAL, ask, false);
}

Outcome LeaveCommand(Env& e) {
  absl::StatusOr<std::string> node = NodeFlag(e.inv);
  if (!node.ok()) return Outcome::Usage(std::string(node.status().message()));
  auto ask = [&]() -> absl::Status { return ctl::Leave(*node, e.inv.timeout_ms).status(); };
  absl::StatusOr<v1::LeaveResponse> r = ctl::Leave(*node, e.inv.timeout_ms);
  if (!r.ok()) return Outcome::Error(r.status());
  e.out << *node << ": " << NodeStateName(r->state()) << std::endl;
  if (!e.inv.Has("wait")) return Outcome::Ok();
  Outcome o = WaitForState(e, *node, v1::NODE_STATE_LEFT, ask, true);
  if (o.code == kExitOk) e.out << *node << " has left: it holds nothing and may be stopped\n";
  return o;
}

Outcome RemoveCommand(Env& e) {
  const std::string& node_id = e.inv.positional[0];
  absl::StatusOr<v1::RemoveNodeResponse> r = ctl::RemoveNode(e.inv.addr, node_id, e.inv.timeout_ms);
  if (!r.ok()) return Outcome::Error(r.status());
  e.out << node_id << ": " << NodeStateName(r->state()) << " (removed through " << e.inv.addr
        << ")" << std::endl;
  if (!e.inv.Has("wait")) return Outcome::Ok();
  const auto out_of_ring = [&]() -> absl::StatusOr<bool> {
    absl::StatusOr<v1::MembersResponse> members = Members(e.inv.addr, e.inv.timeout_ms);
    if (!members.ok()) return members.status();
    for (const v1::Member& m : members->members()) {
      if (m.node_id() == node_id && m.state() == v1::NODE_STATE_LEFT) {
        e.out << node_id << " is out of the ring (ring version " << members->ring_version() << ")"
              << std::endl;
        return true;
      }
    }
    return false;
  };
  return PollUntil(e, out_of_ring, Cat(node_id, " is still in the ring"), nullptr);
}

Outcome VnodesCommand(Env& e) {
  absl::StatusOr<std::string> node = NodeFlag(e.inv);
  if (!node.ok()) return Outcome::Usage(std::string(node.status().message()));
  absl::StatusOr<uint64_t> n = ParseUint(e.inv.positional[0], "N", 1, core::kRingTokensPerNodeMax);
  if (!n.ok()) return Outcome::Usage(std::string(n.status().message()));
  absl::StatusOr<v1::SetVirtualNodesResponse> r =
      SetVirtualNodes(*node, static_cast<uint32_t>(*n), e.inv.timeout_ms);
  if (!r.ok()) return Outcome::Error(r.status());
  e.out << *node << ": " << r->vnodes() << " virtual nodes\n";
  return Outcome::Ok();
}

Outcome DevUpCommand(Env& e) {
  DevUpOptions o;
  struct Num {
    const char* flag;
    uint64_t min, max;
    std::function<void(uint64_t)> set;
  };
  const std::vector<Num> nums = {
      {"nodes", 1, kDevNodesMax, [&](uint64_t v) { o.nodes = static_cast<int>(v); }},
      {"base-port", 1, 65535, [&](uint64_t v) { o.base_port = static_cast<int>(v); }},
      {"http-base-port", 1, 65535, [&](uint64_t v) { o.http_base_port = static_cast<int>(v); }},
      {"replicas", 1, kQuorumMax, [&](uint64_t v) { o.replicas = static_cast<uint32_t>(v); }},
      {"read-quorum", 1, kQuorumMax, [&](uint64_t v) { o.read_quorum = static_cast<uint32_t>(v); }},
      {"write-quorum", 1, kQuorumMax,
       [&](uint64_t v) { o.write_quorum = static_cast<uint32_t>(v); }},
      {"wait-s", 1, 3600, [&](uint64_t v) { o.wait_ms = static_cast<int64_t>(v) * 1000; }},
  };
  for (const Num& n : nums) {
    if (!e.inv.Has(n.flag)) continue;
    absl::StatusOr<uint64_t> v = FlagUint(e.inv, n.flag, 0, n.min, n.max);
    if (!v.ok()) return Outcome::Usage(std::string(v.status().message()));
    n.set(*v);
  }
  o.dir = e.inv.Flag("dir", o.dir);
  o.storage = e.inv.Flag("storage", o.storage);
  o.node_binary = e.inv.Flag("node-binary");
  o.rpc_timeout_ms = std::min<int64_t>(e.inv.timeout_ms, 2000);
  if (absl::Status s = ValidateDevUp(o); !s.ok()) return Outcome::Usage(std::string(s.message()));
  return {DevUp(o, e.out, e.err), ""};
}

Outcome DevDownCommand(Env& e) {
  absl::StatusOr<uint64_t> wait_s = FlagUint(e.inv, "wait-s", 15, 0, 3600);
  if (!wait_s.ok()) return Outcome::Usage(std::string(wait_s.status().message()));
  return {DevDown(e.inv.Flag("dir", ".dev-cluster"), e.inv.Has("wipe"),
                  static_cast<int64_t>(*wait_s) * 1000, e.out, e.err),
          ""};
}

Outcome DevStatusCommand(Env& e) {
  return {DevStatus(e.inv.Flag("dir", ".dev-cluster"), std::min<int64_t>(e.inv.timeout_ms, 2000),
                    e.out, e.err),
          ""};
}

}  // namespace

int RunDynamoctl(const std::vector<std::string>& args, const char* env_addr, std::istream& in,
                 std::ostream& out, std::ostream& err) {
  absl::StatusOr<Invocation> inv = ParseCommandLine(args, env_addr);
  if (!inv.ok()) {
    err << "dynamoctl: " << inv.status().message() << "\n";
    return kExitUsage;
  }
  if (inv->help) {
    out << (inv->command ? CommandUsage(*inv->command) : TopLevelUsage());
    return kExitOk;
  }
  static const std::map<std::string, std::function<Outcome(Env&)>> handlers = {
      {"get", GetCommand},
      {"put", [](Env& e) { return Write(e, false); }},
      {"delete", [](Env& e) { return Write(e, true); }},
      {"cluster status", ClusterStatusCommand},
      {"ring", RingCommand},
      {"join", JoinCommand},
      {"leave", LeaveCommand},
      {"remove", RemoveCommand},
      {"vnodes", VnodesCommand},
      {"dev up", DevUpCommand},
      {"dev down", DevDownCommand},
      {"dev status", DevStatusCommand},
  };
  Env env{*inv, in, out, err};
  const Outcome o = handlers.at(inv->command->name)(env);
  if (!o.message.empty()) {
    if (o.code == kExitUsage) {
      err << "dynamoctl " << inv->command->name << ": " << o.message << "\n";
    } else {
      err << "error: " << o.message << "\n";
    }
  }
  return o.code;
}

}  // namespace dynamo::ctl
