#include "agent/supervisor.h"

#include <algorithm>
#include <exception>

#include "common/audit_events.h"
#include "common/log.h"

namespace portier::agent {
namespace {

// Runs `fn`, turning an exception into an error: a feature's bug must not
// take the daemon down.
Result<void> guarded(const std::function<Result<void>()>& fn) {
  try {
    return fn();
  } catch (const std::exception& e) {
    return fail(Errc::internal, "feature", "exception", e.what());
  } catch (...) {
    return fail(Errc::internal, "feature", "exception", "unknown exception");
  }
}

}  // namespace

Supervisor::Supervisor(FeatureContext context, SupervisorOptions options, Clock clock)
    : context_(std::move(context)), options_(options), clock_(std::move(clock)) {
  if (!clock_) clock_ = [] { return std::chrono::steady_clock::now(); };
}

Supervisor::~Supervisor() { stop(); }

void Supervisor::add(std::unique_ptr<Feature> feature) {
  std::lock_guard tick(tick_mu_);
  std::lock_guard lock(mu_);
  Slot s;
  s.report.name = std::string(feature->name());
  s.feature = std::move(feature);
  s.next_try = clock_();
  slots_.push_back(std::move(s));
}

void Supervisor::on_health(HealthFn fn) {
  std::lock_guard tick(tick_mu_);
  health_ = std::move(fn);
}

void Supervisor::failed(Slot& slot, const std::string& why, const char* when) {
  if (slot.running) {
    slot.feature->stop();
    slot.running = false;
  }
  slot.backoff = slot.backoff.count() == 0 ? options_.backoff_min
                                           : std::min(slot.backoff * 2, options_.backoff_max);
  slot.next_try = clock_() + slot.backoff;
  {
    std::lock_guard lock(mu_);
    slot.report.state = FeatureReport::State::failed;
    slot.report.error = why;
    ++slot.report.failures;
  }
  const std::string text = "feature " + slot.report.name + " failed " + when + ": " + why +
                           "; retry in " + std::to_string(slot.backoff.count()) + " ms";
  log_error(text);
  if (context_.audit) context_.audit->record(audit::feature_failed(text));
  if (health_) health_(slot.report.name, why);
}

void Supervisor::recovered(Slot& slot) {
  const bool after_failure = slot.report.failures > 0;
  {
    std::lock_guard lock(mu_);
    slot.report.state = FeatureReport::State::running;
    slot.report.error.clear();
  }
  if (!after_failure) return;
  log_info("feature " + slot.report.name + " runs again");
  if (context_.audit) {
    context_.audit->record(audit::feature_recovered(slot.report.name, slot.report.failures));
  }
  if (health_) health_(slot.report.name, "");
}

std::chrono::steady_clock::time_point Supervisor::tick() {
  std::lock_guard tick(tick_mu_);
  const auto now = clock_();
  for (auto& slot : slots_) {
    if (!slot.running) {
      if (now < slot.next_try) continue;
      auto r = guarded([&] { return slot.feature->start(context_); });
      if (!r) {
        failed(slot, r.error().message(), "to start");
        continue;
      }
      slot.running = true;
      recovered(slot);
      continue;
    }
    auto r = guarded([&] { return slot.feature->check(); });
    if (!r) {
      failed(slot, r.error().message(), "while running");
      continue;
    }
    // Well for a whole check interval: the next failure starts the backoff
    // from the beginning again.
    slot.backoff = std::chrono::milliseconds(0);
  }
  // Wake for the next check, or sooner for a feature's retry.
  auto wake = now + options_.check_every;
  for (auto& s : slots_) {
    if (!s.running) wake = std::min(wake, s.next_try);
  }
  return wake;
}

void Supervisor::run() {
  thread_ = std::thread([this] {
    std::unique_lock lock(mu_);
    while (!stopping_) {
      lock.unlock();
      const auto wake = tick();
      lock.lock();
      cv_.wait_until(lock, wake, [&] { return stopping_; });
    }
  });
}

void Supervisor::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  std::lock_guard tick(tick_mu_);
  for (auto it = slots_.rbegin(); it != slots_.rend(); ++it) {
    if (it->running) it->feature->stop();
    it->running = false;
  }
}

std::vector<FeatureReport> Supervisor::report() const {
  std::lock_guard lock(mu_);
  std::vector<FeatureReport> out;
  for (auto& s : slots_) out.push_back(s.report);
  return out;
}

}  // namespace portier::agent
