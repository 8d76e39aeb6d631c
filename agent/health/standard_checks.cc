#include "agent/health/standard_checks.h"

namespace portier::health {

CheckSettings default_settings(const std::string& id) {
  using namespace std::chrono_literals;
  static const std::map<std::string, std::chrono::milliseconds> interval = {
      {"cpu_load", 10s},          {"memory", 10s},
      {"disk_space", 60s},        {"temperature", 30s},
      {"fd_usage", 30s},          {"net_interfaces", 15s},
      {"net_addresses", 60s},     {"net_default_route", 30s},
      {"net_management", 60s},    {"setuid_files", 3600s},
      {"root_processes", 30s},    {"root_login", 30s},
      {"writable_paths", 300s},   {"file_integrity", 300s},
      {"kernel_lockdown", 3600s}, {"secure_boot", 3600s},
      {"self_binary", 600s},      {"peripherals", 60s},
  };
  CheckSettings s;
  auto it = interval.find(id);
  s.interval = it != interval.end() ? it->second : std::chrono::milliseconds(60s);
  s.jitter = s.interval / 5;
  s.timeout = 5s;
  return s;
}

StandardChecks make_standard_checks(StandardChecksConfig c) {
  c.cpu.proc_root = c.memory.proc_root = c.fd.proc_root = c.root_processes.proc_root = c.proc_root;
  c.temperature.sys_root = c.interfaces.sys_root = c.sys_root;
  StandardChecks out;
  out.peripherals = std::make_shared<PeripheralCheck>(c.peripherals);
  std::vector<std::shared_ptr<Check>> all = {
      std::make_shared<CpuLoadCheck>(c.cpu),
      std::make_shared<MemoryCheck>(c.memory),
      std::make_shared<DiskSpaceCheck>(c.disk),
      std::make_shared<TemperatureCheck>(c.temperature),
      std::make_shared<FdUsageCheck>(c.fd),
      std::make_shared<InterfacesUpCheck>(c.interfaces),
      std::make_shared<AddressesCheck>(c.addresses),
      std::make_shared<DefaultRouteCheck>(DefaultRouteOptions{c.proc_root}),
      std::make_shared<ManagementReachabilityCheck>(c.management),
      std::make_shared<SetuidFilesCheck>(c.setuid),
      std::make_shared<RootProcessCheck>(c.root_processes),
      std::make_shared<RootLoginCheck>(c.root_login),
      std::make_shared<WritablePathsCheck>(c.writable),
      std::make_shared<IntegrityBaselineCheck>(c.baseline),
      std::make_shared<KernelLockdownCheck>(c.sys_root),
      std::make_shared<SecureBootCheck>(c.sys_root),
      std::make_shared<SelfBinaryCheck>(c.self_binary),
      out.peripherals,
  };
  for (auto& check : all) {
    auto id = check->id();
    auto it = c.settings.find(id);
    out.checks.emplace_back(std::move(check),
                            it != c.settings.end() ? it->second : default_settings(id));
  }
  return out;
}

}  // namespace portier::health
