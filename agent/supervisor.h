// Runs the agent's features: starts each, asks running ones whether they
// are well, stops and restarts a failed one with exponential backoff, and
// reports every failure and recovery (audit records feature_failed /
// feature_recovered, and a health callback). A feature that fails, throws or
// never comes up costs only itself: the daemon keeps serving.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "agent/feature.h"

namespace portier::agent {

struct SupervisorOptions {
  std::chrono::milliseconds backoff_min{500};    // first retry after a failure
  std::chrono::milliseconds backoff_max{60000};  // doubles up to this
  std::chrono::milliseconds check_every{2000};   // how often running features are asked
};

struct FeatureReport {
  std::string name;
  enum class State { starting, running, failed } state = State::starting;
  std::string error;  // the last failure, "" when none since it last ran well
  int failures = 0;   // since the daemon started
};

class Supervisor {
 public:
  using Clock = std::function<std::chrono::steady_clock::time_point()>;
  // Called (outside the supervisor's lock) when a feature fails ("" when it
  // runs again), so the composition root can put it into the health report.
  using HealthFn = std::function<void(const std::string& feature, const std::string& failure)>;

  Supervisor(FeatureContext context, SupervisorOptions options = {}, Clock clock = nullptr);
  ~Supervisor();  // stop()

  void add(std::unique_ptr<Feature> feature);
  void on_health(HealthFn fn);
  // One round now: starts what is due, checks what runs; returns when the
  // next round is due. Tests call it directly with an injected clock; run()
  // calls it on its own thread.
  std::chrono::steady_clock::time_point tick();
  void run();   // a thread that ticks until stop()
  void stop();  // stops the thread and every running feature (last added first)
  std::vector<FeatureReport> report() const;

 private:
  struct Slot {
    std::unique_ptr<Feature> feature;
    FeatureReport report;
    bool running = false;
    std::chrono::steady_clock::time_point next_try{};
    std::chrono::milliseconds backoff{0};
  };
  void failed(Slot& slot, const std::string& why, const char* when);
  void recovered(Slot& slot);

  FeatureContext context_;
  SupervisorOptions options_;
  Clock clock_;
  HealthFn health_;
  mutable std::mutex mu_;  // the slots' reports, for report()
  std::mutex tick_mu_;     // one tick at a time
  std::vector<Slot> slots_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace portier::agent
