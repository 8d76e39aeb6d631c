// A DriverSink for the Bluetooth tests: records every callback, alarms
// included, under a mutex and lets the test wait for a condition with a
// deadline.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <variant>
#include <vector>

#include "driver.h"
#include "drivers/recorder.h"

namespace portier::drivers::testing {

struct BtStateChange {
  std::string id;
  DeviceState state;
  std::string reason;
};

struct BtAlarm {
  std::string id;  // the device the alarm was reported on (the adapter)
  AlarmData alarm;
};

struct BtRecorded {
  std::vector<DeviceInfo> added;
  std::vector<std::string> removed;
  std::vector<BtStateChange> states;
  std::vector<BtAlarm> alarms;
  std::vector<std::string> other_events;

  const DeviceInfo* find_added(const std::string& id) const {
    for (const auto& d : added) {
      if (d.id == id) return &d;
    }
    return nullptr;
  }
  bool has_state(const std::string& id, const std::string& reason) const {
    for (const auto& s : states) {
      if (s.id == id && s.reason == reason) return true;
    }
    return false;
  }
  bool was_removed(const std::string& id) const {
    for (const auto& r : removed) {
      if (r == id) return true;
    }
    return false;
  }
};

class BtRecordingSink : public DriverSink, public drivers::testing::Recorder<BtRecorded, 15> {
 public:
  void device_added(const DeviceInfo& info) override {
    update([&](BtRecorded& r) { r.added.push_back(info); });
  }
  void device_removed(const std::string& id) override {
    update([&](BtRecorded& r) { r.removed.push_back(id); });
  }
  void device_state(const std::string& id, DeviceState state, const std::string& reason) override {
    update([&](BtRecorded& r) { r.states.push_back({id, state, reason}); });
  }
  void device_event(const std::string& id, DeviceEvent event) override {
    update([&](BtRecorded& r) {
      if (auto* a = std::get_if<AlarmData>(&event.payload)) {
        r.alarms.push_back({id, std::move(*a)});
      } else {
        r.other_events.push_back(id);
      }
    });
  }
};

}  // namespace portier::drivers::testing
