// Exponential backoff with full jitter (see backoff.h).
#include "common/mqtt/backoff.h"

#include <algorithm>

namespace portier::mqtt {

Backoff::Backoff(std::chrono::milliseconds min, std::chrono::milliseconds max, std::uint64_t seed)
    : min_(std::max(min, std::chrono::milliseconds(1))),
      max_(std::max(max, min_)),
      random_(seed != 0 ? seed : std::random_device{}()) {}

std::chrono::milliseconds Backoff::ceiling() const {
  // min * 2^attempt without overflow: stop doubling once max is reached.
  auto c = min_;
  for (unsigned i = 0; i < attempt_ && c < max_; ++i) c = std::min(c * 2, max_);
  return std::min(c, max_);
}

std::chrono::milliseconds Backoff::next() {
  const auto c = ceiling();
  if (c < max_) ++attempt_;
  std::uniform_int_distribution<std::int64_t> draw(0, c.count());
  return std::chrono::milliseconds(draw(random_));
}

}  // namespace portier::mqtt
