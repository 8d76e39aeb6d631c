// The audit log: JSON lines that survive a restart, escaping of hostile
// strings, followers, and rotation.
#include "agent/audit_log.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace portier::agent {
namespace {

struct Dir {
  Dir() {
    char t[] = "/tmp/portier-audit-XXXXXX";
    path = mkdtemp(t);
  }
  ~Dir() { std::filesystem::remove_all(path); }
  std::string path;
};

std::string slurp(const std::string& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

gateway::AuditEntry deny(const policy::Caller& c) {
  gateway::AuditEntry e;
  e.caller = &c;
  e.app = "kiosk-ui";
  e.device = "scanner0";
  e.op = "claim";
  e.decision = "deny";
  e.rule = 3;
  e.line = 12;
  e.policy = "/etc/portier/policy.toml";
  e.reason = "rule 3";
  return e;
}

TEST(AuditLogTest, WritesOneJsonObjectPerLineAndKeepsItAcrossRestart) {
  Dir d;
  auto path = d.path + "/audit.jsonl";
  policy::Caller c{1001, 1001, 42, "/opt/kiosk \"ui\"\n", "ab", "kiosk.service"};
  {
    auto log = AuditLog::open(path);
    ASSERT_TRUE(log);
    (*log)->record(deny(c));
    (*log)->flush();
  }
  auto text = slurp(path);
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1);
  EXPECT_NE(text.find("\"exe\":\"/opt/kiosk \\\"ui\\\"\\n\""), std::string::npos) << text;
  EXPECT_NE(text.find("\"decision\":\"deny\",\"rule\":3,\"line\":12"), std::string::npos);
  auto again = AuditLog::open(path);
  ASSERT_TRUE(again);
  auto tail = (*again)->tail(10);
  ASSERT_EQ(tail.size(), 1u);
  EXPECT_EQ(tail[0] + "\n", text);
}

TEST(AuditLogTest, ControlCharactersAreEscaped) {
  EXPECT_EQ(json_escape(std::string("a\x01\x7f\"\\", 5)), "a\\u0001\\u007f\\\"\\\\");
}

TEST(AuditLogTest, FollowersSeeNewRecords) {
  Dir d;
  auto log = AuditLog::open(d.path + "/a.jsonl");
  ASSERT_TRUE(log);
  std::vector<std::string> seen;
  int id = (*log)->follow([&](const std::string& l) { seen.push_back(l); });
  policy::Caller c;
  (*log)->record(deny(c));
  (*log)->unfollow(id);
  (*log)->record(deny(c));
  EXPECT_EQ(seen.size(), 1u);
}

TEST(AuditLogTest, RotatesAtTheSizeLimit) {
  Dir d;
  auto path = d.path + "/a.jsonl";
  auto log = AuditLog::open(path, 4096);
  ASSERT_TRUE(log);
  policy::Caller c;
  for (int i = 0; i < 100; ++i) {
    (*log)->record(deny(c));
    (*log)->flush();
  }
  EXPECT_TRUE(std::filesystem::exists(path + ".1"));
  EXPECT_LE(std::filesystem::file_size(path), 4096u + 1024u);
}

}  // namespace
}  // namespace portier::agent
