#include "dynamo/json/json.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "dynamo/base/strings.h"

namespace dynamo::json {
namespace {

const Value& NullValue() {
  static const Value* const kNull = new Value();
  return *kNull;
}

void AppendEscaped(std::string* out, const std::string& s) {
  out->push_back('"');
  for (const char c : s) {
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      case '\b':
        out->append("\\b");
        break;
      case '\f':
        out->append("\\f");
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", static_cast<unsigned>(c));
          out->append(buf);
        } else {
          out->push_back(c);
        }
    }
  }
  out->push_back('"');
}

void AppendUtf8(std::string* out, uint32_t cp) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// Recursive descent over the whole text; positions are byte offsets for errors.
class Parser {
 public:
  explicit Parser(std::string_view text) : s_(text) {}

  absl::StatusOr<Value> ParseDocument() {
    Value v;
    if (!ParseValue(&v, 0)) return Error();
    SkipSpace();
    if (pos_ != s_.size()) {
      why_ = "trailing characters";
      return Error();
    }
    return v;
  }

 private:
  absl::Status Error() const {
    return absl::InvalidArgumentError(Cat("invalid JSON at byte ", pos_, ": ", why_));
  }
  void SkipSpace() {
    while (pos_ < s_.size() &&
           (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) {
      ++pos_;
    }
  }
  bool Fail(const char* why) {
    why_ = why;
    return false;
  }
  bool Literal(std::string_view word) {
    if (s_.substr(pos_, word.size()) != word) return Fail("unknown literal");
    pos_ += word.size();
    return true;
  }

  bool ParseValue(Value* out, int depth) {
    if (depth > kDepthMax) return Fail("nesting too deep");
    SkipSpace();
    if (pos_ >= s_.size()) return Fail("unexpected end");
    const char c = s_[pos_];
    switch (c) {
      case '{':
        return ParseObject(out, depth);
      case '[':
        return ParseArray(out, depth);
      case '"': {
        std::string str;
        if (!ParseString(&str)) return false;
        *out = Value(std::move(str));
        return true;
      }
      case 't':
        *out = Value(true);
        return Literal("true");
      case 'f':
        *out = Value(false);
        return Literal("false");
      case 'n':
        *out = Value();
        return Literal("null");
      default:
        if (c == '-' || (c >= '0' && c <= '9')) return ParseNumber(out);
        return Fail("unexpected character");
    }
  }

  bool ParseObject(Value* out, int depth) {
    ++pos_;  // {
    Object obj;
    SkipSpace();
    if (pos_ < s_.size() && s_[pos_] == '}') {
      ++pos_;
      *out = Value(std::move(obj));
      return true;
    }
    while (true) {
      SkipSpace();
      if (pos_ >= s_.size() || s_[pos_] != '"') return Fail("expected a member name");
      std::string key;
      if (!ParseString(&key)) return false;
      SkipSpace();
      if (pos_ >= s_.size() || s_[pos_] != ':') return Fail("expected ':'");
      ++pos_;
      Value member;
      if (!ParseValue(&member, depth + 1)) return false;
      obj.insert_or_assign(std::move(key), std::move(member));
      SkipSpace();
      if (pos_ >= s_.size()) return Fail("unexpected end in object");
      if (s_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (s_[pos_] == '}') {
        ++pos_;
        *out = Value(std::move(obj));
        return true;
      }
      return Fail("expected ',' or '}'");
    }
  }

  bool ParseArray(Value* out, int depth) {
    ++pos_;  // [
    Array arr;
    SkipSpace();
    if (pos_ < s_.size() && s_[pos_] == ']') {
      ++pos_;
      *out = Value(std::move(arr));
      return true;
    }
    while (true) {
      Value item;
      if (!ParseValue(&item, depth + 1)) return false;
      arr.push_back(std::move(item));
      SkipSpace();
      if (pos_ >= s_.size()) return Fail("unexpected end in array");
      if (s_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (s_[pos_] == ']') {
        ++pos_;
        *out = Value(std::move(arr));
        return true;
      }
      return Fail("expected ',' or ']'");
    }
  }

  bool Hex4(uint32_t* cp) {
    if (pos_ + 4 > s_.size()) return Fail("short \\u escape");
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      const char h = s_[pos_++];
      v <<= 4;
      if (h >= '0' && h <= '9')
        v |= static_cast<uint32_t>(h - '0');
      else if (h >= 'a' && h <= 'f')
        v |= static_cast<uint32_t>(h - 'a' + 10);
      else if (h >= 'A' && h <= 'F')
        v |= static_cast<uint32_t>(h - 'A' + 10);
      else
        return Fail("bad hex digit");
    }
    *cp = v;
    return true;
  }

  bool ParseString(std::string* out) {
    ++pos_;  // "
    while (pos_ < s_.size()) {
      const char c = s_[pos_++];
      if (c == '"') return true;
      if (static_cast<unsigned char>(c) < 0x20) return Fail("control character in string");
      if (c != '\\') {
        out->push_back(c);
        continue;
      }
      if (pos_ >= s_.size()) break;
      const char e = s_[pos_++];
      switch (e) {
        case '"':
          out->push_back('"');
          break;
        case '\\':
          out->push_back('\\');
          break;
        case '/':
          out->push_back('/');
          break;
        case 'b':
          out->push_back('\b');
          break;
        case 'f':
          out->push_back('\f');
          break;
        case 'n':
          out->push_back('\n');
          break;
        case 'r':
          out->push_back('\r');
          break;
        case 't':
          out->push_back('\t');
          break;
        case 'u': {
          uint32_t cp = 0;
          if (!Hex4(&cp)) return false;
          if (cp >= 0xD800 && cp < 0xDC00) {
            uint32_t low = 0;
            if (s_.substr(pos_, 2) != "\\u") return Fail("lone high surrogate");
            pos_ += 2;
            if (!Hex4(&low) || low < 0xDC00 || low >= 0xE000) return Fail("bad low surrogate");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          }
          AppendUtf8(out, cp);
          break;
        }
        default:
          return Fail("bad escape");
      }
    }
    return Fail("unterminated string");
  }

  bool ParseNumber(Value* out) {
    const size_t start = pos_;
    bool is_float = false;
    if (s_[pos_] == '-') ++pos_;
    while (pos_ < s_.size()) {
      const char c = s_[pos_];
      if (c >= '0' && c <= '9') {
        ++pos_;
      } else if (c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-') {
        is_float = true;
        ++pos_;
      } else {
        break;
      }
    }
    const char* first = s_.data() + start;
    const char* last = s_.data() + pos_;
    if (!is_float) {
      int64_t i = 0;
      const auto [end, ec] = std::from_chars(first, last, i);
      if (ec == std::errc() && end == last) {
        *out = Value(i);
        return true;
      }
      // Out of int64 range: fall through to a double.
    }
    double d = 0;
    const auto [end, ec] = std::from_chars(first, last, d);
    if (ec != std::errc() || end != last) return Fail("bad number");
    *out = Value(d);
    return true;
  }

  std::string_view s_;
  size_t pos_ = 0;
  const char* why_ = "";
};

}  // namespace

bool Value::AsBool(bool fallback) const { return is_bool() ? std::get<bool>(v_) : fallback; }

int64_t Value::AsInt(int64_t fallback) const {
  if (type() == Type::kInt) return std::get<int64_t>(v_);
  if (type() == Type::kDouble) return static_cast<int64_t>(std::get<double>(v_));
  return fallback;
}

double Value::AsDouble(double fallback) const {
  if (type() == Type::kInt) return static_cast<double>(std::get<int64_t>(v_));
  if (type() == Type::kDouble) return std::get<double>(v_);
  return fallback;
}

const std::string& Value::AsString() const {
  static const std::string* const kEmpty = new std::string();
  return is_string() ? std::get<std::string>(v_) : *kEmpty;
}

const Array& Value::AsArray() const {
  static const Array* const kEmpty = new Array();
  return is_array() ? std::get<Array>(v_) : *kEmpty;
}

const Object& Value::AsObject() const {
  static const Object* const kEmpty = new Object();
  return is_object() ? std::get<Object>(v_) : *kEmpty;
}

const Value* Value::Find(std::string_view key) const {
  if (!is_object()) return nullptr;
  const Object& obj = std::get<Object>(v_);
  const auto it = obj.find(key);
  return it == obj.end() ? nullptr : &it->second;
}

const Value& Value::operator[](std::string_view key) const {
  const Value* v = Find(key);
  return v ? *v : NullValue();
}

Value& Value::operator[](std::string_view key) {
  Object& obj = MutableObject();
  auto it = obj.find(key);
  if (it == obj.end()) it = obj.emplace(std::string(key), Value()).first;
  return it->second;
}

void Value::Erase(std::string_view key) {
  if (!is_object()) return;
  Object& obj = std::get<Object>(v_);
  const auto it = obj.find(key);
  if (it != obj.end()) obj.erase(it);
}

const Value& Value::At(std::initializer_list<std::string_view> path) const {
  const Value* v = this;
  for (const std::string_view key : path) {
    v = v->Find(key);
    if (v == nullptr) return NullValue();
  }
  return *v;
}

Array& Value::MutableArray() {
  if (!is_array()) v_ = Array();
  return std::get<Array>(v_);
}

Object& Value::MutableObject() {
  if (!is_object()) v_ = Object();
  return std::get<Object>(v_);
}

size_t Value::size() const {
  if (is_array()) return std::get<Array>(v_).size();
  if (is_object()) return std::get<Object>(v_).size();
  return 0;
}

void Value::DumpTo(std::string* out, int indent, int depth) const {
  const auto newline = [&](int d) {
    if (indent <= 0) return;
    out->push_back('\n');
    out->append(static_cast<size_t>(indent * d), ' ');
  };
  switch (type()) {
    case Type::kNull:
      out->append("null");
      break;
    case Type::kBool:
      out->append(std::get<bool>(v_) ? "true" : "false");
      break;
    case Type::kInt:
      out->append(std::to_string(std::get<int64_t>(v_)));
      break;
    case Type::kDouble: {
      const double d = std::get<double>(v_);
      if (!std::isfinite(d)) {
        out->append("null");  // JSON has no NaN or infinity
        break;
      }
      char buf[32];
      const auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), d);
      std::string_view text(buf, static_cast<size_t>(end - buf));
      out->append(text);
      // Keep it a double when read back.
      if (text.find_first_of(".eE") == std::string_view::npos) out->append(".0");
      break;
    }
    case Type::kString:
      AppendEscaped(out, std::get<std::string>(v_));
      break;
    case Type::kArray: {
      const Array& arr = std::get<Array>(v_);
      out->push_back('[');
      for (size_t i = 0; i < arr.size(); ++i) {
        if (i > 0) out->push_back(',');
        newline(depth + 1);
        arr[i].DumpTo(out, indent, depth + 1);
      }
      if (!arr.empty()) newline(depth);
      out->push_back(']');
      break;
    }
    case Type::kObject: {
      const Object& obj = std::get<Object>(v_);
      out->push_back('{');
      bool first = true;
      for (const auto& [k, v] : obj) {
        if (!first) out->push_back(',');
        first = false;
        newline(depth + 1);
        AppendEscaped(out, k);
        out->push_back(':');
        if (indent > 0) out->push_back(' ');
        v.DumpTo(out, indent, depth + 1);
      }
      if (!obj.empty()) newline(depth);
      out->push_back('}');
      break;
    }
  }
}

std::string Value::Dump() const {
  std::string out;
  DumpTo(&out, 0, 0);
  return out;
}

std::string Value::Pretty() const {
  std::string out;
  DumpTo(&out, 2, 0);
  return out;
}

bool operator==(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_int() && b.is_int()) return a.AsInt() == b.AsInt();
    return a.AsDouble() == b.AsDouble();
  }
  if (a.type() != b.type()) return false;
  switch (a.type()) {
    case Value::Type::kNull:
      return true;
    case Value::Type::kBool:
      return a.AsBool() == b.AsBool();
    case Value::Type::kString:
      return a.AsString() == b.AsString();
    case Value::Type::kArray:
      return a.AsArray() == b.AsArray();
    case Value::Type::kObject:
      return a.AsObject() == b.AsObject();
    default:
      return false;
  }
}

absl::StatusOr<Value> Parse(std::string_view text) { return Parser(text).ParseDocument(); }

Value MergePatch(const Value& target, const Value& patch) {
  if (!patch.is_object()) return patch;
  Value result = target.is_object() ? target : Value::Obj();
  for (const auto& [key, member] : patch.AsObject()) {
    if (member.is_null()) {
      result.Erase(key);
    } else {
      result[key] = MergePatch(result[std::string_view(key)], member);
    }
  }
  return result;
}

bool IsSubset(const Value& desired, const Value& observed) {
  if (desired.is_object()) {
    if (!observed.is_object()) return false;
    for (const auto& [key, member] : desired.AsObject()) {
      const Value* other = observed.Find(key);
      if (other == nullptr) {
        if (member.is_null()) continue;
        // An empty object or array we set may be dropped by the server.
        if ((member.is_object() || member.is_array()) && member.size() == 0) continue;
        return false;
      }
      if (!IsSubset(member, *other)) return false;
    }
    return true;
  }
  if (desired.is_array()) {
    if (!observed.is_array() || desired.size() != observed.size()) return false;
    for (size_t i = 0; i < desired.size(); ++i) {
      if (!IsSubset(desired.AsArray()[i], observed.AsArray()[i])) return false;
    }
    return true;
  }
  return desired == observed;
}

}  // namespace dynamo::json
