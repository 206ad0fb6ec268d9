#pragma once

// One Dynamo node's protocol as a deterministic state machine: the place where
// ring, versions, quorums, hinted handoff, anti-entropy, range handoff and
// membership meet. It never touches the OS: callers pass in the time, the
// randomness seed, the storage engine, and deliver its outputs.
//
// Contract with the caller (the gRPC server, or the simulator):
//   - Every input is a method call taking now_ms; outputs are appended to the
//     Outputs passed in. now_ms must not step (the server's is monotonic):
//     timers, deadlines and the failure detector run on it. Writes are
//     stamped with the wall clock, now_ms + SetWallClockOffset's offset.
//   - If Outputs::sync is set, the storage engine must be synced before any
//     message or reply of that Outputs leaves (acknowledge only what is
//     durable), except the requests for which MayLeaveBeforeSync holds: a
//     coordinator's replica reads, writes and forwards go out at once, so its
//     own sync overlaps its replicas'. Outputs leave in the order produced,
//     those requests apart. If the sync fails, what waited for it leaves as
//     FailUnsynced makes it, and every Outputs after it waits for a sync of
//     its own until one succeeds (if syncs are real, not checks of buffered
//     storage). core::SyncGate (sync_gate.h) keeps this side of the contract.
//     Call Close after the last step of a clean stop.
//   - Every request envelope sent (is_reply false) is answered by exactly one
//     reply envelope to its sender, carrying the same request_id; a request the
//     transport could not deliver is reported with HandleSendFailure.
//   - Tick is called often (every few milliseconds of real time).
// Not thread-safe: one thread drives a Node.

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <limits>
#include <optional>
#include <set>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "dynamo/core/config.h"
#include "dynamo/core/failure_detector.h"
#include "dynamo/core/local_store.h"
#include "dynamo/core/membership.h"
#include "dynamo/core/merkle.h"
#include "dynamo/core/quorum.h"
#include "dynamo/core/random.h"
#include "dynamo/core/reap_queue.h"
#include "dynamo/storage/engine.h"
#include "dynamo/v1/admin.pb.h"
#include "dynamo/v1/kv.pb.h"
#include "dynamo/v1/replica.pb.h"

namespace dynamo::core {

struct ClientRequest {
  std::variant<v1::GetRequest, v1::PutRequest, v1::DeleteRequest> op;
  int64_t timeout_ms = 0;  // 0: the node's request timeout
};

struct ClientReply {
  uint64_t client_id = 0;
  absl::Status status;
  std::variant<std::monostate, v1::GetResponse, v1::PutResponse, v1::DeleteResponse> response;
};

struct OutMessage {
  std::string to_node;     // empty for a seed whose id is not known yet
  std::string to_address;
  v1::Envelope envelope;
};

struct Outputs {
  std::vector<OutMessage> messages;
  std::vector<ClientReply> replies;
  bool sync = false;
};

// Monotonic counts for metrics and the admin API.
struct NodeCounters {
  uint64_t gets = 0, puts = 0, deletes = 0;
  uint64_t forwarded = 0;
  uint64_t quorum_failures = 0;
  uint64_t invalid_requests = 0;
  uint64_t sibling_warnings = 0;
  uint64_t sibling_limit_refusals = 0;
  uint64_t read_repairs = 0;
  uint64_t read_digest_mismatches = 0;  // digest answers read again in full
  uint64_t hints_stored = 0;
  uint64_t hints_delivered = 0;
  uint64_t antientropy_exchanges = 0;
  uint64_t antientropy_keys_repaired = 0;
  uint64_t handoff_keys = 0;
  uint64_t handoff_bytes = 0;
  uint64_t tombstones_reaped = 0;
  uint64_t reaps_retried = 0;  // a reap an owner did not acknowledge, queued again
  uint64_t gossip_rounds = 0;
  uint64_t ring_changes = 0;
  uint64_t storage_errors = 0;
  uint64_t replica_writes = 0;
  uint64_t replica_reads = 0;
};

// An error reply in place of `reply`: the same sender, destination and
// request id, `status` instead of the answer.
v1::Envelope ErrorReplyFor(const v1::Envelope& reply, const absl::Status& status);

class Node {
 public:
  // Opens the node over its storage. A storage without an epoch is new or was
  // wiped, and one not stopped with Close follows a crash: in both cases the
  // node takes a new epoch, hence a new clock actor.
  static absl::StatusOr<std::unique_ptr<Node>> Open(const NodeConfig& config,
                                                    storage::StorageEngine* engine,
                                                    uint64_t random_seed, int64_t now_ms);
  ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  void HandleClient(uint64_t client_id, ClientRequest request, int64_t now_ms, Outputs* out);
  void HandleMessage(const v1::Envelope& envelope, int64_t now_ms, Outputs* out);
  // A request this node sent could not be delivered (connection refused,
  // transport deadline): counts as a failed answer, and the peer is suspected.
  void HandleSendFailure(const std::string& to_node, uint64_t request_id, int64_t now_ms,
                         Outputs* out);
  void Tick(int64_t now_ms, Outputs* out);
  // The wall clock's lead over now_ms, for the timestamps of the writes this
  // node coordinates (what clients' resolvers see). The caller refreshes it
  // as often as it ticks, so that timestamps follow the wall clock's steps
  // (NTP, a restored VM) while now_ms, and every timer on it, does not jump.
  void SetWallClockOffset(int64_t offset_ms) { wall_clock_offset_ms_ = offset_ms; }
  // A clean stop: records it and syncs, so that the next Open keeps the clock
  // actor. No step may follow.
  absl::Status Close();
  // Before a stop: a leaving node sends its state to every live peer, so that
  // the cluster learns it LEFT (or is still LEAVING) from the node itself, not
  // from gossip it may stop before sending. FarewellAnswered is true once each
  // peer has answered or failed; a node not leaving sends nothing.
  void Farewell(int64_t now_ms, Outputs* out);
  bool FarewellAnswered() const { return farewells_.empty(); }

  // Administration (the paper's explicit join and leave).
  // A non-empty `zone` becomes the node's zone (kept across restarts unless
  // --zone is given); a ring member's ranges then move as for SetVirtualNodes.
  absl::StatusOr<v1::JoinResponse> Join(const std::string& seed, const std::string& zone,
                                        int64_t now_ms, Outputs* out);
  v1::LeaveResponse Leave(int64_t now_ms, Outputs* out);
  absl::StatusOr<v1::SetVirtualNodesResponse> SetVirtualNodes(uint32_t vnodes, int64_t now_ms,
                                                              Outputs* out);
  // Removes another node, gone for good (see Membership::Remove); refused
  // while this node's failure detector finds it alive.
  absl::StatusOr<v1::RemoveNodeResponse> RemoveNode(const std::string& node, int64_t now_ms,
                                                    Outputs* out);
  // Set once this node learned that its storage was removed from the cluster:
  // the removal, recorded in storage so that no later Open succeeds. The
  // node must stop: its data predates deletes whose tombstones the cluster
  // may have reaped since, and would bring their values back.
  const std::optional<v1::MemberState>& removal() const { return removal_; }
  v1::NodeStatus Status(int64_t now_ms) const;
  v1::MembersResponse Members(int64_t now_ms) const;
  v1::TopologyResponse Topology(int64_t now_ms) const;
  // Ready to serve clients: it knows a ring.
  bool Ready(std::string* why) const;

  const NodeCounters& counters() const { return counters_; }
  const std::string& actor() const { return actor_; }
  const std::string& id() const { return config_.node_id; }
  const NodeConfig& config() const { return config_; }
  const Membership& membership() const { return *membership_; }
  const LocalStore& store() const { return store_; }
  uint64_t hint_backlog() const { return store_.total_hints(); }
  size_t operations_in_flight() const { return ops_.size(); }

 private:
  struct Op;
  struct Transfer;
  struct AeSession;
  enum class RequestKind {
    kOpRead, kOpWrite, kOpForward, kReadRepair, kHintDelivery, kHandoff, kGossip,
    kAeDigests, kAeRoots, kAeMerkle, kAeLeafKeys, kAeRead, kAePush, kReap,
    kHandoffQuery,
  };
  struct PendingRequest {
    RequestKind kind;
    uint64_t owner_id;  // op id, transfer range, AE session, hint owner index
    std::string node;
    int64_t deadline_ms;
  };

  Node(const NodeConfig& config, storage::StorageEngine* engine, uint64_t random_seed);
  absl::Status Load(int64_t now_ms);
  // A new clock actor for this node. Needed whenever the node forgets a value
  // it wrote itself (its storage was wiped, or it deleted a handed-off or
  // delivered copy): a version vector entry (actor, c) claims "I have seen
  // every value this actor wrote up to c", which an actor that forgot one of
  // its values can no longer claim.
  absl::Status TakeNewEpoch();
  // Called after deleting a stored copy: notes if it held a live value of this
  // node's current actor that nothing left here has seen; the actor must
  // then change.
  void NoteForgetting(const std::string& key, uint64_t position, std::string_view deleted);
  void ApplyEpochChange(Outputs* out);

  // --- messaging ---
  uint64_t Send(const std::string& to_node, RequestKind kind, uint64_t owner_id,
                v1::Envelope envelope, int64_t now_ms, Outputs* out, int64_t timeout_ms = 0);
  void SendToAddress(const std::string& address, v1::Envelope envelope, Outputs* out);
  void Reply(const v1::Envelope& request, v1::Envelope reply, Outputs* out);
  void ReplyError(const v1::Envelope& request, const absl::Status& status, Outputs* out);
  void OnReply(const v1::Envelope& reply, int64_t now_ms, Outputs* out);
  void OnRequestFailed(uint64_t request_id, int64_t now_ms, Outputs* out);
  void DispatchAnswer(const PendingRequest& pending, uint64_t request_id, const v1::Envelope* reply,
                      int64_t now_ms, Outputs* out);

  // --- coordination of client requests (node_coordinator.cc) ---
  // origin: the Forward envelope when another node asked, else null.
  void Coordinate(uint64_t client_id, const v1::Envelope* origin, ClientRequest request,
                  int64_t now_ms, Outputs* out);
  absl::Status ResolveQuorum(const v1::Quorum& q, size_t* n, size_t* r, size_t* w) const;
  void StartGet(Op& op, int64_t now_ms, Outputs* out);
  void SendReplicaRead(const Op& op, const std::string& node, bool digest_only, int64_t now_ms,
                       Outputs* out);
  void StartWrite(Op& op, int64_t now_ms, Outputs* out);
  // Sends the write to a node of the preference list to coordinate; false if
  // no untried healthy one is left.
  bool ForwardWrite(Op& op, int64_t now_ms, Outputs* out);
  void CoordinateWriteHere(Op& op, int64_t now_ms, Outputs* out);
  void OnOpAnswer(Op& op, const std::string& node, const v1::Envelope* reply, RequestKind kind,
                  int64_t now_ms, Outputs* out);
  using Response =
      std::variant<std::monostate, v1::GetResponse, v1::PutResponse, v1::DeleteResponse>;
  // Answers the op's client once; later calls do nothing.
  void Respond(Op& op, const absl::Status& status, Response response, int64_t now_ms,
               Outputs* out);
  // Replies when the quorum decides, repairs, and forgets the op once every
  // answer is in. The op may be destroyed: do not use it afterwards.
  void AdvanceOp(Op& op, int64_t now_ms, Outputs* out);
  void EraseOp(uint64_t op_id);
  void ReadRepair(Op& op, int64_t now_ms, Outputs* out);
  void ExpireOps(int64_t now_ms, Outputs* out);
  Dot NextDot();
  bool Healthy(const std::string& node, int64_t now_ms) const;

  // --- serving replica requests (node_replica.cc) ---
  void ServeRequest(const v1::Envelope& request, int64_t now_ms, Outputs* out);
  void ServeWrite(const v1::Envelope& request, Outputs* out);
  void ServeRead(const v1::Envelope& request, Outputs* out);
  void ServeForward(const v1::Envelope& request, int64_t now_ms, Outputs* out);
  void ServeMerkle(const v1::Envelope& request, Outputs* out);
  void ServeLeafKeys(const v1::Envelope& request, Outputs* out);
  void ServeReap(const v1::Envelope& request, Outputs* out);
  void ServeRangeRoots(const v1::Envelope& request, Outputs* out);
  void ServeRangeDigests(const v1::Envelope& request, Outputs* out);
  // What this node holds for a key: its replica and any hints for it, merged.
  // `replica`, if given, receives the replica's stored object alone.
  absl::StatusOr<std::optional<VersionedObject>> ReadLocal(
      const std::string& key, uint64_t position, std::optional<StoredObject>* replica = nullptr);
  // A replica read's answer for one key: the object (ReadLocal), or only its
  // digest (ReadDigest of it), which needs no object read when no hints
  // could add to it.
  absl::Status ObjectLocal(const std::string& key, uint64_t position, v1::ReadItem* item);
  absl::Status DigestLocal(const std::string& key, uint64_t position, v1::ReadItem* item);
  // What a coordinated write read of its replica's stored object: nothing,
  // the object (ReadLocal), or only its item meta (WriteBase).
  using ReplicaRead =
      std::variant<std::monostate, std::optional<StoredObject>, std::optional<ItemMeta>>;
  // What a coordinated write builds on: what this node holds for the key; or,
  // when that is its replica alone and the write's context covers the stored
  // clock, the clock alone (the write drops every stored value: no object
  // read). `read` receives what was read of the replica.
  absl::StatusOr<VersionedObject> WriteBase(const Op& op, const std::string& hint_for,
                                            ReplicaRead* read);
  // Stores an object for a target: as a replica, or as a hint for its owner.
  // `read` is what the caller read of the replica's stored object, merged
  // with without reading it again.
  absl::StatusOr<StoredObject> StoreFor(const std::string& hint_for, const std::string& key,
                                        uint64_t position, const VersionedObject& object,
                                        Outputs* out, const ReplicaRead& read = {});

  // --- background work (node_background.cc) ---
  void Gossip(int64_t now_ms, Outputs* out);
  void OnGossip(const v1::Gossip& gossip, int64_t now_ms, Outputs* out);
  void OnRingChanged(int64_t now_ms, Outputs* out);
  void PersistSelf(Outputs* out);
  void PersistRemovals(Outputs* out);
  absl::Status RemovedError(const v1::MemberState& removal) const;
  // Why this node coordinates no request now (removed, or waiting for its
  // first gossip), if it does not.
  std::optional<std::string> NotServingWhy() const;
  void OnSelfRemoved(const v1::MemberState& removal, Outputs* out);
  bool TakeBackgroundBudget(int64_t bytes, int64_t now_ms);
  void DeliverHints(int64_t now_ms, Outputs* out);
  void OnHintAnswer(uint64_t request_id, const v1::Envelope* reply, Outputs* out);
  void HandOffRanges(int64_t now_ms, Outputs* out);
  void OnHandoffAnswer(const PendingRequest& pending, const v1::Envelope* reply, int64_t now_ms,
                       Outputs* out);
  void StartAntiEntropy(int64_t now_ms, Outputs* out);
  // The ranges this node owns that `peer` owns too (by this node's view), in
  // ring order, and their digests in groups (RangeDigestsRequest): the
  // initiator and the receiver of an exchange compute both the same way.
  std::vector<size_t> RangesSharedWith(const std::string& peer) const;
  std::vector<uint64_t> RangeGroupDigests(const std::vector<size_t>& ranges,
                                          uint32_t group_ranges) const;
  void AeSendRoots(int64_t now_ms, Outputs* out);
  void OnAeAnswer(const PendingRequest& pending, const v1::Envelope* reply, int64_t now_ms,
                  Outputs* out);
  void AeSendNext(int64_t now_ms, Outputs* out);
  // Starts comparing the next differing range, or ends the round.
  void AeNextRange(int64_t now_ms, Outputs* out);
  void ReapTombstones(int64_t now_ms, Outputs* out);
  // An object a peer sent (a replica write, a read reply, an anti-entropy
  // read), decoded. InvalidArgument if malformed, or if its clock claims a
  // version of this node's actor that was never issued: stored, it would make
  // every later read's context of that key refused as forged.
  absl::StatusOr<VersionedObject> ObjectFromPeer(const v1::ObjectRecord& record) const;
  // Removes the tombstone with exactly `clock` if this node holds it; OK if
  // there is none to remove. An error only if storage failed.
  absl::Status ReapLocal(const std::string& key, uint64_t position, const VersionVector& clock,
                         Outputs* out);
  void OnReapAnswer(uint64_t attempt_id, const v1::Envelope* reply);
  // Whether this node holds copies bound for others: hints, or keys of
  // ranges it no longer owns.
  bool HandingOff() const;
  // Asks every peer that has not left whether it hands data off.
  void SendHandoffQuery(int64_t now_ms, Outputs* out);
  void OnHandoffQueryAnswer(uint64_t query_id, const std::string& peer,
                            const v1::Envelope* reply);
  // Gossips what this node holds: drained (left, holds nothing) and
  // handing_off (hints, or keys of ranges it no longer owns).
  void UpdateHoldings(Outputs* out);
  bool Owns(size_t range_index) const;
  // Keys this node holds in ranges it does not own (a handoff pending).
  uint64_t UnownedKeys() const;
  std::vector<std::string> OwnersOf(size_t range_index) const;

  NodeConfig config_;
  storage::StorageEngine* engine_;
  LocalStore store_;
  Random rng_;
  FailureDetector fd_;
  std::unique_ptr<Membership> membership_;
  std::string actor_;
  bool epoch_change_pending_ = false;
  uint64_t next_counter_ = 1;
  uint64_t counter_limit_ = 0;
  NodeCounters counters_;

  uint64_t next_request_id_ = 1;
  uint64_t next_op_id_ = 1;
  std::map<uint64_t, std::unique_ptr<Op>> ops_;
  std::set<std::pair<int64_t, uint64_t>> op_deadlines_;
  std::map<uint64_t, PendingRequest> requests_;
  std::set<std::pair<int64_t, uint64_t>> request_deadlines_;

  int64_t wall_clock_offset_ms_ = 0;
  int64_t next_gossip_ms_ = 0;
  std::set<uint64_t> farewells_;  // gossip requests of Farewell not answered yet
  std::optional<v1::MemberState> removal_;
  // Whether gossip from a peer has arrived since this node started, or it
  // knows no member that could send any (Membership::HasPeers). Until then it coordinates nothing and pushes no
  // data (hints, handoff, anti-entropy): it may have been removed while it
  // was down, and its old copies must not reach the cluster before it learns
  // so (Cassandra's shadow round at start serves the same end).
  bool HeardFromCluster() const;
  bool heard_gossip_ = false;
  int64_t next_background_ms_ = 0;
  int64_t next_antientropy_ms_ = 0;

  // Background budget (token bucket, bytes) and foreground latency (EWMA).
  double budget_bytes_ = 0;
  int64_t budget_refilled_ms_ = 0;
  double foreground_latency_ms_ = 0;

  std::map<std::string, std::set<uint64_t>, std::less<>> hint_batches_;  // owner -> requests
  std::map<uint64_t, std::string> hint_request_owner_;
  struct HintBatchItem {
    std::string owner;
    std::string key;
    uint64_t position;
    std::string encoded;
  };
  std::map<uint64_t, std::vector<HintBatchItem>> hint_request_items_;

  uint64_t next_transfer_id_ = 1;
  std::map<size_t, std::unique_ptr<Transfer>> transfers_;  // by range index
  std::map<size_t, std::string> transfer_cursor_;          // resume point per range
  struct TransferStats {
    std::vector<std::string> targets;
    uint64_t keys_sent = 0;
    uint64_t bytes_sent = 0;
  };
  std::map<size_t, TransferStats> transfer_stats_;

  std::unique_ptr<AeSession> ae_;
  uint64_t next_ae_session_ = 1;
  size_t ae_next_peer_ = 0;

  ReapQueue reap_queue_;
  // Reaps sent to the other owners, until each has answered.
  struct ReapAttempt {
    std::string record;  // the reap's record, queued again in case one fails
    size_t unanswered = 0;
    bool failed = false;
  };
  std::map<uint64_t, ReapAttempt> reap_attempts_;
  uint64_t next_reap_attempt_ = 1;
  // The handoff query in flight, if any, and when the last one that every
  // peer answered "nothing held" was sent: reaps due by then may go.
  struct HandoffQueryRound {
    uint64_t id = 0;
    int64_t sent_ms = 0;
    size_t unanswered = 0;
    std::vector<std::string> holding;  // peers that did not answer "nothing held"
  };
  std::optional<HandoffQueryRound> handoff_query_;
  std::vector<std::string> last_round_holding_;
  uint64_t next_handoff_query_ = 1;
  int64_t next_handoff_query_ms_ = std::numeric_limits<int64_t>::min();
  int64_t nothing_handed_off_as_of_ms_ = std::numeric_limits<int64_t>::min();
};

}  // namespace dynamo::core
