#include "completion_loop.h"

#include <pthread.h>

#include <string>

namespace dynamo::server {

void CompletionLoop::Start(const char* thread_name) {
  thread_ = std::thread([this, name = std::string(thread_name)] {
    pthread_setname_np(pthread_self(), name.c_str());
    void* tag = nullptr;
    bool ok = false;
    while (cq_->Next(&tag, &ok)) static_cast<CompletionTag*>(tag)->Done(ok);
  });
}

void CompletionLoop::OnStop(bool) {
  stopping_.store(true);
  cq_->Shutdown();
}

void CompletionLoop::Stop() {
  if (stopped_) return;
  stopped_ = true;
  if (thread_.joinable()) {
    stop_alarm_.Set(cq_.get(), gpr_time_0(GPR_CLOCK_REALTIME), stop_tag_.tag());
    thread_.join();
    return;
  }
  // Never started: the tags due still run, here.
  OnStop(true);
  void* tag = nullptr;
  bool ok = false;
  while (cq_->Next(&tag, &ok)) static_cast<CompletionTag*>(tag)->Done(ok);
}

}  // namespace dynamo::server
