// A bounded pool of worker threads for blocking work (models, OCR, Redis) so that it never
// runs on gRPC's callback threads. A full queue is backpressure: TrySchedule answers
// RESOURCE_EXHAUSTED and the caller finishes the RPC with it.
//
// Thread-safe. The destructor drains: it runs what is queued, then joins the threads.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/status/status.h"

namespace helpline::rpc {

class Executor {
 public:
  // `threads` >= 1 workers; at most `max_queued` tasks wait for a worker.
  Executor(size_t threads, size_t max_queued, std::string name = "worker");
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  // Queues `task`. RESOURCE_EXHAUSTED when the queue is full, UNAVAILABLE after Drain().
  absl::Status TrySchedule(std::function<void()> task);
  // Stops taking work, runs what is queued, joins the workers. Idempotent.
  void Drain();
  size_t queued() const;

 private:
  void Loop();

  const size_t max_queued_;
  const std::string name_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace helpline::rpc
