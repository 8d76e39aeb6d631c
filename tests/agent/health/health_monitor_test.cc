#include "agent/health/health_monitor.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>
#include <thread>

namespace portier::health {
namespace {

using namespace std::chrono_literals;
using Status = CheckResult::Status;

// A check whose result the test sets; can be made to hang until released.
class FakeCheck : public Check {
 public:
  FakeCheck(std::string id, Severity sev) : id_(std::move(id)), sev_(sev) {}
  std::string id() const override { return id_; }
  Severity severity() const override { return sev_; }
  CheckResult run(const std::atomic<bool>&) override {
    std::unique_lock lk(mu_);
    ++started_;
    cv_.notify_all();
    cv_.wait(lk, [&] { return !hang_; });
    ++finished_;
    cv_.notify_all();
    return result_;
  }
  void set(Status s, std::string reason) {
    std::lock_guard lk(mu_);
    result_ = {s, std::move(reason), {}};
  }
  void set_hang(bool h) {
    std::lock_guard lk(mu_);
    hang_ = h;
    cv_.notify_all();
  }
  int finished() {
    std::lock_guard lk(mu_);
    return finished_;
  }
  bool wait_finished(int n, std::chrono::milliseconds within) {
    std::unique_lock lk(mu_);
    return cv_.wait_for(lk, within, [&] { return finished_ >= n; });
  }

 private:
  std::string id_;
  Severity sev_;
  std::mutex mu_;
  std::condition_variable cv_;
  CheckResult result_ = CheckResult::ok();
  bool hang_ = false;
  int started_ = 0, finished_ = 0;
};

class ThrowingCheck : public Check {
 public:
  std::string id() const override { return "throws"; }
  CheckResult run(const std::atomic<bool>&) override { throw std::runtime_error("boom"); }
};

CheckSettings every(std::chrono::milliseconds interval,
                    std::chrono::milliseconds timeout = 2000ms) {
  CheckSettings s;
  s.interval = interval;
  s.jitter = 0ms;
  s.timeout = timeout;
  return s;
}

// Polls a condition against a deadline; the monitor offers no event for
// "report changed" other than the listener, which only fires on state change.
template <class F>
bool eventually(F f, std::chrono::milliseconds within = 5000ms) {
  auto deadline = std::chrono::steady_clock::now() + within;
  while (std::chrono::steady_clock::now() < deadline) {
    if (f()) return true;
    std::this_thread::yield();
  }
  return f();
}

const CheckReport* find(const HealthReport& r, const std::string& id) {
  for (const auto& c : r.checks)
    if (c.id == id) return &c;
  return nullptr;
}

// REQ-7 (periodic checks; a hung check is reported and the monitor goes on)
TEST(HealthMonitor, HangingCheckFailsTimedOutAndOthersKeepRunning) {
  auto hung = std::make_shared<FakeCheck>("hung", Severity::normal);
  auto quick = std::make_shared<FakeCheck>("quick", Severity::normal);
  hung->set_hang(true);
  HealthMonitor m(HealthMonitor::Options{42});
  m.add(hung, every(1h, 150ms));
  m.add(quick, every(10ms));
  auto t0 = std::chrono::steady_clock::now();
  m.start();
  std::chrono::steady_clock::time_point seen{};
  ASSERT_TRUE(eventually([&] {
    auto c = find(m.report(), "hung");
    if (c && c->has_run) seen = std::chrono::steady_clock::now();
    return c && c->has_run;
  }));
  auto rep = m.report();
  auto c = find(rep, "hung");
  EXPECT_EQ(c->result.status, Status::fail);
  EXPECT_EQ(c->result.reason, "timed out after 150 ms");
  EXPECT_LT(seen - t0, 150ms + 1500ms);  // timeout + margin
  EXPECT_EQ(rep.state, HealthState::degraded);
  // The others still run while the hung one is stuck.
  int before = quick->finished();
  EXPECT_TRUE(quick->wait_finished(before + 3, 5000ms));
  // A forced run while still hung reports at once without a second thread.
  auto now = m.run_all_now();
  EXPECT_NE(find(now, "hung")->result.reason.find("still hung"), std::string::npos);
  hung->set_hang(false);
  EXPECT_TRUE(hung->wait_finished(1, 5000ms));
  m.stop();
}

// REQ-7 (random checks): jitter draws come from the injected generator.
TEST(HealthMonitor, JitterDiffersBetweenMonitorsAndIsReproducibleWithASeed) {
  CheckSettings s;
  s.interval = 1000ms;
  s.jitter = 1000ms;
  HealthMonitor a(HealthMonitor::Options{1}), b(HealthMonitor::Options{2}),
      a2(HealthMonitor::Options{1});
  std::vector<long long> da, db, da2;
  for (int i = 0; i < 16; ++i) {
    da.push_back(a.draw_delay(s).count());
    db.push_back(b.draw_delay(s).count());
    da2.push_back(a2.draw_delay(s).count());
  }
  EXPECT_NE(da, db);
  EXPECT_EQ(da, da2);
  for (auto d : da) {
    EXPECT_GE(d, 1000);
    EXPECT_LE(d, 2000);
  }
  // Unseeded monitors (std::random_device) differ too.
  s.jitter = std::chrono::milliseconds(1'000'000'000);
  HealthMonitor r1, r2;
  EXPECT_NE(r1.draw_delay(s), r2.draw_delay(s));
}

// REQ-7 (periodic and random checks): the schedule applies interval + jitter.
TEST(HealthMonitor, NextRunIsIntervalPlusJitterAfterTheStart) {
  auto c = std::make_shared<FakeCheck>("c", Severity::normal);
  HealthMonitor m(HealthMonitor::Options{7});
  CheckSettings s;
  s.interval = 1h;
  s.jitter = 10min;
  m.add(c, s);
  m.start();
  auto rep = m.run_all_now();
  auto r = find(rep, "c");
  ASSERT_TRUE(r->has_run);
  auto delay = r->next_run - r->last_start_steady;
  EXPECT_GE(delay, 1h);
  EXPECT_LE(delay, 1h + 10min);
  m.stop();
}

// REQ-7 (warn or block): critical fail → COMPROMISED, warn → DEGRADED,
// recovery → OK; the listener hears each change.
TEST(HealthMonitor, CombinesStatesAndTellsTheListenerOfEachChange) {
  auto critical = std::make_shared<FakeCheck>("file_integrity", Severity::critical);
  auto normal = std::make_shared<FakeCheck>("memory", Severity::normal);
  HealthMonitor m(HealthMonitor::Options{3});
  m.add(critical, every(1h));
  m.add(normal, every(1h));
  std::mutex mu;
  std::condition_variable cv;
  std::vector<HealthState> heard;
  std::vector<std::vector<std::string>> reasons;
  m.set_listener([&](const HealthReport& r) {
    std::lock_guard lk(mu);
    heard.push_back(r.state);
    reasons.push_back(r.reasons);
    cv.notify_all();
  });
  auto wait_heard = [&](size_t n) {
    std::unique_lock lk(mu);
    return cv.wait_for(lk, 5s, [&] { return heard.size() >= n; });
  };
  m.start();
  EXPECT_EQ(m.run_all_now().state, HealthState::ok);

  normal->set(Status::warn, "only 12% of memory available");
  auto r = m.run_all_now();
  EXPECT_EQ(r.state, HealthState::degraded);
  ASSERT_EQ(r.reasons.size(), 1u);
  EXPECT_EQ(r.reasons[0], "memory: only 12% of memory available");
  ASSERT_TRUE(wait_heard(1));

  critical->set(Status::fail, "changed since provisioning: /etc/passwd");
  EXPECT_EQ(m.run_all_now().state, HealthState::compromised);
  ASSERT_TRUE(wait_heard(2));

  normal->set(Status::fail, "worse");  // a normal fail does not lift COMPROMISED
  EXPECT_EQ(m.run_all_now().state, HealthState::compromised);
  ASSERT_TRUE(wait_heard(3));  // the set of failing checks changed

  // Recovery, one check at a time (each change is heard).
  critical->set(Status::ok, "ok");
  EXPECT_EQ(m.run_all_now().state, HealthState::degraded);
  ASSERT_TRUE(wait_heard(4));
  normal->set(Status::ok, "ok");
  EXPECT_EQ(m.run_all_now().state, HealthState::ok);
  ASSERT_TRUE(wait_heard(5));
  m.stop();
  std::lock_guard lk(mu);
  EXPECT_EQ(heard, (std::vector<HealthState>{HealthState::degraded, HealthState::compromised,
                                             HealthState::compromised, HealthState::degraded,
                                             HealthState::ok}));
  EXPECT_EQ(reasons[0].size(), 1u);
  EXPECT_EQ(reasons[1].size(), 2u);
  EXPECT_EQ(reasons[2].size(), 2u);
  EXPECT_TRUE(reasons[4].empty());
}

// REQ-7: a warn of a critical check is DEGRADED, not COMPROMISED.
TEST(HealthMonitor, WarnOfCriticalCheckIsDegraded) {
  auto c = std::make_shared<FakeCheck>("secure_boot", Severity::critical);
  c->set(Status::warn, "not exposed");
  HealthMonitor m(HealthMonitor::Options{1});
  m.add(c, every(1h));
  m.start();
  EXPECT_EQ(m.run_all_now().state, HealthState::degraded);
}

// REQ-5 (self-test/diagnostics): a check that throws is a failed check.
TEST(HealthMonitor, ThrowingCheckIsAFailWithTheReason) {
  HealthMonitor m(HealthMonitor::Options{1});
  m.add(std::make_shared<ThrowingCheck>(), every(1h));
  m.start();
  auto r = m.run_all_now();
  EXPECT_EQ(r.checks[0].result.status, Status::fail);
  EXPECT_NE(r.checks[0].result.reason.find("boom"), std::string::npos);
}

TEST(HealthMonitor, DisabledCheckNeverRunsAndDoesNotCount) {
  auto c = std::make_shared<FakeCheck>("off", Severity::critical);
  c->set(Status::fail, "would compromise");
  auto s = every(10ms);
  s.enabled = false;
  HealthMonitor m(HealthMonitor::Options{1});
  m.add(c, s);
  m.start();
  auto r = m.run_all_now();
  EXPECT_EQ(r.state, HealthState::ok);
  EXPECT_FALSE(r.checks[0].has_run);
  EXPECT_FALSE(r.checks[0].enabled);
  EXPECT_EQ(c->finished(), 0);
}

// REQ-5 (portierctl health --run): run_all_now returns fresh results.
TEST(HealthMonitor, RunAllNowRunsEveryCheckAgain) {
  auto c = std::make_shared<FakeCheck>("c", Severity::normal);
  HealthMonitor m(HealthMonitor::Options{1});
  m.add(c, every(1h));
  m.start();
  auto r1 = m.run_all_now();
  auto r2 = m.run_all_now();
  EXPECT_GE(r2.checks[0].runs, r1.checks[0].runs + 1);
  EXPECT_GE(c->finished(), 2);
}

TEST(HealthMonitor, StopIsPrompt) {
  HealthMonitor m(HealthMonitor::Options{1});
  m.add(std::make_shared<FakeCheck>("c", Severity::normal), every(1h));
  m.start();
  m.run_all_now();
  auto t0 = std::chrono::steady_clock::now();
  m.stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 500ms);
}

}  // namespace
}  // namespace portier::health
