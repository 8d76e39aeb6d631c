#include "agent/audit_record.h"

#include <google/protobuf/util/json_util.h>

#include <cstdio>
#include <ctime>

#include "agent/audit_verify.h"

namespace portier::agent {
namespace {

namespace pb = google::protobuf;

// RFC 3339 in UTC with milliseconds, as the trail always wrote it (the
// mapping's parsers take any number of fraction digits).
std::string rfc3339_ms(const google::protobuf::Timestamp& t) {
  std::time_t secs = static_cast<std::time_t>(t.seconds());
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(t.nanos() / 1000000));
  return buf;
}

struct Json {
  std::string out;
  void key(std::string_view k) {
    if (out.size() > 1) out += ',';
    out += '"';
    out += k;
    out += "\":";
  }
  void str(std::string_view k, std::string_view v) {
    key(k);
    out += '"';
    out += json_escape(v);
    out += '"';
  }
  template <class Int>
  void num(std::string_view k, Int v) {
    key(k);
    out += std::to_string(v);
  }
};

}  // namespace

std::string cap_field(std::string_view s, std::size_t max) {
  if (s.size() <= max) return std::string(s);
  std::size_t cut = max;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
  return std::string(s.substr(0, cut)) + "…[cut " + std::to_string(s.size() - cut) + " bytes]";
}

v1::AuditRecord to_record(const AuditEntry& e, std::size_t max_field,
                          std::chrono::system_clock::time_point time) {
  auto f = [&](std::string_view s) { return utf8_or_hex(cap_field(s, max_field)); };
  v1::AuditRecord r;
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(time.time_since_epoch()).count();
  auto* t = r.mutable_time();
  t->set_seconds(ms / 1000 - (ms % 1000 < 0 ? 1 : 0));
  t->set_nanos(static_cast<std::int32_t>(((ms % 1000) + 1000) % 1000) * 1000000);
  r.set_event(static_cast<v1::AuditEvent::Kind>(static_cast<AuditEvent>(e.event)));
  if (e.caller) {
    const auto& c = *e.caller;
    auto* app = r.mutable_app();
    app->set_name(f(e.app));
    app->set_uid(c.uid);
    app->set_gid(c.gid);
    app->set_pid(c.pid);
    app->set_exe(f(c.exe));
    app->set_sha256(f(c.sha256));
    app->set_unit(f(c.unit));
  }
  if (!e.device.empty()) r.set_device(f(e.device));
  if (!e.op.empty()) r.set_op(f(e.op));
  if (AuditDecision d = e.decision; d != AuditDecision::none) {
    r.set_decision(static_cast<v1::AuditRecord::Decision>(d));
    r.set_rule(e.rule);
    r.set_line(e.line);
  }
  if (!e.policy.empty()) r.set_policy(f(e.policy));
  if (e.uid) r.set_uid(*e.uid);
  if (!e.caller_key.empty()) r.set_caller(f(e.caller_key));
  if (e.bytes) r.set_bytes(*e.bytes);
  if (e.last_seq) r.set_last_seq(*e.last_seq);
  if (e.count) r.set_count(*e.count);
  if (!e.reason.empty()) r.set_reason(f(e.reason));
  if (!e.command_id.empty()) r.set_command_id(f(e.command_id));
  if (!e.source.empty()) r.set_source(f(e.source));
  return r;
}

std::string record_body(const v1::AuditRecord& r) {
  // Written field by field in field-number order, as protobuf's printer
  // would (tests/gateway/audit_record_test.cc compares the two and parses
  // every field back), without its cost: it pages in about 1 MiB of
  // libprotobuf and takes ~12 us a record where this takes ~1 us. Strings are
  // escaped as before the record was typed (< and > stay as they are).
  Json j;
  j.out = "{";
  j.str("time", rfc3339_ms(r.time()));
  auto event = audit_event_name(static_cast<AuditEvent>(r.event()));
  j.str("event", event.empty() ? "event_unspecified" : event);
  if (r.has_app()) {
    const auto& a = r.app();
    j.key("app");
    Json o;
    o.out = "{";
    if (a.has_name()) o.str("name", a.name());
    if (a.has_uid()) o.num("uid", a.uid());
    if (a.has_gid()) o.num("gid", a.gid());
    if (a.has_pid()) o.num("pid", a.pid());
    if (a.has_exe()) o.str("exe", a.exe());
    if (a.has_sha256()) o.str("sha256", a.sha256());
    if (a.has_unit()) o.str("unit", a.unit());
    j.out += o.out + "}";
  }
  if (!r.device().empty()) j.str("device", r.device());
  if (!r.op().empty()) j.str("op", r.op());
  if (r.decision() != v1::AuditRecord::decision_unspecified) {
    j.str("decision", audit_decision_name(static_cast<AuditDecision>(r.decision())));
  }
  if (r.has_rule()) j.num("rule", r.rule());
  if (r.has_line()) j.num("line", r.line());
  if (!r.policy().empty()) j.str("policy", r.policy());
  if (r.has_uid()) j.num("uid", r.uid());
  if (!r.caller().empty()) j.str("caller", r.caller());
  if (r.has_bytes()) j.num("bytes", r.bytes());
  if (r.has_last_seq()) j.num("last_seq", r.last_seq());
  if (r.has_count()) j.num("count", r.count());
  if (!r.reason().empty()) j.str("reason", r.reason());
  if (!r.command_id().empty()) j.str("command_id", r.command_id());
  if (!r.source().empty()) j.str("source", r.source());
  j.out += '}';
  return j.out.substr(1);
}

std::optional<v1::AuditRecord> parse_record(std::string_view line) {
  pb::util::JsonParseOptions o;
  o.ignore_unknown_fields = true;
  v1::AuditRecord r;
  if (!pb::util::JsonStringToMessage(pb::StringPiece(line.data(), line.size()), &r, o).ok()) {
    return std::nullopt;
  }
  return r;
}

}  // namespace portier::agent
