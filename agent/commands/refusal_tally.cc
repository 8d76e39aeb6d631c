#include "agent/commands/refusal_tally.h"

namespace portier::commands {

RefusalTally::RefusalTally(Options options, Clock clock)
    : options_(options), clock_(std::move(clock)) {
  if (!clock_) clock_ = [] { return std::chrono::steady_clock::now(); };
}

std::map<std::string, RefusalTally::Entry>::iterator RefusalTally::entry(const std::string& key,
                                                                         TimePoint now) {
  auto it = entries_.find(key);
  if (it != entries_.end()) return it;
  // Keys whose interval ended with nothing to report are forgotten first.
  for (auto e = entries_.begin(); entries_.size() >= options_.max_keys && e != entries_.end();) {
    e = e->second.count == 0 && now - e->second.start >= options_.interval ? entries_.erase(e)
                                                                           : std::next(e);
  }
  const std::string k = entries_.size() >= options_.max_keys ? "other" : key;
  it = entries_.find(k);
  if (it == entries_.end()) {
    // Starts "long ago": the first refusal of a new key is recorded.
    it = entries_.emplace(k, Entry{now - options_.interval, 0, {}}).first;
  }
  return it;
}

bool RefusalTally::admit(const std::string& key, const std::string& reason, Report* report) {
  const auto now = clock_();
  auto it = entry(key, now);
  Entry& e = it->second;
  *report = Report{it->first, 0, {}};
  if (now - e.start >= options_.interval) {
    report->count = e.count;
    report->last_reason = std::move(e.last_reason);
    e = Entry{now, 0, {}};
    return true;
  }
  ++e.count;
  ++total_;
  e.last_reason = reason;
  return false;
}

void RefusalTally::add(const std::string& key, std::uint64_t n, const std::string& reason) {
  if (n == 0) return;
  const auto now = clock_();
  Entry& e = entry(key, now)->second;
  if (e.count == 0 && now - e.start >= options_.interval) e.start = now;
  e.count += n;
  total_ += n;
  e.last_reason = reason;
}

std::vector<RefusalTally::Report> RefusalTally::due(bool everything) {
  const auto now = clock_();
  std::vector<Report> out;
  for (auto it = entries_.begin(); it != entries_.end();) {
    Entry& e = it->second;
    const bool ended = now - e.start >= options_.interval;
    if (e.count > 0 && (ended || everything)) {
      out.push_back(Report{it->first, e.count, std::move(e.last_reason)});
      e.count = 0;
      e.last_reason.clear();
    }
    it = ended && e.count == 0 ? entries_.erase(it) : std::next(it);
  }
  return out;
}

std::optional<RefusalTally::TimePoint> RefusalTally::next_due() const {
  std::optional<TimePoint> t;
  for (auto& [key, e] : entries_) {
    if (e.count == 0) continue;
    const auto at = e.start + options_.interval;
    if (!t || at < *t) t = at;
  }
  return t;
}

}  // namespace portier::commands
