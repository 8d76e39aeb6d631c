// What the drivers' recording sinks share: a record guarded by a mutex,
// changed by update() (which wakes waiters), waited on with a deadline and
// copied out by snapshot(). Each sink derives from Recorder<its record>.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>

namespace portier::drivers::testing {

template <class Rec, int DeadlineSeconds = 10>
class Recorder {
 public:
  static constexpr auto kDeadline = std::chrono::seconds(DeadlineSeconds);

  // Waits until pred(record) holds; false when the deadline passes first.
  template <class Pred>
  bool wait(Pred pred, std::chrono::milliseconds timeout = kDeadline) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return pred(rec_); });
  }

  Rec snapshot() const {
    std::lock_guard lock(mu_);
    return rec_;
  }

 protected:
  template <class F>
  void update(F f) {
    {
      std::lock_guard lock(mu_);
      f(rec_);
    }
    cv_.notify_all();
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  Rec rec_;
};

}  // namespace portier::drivers::testing
