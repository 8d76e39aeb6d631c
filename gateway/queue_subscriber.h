// An in-process subscriber with a bounded queue: what an agent feature gets
// from GatewayView. push() never blocks; when the feature does not keep up,
// further events are dropped and counted. The feature takes events with
// next() on its own thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>

#include "subscriber.h"

namespace portier::gateway {

template <class Event>
class QueueSubscriber final : public Subscriber<Event> {
 public:
  explicit QueueSubscriber(std::size_t capacity) : capacity_(capacity) {}

  bool push(std::shared_ptr<const Event> event) override {
    {
      std::lock_guard lock(mu_);
      if (end_) return false;
      if (queue_.size() >= capacity_) {
        ++stats_.dropped;
        return false;
      }
      queue_.push_back(std::move(event));
    }
    cv_.notify_all();
    return true;
  }

  void end(const Result<void>& why) override {
    {
      std::lock_guard lock(mu_);
      if (end_) return;
      end_ = why;
      if (!why) queue_.clear();
    }
    cv_.notify_all();
  }

  SubscriberStats stats() const override {
    std::lock_guard lock(mu_);
    auto s = stats_;
    s.queued = queue_.size();
    return s;
  }

  // The next event, waiting at most `timeout`; nullptr when none came or the
  // subscription ended (ended() says why).
  std::shared_ptr<const Event> next(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, timeout, [&] { return !queue_.empty() || end_; });
    if (queue_.empty()) return nullptr;
    auto e = std::move(queue_.front());
    queue_.pop_front();
    ++stats_.delivered;
    return e;
  }

  // Set once the gateway ended the subscription: success, or why not.
  std::optional<Result<void>> ended() const {
    std::lock_guard lock(mu_);
    return end_;
  }

 private:
  const std::size_t capacity_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<const Event>> queue_;
  std::optional<Result<void>> end_;
  SubscriberStats stats_;
};

}  // namespace portier::gateway
