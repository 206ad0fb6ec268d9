#include "ctl/format.h"

#include "gtest/gtest.h"

namespace dynamo::ctl {
namespace {

TEST(FormatTest, GetShowsValuesSiblingsAndContext) {
  client::GetResult missing;
  missing.context = std::string("\x01\x02", 2);
  EXPECT_EQ(FormatGet(missing), "not found\ncontext: AQI=\n");

  client::GetResult one;
  one.found = true;
  one.siblings = {{"hello world", 1}};
  one.context = "ctx";
  EXPECT_EQ(FormatGet(one), "hello world\ncontext: Y3R4\n");

  client::GetResult two = one;
  two.siblings.push_back({"line\nbreak", 2});
  EXPECT_EQ(FormatGet(two), "2 siblings:\nhello world\n\"line\\nbreak\"\ncontext: Y3R4\n");
}

TEST(FormatTest, PrintableValue) {
  EXPECT_EQ(PrintableValue("plain text"), "plain text");
  EXPECT_EQ(PrintableValue("caf\xc3\xa9"), "caf\xc3\xa9");  // UTF-8 stays as is
  EXPECT_EQ(PrintableValue(std::string("a\0b", 3)), "\"a\\000b\"");
  EXPECT_EQ(PrintableValue("tab\there"), "\"tab\\there\"");
}

TEST(FormatTest, TableAlignsColumns) {
  EXPECT_EQ(FormatTable({{"NODE", "STATE"}, {"n10", "NORMAL"}, {"n2", ""}}),
            "NODE  STATE\n"
            "n10   NORMAL\n"
            "n2\n");
}

TEST(FormatTest, ClusterStatusUsesEachNodesOwnReport) {
  v1::MembersResponse members;
  members.set_ring_version(4);
  for (const char* id : {"n1", "n2"}) {
    v1::Member* m = members.add_members();
    m->set_node_id(id);
    m->set_address(std::string(id) + ":1");
    m->set_state(v1::NODE_STATE_NORMAL);
    m->set_alive(std::string(id) == "n1");
    m->set_owned_partitions(256);
  }
  v1::NodeStatus s1;
  s1.set_node_id("n1");
  s1.set_state(v1::NODE_STATE_LEAVING);
  s1.set_ready(true);
  s1.set_ring_version(4);
  s1.set_owned_partitions(100);
  s1.set_keys(12);
  s1.set_unowned_keys(5);
  s1.add_hints()->set_keys(2);
  s1.add_hints()->set_keys(3);
  s1.set_reaps_owed(7);
  s1.add_reaps_held_by("n2");
  std::map<std::string, absl::StatusOr<v1::NodeStatus>> status;
  status.emplace("n1", s1);
  status.emplace("n2", absl::UnavailableError("n2:1: connection refused"));
  const std::string out = FormatClusterStatus("n1:1", members, status);
  EXPECT_NE(out.find("ring version 4 (as n1:1 sees it), 2 members"), std::string::npos) << out;
  EXPECT_NE(out.find("n1    n1:1     LEAVING  yes    yes    4     100         12    5      5"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("n2    n2:1     NORMAL   no     -      -     256"), std::string::npos) << out;
  EXPECT_NE(out.find("n2: UNAVAILABLE: n2:1: connection refused"), std::string::npos) << out;
  EXPECT_NE(out.find("n1 owes 7, waiting for n2"), std::string::npos) << out;
}

TEST(FormatTest, ClusterStatusShowsARemovedMemberAsRemovedNotUnreachable) {
  v1::MembersResponse members;
  members.set_ring_version(5);
  v1::Member* m = members.add_members();
  m->set_node_id("n3");
  m->set_address("n3:1");
  m->set_state(v1::NODE_STATE_LEFT);
  m->set_removed_by("n1");
  std::map<std::string, absl::StatusOr<v1::NodeStatus>> status;
  const std::string out = FormatClusterStatus("n1:1", members, status);
  EXPECT_NE(out.find("n3    n3:1     REMOVED (by n1)  no     -      -     0"), std::string::npos)
      << out;
  EXPECT_EQ(out.find("unreachable"), std::string::npos) << out;
}

TEST(FormatTest, RingSharesSumToN) {
  v1::TopologyResponse r;
  r.set_ring_version(2);
  r.set_strategy(3);
  r.set_partitions(4);
  r.set_replicas(2);
  const char* owners[] = {"a", "b", "a", "b"};
  for (uint32_t i = 0; i < 4; ++i) {
    v1::RingToken* t = r.add_tokens();
    t->set_token(core::PartitionStart(4, i));
    t->set_node_id(owners[i]);
  }
  for (const char* id : {"a", "b"}) {
    v1::NodeAddress* n = r.add_nodes();
    n->set_node_id(id);
    n->set_address(std::string(id) + ":7");
    n->set_alive(true);
  }
  absl::StatusOr<client::Topology> t = client::TopologyFromResponse(r);
  ASSERT_TRUE(t.ok()) << t.status();
  const std::string out = FormatRing(*t, r);
  EXPECT_NE(out.find("ring version 2, strategy 3 (equal partitions, Q/S per node), 4 partitions, "
                     "N=2, zone-aware no"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("a     a:7      -     yes    2       50.0%    100.0%"), std::string::npos)
      << out;
}

}  // namespace
}  // namespace dynamo::ctl
