#include "device_registry.h"

namespace portier::gateway {

std::string_view device_state_name(drivers::DeviceState state) {
  switch (state) {
    case drivers::DeviceState::ready:
      return "DEVICE_STATE_READY";
    case drivers::DeviceState::disconnected:
      return "DEVICE_STATE_DISCONNECTED";
    case drivers::DeviceState::error:
      return "DEVICE_STATE_ERROR";
  }
  return "DEVICE_STATE_UNSPECIFIED";
}

bool DeviceRecord::has_action(const std::string& name) const { return action(name) != nullptr; }

const drivers::ActionSpec* DeviceRecord::action(const std::string& name) const {
  const drivers::ActionSpec* found = nullptr;
  for (auto& a : view.info.actions) {
    if (a.name == name) found = &a;  // the last of a name, as drivers declare
  }
  return found;
}

DeviceRegistry::DeviceRegistry() {
  DeviceRecord t;
  t.view.info.id = kTerminalId;
  t.view.info.device_class = kTerminalId;
  t.view.info.driver = "portierd";
  t.view.info.capabilities = {"health"};
  devices_.emplace(kTerminalId, std::move(t));
}

DeviceRecord& DeviceRegistry::add(drivers::Driver* driver, const drivers::DeviceInfo& info) {
  DeviceRecord r;
  r.driver = driver;
  r.view.info = info;
  auto& slot = devices_[info.id];
  slot = std::move(r);
  return slot;
}

std::optional<DeviceRecord> DeviceRegistry::remove(const std::string& id) {
  auto it = devices_.find(id);
  if (it == devices_.end() || id == kTerminalId) return std::nullopt;
  DeviceRecord r = std::move(it->second);
  devices_.erase(it);
  return r;
}

DeviceRecord* DeviceRegistry::find(const std::string& id) {
  auto it = devices_.find(id);
  return it == devices_.end() ? nullptr : &it->second;
}

}  // namespace portier::gateway
