// Test support for the USB driver: a sink that records alarms too, and a
// uevent injector; the fixture sysfs tree is in sysfs_fixture.h.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "driver.h"
#include "drivers/recorder.h"
#include "drivers/usb/sysfs_fixture.h"

namespace portier::drivers::usb::testing {

constexpr auto kDeadline = std::chrono::seconds(10);

struct Alarm {
  std::string device_id;
  AlarmData data;
};

struct Recorded {
  std::vector<DeviceInfo> added;
  std::vector<std::string> removed;
  std::vector<std::tuple<std::string, DeviceState, std::string>> states;
  std::vector<Alarm> alarms;
  std::vector<std::string> log;  // "added id", "removed id", "state id ready", "alarm id code"

  const DeviceInfo* last_added(const std::string& id) const {
    for (auto it = added.rbegin(); it != added.rend(); ++it) {
      if (it->id == id) return &*it;
    }
    return nullptr;
  }
  std::size_t count_log(const std::string& line) const {
    return static_cast<std::size_t>(std::count(log.begin(), log.end(), line));
  }
};

class UsbSink : public DriverSink, public drivers::testing::Recorder<Recorded> {
 public:
  void device_added(const DeviceInfo& info) override {
    update([&](Recorded& r) {
      r.added.push_back(info);
      r.log.push_back("added " + info.id);
    });
  }
  void device_removed(const std::string& id) override {
    update([&](Recorded& r) {
      r.removed.push_back(id);
      r.log.push_back("removed " + id);
    });
  }
  void device_state(const std::string& id, DeviceState s, const std::string& reason) override {
    update([&](Recorded& r) {
      r.states.emplace_back(id, s, reason);
      r.log.push_back("state " + id +
                      (s == DeviceState::ready          ? " ready"
                       : s == DeviceState::disconnected ? " disconnected"
                                                        : " error"));
    });
  }
  void device_event(const std::string& id, DeviceEvent ev) override {
    update([&](Recorded& r) {
      if (auto* a = std::get_if<AlarmData>(&ev.payload)) {
        r.log.push_back("alarm " + id + " " + a->code);
        r.alarms.push_back({id, *a});
      } else {
        r.log.push_back("other-event " + id);
      }
    });
  }

  bool wait_log(const std::string& line, std::size_t n = 1) {
    return wait([&](const Recorded& r) { return r.count_log(line) >= n; });
  }
};

// Polls `pred` until it holds or the deadline passes (for state the sink
// does not see, like the driver's counters).
template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout = kDeadline) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

// Sends datagrams to the driver's test socket, as the kernel would.
class UeventInjector {
 public:
  explicit UeventInjector(std::string path) : sender_(std::move(path)) {}
  ::testing::AssertionResult send(const std::string& datagram) {
    const std::string error = sender_.send(datagram);
    if (!error.empty()) return ::testing::AssertionFailure() << error;
    return ::testing::AssertionSuccess();
  }

 private:
  UeventSender sender_;
};

}  // namespace portier::drivers::usb::testing
