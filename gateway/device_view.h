// What the gateway knows about a device and what happens to it, in plain C++
// types: the hub, the agent's features (through GatewayView) and the tests
// use these; only the gRPC service turns them into portier.v1 messages
// (proto_convert.h).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "drivers/driver.h"

namespace portier::gateway {

struct DeviceView {
  drivers::DeviceInfo info;  // id, class, driver, capabilities, attributes, actions
  drivers::DeviceState state = drivers::DeviceState::ready;
  std::string state_reason;  // why it is not ready (or "connected", ...), for a person
  std::string claimed_by;    // app holding the lease, "" when free (or undeclared)
};

// "DEVICE_STATE_READY", ...: the names the API and the health reasons use.
std::string_view device_state_name(drivers::DeviceState state);

// One event of a device, numbered per device (gap-free at the source).
struct DeviceEventRecord {
  std::string device_id;
  std::uint64_t sequence = 0;
  std::chrono::system_clock::time_point time;
  drivers::DeviceEvent event;
};

enum class ChangeKind { existing, added, removed, state_changed };

struct DeviceChangeRecord {
  ChangeKind kind = ChangeKind::state_changed;
  DeviceView device;
  std::chrono::system_clock::time_point time;
};

}  // namespace portier::gateway
