// The typed audit record (proto/portier/v1/audit.proto): the C++ event kinds
// mirror the proto enum, each builder (common/audit_events.h) makes its kind's
// record, a line is the record's JSON mapping and parses back, and the chain
// goes on verifying from a file written before the record was typed.
#include "agent/audit_record.h"

#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <set>

#include "agent/audit_log.h"
#include "agent/audit_verify.h"
#include "audit_test_util.h"
#include "common/audit_events.h"

namespace portier::agent {
namespace {

using test::Dir;
using test::file_lines;

const auto kTime = std::chrono::system_clock::time_point(std::chrono::milliseconds(1795359863727));

std::string body(const AuditEntry& e) { return record_body(to_record(e, 512, kTime)); }

// What protobuf's own JSON printer makes of `r`, with its 64-bit strings
// ("count":"40") as numbers, without the opening brace: the trail's body.
std::string protobuf_body(const v1::AuditRecord& r) {
  google::protobuf::util::JsonPrintOptions o;
  o.preserve_proto_field_names = true;
  std::string json;
  EXPECT_TRUE(google::protobuf::util::MessageToJsonString(r, &json, o).ok());
  for (const char* k : {"bytes", "last_seq", "count"}) {
    auto key = ",\"" + std::string(k) + "\":\"";
    auto at = json.find(key);
    if (at == std::string::npos) continue;
    json.erase(json.find('"', at + key.size()), 1);
    json.erase(at + key.size() - 1, 1);
  }
  return json.substr(1);
}

// The line parsed back holds `r` (with seq and prev).
void expect_parses_back(const v1::AuditRecord& r) {
  auto l = "{\"seq\":3,\"prev\":\"" + std::string(64, '0') + "\"," + record_body(r);
  auto back = parse_record(l);
  ASSERT_TRUE(back) << l;
  EXPECT_EQ(back->seq(), 3u);
  back->clear_seq();
  back->clear_prev();
  EXPECT_EQ(back->SerializeAsString(), r.SerializeAsString()) << l << "\n" << back->DebugString();
}

// The line the writer makes of `e` as record `seq` after `prev`.
std::string line(const AuditEntry& e, std::uint64_t seq, const std::string& prev) {
  return "{\"seq\":" + std::to_string(seq) + ",\"prev\":\"" + prev + "\"," + body(e);
}

TEST(AuditRecordTest, EventKindsMirrorTheProtoEnumBothWays) {
  const auto* d = v1::AuditEvent::Kind_descriptor();
  std::set<int> seen;
  for (int i = 0; i < d->value_count(); ++i) {
    const auto* v = d->value(i);
    if (v->number() == 0) continue;
    EXPECT_EQ(audit_event_name(static_cast<AuditEvent>(v->number())), v->name()) << v->number();
    EXPECT_EQ(parse_audit_event(v->name()), static_cast<AuditEvent>(v->number())) << v->name();
    seen.insert(v->number());
  }
  int kinds = 0;
#define COUNT_KIND(kind, number)                                     \
  ++kinds;                                                           \
  EXPECT_TRUE(seen.count(number)) << #kind " is not in audit.proto"; \
  EXPECT_EQ(d->FindValueByNumber(number)->name(), #kind) << "number " #number;
  PORTIER_AUDIT_EVENTS(COUNT_KIND)
#undef COUNT_KIND
  EXPECT_EQ(kinds, static_cast<int>(seen.size()));

  const auto* dec = v1::AuditRecord::Decision_descriptor();
  for (auto k :
       {AuditDecision::allow, AuditDecision::deny, AuditDecision::pass, AuditDecision::fail}) {
    EXPECT_EQ(dec->FindValueByNumber(static_cast<int>(k))->name(), audit_decision_name(k));
  }
  EXPECT_EQ(dec->value_count(), 5);
}

TEST(AuditRecordTest, EachBuilderMakesItsKindOfRecord) {
  Caller c{1001, 1002, 42, "/opt/kiosk/ui", "ab12", "kiosk.service"};
  struct Case {
    AuditEntry entry;
    AuditEvent event;
    std::string json;  // the body, exactly
  };
  const std::string app =
      "\"app\":{\"name\":\"kiosk\",\"uid\":1001,\"gid\":1002,\"pid\":42,\"exe\":\"/opt/kiosk/ui\","
      "\"sha256\":\"ab12\",\"unit\":\"kiosk.service\"}";
  const std::string t = "\"time\":\"2026-11-22T15:04:23.727Z\",";
  audit::RuleRef rule{3, 12, "/etc/p.toml"};
  auto allow = audit::decision(&c, "kiosk", "scanner0", "claim", true, rule, "lease 10s");
  std::vector<Case> cases = {
      {allow, AuditEvent::decision,
       t + "\"event\":\"decision\"," + app +
           ",\"device\":\"scanner0\",\"op\":\"claim\",\"decision\":\"allow\",\"rule\":3,"
           "\"line\":12,\"policy\":\"/etc/p.toml\",\"reason\":\"lease 10s\"}"},
      {audit::refusal(&c, "scanner0", "read", "exe changed"), AuditEvent::decision,
       t + "\"event\":\"decision\"," +
           "\"app\":{\"name\":\"\",\"uid\":1001,\"gid\":1002,\"pid\":42,\"exe\":\"/opt/kiosk/"
           "ui\",\"sha256\":\"ab12\",\"unit\":\"kiosk.service\"}" +
           ",\"device\":\"scanner0\",\"op\":\"read\",\"decision\":\"deny\",\"rule\":0,"
           "\"line\":0,\"reason\":\"exe changed\"}"},
      {audit::claim_held(&c, "kiosk", "scanner0", rule, "app 'teller'"), AuditEvent::claim,
       t + "\"event\":\"claim\"," + app +
           ",\"device\":\"scanner0\",\"op\":\"claim\",\"decision\":\"deny\",\"rule\":3,"
           "\"line\":12,\"policy\":\"/etc/p.toml\",\"reason\":\"held by app 'teller'\"}"},
      {audit::allow_revoked(allow, "disk full"), AuditEvent::allow_revoked,
       t + "\"event\":\"allow_revoked\"," + app +
           ",\"device\":\"scanner0\",\"op\":\"claim\",\"decision\":\"deny\",\"rule\":3,"
           "\"line\":12,\"policy\":\"/etc/p.toml\",\"reason\":\"refused after all: its audit "
           "record could not be written in time (disk full)\"}"},
      {audit::lease_released(&c, "kiosk", "scanner0", "released by holder"),
       AuditEvent::lease_released,
       t + "\"event\":\"lease_released\"," + app +
           ",\"device\":\"scanner0\",\"reason\":\"released by holder\"}"},
      {audit::lease_expired(&c, "kiosk", "scanner0", "lease ran out"), AuditEvent::lease_expired,
       t + "\"event\":\"lease_expired\"," + app +
           ",\"device\":\"scanner0\",\"reason\":\"lease ran out\"}"},
      {audit::lease_revoked(nullptr, "", "scanner0", "policy"), AuditEvent::lease_revoked,
       t + "\"event\":\"lease_revoked\",\"device\":\"scanner0\",\"reason\":\"policy\"}"},
      {audit::card_reset("reader0", ""), AuditEvent::card_reset,
       t + "\"event\":\"card_reset\",\"device\":\"reader0\",\"reason\":\"after the lease "
           "ended\"}"},
      {audit::card_reset("reader0", "gone"), AuditEvent::card_reset,
       t + "\"event\":\"card_reset\",\"device\":\"reader0\",\"reason\":\"after the lease "
           "ended, failed: gone\"}"},
      {audit::action_failed(&c, "kiosk", "reader0", "transmit", "transmit: malformed APDU"),
       AuditEvent::action_failed,
       t + "\"event\":\"action_failed\"," + app +
           ",\"device\":\"reader0\",\"op\":\"transmit\",\"reason\":\"transmit: malformed "
           "APDU\"}"},
      {audit::identity_lost(&c, "exec'd"), AuditEvent::identity_lost,
       t + "\"event\":\"identity_lost\"," +
           "\"app\":{\"name\":\"\",\"uid\":1001,\"gid\":1002,\"pid\":42,\"exe\":\"/opt/kiosk/"
           "ui\",\"sha256\":\"ab12\",\"unit\":\"kiosk.service\"}" +
           ",\"reason\":\"exec'd\"}"},
      {audit::alarm("usb-1-1", "device_substituted", "pinned serial=X"), AuditEvent::alarm,
       t + "\"event\":\"alarm\",\"device\":\"usb-1-1\",\"op\":\"device_substituted\","
           "\"reason\":\"pinned serial=X\"}"},
      {audit::self_test("scanner0", false, "present=no"), AuditEvent::self_test,
       t + "\"event\":\"self_test\",\"device\":\"scanner0\",\"decision\":\"fail\",\"rule\":0,"
           "\"line\":0,\"reason\":\"present=no\"}"},
      {audit::identity_refused(&c, "exited"), AuditEvent::identity_refused,
       t + "\"event\":\"identity_refused\"," +
           "\"app\":{\"name\":\"\",\"uid\":1001,\"gid\":1002,\"pid\":42,\"exe\":\"/opt/kiosk/"
           "ui\",\"sha256\":\"ab12\",\"unit\":\"kiosk.service\"}" +
           ",\"decision\":\"deny\",\"rule\":0,\"line\":0,\"reason\":\"exited\"}"},
      {audit::connection_refused(nullptr, "over"), AuditEvent::connection_refused,
       t + "\"event\":\"connection_refused\",\"decision\":\"deny\",\"rule\":0,\"line\":0,"
           "\"reason\":\"over\"}"},
      {audit::health_changed("DEGRADED", "disk"), AuditEvent::health_changed,
       t + "\"event\":\"health_changed\",\"device\":\"terminal\",\"op\":\"DEGRADED\","
           "\"reason\":\"disk\"}"},
      {audit::health_changed("OK", ""), AuditEvent::health_changed,
       t + "\"event\":\"health_changed\",\"device\":\"terminal\",\"op\":\"OK\","
           "\"reason\":\"all checks ok\"}"},
      {audit::policy_loaded("/etc/p.toml", "generation 2"), AuditEvent::policy_loaded,
       t + "\"event\":\"policy_loaded\",\"policy\":\"/etc/p.toml\",\"reason\":\"generation "
           "2\"}"},
      {audit::policy_rejected("/etc/p.toml", "p.toml:3:1: bad"), AuditEvent::policy_rejected,
       t + "\"event\":\"policy_rejected\",\"policy\":\"/etc/p.toml\",\"reason\":\"p.toml:3:1: "
           "bad\"}"},
      {audit::feature_failed("feature x failed"), AuditEvent::feature_failed,
       t + "\"event\":\"feature_failed\",\"reason\":\"feature x failed\"}"},
      {audit::feature_recovered("health", 2), AuditEvent::feature_recovered,
       t + "\"event\":\"feature_recovered\",\"reason\":\"feature health runs again after 2 "
           "failure(s)\"}"},
      {audit::audit_failed("disk full"), AuditEvent::audit_failed,
       t + "\"event\":\"audit_failed\",\"reason\":\"disk full\"}"},
      {audit::audit_recovered(), AuditEvent::audit_recovered, t + "\"event\":\"audit_recovered\"}"},
      {audit::audit_reopened("/x/a.jsonl", 5, "deleted"), AuditEvent::audit_reopened,
       t + "\"event\":\"audit_reopened\",\"last_seq\":5,\"reason\":\"the audit log /x/a.jsonl "
           "was deleted; reopened: records after seq 5 written to the old file may be lost\"}"},
      {audit::audit_records_lost(7, 4096), AuditEvent::audit_records_lost,
       t + "\"event\":\"audit_records_lost\",\"count\":7,\"reason\":\"7 records were not kept "
           "while the audit log could not be written (4096 bytes buffered)\"}"},
      {audit::audit_truncated(17, 0), AuditEvent::audit_truncated,
       t + "\"event\":\"audit_truncated\",\"bytes\":17,\"last_seq\":0,\"reason\":\"a torn last "
           "line of 17 bytes after seq 0 was removed at start\"}"},
      {audit::denials_suppressed("0", 40, 20, 2), AuditEvent::denials_suppressed,
       t + "\"event\":\"denials_suppressed\",\"uid\":0,\"count\":40,\"reason\":\"40 denials of "
           "uid 0 not recorded (rate limit: burst 20, 2/s)\"}"},
      {audit::denials_suppressed("unidentified", 3, 20, 0.5), AuditEvent::denials_suppressed,
       t + "\"event\":\"denials_suppressed\",\"caller\":\"unidentified\",\"count\":3,"
           "\"reason\":\"3 denials of unidentified callers not recorded (rate limit: burst 20, "
           "0.5/s)\"}"},
      {audit::command_refused("mqtt", "c-17", "ping", "bad signature"), AuditEvent::command,
       t + "\"event\":\"command\",\"op\":\"ping\",\"decision\":\"deny\",\"rule\":0,"
           "\"line\":0,\"reason\":\"bad signature\",\"command_id\":\"c-17\",\"source\":"
           "\"mqtt\"}"},
      {audit::command_refused("grpc", "", "", "malformed: not a SignedCommand"),
       AuditEvent::command,
       t + "\"event\":\"command\",\"decision\":\"deny\",\"rule\":0,\"line\":0,"
           "\"reason\":\"malformed: not a SignedCommand\",\"source\":\"grpc\"}"},
      {audit::command_ran("mqtt", "c-18", "replace_policy", "OK"), AuditEvent::command,
       t + "\"event\":\"command\",\"op\":\"replace_policy\",\"decision\":\"allow\","
           "\"rule\":0,\"line\":0,\"reason\":\"OK\",\"command_id\":\"c-18\",\"source\":"
           "\"mqtt\"}"},
  };
  std::set<AuditEvent> kinds;
  for (auto& c : cases) {
    EXPECT_EQ(static_cast<AuditEvent>(c.entry.event), c.event) << c.json;
    auto r = to_record(c.entry, 512, kTime);
    EXPECT_EQ(static_cast<int>(r.event()), static_cast<int>(c.event)) << c.json;
    EXPECT_EQ(record_body(r), c.json);
    // The JSON mapping: what protobuf prints, and what its parser reads.
    EXPECT_EQ(record_body(r), protobuf_body(r));
    expect_parses_back(r);
    kinds.insert(c.event);
  }
  // Every kind has a builder tested here.
#define HAS_KIND(kind, number) EXPECT_TRUE(kinds.count(AuditEvent::kind)) << #kind;
  PORTIER_AUDIT_EVENTS(HAS_KIND)
#undef HAS_KIND
}

// Every field of the record (a field added to audit.proto but not to the
// writer fails here): set through reflection, printed, parsed back whole.
TEST(AuditRecordTest, EveryFieldIsWrittenAndReadBack) {
  namespace pb = google::protobuf;
  v1::AuditRecord r;
  *r.mutable_time() = to_record(AuditEntry{}, 512, kTime).time();
  auto fill = [](pb::Message& m, auto& self) -> void {
    const auto* d = m.GetDescriptor();
    const auto* refl = m.GetReflection();
    for (int i = 0; i < d->field_count(); ++i) {
      const auto* f = d->field(i);
      const std::string name = f->name();
      if (name == "seq" || name == "prev" || name == "carried_from" || name == "time") continue;
      switch (f->cpp_type()) {
        case pb::FieldDescriptor::CPPTYPE_STRING:
          refl->SetString(&m, f, "v<" + name + ">\t\"é");
          break;
        case pb::FieldDescriptor::CPPTYPE_UINT32:
          refl->SetUInt32(&m, f, 4000000000u + i);
          break;
        case pb::FieldDescriptor::CPPTYPE_INT32:
          refl->SetInt32(&m, f, -7 - i);
          break;
        case pb::FieldDescriptor::CPPTYPE_UINT64:
          refl->SetUInt64(&m, f, 18000000000000000000ull + i);
          break;
        case pb::FieldDescriptor::CPPTYPE_ENUM:
          refl->SetEnumValue(&m, f,
                             f->enum_type()->value(f->enum_type()->value_count() - 1)->number());
          break;
        case pb::FieldDescriptor::CPPTYPE_MESSAGE:
          self(*refl->MutableMessage(&m, f), self);
          break;
        default:
          ADD_FAILURE() << "audit.proto has a field of a type the test does not fill: " << name;
      }
    }
  };
  fill(r, fill);
  expect_parses_back(r);
  EXPECT_NE(record_body(r).find("\"uid\":"), std::string::npos);
  // Zeros and "" of fields with presence are written (and read back as set).
  v1::AuditRecord z;
  *z.mutable_time() = r.time();
  z.set_event(v1::AuditEvent::self_test);
  z.set_rule(0);
  z.set_line(0);
  z.set_uid(0);
  z.set_count(0);
  z.mutable_app()->set_name("");
  EXPECT_EQ(record_body(z), protobuf_body(z));
  expect_parses_back(z);
}

// What the file holds parses back into the record it was printed from.
TEST(AuditRecordTest, LineParsesBackIntoTheRecord) {
  Caller c{0, 0, 7, "/tmp/h/\xff\"x/ctl\n", "ab", ""};
  auto e = audit::decision(&c, "", "sim0", "read", false, {0, 0, "/p.toml"}, "default deny");
  auto rec = to_record(e, 512, kTime);
  auto l = line(e, 12, std::string(64, 'a'));
  auto back = parse_record(l);
  ASSERT_TRUE(back) << l;
  EXPECT_EQ(back->seq(), 12u);
  EXPECT_EQ(back->prev(), std::string(64, 'a'));
  back->clear_seq();
  back->clear_prev();
  EXPECT_EQ(back->SerializeAsString(), rec.SerializeAsString()) << back->DebugString();
  // Not UTF-8: kept as the text \xNN (JSON \\xNN), as before the record was typed.
  EXPECT_EQ(back->app().exe(), "/tmp/h/\\xff\"x/ctl\n");
  EXPECT_NE(l.find("\"exe\":\"/tmp/h/\\\\xff\\\"x/ctl\\n\""), std::string::npos) << l;
  EXPECT_EQ(back->time().seconds(), 1795359863);
  EXPECT_EQ(back->time().nanos(), 727000000);
  EXPECT_TRUE(back->has_rule());  // rule 0 is written (and read) with a decision
  EXPECT_EQ(back->decision(), v1::AuditRecord::deny);
  EXPECT_FALSE(parse_record("{\"seq\":1,"));
}

TEST(AuditRecordTest, CapsStringFieldsBeforeMakingThemUtf8) {
  Caller c{1, 1, 1, std::string(600, '\xff'), "", ""};
  auto e = audit::identity_lost(&c, std::string(10, 'r'));
  auto r = to_record(e, 16, kTime);
  // 16 raw bytes kept, each shown as \xff; the cut marked.
  std::string kept;
  for (int i = 0; i < 16; ++i) kept += "\\xff";
  EXPECT_EQ(r.app().exe(), kept + "…[cut 584 bytes]");
}

// REQ-29: a trail written before the record was typed (a rotated file of
// portierd at 8eb4459, its bodies made by that version's to_body) goes on:
// new records chain onto its last line, every line old and new verifies and
// parses as AuditRecord.
TEST(AuditRecordTest, ChainVerifiesAcrossAFileWrittenBeforeTheTypedRecord_REQ29) {
  Dir d;
  auto path = d.path + "/audit.jsonl";
  std::filesystem::copy_file(std::string(PORTIER_TEST_DATA) + "/audit/pre_typed.jsonl", path);
  auto old = file_lines(path);
  ASSERT_EQ(old.size(), 16u);
  ASSERT_TRUE(verify_audit_files({path}).ok) << verify_audit_files({path}).problem;
  Caller c{4242, 4242, 77, "/opt/pay", "ab", ""};
  {
    auto log = AuditLog::open(path);
    ASSERT_TRUE(log);
    (*log)->record(audit::policy_loaded("/etc/portier/policy.toml", "generation 2"));
    (*log)->record(audit::decision(&c, "pay", "reader0", "claim", true, {2, 9, "/p"}, "lease 5s"));
    (*log)->record(audit::lease_released(&c, "pay", "reader0", "released by holder"));
    ASSERT_TRUE((*log)->flush());
  }
  auto all = file_lines(path);
  ASSERT_EQ(all.size(), 19u);
  EXPECT_EQ(all[16].rfind("{\"seq\":57,\"prev\":\"" + sha256_hex(old.back()) + "\",\"time\":", 0),
            0u)
      << all[16];
  auto v = verify_audit_files({path});
  EXPECT_TRUE(v.ok) << v.problem;
  EXPECT_EQ(v.records, 19u);
  EXPECT_EQ(v.first_seq, 41u);
  EXPECT_EQ(v.last_seq, 59u);
  for (auto& l : all) {
    auto r = parse_record(l);
    ASSERT_TRUE(r) << l;
    EXPECT_NE(r->event(), v1::AuditEvent::event_unspecified) << l;
  }
  // Old lines read typed as they were meant.
  auto carried = *parse_record(all[0]);
  EXPECT_EQ(carried.carried_from(), 1u);
  EXPECT_EQ(carried.event(), v1::AuditEvent::policy_loaded);
  auto denied = *parse_record(all[2]);
  EXPECT_EQ(denied.app().exe(), "/tmp/h/\\xff\"x/ctl");
  EXPECT_EQ(denied.app().uid(), 0u);
  EXPECT_TRUE(denied.app().has_uid());
  EXPECT_EQ(denied.decision(), v1::AuditRecord::deny);
  EXPECT_TRUE(denied.has_rule());
  auto suppressed = *parse_record(all[10]);
  EXPECT_EQ(suppressed.event(), v1::AuditEvent::denials_suppressed);
  EXPECT_EQ(suppressed.uid(), 4242u);
  EXPECT_EQ(suppressed.count(), 40u);
  // The new lines keep the old keys, values and order.
  EXPECT_NE(all[17].find("\"event\":\"decision\",\"app\":{\"name\":\"pay\",\"uid\":4242,\"gid\":"
                         "4242,\"pid\":77,\"exe\":\"/opt/pay\",\"sha256\":\"ab\",\"unit\":\"\"},"
                         "\"device\":\"reader0\",\"op\":\"claim\",\"decision\":\"allow\","
                         "\"rule\":2,\"line\":9,\"policy\":\"/p\",\"reason\":\"lease 5s\"}"),
            std::string::npos)
      << all[17];
}

}  // namespace
}  // namespace portier::agent
