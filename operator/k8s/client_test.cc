// The Kubernetes client against the API double (kube_double.py), over the
// real wire protocol.
#include "dynamo/k8s/client.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "double_process.h"
#include "dynamo/base/strings.h"
#include "dynamo/k8s/cpprest_http_client.h"
#include "dynamo/k8s/events.h"
#include "dynamo/k8s/leader_election.h"
#include "dynamo/k8s/reflector.h"

namespace dynamo::k8s {
namespace {

using json::Value;
using testing::KubeDouble;

constexpr char kNs[] = "db";

class ManualClock final : public Clock {
 public:
  int64_t SteadyMs() const override { return ms.load(); }
  int64_t UnixMicros() const override { return 1700000000000000 + ms.load() * 1000; }
  std::atomic<int64_t> ms{0};
};

Value ConfigMap(const std::string& name, Value labels = Value::Obj()) {
  return Value::Obj({{"apiVersion", "v1"},
                     {"kind", "ConfigMap"},
                     {"metadata", Value::Obj({{"name", name}, {"labels", labels}})},
                     {"data", Value::Obj({{"k", "v"}})}});
}

Value Cluster(const std::string& name, int replicas) {
  return Value::Obj({{"apiVersion", "dynamo.dev/v1alpha1"},
                     {"kind", "DynamoCluster"},
                     {"metadata", Value::Obj({{"name", name}})},
                     {"spec", Value::Obj({{"replicas", replicas}})},
                     {"status", Value::Obj({{"replicas", 99}})}});
}

// Polls `pred` every 20 ms until it holds or `timeout_ms` passes.
template <typename Pred>
bool WaitFor(Pred pred, int timeout_ms = 10000) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return pred();
}

// Runs `run(&cancel)` on its own thread until Stop() or destruction: a failed
// ASSERT that returns early still cancels and joins it (not terminate()).
class Background {
 public:
  template <typename Run>
  explicit Background(Run run) : thread_([this, run] { run(&cancel_); }) {}
  ~Background() { Stop(); }
  void Stop() {
    cancel_.Cancel();
    if (thread_.joinable()) thread_.join();
  }

 private:
  Cancellation cancel_;
  std::thread thread_;
};

class ClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto d = KubeDouble::Start();
    ASSERT_TRUE(d.ok()) << d.status();
    double_ = *std::move(d);
    client_ = double_->NewClient();
  }
  std::unique_ptr<KubeDouble> double_;
  std::unique_ptr<Client> client_;
};

TEST_F(ClientTest, CreateGetListPatchApplyDelete) {
  auto created = client_->Create(ConfigMaps(), kNs, ConfigMap("a", Value::Obj({{"app", "x"}})));
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_FALSE((*created).At({"metadata", "uid"}).AsString().empty());
  EXPECT_TRUE(k8s::IsAlreadyExists(client_->Create(ConfigMaps(), kNs, ConfigMap("a")).status()));
  ASSERT_TRUE(client_->Create(ConfigMaps(), kNs, ConfigMap("b")).ok());
  ASSERT_TRUE(client_->Create(ConfigMaps(), "other", ConfigMap("c")).ok());

  auto got = client_->Get(ConfigMaps(), kNs, "a");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ((*got).At({"data", "k"}).AsString(), "v");
  EXPECT_TRUE(k8s::IsNotFound(client_->Get(ConfigMaps(), kNs, "zzz").status()));

  auto list = client_->List(ConfigMaps(), kNs);
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->items.size(), 2u);
  EXPECT_EQ(list->items[0]["kind"].AsString(), "ConfigMap");  // filled in for list items
  EXPECT_FALSE(list->resource_version.empty());
  EXPECT_EQ(client_->List(ConfigMaps(), "")->items.size(), 3u);
  ListOptions selected;
  selected.label_selector = "app=x";
  EXPECT_EQ(client_->List(ConfigMaps(), kNs, selected)->items.size(), 1u);

  auto patched = client_->MergePatch(
      ConfigMaps(), kNs, "a", Value::Obj({{"data", Value::Obj({{"k", nullptr}, {"n", "1"}})}}));
  ASSERT_TRUE(patched.ok()) << patched.status();
  EXPECT_EQ((*patched)["data"], Value::Obj({{"n", "1"}}));

  // Server-side apply creates, then updates.
  Value applied = ConfigMap("d");
  applied["metadata"]["namespace"] = kNs;
  ASSERT_TRUE(client_->Apply(ConfigMaps(), kNs, "d", applied, "dynamo-operator").ok());
  applied["data"]["k"] = "w";
  auto again = client_->Apply(ConfigMaps(), kNs, "d", applied, "dynamo-operator");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ((*again).At({"data", "k"}).AsString(), "w");

  ASSERT_TRUE(client_->Delete(ConfigMaps(), kNs, "a").ok());
  EXPECT_TRUE(k8s::IsNotFound(client_->Get(ConfigMaps(), kNs, "a").status()));
  EXPECT_TRUE(client_->Delete(ConfigMaps(), kNs, "a").ok());  // already gone: fine

  auto requests = double_->Requests();
  ASSERT_TRUE(requests.ok());
  bool saw_apply = false;
  for (const Value& r : *requests) {
    if (r["contentType"].AsString() == "application/apply-patch+yaml") {
      saw_apply = true;
      EXPECT_NE(r["query"].AsString().find("fieldManager=dynamo-operator"), std::string::npos);
    }
  }
  EXPECT_TRUE(saw_apply);
}

TEST_F(ClientTest, StaleResourceVersionIsAConflict) {
  auto a = client_->Create(ConfigMaps(), kNs, ConfigMap("a"));
  ASSERT_TRUE(a.ok());
  Value stale = *a;
  ASSERT_TRUE(
      client_->MergePatch(ConfigMaps(), kNs, "a", Value::Obj({{"data", Value::Obj({{"x", "1"}})}}))
          .ok());
  stale["data"]["y"] = "2";
  EXPECT_TRUE(IsConflict(client_->Replace(ConfigMaps(), kNs, "a", stale).status()));
  // A merge patch with a resourceVersion is conditional too.
  EXPECT_TRUE(IsConflict(
      client_
          ->MergePatch(
              ConfigMaps(), kNs, "a",
              Value::Obj({{"metadata", Value::Obj({{"resourceVersion",
                                                    stale.At({"metadata", "resourceVersion"})}})}}))
          .status()));
}

TEST_F(ClientTest, UpdateRereadsOnConflict) {
  ASSERT_TRUE(client_->Create(ConfigMaps(), kNs, ConfigMap("a")).ok());
  auto other = double_->NewClient();
  int calls = 0;
  auto updated = client_->Update(ConfigMaps(), kNs, "a", [&](Value& cm) {
    if (++calls == 1) {
      // Someone else writes between our read and our write.
      EXPECT_TRUE(other
                      ->MergePatch(ConfigMaps(), kNs, "a",
                                   Value::Obj({{"data", Value::Obj({{"theirs", "1"}})}}))
                      .ok());
    }
    cm["data"]["ours"] = "1";
    return true;
  });
  ASSERT_TRUE(updated.ok()) << updated.status();
  EXPECT_EQ(calls, 2);
  EXPECT_EQ((*updated).At({"data", "theirs"}).AsString(), "1");
  EXPECT_EQ((*updated).At({"data", "ours"}).AsString(), "1");
}

TEST_F(ClientTest, StatusSubresourceAndGeneration) {
  auto c = client_->Create(DynamoClusters(), kNs, Cluster("dyn", 3));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE((*c)["status"].is_null());  // status is not set on create
  EXPECT_EQ((*c).At({"metadata", "generation"}).AsInt(), 1);

  Value with_status = *c;
  with_status["status"] = Value::Obj({{"replicas", 3}});
  auto s = client_->Replace(DynamoClusters(), kNs, "dyn", with_status, "status");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ((*s).At({"status", "replicas"}).AsInt(), 3);
  EXPECT_EQ((*s).At({"metadata", "generation"}).AsInt(), 1);  // status is not spec

  // The main resource ignores status; a spec change bumps the generation.
  auto p = client_->MergePatch(DynamoClusters(), kNs, "dyn",
                               Value::Obj({{"spec", Value::Obj({{"replicas", 5}})},
                                           {"status", Value::Obj({{"replicas", 0}})}}));
  ASSERT_TRUE(p.ok());
  EXPECT_EQ((*p).At({"status", "replicas"}).AsInt(), 3);
  EXPECT_EQ((*p).At({"metadata", "generation"}).AsInt(), 2);

  auto st = client_->Update(
      DynamoClusters(), kNs, "dyn",
      [](Value& obj) {
        obj["status"]["readyMembers"] = 2;
        return true;
      },
      "status");
  ASSERT_TRUE(st.ok()) << st.status();
  EXPECT_EQ((*st).At({"status", "readyMembers"}).AsInt(), 2);
}

TEST_F(ClientTest, ListFollowsContinueTokens) {
  for (int i = 0; i < 25; ++i)
    ASSERT_TRUE(client_->Create(ConfigMaps(), kNs, ConfigMap(Cat("cm", i))).ok());
  ASSERT_TRUE(double_->Control("DELETE", "/_double/requests").ok());
  ListOptions lo;
  lo.page_size = 10;
  auto list = client_->List(ConfigMaps(), kNs, lo);
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_EQ(list->items.size(), 25u);
  EXPECT_EQ(double_->Requests()->size(), 3u);
}

TEST_F(ClientTest, OwnerReferencesFinalizersAndPropagation) {
  auto owner = client_->Create(ConfigMaps(), kNs, ConfigMap("owner"));
  ASSERT_TRUE(owner.ok());
  const std::string uid = (*owner).At({"metadata", "uid"}).AsString();
  const Value ref = Value::Obj({{"apiVersion", "v1"},
                                {"kind", "ConfigMap"},
                                {"name", "owner"},
                                {"uid", uid},
                                {"controller", true}});
  for (const char* name : {"dep1", "dep2"}) {
    Value dep = ConfigMap(name);
    dep["metadata"]["ownerReferences"] = Value::Arr({ref});
    ASSERT_TRUE(client_->Create(ConfigMaps(), kNs, dep).ok());
  }
  Value held = ConfigMap("held");
  held["metadata"]["ownerReferences"] = Value::Arr({ref});
  held["metadata"]["finalizers"] = Value::Arr({"example.com/hold"});
  ASSERT_TRUE(client_->Create(ConfigMaps(), kNs, held).ok());

  ASSERT_TRUE(client_->Delete(ConfigMaps(), kNs, "owner", "Background").ok());
  EXPECT_TRUE(k8s::IsNotFound(client_->Get(ConfigMaps(), kNs, "dep1").status()));
  EXPECT_TRUE(k8s::IsNotFound(client_->Get(ConfigMaps(), kNs, "dep2").status()));
  auto h = client_->Get(ConfigMaps(), kNs, "held");
  ASSERT_TRUE(h.ok());  // a finalizer holds it, marked for deletion
  EXPECT_FALSE((*h).At({"metadata", "deletionTimestamp"}).is_null());
  ASSERT_TRUE(client_
                  ->MergePatch(ConfigMaps(), kNs, "held",
                               Value::Obj({{"metadata", Value::Obj({{"finalizers", nullptr}})}}))
                  .ok());
  EXPECT_TRUE(k8s::IsNotFound(client_->Get(ConfigMaps(), kNs, "held").status()));

  // Orphan keeps dependents and drops the reference.
  owner = client_->Create(ConfigMaps(), kNs, ConfigMap("owner2"));
  Value dep = ConfigMap("dep3");
  dep["metadata"]["ownerReferences"] =
      Value::Arr({Value::Obj({{"apiVersion", "v1"},
                              {"kind", "ConfigMap"},
                              {"name", "owner2"},
                              {"uid", (*owner).At({"metadata", "uid"})}})});
  ASSERT_TRUE(client_->Create(ConfigMaps(), kNs, dep).ok());
  ASSERT_TRUE(client_->Delete(ConfigMaps(), kNs, "owner2", "Orphan").ok());
  auto orphan = client_->Get(ConfigMaps(), kNs, "dep3");
  ASSERT_TRUE(orphan.ok());
  EXPECT_TRUE((*orphan).At({"metadata", "ownerReferences"}).is_null());

  // A uid precondition that does not match is a conflict.
  EXPECT_TRUE(IsConflict(client_->Delete(ConfigMaps(), kNs, "dep3", "Background", "wrong-uid")));
}

TEST_F(ClientTest, WatchListsThenWatchesFromTheListVersionWithBookmarks) {
  ASSERT_TRUE(double_->Configure(Value::Obj({{"bookmark_interval_s", 0.2}})).ok());
  ASSERT_TRUE(client_->Create(ConfigMaps(), kNs, ConfigMap("before")).ok());
  std::atomic<int> added{0};
  ReflectorOptions ro;
  ro.ns = kNs;
  Reflector r(client_.get(), ConfigMaps(), ro, [&](std::string_view type, const Value&) {
    if (type == "ADDED") ++added;
  });
  Background run([&](Cancellation* cancel) { r.Run(cancel); });
  ASSERT_TRUE(WaitFor([&] { return r.synced(); }));
  ASSERT_TRUE(client_->Create(ConfigMaps(), kNs, ConfigMap("after")).ok());
  ASSERT_TRUE(WaitFor([&] { return r.Get(kNs, "after").has_value(); }));
  ASSERT_TRUE(WaitFor([&] { return r.stats().bookmarks >= 2; }));
  run.Stop();
  EXPECT_EQ(added.load(), 2);
  EXPECT_EQ(r.stats().lists, 1);

  auto requests = double_->Requests();
  ASSERT_TRUE(requests.ok());
  std::string list_rv;
  bool watched = false;
  for (const Value& q : *requests) {
    const std::string& query = q["query"].AsString();
    if (q["path"].AsString() != "/api/v1/namespaces/db/configmaps") continue;
    if (query.find("watch=true") == std::string::npos) {
      list_rv = "listed";
    } else {
      EXPECT_EQ(list_rv, "listed") << "watched before listing";
      EXPECT_NE(query.find("allowWatchBookmarks=true"), std::string::npos);
      EXPECT_NE(query.find("resourceVersion="), std::string::npos);
      EXPECT_EQ(query.find("sendInitialEvents"), std::string::npos);
      watched = true;
    }
  }
  EXPECT_TRUE(watched);
}

TEST_F(ClientTest, TinyAndCoalescedChunksDecodeToTheSameEvents) {
  for (const bool coalesce : {false, true}) {
    ASSERT_TRUE(double_->Configure(Value::Obj({{"split_max", 3}, {"coalesce", coalesce}})).ok());
    ReflectorOptions ro;
    ro.ns = kNs;
    std::atomic<int> events{0};
    Reflector r(client_.get(), ConfigMaps(), ro, [&](std::string_view, const Value&) { ++events; });
    Background run([&](Cancellation* cancel) { r.Run(cancel); });
    ASSERT_TRUE(WaitFor([&] { return r.synced(); }));
    const int base = events.load();
    for (int i = 0; i < 20; ++i) {
      ASSERT_TRUE(client_->Create(ConfigMaps(), kNs, ConfigMap(Cat("c", coalesce, "-", i))).ok());
    }
    EXPECT_TRUE(WaitFor([&] { return events.load() - base == 20; })) << events.load() - base;
    run.Stop();
    EXPECT_EQ(r.stats().errors, 0);
    EXPECT_EQ(r.Items().size(), client_->List(ConfigMaps(), kNs)->items.size());
  }
}

TEST_F(ClientTest, ScaleSubresource) {
  ASSERT_TRUE(client_->Create(DynamoClusters(), kNs, Cluster("dyn", 3)).ok());
  auto scale = client_->Get(DynamoClusters(), kNs, "dyn/scale");
  ASSERT_TRUE(scale.ok()) << scale.status();
  EXPECT_EQ((*scale)["kind"].AsString(), "Scale");
  EXPECT_EQ((*scale).At({"spec", "replicas"}).AsInt(), 3);
  ASSERT_TRUE(client_
                  ->MergePatch(DynamoClusters(), kNs, "dyn",
                               Value::Obj({{"spec", Value::Obj({{"replicas", 5}})}}), "scale")
                  .ok());
  EXPECT_EQ(client_->Get(DynamoClusters(), kNs, "dyn")->At({"spec", "replicas"}).AsInt(), 5);
}

TEST_F(ClientTest, SendInitialEventsIsRefusedSoClientsListThenWatch) {
  auto http = k8s::NewCppRestHttpClient(double_->url());
  HttpRequest req;
  req.path = "/api/v1/namespaces/db/configmaps";
  req.query = {
      {"watch", "true"}, {"sendInitialEvents", "true"}, {"resourceVersionMatch", "NotOlderThan"}};
  auto resp = http->Send(req);
  ASSERT_TRUE(resp.ok());
  EXPECT_EQ(resp->status, 400);
}

// Both forms of "resourceVersion too old" make the reflector re-list, and an
// object deleted while it could not watch is reported DELETED.
void RelistOnGone(KubeDouble* d, Client* client, const std::string& form) {
  ASSERT_TRUE(d->Configure(Value::Obj({{"gone_form", form}})).ok());
  ASSERT_TRUE(client->Create(ConfigMaps(), kNs, ConfigMap("doomed")).ok());
  std::atomic<int> deleted{0};
  ReflectorOptions ro;
  ro.ns = kNs;
  ro.backoff_initial_ms = 100;
  Reflector r(client, ConfigMaps(), ro, [&](std::string_view type, const Value& obj) {
    if (type == "DELETED" && obj.At({"metadata", "name"}).AsString() == "doomed") ++deleted;
  });
  Background run([&](Cancellation* cancel) { r.Run(cancel); });
  ASSERT_TRUE(WaitFor([&] { return r.synced() && r.stats().watches == 0; }));
  // The next three watch attempts fail; meanwhile the object goes and the
  // history is compacted.
  ASSERT_TRUE(
      d
          ->InjectFault(Value::Obj(
              {{"method", "GET"}, {"query_contains", "watch=true"}, {"status", 500}, {"count", 3}}))
          .ok());
  ASSERT_TRUE(d->ExpireWatches("close").ok());
  ASSERT_TRUE(WaitFor([&] { return r.stats().errors >= 1; }));
  ASSERT_TRUE(client->Delete(ConfigMaps(), kNs, "doomed").ok());
  ASSERT_TRUE(client->Create(ConfigMaps(), kNs, ConfigMap("newer")).ok());
  ASSERT_TRUE(d->Compact().ok());
  ASSERT_TRUE(WaitFor([&] { return r.stats().lists >= 2; }));
  ASSERT_TRUE(WaitFor([&] { return r.Get(kNs, "newer").has_value(); }));
  EXPECT_FALSE(r.Get(kNs, "doomed").has_value());
  EXPECT_EQ(deleted.load(), 1);
  EXPECT_GE(r.stats().gone, 1);

  // The in-stream expiry of a live watch.
  // Right after its re-list the reflector may not be watching yet, and an
  // expiry then finds no watch to end: expire again until one was ended.
  const int lists = r.stats().lists;
  ASSERT_TRUE(WaitFor([&] {
    return d->ExpireWatches("stream").ok() &&
           WaitFor([&] { return r.stats().lists > lists; }, 500);
  }));
  ASSERT_TRUE(client->Create(ConfigMaps(), kNs, ConfigMap("latest")).ok());
  EXPECT_TRUE(WaitFor([&] { return r.Get(kNs, "latest").has_value(); }));
}

TEST_F(ClientTest, RelistOnHttp410) { RelistOnGone(double_.get(), client_.get(), "http"); }
TEST_F(ClientTest, RelistOnInStream410) { RelistOnGone(double_.get(), client_.get(), "stream"); }

TEST_F(ClientTest, ReconnectsWithCappedExponentialBackoff) {
  ReflectorOptions ro;
  ro.ns = kNs;
  ro.backoff_initial_ms = 100;
  ro.backoff_max_ms = 400;
  Reflector r(client_.get(), ConfigMaps(), ro, [](std::string_view, const Value&) {});
  ASSERT_TRUE(
      double_
          ->InjectFault(Value::Obj(
              {{"method", "GET"}, {"path_contains", "configmaps"}, {"status", 503}, {"count", 6}}))
          .ok());
  ASSERT_TRUE(double_->Control("DELETE", "/_double/requests").ok());
  Background run([&](Cancellation* cancel) { r.Run(cancel); });
  ASSERT_TRUE(WaitFor([&] { return r.synced(); }));
  run.Stop();
  auto requests = double_->Requests();
  ASSERT_TRUE(requests.ok());
  ASSERT_GE(requests->size(), 7u);
  std::vector<double> gaps_ms;
  for (size_t i = 1; i < 7; ++i) {
    gaps_ms.push_back(((*requests)[i]["time"].AsDouble() - (*requests)[i - 1]["time"].AsDouble()) *
                      1000);
  }
  // 100, 200, 400, 400, 400, 400 ms (capped), give or take scheduling.
  EXPECT_GE(gaps_ms[0], 90);
  EXPECT_GE(gaps_ms[1], 190);
  EXPECT_GE(gaps_ms[2], 390);
  for (size_t i = 3; i < gaps_ms.size(); ++i) {
    EXPECT_GE(gaps_ms[i], 390);
    EXPECT_LT(gaps_ms[i], 1000) << "backoff not capped";
  }
  EXPECT_EQ(r.stats().errors, 6);
}

TEST_F(ClientTest, CancelEndsAQuietWatchPromptly) {
  ReflectorOptions ro;
  ro.ns = kNs;
  Reflector r(client_.get(), ConfigMaps(), ro, [](std::string_view, const Value&) {});
  Background run([&](Cancellation* cancel) { r.Run(cancel); });
  ASSERT_TRUE(WaitFor([&] { return r.synced(); }));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const auto start = std::chrono::steady_clock::now();
  run.Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
}

TEST_F(ClientTest, LeaseHandoffBetweenTwoCandidates) {
  ManualClock clock_a;
  ManualClock clock_b;
  auto client_b = double_->NewClient();
  LeaderElectionOptions oa{kNs, "dynamo-operator", "a", 15, 10, 2};
  LeaderElectionOptions ob{kNs, "dynamo-operator", "b", 15, 10, 2};
  LeaderElector a(client_.get(), oa, clock_a);
  LeaderElector b(client_b.get(), ob, clock_b);

  EXPECT_EQ(a.TryAcquireOrRenew(), LeaderElector::Attempt::kLeading);
  EXPECT_EQ(b.TryAcquireOrRenew(), LeaderElector::Attempt::kHeldByOther);
  // a renews: b keeps seeing a fresh record, whatever b's clock says.
  clock_a.ms += 5000;
  clock_b.ms += 14000;
  EXPECT_EQ(a.TryAcquireOrRenew(), LeaderElector::Attempt::kLeading);
  clock_b.ms += 14000;
  EXPECT_EQ(b.TryAcquireOrRenew(), LeaderElector::Attempt::kHeldByOther);
  // a stops renewing: b takes over once the lease duration has passed on b's clock.
  clock_b.ms += 14000;
  EXPECT_EQ(b.TryAcquireOrRenew(), LeaderElector::Attempt::kHeldByOther);
  clock_b.ms += 2000;
  EXPECT_EQ(b.TryAcquireOrRenew(), LeaderElector::Attempt::kLeading);
  auto lease = client_->Get(Leases(), kNs, "dynamo-operator");
  ASSERT_TRUE(lease.ok());
  EXPECT_EQ((*lease).At({"spec", "holderIdentity"}).AsString(), "b");
  EXPECT_EQ((*lease).At({"spec", "leaseTransitions"}).AsInt(), 1);
  // a comes back: it sees b and stops leading.
  clock_a.ms += 1000;
  EXPECT_EQ(a.TryAcquireOrRenew(), LeaderElector::Attempt::kHeldByOther);
  EXPECT_FALSE(a.leading());
  // b releases: a takes it at once.
  b.Release();
  EXPECT_FALSE(b.leading());
  EXPECT_EQ(a.TryAcquireOrRenew(), LeaderElector::Attempt::kLeading);
  EXPECT_EQ(
      client_->Get(Leases(), kNs, "dynamo-operator")->At({"spec", "holderIdentity"}).AsString(),
      "a");
}

TEST_F(ClientTest, LeaseRaceHasOneWinner) {
  // Both read the same expired lease, both write: the resourceVersion makes
  // one of them lose with 409.
  Value lease =
      Value::Obj({{"apiVersion", "coordination.k8s.io/v1"},
                  {"kind", "Lease"},
                  {"metadata", Value::Obj({{"name", "l"}})},
                  {"spec", Value::Obj({{"holderIdentity", ""}, {"leaseDurationSeconds", 15}})}});
  ASSERT_TRUE(client_->Create(Leases(), kNs, lease).ok());
  const Value seen = *client_->Get(Leases(), kNs, "l");
  Value mine = seen;
  mine["spec"]["holderIdentity"] = "a";
  Value theirs = seen;
  theirs["spec"]["holderIdentity"] = "b";
  EXPECT_TRUE(client_->Replace(Leases(), kNs, "l", mine).ok());
  EXPECT_TRUE(IsConflict(client_->Replace(Leases(), kNs, "l", theirs).status()));
}

TEST_F(ClientTest, TwoRunningElectorsNeverLeadTogether) {
  auto client_b = double_->NewClient();
  LeaderElectionOptions oa{kNs, "op", "a", 2, 1, 0};
  LeaderElectionOptions ob{kNs, "op", "b", 2, 1, 0};
  oa.retry_period_s = ob.retry_period_s = 1;
  LeaderElector a(client_.get(), oa);
  LeaderElector b(client_b.get(), ob);
  std::atomic<int> a_started{0};
  std::atomic<int> b_started{0};
  Background run_a([&](Cancellation* cancel) { a.Run(cancel, [&] { ++a_started; }, [] {}); });
  ASSERT_TRUE(WaitFor([&] { return a.leading(); }));
  Background run_b([&](Cancellation* cancel) { b.Run(cancel, [&] { ++b_started; }, [] {}); });
  for (int i = 0; i < 40; ++i) {
    EXPECT_FALSE(a.leading() && b.leading());
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(b_started.load(), 0);
  const auto start = std::chrono::steady_clock::now();
  run_a.Stop();  // a shuts down and releases: b takes over within a retry period
  EXPECT_FALSE(a.leading());
  ASSERT_TRUE(WaitFor([&] { return b.leading(); }, 5000));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(2500));
  run_b.Stop();
  EXPECT_EQ(a_started.load(), 1);
  EXPECT_EQ(b_started.load(), 1);
}

TEST_F(ClientTest, RepeatedEventsAreCountedNotMultiplied) {
  auto owner = client_->Create(DynamoClusters(), kNs, Cluster("dyn", 3));
  ASSERT_TRUE(owner.ok());
  EventRecorder events(client_.get(), "dynamo-operator", "test");
  ASSERT_TRUE(events.Record(*owner, "Normal", "ScalingUp", "3 -> 5").ok());
  ASSERT_TRUE(events.Record(*owner, "Normal", "ScalingUp", "3 -> 5").ok());
  ASSERT_TRUE(events.Record(*owner, "Warning", "ScaleDownRefused", "no").ok());
  auto list = client_->List(Events(), kNs);
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->items.size(), 2u);
  for (const Value& e : list->items) {
    EXPECT_EQ(e.At({"involvedObject", "kind"}).AsString(), "DynamoCluster");
    EXPECT_EQ(e.At({"involvedObject", "uid"}), (*owner).At({"metadata", "uid"}));
    if (e["reason"].AsString() == "ScalingUp") {
      EXPECT_EQ(e["count"].AsInt(), 2);
    }
  }
}

}  // namespace
}  // namespace dynamo::k8s
