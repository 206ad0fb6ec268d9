#pragma once

// A small JSON value for Kubernetes objects: parse, build, compare, dump, and
// RFC 7386 merge patches. The operator's libraries speak JSON through this
// type only, so that neither the reconciler nor the API client depends on the
// HTTP library (cpprestsdk's web::json stays inside the HTTP adapter).
//
// A Value is a plain value type: copies are deep, and distinct Values may be
// used from different threads; one Value is not safe for concurrent mutation.

#include <cstdint>
#include <initializer_list>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"

namespace dynamo::json {

class Value;
using Array = std::vector<Value>;
using Object = std::map<std::string, Value, std::less<>>;

class Value {
 public:
  enum class Type { kNull, kBool, kInt, kDouble, kString, kArray, kObject };

  Value() = default;
  Value(std::nullptr_t) {}                            // NOLINT(google-explicit-constructor)
  Value(bool b) : v_(b) {}                            // NOLINT
  Value(int i) : v_(static_cast<int64_t>(i)) {}       // NOLINT
  Value(int64_t i) : v_(i) {}                         // NOLINT
  Value(uint32_t i) : v_(static_cast<int64_t>(i)) {}  // NOLINT
  Value(uint64_t i) : v_(static_cast<int64_t>(i)) {}  // NOLINT
  Value(double d) : v_(d) {}                          // NOLINT
  Value(const char* s) : v_(std::string(s)) {}        // NOLINT
  Value(std::string s) : v_(std::move(s)) {}          // NOLINT
  Value(std::string_view s) : v_(std::string(s)) {}   // NOLINT
  Value(Array a) : v_(std::move(a)) {}                // NOLINT
  Value(Object o) : v_(std::move(o)) {}               // NOLINT

  // Builds an object from key/value pairs: Value::Obj({{"a", 1}, {"b", "x"}}).
  static Value Obj(std::initializer_list<std::pair<const std::string, Value>> members = {}) {
    return Value(Object(members));
  }
  static Value Arr(std::initializer_list<Value> items = {}) { return Value(Array(items)); }

  Type type() const { return static_cast<Type>(v_.index()); }
  bool is_null() const { return type() == Type::kNull; }
  bool is_bool() const { return type() == Type::kBool; }
  bool is_number() const { return type() == Type::kInt || type() == Type::kDouble; }
  bool is_int() const { return type() == Type::kInt; }
  bool is_string() const { return type() == Type::kString; }
  bool is_array() const { return type() == Type::kArray; }
  bool is_object() const { return type() == Type::kObject; }

  // Typed reads; a value of another type gives the fallback.
  bool AsBool(bool fallback = false) const;
  int64_t AsInt(int64_t fallback = 0) const;  // a double is truncated
  double AsDouble(double fallback = 0) const;
  // A string, or an empty string for any other type.
  const std::string& AsString() const;
  const Array& AsArray() const;    // empty for non-arrays
  const Object& AsObject() const;  // empty for non-objects

  // Member access. The const form returns a null Value for a missing key or a
  // non-object; the mutable form turns a null into an object first.
  const Value& operator[](std::string_view key) const;
  Value& operator[](std::string_view key);
  const Value* Find(std::string_view key) const;
  bool Has(std::string_view key) const { return Find(key) != nullptr; }
  void Erase(std::string_view key);
  // Follows a path of keys: v.At({"metadata", "name"}).
  const Value& At(std::initializer_list<std::string_view> path) const;

  // Array access. The mutable form turns a null into an array first.
  Array& MutableArray();
  Object& MutableObject();
  void Append(Value item) { MutableArray().push_back(std::move(item)); }
  size_t size() const;  // members or items; 0 for scalars

  // Compact JSON text.
  std::string Dump() const;
  // Indented JSON text, for logs and test failures.
  std::string Pretty() const;

  // Ints and doubles of equal value compare equal.
  friend bool operator==(const Value& a, const Value& b);

 private:
  void DumpTo(std::string* out, int indent, int depth) const;
  std::variant<std::nullptr_t, bool, int64_t, double, std::string, Array, Object> v_;
};

// Parses one JSON text (RFC 8259). Nesting deeper than kDepthMax is refused.
inline constexpr int kDepthMax = 200;
absl::StatusOr<Value> Parse(std::string_view text);

// RFC 7386 JSON merge patch: members of `patch` replace those of `target`
// recursively, a null member deletes, and a non-object patch replaces.
Value MergePatch(const Value& target, const Value& patch);

// True when every member that `desired` sets has the same value in `observed`
// (objects recursively; arrays item by item, of equal length). How the
// reconciler tells whether an object the API server has defaulted still
// matches what it wants, without diffing server-added fields.
bool IsSubset(const Value& desired, const Value& observed);

}  // namespace dynamo::json
