// Counts the refusals of commands nobody authenticated (unreadable bytes, no
// valid signature, no trusted chain, dropped unread): anyone on the way can
// send them at will, so each must not become its own audit record and
// result (a flood would fill the outbox at security priority and evict the
// terminal's telemetry). Per key (the link and the kind of refusal) and per
// interval: the first refusal of an interval is recorded on its own, the
// others are counted and reported in one record when the interval ends.
//
// Not agent/denial_limiter's token buckets: this needs fixed intervals and
// every count at shutdown (due(true)), so nothing counted is lost. Not
// thread-safe: the verifier calls it under its lock.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace portier::commands {

class RefusalTally {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  using Clock = std::function<TimePoint()>;
  struct Options {
    std::chrono::milliseconds interval{60000};
    std::size_t max_keys = 64;  // beyond: counted under the key "other"
  };
  struct Report {
    std::string key;
    std::uint64_t count = 0;
    std::string last_reason;  // the last one counted
  };

  explicit RefusalTally(Options options, Clock clock = {});

  // One refusal of `key`. True: record it on its own (the first of its
  // interval), after `*report` when that has a count (the interval before
  // ended). False: counted.
  bool admit(const std::string& key, const std::string& reason, Report* report);
  // `n` refusals of `key` never recorded on their own (e.g. dropped unread).
  void add(const std::string& key, std::uint64_t n, const std::string& reason);
  // The counts of the intervals that ended (all of them when `everything`),
  // taken.
  std::vector<Report> due(bool everything = false);
  // When due() next has a report; nullopt while nothing is counted.
  std::optional<TimePoint> next_due() const;
  // Counted so far, reported or not.
  std::uint64_t total() const { return total_; }

 private:
  struct Entry {
    TimePoint start;
    std::uint64_t count = 0;
    std::string last_reason;
  };
  std::map<std::string, Entry>::iterator entry(const std::string& key, TimePoint now);

  Options options_;
  Clock clock_;
  std::map<std::string, Entry> entries_;
  std::uint64_t total_ = 0;
};

}  // namespace portier::commands
