// The feature supervisor (REQ-32: a failing feature never takes the agent
// down): a feature that fails at start and one that throws or fails later
// are restarted with exponential backoff, reported in health and in the
// audit trail, and the others keep running. An injected clock: no waits.
#include "agent/supervisor.h"

#include <gtest/gtest.h>

#include <map>
#include <stdexcept>

namespace portier::agent {
namespace {

using namespace std::chrono_literals;

struct Recorder final : AuditSink {
  std::vector<AuditEntry> entries;
  void record(const AuditEntry& e) override { entries.push_back(e); }
  std::vector<std::string> tail(std::size_t) override { return {}; }
  int follow(std::function<void(const std::string&)>) override { return 0; }
  void unfollow(int) override {}
  int count(const std::string& event) const {
    int n = 0;
    for (auto& e : entries) n += audit_event_name(e.event) == event;
    return n;
  }
};

// Fails its first `fail_starts` starts; later, check() fails or throws when told.
struct FakeFeature final : Feature {
  std::string id;
  int fail_starts = 0;
  int starts = 0, stops = 0;
  bool running = false;
  enum { fine, fails, throws } later = fine;
  explicit FakeFeature(std::string n) : id(std::move(n)) {}
  std::string_view name() const override { return id; }
  Result<void> start(const FeatureContext&) override {
    ++starts;
    if (starts <= fail_starts) return fail(Errc::unavailable, id, "start", "not yet");
    running = true;
    return {};
  }
  Result<void> check() override {
    if (later == throws) throw std::runtime_error("bug in " + id);
    if (later == fails) return fail(Errc::io, id, "check", "lost its device");
    return {};
  }
  void stop() override {
    ++stops;
    running = false;
  }
};

struct Fixture {
  std::chrono::steady_clock::time_point now{};
  Recorder audit;
  std::map<std::string, std::string> health;
  Supervisor sup{FeatureContext{&audit, "/tmp"}, SupervisorOptions{500ms, 4000ms, 1000ms},
                 [this] { return now; }};
  Fixture() {
    sup.on_health([this](const std::string& f, const std::string& why) { health[f] = why; });
  }
};

TEST(Supervisor, FeatureFailingAtStartIsRetriedWithBackoffAndOthersRun_REQ32) {
  Fixture fx;
  auto* flaky = new FakeFeature("flaky");
  flaky->fail_starts = 3;
  auto* steady = new FakeFeature("steady");
  fx.sup.add(std::unique_ptr<Feature>(flaky));
  fx.sup.add(std::unique_ptr<Feature>(steady));

  fx.sup.tick();
  EXPECT_EQ(flaky->starts, 1);
  EXPECT_TRUE(steady->running) << "one feature's failure costs only itself";
  EXPECT_EQ(fx.health["flaky"], "flaky: start: not yet");
  EXPECT_EQ(fx.audit.count("feature_failed"), 1);

  // Backoff 500 ms, then 1000, then 2000: no retry before each is due.
  for (auto [wait, starts] : {std::pair{499ms, 1}, {1ms, 2}, {999ms, 2}, {1ms, 3}, {2000ms, 4}}) {
    fx.now += wait;
    fx.sup.tick();
    EXPECT_EQ(flaky->starts, starts) << "after " << wait.count() << " ms more";
  }
  EXPECT_TRUE(flaky->running);
  EXPECT_EQ(fx.health["flaky"], "") << "recovery reported";
  EXPECT_EQ(fx.audit.count("feature_failed"), 3);
  EXPECT_EQ(fx.audit.count("feature_recovered"), 1);
  auto r = fx.sup.report();
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].state, FeatureReport::State::running);
  EXPECT_EQ(r[0].failures, 3);
  EXPECT_EQ(r[1].failures, 0);
}

TEST(Supervisor, FeatureThatThrowsOrFailsLaterIsStoppedAndRestarted_REQ32) {
  Fixture fx;
  auto* f = new FakeFeature("link");
  fx.sup.add(std::unique_ptr<Feature>(f));
  fx.sup.tick();
  ASSERT_TRUE(f->running);

  f->later = FakeFeature::throws;
  fx.now += 1000ms;
  fx.sup.tick();  // the exception is caught: a failure, not a crash
  EXPECT_FALSE(f->running);
  EXPECT_EQ(f->stops, 1);
  EXPECT_NE(fx.health["link"].find("bug in link"), std::string::npos) << fx.health["link"];
  auto r = fx.sup.report();
  EXPECT_EQ(r[0].state, FeatureReport::State::failed);

  f->later = FakeFeature::fine;
  fx.now += 500ms;
  fx.sup.tick();
  EXPECT_TRUE(f->running);
  EXPECT_EQ(f->starts, 2);

  f->later = FakeFeature::fails;  // fails again soon: the backoff grows
  fx.now += 1000ms;
  fx.sup.tick();
  EXPECT_FALSE(f->running);
  fx.now += 500ms;
  fx.sup.tick();
  EXPECT_EQ(f->starts, 2) << "the second failure in a row waits 1000 ms";
  fx.now += 500ms;
  f->later = FakeFeature::fine;
  fx.sup.tick();
  EXPECT_EQ(f->starts, 3);
  EXPECT_EQ(fx.audit.count("feature_failed"), 2);
}

TEST(Supervisor, StopStopsRunningFeaturesLastFirst) {
  Fixture fx;
  auto* a = new FakeFeature("a");
  auto* b = new FakeFeature("b");
  fx.sup.add(std::unique_ptr<Feature>(a));
  fx.sup.add(std::unique_ptr<Feature>(b));
  fx.sup.tick();
  fx.sup.stop();
  EXPECT_FALSE(a->running);
  EXPECT_FALSE(b->running);
  EXPECT_EQ(a->stops, 1);
  EXPECT_EQ(b->stops, 1);
}

}  // namespace
}  // namespace portier::agent
