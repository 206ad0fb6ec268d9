#include "dynamo/client/base64.h"

#include <array>
#include <cstdint>

#include "dynamo/base/strings.h"

namespace dynamo::client {
namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// Value of each character in either alphabet; -1 for anything else.
constexpr std::array<int8_t, 256> MakeDecodeTable() {
  std::array<int8_t, 256> t{};
  for (int8_t& v : t) v = -1;
  for (int i = 0; i < 64; ++i) t[static_cast<unsigned char>(kAlphabet[i])] = static_cast<int8_t>(i);
  t['-'] = 62;
  t['_'] = 63;
  return t;
}
constexpr std::array<int8_t, 256> kDecode = MakeDecodeTable();

}  // namespace

std::string Base64Encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  auto byte = [&](size_t k) { return static_cast<uint32_t>(static_cast<unsigned char>(bytes[k])); };
  for (; i + 3 <= bytes.size(); i += 3) {
    const uint32_t v = byte(i) << 16 | byte(i + 1) << 8 | byte(i + 2);
    out += kAlphabet[v >> 18 & 63];
    out += kAlphabet[v >> 12 & 63];
    out += kAlphabet[v >> 6 & 63];
    out += kAlphabet[v & 63];
  }
  const size_t rest = bytes.size() - i;
  if (rest == 1) {
    const uint32_t v = byte(i) << 16;
    out += kAlphabet[v >> 18 & 63];
    out += kAlphabet[v >> 12 & 63];
    out += "==";
  } else if (rest == 2) {
    const uint32_t v = byte(i) << 16 | byte(i + 1) << 8;
    out += kAlphabet[v >> 18 & 63];
    out += kAlphabet[v >> 12 & 63];
    out += kAlphabet[v >> 6 & 63];
    out += '=';
  }
  return out;
}

absl::StatusOr<std::string> Base64Decode(std::string_view text) {
  // Padding: only at the end, only to complete a group of four.
  size_t data_len = text.size();
  while (data_len > 0 && text[data_len - 1] == '=') --data_len;
  const size_t padding = text.size() - data_len;
  if (padding > 0 && (padding > 2 || text.size() % 4 != 0)) {
    return absl::InvalidArgumentError(
        Cat("base64: misplaced '=' padding at position ", data_len, " of ", text.size()));
  }
  if (data_len % 4 == 1) {
    return absl::InvalidArgumentError(
        Cat("base64: ", text.size(), " characters cannot be base64 (one too many or too few)"));
  }
  std::string out;
  out.reserve(data_len / 4 * 3 + 2);
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < data_len; ++i) {
    const int8_t v = kDecode[static_cast<unsigned char>(text[i])];
    if (v < 0) {
      return absl::InvalidArgumentError(Cat("base64: invalid character at position ", i));
    }
    acc = acc << 6 | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>(acc >> bits & 0xff);
    }
  }
  // Leftover bits must be zero: otherwise two texts would decode to the same
  // bytes, and a mangled context would pass unnoticed.
  if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) {
    return absl::InvalidArgumentError(
        "base64: non-zero trailing bits (truncated or altered text?)");
  }
  return out;
}

}  // namespace dynamo::client
