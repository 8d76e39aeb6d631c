// The hub's clockwork, on one thread: ends leases when they run out and,
// every second, re-verifies the connections that hold streams. It only
// calls the functions it is given; poke() makes it look again at once (a
// lease was granted or renewed).
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>

namespace portier::gateway {

class HubTimer {
 public:
  struct Work {
    // How long until the earliest lease ends (by the leases' clock), if any.
    std::function<std::optional<std::chrono::steady_clock::duration>()> until_expiry;
    std::function<void()> expire;    // ends the leases that ran out
    std::function<void()> reverify;  // every `reverify_every`
  };
  HubTimer(Work work, std::chrono::milliseconds reverify_every);
  ~HubTimer();
  void poke();

 private:
  void run();

  const Work work_;
  const std::chrono::milliseconds every_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool poked_ = false;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace portier::gateway
