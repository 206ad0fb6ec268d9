#include "dynamo/core/storage_keys.h"

namespace dynamo::core {

std::string EncodeBigEndian64(uint64_t v) {
  std::string out(8, '\0');
  for (int i = 7; i >= 0; --i) {
    out[i] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
  return out;
}

uint64_t DecodeBigEndian64(std::string_view bytes) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<unsigned char>(bytes[i]);
  return v;
}

std::string DataKey(uint64_t position, std::string_view key) {
  std::string out = EncodeBigEndian64(position);
  out.append(key);
  return out;
}

std::optional<DecodedDataKey> ParseDataKey(std::string_view stored) {
  if (stored.size() < 8) return std::nullopt;
  return DecodedDataKey{DecodeBigEndian64(stored), stored.substr(8)};
}

std::string HintPrefix(std::string_view owner) {
  std::string out(1, static_cast<char>(owner.size()));
  out.append(owner);
  return out;
}

std::string HintKey(std::string_view owner, uint64_t position, std::string_view key) {
  std::string out = HintPrefix(owner);
  out += EncodeBigEndian64(position);
  out.append(key);
  return out;
}

std::optional<DecodedHintKey> ParseHintKey(std::string_view stored) {
  if (stored.empty()) return std::nullopt;
  const size_t owner_len = static_cast<unsigned char>(stored[0]);
  if (stored.size() < 1 + owner_len + 8) return std::nullopt;
  std::string_view owner = stored.substr(1, owner_len);
  std::string_view rest = stored.substr(1 + owner_len);
  return DecodedHintKey{owner, DecodeBigEndian64(rest), rest.substr(8)};
}

std::string PrefixEnd(std::string_view prefix) {
  std::string out(prefix);
  while (!out.empty()) {
    unsigned char last = static_cast<unsigned char>(out.back());
    if (last != 0xff) {
      out.back() = static_cast<char>(last + 1);
      return out;
    }
    out.pop_back();
  }
  return out;
}

}  // namespace dynamo::core
