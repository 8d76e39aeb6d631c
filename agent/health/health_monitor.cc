#include "agent/health/health_monitor.h"

#include <condition_variable>
#include <exception>
#include <mutex>
#include <random>
#include <system_error>
#include <thread>

namespace portier::health {

using steady = std::chrono::steady_clock;
using std::chrono::milliseconds;

const char* to_string(HealthState s) {
  switch (s) {
    case HealthState::ok:
      return "OK";
    case HealthState::degraded:
      return "DEGRADED";
    case HealthState::compromised:
      return "COMPROMISED";
  }
  return "?";
}

namespace {

// One run of one check, shared between the scheduler and the run's thread.
struct Run {
  std::atomic<bool> cancel{false};
  bool done = false;  // under Core::mu
  CheckResult result;
  steady::time_point finished{};
};

struct Entry {
  std::shared_ptr<Check> check;
  CheckSettings settings;
  CheckReport report;
  std::shared_ptr<Run> in_flight;
  bool abandoned = false;  // in_flight timed out and was given up on
  steady::time_point started{};
  steady::time_point deadline{};
  steady::time_point next_due{};
  bool force = false;
  std::uint64_t launches = 0;   // runs started (including "still hung" ones)
  std::uint64_t completed = 0;  // the launch number of the last result
};

}  // namespace

struct HealthMonitor::Core {
  mutable std::mutex mu;
  std::condition_variable wake;      // the scheduler waits on it
  std::condition_variable progress;  // run_all_now waits on it
  std::vector<Entry> entries;
  bool running = false;
  bool stopping = false;
  std::thread scheduler;
  std::mt19937_64 rng;
  Listener listener;
  std::string last_key = "OK;";

  milliseconds draw_locked(const CheckSettings& s) {
    auto extra = s.jitter.count() > 0
                     ? std::uniform_int_distribution<std::int64_t>(0, s.jitter.count())(rng)
                     : 0;
    return s.interval + milliseconds(extra);
  }

  HealthReport report_locked() const {
    HealthReport r;
    for (const auto& e : entries) {
      r.checks.push_back(e.report);
      if (!e.settings.enabled || !e.report.has_run) continue;
      auto st = e.report.result.status;
      if (st == CheckResult::Status::ok) continue;
      r.reasons.push_back(e.report.id + ": " + e.report.result.reason);
      if (st == CheckResult::Status::fail && e.report.severity == Severity::critical)
        r.state = HealthState::compromised;
      else if (r.state == HealthState::ok)
        r.state = HealthState::degraded;
    }
    return r;
  }

  // What a listener is told about: the state and which checks are not ok.
  std::string key_locked(const HealthReport& r) const {
    std::string k = std::string(to_string(r.state)) + ";";
    for (const auto& c : r.checks)
      if (c.enabled && c.has_run && c.result.status != CheckResult::Status::ok)
        k += c.id + ":" + to_string(c.result.status) + ";";
    return k;
  }

  void record(Entry& e, CheckResult result, milliseconds duration) {
    e.report.result = std::move(result);
    e.report.has_run = true;
    e.report.runs++;
    e.report.duration = duration;
    e.completed = e.launches;
  }

  void launch(Entry& e, const std::shared_ptr<Core>& self, steady::time_point now) {
    e.launches++;
    e.force = false;
    e.started = now;
    e.report.last_start_steady = now;
    e.report.last_run = std::chrono::system_clock::now();
    e.next_due = now + draw_locked(e.settings);
    e.report.next_run = e.next_due;
    if (e.in_flight) {  // abandoned and still alive: do not pile up threads
      record(e,
             CheckResult::fail("still hung: the previous run did not return (timed out after " +
                               std::to_string(e.settings.timeout.count()) +
                               " ms); the check is stuck, look at what it reads"),
             milliseconds(0));
      return;
    }
    auto run = std::make_shared<Run>();
    e.in_flight = run;
    e.abandoned = false;
    e.deadline = now + e.settings.timeout;
    try {
      std::thread([self, check = e.check, run] {
        CheckResult r;
        try {
          r = check->run(run->cancel);
        } catch (const std::exception& ex) {
          r = CheckResult::fail(std::string("check failed with an exception: ") + ex.what());
        } catch (...) {
          r = CheckResult::fail("check failed with an unknown exception");
        }
        {
          std::lock_guard lk(self->mu);
          run->result = std::move(r);
          run->done = true;
          run->finished = steady::now();
        }
        self->wake.notify_all();
      }).detach();
    } catch (const std::system_error& ex) {
      e.in_flight.reset();
      record(e, CheckResult::fail(std::string("cannot start the check: ") + ex.what()),
             milliseconds(0));
    }
  }

  void loop(const std::shared_ptr<Core>& self) {
    std::unique_lock lk(mu);
    while (!stopping) {
      auto now = steady::now();
      bool changed = false;
      for (auto& e : entries) {
        if (!e.settings.enabled) continue;
        if (e.in_flight) {
          if (e.in_flight->done) {
            if (!e.abandoned) {
              record(e, std::move(e.in_flight->result),
                     std::chrono::duration_cast<milliseconds>(e.in_flight->finished - e.started));
              changed = true;
            }
            e.in_flight.reset();
            e.abandoned = false;
          } else if (!e.abandoned && now >= e.deadline) {
            e.in_flight->cancel = true;
            e.abandoned = true;
            record(e,
                   CheckResult::fail("timed out after " +
                                     std::to_string(e.settings.timeout.count()) + " ms"),
                   e.settings.timeout);
            changed = true;
          }
        }
        bool busy = e.in_flight && !e.abandoned;
        if (!busy && (e.force || now >= e.next_due)) {
          auto before = e.completed;
          launch(e, self, now);
          if (e.completed != before) changed = true;  // recorded at once (hung, no thread)
        }
      }
      if (changed) {
        auto rep = report_locked();
        auto key = key_locked(rep);
        progress.notify_all();
        if (key != last_key) {
          last_key = key;
          auto l = listener;
          if (l) {
            lk.unlock();
            l(rep);
            lk.lock();
            continue;  // time moved on: look again
          }
        }
      }
      auto until = steady::time_point::max();
      for (const auto& e : entries) {
        if (!e.settings.enabled) continue;
        if (e.in_flight && !e.abandoned) {
          until = std::min(until, e.deadline);
        } else {
          until = std::min(until, e.force ? now : e.next_due);
        }
      }
      wake.wait_until(lk, until);
    }
    progress.notify_all();
  }
};

HealthMonitor::HealthMonitor() : HealthMonitor(Options{}) {}

HealthMonitor::HealthMonitor(Options options) : core_(std::make_shared<Core>()) {
  if (options.seed) {
    core_->rng.seed(*options.seed);
  } else {
    std::random_device rd;
    std::seed_seq seq{rd(), rd(), rd(), rd()};
    core_->rng.seed(seq);
  }
}

HealthMonitor::~HealthMonitor() { stop(); }

void HealthMonitor::add(std::shared_ptr<Check> check, CheckSettings settings) {
  std::lock_guard lk(core_->mu);
  Entry e;
  e.report.id = check->id();
  e.report.severity = check->severity();
  e.report.enabled = settings.enabled;
  e.check = std::move(check);
  e.settings = settings;
  core_->entries.push_back(std::move(e));
}

void HealthMonitor::set_listener(Listener listener) {
  std::lock_guard lk(core_->mu);
  core_->listener = std::move(listener);
}

void HealthMonitor::start() {
  std::lock_guard lk(core_->mu);
  if (core_->running) return;
  core_->running = true;
  core_->stopping = false;
  auto now = steady::now();
  for (auto& e : core_->entries) e.next_due = now;
  core_->scheduler = std::thread([core = core_] { core->loop(core); });
}

void HealthMonitor::stop() {
  std::thread t;
  {
    std::lock_guard lk(core_->mu);
    if (!core_->running) return;
    core_->stopping = true;
    core_->running = false;
    t = std::move(core_->scheduler);
  }
  core_->wake.notify_all();
  core_->progress.notify_all();
  if (t.joinable()) t.join();
}

HealthReport HealthMonitor::run_all_now() {
  std::unique_lock lk(core_->mu);
  if (!core_->running) return core_->report_locked();
  std::vector<std::uint64_t> target(core_->entries.size());
  for (size_t i = 0; i < core_->entries.size(); ++i) {
    auto& e = core_->entries[i];
    if (!e.settings.enabled) continue;
    // A run in flight now started before the request: wait for a new one.
    target[i] = e.launches + 1;
    e.force = true;
  }
  core_->wake.notify_all();
  core_->progress.wait(lk, [&] {
    if (core_->stopping) return true;
    for (size_t i = 0; i < core_->entries.size(); ++i)
      if (core_->entries[i].settings.enabled && core_->entries[i].completed < target[i])
        return false;
    return true;
  });
  return core_->report_locked();
}

HealthReport HealthMonitor::report() const {
  std::lock_guard lk(core_->mu);
  return core_->report_locked();
}

HealthState HealthMonitor::state() const { return report().state; }

std::chrono::milliseconds HealthMonitor::draw_delay(const CheckSettings& settings) {
  std::lock_guard lk(core_->mu);
  return core_->draw_locked(settings);
}

}  // namespace portier::health
