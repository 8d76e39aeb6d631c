#include "daemon/daemon_config.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include "common/device_id.h"
#include "drivers/bluetooth/bluetooth_driver.h"
#include "drivers/hid_scanner/hid_scanner_driver.h"
#include "drivers/pcsc/pcsc_reader_driver.h"
#include "drivers/serial_scanner/serial_scanner.h"
#include "drivers/usb/usb_driver.h"
#include "policy/policy.h"

namespace portier::daemon {
namespace {

std::string where(const std::string& source, const toml::source_region& r) {
  return source + ":" + std::to_string(r.begin.line) + ":" + std::to_string(r.begin.column);
}

Error bad(const std::string& source, const toml::node& n, const std::string& key,
          const std::string& why) {
  return Error{Errc::invalid_argument, where(source, n.source()), key, why};
}

// The value node of `key` in `t`, so that an error points at the value that
// is wrong, not at its table's header; the table when the key is absent.
const toml::node& at(const toml::table& t, const std::string& key) {
  if (auto* n = t.get(key)) return *n;
  return t;
}

// An error from a driver's validate() names the key first ("baud 12345"):
// report it at that key's value, as "<table>.<key>: <why>".
Error located(const std::string& source, const toml::table& t, const std::string& table,
              const Error& e) {
  const std::string key = e.what.substr(0, e.what.find(' '));
  if (!key.empty() && t.get(key)) {
    return bad(source, *t.get(key), table + "." + key, e.what + ": " + e.why);
  }
  return bad(source, t, table, e.message());
}

// Reads typed keys from one table and rejects the ones nobody asked for.
class TableReader {
 public:
  TableReader(const toml::table& t, std::string source, std::string prefix)
      : t_(t), source_(std::move(source)), prefix_(std::move(prefix)) {}

  Result<void> str(const char* key, std::string& out) {
    seen_.insert(key);
    auto* n = t_.get(key);
    if (!n) return {};
    if (!n->is_string()) return std::unexpected(bad(source_, *n, name(key), "must be a string"));
    out = **n->as_string();
    return {};
  }
  Result<void> integer(const char* key, std::int64_t lo, std::int64_t hi, auto& out) {
    seen_.insert(key);
    auto* n = t_.get(key);
    if (!n) return {};
    if (!n->is_integer()) return std::unexpected(bad(source_, *n, name(key), "must be an integer"));
    auto v = **n->as_integer();
    if (v < lo || v > hi) {
      return std::unexpected(
          bad(source_, *n, name(key), "must be " + std::to_string(lo) + ".." + std::to_string(hi)));
    }
    out = static_cast<std::remove_reference_t<decltype(out)>>(v);
    return {};
  }
  Result<void> boolean(const char* key, bool& out) {
    seen_.insert(key);
    auto* n = t_.get(key);
    if (!n) return {};
    if (!n->is_boolean())
      return std::unexpected(bad(source_, *n, name(key), "must be true or false"));
    out = **n->as_boolean();
    return {};
  }
  Result<void> strings(const char* key, std::vector<std::string>& out) {
    seen_.insert(key);
    auto* n = t_.get(key);
    if (!n) return {};
    auto* arr = n->as_array();
    if (!arr) return std::unexpected(bad(source_, *n, name(key), "must be an array of strings"));
    out.clear();
    for (auto& el : *arr) {
      if (!el.is_string()) {
        return std::unexpected(bad(source_, el, name(key), "must be an array of strings"));
      }
      out.push_back(**el.as_string());
    }
    return {};
  }
  Result<void> real(const char* key, double lo, double hi, std::map<std::string, double>& out) {
    seen_.insert(key);
    auto* n = t_.get(key);
    if (!n) return {};
    auto v = n->value<double>();
    if (!v || *v < lo || *v > hi) {
      return std::unexpected(
          bad(source_, *n, name(key),
              "must be a number " + std::to_string(lo) + ".." + std::to_string(hi)));
    }
    out[key] = *v;
    return {};
  }
  const toml::node* node(const char* key) {
    seen_.insert(key);
    return t_.get(key);
  }
  Result<void> no_unknown_keys() {
    for (auto& [k, v] : t_) {
      if (!seen_.count(std::string(k.str()))) {
        return std::unexpected(bad(source_, v, name(std::string(k.str()).c_str()),
                                   "unknown key (see README.md, Configuration)"));
      }
    }
    return {};
  }
  std::string name(const char* key) const { return prefix_ + key; }
  const std::string& source() const { return source_; }

 private:
  const toml::table& t_;
  std::string source_;
  std::string prefix_;
  std::set<std::string> seen_;
};

#define TRY(expr)                                                  \
  do {                                                             \
    if (auto _r = (expr); !_r) return std::unexpected(_r.error()); \
  } while (0)

Result<drivers::SerialScannerConfig> parse_serial(TableReader& r, const toml::table& t) {
  drivers::SerialScannerConfig c;
  TRY(r.str("id", c.id));
  TRY(r.str("path", c.path));
  TRY(r.integer("baud", 50, 4000000, c.baud));
  std::string suffix = "CR", encoding = "auto";
  TRY(r.str("suffix", suffix));
  TRY(r.str("prefix", c.prefix));
  TRY(r.boolean("aim", c.aim));
  TRY(r.str("encoding", encoding));
  TRY(r.integer("max_frame", 16, 1 << 20, c.max_frame));
  TRY(r.integer("reopen_min_ms", 10, 60000, c.reopen_min_ms));
  TRY(r.integer("reopen_max_ms", 10, 600000, c.reopen_max_ms));
  if (suffix == "CR") {
    c.suffix = drivers::FrameSuffix::cr;
  } else if (suffix == "LF") {
    c.suffix = drivers::FrameSuffix::lf;
  } else if (suffix == "CRLF") {
    c.suffix = drivers::FrameSuffix::crlf;
  } else {
    return std::unexpected(
        bad(r.source(), *t.get("suffix"), r.name("suffix"), "must be \"CR\", \"LF\" or \"CRLF\""));
  }
  if (encoding == "auto") {
    c.encoding = drivers::TextEncoding::automatic;
  } else if (encoding == "utf-8") {
    c.encoding = drivers::TextEncoding::utf8;
  } else if (encoding == "gb18030") {
    c.encoding = drivers::TextEncoding::gb18030;
  } else {
    return std::unexpected(bad(r.source(), *t.get("encoding"), r.name("encoding"),
                               "must be \"auto\", \"utf-8\" or \"gb18030\""));
  }
  if (c.path.empty() || c.path[0] != '/') {
    return std::unexpected(
        bad(r.source(), at(t, "path"), r.name("path"), "an absolute device path is required"));
  }
  if (c.reopen_max_ms < c.reopen_min_ms) {
    return std::unexpected(bad(r.source(), at(t, "reopen_max_ms"), r.name("reopen_max_ms"),
                               "must not be less than reopen_min_ms"));
  }
  if (auto v = drivers::SerialScanner::validate(c); !v) {
    std::string table = r.name("");
    table.pop_back();  // "scanner[1]."
    return std::unexpected(located(r.source(), t, table, v.error()));
  }
  return c;
}

Result<drivers::HidScannerConfig> parse_hid(TableReader& r, const toml::table& t,
                                            const std::string& id) {
  drivers::HidScannerConfig c;
  c.id = id;
  TRY(r.str("mode", c.mode));
  TRY(r.str("path", c.path));
  TRY(r.str("layout", c.layout));
  TRY(r.str("encoding", c.encoding));
  TRY(r.boolean("aim", c.aim));
  TRY(r.boolean("grab", c.grab));
  TRY(r.integer("max_frame", 1, 1 << 20, c.max_frame));
  TRY(r.integer("reopen_min_ms", 1, 60000, c.reopen_min_ms));
  TRY(r.integer("reopen_max_ms", 1, 600000, c.reopen_max_ms));
  std::uint16_t vendor = 0, product = 0;
  bool has_vendor = t.contains("vendor"), has_product = t.contains("product");
  TRY(r.integer("vendor", 0, 0xffff, vendor));
  TRY(r.integer("product", 0, 0xffff, product));
  if (has_vendor) c.vendor = vendor;
  if (has_product) c.product = product;
  if (auto v = drivers::HidScannerDriver::validate(c); !v) {
    std::string table = r.name("");
    table.pop_back();
    return std::unexpected(located(r.source(), t, table, v.error()));
  }
  return c;
}

Result<drivers::usb::UsbConfig> parse_usb(const toml::table& t, const std::string& source) {
  drivers::usb::UsbConfig c;
  TableReader r(t, source, "usb.");
  TRY(r.str("sysfs_root", c.sysfs_root));
  TRY(r.str("uevent_source", c.uevent_source));
  TRY(r.str("id_prefix", c.id_prefix));
  TRY(r.strings("allowed", c.allowed));
  TRY(r.boolean("block_unknown", c.block_unknown));
  TRY(r.boolean("allow_hubs", c.allow_hubs));
  if (auto* n = r.node("pinned")) {
    auto* arr = n->as_array();
    if (!arr || !arr->is_array_of_tables()) {
      return std::unexpected(bad(source, *n, "usb.pinned", "must be [[usb.pinned]] tables"));
    }
    int i = 0;
    for (auto& el : *arr) {
      ++i;
      TableReader pr(*el.as_table(), source, "usb.pinned[" + std::to_string(i) + "].");
      drivers::usb::UsbConfig::Pin pin;
      TRY(pr.str("id", pin.id));
      TRY(pr.str("identity", pin.identity));
      TRY(pr.str("port", pin.port));
      TRY(pr.no_unknown_keys());
      c.pinned.push_back(pin);
    }
  }
  TRY(r.no_unknown_keys());
  if (auto v = drivers::usb::UsbDriver::validate(c); !v) {
    return std::unexpected(located(source, t, "usb", v.error()));
  }
  return c;
}

Result<drivers::BluetoothConfig> parse_bluetooth(const toml::table& t, const std::string& source) {
  drivers::BluetoothConfig c;
  TableReader r(t, source, "bluetooth.");
  TRY(r.str("bus", c.bus));
  TRY(r.str("id_prefix", c.id_prefix));
  TRY(r.strings("allowed_addresses", c.allowed_addresses));
  TRY(r.strings("allowed_classes", c.allowed_classes));
  TRY(r.integer("call_timeout_ms", 1, 600000, c.call_timeout_ms));
  TRY(r.boolean("pairing_agent", c.pairing_agent));
  TRY(r.no_unknown_keys());
  if (auto v = drivers::BluetoothDriver::validate(c); !v) {
    return std::unexpected(located(source, t, "bluetooth", v.error()));
  }
  return c;
}

Result<drivers::PcscConfig> parse_pcsc(const toml::table& t, const std::string& source) {
  drivers::PcscConfig c;
  TableReader r(t, source, "pcsc.");
  TRY(r.str("id_prefix", c.id_prefix));
  TRY(r.strings("readers_allowed", c.readers_allowed));
  TRY(r.strings("contactless_readers", c.contactless_readers));
  TRY(r.integer("transaction_timeout_ms", 1, 600000, c.transaction_timeout_ms));
  TRY(r.integer("transaction_hold_ms", 0, 60000, c.transaction_hold_ms));
  TRY(r.integer("poll_ms", 1, 60000, c.poll_ms));
  TRY(r.boolean("allow_reader_commands", c.allow_reader_commands));
  if (auto* n = r.node("pinned")) {
    auto* pins = n->as_table();
    if (!pins)
      return std::unexpected(
          bad(source, *n, "pcsc.pinned", "must be a table id = \"reader name\""));
    for (auto& [k, v] : *pins) {
      if (!v.is_string()) {
        return std::unexpected(
            bad(source, v, "pcsc.pinned." + std::string(k.str()), "must be a reader name"));
      }
      c.pinned[std::string(k.str())] = **v.as_string();
    }
  }
  TRY(r.no_unknown_keys());
  if (auto v = drivers::PcscReaderDriver::validate(c); !v) {
    return std::unexpected(located(source, t, "pcsc", v.error()));
  }
  return c;
}

bool valid_id(const std::string& id) { return valid_device_id(id); }

}  // namespace

Result<DaemonConfig> parse_config(std::string_view text, const std::string& source) {
  toml::table root;
  try {
    root = toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    return fail(Errc::invalid_argument, where(source, e.source()), "syntax",
                std::string(e.description()));
  }
  DaemonConfig c;
  TableReader r(root, source, "");
  TRY(r.str("socket", c.socket));
  std::string mode;
  TRY(r.str("socket_mode", mode));
  if (!mode.empty()) {
    char* end = nullptr;
    unsigned long m = std::strtoul(mode.c_str(), &end, 8);
    if (*end || m > 0777 || (m & 0007)) {
      return std::unexpected(bad(source, *root.get("socket_mode"), "socket_mode",
                                 "must be an octal mode like \"0660\" with no access for others "
                                 "(use socket_group to admit apps)"));
    }
    c.socket_mode = static_cast<mode_t>(m);
  }
  TRY(r.str("socket_group", c.socket_group));
  TRY(r.str("state_dir", c.state_dir));
  TRY(r.str("policy", c.policy));
  TRY(r.str("audit_log", c.audit_log));
  TRY(r.integer("audit_max_bytes", 4096, std::int64_t{1} << 40, c.audit_max_bytes));
  TRY(r.integer("audit_keep_files", 1, 1000, c.audit_keep_files));
  TRY(r.str("audit_failure_health", c.audit_failure_health));
  if (c.audit_failure_health != "degraded" && c.audit_failure_health != "compromised") {
    return std::unexpected(bad(source, *root.get("audit_failure_health"), "audit_failure_health",
                               "must be \"degraded\" or \"compromised\""));
  }
  std::string level = "info";
  TRY(r.str("log_level", level));
  if (level == "debug") {
    c.log_level = LogLevel::debug;
  } else if (level == "info") {
    c.log_level = LogLevel::info;
  } else if (level == "warning") {
    c.log_level = LogLevel::warning;
  } else if (level == "error") {
    c.log_level = LogLevel::error;
  } else {
    return std::unexpected(
        bad(source, *root.get("log_level"), "log_level", "must be debug, info, warning or error"));
  }
  TRY(r.integer("subscriber_queue", 1, 65536, c.subscriber_queue));
  TRY(r.integer("max_lease_seconds", 1, 86400, c.max_lease_seconds));

  std::set<std::string> ids;
  if (auto* n = r.node("scanner")) {
    auto* arr = n->as_array();
    if (!arr || !arr->is_array_of_tables()) {
      return std::unexpected(bad(source, *n, "scanner", "must be [[scanner]] tables"));
    }
    int i = 0;
    for (auto& el : *arr) {
      ++i;
      auto& t = *el.as_table();
      TableReader sr(t, source, "scanner[" + std::to_string(i) + "].");
      std::string type = "serial", id;
      TRY(sr.str("type", type));
      TRY(sr.str("id", id));
      if (!valid_id(id)) {
        return std::unexpected(bad(source, at(t, "id"), sr.name("id"),
                                   "required: 1-64 characters of A-Z a-z 0-9 - _ ."));
      }
      if (id == "terminal") {
        return std::unexpected(bad(source, at(t, "id"), sr.name("id"),
                                   "'terminal' is reserved for the terminal itself"));
      }
      if (!ids.insert(id).second) {
        return std::unexpected(
            bad(source, at(t, "id"), sr.name("id"), "'" + id + "' is used twice"));
      }
      if (type == "serial") {
        auto s = parse_serial(sr, t);
        if (!s) return std::unexpected(s.error());
        c.serial_scanners.push_back(*s);
      } else if (type == "simulated") {
        drivers::SimulatedScannerConfig s;
        s.id = id;
        TRY(sr.integer("interval_ms", 1, 3600000, s.interval_ms));
        c.simulated_scanners.push_back(s);
      } else if (type == "hid") {
        auto h = parse_hid(sr, t, id);
        if (!h) return std::unexpected(h.error());
        c.hid_scanners.push_back(*h);
      } else {
        return std::unexpected(bad(source, at(t, "type"), sr.name("type"),
                                   "must be \"serial\", \"hid\" or \"simulated\""));
      }
      TRY(sr.no_unknown_keys());
    }
  }
  if (auto* n = r.node("reader")) {
    auto* arr = n->as_array();
    if (!arr || !arr->is_array_of_tables()) {
      return std::unexpected(bad(source, *n, "reader", "must be [[reader]] tables"));
    }
    int i = 0;
    for (auto& el : *arr) {
      ++i;
      auto& t = *el.as_table();
      TableReader rr(t, source, "reader[" + std::to_string(i) + "].");
      std::string type, id;
      TRY(rr.str("type", type));
      TRY(rr.str("id", id));
      if (!valid_id(id)) {
        return std::unexpected(bad(source, at(t, "id"), rr.name("id"),
                                   "required: 1-64 characters of A-Z a-z 0-9 - _ ."));
      }
      if (id == "terminal") {
        return std::unexpected(bad(source, at(t, "id"), rr.name("id"),
                                   "'terminal' is reserved for the terminal itself"));
      }
      if (!ids.insert(id).second) {
        return std::unexpected(
            bad(source, at(t, "id"), rr.name("id"), "'" + id + "' is used twice"));
      }
      if (type != "simulated") {
        return std::unexpected(
            bad(source, at(t, "type"), rr.name("type"), "must be \"simulated\""));
      }
      c.simulated_readers.push_back({id});
      TRY(rr.no_unknown_keys());
    }
  }
  if (auto* n = r.node("usb")) {
    if (!n->is_table()) return std::unexpected(bad(source, *n, "usb", "must be a [usb] table"));
    auto u = parse_usb(*n->as_table(), source);
    if (!u) return std::unexpected(u.error());
    c.usb = *u;
  }
  if (auto* n = r.node("bluetooth")) {
    if (!n->is_table())
      return std::unexpected(bad(source, *n, "bluetooth", "must be a [bluetooth] table"));
    auto b = parse_bluetooth(*n->as_table(), source);
    if (!b) return std::unexpected(b.error());
    c.bluetooth = *b;
  }
  if (auto* n = r.node("pcsc")) {
    if (!n->is_table()) return std::unexpected(bad(source, *n, "pcsc", "must be a [pcsc] table"));
    auto p = parse_pcsc(*n->as_table(), source);
    if (!p) return std::unexpected(p.error());
    c.pcsc = *p;
  }
  if (auto* n = r.node("identity")) {
    if (!n->is_table())
      return std::unexpected(bad(source, *n, "identity", "must be an [identity] table"));
    TableReader ir(*n->as_table(), source, "identity.");
    auto& i = c.identity;
    TRY(ir.integer("max_exe_bytes", 1 << 20, std::int64_t{1} << 40, i.max_exe_bytes));
    TRY(ir.integer("hash_timeout_ms", 100, 600000, i.hash_timeout_ms));
    TRY(ir.integer("resolver_threads", 1, 64, i.resolver_threads));
    TRY(ir.integer("resolving_per_uid", 1, 64, i.resolving_per_uid));
    TRY(ir.integer("waiting_per_uid", 1, 4096, i.waiting_per_uid));
    TRY(ir.boolean("peer_pidfd", i.peer_pidfd));
    TRY(ir.no_unknown_keys());
  }
  if (auto* n = r.node("limits")) {
    if (!n->is_table())
      return std::unexpected(bad(source, *n, "limits", "must be a [limits] table"));
    TableReader lr(*n->as_table(), source, "limits.");
    auto& l = c.limits;
    TRY(lr.integer("connections_per_app", 1, 65536, l.connections_per_app));
    TRY(lr.integer("connections_declared", 1, 65536, l.connections_declared));
    TRY(lr.integer("connections_per_undeclared_uid", 0, 65536, l.connections_per_undeclared_uid));
    TRY(lr.integer("connections_undeclared", 0, 65536, l.connections_undeclared));
    // Each open stream holds one of portierd's 512 server threads.
    TRY(lr.integer("streams_per_app", 1, 256, l.streams_per_app));
    TRY(lr.integer("streams_declared", 1, 384, l.streams_declared));
    TRY(lr.integer("streams_per_undeclared_uid", 0, 64, l.streams_per_undeclared_uid));
    TRY(lr.integer("streams_undeclared", 0, 64, l.streams_undeclared));
    TRY(lr.no_unknown_keys());
  }
  if (auto* n = r.node("health")) {
    if (!n->is_table())
      return std::unexpected(bad(source, *n, "health", "must be a [health] table"));
    TableReader hr(*n->as_table(), source, "health.");
    std::vector<std::string> entries;
    bool given = n->as_table()->contains("refuse_when_compromised");
    TRY(hr.strings("refuse_when_compromised", entries));
    auto& h = c.health;
    TRY(hr.boolean("monitor", h.monitor));
    TRY(hr.strings("checks", h.checks));
    TRY(hr.str("proc_root", h.proc_root));
    TRY(hr.str("sys_root", h.sys_root));
    TRY(hr.strings("root_processes_allowed", h.root_processes_allowed));
    TRY(hr.str("management_host", h.management_host));
    TRY(hr.str("management_port", h.management_port));
    TRY(hr.str("tpm_tcti", h.tpm_tcti));
    TRY(hr.integer("tpm_timeout_ms", 10, 600000, h.tpm_timeout_ms));
    TRY(hr.str("tpm_reference", h.tpm_reference));
    TRY(hr.str("event_log", h.event_log));
    TRY(hr.str("ima_log", h.ima_log));
    for (const char* k : {"cpu_warn_per_core", "cpu_fail_per_core"}) {
      TRY(hr.real(k, 0.0, 1000.0, h.thresholds));
    }
    for (const char* k :
         {"memory_warn_available_below", "memory_fail_available_below", "disk_warn_free_below",
          "disk_fail_free_below", "fd_warn_used_above", "fd_fail_used_above"}) {
      TRY(hr.real(k, 0.0, 1.0, h.thresholds));
    }
    for (const char* k : {"temperature_warn_celsius", "temperature_fail_celsius"}) {
      TRY(hr.real(k, -50.0, 200.0, h.thresholds));
    }
    // An empty string is the same as an absent key: the check's default.
    auto opt_str = [&](const char* k, std::optional<std::string>& out) -> Result<void> {
      out = std::string();
      return hr.str(k, *out);
    };
    auto opt_list = [&](const char* k,
                        std::optional<std::vector<std::string>>& out) -> Result<void> {
      bool present = n->as_table()->contains(k);
      std::vector<std::string> v;
      TRY(hr.strings(k, v));
      if (present) out = v;
      return {};
    };
    TRY(opt_str("disk_path", h.disk_path));
    TRY(opt_str("baseline_file", h.baseline_file));
    TRY(opt_str("baseline_key_file", h.baseline_key_file));
    TRY(opt_str("installed_binary", h.installed_binary));
    for (auto* o : {&h.disk_path, &h.baseline_file, &h.baseline_key_file, &h.installed_binary}) {
      if (o->has_value() && (*o)->empty()) o->reset();
    }
    TRY(opt_list("setuid_paths", h.setuid_paths));
    TRY(opt_list("setuid_allowed", h.setuid_allowed));
    TRY(opt_list("writable_paths", h.writable_paths));
    if (auto* iv = hr.node("interval_ms")) {
      auto* t = iv->as_table();
      if (!t)
        return std::unexpected(bad(source, *iv, "health.interval_ms", "must be a table id = ms"));
      for (auto& [k, v] : *t) {
        auto ms = v.value<std::int64_t>();
        if (!ms || *ms < 10 || *ms > 86400000) {
          return std::unexpected(bad(source, v, "health.interval_ms." + std::string(k.str()),
                                     "must be 10..86400000 (milliseconds)"));
        }
        h.interval_ms[std::string(k.str())] = static_cast<int>(*ms);
      }
    }
    TRY(hr.no_unknown_keys());
    if (given) {
      c.refuse_when_compromised.clear();
      for (auto& e : entries) {
        auto colon = e.find(':');
        DaemonConfig::Refusal ref{e.substr(0, colon),
                                  colon == std::string::npos ? "" : e.substr(colon + 1)};
        if (!policy::parse_op(ref.op)) {
          return std::unexpected(bad(source, *n, "health.refuse_when_compromised",
                                     "'" + e +
                                         "': expected \"op\" or \"op:class\" with op one "
                                         "of list, watch, read, claim, write, configure, transmit, "
                                         "pair, authorize, power"));
        }
        c.refuse_when_compromised.push_back(ref);
      }
    }
  }
  TRY(r.no_unknown_keys());
  if (c.socket.empty() || c.socket[0] != '/') {
    return std::unexpected(bad(source, at(root, "socket"), "socket", "must be an absolute path"));
  }
  if (c.state_dir.empty() || c.state_dir[0] != '/') {
    return std::unexpected(
        bad(source, at(root, "state_dir"), "state_dir", "must be an absolute path"));
  }
  if (c.policy.empty() || c.policy[0] != '/') {
    return std::unexpected(bad(source, at(root, "policy"), "policy", "must be an absolute path"));
  }
  if (c.audit_log.empty()) c.audit_log = c.state_dir + "/audit.jsonl";
  if (c.audit_log[0] != '/') {
    return std::unexpected(
        bad(source, at(root, "audit_log"), "audit_log", "must be an absolute path"));
  }
  return c;
}

Result<DaemonConfig> load_config(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return fail(Errc::io, path, "config", std::strerror(errno));
  std::stringstream ss;
  ss << f.rdbuf();
  if (ss.str().size() > (1u << 20)) {
    return fail(Errc::invalid_argument, path, "config", "larger than 1 MiB");
  }
  return parse_config(ss.str(), path);
}

Result<DaemonConfig> demo_config(const std::string& state_dir, const std::string& bin_dir) {
  if (::mkdir(state_dir.c_str(), 0750) != 0 && errno != EEXIST) {
    return fail(Errc::io, state_dir, "state_dir", std::strerror(errno));
  }
  DaemonConfig c;
  c.state_dir = state_dir;
  c.socket = state_dir + "/portierd.sock";
  c.policy = state_dir + "/policy.toml";
  c.audit_log = state_dir + "/audit.jsonl";
  c.simulated_scanners.push_back({"sim0", 2000});
  c.simulated_readers.push_back({"nfc0"});
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
