#include "dynamo/server/options.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace dynamo::server {
namespace {

absl::StatusOr<ServerOptions> Parse(const std::vector<std::string>& args) {
  return ParseOptions(args, "", "host");
}

// Every object a node accepts must travel in one message (a read's answer, a
// replica write): the node's bound on a key's values comes from the message
// limit, less the key and a reserve for the rest.
TEST(ServerOptionsTest, TheObjectBoundFollowsTheMessageLimit) {
  absl::StatusOr<ServerOptions> defaults = Parse({});
  ASSERT_TRUE(defaults.ok()) << defaults.status();
  EXPECT_EQ(defaults->grpc_message_bytes_max, size_t{8} << 20);
  EXPECT_LT(defaults->node.object_bytes_max,
            defaults->grpc_message_bytes_max - defaults->node.key_bytes_max);
  EXPECT_GE(defaults->node.object_bytes_max, defaults->node.value_bytes_max);

  absl::StatusOr<ServerOptions> small = Parse({"--grpc-message-bytes-max=2097152"});
  ASSERT_TRUE(small.ok()) << small.status();
  EXPECT_EQ(small->grpc_message_bytes_max, size_t{2} << 20);
  EXPECT_EQ(small->node.object_bytes_max,
            defaults->node.object_bytes_max - (defaults->grpc_message_bytes_max - (2u << 20)))
      << "the same reserve at any limit";
  EXPECT_EQ(core::NodeConfig().object_bytes_max, defaults->node.object_bytes_max)
      << "the core's default is the server's";
}

TEST(ServerOptionsTest, AValueLimitThatNoMessageCarriesIsRefusedWithTheFix) {
  absl::StatusOr<ServerOptions> o = Parse({"--value-bytes-max=16777216"});
  ASSERT_FALSE(o.ok());
  EXPECT_EQ(o.status().code(), absl::StatusCode::kInvalidArgument);
  const std::string message(o.status().message());
  EXPECT_NE(message.find("--value-bytes-max"), std::string::npos) << message;
  EXPECT_NE(message.find("raise --grpc-message-bytes-max to at least"), std::string::npos)
      << message;

  absl::StatusOr<ServerOptions> both =
      Parse({"--value-bytes-max=16777216", "--grpc-message-bytes-max=33554432"});
  ASSERT_TRUE(both.ok()) << both.status();
  EXPECT_GE(both->node.object_bytes_max, both->node.value_bytes_max);

  absl::StatusOr<ServerOptions> tiny = Parse({"--grpc-message-bytes-max=65536"});
  ASSERT_FALSE(tiny.ok());
  EXPECT_NE(std::string(tiny.status().message()).find("grpc-message-bytes-max"),
            std::string::npos)
      << tiny.status();
}

// Off unless asked for: a delay adds to every durable write's latency.
// A node listening on "any free port" would advertise port 0, where no peer
// or client can reach it; the same for an advertised address or a seed.
TEST(ServerOptionsTest, AnAddressOthersDialNeedsARealPort) {
  for (const std::string flag : {"--listen", "--advertise", "--seeds"}) {
    absl::StatusOr<ServerOptions> zero = Parse({flag + "=127.0.0.1:0"});
    ASSERT_FALSE(zero.ok()) << flag;
    EXPECT_EQ(zero.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(zero.status().message().find("other than 0"), std::string::npos) << zero.status();
  }
  absl::StatusOr<ServerOptions> seeds = Parse({"--seeds=a:7000,b:0"});
  EXPECT_FALSE(seeds.ok()) << "every seed is checked";
  // Where nobody dials the port, any free one will do.
  EXPECT_TRUE(Parse({"--http=127.0.0.1:0"}).ok());
}

// "--zone --seeds=a:1" is a forgotten value, not a zone named "--seeds=a:1"
// (and no seeds).
TEST(ServerOptionsTest, AFlagIsNeverTheValueOfTheFlagBeforeIt) {
  absl::StatusOr<ServerOptions> o = Parse({"--zone", "--seeds=a:7000"});
  ASSERT_FALSE(o.ok());
  EXPECT_NE(o.status().message().find("--zone needs a value"), std::string::npos) << o.status();
  absl::StatusOr<ServerOptions> spaced = Parse({"--zone", "eu-1", "--seeds", "a:7000"});
  ASSERT_TRUE(spaced.ok()) << spaced.status();
  EXPECT_EQ(spaced->node.zone, "eu-1");
  EXPECT_EQ(spaced->node.seeds, std::vector<std::string>{"a:7000"});
}

TEST(ServerOptionsTest, TheSyncDelayIsOffByDefaultAndBounded) {
  absl::StatusOr<ServerOptions> defaults = Parse({});
  ASSERT_TRUE(defaults.ok()) << defaults.status();
  EXPECT_EQ(defaults->sync_delay_us, 0);

  absl::StatusOr<ServerOptions> set = Parse({"--sync-delay-us=2000"});
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ(set->sync_delay_us, 2000);

  for (const char* bad : {"--sync-delay-us=-1", "--sync-delay-us=100001", "--sync-delay-us=2ms"}) {
    absl::StatusOr<ServerOptions> o = Parse({bad});
    ASSERT_FALSE(o.ok()) << bad;
    EXPECT_EQ(o.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(std::string(o.status().message()).find("sync-delay-us"), std::string::npos)
        << o.status();
  }
}

// A buffered node's writes wait for no sync: a delay there is a mistake to
// report, not a setting to ignore; 0 (the default) stays accepted.
TEST(ServerOptionsTest, ASyncDelayOnABufferedNodeIsRefused) {
  absl::StatusOr<ServerOptions> o = Parse({"--durability=buffered", "--sync-delay-us=500"});
  ASSERT_FALSE(o.ok());
  EXPECT_EQ(o.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(o.status().message()).find("durable nodes only"), std::string::npos)
      << o.status();
  EXPECT_TRUE(Parse({"--durability=buffered", "--sync-delay-us=0"}).ok());
  EXPECT_TRUE(Parse({"--durability=durable", "--sync-delay-us=500"}).ok());
}

}  // namespace
}  // namespace dynamo::server
