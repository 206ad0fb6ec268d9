#include "history.h"

#include <functional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace dynamo::sim {

std::string CheckReport::Summary() const {
  return absl::StrFormat(
      "%d writes tried, %d acknowledged (%d present, %d superseded by later writes or deletes "
      "that read them), %d lost, %d invented%s; %d deletes; %d keys, at most %d siblings",
      writes_tried, writes_acked, acked_present, acked_superseded, lost, invented,
      versions_checked ? absl::StrCat(", ", resurrected, " resurrected") : "", deletes_tried, keys,
      max_siblings);
}

void History::RecordWrite(const std::string& key, const std::string& value,
                          std::set<std::string> seen, std::string context) {
  writes_[value] = WriteRecord{key, value, std::move(seen), false, std::move(context)};
}

size_t History::RecordDelete(const std::string& key, std::set<std::string> seen,
                             std::string context) {
  deletes_.push_back(WriteRecord{key, "", std::move(seen), false, std::move(context)});
  return deletes_.size() - 1;
}

void History::MarkDeleteAcked(size_t delete_number) {
  if (delete_number < deletes_.size()) deletes_[delete_number].acked = true;
}

void History::CheckVersions(const std::map<std::string, std::vector<FinalVersion>>& final_versions,
                            const ContextCovers& covers, CheckReport* report) const {
  report->versions_checked = true;
  const auto check = [&](const WriteRecord& w, const char* what) {
    if (!w.acked || w.context.empty()) return;
    auto versions = final_versions.find(w.key);
    if (versions == final_versions.end()) return;
    for (const FinalVersion& v : versions->second) {
      if (!covers(w.key, w.context, v.actor, v.counter)) continue;
      ++report->resurrected;
      if (report->problems.size() < 10) {
        report->problems.push_back(absl::StrCat(
            "key '", w.key, "' holds '", v.value, "' (", v.actor, ":", v.counter,
            ") again, which an acknowledged ", what,
            w.value.empty() ? "" : absl::StrCat(" of '", w.value, "'"), " replaced"));
      }
    }
  };
  for (const auto& [value, w] : writes_) check(w, "write");
  for (const WriteRecord& d : deletes_) check(d, "delete");
}

void History::MarkAcked(const std::string& value) {
  auto it = writes_.find(value);
  if (it != writes_.end()) it->second.acked = true;
}

CheckReport History::Check(const std::map<std::string, std::vector<std::string>>& final_values) const {
  CheckReport report;
  std::set<std::string> present;
  for (const auto& [key, values] : final_values) {
    ++report.keys;
    report.max_siblings = std::max<uint64_t>(report.max_siblings, values.size());
    for (const std::string& v : values) {
      auto it = writes_.find(v);
      if (it == writes_.end() || it->second.key != key) {
        ++report.invented;
        if (report.problems.size() < 10) {
          report.problems.push_back(absl::StrCat("key '", key, "' holds '", v, "', never written to it"));
        }
        continue;
      }
      present.insert(v);
    }
  }
  // Which writes read each value: a value may be gone only if a write that
  // read it is itself present or (recursively) superseded that way.
  std::map<std::string, std::vector<const WriteRecord*>> readers;
  for (const auto& [value, w] : writes_) {
    for (const std::string& s : w.seen) readers[s].push_back(&w);
  }
  // Values a delete read: replaced by its tombstone, which leaves nothing to
  // find at the end (and may have been reaped).
  std::set<std::string> deleted;
  for (const WriteRecord& d : deletes_) deleted.insert(d.seen.begin(), d.seen.end());
  report.deletes_tried = deletes_.size();
  std::map<std::string, bool> memo;
  std::function<bool(const std::string&)> survives = [&](const std::string& v) -> bool {
    if (present.contains(v) || deleted.contains(v)) return true;
    auto m = memo.find(v);
    if (m != memo.end()) return m->second;
    memo[v] = false;  // cycles are impossible (reads precede writes); guard anyway
    bool result = false;
    auto r = readers.find(v);
    if (r != readers.end()) {
      for (const WriteRecord* w : r->second) {
        if (survives(w->value)) {
          result = true;
          break;
        }
      }
    }
    memo[v] = result;
    return result;
  };
  for (const auto& [value, w] : writes_) {
    ++report.writes_tried;
    if (!w.acked) continue;
    ++report.writes_acked;
    if (present.contains(value)) {
      ++report.acked_present;
    } else if (survives(value)) {
      ++report.acked_superseded;
    } else {
      ++report.lost;
      if (report.problems.size() < 10) {
        report.problems.push_back(absl::StrCat("acknowledged write '", value, "' to key '", w.key,
                                               "' is gone and no surviving write read it"));
      }
    }
  }
  return report;
}

}  // namespace dynamo::sim
