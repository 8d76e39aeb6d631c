#include "action_pool.h"

namespace portier::gateway {

bool ActionPool::submit(std::function<void()> job) {
  std::lock_guard lock(mu_);
  if (stopping_ || busy_ + queue_.size() >= max_jobs_) return false;
  queue_.push_back(std::move(job));
  if (idle_ > 0) {
    cv_.notify_one();
  } else {
    threads_.emplace_back([this] { work(); });
  }
  return true;
}

void ActionPool::work() {
  std::unique_lock lock(mu_);
  for (;;) {
    ++idle_;
    cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    --idle_;
    if (queue_.empty()) return;  // stopping, nothing left
    auto job = std::move(queue_.front());
    queue_.pop_front();
    ++busy_;
    lock.unlock();
    job();
    lock.lock();
    --busy_;
  }
}

void ActionPool::drain() {
  std::vector<std::thread> threads;
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    threads.swap(threads_);
  }
  cv_.notify_all();
  for (auto& t : threads) t.join();
}

}  // namespace portier::gateway
