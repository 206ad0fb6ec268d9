#pragma once

// One thread drives a gRPC completion queue: it polls the node's sockets and
// runs each completed operation's tag, in line. With gRPC's callback API two
// or more threads take turns at the poller, and each turn is a futex wake-up
// that cost more than the work below saturation (bench/RESULTS.md, F25).
// The node's server calls, and its calls and streams to peers, all complete
// here.

#include <atomic>
#include <memory>
#include <thread>

#include "grpcpp/alarm.h"
#include "grpcpp/grpcpp.h"

namespace dynamo::server {

// What an operation started on the queue runs when it completes (ok: it
// succeeded; else the call is over or the queue shuts down).
class CompletionTag {
 public:
  virtual void Done(bool ok) = 0;

 protected:
  ~CompletionTag() = default;
};

// A tag that calls owner->*kMethod: an object with several operations in
// flight (a stream's read and write) holds one of these per operation.
template <typename Owner, void (Owner::*kMethod)(bool)>
class MemberTag final : public CompletionTag {
 public:
  explicit MemberTag(Owner* owner) : owner_(owner) {}
  void Done(bool ok) override { (owner_->*kMethod)(ok); }
  void* tag() { return static_cast<CompletionTag*>(this); }

 private:
  Owner* const owner_;
};

class CompletionLoop {
 public:
  explicit CompletionLoop(std::unique_ptr<grpc::CompletionQueue> cq) : cq_(std::move(cq)) {}
  ~CompletionLoop() { Stop(); }

  grpc::CompletionQueue* cq() const { return cq_.get(); }
  // Every tag given to operations on cq() must be a CompletionTag*.
  void Start(const char* thread_name);
  // Shuts the queue down and runs the tags still due, then returns. Stop the
  // server (grpc::Server::Shutdown) and the calls to peers first: only tags
  // run on the loop may start operations after that, and they must not once
  // stopping() (the queue is shutting down).
  void Stop();
  bool stopping() const { return stopping_.load(); }

 private:
  // The queue shuts down from its own thread, so that no tag running then
  // can start an operation on it after it has (see stopping()).
  void OnStop(bool);

  std::unique_ptr<grpc::CompletionQueue> cq_;
  std::thread thread_;
  bool stopped_ = false;
  std::atomic<bool> stopping_{false};
  grpc::Alarm stop_alarm_;
  MemberTag<CompletionLoop, &CompletionLoop::OnStop> stop_tag_{this};
};

}  // namespace dynamo::server
