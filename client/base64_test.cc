#include "dynamo/client/base64.h"

#include <random>

#include "gtest/gtest.h"

namespace dynamo::client {
namespace {

TEST(Base64Test, Rfc4648Vectors) {
  const std::pair<const char*, const char*> vectors[] = {
      {"", ""},
      {"f", "Zg=="},
      {"fo", "Zm8="},
      {"foo", "Zm9v"},
      {"foob", "Zm9vYg=="},
      {"fooba", "Zm9vYmE="},
      {"foobar", "Zm9vYmFy"},
  };
  for (const auto& [plain, encoded] : vectors) {
    EXPECT_EQ(Base64Encode(plain), encoded);
    absl::StatusOr<std::string> back = Base64Decode(encoded);
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(*back, plain);
  }
}

TEST(Base64Test, RoundTripsRandomBytes) {
  std::mt19937 rng(42);
  for (int i = 0; i < 2000; ++i) {
    std::string bytes(rng() % 70, '\0');
    for (char& c : bytes) c = static_cast<char>(rng());
    absl::StatusOr<std::string> back = Base64Decode(Base64Encode(bytes));
    ASSERT_TRUE(back.ok()) << back.status();
    ASSERT_EQ(*back, bytes);
  }
}

TEST(Base64Test, AcceptsUrlSafeAndUnpadded) {
  EXPECT_EQ(*Base64Decode("Zm8"), "fo");
  EXPECT_EQ(*Base64Decode("Zg"), "f");
  EXPECT_EQ(*Base64Decode("-_8="), *Base64Decode("+/8="));
}

TEST(Base64Test, RefusesGarbage) {
  for (const char* bad :
       {"Zm9v!", "Z", "Zm9vY", "Zg=", "Zg===", "=Zg=", "Zm=v", "Zh==", "Zm9 v", "Zm9v\n"}) {
    absl::StatusOr<std::string> r = Base64Decode(bad);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    }
  }
}

}  // namespace
}  // namespace dynamo::client
