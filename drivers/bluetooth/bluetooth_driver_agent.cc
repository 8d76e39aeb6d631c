// BluetoothDriver's pairing agent: serving and registering it with BlueZ,
// and answering BlueZ's requests on the driver thread (see the header).
#include "bluetooth/bluetooth_driver.h"

namespace portier::drivers {
namespace {

constexpr const char* kCapability = "KeyboardDisplay";

const char* request_name(AgentRequest::Kind k) {
  using K = AgentRequest::Kind;
  switch (k) {
    case K::request_pin_code:
      return "PIN code";
    case K::display_pin_code:
      return "PIN code display";
    case K::request_passkey:
      return "passkey";
    case K::display_passkey:
      return "passkey display";
    case K::request_confirmation:
      return "confirmation";
    case K::request_authorization:
      return "authorization";
    case K::authorize_service:
      return "service authorization";
    default:
      return "request";
  }
}

}  // namespace

void BluetoothDriver::serve_agent() {
  if (!config_.pairing_agent || !client_) return;
  auto r =
      client_->export_agent(kAgentPath, [this](const AgentRequest& q) { return answer_agent(q); });
  if (!r) bus_problem_ = r.error().message();
}

void BluetoothDriver::register_agent() {
  if (!config_.pairing_agent || !client_ || agent_registered_) return;
  agent_registered_ = true;  // until BlueZ or the connection goes
  client_->register_agent_async(
      kAgentPath, kCapability, std::chrono::milliseconds(config_.call_timeout_ms),
      [this](Result<void> r) {
        if (r || !client_) return;  // no client: the connection is closing
        agent_registered_ = false;  // the next successful sync tries again
        bus_problem_ = "pairing agent not registered: " + r.error().message();
      });
}

AgentReply BluetoothDriver::answer_agent(const AgentRequest& q) {
  const bool ours = agent_.pairing(q.device);
  AgentReply a = agent_.answer(q);
  using K = AgentRequest::Kind;
  if (a.ok || ours || q.kind == K::release || q.kind == K::cancel || !sink_) return a;
  // A pairing (or service use) nobody here asked for: tell the operators.
  std::string address;
  Properties props;
  if (auto it = objects_.find(q.device); it != objects_.end()) {
    if (auto d = it->second.find("org.bluez.Device1"); d != it->second.end()) props = d->second;
  }
  address = prop_string(props, "Address").value_or(q.device);
  AlarmData alarm;
  alarm.code = "pairing_refused";
  alarm.message = "Bluetooth device " + address + " asked for " + request_name(q.kind) +
                  " without a pair action through Portier; refused";
  alarm.details = {{"address", address}, {"request", request_name(q.kind)}, {"reason", a.message}};
  if (q.kind == K::authorize_service) alarm.details["uuid"] = q.uuid;
  sink_->device_event(adapter_id_of(q.device, props), DeviceEvent{std::move(alarm)});
  return a;
}

}  // namespace portier::drivers
