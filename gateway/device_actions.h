// Raw writes and device actions (APDU exchange, pairing, port switching,
// power ...) for apps: granted by the hub (policy, health, lease), audited
// (durably before anything but an APDU exchange runs; failures with their
// reason, never the payload), then run by the device's driver on the
// caller's thread (GatewayService bounds how many wait).
#pragma once

#include <cstdint>
#include <string>

#include "common/audit_sink.h"
#include "common/result.h"
#include "connection.h"
#include "device_hub.h"
#include "drivers/driver.h"

namespace portier::gateway {

class DeviceActions {
 public:
  DeviceActions(DeviceHub& hub, AuditSink& audit) : hub_(hub), audit_(audit) {}

  // Writes `data` (at most 4096 bytes) to a device `conn` holds the lease
  // of; returns the bytes written.
  Result<std::uint64_t> send(Connection& conn, const std::string& device_id,
                             const std::string& data);
  Result<drivers::ActionResult> act(Connection& conn, const drivers::ActionRequest& request);

 private:
  DeviceHub& hub_;
  AuditSink& audit_;
};

}  // namespace portier::gateway
