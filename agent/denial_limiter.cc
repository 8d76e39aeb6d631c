#include "denial_limiter.h"

#include <algorithm>

namespace portier::agent {

DenialLimiter::DenialLimiter(Options options, Clock clock)
    : options_(options), clock_(std::move(clock)) {
  if (!clock_) clock_ = [] { return std::chrono::steady_clock::now(); };
}

void DenialLimiter::refill(Bucket& b, TimePoint now) const {
  if (now <= b.refilled) return;
  double secs = std::chrono::duration<double>(now - b.refilled).count();
  b.tokens = std::min(options_.burst, b.tokens + secs * options_.per_second);
  b.refilled = now;
}

// Forgets keys that are back to a full bucket with nothing to report: they
// behave exactly like keys never seen.
void DenialLimiter::evict(TimePoint now) {
  for (auto it = buckets_.begin(); it != buckets_.end();) {
    refill(it->second, now);
    if (it->second.suppressed == 0 && it->second.tokens >= options_.burst) {
      it = buckets_.erase(it);
    } else {
      ++it;
    }
  }
}

bool DenialLimiter::admit(const std::string& key, std::uint64_t* suppressed) {
  auto now = clock_();
  *suppressed = 0;
  auto it = buckets_.find(key);
  if (it == buckets_.end()) {
    if (buckets_.size() >= options_.max_keys) evict(now);
    std::string k = buckets_.size() >= options_.max_keys ? "other" : key;
    it = buckets_.find(k);
    if (it == buckets_.end()) it = buckets_.emplace(k, Bucket{options_.burst, now, 0, now}).first;
  }
  Bucket& b = it->second;
  refill(b, now);
  if (b.tokens >= 1) {
    b.tokens -= 1;
    *suppressed = b.suppressed;
    b.suppressed = 0;
    return true;
  }
  if (b.suppressed == 0) b.first_suppressed = now;
  ++b.suppressed;
  ++suppressed_total_;
  return false;
}

std::vector<DenialLimiter::Report> DenialLimiter::due() {
  auto now = clock_();
  std::vector<Report> out;
  for (auto& [key, b] : buckets_) {
    if (b.suppressed > 0 && now - b.first_suppressed >= options_.report_every) {
      out.push_back({key, b.suppressed});
      b.suppressed = 0;
    }
  }
  return out;
}

std::optional<DenialLimiter::TimePoint> DenialLimiter::next_due() const {
  std::optional<TimePoint> t;
  for (auto& [key, b] : buckets_) {
    if (b.suppressed == 0) continue;
    auto at = b.first_suppressed + options_.report_every;
    if (!t || at < *t) t = at;
  }
  return t;
}

}  // namespace portier::agent
