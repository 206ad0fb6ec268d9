#include "dynamo/operator/work_queue.h"

#include <algorithm>

namespace dynamo::op {

WorkQueue::WorkQueue(Options options) : options_(options) {}

void WorkQueue::AddAfter(const std::string& key, int64_t delay_ms) {
  const TimePoint when = std::chrono::steady_clock::now() + std::chrono::milliseconds(delay_ms);
  std::lock_guard<std::mutex> lock(mu_);
  if (shutdown_) return;
  const auto it = due_.find(key);
  if (it != due_.end()) {
    it->second = std::min(it->second, when);
  } else if (due_.size() >= kKeysMax) {
    ++dropped_;
    return;
  } else {
    due_.emplace(key, when);
  }
  cv_.notify_all();
}

void WorkQueue::AddRateLimited(const std::string& key) {
  int64_t delay_ms = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const int n = failures_[key]++;
    delay_ms = options_.backoff_initial_ms << std::min(n, 20);
    delay_ms = std::min(delay_ms, options_.backoff_max_ms);
  }
  AddAfter(key, delay_ms);
}

void WorkQueue::Forget(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  failures_.erase(key);
}

int WorkQueue::Failures(const std::string& key) const {
  std::lock_guard<std::mutex> lock(mu_);
  const auto it = failures_.find(key);
  return it == failures_.end() ? 0 : it->second;
}

bool WorkQueue::Get(std::string* key) {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    if (shutdown_) return false;
    const TimePoint now = std::chrono::steady_clock::now();
    TimePoint next = TimePoint::max();
    for (auto it = due_.begin(); it != due_.end(); ++it) {
      if (processing_.count(it->first)) continue;
      if (it->second <= now) {
        *key = it->first;
        due_.erase(it);
        processing_.insert(*key);
        return true;
      }
      next = std::min(next, it->second);
    }
    if (next == TimePoint::max()) {
      cv_.wait(lock);
    } else {
      cv_.wait_until(lock, next);
    }
  }
}

void WorkQueue::Done(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  processing_.erase(key);
  cv_.notify_all();
}

void WorkQueue::ShutDown() {
  std::lock_guard<std::mutex> lock(mu_);
  shutdown_ = true;
  cv_.notify_all();
}

size_t WorkQueue::waiting() const {
  std::lock_guard<std::mutex> lock(mu_);
  return due_.size();
}

uint64_t WorkQueue::dropped() const {
  std::lock_guard<std::mutex> lock(mu_);
  return dropped_;
}

}  // namespace dynamo::op
