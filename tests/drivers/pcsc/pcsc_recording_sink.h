// A DriverSink for the PC/SC tests: records every callback (cards, alarms
// and faults too) under a mutex and lets the test wait, with a deadline,
// for a condition on what was recorded.
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "driver.h"
#include "drivers/recorder.h"

namespace portier::drivers::pcsc_testing {

struct StateChange {
  std::string id;
  DeviceState state;
  std::string reason;
};
struct CardEvent {
  std::string id;
  CardData card;
};
struct AlarmEvent {
  std::string id;
  AlarmData alarm;
};
struct FaultEvent {
  std::string id;
  FaultData fault;
};

struct Recorded {
  std::vector<DeviceInfo> added;
  std::vector<std::string> removed;
  std::vector<StateChange> states;
  std::vector<CardEvent> cards;
  std::vector<AlarmEvent> alarms;
  std::vector<FaultEvent> faults;
  // Every callback in order, as "added reader0", "state reader0 ready",
  // "inserted reader0", "removed reader0", "alarm reader0 device_removed",
  // "gone reader0" (device_removed).
  std::vector<std::string> timeline;

  const DeviceInfo* device(const std::string& id) const {
    for (auto it = added.rbegin(); it != added.rend(); ++it) {
      if (it->id == id) return &*it;
    }
    return nullptr;
  }
  // Added more often than removed.
  bool present(const std::string& id) const {
    auto n_added = std::count_if(added.begin(), added.end(), [&](auto& d) { return d.id == id; });
    return n_added > std::count(removed.begin(), removed.end(), id);
  }
  std::optional<DeviceState> state(const std::string& id) const {
    for (auto it = states.rbegin(); it != states.rend(); ++it) {
      if (it->id == id) return it->state;
    }
    return std::nullopt;
  }
  std::vector<CardData> cards_of(const std::string& id) const {
    std::vector<CardData> out;
    for (auto& c : cards) {
      if (c.id == id) out.push_back(c.card);
    }
    return out;
  }
  std::vector<AlarmData> alarms_of(const std::string& id) const {
    std::vector<AlarmData> out;
    for (auto& a : alarms) {
      if (a.id == id) out.push_back(a.alarm);
    }
    return out;
  }
  std::size_t count(const std::string& entry) const {
    return static_cast<std::size_t>(std::count(timeline.begin(), timeline.end(), entry));
  }
  // Index of the first timeline entry equal to `entry`, or -1.
  long index_of(const std::string& entry) const {
    auto it = std::find(timeline.begin(), timeline.end(), entry);
    return it == timeline.end() ? -1 : static_cast<long>(it - timeline.begin());
  }
};

inline const char* state_name(DeviceState s) {
  switch (s) {
    case DeviceState::ready:
      return "ready";
    case DeviceState::disconnected:
      return "disconnected";
    case DeviceState::error:
      return "error";
  }
  return "?";
}

class PcscRecordingSink : public DriverSink, public drivers::testing::Recorder<Recorded> {
 public:
  void device_added(const DeviceInfo& info) override {
    update([&](Recorded& r) {
      r.added.push_back(info);
      r.timeline.push_back("added " + info.id);
    });
  }
  void device_removed(const std::string& id) override {
    update([&](Recorded& r) {
      r.removed.push_back(id);
      r.timeline.push_back("gone " + id);
    });
  }
  void device_state(const std::string& id, DeviceState state, const std::string& reason) override {
    update([&](Recorded& r) {
      r.states.push_back({id, state, reason});
      r.timeline.push_back(std::string("state ") + id + " " + state_name(state));
    });
  }
  void device_event(const std::string& id, DeviceEvent event) override {
    update([&](Recorded& r) {
      if (auto* c = std::get_if<CardData>(&event.payload)) {
        r.timeline.push_back((c->kind == CardData::Kind::inserted ? "inserted " : "removed ") + id);
        r.cards.push_back({id, std::move(*c)});
      } else if (auto* a = std::get_if<AlarmData>(&event.payload)) {
        r.timeline.push_back("alarm " + id + " " + a->code);
        r.alarms.push_back({id, std::move(*a)});
      } else if (auto* f = std::get_if<FaultData>(&event.payload)) {
        r.timeline.push_back("fault " + id + " " + f->code);
        r.faults.push_back({id, std::move(*f)});
      } else {
        r.timeline.push_back("scan " + id);
      }
    });
  }

  bool wait_entry(const std::string& entry, std::size_t n = 1) {
    return wait([&](const Recorded& r) { return r.count(entry) >= n; });
  }
};

}  // namespace portier::drivers::pcsc_testing
