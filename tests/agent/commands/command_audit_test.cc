// A refused command in the real audit trail (agent/audit_log): the line
// names the event, the command id, the link it came over and the reason,
// and a run command's line its outcome (REQ-28: illegal messages, bad
// signatures, duplicates).
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "agent/audit_log.h"
#include "agent/commands/command_verifier.h"
#include "command_test_util.h"

namespace portier::commands {
namespace {

std::vector<std::string> lines_of(const std::string& path) {
  std::ifstream f(path);
  std::vector<std::string> out;
  for (std::string l; std::getline(f, l);) out.push_back(l);
  return out;
}

TEST(CommandAuditTest, RefusalsAndRunsAreInTheTrailWithIdSourceAndReason_REQ28) {
  test::Dir dir;
  auto pki = portier::test::TestPki::create(dir.path);
  ASSERT_TRUE(pki) << pki.error().message();
  auto leaf = pki->issue({"fleet-commands", crypto::CertUsage::command_signing});
  ASSERT_TRUE(leaf);
  auto fleet = test::Fleet::from(*leaf);
  const TimePoint now = pki->made_at();
  auto log = agent::AuditLog::open(dir.path + "/audit.jsonl");
  ASSERT_TRUE(log) << log.error().message();
  auto store = CommandStore::open(dir.path + "/commands.db");
  ASSERT_TRUE(store);
  test::CountingHandlers handlers;
  CommandExecutor executor(handlers, **store);
  VerifierOptions o;
  o.terminal_id = "atm-1";
  o.trust_anchors = {pki->root()};
  o.clock = [now] { return now; };
  CommandVerifier verifier(o, **store, executor, **log);

  v1::Command c;
  c.set_command_id("c-1");
  c.set_target_terminal("atm-1");
  c.set_nonce(test::random_nonce());
  *c.mutable_not_before() = test::timestamp(now);
  *c.mutable_expires() = test::timestamp(now + std::chrono::hours(1));
  c.mutable_ping()->set_text("hi");
  v1::SignedCommand forged;
  ASSERT_TRUE(forged.ParseFromString(fleet.sign(c)));
  forged.mutable_signature()->back() ^= 0x01;
  verifier.handle(forged.SerializeAsString(), "mqtt");
  verifier.handle("\xff\xff garbage", "grpc");
  const std::string good = fleet.sign(c);
  verifier.handle(good, "mqtt");
  verifier.handle(good, "mqtt");
  ASSERT_TRUE((*log)->flush());

  auto lines = lines_of(dir.path + "/audit.jsonl");
  ASSERT_EQ(lines.size(), 4u);
  auto has = [](const std::string& line, const std::string& part) {
    EXPECT_NE(line.find(part), std::string::npos) << part << " not in " << line;
  };
  has(lines[0], "\"event\":\"command\",\"op\":\"ping\",\"decision\":\"deny\"");
  has(lines[0], "\"reason\":\"bad signature\",\"command_id\":\"c-1\",\"source\":\"mqtt\"}");
  has(lines[1], "\"decision\":\"deny\"");
  has(lines[1], "\"reason\":\"malformed: not a SignedCommand\",\"source\":\"grpc\"}");
  has(lines[2], "\"decision\":\"allow\"");
  has(lines[2], "\"reason\":\"OK\",\"command_id\":\"c-1\",\"source\":\"mqtt\"}");
  has(lines[3], "\"reason\":\"duplicate: already run;");
  EXPECT_EQ(handlers.runs(), 1);
}

}  // namespace
}  // namespace portier::commands
