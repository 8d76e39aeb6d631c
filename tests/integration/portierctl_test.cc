// portierctl against the real daemon: every command, --json as one object
// per line, and the exit codes (0 ok, 2 usage, 3 denied, 4 not found or
// unavailable, 1 other) with a one-line message on stderr.
#include <gtest/gtest.h>

#include <sstream>

#include "daemon_fixture.h"

namespace portier::test {
namespace {

class PortierctlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ctl_ = dir_.file("portierctl");
    copy_file(bin("portierctl"), ctl_);
    DaemonOptions o;
    // root's copy of portierctl may do everything but write; the test binary
    // may only read the terminal.
    o.policy = "version = 1\n" + runner_app() + runner_rule("terminal", "[\"read\"]") +
               "[[app]]\nname = \"admin-cli\"\nuid = 0\nexe = \"" + ctl_ + "\"\n" +
               "[[rule]]\napp = \"admin-cli\"\nops = [\"write\"]\neffect = \"deny\"\n" +
               "[[rule]]\napp = \"admin-cli\"\nops = [\"*\"]\n";
    o.extra_config = "[[scanner]]\nid = \"sim0\"\ntype = \"simulated\"\ninterval_ms = 20\n";
    daemon_ = std::make_unique<Daemon>(dir_, o);
    ASSERT_TRUE(daemon_->start()) << daemon_->log();
  }

  ProcessResult ctl(std::vector<std::string> args) {
    args.insert(args.begin(), {ctl_, "--socket", daemon_->socket()});
    return run(args);
  }

  static int lines(const std::string& s) {
    return static_cast<int>(std::count(s.begin(), s.end(), '\n'));
  }

  TempDir dir_;
  std::string ctl_;
  std::unique_ptr<Daemon> daemon_;
};

TEST_F(PortierctlTest, DevicesAsTextAndJson) {
  auto r = ctl({"devices"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("sim0\tscanner\tready\tevents,write"), std::string::npos) << r.out;
  auto j = ctl({"--json", "devices"});
  ASSERT_EQ(j.exit_code, 0) << j.err;
  EXPECT_EQ(lines(j.out), 2);
  std::istringstream in(j.out);
  for (std::string line; std::getline(in, line);) {
    EXPECT_EQ(line.front(), '{');
    EXPECT_EQ(line.back(), '}');
  }
  EXPECT_NE(j.out.find("\"device_class\":\"scanner\""), std::string::npos) << j.out;
}

TEST_F(PortierctlTest, WatchCountsAndPrintsJsonEvents) {
  auto r = ctl({"watch", "--device", "sim0", "--count", "3", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(lines(r.out), 3);
  EXPECT_NE(r.out.find("\"scan\":{"), std::string::npos) << r.out;
  auto all = ctl({"watch", "--count", "2"});  // every readable device with events
  ASSERT_EQ(all.exit_code, 0) << all.err;
  EXPECT_EQ(lines(all.out), 2);
}

TEST_F(PortierctlTest, ClaimHoldsAndReleases) {
  auto r = ctl({"claim", "sim0", "--seconds", "5", "--count", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("claimed sim0 for 5 s"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("released sim0"), std::string::npos) << r.out;
  EXPECT_TRUE(daemon_->audit_has("released by holder"));
}

TEST_F(PortierctlTest, ExitCodes) {
  auto usage = ctl({"frobnicate"});
  EXPECT_EQ(usage.exit_code, 2);
  EXPECT_EQ(lines(usage.err), 1) << usage.err;
  EXPECT_EQ(ctl({"claim", "sim0"}).exit_code, 2);  // no --seconds
  EXPECT_EQ(ctl({"watch", "--count", "-1"}).exit_code, 2);
  EXPECT_EQ(ctl({"devices", "--bogus"}).exit_code, 2);
  auto misplaced = ctl({"devices", "--count", "5"});  // an option of another command
  EXPECT_EQ(misplaced.exit_code, 2);
  EXPECT_NE(misplaced.err.find("--count does not apply to 'devices'"), std::string::npos);
  EXPECT_EQ(ctl({"health", "--timeout", "0"}).exit_code, 2);

  auto denied = ctl({"send", "sim0", "--text", "x"});  // write is denied by rule 2
  EXPECT_EQ(denied.exit_code, 3) << denied.err;
  EXPECT_NE(denied.err.find("PERMISSION_DENIED: app 'admin-cli' may not write 'sim0'"),
            std::string::npos)
      << denied.err;
  EXPECT_EQ(lines(denied.err), 1);

  auto missing = ctl({"watch", "--device", "nope", "--count", "1"});
  EXPECT_EQ(missing.exit_code, 4) << missing.err;
  auto gone = run({ctl_, "--socket", dir_.file("no-such.sock"), "devices"});
  EXPECT_EQ(gone.exit_code, 4) << gone.err;
  EXPECT_EQ(lines(gone.err), 1) << gone.err;
}

TEST_F(PortierctlTest, HealthTextAndJson) {
  auto r = ctl({"health"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("state: OK"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("policy: " + daemon_->policy_path()), std::string::npos) << r.out;
  auto j = ctl({"health", "--json"});
  ASSERT_EQ(j.exit_code, 0);
  EXPECT_EQ(lines(j.out), 1);
  EXPECT_NE(j.out.find("\"state\":\"OK\""), std::string::npos) << j.out;
}

TEST_F(PortierctlTest, PolicyExplainOnlineAndOffline) {
  auto allow = ctl(
      {"policy", "explain", "--app-uid", "0", "--exe", ctl_, "--device", "sim0", "--op", "claim"});
  ASSERT_EQ(allow.exit_code, 0) << allow.err;
  EXPECT_NE(allow.out.find("ALLOW: app 'admin-cli' may claim 'sim0' (rule 3 of"), std::string::npos)
      << allow.out;
  auto deny = ctl(
      {"policy", "explain", "--app-uid", "0", "--exe", ctl_, "--device", "sim0", "--op", "write"});
  EXPECT_NE(deny.out.find("DENY: app 'admin-cli' may not write 'sim0' (rule 2 of"),
            std::string::npos)
      << deny.out;
  auto stranger = ctl({"policy", "explain", "--app-uid", "1000", "--exe", "/usr/bin/x", "--device",
                       "sim0", "--op", "read", "--json"});
  EXPECT_NE(stranger.out.find("\"allow\":false"), std::string::npos) << stranger.out;
  EXPECT_NE(stranger.out.find("\"rule\":0"), std::string::npos) << stranger.out;

  // Offline, straight from a file, without the daemon.
  auto offline = run({ctl_, "--socket", dir_.file("none.sock"), "policy", "explain", "--policy",
                      daemon_->policy_path(), "--app-uid", "0", "--exe", ctl_, "--device", "sim0",
                      "--op", "write"});
  EXPECT_EQ(offline.exit_code, 0) << offline.err;
  EXPECT_NE(offline.out.find("DENY"), std::string::npos) << offline.out;
  auto bad_op = ctl({"policy", "explain", "--app-uid", "0", "--device", "sim0", "--op", "eat"});
  EXPECT_EQ(bad_op.exit_code, 2);
}

TEST_F(PortierctlTest, AuditTailShowsDenials) {
  ASSERT_EQ(ctl({"send", "sim0", "--text", "x"}).exit_code, 3);
  ASSERT_TRUE(daemon_->audit_has("\"decision\":\"deny\""));
  auto r = ctl({"audit", "tail", "--count", "5"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_LE(lines(r.out), 5);
  EXPECT_NE(r.out.find("\"op\":\"write\",\"decision\":\"deny\""), std::string::npos) << r.out;
  // The test binary may not read the audit trail.
  auto stub = daemon_->connect();
  grpc::ClientContext ctx;
  v1::TailAuditRequest req;
  auto reader = stub->TailAudit(&ctx, req);
  v1::TailAuditResponse rec;
  EXPECT_FALSE(reader->Read(&rec));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::PERMISSION_DENIED);

  // Once it may: each record comes as its line and typed (audit.proto).
  auto policy =
      "version = 1\n" + runner_app() + runner_rule("terminal", "[\"read\", \"configure\"]");
  replace_file(daemon_->policy_path(), policy);
  ASSERT_TRUE(wait_until([&] { return daemon_->health().policy().generation() == 2; }));
  grpc::ClientContext ctx2;
  req.set_count(100);
  auto typed = stub->TailAudit(&ctx2, req);
  int records = 0, denials = 0;
  std::uint64_t last_seq = 0;
  while (typed->Read(&rec)) {
    ++records;
    ASSERT_TRUE(rec.has_record()) << rec.json();
    const auto& t = rec.record();
    EXPECT_EQ(rec.json().rfind(
                  "{\"seq\":" + std::to_string(t.seq()) + ",\"prev\":\"" + t.prev() + "\",", 0),
              0u)
        << rec.json();
    EXPECT_GT(t.seq(), last_seq);
    last_seq = t.seq();
    EXPECT_NE(t.event(), v1::AuditEvent::event_unspecified) << rec.json();
    EXPECT_GT(t.time().seconds(), 0) << rec.json();
    if (t.event() == v1::AuditEvent::decision && t.decision() == v1::AuditRecord::deny &&
        t.op() == "write") {
      ++denials;
      EXPECT_EQ(t.device(), "sim0");
      EXPECT_EQ(t.app().name(), "admin-cli");
      EXPECT_EQ(t.app().exe(), ctl_);
      EXPECT_TRUE(t.has_rule());
    }
  }
  EXPECT_TRUE(typed->Finish().ok());
  EXPECT_GE(records, 3);
  EXPECT_EQ(denials, 1);
}

// REQ-29: `portierctl audit verify` checks the daemon's hash-chained trail
// offline (no daemon needed), names the first changed record and exits 1.
TEST_F(PortierctlTest, AuditVerifyChecksTheTrailOffline_REQ29) {
  ASSERT_EQ(ctl({"send", "sim0", "--text", "x"}).exit_code, 3);
  ASSERT_TRUE(daemon_->audit_has("\"decision\":\"deny\""));
  // A copy of its whole lines: the daemon goes on writing its own file.
  auto text = daemon_->audit();
  text = text.substr(0, text.rfind('\n') + 1);
  ASSERT_GE(lines(text), 2);
  auto copy = dir_.file("copy.jsonl");
  write_file(copy, text);
  auto ok = run({ctl_, "--socket", dir_.file("none.sock"), "audit", "verify", copy});
  EXPECT_EQ(ok.exit_code, 0) << ok.out << ok.err;
  EXPECT_EQ(ok.out.rfind("OK: " + std::to_string(lines(text)) + " records, seq 1..", 0), 0u)
      << ok.out;
  EXPECT_NE(ok.out.find(", head "), std::string::npos) << ok.out;

  text[text.find("\"time\":\"") + 8] ^= 1;  // the first record's time, changed
  write_file(copy, text);
  auto bad = ctl({"audit", "verify", copy});
  EXPECT_EQ(bad.exit_code, 1) << bad.out << bad.err;
  EXPECT_EQ(bad.out, "FAIL: " + copy + ":1 (seq 1) was changed: " + copy +
                         ":2 holds a different digest of it\n");
  auto json = ctl({"--json", "audit", "verify", copy});
  EXPECT_EQ(json.exit_code, 1);
  EXPECT_EQ(json.out.rfind("{\"ok\":false,\"records\":1,", 0), 0u) << json.out;
  EXPECT_NE(json.out.find(",\"problem\":\"" + copy + ":1 (seq 1) was changed"), std::string::npos)
      << json.out;
  EXPECT_EQ(ctl({"audit", "verify"}).exit_code, 2);
  EXPECT_EQ(ctl({"audit", "verify", copy, "--count", "2"}).exit_code, 2);
}

}  // namespace
}  // namespace portier::test
