#include "history.h"

#include <gtest/gtest.h>

#include <string>

namespace dynamo::sim {
namespace {

// Contexts here are "actor:n": they cover that actor's versions up to n.
bool Covers(const std::string&, const std::string& context, const std::string& actor,
            uint64_t counter) {
  const size_t colon = context.find(':');
  return context.substr(0, colon) == actor && counter <= std::stoull(context.substr(colon + 1));
}

// The resurrection check goes by versions, not values: a write applied twice
// (a retried forward) is two versions of one value, and a write that read one
// of them replaced that one only.
TEST(HistoryTest, AVersionAnAcknowledgedWriteOrDeleteReplacedMayNotComeBack) {
  History history;
  history.RecordWrite("k", "a", {});
  history.MarkAcked("a");
  history.RecordWrite("k", "b", {"a"}, "n1:1");
  history.MarkAcked("b");
  const size_t del = history.RecordDelete("k", {"b"}, "n3:1");

  const std::map<std::string, std::vector<std::string>> values = {{"k", {"a", "b"}}};
  std::map<std::string, std::vector<FinalVersion>> versions = {
      {"k", {{"a", "n2", 1}, {"b", "n3", 1}}}};  // a's second version; b
  CheckReport report = history.Check(values);
  history.CheckVersions(versions, Covers, &report);
  EXPECT_EQ(report.resurrected, 0u) << "the version b replaced is gone; the delete may not have landed";
  EXPECT_TRUE(report.ok());

  history.MarkDeleteAcked(del);
  report = history.Check(values);
  history.CheckVersions(versions, Covers, &report);
  EXPECT_EQ(report.resurrected, 1u) << "b came back after an acknowledged delete of it";

  versions["k"].push_back({"a", "n1", 1});  // the version b replaced
  report = history.Check(values);
  history.CheckVersions(versions, Covers, &report);
  EXPECT_EQ(report.resurrected, 2u);
  EXPECT_FALSE(report.ok());
  ASSERT_FALSE(report.problems.empty());
  EXPECT_NE(report.problems[0].find("'a' (n1:1)"), std::string::npos) << report.problems[0];
}

}  // namespace
}  // namespace dynamo::sim
