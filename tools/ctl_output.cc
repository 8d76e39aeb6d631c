#include "ctl_output.h"

#include <google/protobuf/util/json_util.h>

#include <ctime>
#include <sstream>

#include "common/hex.h"

namespace portier::ctl {
namespace {

std::string short_state(v1::DeviceState s) {
  switch (s) {
    case v1::DEVICE_STATE_READY:
      return "ready";
    case v1::DEVICE_STATE_DISCONNECTED:
      return "disconnected";
    case v1::DEVICE_STATE_ERROR:
      return "error";
    default:
      return "unknown";
  }
}

}  // namespace

std::string hex(const std::string& bytes) {
  static const char* d = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : bytes) {
    out += d[c >> 4];
    out += d[c & 15];
  }
  return out;
}

std::string to_json_line(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::util::JsonPrintOptions o;
  o.always_print_primitive_fields = true;
  o.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(m, &out, o);
  return out;
}

std::string format_time(const google::protobuf::Timestamp& t) {
  std::time_t s = t.seconds();
  std::tm tm{};
  gmtime_r(&s, &tm);
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, t.nanos() / 1000000);
  return buf;
}

std::string format_device(const v1::Device& d) {
  std::ostringstream o;
  o << d.id() << "\t" << d.device_class() << "\t" << short_state(d.state()) << "\t";
  for (int i = 0; i < d.capabilities_size(); ++i) o << (i ? "," : "") << d.capabilities(i);
  if (!d.claimed_by().empty()) o << "\tclaimed by " << d.claimed_by();
  if (!d.state_reason().empty()) o << "\t(" << d.state_reason() << ")";
  return o.str();
}

std::string format_event(const v1::PeripheralEvent& e) {
  std::ostringstream o;
  o << format_time(e.time()) << " " << e.device_id() << " #" << e.sequence();
  if (e.has_scan()) {
    const auto& s = e.scan();
    // No AIM identifier: an empty symbology, shown as "-" (README, Scanners);
    // "unknown (]Wm)" is an identifier the decoder does not know.
    o << " " << (s.symbology().empty() ? "-" : s.symbology());
    if (!s.aim_id().empty()) o << " " << s.aim_id();
    o << " " << s.encoding();
    if (s.decode_error()) {
      o << " " << s.raw().size() << " undecodable bytes";
    } else {
      o << " \"" << printable(s.text()) << "\"";
    }
  } else if (e.has_fault()) {
    o << " FAULT " << e.fault().code() << ": " << e.fault().message();
  } else if (e.has_card()) {
    o << " card " << (e.card().kind() == v1::Card::INSERTED ? "inserted" : "removed");
    if (!e.card().atr().empty()) o << " ATR " << hex(e.card().atr());
    if (!e.card().uid().empty()) o << " UID " << hex(e.card().uid());
  } else if (e.has_alarm()) {
    o << " ALARM " << e.alarm().code() << ": " << e.alarm().message();
    for (auto& [k, v] : e.alarm().details()) o << " " << k << "=" << v;
  }
  if (e.dropped()) o << " (dropped so far: " << e.dropped() << ")";
  return o.str();
}

std::string format_change(const v1::DeviceChange& c) {
  return format_time(c.time()) + " " + v1::DeviceChange::Kind_Name(c.kind()) + " " +
         format_device(c.device());
}

std::string format_health(const v1::Health& h) {
  std::ostringstream o;
  o << "state: " << v1::Health::State_Name(h.state()) << "\n";
  for (auto& r : h.reasons()) o << "  - " << r << "\n";
  o << "version: " << h.version() << ", uptime " << h.uptime_seconds() << " s, " << h.connections()
    << " connections\n";
  const auto& p = h.policy();
  o << "policy: " << p.path() << " (generation " << p.generation() << ", " << p.apps() << " apps, "
    << p.rules() << " rules, loaded " << format_time(p.loaded_at()) << ")\n";
  if (!p.last_error().empty()) o << "  last reload rejected: " << p.last_error() << "\n";
  if (h.checks_size()) {
    o << "checks:\n";
    for (auto& c : h.checks()) {
      o << "  " << c.id() << ": " << c.status() << (c.severity() == "critical" ? " (critical)" : "")
        << (c.reason().empty() || c.status() == "ok" ? "" : " - " + c.reason()) << "\n";
    }
  }
  if (h.self_tests_size()) {
    o << "self-tests at start:\n";
    for (auto& t : h.self_tests()) {
      o << "  " << t.device_id() << ": " << (t.passed() ? "passed" : "FAILED")
        << (t.detail().empty() ? "" : " (" + t.detail() + ")") << "\n";
    }
  }
  o << "devices:\n";
  for (auto& d : h.devices()) o << "  " << format_device(d) << "\n";
  if (h.subscribers_size()) {
    o << "subscribers:\n";
    for (auto& s : h.subscribers()) {
      o << "  #" << s.id() << " " << (s.app().empty() ? "-" : s.app()) << " pid " << s.pid()
        << " on " << s.device_id() << ": delivered " << s.delivered() << ", dropped " << s.dropped()
        << ", queued " << s.queued() << "\n";
    }
  }
  return o.str();
}

}  // namespace portier::ctl
