// What the driver and feature registries parsed out of a DaemonConfig, as
// the kinds' and features' own config structs (the daemon never looks inside).
#pragma once

#include <any>
#include <optional>
#include <string_view>
#include <vector>

#include "agent/health/health_config.h"
#include "daemon/daemon_config.h"
#include "drivers/bluetooth/bluetooth_config.h"
#include "drivers/pcsc/pcsc_config.h"
#include "drivers/serial_scanner/scanner_config.h"

namespace portier::daemon {

template <class T>
std::vector<T> driver_configs(const DaemonConfig& c, std::string_view kind) {
  std::vector<T> out;
  for (const auto& d : c.drivers) {
    if (d.kind == kind) out.push_back(std::any_cast<const T&>(d.config));
  }
  return out;
}

template <class T>
std::optional<T> driver_config(const DaemonConfig& c, std::string_view kind) {
  auto all = driver_configs<T>(c, kind);
  if (all.empty()) return std::nullopt;
  return all.front();
}

inline std::vector<drivers::SerialScannerConfig> serial_scanners(const DaemonConfig& c) {
  return driver_configs<drivers::SerialScannerConfig>(c, "serial_scanner");
}
inline std::vector<drivers::SimulatedScannerConfig> simulated_scanners(const DaemonConfig& c) {
  return driver_configs<drivers::SimulatedScannerConfig>(c, "simulated_scanner");
}
inline std::optional<drivers::PcscConfig> pcsc(const DaemonConfig& c) {
  return driver_config<drivers::PcscConfig>(c, "pcsc");
}
inline std::optional<drivers::BluetoothConfig> bluetooth(const DaemonConfig& c) {
  return driver_config<drivers::BluetoothConfig>(c, "bluetooth");
}

// The [health] feature's config; its defaults when the table is absent.
inline health::HealthConfig health_config(const DaemonConfig& c) {
  for (const auto& f : c.features) {
    if (f.name == "health") return std::any_cast<const health::HealthConfig&>(f.config);
  }
  return {};
}

}  // namespace portier::daemon
