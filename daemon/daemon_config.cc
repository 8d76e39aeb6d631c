#include "daemon/daemon_config.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "common/toml_table.h"
#include "policy/policy.h"

namespace portier::daemon {

const drivers::DriverRegistry& builtin_drivers() {
  static const drivers::DriverRegistry registry = [] {
    drivers::DriverRegistry r;
    drivers::register_builtin_drivers(r);
    return r;
  }();
  return registry;
}

const agent::FeatureRegistry& builtin_features() {
  static const agent::FeatureRegistry registry = [] {
    agent::FeatureRegistry r;
    agent::register_builtin_features(r);
    return r;
  }();
  return registry;
}

Result<DaemonConfig> parse_config(std::string_view text, const std::string& source) {
  return parse_config(text, source, builtin_drivers(), builtin_features());
}

Result<DaemonConfig> parse_config(std::string_view text, const std::string& source,
                                  const drivers::DriverRegistry& driver_kinds,
                                  const agent::FeatureRegistry& feature_kinds) {
  auto doc = TomlValue::parse(text, source, "syntax");
  if (!doc) return std::unexpected(doc.error());
  DaemonConfig c;
  TomlTable r(*doc, "");
  PORTIER_TRY(r.str("socket", c.socket));
  std::string mode;
  PORTIER_TRY(r.str("socket_mode", mode));
  if (!mode.empty()) {
    char* end = nullptr;
    unsigned long m = std::strtoul(mode.c_str(), &end, 8);
    if (*end || m > 0777 || (m & 0007)) {
      return std::unexpected(r.error("socket_mode",
                                     "must be an octal mode like \"0660\" with no access for "
                                     "others (use socket_group to admit apps)"));
    }
    c.socket_mode = static_cast<mode_t>(m);
  }
  PORTIER_TRY(r.str("socket_group", c.socket_group));
  PORTIER_TRY(r.str("state_dir", c.state_dir));
  PORTIER_TRY(r.str("policy", c.policy));
  PORTIER_TRY(r.str("audit_log", c.audit_log));
  PORTIER_TRY(r.integer("audit_max_bytes", 4096, std::int64_t{1} << 40, c.audit_max_bytes));
  PORTIER_TRY(r.integer("audit_keep_files", 1, 1000, c.audit_keep_files));
  PORTIER_TRY(r.str("audit_failure_health", c.audit_failure_health));
  if (c.audit_failure_health != "degraded" && c.audit_failure_health != "compromised") {
    return std::unexpected(
        r.error("audit_failure_health", "must be \"degraded\" or \"compromised\""));
  }
  std::string level = "info";
  PORTIER_TRY(r.str("log_level", level));
  if (level == "debug") {
    c.log_level = LogLevel::debug;
  } else if (level == "info") {
    c.log_level = LogLevel::info;
  } else if (level == "warning") {
    c.log_level = LogLevel::warning;
  } else if (level == "error") {
    c.log_level = LogLevel::error;
  } else {
    return std::unexpected(r.error("log_level", "must be debug, info, warning or error"));
  }
  PORTIER_TRY(r.integer("subscriber_queue", 1, 65536, c.subscriber_queue));
  PORTIER_TRY(r.integer("max_lease_seconds", 1, 86400, c.max_lease_seconds));

  auto drivers = driver_kinds.parse(r);
  if (!drivers) return std::unexpected(drivers.error());
  c.drivers = std::move(*drivers);

  auto identity = r.table("identity", "must be an [identity] table");
  if (!identity) return std::unexpected(identity.error());
  if (auto& ir = *identity) {
    auto& i = c.identity;
    PORTIER_TRY(ir->integer("max_exe_bytes", 1 << 20, std::int64_t{1} << 40, i.max_exe_bytes));
    PORTIER_TRY(ir->integer("hash_timeout_ms", 100, 600000, i.hash_timeout_ms));
    PORTIER_TRY(ir->integer("resolver_threads", 1, 64, i.resolver_threads));
    PORTIER_TRY(ir->integer("resolving_per_uid", 1, 64, i.resolving_per_uid));
    PORTIER_TRY(ir->integer("waiting_per_uid", 1, 4096, i.waiting_per_uid));
    PORTIER_TRY(ir->boolean("peer_pidfd", i.peer_pidfd));
    PORTIER_TRY(ir->no_unknown_keys());
  }
  auto limits = r.table("limits", "must be a [limits] table");
  if (!limits) return std::unexpected(limits.error());
  if (auto& lr = *limits) {
    auto& l = c.limits;
    PORTIER_TRY(lr->integer("connections_per_app", 1, 65536, l.connections_per_app));
    PORTIER_TRY(lr->integer("connections_declared", 1, 65536, l.connections_declared));
    PORTIER_TRY(
        lr->integer("connections_per_undeclared_uid", 0, 65536, l.connections_per_undeclared_uid));
    PORTIER_TRY(lr->integer("connections_undeclared", 0, 65536, l.connections_undeclared));
    // Each open stream holds one of portierd's 512 server threads.
    PORTIER_TRY(lr->integer("streams_per_app", 1, 256, l.streams_per_app));
    PORTIER_TRY(lr->integer("streams_declared", 1, 384, l.streams_declared));
    PORTIER_TRY(lr->integer("streams_per_undeclared_uid", 0, 64, l.streams_per_undeclared_uid));
    PORTIER_TRY(lr->integer("streams_undeclared", 0, 64, l.streams_undeclared));
    PORTIER_TRY(lr->no_unknown_keys());
  }
  auto health = r.table("health", "must be a [health] table");
  if (!health) return std::unexpected(health.error());
  // [health] holds the health gate's refusals (the gateway's) and the health
  // monitor's settings (the feature's, read by its own parser below).
  std::vector<std::string> entries;
  const bool given = *health && (*health)->has("refuse_when_compromised");
  if (auto& hr = *health) PORTIER_TRY(hr->strings("refuse_when_compromised", entries));
  std::vector<TomlTable*> opened;
  if (*health) opened.push_back(&**health);
  auto features = feature_kinds.parse(r, opened);
  if (!features) return std::unexpected(features.error());
  c.features = std::move(*features);
  if (auto& hr = *health) {
    if (given) {
      c.refuse_when_compromised.clear();
      for (auto& e : entries) {
        auto colon = e.find(':');
        DaemonConfig::Refusal ref{e.substr(0, colon),
                                  colon == std::string::npos ? "" : e.substr(colon + 1)};
        if (!policy::parse_op(ref.op)) {
          return std::unexpected(hr->error(
              "refuse_when_compromised",
              "'" + e +
                  "': expected \"op\" or \"op:class\" with op one of list, watch, read, claim, "
                  "write, configure, transmit, pair, authorize, power"));
        }
        c.refuse_when_compromised.push_back(ref);
      }
    }
  }
  PORTIER_TRY(r.no_unknown_keys());
  if (c.socket.empty() || c.socket[0] != '/') {
    return std::unexpected(r.error("socket", "must be an absolute path"));
  }
  if (c.state_dir.empty() || c.state_dir[0] != '/') {
    return std::unexpected(r.error("state_dir", "must be an absolute path"));
  }
  if (c.policy.empty() || c.policy[0] != '/') {
    return std::unexpected(r.error("policy", "must be an absolute path"));
  }
  if (c.audit_log.empty()) c.audit_log = c.state_dir + "/audit.jsonl";
  if (c.audit_log[0] != '/') {
    return std::unexpected(r.error("audit_log", "must be an absolute path"));
  }
  return c;
}

Result<DaemonConfig> load_config(const std::string& path, const agent::FeatureRegistry& features) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return fail(Errc::io, path, "config", std::strerror(errno));
  std::stringstream ss;
  ss << f.rdbuf();
  if (ss.str().size() > (1u << 20)) {
    return fail(Errc::invalid_argument, path, "config", "larger than 1 MiB");
  }
  return parse_config(ss.str(), path, builtin_drivers(), features);
}

Result<DaemonConfig> demo_config(const std::string& state_dir, const std::string& bin_dir) {
  if (::mkdir(state_dir.c_str(), 0750) != 0 && errno != EEXIST) {
    return fail(Errc::io, state_dir, "state_dir", std::strerror(errno));
  }
  // The demo's devices, read as a config file would give them.
  auto devices = parse_config(
      "[[scanner]]\nid = \"sim0\"\ntype = \"simulated\"\ninterval_ms = 2000\n"
      "[[reader]]\nid = \"nfc0\"\ntype = \"simulated\"\n",
      "demo");
  if (!devices) return std::unexpected(devices.error());
  DaemonConfig c = std::move(*devices);
  c.state_dir = state_dir;
  c.socket = state_dir + "/portierd.sock";
  c.policy = state_dir + "/policy.toml";
  c.audit_log = state_dir + "/audit.jsonl";
  std::string policy =
      "# Demo policy written by `portierd --demo`: root's portierctl may do\n"
      "# everything; every other caller is denied (and audited).\n"
      "version = 1\n\n"
      "[[app]]\n"
      "name = \"root-cli\"\n"
      "uid = 0\n"
      "exe = \"" +
      bin_dir +
      "/portierctl\"\n\n"
      "[[rule]]\n"
      "app = \"root-cli\"\n"
      "ops = [\"*\"]\n";
  std::string tmp = c.policy + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return fail(Errc::io, tmp, "demo policy", std::strerror(errno));
  bool ok = ::write(fd, policy.data(), policy.size()) == static_cast<ssize_t>(policy.size());
  ::fchmod(fd, 0644);
  ok = ::fsync(fd) == 0 && ok;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), c.policy.c_str()) != 0) {
    return fail(Errc::io, c.policy, "demo policy", std::strerror(errno));
  }
  return c;
}

}  // namespace portier::daemon
