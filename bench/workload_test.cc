#include "workload.h"

#include <set>

#include "gtest/gtest.h"

namespace dynamo::bench {
namespace {

TEST(WorkloadTest, MixesFollowTheirProportions) {
  for (const char* name : {"a", "b", "c", "write", "rmw", "f"}) {
    absl::StatusOr<WorkloadSpec> spec = WorkloadByName(name);
    ASSERT_TRUE(spec.ok()) << name;
    EXPECT_NEAR(spec->read + spec->update + spec->rmw, 1.0, 1e-9) << name;
    core::Random rng(1);
    int counts[kOpTypes] = {};
    const int n = 200000;
    for (int i = 0; i < n; ++i) ++counts[static_cast<int>(ChooseOp(*spec, rng))];
    EXPECT_NEAR(counts[0], spec->read * n, 0.01 * n) << name;
    EXPECT_NEAR(counts[1], spec->update * n, 0.01 * n) << name;
    EXPECT_NEAR(counts[3], spec->rmw * n, 0.01 * n) << name;
    EXPECT_EQ(counts[2], 0) << name;  // inserts belong to the load phase
  }
  EXPECT_FALSE(WorkloadByName("z").ok());
}

TEST(WorkloadTest, KeysAreUniqueAndValuesDiffer) {
  std::set<std::string> keys;
  for (uint64_t i = 0; i < 100000; ++i) keys.insert(KeyName(i));
  EXPECT_EQ(keys.size(), 100000u);
  ValueMaker values(1024, 1);
  const std::string a(values.Next());
  const std::string b(values.Next());
  EXPECT_EQ(a.size(), 1024u);
  EXPECT_NE(a, b);
}

}  // namespace
}  // namespace dynamo::bench
