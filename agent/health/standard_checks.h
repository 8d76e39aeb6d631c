// The standard set of non-TPM checks with their default schedules: what the
// daemon registers from its [health] config, and what the bench measures.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "agent/health/health_check.h"
#include "agent/health/integrity_baseline.h"
#include "agent/health/network_checks.h"
#include "agent/health/peripheral_check.h"
#include "agent/health/resource_checks.h"
#include "agent/health/self_binary_check.h"
#include "agent/health/tamper_checks.h"

namespace portier::health {

struct StandardChecksConfig {
  std::string proc_root = "/proc";
  std::string sys_root = "/sys";
  CpuLoadOptions cpu;
  MemoryOptions memory;
  DiskOptions disk;
  TemperatureOptions temperature;
  FdOptions fd;
  InterfacesOptions interfaces;
  AddressesOptions addresses;
  ManagementEndpointOptions management;
  SetuidOptions setuid;
  RootProcessOptions root_processes;
  RootLoginOptions root_login;
  WritablePathsOptions writable;
  BaselineOptions baseline;
  SelfBinaryOptions self_binary;
  PeripheralOptions peripherals;
  // Per check id; missing ids get default_settings(id).
  std::map<std::string, CheckSettings> settings;
};

// The default schedule of a standard check (interval, jitter = interval / 5,
// timeout 5 s).
CheckSettings default_settings(const std::string& id);

struct StandardChecks {
  std::vector<std::pair<std::shared_ptr<Check>, CheckSettings>> checks;
  std::shared_ptr<PeripheralCheck> peripherals;  // feed driver self-tests here
};
// proc_root / sys_root override the roots of the per-check options.
StandardChecks make_standard_checks(StandardChecksConfig config);

}  // namespace portier::health
