#include "dynamo/core/sync_gate.h"

#include <algorithm>
#include <iterator>
#include <utility>

#include "absl/strings/str_cat.h"

namespace dynamo::core {

bool MayLeaveBeforeSync(const v1::Envelope& envelope) {
  return !envelope.is_reply() &&
         (envelope.has_read() || envelope.has_write() || envelope.has_forward());
}

Outputs TakeEarlyRequests(Outputs& out) {
  auto early =
      std::stable_partition(out.messages.begin(), out.messages.end(),
                            [](const OutMessage& m) { return !MayLeaveBeforeSync(m.envelope); });
  Outputs taken;
  taken.messages.assign(std::make_move_iterator(early),
                        std::make_move_iterator(out.messages.end()));
  out.messages.erase(early, out.messages.end());
  return taken;
}

void FailUnsynced(Outputs& out, const absl::Status& status) {
  const absl::Status failed(status.code(),
                            absl::StrCat("storage could not sync: ", status.message()));
  for (ClientReply& r : out.replies) {
    r.status = failed;
    r.response = std::monostate();
  }
  std::erase_if(out.messages, [](const OutMessage& m) { return !m.envelope.is_reply(); });
  for (OutMessage& m : out.messages) m.envelope = ErrorReplyFor(m.envelope, failed);
}

Outputs SyncGate::Take(Outputs out) {
  out.sync |= real_syncs_ && !error_.ok();
  if (out.sync) ++requested_;
  if (held_.empty() && requested_ <= done_) return out;
  // The replicas' syncs then overlap this node's.
  Outputs early = TakeEarlyRequests(out);
  held_.push_back({requested_, std::move(out)});
  return early;
}

std::vector<Outputs> SyncGate::Synced(uint64_t through, const absl::Status& status) {
  done_ = through;
  error_ = status;
  std::vector<Outputs> leaving;
  while (!held_.empty() && held_.front().after_sync <= through) {
    leaving.push_back(std::move(held_.front().out));
    held_.pop_front();
    if (!status.ok()) FailUnsynced(leaving.back(), status);
  }
  return leaving;
}

std::vector<Outputs> SyncGate::TakeSyncingInLine(Outputs out,
                                                 const std::function<absl::Status()>& sync) {
  std::vector<Outputs> leaving;
  leaving.push_back(Take(std::move(out)));
  if (!holding()) return leaving;
  for (Outputs& o : Synced(requested(), sync())) leaving.push_back(std::move(o));
  return leaving;
}

}  // namespace dynamo::core
