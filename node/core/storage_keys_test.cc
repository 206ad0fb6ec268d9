#include "dynamo/core/storage_keys.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

#include "dynamo/core/random.h"

namespace dynamo::core {
namespace {

// Random bytes, including 0x00 and 0xff, which are the edge cases of an
// ordered byte encoding.
std::string RandomBytes(Random& rng, size_t max_len) {
  std::string s(rng.Uniform(max_len + 1), '\0');
  for (char& c : s) {
    switch (rng.Uniform(4)) {
      case 0:
        c = '\0';
        break;
      case 1:
        c = static_cast<char>(0xff);
        break;
      default:
        c = static_cast<char>(rng.Uniform(256));
        break;
    }
  }
  return s;
}

uint64_t RandomPosition(Random& rng) {
  switch (rng.Uniform(4)) {
    case 0:
      return 0;
    case 1:
      return ~0ULL;
    case 2:
      return rng.Uniform(300);  // near neighbours share high bytes
    default:
      return rng.Next();
  }
}

// Bytewise (memcmp) order, which is what the storage engines promise.
bool BytewiseLess(const std::string& a, const std::string& b) {
  return std::lexicographical_compare(a.begin(), a.end(), b.begin(), b.end(), [](char x, char y) {
    return static_cast<unsigned char>(x) < static_cast<unsigned char>(y);
  });
}

TEST(StorageKeysTest, BigEndianRoundTripsAndKeepsNumericOrder) {
  Random rng(1);
  for (int i = 0; i < 2000; ++i) {
    const uint64_t a = RandomPosition(rng), b = RandomPosition(rng);
    const std::string ea = EncodeBigEndian64(a), eb = EncodeBigEndian64(b);
    ASSERT_EQ(ea.size(), 8u);
    EXPECT_EQ(DecodeBigEndian64(ea), a);
    EXPECT_EQ(BytewiseLess(ea, eb), a < b) << a << " vs " << b;
  }
  // Most significant byte first.
  EXPECT_EQ(EncodeBigEndian64(0x0102030405060708ULL),
            std::string("\x01\x02\x03\x04\x05\x06\x07\x08"));
}

TEST(StorageKeysTest, DataKeyRoundTrips) {
  Random rng(2);
  for (int i = 0; i < 2000; ++i) {
    const uint64_t position = RandomPosition(rng);
    const std::string key = RandomBytes(rng, 40);
    const std::string stored = DataKey(position, key);
    std::optional<DecodedDataKey> parsed = ParseDataKey(stored);
    ASSERT_TRUE(parsed.has_value());
    EXPECT_EQ(parsed->position, position);
    EXPECT_EQ(parsed->key, key);
  }
}

TEST(StorageKeysTest, DataKeysOrderByPositionThenKey) {
  Random rng(3);
  std::vector<std::pair<uint64_t, std::string>> items;
  for (int i = 0; i < 600; ++i) items.emplace_back(RandomPosition(rng), RandomBytes(rng, 6));
  std::vector<std::string> stored;
  for (const auto& [p, k] : items) stored.push_back(DataKey(p, k));
  std::sort(stored.begin(), stored.end(), BytewiseLess);
  std::sort(items.begin(), items.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first < b.first : BytewiseLess(a.second, b.second);
  });
  ASSERT_EQ(stored.size(), items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    std::optional<DecodedDataKey> parsed = ParseDataKey(stored[i]);
    ASSERT_TRUE(parsed.has_value());
    EXPECT_EQ(parsed->position, items[i].first) << i;
    EXPECT_EQ(parsed->key, items[i].second) << i;
  }
}

TEST(StorageKeysTest, ShortDataKeyIsRefused) {
  EXPECT_FALSE(ParseDataKey("").has_value());
  EXPECT_FALSE(ParseDataKey("1234567").has_value());
  std::optional<DecodedDataKey> just_position = ParseDataKey(EncodeBigEndian64(42));
  ASSERT_TRUE(just_position.has_value());  // an empty key is representable
  EXPECT_EQ(just_position->position, 42u);
  EXPECT_TRUE(just_position->key.empty());
}

TEST(StorageKeysTest, HintKeyRoundTripsAndStartsWithItsOwnersPrefix) {
  Random rng(4);
  for (int i = 0; i < 2000; ++i) {
    const std::string owner = RandomBytes(rng, 255);
    const uint64_t position = RandomPosition(rng);
    const std::string key = RandomBytes(rng, 40);
    const std::string stored = HintKey(owner, position, key);
    EXPECT_EQ(stored.rfind(HintPrefix(owner), 0), 0u);
    std::optional<DecodedHintKey> parsed = ParseHintKey(stored);
    ASSERT_TRUE(parsed.has_value());
    EXPECT_EQ(parsed->owner, owner);
    EXPECT_EQ(parsed->position, position);
    EXPECT_EQ(parsed->key, key);
  }
}

TEST(StorageKeysTest, OneOwnersHintsAreOneContiguousRangeInPositionOrder) {
  // Owners chosen so that one is a prefix of another: the length byte must
  // keep "a"'s hints apart from "ab"'s.
  const std::vector<std::string> owners = {"a", "ab", "b", std::string("a\0", 2), ""};
  Random rng(5);
  struct Item {
    std::string owner;
    uint64_t position;
    std::string key;
    std::string stored;
  };
  std::vector<Item> items;
  for (int i = 0; i < 500; ++i) {
    Item it{owners[rng.Uniform(owners.size())], RandomPosition(rng), RandomBytes(rng, 5), ""};
    it.stored = HintKey(it.owner, it.position, it.key);
    items.push_back(it);
  }
  std::sort(items.begin(), items.end(),
            [](const Item& a, const Item& b) { return BytewiseLess(a.stored, b.stored); });
  for (const std::string& owner : owners) {
    const std::string begin = HintPrefix(owner);
    const std::string end = PrefixEnd(begin);
    std::vector<uint64_t> positions;
    for (const Item& it : items) {
      const bool in_scan =
          !BytewiseLess(it.stored, begin) && (end.empty() || BytewiseLess(it.stored, end));
      EXPECT_EQ(in_scan, it.owner == owner)
          << "owner '" << owner << "' item of '" << it.owner << "'";
      if (in_scan) positions.push_back(it.position);
    }
    EXPECT_TRUE(std::is_sorted(positions.begin(), positions.end())) << owner;
  }
}

TEST(StorageKeysTest, MalformedHintKeysAreRefused) {
  EXPECT_FALSE(ParseHintKey("").has_value());
  std::string stored = HintKey("owner", 7, "k");
  // Cut inside the owner or the position: not a hint key.
  for (size_t len = 0; len < 1 + 5 + 8; ++len) {
    EXPECT_FALSE(ParseHintKey(stored.substr(0, len)).has_value()) << len;
  }
  // A length byte that claims more than there is.
  EXPECT_FALSE(ParseHintKey(std::string("\x7f") + "abc").has_value());
}

TEST(StorageKeysTest, PrefixEndIsTheSmallestStringAfterThePrefix) {
  EXPECT_EQ(PrefixEnd("ab"), "ac");
  EXPECT_EQ(PrefixEnd(std::string("a\xff", 2)), "b");
  EXPECT_EQ(PrefixEnd(std::string("\xff\xff", 2)), "");
  EXPECT_EQ(PrefixEnd(""), "");
  EXPECT_EQ(PrefixEnd(std::string("\x00", 1)), std::string("\x01", 1));

  Random rng(6);
  for (int i = 0; i < 3000; ++i) {
    const std::string prefix = RandomBytes(rng, 4);
    const std::string end = PrefixEnd(prefix);
    const std::string s = RandomBytes(rng, 6);
    const bool has_prefix = s.rfind(prefix, 0) == 0;
    const bool in_range = !BytewiseLess(s, prefix) && (end.empty() || BytewiseLess(s, end));
    EXPECT_EQ(in_range, has_prefix) << "prefix size " << prefix.size() << " s size " << s.size();
    // Everything with the prefix sorts before the end, including prefix + 0xff...
    if (!end.empty()) {
      EXPECT_TRUE(BytewiseLess(prefix + std::string(8, '\xff'), end));
    } else {
      // No end exists only when the prefix is all 0xff (or empty).
      EXPECT_TRUE(std::all_of(prefix.begin(), prefix.end(), [](char c) { return c == '\xff'; }));
    }
  }
}

}  // namespace
}  // namespace dynamo::core
