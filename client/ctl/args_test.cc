#include "ctl/args.h"

#include "gtest/gtest.h"

namespace dynamo::ctl {
namespace {

absl::StatusOr<Invocation> Parse(std::vector<std::string> args, const char* env = nullptr) {
  return ParseCommandLine(args, env);
}

void ExpectUsageError(std::vector<std::string> args, const std::string& fragment) {
  absl::StatusOr<Invocation> inv = Parse(args);
  ASSERT_FALSE(inv.ok()) << fragment;
  EXPECT_EQ(inv.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(inv.status().message()).find(fragment), std::string::npos)
      << inv.status().message();
}

TEST(ArgsTest, GetWithQuorumFlagsInEverySpelling) {
  absl::StatusOr<Invocation> inv = Parse({"get", "k1", "--n", "3", "--r=1"});
  ASSERT_TRUE(inv.ok()) << inv.status();
  EXPECT_EQ(inv->command->name, "get");
  EXPECT_EQ(inv->positional, std::vector<std::string>{"k1"});
  EXPECT_EQ(inv->Flag("n"), "3");
  EXPECT_EQ(inv->Flag("r"), "1");
  EXPECT_EQ(inv->addr, kDefaultAddr);
  EXPECT_EQ(inv->timeout_ms, kDefaultTimeoutMs);
  EXPECT_EQ(*FlagUint(*inv, "n", 0, 1, 64), 3u);
  EXPECT_EQ(*FlagUint(*inv, "w", 7, 1, 64), 7u);  // absent: the fallback
}

TEST(ArgsTest, GlobalFlagsBeforeOrAfterTheCommandAndTheEnvironment) {
  absl::StatusOr<Invocation> inv =
      Parse({"--addr", "10.0.0.1:7000", "put", "k", "v", "--timeout-ms=250"}, "ignored:1");
  ASSERT_TRUE(inv.ok()) << inv.status();
  EXPECT_EQ(inv->addr, "10.0.0.1:7000");
  EXPECT_EQ(inv->timeout_ms, 250);
  EXPECT_EQ(inv->positional, (std::vector<std::string>{"k", "v"}));

  inv = Parse({"ring"}, "192.168.1.5:7001");
  ASSERT_TRUE(inv.ok());
  EXPECT_EQ(inv->addr, "192.168.1.5:7001");
  inv = Parse({"ring"}, "");
  EXPECT_EQ(inv->addr, kDefaultAddr);
  inv = Parse({"ring", "--addr=h:1"}, "e:2");
  EXPECT_EQ(inv->addr, "h:1");
}

TEST(ArgsTest, TwoWordCommandsAndShortAliases) {
  absl::StatusOr<Invocation> inv =
      Parse({"dev", "up", "-n", "5", "--dir", "/tmp/x", "--storage=memory"});
  ASSERT_TRUE(inv.ok()) << inv.status();
  EXPECT_EQ(inv->command->name, "dev up");
  EXPECT_EQ(inv->Flag("nodes"), "5");
  EXPECT_EQ(inv->Flag("dir"), "/tmp/x");
  EXPECT_EQ(inv->Flag("storage"), "memory");

  inv = Parse({"--addr", "a:1", "cluster", "status"});
  ASSERT_TRUE(inv.ok()) << inv.status();
  EXPECT_EQ(inv->command->name, "cluster status");

  inv = Parse({"dev", "down", "--wipe"});
  ASSERT_TRUE(inv.ok()) << inv.status();
  EXPECT_EQ(inv->Flag("wipe"), "true");
  EXPECT_FALSE(inv->Has("dir"));
}

TEST(ArgsTest, JoinTakesAZone) {
  absl::StatusOr<Invocation> inv = Parse({"join", "--node", "h:1", "--zone", "eu-1b", "--wait"});
  ASSERT_TRUE(inv.ok()) << inv.status();
  EXPECT_EQ(inv->Flag("zone"), "eu-1b");
  EXPECT_NE(CommandUsage(*inv->command).find("--zone Z"), std::string::npos);
}

TEST(ArgsTest, ValuesStartingWithADashGoAfterDoubleDash) {
  absl::StatusOr<Invocation> inv = Parse({"put", "k", "--context", "AAE=", "--", "-5"});
  ASSERT_TRUE(inv.ok()) << inv.status();
  EXPECT_EQ(inv->positional, (std::vector<std::string>{"k", "-5"}));
  EXPECT_EQ(inv->Flag("context"), "AAE=");
  inv = Parse({"put", "k", "-"});  // "-": read the value from stdin
  ASSERT_TRUE(inv.ok()) << inv.status();
  EXPECT_EQ(inv->positional[1], "-");
}

TEST(ArgsTest, Help) {
  absl::StatusOr<Invocation> inv = Parse({"--help"});
  ASSERT_TRUE(inv.ok());
  EXPECT_TRUE(inv->help);
  EXPECT_EQ(inv->command, nullptr);
  inv = Parse({"get", "--help"});  // no KEY needed for help
  ASSERT_TRUE(inv.ok());
  EXPECT_TRUE(inv->help);
  EXPECT_EQ(inv->command->name, "get");
  inv = Parse({"help", "dev", "up"});
  ASSERT_TRUE(inv.ok()) << inv.status();
  EXPECT_TRUE(inv->help);
  EXPECT_EQ(inv->command->name, "dev up");
  inv = Parse({"-h"});
  ASSERT_TRUE(inv.ok());
  EXPECT_TRUE(inv->help);
  for (const CommandSpec& c : Commands()) {
    const std::string usage = CommandUsage(c);
    EXPECT_NE(usage.find("usage: dynamoctl " + c.name), std::string::npos);
    EXPECT_NE(TopLevelUsage().find(c.name), std::string::npos);
  }
}

TEST(ArgsTest, UsageErrors) {
  ExpectUsageError({}, "no command");
  ExpectUsageError({"frobnicate"}, "unknown command 'frobnicate'");
  ExpectUsageError({"dev"}, "dev up");
  ExpectUsageError({"dev", "sideways"}, "unknown command 'dev sideways'");
  ExpectUsageError({"get"}, "missing arguments for 'get'");
  ExpectUsageError({"get", "a", "b"}, "too many arguments");
  ExpectUsageError({"get", "k", "--w", "2"}, "unknown flag --w for 'get'");
  ExpectUsageError({"get", "k", "--n"}, "--n needs a value");
  ExpectUsageError({"--n", "2", "get", "k"}, "before the command");
  ExpectUsageError({"dev", "down", "--wipe=yes"}, "takes no value");
  ExpectUsageError({"get", "k", "--n", "1", "--n", "2"}, "given twice");
  ExpectUsageError({"get", "k", "--timeout-ms", "soon"}, "--timeout-ms must be a whole number");
  ExpectUsageError({"get", "k", "--timeout-ms", "0"}, "--timeout-ms must be in");
  ExpectUsageError({"put", "k", "v", "--addr="}, "--addr needs");
}

TEST(ArgsTest, NumbersAreCheckedWithTheirRange) {
  EXPECT_EQ(*ParseUint("42", "x", 0, 100), 42u);
  EXPECT_FALSE(ParseUint("", "x", 0, 100).ok());
  EXPECT_FALSE(ParseUint("-1", "x", 0, 100).ok());
  EXPECT_FALSE(ParseUint("4x", "x", 0, 100).ok());
  EXPECT_FALSE(ParseUint("101", "x", 0, 100).ok());
  EXPECT_FALSE(ParseUint("99999999999999999999999", "x", 0, 100).ok());
  absl::StatusOr<Invocation> inv = Parse({"get", "k", "--n", "0"});
  ASSERT_TRUE(inv.ok());
  absl::StatusOr<uint64_t> n = FlagUint(*inv, "n", 0, 1, 64);
  ASSERT_FALSE(n.ok());
  EXPECT_NE(std::string(n.status().message()).find("--n must be in [1, 64]"), std::string::npos);
}

}  // namespace
}  // namespace dynamo::ctl
