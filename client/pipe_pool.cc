#include "pipe_pool.h"

#include <algorithm>
#include <iterator>
#include <string>
#include <utility>

#include "dynamo/base/strings.h"

namespace dynamo::client::internal {
namespace {

// The operations of a pipe, as tags on its own queue.
enum Op : intptr_t { kStart = 1, kWrite, kRead, kFinish, kOps };

void* Tag(Op op) { return reinterpret_cast<void*>(static_cast<intptr_t>(op)); }

}  // namespace

struct PipePool::Pipe {
  grpc::ClientContext context;
  grpc::CompletionQueue cq;
  std::unique_ptr<grpc::ClientAsyncReaderWriter<v1::PipeRequest, v1::PipeResponse>> stream;
  bool pending[kOps] = {};  // operations started and not yet taken from cq
  bool finished = false;    // Finish was taken

  // Waits for every pending operation; past `deadline` the pipe is
  // cancelled, which ends them at once. Records each one's ok in oks.
  // False if the deadline passed.
  bool Wait(std::chrono::system_clock::time_point deadline, bool oks[kOps]) {
    bool in_time = true;
    while (std::any_of(std::begin(pending), std::end(pending), [](bool p) { return p; })) {
      void* tag = nullptr;
      bool ok = false;
      const grpc::CompletionQueue::NextStatus next =
          in_time ? cq.AsyncNext(&tag, &ok, deadline)
                  : (cq.Next(&tag, &ok) ? grpc::CompletionQueue::GOT_EVENT
                                        : grpc::CompletionQueue::SHUTDOWN);
      if (next == grpc::CompletionQueue::TIMEOUT) {
        context.TryCancel();
        in_time = false;
        continue;
      }
      if (next == grpc::CompletionQueue::SHUTDOWN) break;  // not shut down before the destructor
      const auto op = static_cast<Op>(reinterpret_cast<intptr_t>(tag));
      pending[op] = false;
      oks[op] = ok;
    }
    return in_time;
  }

  // The stream's status, once its reads and writes have ended; cancelled
  // first if the node does not send it by `deadline`.
  grpc::Status Finish(std::chrono::system_clock::time_point deadline) {
    grpc::Status status;
    stream->Finish(&status, Tag(kFinish));
    pending[kFinish] = true;
    bool oks[kOps] = {};
    Wait(deadline, oks);
    finished = true;
    return status;
  }

  ~Pipe() {
    if (stream != nullptr && !finished) {
      context.TryCancel();
      (void)Finish(std::chrono::system_clock::time_point::max());
    }
    cq.Shutdown();
    void* tag = nullptr;
    bool ok = false;
    while (cq.Next(&tag, &ok)) {
    }
  }
};

PipePool::PipePool(std::shared_ptr<v1::KV::Stub> stub) : stub_(std::move(stub)) {}
PipePool::~PipePool() = default;

size_t PipePool::idle() const {
  absl::MutexLock lock(&mu_);
  return idle_.size();
}

std::unique_ptr<PipePool::Pipe> PipePool::Borrow(bool* reused) {
  {
    absl::MutexLock lock(&mu_);
    if (!idle_.empty()) {
      // The one returned last: its connection was alive most recently.
      std::unique_ptr<Pipe> pipe = std::move(idle_.back());
      idle_.pop_back();
      *reused = true;
      return pipe;
    }
  }
  *reused = false;
  auto pipe = std::make_unique<Pipe>();
  pipe->stream = stub_->PrepareAsyncPipe(&pipe->context, &pipe->cq);
  pipe->stream->StartCall(Tag(kStart));
  pipe->pending[kStart] = true;
  return pipe;
}

void PipePool::DropIdle() {
  std::vector<std::unique_ptr<Pipe>> dropped;
  {
    absl::MutexLock lock(&mu_);
    dropped.swap(idle_);
  }
  // They close here, outside the lock.
}

void PipePool::Return(std::unique_ptr<Pipe> pipe) {
  absl::MutexLock lock(&mu_);
  if (idle_.size() < kIdleMax) idle_.push_back(std::move(pipe));
  // else it closes as it goes out of scope, after the lock
}

grpc::Status PipePool::Call(v1::PipeRequest& request, v1::PipeResponse* response,
                            std::chrono::system_clock::time_point deadline) {
  for (int round = 1;; ++round) {
    bool reused = false;
    std::unique_ptr<Pipe> pipe = Borrow(&reused);
    request.set_id(next_id_.fetch_add(1));
    response->Clear();
    bool oks[kOps] = {};
    oks[kStart] = true;  // a reused pipe started long ago
    // A new pipe's call must have started before anything else is sent on it.
    if (pipe->pending[kStart] && !pipe->Wait(deadline, oks)) {
      return grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                          "the pipe did not open before the deadline");
    }
    if (oks[kStart]) {
      pipe->stream->Write(request, Tag(kWrite));
      pipe->stream->Read(response, Tag(kRead));
      pipe->pending[kWrite] = pipe->pending[kRead] = true;
      if (!pipe->Wait(deadline, oks)) {
        return grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                            "no answer on the pipe before the deadline");
      }
    }
    if (oks[kStart] && oks[kWrite] && oks[kRead]) {
      if (response->id() != request.id()) {
        return grpc::Status(grpc::StatusCode::INTERNAL,
                            Cat("the pipe answered request ", response->id(), " to request ",
                                request.id()));
      }
      Return(std::move(pipe));
      return grpc::Status::OK;
    }
    grpc::Status status = pipe->Finish(deadline);
    // A pipe that sat idle while its node stopped (which ends idle pipes
    // with UNAVAILABLE) or its connection dropped fails the request it is
    // lent for, which the node then never took: a fresh pipe carries it,
    // once. (Had a node taken it and died before answering, this is the
    // retry the client would make anyway, with the same risk of a second
    // sibling; see Client's Retries.)
    // The pipes idle beside it most likely died the same way (the node's
    // restart ends every one): they go, so that the retry opens a new one.
    if (reused && round == 1 &&
        (!oks[kWrite] || status.error_code() == grpc::StatusCode::UNAVAILABLE)) {
      DropIdle();
      continue;
    }
    if (status.ok()) {
      status = grpc::Status(grpc::StatusCode::UNAVAILABLE, "the node closed the pipe");
    }
    if (status.error_code() == grpc::StatusCode::CANCELLED) {
      // Only this side cancels: Finish found the deadline passed meanwhile.
      status = grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                            "the pipe broke and its status did not come before the deadline");
    }
    if (status.error_code() == grpc::StatusCode::UNIMPLEMENTED) served_.store(false);
    return status;
  }
}

}  // namespace dynamo::client::internal
