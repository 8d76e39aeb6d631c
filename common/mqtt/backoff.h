// The delay before the next reconnection attempt of the MQTT client:
// exponential backoff with full jitter (each delay drawn uniformly from
// [0, min(max, min * 2^attempt)]), so that a fleet of terminals that lost
// the same broker does not come back in lockstep. Not thread-safe: one
// owner (the client's connection thread).
#pragma once

#include <chrono>
#include <cstdint>
#include <random>

namespace portier::mqtt {

class Backoff {
 public:
  // min > 0 and max >= min (clamped otherwise); `seed` fixes the draws
  // (tests), 0 seeds from std::random_device.
  Backoff(std::chrono::milliseconds min, std::chrono::milliseconds max, std::uint64_t seed = 0);

  // The delay to wait now; each call grows the ceiling until it reaches max.
  std::chrono::milliseconds next();
  // The ceiling the next draw is bounded by.
  std::chrono::milliseconds ceiling() const;
  // After a successful connection: the next delay is drawn below min again.
  void reset() { attempt_ = 0; }

 private:
  std::chrono::milliseconds min_, max_;
  unsigned attempt_ = 0;
  std::mt19937_64 random_;
};

}  // namespace portier::mqtt
