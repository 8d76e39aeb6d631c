// The small interface every peripheral driver implements. Drivers know
// nothing about apps, policy or gRPC: they report devices and events to a
// sink and perform operations the gateway asks for.
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "portier/result.h"

namespace portier::drivers {

struct DeviceInfo {
  std::string id;                                 // stable id from config, e.g. "scanner0"
  std::string device_class;                       // "scanner", ...
  std::string driver;                             // "serial_scanner", "simulated_scanner"
  std::vector<std::string> capabilities;          // "events", "write"
  std::map<std::string, std::string> attributes;  // path, baud, ...
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

struct DeviceEvent {
  std::variant<ScanData, FaultData> payload;
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
};

}  // namespace portier::drivers
