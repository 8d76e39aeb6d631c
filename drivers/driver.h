// The small interface every peripheral driver implements. Drivers know
// nothing about apps, policy or gRPC: they report devices and events to a
// sink and perform operations the gateway asks for.
#pragma once

#include <chrono>
#include <cstddef>
#include <map>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/result.h"

namespace portier::drivers {

// An operation a device offers beyond events and raw writes: an APDU
// exchange, Bluetooth pairing, switching a USB port. `op` is the policy
// operation that must allow it (transmit, pair, authorize, power, configure,
// write, ...); `needs_claim` says whether the caller must hold the lease.
struct ActionSpec {
  std::string name;  // "transmit", "pair", "authorize", ...
  std::string op;
  bool needs_claim = false;
};

struct DeviceInfo {
  std::string id;                                 // stable id from config, e.g. "scanner0"
  std::string device_class;                       // "scanner", ...
  std::string driver;                             // "serial_scanner", "simulated_scanner"
  std::vector<std::string> capabilities;          // "events", "write"
  std::map<std::string, std::string> attributes;  // path, baud, ...
  std::vector<ActionSpec> actions;                // what act() accepts for this device
};

enum class DeviceState { ready, disconnected, error };

// A decoded barcode/QR read. `raw` is exactly what the scanner sent between
// prefix and suffix (without the AIM identifier); `text` is its UTF-8 form.
struct ScanData {
  std::string raw;
  std::string text;
  std::string symbology;  // "QR Code", "EAN/UPC", ... or "" when unknown
  std::string aim_id;     // "]Q1" or "" when the frame had none
  std::string encoding;   // "utf-8", "gb18030", or "binary" when undecodable
  bool decode_error = false;
};

// Something went wrong with the device's data that the app should know about
// (over-long frame, undecodable bytes); never carries the payload.
struct FaultData {
  std::string code;
  std::string message;
};

// A card arrived in or left a reader. `atr` and `uid` are raw bytes (the UID
// of a contactless card, from FF CA 00 00 00; empty for contact cards). A UID
// is an identifier, not a card number; card numbers never appear in events.
struct CardData {
  enum class Kind { inserted, removed };
  Kind kind = Kind::inserted;
  std::string atr;
  std::string uid;
};

// Something an operator must look at: a pinned device removed or replaced by
// another, a device refused by an allow-list. Also written to the audit log.
struct AlarmData {
  std::string code;     // "device_removed", "device_substituted", "device_refused", ...
  std::string message;  // for a person; never payload data
  std::map<std::string, std::string> details;  // expected/actual identity, address, ...
};

struct DeviceEvent {
  std::variant<ScanData, FaultData, CardData, AlarmData> payload;
};

struct ActionRequest {
  std::string device_id;
  std::string action;
  std::string data;                           // e.g. the C-APDU
  std::map<std::string, std::string> params;  // action-specific
  std::chrono::milliseconds timeout{5000};
};

struct ActionResult {
  std::string data;  // e.g. the R-APDU
  std::map<std::string, std::string> values;
};

// What a driver found about one of its devices at start: it is there, it
// answers, and it is the device that was pinned (when one was).
struct SelfTestResult {
  std::string device_id;
  bool present = false;
  bool responding = false;
  bool identity_ok = true;  // true when nothing is pinned
  std::string detail;       // for a person
  bool passed() const { return present && responding && identity_ok; }
};

class DriverSink {
 public:
  virtual ~DriverSink() = default;
  virtual void device_added(const DeviceInfo& info) = 0;
  virtual void device_removed(const std::string& id) = 0;
  virtual void device_state(const std::string& id, DeviceState state,
                            const std::string& reason) = 0;
  virtual void device_event(const std::string& id, DeviceEvent event) = 0;
};

class Driver {
 public:
  virtual ~Driver() = default;
  virtual std::string_view name() const = 0;
  // Reports its devices to `sink` (device_added) before returning, then
  // runs on its own thread(s). `sink` outlives the driver.
  virtual Result<void> start(DriverSink& sink) = 0;
  virtual void stop() = 0;
  // Sends bytes to the device (e.g. a configuration command to a scanner).
  virtual Result<std::size_t> write(const std::string& device_id, std::string_view data) = 0;
  // Runs one of the device's actions (DeviceInfo::actions). Called on a
  // gateway worker thread, never on the driver's own; must return within
  // about request.timeout. The gateway has already checked policy and lease.
  virtual Result<ActionResult> act(const ActionRequest& request) {
    return fail(Errc::failed_precondition, std::string(name()), request.action,
                "this device offers no such action");
  }
  // Checks each device before the daemon reports ready (present, answering,
  // identity as pinned). Must return within a few seconds.
  virtual std::vector<SelfTestResult> self_test() { return {}; }
};

}  // namespace portier::drivers
