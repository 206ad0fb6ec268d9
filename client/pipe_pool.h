#pragma once

// KV.Pipe streams to one node, each lent to one request at a time. A request
// on an open stream costs the node and the client less than a unary call
// (bench/RESULTS.md, F32, F36); the node serves a pipe's requests one after
// the other, so concurrent callers each borrow their own pipe, and a pipe
// goes back to the pool when its answer is in. Each pipe has its own
// completion queue, polled by the thread that borrowed it, so that a request
// ends at its deadline even when the node never answers (the pipe is then
// cancelled and dropped). Thread-safe.

#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "dynamo/v1/kv.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace dynamo::client::internal {

class PipePool {
 public:
  // Idle pipes kept beyond this many are closed: more callers than this at
  // once open pipes that do not outlive their request.
  static constexpr size_t kIdleMax = 64;

  explicit PipePool(std::shared_ptr<v1::KV::Stub> stub);
  ~PipePool();
  PipePool(const PipePool&) = delete;
  PipePool& operator=(const PipePool&) = delete;

  // Sends `request` (its id is set here) and waits for its response until
  // `deadline`. The status is the stream's when the pipe broke (UNAVAILABLE
  // if the node went away, UNAUTHENTICATED, ...), DEADLINE_EXCEEDED when no
  // answer came in time, else OK: the request's own status is then in the
  // response's code and message. An idle pipe found broken before the
  // request left (the node restarted meanwhile) is replaced once, by a new
  // pipe: the other idle pipes, which died with it, are closed too.
  grpc::Status Call(v1::PipeRequest& request, v1::PipeResponse* response,
                    std::chrono::system_clock::time_point deadline);

  size_t idle() const;
  // False once the node answered a pipe with UNIMPLEMENTED (a node older
  // than KV.Pipe): the client sends unary calls to it instead.
  bool served() const { return served_.load(); }

 private:
  struct Pipe;
  std::unique_ptr<Pipe> Borrow(bool* reused);
  void Return(std::unique_ptr<Pipe> pipe);
  // Closes every idle pipe.
  void DropIdle();

  const std::shared_ptr<v1::KV::Stub> stub_;
  std::atomic<bool> served_{true};
  mutable absl::Mutex mu_;
  std::vector<std::unique_ptr<Pipe>> idle_ ABSL_GUARDED_BY(mu_);
  std::atomic<uint64_t> next_id_{1};
};

}  // namespace dynamo::client::internal
