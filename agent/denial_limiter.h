// Rate limit of denial records per caller: a token bucket per key (the
// caller's uid, or "unidentified"), so one misbehaving caller cannot flood
// the audit trail. Suppressed denials are counted and reported in one record
// when the key is admitted again or, at the latest, `report_every` after the
// first suppressed one. Not thread-safe: the audit log calls it under its lock.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace portier::agent {

class DenialLimiter {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  using Clock = std::function<TimePoint()>;
  struct Options {
    double burst = 20;      // denials recorded at once per key
    double per_second = 2;  // then this many per second
    std::chrono::milliseconds report_every{10000};
    std::size_t max_keys = 4096;  // beyond: new keys share the key "other"
  };
  struct Report {
    std::string key;
    std::uint64_t count = 0;
  };

  DenialLimiter() : DenialLimiter(Options()) {}
  explicit DenialLimiter(Options options, Clock clock = {});

  // One denial by `key`. True: record it, after one report of `*suppressed`
  // earlier denials of the key when that is not 0. False: suppressed (counted).
  bool admit(const std::string& key, std::uint64_t* suppressed);
  // Keys whose suppressed denials have waited `report_every`: their counts,
  // taken (reset).
  std::vector<Report> due();
  // When due() next has a report; nullopt while nothing is suppressed.
  std::optional<TimePoint> next_due() const;
  // Denials suppressed so far, reported or not.
  std::uint64_t suppressed_total() const { return suppressed_total_; }

 private:
  struct Bucket {
    double tokens = 0;
    TimePoint refilled;
    std::uint64_t suppressed = 0;
    TimePoint first_suppressed;
  };
  void refill(Bucket& b, TimePoint now) const;
  void evict(TimePoint now);

  Options options_;
  Clock clock_;
  std::unordered_map<std::string, Bucket> buckets_;
  std::uint64_t suppressed_total_ = 0;
};

}  // namespace portier::agent
