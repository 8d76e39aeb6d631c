#include "hub_timer.h"

#include <algorithm>

namespace portier::gateway {

HubTimer::HubTimer(Work work, std::chrono::milliseconds reverify_every)
    : work_(std::move(work)), every_(reverify_every), thread_([this] { run(); }) {}

HubTimer::~HubTimer() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void HubTimer::poke() {
  {
    std::lock_guard lock(mu_);
    poked_ = true;
  }
  cv_.notify_all();
}

void HubTimer::run() {
  auto next_verify = std::chrono::steady_clock::now() + every_;
  std::unique_lock lock(mu_);
  while (!stopping_) {
    poked_ = false;
    lock.unlock();
    auto now = std::chrono::steady_clock::now();
    if (now >= next_verify) {
      work_.reverify();
      next_verify = now + every_;
    }
    work_.expire();
    auto next = next_verify;
    if (auto d = work_.until_expiry()) {
      next = std::min(
          next, std::chrono::steady_clock::now() + std::max<std::chrono::steady_clock::duration>(
                                                       *d, std::chrono::milliseconds(1)));
    }
    lock.lock();
    cv_.wait_until(lock, next, [&] { return stopping_ || poked_; });
  }
}

}  // namespace portier::gateway
