// dynamo-chaos-check: the lost-write checker of the simulator
// (dynamo::sim::History), run on a history recorded against real processes.
//
// So that there is one checker, the chaos harness (chaos.py) does not judge a
// run itself: it writes what its clients did and what the replicas held at the
// end as JSON lines, and this program decides. One object per line:
//
//   {"op":"write","key":K,"value":V,"seen":[V1,...]}  before the Put is sent;
//                                                     seen = values its read returned
//   {"op":"ack","value":V}                            the Put returned OK
//   {"op":"delete","key":K,"seen":[V1,...]}           before a Delete with the context of
//                                                     a read that returned seen
//   {"op":"final","key":K,"node":N,"values":[...],"context":C}
//                                                     a read of K with R=1 at node N
//                                                     after healing (C: base64)
//
// Verdicts: every acknowledged write is present or superseded by a surviving
// write that read it; no value appears that was never written to its key; and
// every node returned the same siblings (and context) for every key:
// replicas converged. Exit 0 when all hold, 1 when one fails, 2 on bad input.

#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "dynamo/base/strings.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "history.h"

namespace {

using google::protobuf::Struct;
using google::protobuf::Value;

struct FinalRead {
  std::set<std::string> values;
  std::string context;
};

// What one node returned for each key, and what the checker concludes.
struct Finals {
  std::map<std::string, std::map<std::string, FinalRead>> by_key;  // key -> node -> read
};

std::string Str(const Struct& s, const std::string& field) {
  auto it = s.fields().find(field);
  if (it == s.fields().end() || it->second.kind_case() != Value::kStringValue) return "";
  return it->second.string_value();
}

bool Has(const Struct& s, const std::string& field) { return s.fields().contains(field); }

std::vector<std::string> List(const Struct& s, const std::string& field) {
  std::vector<std::string> out;
  auto it = s.fields().find(field);
  if (it == s.fields().end() || it->second.kind_case() != Value::kListValue) return out;
  for (const Value& v : it->second.list_value().values()) out.push_back(v.string_value());
  return out;
}

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string Joined(const std::set<std::string>& values) {
  std::string out = "[";
  for (const std::string& v : values) out += (out.size() > 1 ? " " : "") + v;
  return out + "]";
}

int Usage() {
  std::cerr << "usage: dynamo-chaos-check HISTORY.jsonl [--json REPORT.json]\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string history_path;
  std::string json_path;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--json" && i + 1 < argc) {
      json_path = argv[++i];
    } else if (!arg.empty() && arg[0] != '-' && history_path.empty()) {
      history_path = arg;
    } else {
      return Usage();
    }
  }
  if (history_path.empty()) return Usage();
  std::ifstream in(history_path);
  if (!in) {
    std::cerr << "cannot open " << history_path << "\n";
    return 2;
  }

  dynamo::sim::History history;
  Finals finals;
  std::string line;
  uint64_t line_number = 0;
  uint64_t torn_lines = 0;
  while (std::getline(in, line)) {
    ++line_number;
    if (line.empty()) continue;
    Struct record;
    auto parsed = google::protobuf::util::JsonStringToMessage(line, &record);
    if (!parsed.ok()) {
      // A run killed mid-write leaves a torn last line; anything else is a bug.
      if (in.peek() == EOF) {
        ++torn_lines;
        continue;
      }
      std::cerr << history_path << ":" << line_number << ": not JSON: " << parsed.ToString()
                << "\n";
      return 2;
    }
    const std::string op = Str(record, "op");
    if (op == "write") {
      const std::vector<std::string> seen = List(record, "seen");
      history.RecordWrite(Str(record, "key"), Str(record, "value"),
                          std::set<std::string>(seen.begin(), seen.end()));
    } else if (op == "delete") {
      const std::vector<std::string> seen = List(record, "seen");
      history.RecordDelete(Str(record, "key"), std::set<std::string>(seen.begin(), seen.end()));
    } else if (op == "ack") {
      history.MarkAcked(Str(record, "value"));
    } else if (op == "final") {
      if (!Has(record, "key") || !Has(record, "node")) {
        std::cerr << history_path << ":" << line_number << ": final read without key or node\n";
        return 2;
      }
      const std::vector<std::string> values = List(record, "values");
      finals.by_key[Str(record, "key")][Str(record, "node")] =
          FinalRead{std::set<std::string>(values.begin(), values.end()), Str(record, "context")};
    } else {
      std::cerr << history_path << ":" << line_number << ": unknown op '" << op << "'\n";
      return 2;
    }
  }

  // Every key a client wrote must have been read back at the end.
  std::set<std::string> written_keys;
  for (const auto& [value, w] : history.writes()) written_keys.insert(w.key);
  std::vector<std::string> problems;
  uint64_t unread_keys = 0;
  for (const std::string& key : written_keys) {
    if (!finals.by_key.contains(key)) {
      ++unread_keys;
      if (problems.size() < 10) {
        problems.push_back(dynamo::Cat("key '", key, "' was never read back"));
      }
    }
  }

  // Convergence: every node's read of a key returned the same siblings and
  // the same causal context. The checker sees the union, so that a value held
  // by one replica only still counts as present (it is not lost, only not yet
  // everywhere) while the run fails on convergence.
  std::map<std::string, std::vector<std::string>> final_values;
  uint64_t diverged_values = 0;
  uint64_t diverged_contexts = 0;
  uint64_t reads = 0;
  for (const auto& [key, by_node] : finals.by_key) {
    std::set<std::string> all;
    const FinalRead* first = nullptr;
    std::string first_node;
    bool values_differ = false;
    bool contexts_differ = false;
    for (const auto& [node, read] : by_node) {
      ++reads;
      all.insert(read.values.begin(), read.values.end());
      if (first == nullptr) {
        first = &read;
        first_node = node;
        continue;
      }
      if (read.values != first->values) {
        values_differ = true;
        if (problems.size() < 10) {
          problems.push_back(dynamo::Cat("replicas diverge on key '", key, "': ", first_node, " ",
                                         Joined(first->values), ", ", node, " ",
                                         Joined(read.values)));
        }
      } else if (read.context != first->context) {
        contexts_differ = true;
      }
    }
    if (values_differ) ++diverged_values;
    if (contexts_differ && !values_differ) ++diverged_contexts;
    final_values[key] = std::vector<std::string>(all.begin(), all.end());
  }

  const dynamo::sim::CheckReport report = history.Check(final_values);
  for (const std::string& p : report.problems) {
    if (problems.size() < 20) problems.push_back(p);
  }
  const bool converged = diverged_values == 0 && diverged_contexts == 0 && unread_keys == 0;
  const bool ok = report.ok() && converged;

  std::cout << "checker: " << report.Summary() << "\n";
  std::cout << "checker: " << finals.by_key.size() << " keys read back from every node (" << reads
            << " reads); siblings differ on " << diverged_values << " keys, contexts alone on "
            << diverged_contexts << "; " << unread_keys << " written keys not read back"
            << (torn_lines ? "; ignored a torn last line" : "") << "\n";
  for (const std::string& p : problems) std::cout << "checker: PROBLEM: " << p << "\n";
  std::cout << "checker: " << (ok ? "OK" : "FAILED") << "\n";

  if (!json_path.empty()) {
    std::ofstream out(json_path);
    out << "{\"writes_tried\":" << report.writes_tried
        << ",\"writes_acked\":" << report.writes_acked
        << ",\"acked_present\":" << report.acked_present
        << ",\"acked_superseded\":" << report.acked_superseded << ",\"lost\":" << report.lost
        << ",\"invented\":" << report.invented << ",\"keys\":" << report.keys
        << ",\"max_siblings\":" << report.max_siblings << ",\"diverged_values\":" << diverged_values
        << ",\"diverged_contexts\":" << diverged_contexts << ",\"unread_keys\":" << unread_keys
        << ",\"converged\":" << (converged ? "true" : "false")
        << ",\"ok\":" << (ok ? "true" : "false") << ",\"problems\":[";
    for (size_t i = 0; i < problems.size(); ++i) out << (i ? "," : "") << JsonString(problems[i]);
    out << "]}\n";
  }
  return ok ? 0 : 1;
}
