#pragma once

// How the core lays its records out in the StorageEngine's key spaces.
//   data:  be64(ring position) key            -> encoded VersionedObject
//   hints: u8(len) owner be64(position) key    -> encoded VersionedObject
//   meta:  name                                 -> bytes
//   item hashes: the data key                   -> be64(ItemHash(key, object))
// Data ordered by ring position makes a key range one contiguous scan (for
// anti-entropy leaves and handoff), like Cassandra's token order. Item hashes
// sit apart from the objects so that Merkle trees are built and compared
// without reading any object: about 30 bytes per key instead of the object.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace dynamo::core {

std::string EncodeBigEndian64(uint64_t v);
uint64_t DecodeBigEndian64(std::string_view bytes);  // bytes.size() >= 8

std::string DataKey(uint64_t position, std::string_view key);
struct DecodedDataKey {
  uint64_t position;
  std::string_view key;
};
std::optional<DecodedDataKey> ParseDataKey(std::string_view stored);

// Prefix of every hint held for one owner; the owner id is at most 255 bytes.
std::string HintPrefix(std::string_view owner);
std::string HintKey(std::string_view owner, uint64_t position, std::string_view key);
struct DecodedHintKey {
  std::string_view owner;
  uint64_t position;
  std::string_view key;
};
std::optional<DecodedHintKey> ParseHintKey(std::string_view stored);

// The smallest string greater than every string with this prefix ("" if none).
std::string PrefixEnd(std::string_view prefix);

namespace meta {
inline constexpr std::string_view kEpoch = "epoch";
inline constexpr std::string_view kCounterLimit = "counter_limit";
inline constexpr std::string_view kGeneration = "generation";
inline constexpr std::string_view kRing = "ring";
inline constexpr std::string_view kSelf = "self";  // own MemberState (intent, vnodes)
// be64(generation of the first start on this storage): MemberState.storage_born.
inline constexpr std::string_view kStorageBorn = "storage_born";
// v1::RemovedMembers: the removals this node knows (Membership::Removals).
inline constexpr std::string_view kRemovedMembers = "removed_members";
// v1::MemberState: the removal of this node's storage; no start succeeds.
inline constexpr std::string_view kRemoved = "removed";
// "stopped" once the node stopped cleanly (Node::Close), cleared at start: a
// start that finds it cleared follows a crash (see Node::Load).
inline constexpr std::string_view kCleanStop = "clean_stop";
inline constexpr std::string_view kStopped = "stopped";
// be64(generation): the item hash space covered every stored object at that
// generation of the node (see LocalStore::BeginGeneration).
inline constexpr std::string_view kItemHashesComplete = "item_hashes_complete";
// Prefix of the tombstones waiting to be reaped: "reap/" be64(due_ms)
// be64(generation) be64(sequence) -> v1::ReapRecord, so that a scan meets
// the oldest first.
inline constexpr std::string_view kReapPrefix = "reap/";
}  // namespace meta

}  // namespace dynamo::core
