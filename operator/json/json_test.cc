#include "dynamo/json/json.h"

#include <gtest/gtest.h>

namespace dynamo::json {
namespace {

TEST(JsonTest, ParsesAndDumpsEveryType) {
  const auto v = Parse(R"({"a":1,"b":-2.5,"c":"x\"y\\n","d":[true,false,null],"e":{}})");
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ((*v)["a"].AsInt(), 1);
  EXPECT_TRUE((*v)["a"].is_int());
  EXPECT_DOUBLE_EQ((*v)["b"].AsDouble(), -2.5);
  EXPECT_EQ((*v)["c"].AsString(), "x\"y\\n");
  EXPECT_EQ((*v)["d"].size(), 3u);
  EXPECT_TRUE((*v)["d"].AsArray()[2].is_null());
  EXPECT_TRUE((*v)["e"].is_object());
  const auto again = Parse(v->Dump());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *v);
}

TEST(JsonTest, UnicodeEscapesBecomeUtf8) {
  const auto v = Parse(R"("\u00e9\ud83d\ude00")");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->AsString(), "\xc3\xa9\xf0\x9f\x98\x80");
  EXPECT_EQ(Value("\x01").Dump(), "\"\\u0001\"");
}

TEST(JsonTest, RefusesMalformedText) {
  for (const char* bad :
       {"", "{", "[1,]", "{\"a\" 1}", "tru", "\"abc", "1 2", "{\"a\":1,}", "[\"\\x\"]", "01x"}) {
    EXPECT_FALSE(Parse(bad).ok()) << bad;
  }
  std::string deep(kDepthMax + 5, '[');
  EXPECT_FALSE(Parse(deep).ok());
}

TEST(JsonTest, DoublesStayDoubles) {
  EXPECT_EQ(Value(2.0).Dump(), "2.0");
  EXPECT_TRUE(Parse(Value(2.0).Dump())->is_number());
  EXPECT_EQ(Value(2.0), Value(2));
  EXPECT_EQ(Value(0.3).Dump(), "0.3");
}

TEST(JsonTest, MissingMembersReadAsNull) {
  const Value v = Value::Obj({{"a", Value::Obj({{"b", 3}})}});
  EXPECT_EQ(v.At({"a", "b"}).AsInt(), 3);
  EXPECT_TRUE(v.At({"a", "x", "y"}).is_null());
  EXPECT_EQ(v["nope"].AsString(), "");
  EXPECT_EQ(v["a"].AsInt(7), 7);
}

TEST(JsonTest, MergePatchFollowsRfc7386) {
  // The examples of RFC 7386, section 3.
  const Value target = *Parse(R"({"a":"b","c":{"d":"e","f":"g"}})");
  const Value patch = *Parse(R"({"a":"z","c":{"f":null}})");
  EXPECT_EQ(MergePatch(target, patch), *Parse(R"({"a":"z","c":{"d":"e"}})"));
  EXPECT_EQ(MergePatch(*Parse(R"({"a":["b"]})"), *Parse(R"({"a":"c"})")), *Parse(R"({"a":"c"})"));
  EXPECT_EQ(MergePatch(*Parse(R"({"a":{"b":"c"}})"), *Parse(R"({"a":{"b":"d","c":null}})")),
            *Parse(R"({"a":{"b":"d"}})"));
  EXPECT_EQ(MergePatch(*Parse(R"(["a","b"])"), *Parse(R"(["c","d"])")), *Parse(R"(["c","d"])"));
  EXPECT_EQ(MergePatch(*Parse(R"({"e":null})"), *Parse(R"({"a":1})")),
            *Parse(R"({"e":null,"a":1})"));
  EXPECT_EQ(MergePatch(*Parse(R"({})"), *Parse(R"({"a":{"bb":{"ccc":null}}})")),
            *Parse(R"({"a":{"bb":{}}})"));
}

TEST(JsonTest, SubsetIgnoresServerDefaults) {
  const Value desired = *Parse(R"({"spec":{"ports":[{"port":7000}],"x":{}}})");
  const Value observed =
      *Parse(R"({"spec":{"ports":[{"port":7000,"protocol":"TCP"}],"clusterIP":"1.2.3.4"}})");
  EXPECT_TRUE(IsSubset(desired, observed));
  EXPECT_FALSE(IsSubset(*Parse(R"({"spec":{"ports":[{"port":7001}]}})"), observed));
  EXPECT_FALSE(IsSubset(*Parse(R"({"spec":{"ports":[{"port":7000},{"port":1}]}})"), observed));
}

}  // namespace
}  // namespace dynamo::json
