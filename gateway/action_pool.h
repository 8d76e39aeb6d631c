// Worker threads for device actions (APDU exchange, pairing, ...), which
// block on hardware and so never run on gRPC's threads. Threads are kept
// and reused (creating one per APDU cost more than the APDU); a new one is
// started only when every thread is busy, up to `max_jobs`, so one stuck
// card occupies one thread and never delays another reader's exchange.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace portier::gateway {

class ActionPool {
 public:
  explicit ActionPool(std::size_t max_jobs) : max_jobs_(max_jobs) {}
  ~ActionPool() { drain(); }
  ActionPool(const ActionPool&) = delete;
  ActionPool& operator=(const ActionPool&) = delete;

  // False when `max_jobs` are already running or queued (or draining).
  bool submit(std::function<void()> job);
  // Runs what was submitted, then stops and joins every thread.
  void drain();

 private:
  void work();

  const std::size_t max_jobs_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  std::vector<std::thread> threads_;
  std::size_t idle_ = 0;
  std::size_t busy_ = 0;
  bool stopping_ = false;
};

}  // namespace portier::gateway
