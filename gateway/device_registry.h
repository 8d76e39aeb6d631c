// The devices the drivers reported, and the terminal itself (a device, so
// that health, audit and policy administration are decided like everything
// else). Not thread-safe: the hub holds its lock around every call.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "device_view.h"
#include "drivers/driver.h"
#include "policy/policy.h"

namespace portier::gateway {

inline constexpr const char* kTerminalId = "terminal";

struct DeviceRecord {
  DeviceView view;  // claimed_by is filled in by whoever knows the leases
  drivers::Driver* driver = nullptr;
  std::uint64_t sequence = 0;  // of the last event
  // The policy rules that can match this device, for policy `generation`.
  std::uint64_t policy_generation = 0;
  policy::BitSet device_rules;

  const std::string& id() const { return view.info.id; }
  bool has_action(const std::string& name) const;
  const drivers::ActionSpec* action(const std::string& name) const;
  policy::DeviceRef ref() const { return {id(), view.info.device_class, view.info.attributes}; }
};

class DeviceRegistry {
 public:
  DeviceRegistry();

  // Adds or replaces the device `info.id`, ready.
  DeviceRecord& add(drivers::Driver* driver, const drivers::DeviceInfo& info);
  std::optional<DeviceRecord> remove(const std::string& id);
  DeviceRecord* find(const std::string& id);
  DeviceRecord& terminal() { return devices_.at(kTerminalId); }
  // By id, the terminal among them.
  const std::map<std::string, DeviceRecord>& all() const { return devices_; }
  std::map<std::string, DeviceRecord>& all() { return devices_; }

 private:
  std::map<std::string, DeviceRecord> devices_;
};

}  // namespace portier::gateway
