#include "workload.h"

#include "absl/strings/str_cat.h"
#include "dynamo/core/context.h"
#include "dynamo/core/hash.h"
#include "dynamo/core/quorum.h"

namespace dynamo::sim {

void Workload::Start() {
  for (size_t c = 0; c < options_.clients; ++c) {
    sim_.After(sim_.rng().Between(options_.think_ms_min, options_.think_ms_max),
               [this, c] { Next(c); });
  }
}

size_t Workload::PickNode() {
  std::vector<size_t> up;
  for (size_t i = 0; i < sim_.size(); ++i) {
    if (sim_.up(i)) up.push_back(i);
  }
  if (up.empty()) return sim_.size();
  return up[sim_.rng().Uniform(up.size())];
}

void Workload::Next(size_t client) {
  if (stopped_) return;
  auto again = [this, client] {
    sim_.After(sim_.rng().Between(options_.think_ms_min, options_.think_ms_max),
               [this, client] { Next(client); });
  };
  const std::string key = absl::StrCat("k", sim_.rng().Uniform(options_.keys));
  const size_t at = PickNode();
  if (at == sim_.size()) return again();
  if (sim_.rng().Chance(options_.blind_write_fraction)) {
    Write(client, key, "", {});
    return;
  }
  sim_.Get(at, key, [this, client, key, at, again](const core::ClientReply& reply) {
    if (!reply.status.ok()) {
      sim_.Log(absl::StrCat("client ", client, " get ", key, " at ", sim_.id(at), ": ",
                            reply.status.ToString()));
      return again();
    }
    ++reads_ok_;
    const auto& got = std::get<v1::GetResponse>(reply.response);
    max_siblings_read_ = std::max<uint64_t>(max_siblings_read_, got.siblings_size());
    std::set<std::string> seen;
    std::string listed;
    for (const v1::Sibling& s : got.siblings()) {
      seen.insert(s.value());
      absl::StrAppend(&listed, " ", s.value());
    }
    sim_.Log(absl::StrCat("client ", client, " get ", key, " at ", sim_.id(at), ":", listed));
    if (sim_.rng().Chance(options_.delete_fraction)) {
      const size_t del_at = PickNode();
      if (del_at == sim_.size()) return again();
      const size_t number = history_.RecordDelete(key, std::move(seen), got.context());
      sim_.Delete(del_at, key, got.context(), [this, key, del_at, number, again](const core::ClientReply& r) {
        sim_.Log(absl::StrCat("delete ", key, " at ", sim_.id(del_at), ": ", r.status.ToString()));
        if (r.status.ok()) history_.MarkDeleteAcked(number);
        again();
      });
      return;
    }
    Write(client, key, got.context(), std::move(seen));
  });
}

void Workload::Write(size_t client, const std::string& key, const std::string& context,
                     std::set<std::string> seen) {
  const size_t at = PickNode();
  auto again = [this, client] {
    sim_.After(sim_.rng().Between(options_.think_ms_min, options_.think_ms_max),
               [this, client] { Next(client); });
  };
  if (at == sim_.size()) return again();
  const std::string value = absl::StrCat("c", client, "-", next_value_++);
  history_.RecordWrite(key, value, std::move(seen), context);
  sim_.Put(at, key, value, context, [this, key, value, at, again](const core::ClientReply& reply) {
    sim_.Log(absl::StrCat("put ", key, "=", value, " at ", sim_.id(at), ": ", reply.status.ToString()));
    if (reply.status.ok()) history_.MarkAcked(value);
    again();
  });
}

bool Converged(Simulation& sim, std::string* why) {
  auto fail = [&](std::string reason) {
    if (why) *why = std::move(reason);
    return false;
  };
  for (size_t i = 0; i < sim.size(); ++i) {
    if (sim.retired(i)) continue;
    if (!sim.up(i)) return fail(absl::StrCat(sim.id(i), " is down"));
    if (sim.node(i)->hint_backlog() != 0) {
      return fail(absl::StrCat(sim.id(i), " still holds ", sim.node(i)->hint_backlog(), " hints"));
    }
    if (sim.node(i)->membership().ring_state().version() !=
        sim.node(0)->membership().ring_state().version()) {
      return fail(absl::StrCat(sim.id(i), " has another ring version"));
    }
    // Anti-entropy compares these trees: one that drifted from the objects
    // would keep replicas exchanging, or miss a difference.
    if (absl::Status s = sim.node(i)->store().VerifyTrees(); !s.ok()) {
      return fail(absl::StrCat(sim.id(i), ": ", s.message()));
    }
  }
  const core::Ring& ring = sim.node(0)->membership().ring();
  const size_t n = sim.node(0)->config().replicas_n;
  for (const std::string& key : sim.AllKeys()) {
    const std::vector<std::string> owners = ring.PreferenceList(core::KeyPosition(key), n);
    std::optional<std::string> first;
    for (size_t i = 0; i < sim.size(); ++i) {
      const bool owner = std::find(owners.begin(), owners.end(), sim.id(i)) != owners.end();
      std::optional<core::VersionedObject> obj = sim.Stored(i, key);
      if (!owner) {
        if (obj) return fail(absl::StrCat(sim.id(i), " holds key ", key, " it does not own"));
        continue;
      }
      if (!obj) return fail(absl::StrCat("owner ", sim.id(i), " lacks key ", key));
      const std::string encoded = obj->Encode();
      if (!first) {
        first = encoded;
      } else if (*first != encoded) {
        return fail(absl::StrCat("owners of key ", key, " differ"));
      }
    }
  }
  return true;
}

std::map<std::string, std::vector<FinalVersion>> FinalVersions(Simulation& sim) {
  std::map<std::string, std::vector<FinalVersion>> out;
  for (const std::string& key : sim.AllKeys()) {
    core::VersionedObject merged;
    for (size_t i = 0; i < sim.size(); ++i) {
      if (auto obj = sim.Stored(i, key)) merged.Merge(*obj);
    }
    std::vector<FinalVersion>& versions = out[key];
    for (const core::Sibling& s : merged.siblings()) {
      if (!s.tombstone) versions.push_back({s.value, s.dot.actor, s.dot.counter});
    }
  }
  return out;
}

namespace {

std::map<std::string, std::vector<std::string>> ValuesOf(
    const std::map<std::string, std::vector<FinalVersion>>& final_versions) {
  std::map<std::string, std::vector<std::string>> out;
  for (const auto& [key, versions] : final_versions) {
    std::vector<std::string>& values = out[key];
    for (const FinalVersion& v : versions) values.push_back(v.value);
  }
  return out;
}

}  // namespace

std::map<std::string, std::vector<std::string>> FinalValues(Simulation& sim) {
  return ValuesOf(FinalVersions(sim));
}

CheckReport CheckHistory(const History& history, Simulation& sim) {
  const std::map<std::string, std::vector<FinalVersion>> versions = FinalVersions(sim);
  CheckReport report = history.Check(ValuesOf(versions));
  history.CheckVersions(
      versions,
      [](const std::string& key, const std::string& context, const std::string& actor,
         uint64_t counter) {
        absl::StatusOr<core::VersionVector> clock =
            core::DecodeContext(context, core::KeyPosition(key));
        return clock.ok() && clock->Counter(actor) >= counter;
      },
      &report);
  return report;
}

}  // namespace dynamo::sim
