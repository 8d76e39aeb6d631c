// REQ-29 (integrity evidence): the checker behind `portierctl audit verify`
// passes an untouched trail across rotated files and names the first changed,
// removed or inserted record, with file:line and seq.
#include "agent/audit_verify.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "agent/audit_log.h"
#include "audit_test_util.h"

namespace portier::agent {
namespace {

using test::Dir;
using test::file_lines;
using test::write_lines;

class AuditVerifyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = dir_.path + "/audit.jsonl";
    AuditLogOptions o;
    o.max_bytes = 4096;
    o.keep_files = 50;
    auto log = AuditLog::open(path_, o);
    ASSERT_TRUE(log);
    (*log)->record(test::event(AuditEvent::policy_loaded, "generation 1"));
    for (int i = 0; i < 80; ++i) {
      (*log)->record(test::event(AuditEvent::lease_released,
                                 "record " + std::to_string(i) + std::string(100, 'x')));
    }
    ASSERT_TRUE((*log)->flush());
    for (int i = 50; i >= 1; --i) {
      auto f = path_ + "." + std::to_string(i);
      if (std::filesystem::exists(f)) files_.push_back(f);
    }
    files_.push_back(path_);
    ASSERT_GE(files_.size(), 4u);
  }

  // seq of line `n` (1-based) of `file`.
  std::uint64_t seq(const std::string& file, std::size_t n) {
    return parse_chained_line(file_lines(file).at(n - 1))->seq;
  }

  Dir dir_;
  std::string path_;
  std::vector<std::string> files_;  // oldest first
};

TEST_F(AuditVerifyTest, UntouchedTrailPasses_REQ29) {
  auto r = verify_audit_files(files_);
  ASSERT_TRUE(r.ok) << r.problem;
  auto last = file_lines(path_).back();
  EXPECT_EQ(r.first_seq, 1u);
  EXPECT_EQ(r.last_seq, parse_chained_line(last)->seq);
  EXPECT_EQ(r.records, r.last_seq);
  EXPECT_EQ(r.head, sha256_hex(last));
  EXPECT_EQ(r.summary(), "OK: " + std::to_string(r.records) + " records, seq 1.." +
                             std::to_string(r.last_seq) + ", head " + r.head);
  EXPECT_EQ(r.json(), "{\"ok\":true,\"records\":" + std::to_string(r.records) +
                          ",\"first_seq\":1,\"last_seq\":" + std::to_string(r.last_seq) +
                          ",\"head\":\"" + r.head + "\"}");
  // The newest files alone pass too (the chain starts mid-way).
  EXPECT_TRUE(verify_audit_files({files_[files_.size() - 2], path_}).ok);
}

TEST_F(AuditVerifyTest, ChangedRecordIsNamed_REQ29) {
  auto f = files_[1];
  auto lines = file_lines(f);
  ASSERT_GE(lines.size(), 5u);
  auto s = seq(f, 3);
  auto at = lines[2].find("record ");
  ASSERT_NE(at, std::string::npos);
  lines[2][at] = 'R';
  write_lines(f, lines);
  auto r = verify_audit_files(files_);
  ASSERT_FALSE(r.ok);
  EXPECT_EQ(r.problem, f + ":3 (seq " + std::to_string(s) + ") was changed: " + f +
                           ":4 holds a different digest of it");
  EXPECT_EQ(r.summary(), "FAIL: " + r.problem);
  EXPECT_EQ(r.last_seq, s);
}

TEST_F(AuditVerifyTest, ChangedLastRecordOfAFileIsNamedByTheNextFile_REQ29) {
  auto f = files_[1];
  auto lines = file_lines(f);
  auto s = parse_chained_line(lines.back())->seq;
  lines.back().replace(lines.back().find("lease_released"), 5, "LEASE");
  write_lines(f, lines);
  auto r = verify_audit_files(files_);
  ASSERT_FALSE(r.ok);
  EXPECT_EQ(r.problem, f + ":" + std::to_string(lines.size()) + " (seq " + std::to_string(s) +
                           ") was changed: " + files_[2] + ":1 holds a different digest of it");
}

TEST_F(AuditVerifyTest, RemovedRecordsAreNamed_REQ29) {
  auto f = files_[1];
  auto lines = file_lines(f);
  ASSERT_GE(lines.size(), 6u);
  auto s = seq(f, 4);
  lines.erase(lines.begin() + 3);
  write_lines(f, lines);
  auto r = verify_audit_files(files_);
  ASSERT_FALSE(r.ok);
  EXPECT_EQ(r.problem, "record seq " + std::to_string(s) + " is missing before " + f + ":4");

  lines.erase(lines.begin() + 3);
  write_lines(f, lines);
  r = verify_audit_files(files_);
  ASSERT_FALSE(r.ok);
  EXPECT_EQ(r.problem, "records seq " + std::to_string(s) + ".." + std::to_string(s + 1) +
                           " are missing before " + f + ":4");
}

TEST_F(AuditVerifyTest, MissingFileIsNamed_REQ29) {
  auto r = verify_audit_files({files_[0], files_[2]});
  ASSERT_FALSE(r.ok);
  auto first = seq(files_[1], 1);
  auto last = parse_chained_line(file_lines(files_[1]).back())->seq;
  EXPECT_EQ(r.problem, "records seq " + std::to_string(first) + ".." + std::to_string(last) +
                           " are missing before " + files_[2] + ":1");
}

TEST_F(AuditVerifyTest, InsertedRecordIsNamed_REQ29) {
  auto f = files_[1];
  auto lines = file_lines(f);
  ASSERT_GE(lines.size(), 5u);
  auto s = seq(f, 2);
  lines.insert(lines.begin() + 4, lines[1]);  // a copy of line 2 as line 5
  write_lines(f, lines);
  auto r = verify_audit_files(files_);
  ASSERT_FALSE(r.ok);
  EXPECT_EQ(r.problem, f + ":5 (seq " + std::to_string(s) + ") is inserted or reordered: seq " +
                           std::to_string(s) + " does not follow seq " + std::to_string(s + 2) +
                           " at " + f + ":4");
}

TEST_F(AuditVerifyTest, LineThatIsNotARecordIsNamed_REQ29) {
  auto f = files_[2];
  auto lines = file_lines(f);
  lines[1] = "{\"time\":\"2026-01-01T00:00:00.000Z\",\"event\":\"decision\"}";
  write_lines(f, lines);
  auto r = verify_audit_files(files_);
  ASSERT_FALSE(r.ok);
  EXPECT_EQ(r.problem.rfind(f + ":2: not an audit record", 0), 0u) << r.problem;
}

TEST_F(AuditVerifyTest, TornLastLineAndUnreadableFileAreNamed) {
  {
    std::ofstream out(path_, std::ios::app | std::ios::binary);
    out << "{\"seq\":";
  }
  auto r = verify_audit_files(files_);
  ASSERT_FALSE(r.ok);
  auto n = file_lines(path_).size();
  EXPECT_EQ(r.problem.rfind(path_ + ":" + std::to_string(n) + ": incomplete last line", 0), 0u)
      << r.problem;
  r = verify_audit_files({dir_.path + "/nope"});
  ASSERT_FALSE(r.ok);
  EXPECT_EQ(r.problem, dir_.path + "/nope: cannot read: No such file or directory");
}

// Records the daemon wrote about a gap of its own are reported too.
TEST(AuditVerifyGapTest, RecordedGapsAreReported_REQ29) {
  Dir d;
  auto f = d.path + "/a.jsonl";
  std::vector<std::string> lines;
  std::string prev(kGenesisDigest);
  for (std::string body :
       {"\"time\":\"t\",\"event\":\"policy_loaded\"}",
        "\"time\":\"t\",\"event\":\"audit_records_lost\",\"count\":7,\"reason\":\"7 records were "
        "not kept\"}"}) {
    lines.push_back("{\"seq\":" + std::to_string(lines.size() + 1) + ",\"prev\":\"" + prev + "\"," +
                    body);
    prev = sha256_hex(lines.back());
  }
  write_lines(f, lines);
  auto r = verify_audit_files({f});
  ASSERT_FALSE(r.ok);
  EXPECT_EQ(
      r.problem,
      f + ":2 (seq 2): the daemon recorded a gap: audit_records_lost: 7 records were not kept");
  // The first record ever must start from 64 zeros.
  lines.resize(1);
  lines[0].replace(lines[0].find("\"prev\":\"0") + 8, 1, "1");
  write_lines(f, lines);
  r = verify_audit_files({f});
  ASSERT_FALSE(r.ok);
  EXPECT_EQ(r.problem, f + ":1 (seq 1): the first record ever must have prev = 64 zeros");
  // An empty trail is no problem.
  write_lines(f, {});
  r = verify_audit_files({f});
  EXPECT_TRUE(r.ok);
  EXPECT_EQ(r.summary(), "OK: 0 records");
}

TEST(AuditChainTest, ParsesTheChainPrefix) {
  std::string zeros(kGenesisDigest);
  auto c = parse_chained_line("{\"seq\":12,\"prev\":\"" + zeros +
                              "\",\"carried_from\":3,\"time\":\"t\",\"event\":\"policy_loaded\"}");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->seq, 12u);
  EXPECT_EQ(c->carried_from, 3u);
  EXPECT_EQ(c->event, "policy_loaded");
  EXPECT_EQ(c->body, "\"time\":\"t\",\"event\":\"policy_loaded\"}");
  EXPECT_FALSE(parse_chained_line("{\"seq\":0,\"prev\":\"" + zeros + "\",\"time\":\"t\"}"));
  EXPECT_FALSE(parse_chained_line("{\"seq\":01,\"prev\":\"" + zeros + "\",\"time\":\"t\"}"));
  EXPECT_FALSE(
      parse_chained_line("{\"seq\":1,\"prev\":\"" + std::string(64, 'A') + "\",\"time\":\"t\"}"));
  EXPECT_FALSE(parse_chained_line("{\"seq\":1,\"prev\":\"" + zeros + "\",\"time\":\"t\""));
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

// An exe path may hold any bytes: those that are not UTF-8 are written as
// the text \xNN so that every audit line stays valid JSON; UTF-8 passes.
TEST(JsonEscape, BytesThatAreNotUtf8BecomeText) {
  // JSON text \\xff: the string holds a backslash, 'x', 'f', 'f'.
  EXPECT_EQ(json_escape("/tmp/h/\xff\xfe\"x/ctl"), "/tmp/h/\\\\xff\\\\xfe\\\"x/ctl");
  EXPECT_EQ(json_escape("中文支付码"), "中文支付码");
  EXPECT_EQ(json_escape("\xc0\xaf"), "\\\\xc0\\\\xaf");             // overlong '/'
  EXPECT_EQ(json_escape("\xed\xa0\x80"), "\\\\xed\\\\xa0\\\\x80");  // a surrogate
  EXPECT_EQ(json_escape("\xe4\xb8"), "\\\\xe4\\\\xb8");             // cut short
}

}  // namespace
}  // namespace portier::agent
