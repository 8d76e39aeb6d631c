// A DriverSink for tests: records every callback under a mutex and lets the
// test wait, with a deadline, for a condition on what was recorded.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <string>
#include <variant>
#include <vector>

#include "driver.h"
#include "drivers/recorder.h"

namespace portier::drivers::testing {

struct StateChange {
  std::string id;
  DeviceState state;
  std::string reason;
};

struct Recorded {
  std::vector<DeviceInfo> added;
  std::vector<std::string> removed;
  std::vector<StateChange> states;
  std::vector<ScanData> scans;
  std::vector<FaultData> faults;
};

class RecordingSink : public DriverSink, public drivers::testing::Recorder<Recorded> {
 public:
  void device_added(const DeviceInfo& info) override {
    update([&](Recorded& r) { r.added.push_back(info); });
  }
  void device_removed(const std::string& id) override {
    update([&](Recorded& r) { r.removed.push_back(id); });
  }
  void device_state(const std::string& id, DeviceState state, const std::string& reason) override {
    update([&](Recorded& r) { r.states.push_back({id, state, reason}); });
  }
  void device_event(const std::string& id, DeviceEvent event) override {
    update([&](Recorded& r) {
      if (auto* scan = std::get_if<ScanData>(&event.payload)) {
        r.scans.push_back(std::move(*scan));
      } else if (auto* fault = std::get_if<FaultData>(&event.payload)) {
        r.faults.push_back(std::move(*fault));
      }  // scanners send no card or alarm events
    });
  }

  bool wait_scans(std::size_t n) {
    return wait([n](const Recorded& r) { return r.scans.size() >= n; });
  }
  bool wait_states(std::size_t n) {
    return wait([n](const Recorded& r) { return r.states.size() >= n; });
  }
};

}  // namespace portier::drivers::testing
