#pragma once

// What clients did and what they were told, and the checker that decides from
// it whether the store kept its promise: no acknowledged write lost, no value
// invented. Pure bookkeeping; used by the simulator and by real-process tests.

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace dynamo::sim {

struct WriteRecord {
  std::string key;
  std::string value;
  std::set<std::string> seen;  // values the read this write was based on returned
  bool acked = false;
  std::string context;  // what it was sent with (empty: blind), where known
};

// A version of the final state: a live sibling and its dot.
struct FinalVersion {
  std::string value;
  std::string actor;
  uint64_t counter = 0;
};

// Whether a context sent with a write of `key` covers the version with this
// dot, i.e. whether the write replaced it.
using ContextCovers = std::function<bool(const std::string& key, const std::string& context,
                                         const std::string& actor, uint64_t counter)>;

struct CheckReport {
  uint64_t deletes_tried = 0;  // a delete's read values may be gone: it replaced them
  uint64_t writes_tried = 0;
  uint64_t writes_acked = 0;
  uint64_t acked_present = 0;     // still a value or sibling at the end
  uint64_t acked_superseded = 0;  // replaced by a later write that had read it
  uint64_t lost = 0;              // must be 0
  uint64_t invented = 0;          // values no client wrote: must be 0
  // Versions present at the end that an acknowledged write or delete had
  // replaced (its context covered their dots): a deleted or overwritten value
  // come back. Must be 0. Checked only where the dots are known (CheckVersions).
  uint64_t resurrected = 0;
  bool versions_checked = false;
  uint64_t keys = 0;
  uint64_t max_siblings = 0;
  std::vector<std::string> problems;  // the first few, in words
  bool ok() const { return lost == 0 && invented == 0 && resurrected == 0; }
  std::string Summary() const;
};

class History {
 public:
  void RecordWrite(const std::string& key, const std::string& value, std::set<std::string> seen,
                   std::string context = "");
  void MarkAcked(const std::string& value);
  // A delete with the context of a read that returned `seen`. Its tombstone
  // leaves no value to look for at the end, so whether or not it was
  // acknowledged it may have replaced what it read: those values may be gone.
  // Returns its number, for MarkDeleteAcked.
  size_t RecordDelete(const std::string& key, std::set<std::string> seen,
                      std::string context = "");
  void MarkDeleteAcked(size_t delete_number);
  const std::map<std::string, WriteRecord>& writes() const { return writes_; }

  // final_values: for every key, the values (siblings, tombstones excluded)
  // of the final state, read from every replica after healing.
  CheckReport Check(const std::map<std::string, std::vector<std::string>>& final_values) const;
  // Adds to `report` the versions of the final state that an acknowledged
  // write or delete had replaced. Values alone cannot tell: a write applied
  // twice (a retried forward) is two versions of one value, and a read may
  // have seen, and a write replaced, only one of them.
  void CheckVersions(const std::map<std::string, std::vector<FinalVersion>>& final_versions,
                     const ContextCovers& covers, CheckReport* report) const;

 private:
  std::map<std::string, WriteRecord> writes_;  // by value (values are unique)
  std::vector<WriteRecord> deletes_;
};

}  // namespace dynamo::sim
