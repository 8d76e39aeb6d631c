#include "agent/health/health_config_parser.h"

#include "agent/feature_registry.h"
#include "agent/health/health_feature.h"
#include "common/toml_table.h"

namespace portier::health {

Result<HealthConfig> parse_health_config(TomlTable& t) {
  HealthConfig h;
  PORTIER_TRY(t.boolean("monitor", h.monitor));
  PORTIER_TRY(t.strings("checks", h.checks));
  PORTIER_TRY(t.str("proc_root", h.proc_root));
  PORTIER_TRY(t.str("sys_root", h.sys_root));
  PORTIER_TRY(t.strings("root_processes_allowed", h.root_processes_allowed));
  PORTIER_TRY(t.str("management_host", h.management_host));
  PORTIER_TRY(t.str("management_port", h.management_port));
  PORTIER_TRY(t.str("tpm_tcti", h.tpm_tcti));
  PORTIER_TRY(t.integer("tpm_timeout_ms", 10, 600000, h.tpm_timeout_ms));
  PORTIER_TRY(t.str("tpm_reference", h.tpm_reference));
  PORTIER_TRY(t.str("event_log", h.event_log));
  PORTIER_TRY(t.str("ima_log", h.ima_log));
  auto threshold = [&](const char* k, double lo, double hi) -> Result<void> {
    const bool present = t.has(k);
    double v = 0;
    PORTIER_TRY(t.number(k, lo, hi, v));
    if (present) h.thresholds[k] = v;
    return {};
  };
  for (const char* k : {"cpu_warn_per_core", "cpu_fail_per_core"}) {
    PORTIER_TRY(threshold(k, 0.0, 1000.0));
  }
  for (const char* k :
       {"memory_warn_available_below", "memory_fail_available_below", "disk_warn_free_below",
        "disk_fail_free_below", "fd_warn_used_above", "fd_fail_used_above"}) {
    PORTIER_TRY(threshold(k, 0.0, 1.0));
  }
  for (const char* k : {"temperature_warn_celsius", "temperature_fail_celsius"}) {
    PORTIER_TRY(threshold(k, -50.0, 200.0));
  }
  // An empty string is the same as an absent key: the check's default.
  auto opt_str = [&](const char* k, std::optional<std::string>& out) -> Result<void> {
    std::string v;
    PORTIER_TRY(t.str(k, v));
    if (!v.empty()) out = v;
    return {};
  };
  auto opt_list = [&](const char* k, std::optional<std::vector<std::string>>& out) -> Result<void> {
    const bool present = t.has(k);
    std::vector<std::string> v;
    PORTIER_TRY(t.strings(k, v));
    if (present) out = v;
    return {};
  };
  PORTIER_TRY(opt_str("disk_path", h.disk_path));
  PORTIER_TRY(opt_str("baseline_file", h.baseline_file));
  PORTIER_TRY(opt_str("baseline_key_file", h.baseline_key_file));
  PORTIER_TRY(opt_str("installed_binary", h.installed_binary));
  PORTIER_TRY(opt_list("setuid_paths", h.setuid_paths));
  PORTIER_TRY(opt_list("setuid_allowed", h.setuid_allowed));
  PORTIER_TRY(opt_list("writable_paths", h.writable_paths));
  if (auto iv = t.take("interval_ms")) {
    if (!iv->is_table()) return std::unexpected(t.error("interval_ms", "must be a table id = ms"));
    for (auto& e : iv->entries()) {
      auto ms = e.value.integer();
      if (!ms || *ms < 10 || *ms > 86400000) {
        return std::unexpected(Error{Errc::invalid_argument, e.value.where(),
                                     t.name("interval_ms") + "." + e.key,
                                     "must be 10..86400000 (milliseconds)"});
      }
      h.interval_ms[e.key] = static_cast<int>(*ms);
    }
  }
  PORTIER_TRY(t.no_unknown_keys());
  return h;
}

void register_health_feature(agent::FeatureRegistry& registry) {
  registry.add(
      "health",
      [](TomlTable& t) -> Result<std::any> {
        auto c = parse_health_config(t);
        if (!c) return std::unexpected(c.error());
        return std::any(std::move(*c));
      },
      [](const std::any& c) -> std::unique_ptr<agent::Feature> {
        const auto& config = std::any_cast<const HealthConfig&>(c);
        if (!config.monitor) return nullptr;
        return std::make_unique<HealthMonitorFeature>(config);
      });
}

}  // namespace portier::health
