#include "common/grpc/executor.h"

#include <pthread.h>

#include <utility>

#include "absl/strings/str_cat.h"

namespace helpline::rpc {

Executor::Executor(size_t threads, size_t max_queued, std::string name)
    : max_queued_(max_queued), name_(std::move(name)) {
  if (threads == 0) threads = 1;
  threads_.reserve(threads);
  for (size_t i = 0; i < threads; ++i) {
    threads_.emplace_back([this] { Loop(); });
    // Linux thread names are at most 15 characters.
    pthread_setname_np(threads_.back().native_handle(), name_.substr(0, 15).c_str());
  }
}

Executor::~Executor() { Drain(); }

absl::Status Executor::TrySchedule(std::function<void()> task) {
  {
    std::lock_guard lock(mu_);
    if (stopping_) {
      return absl::UnavailableError(absl::StrCat("executor '", name_, "' is shutting down"));
    }
    if (queue_.size() >= max_queued_) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "executor '", name_, "': ", queue_.size(), " requests already waiting (max ",
          max_queued_, "); retry later"));
    }
    queue_.push_back(std::move(task));
  }
  cv_.notify_one();
  return absl::OkStatus();
}

void Executor::Drain() {
  std::vector<std::thread> threads;
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    threads.swap(threads_);
  }
  cv_.notify_all();
  for (auto& t : threads) {
    if (t.joinable()) t.join();
  }
}

size_t Executor::queued() const {
  std::lock_guard lock(mu_);
  return queue_.size();
}

void Executor::Loop() {
  for (;;) {
    std::function<void()> task;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // Stopping and nothing left to run.
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    if (task) task();
  }
}

}  // namespace helpline::rpc
