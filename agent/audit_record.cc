#include "agent/audit_record.h"

#include <google/protobuf/util/json_util.h>

#include <vector>

#include "agent/audit_verify.h"

namespace portier::agent {
namespace {

namespace pb = google::protobuf;

// The JSON names of the record's 64-bit integer fields: the mapping prints
// them as strings ("count":"40"); the trail writes numbers ("count":40).
const std::vector<std::string>& wide_fields() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    const auto* d = v1::AuditRecord::descriptor();
    for (int i = 0; i < d->field_count(); ++i) {
      auto t = d->field(i)->cpp_type();
      if (t == pb::FieldDescriptor::CPPTYPE_INT64 || t == pb::FieldDescriptor::CPPTYPE_UINT64) {
        out.push_back(d->field(i)->json_name());
      }
    }
    return out;
  }();
  return names;
}

// ,"name":"123" -> ,"name":123 for the top-level 64-bit fields. Safe on the
// printer's output: inside a string value every quote is escaped, so an
// unescaped ,"name":" only starts a key.
void unquote_wide(std::string& json) {
  for (const auto& name : wide_fields()) {
    const std::string key = ",\"" + name + "\":\"";
    auto at = json.find(key);
    if (at == std::string::npos) continue;
    auto from = at + key.size();
    auto to = json.find('"', from);
    if (to == std::string::npos || to == from) continue;
    if (json.find_first_not_of("-0123456789", from) != to) continue;
    json.erase(to, 1);
    json.erase(from - 1, 1);
  }
}

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
  return r;
}

std::string record_body(const v1::AuditRecord& record) {
  pb::util::JsonPrintOptions o;
  o.preserve_proto_field_names = true;
  std::string json;
  auto st = pb::util::MessageToJsonString(record, &json, o);
  if (!st.ok() || json.size() < 2 || json.front() != '{') {
    // Not reached with the strings to_record makes (valid UTF-8); a record
    // all the same, saying what went wrong.
    v1::AuditRecord why;
    *why.mutable_time() = record.time();
    why.set_event(record.event());
    why.set_reason("record not printable as JSON: " + std::string(st.message()));
    json.clear();
    pb::util::MessageToJsonString(why, &json, o);
  }
  unquote_wide(json);
  return json.substr(1);
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
