#include "dynamo/k8s/yaml.h"

#include <charconv>
#include <string>
#include <vector>

#include "dynamo/base/strings.h"

namespace dynamo::k8s {
namespace {

using json::Value;

struct Line {
  int number;        // 1-based, for errors
  int indent;        // columns of leading spaces
  std::string text;  // without indentation and comment
};

// Drops a comment: '#' at the start or after a space, outside quotes.
std::string StripComment(const std::string& s) {
  char quote = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (quote != 0) {
      if (c == '\\' && quote == '"') {
        ++i;
      } else if (c == quote) {
        quote = 0;
      }
    } else if (c == '"' || c == '\'') {
      if (i == 0 || s[i - 1] == ' ' || s[i - 1] == ':' || s[i - 1] == '-') quote = c;
    } else if (c == '#' && (i == 0 || s[i - 1] == ' ' || s[i - 1] == '\t')) {
      return s.substr(0, i);
    }
  }
  return s;
}

std::string TrimRight(std::string s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.pop_back();
  return s;
}

class Parser {
 public:
  explicit Parser(std::vector<Line> lines) : lines_(std::move(lines)) {}

  absl::StatusOr<Value> Document() {
    if (lines_.empty()) return Value();
    Value v;
    if (!Block(lines_[0].indent, &v)) return Error();
    if (pos_ != lines_.size()) {
      why_ = "unexpected indentation";
      return Error();
    }
    return v;
  }

 private:
  absl::Status Error() const {
    const int line = pos_ < lines_.size() ? lines_[pos_].number : lines_.back().number;
    return absl::InvalidArgumentError(Cat("YAML line ", line, ": ", why_));
  }
  bool Fail(std::string why) {
    why_ = std::move(why);
    return false;
  }

  static bool IsItem(const std::string& t) { return t == "-" || t.rfind("- ", 0) == 0; }

  // The colon that ends a mapping key, outside quotes, or npos.
  static size_t KeyColon(const std::string& t) {
    char quote = 0;
    for (size_t i = 0; i < t.size(); ++i) {
      const char c = t[i];
      if (quote != 0) {
        if (c == '\\' && quote == '"')
          ++i;
        else if (c == quote)
          quote = 0;
        continue;
      }
      if ((c == '"' || c == '\'') && i == 0) {
        quote = c;
      } else if (c == ':' && (i + 1 == t.size() || t[i + 1] == ' ')) {
        return i;
      } else if ((c == '{' || c == '[') && i == 0) {
        return std::string::npos;  // a flow value
      }
    }
    return std::string::npos;
  }

  bool Block(int indent, Value* out) {
    if (pos_ >= lines_.size()) {
      *out = Value();
      return true;
    }
    if (IsItem(lines_[pos_].text)) return Sequence(indent, out);
    if (KeyColon(lines_[pos_].text) == std::string::npos) {
      // A lone scalar (a document or a value on its own line).
      if (!Scalar(lines_[pos_].text, out)) return false;
      ++pos_;
      return true;
    }
    return Mapping(indent, out);
  }

  bool Mapping(int indent, Value* out) {
    Value map = Value::Obj();
    while (pos_ < lines_.size() && lines_[pos_].indent == indent && !IsItem(lines_[pos_].text)) {
      const std::string& t = lines_[pos_].text;
      const size_t colon = KeyColon(t);
      if (colon == std::string::npos) return Fail("expected \"key: value\"");
      Value key;
      if (!Scalar(t.substr(0, colon), &key)) return false;
      const std::string name = key.is_string() ? key.AsString() : key.Dump();
      std::string rest = colon + 1 < t.size() ? t.substr(colon + 2) : "";
      while (!rest.empty() && rest.front() == ' ') rest.erase(rest.begin());
      ++pos_;
      Value value;
      if (!rest.empty()) {
        if (!Scalar(rest, &value)) return false;
      } else if (pos_ < lines_.size() && lines_[pos_].indent > indent) {
        if (!Block(lines_[pos_].indent, &value)) return false;
      } else if (pos_ < lines_.size() && lines_[pos_].indent == indent &&
                 IsItem(lines_[pos_].text)) {
        if (!Sequence(indent, &value)) return false;  // "key:\n- item" style
      }
      map[name] = std::move(value);
    }
    if (pos_ < lines_.size() && lines_[pos_].indent > indent) return Fail("unexpected indentation");
    *out = std::move(map);
    return true;
  }

  bool Sequence(int indent, Value* out) {
    Value seq = Value::Arr();
    while (pos_ < lines_.size() && lines_[pos_].indent == indent && IsItem(lines_[pos_].text)) {
      Line& line = lines_[pos_];
      std::string rest = line.text.size() > 1 ? line.text.substr(2) : "";
      int extra = 2;
      while (!rest.empty() && rest.front() == ' ') {
        rest.erase(rest.begin());
        ++extra;
      }
      Value item;
      if (rest.empty()) {
        ++pos_;
        if (pos_ < lines_.size() && lines_[pos_].indent > indent) {
          if (!Block(lines_[pos_].indent, &item)) return false;
        }
      } else if (IsItem(rest) || KeyColon(rest) != std::string::npos) {
        // "- key: value" opens a mapping (or "- - x" a sequence) whose
        // first line is this one, at the column after the dash.
        line.indent = indent + extra;
        line.text = rest;
        if (!Block(line.indent, &item)) return false;
      } else {
        if (!Scalar(rest, &item)) return false;
        ++pos_;
      }
      seq.Append(std::move(item));
    }
    *out = std::move(seq);
    return true;
  }

  bool Scalar(const std::string& raw, Value* out) {
    const std::string t = TrimRight(raw);
    if (t.empty()) {
      *out = Value();
      return true;
    }
    const char c = t.front();
    if (c == '&' || c == '*' || c == '!' || c == '|' || c == '>') {
      return Fail(Cat("unsupported YAML construct \"", t.substr(0, 1), "\""));
    }
    if (c == '"') {
      absl::StatusOr<Value> v = json::Parse(t);
      if (!v.ok()) return Fail("bad double-quoted string");
      *out = *std::move(v);
      return true;
    }
    if (c == '\'') {
      if (t.size() < 2 || t.back() != '\'') return Fail("unterminated single-quoted string");
      std::string s;
      for (size_t i = 1; i + 1 < t.size(); ++i) {
        s.push_back(t[i]);
        if (t[i] == '\'' && i + 2 < t.size() && t[i + 1] == '\'') ++i;
      }
      *out = Value(std::move(s));
      return true;
    }
    if (c == '{' || c == '[') {
      absl::StatusOr<Value> v = json::Parse(t);
      if (!v.ok()) return Fail("flow collections other than JSON are not supported");
      *out = *std::move(v);
      return true;
    }
    if (t == "true" || t == "True" || t == "TRUE") {
      *out = Value(true);
    } else if (t == "false" || t == "False" || t == "FALSE") {
      *out = Value(false);
    } else if (t == "null" || t == "Null" || t == "NULL" || t == "~") {
      *out = Value();
    } else {
      int64_t i = 0;
      const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), i);
      if (ec == std::errc() && end == t.data() + t.size()) {
        *out = Value(i);
      } else {
        *out = Value(t);
      }
    }
    return true;
  }

  std::vector<Line> lines_;
  size_t pos_ = 0;
  std::string why_;
};

}  // namespace

absl::StatusOr<Value> ParseYaml(std::string_view text) {
  size_t first = text.find_first_not_of(" \t\r\n");
  if (first != std::string_view::npos && (text[first] == '{' || text[first] == '[')) {
    return json::Parse(text);
  }
  std::vector<Line> lines;
  int number = 0;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    ++number;
    std::string raw(text.substr(start, end - start));
    start = end + 1;
    if (raw.find('\t') != std::string::npos && raw.find_first_not_of(" \t") != std::string::npos &&
        raw[raw.find_first_not_of(' ')] == '\t') {
      return absl::InvalidArgumentError(Cat("YAML line ", number, ": tabs cannot indent"));
    }
    std::string s = TrimRight(StripComment(raw));
    const size_t content = s.find_first_not_of(' ');
    if (content == std::string::npos) continue;
    if (s == "---" || s == "...") {
      if (!lines.empty()) {
        return absl::InvalidArgumentError(Cat("YAML line ", number, ": one document only"));
      }
      continue;
    }
    lines.push_back({number, static_cast<int>(content), s.substr(content)});
    if (end == text.size()) break;
  }
  return Parser(std::move(lines)).Document();
}

}  // namespace dynamo::k8s
