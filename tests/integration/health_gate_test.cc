// The health gate: a rule can require the terminal's health, and access
// comes back by itself when health recovers. Here DEGRADED comes from an
// unplugged scanner (the hub's own view of health); COMPROMISED comes from
// the health monitor.
#include <gtest/gtest.h>

#include "daemon_fixture.h"

namespace portier::test {
namespace {

// A reader whose claim requires health OK, and a scanner on `pty` whose
// unplugging makes the terminal DEGRADED.
DaemonOptions gated_reader(const Pty& pty) {
  DaemonOptions o;
  o.policy = "version = 1\n" + runner_app() + runner_rule("terminal", "[\"read\"]") +
             "[[rule]]\napp = \"test-runner\"\ndevice = \"nfc0\"\nops = [\"claim\", \"transmit\"]\n"
             "require_health = \"ok\"\n";
  o.extra_config =
      "[[reader]]\nid = \"nfc0\"\ntype = \"simulated\"\n"
      "[[scanner]]\nid = \"scanner0\"\npath = \"" +
      pty.link() + "\"\nreopen_min_ms = 10\nreopen_max_ms = 50\n";
  return o;
}

// REQ-7: access to a card reader is closed while the terminal is unhealthy
// and reopens when it is fixed.
TEST(HealthGateTest, RequireHealthClosesAndReopensAccess) {
  TempDir dir;
  Pty pty(dir.file("ttyACM0"));
  Daemon d(dir, gated_reader(pty));
  ASSERT_TRUE(d.start()) << d.log();
  ASSERT_TRUE(wait_until([&] { return d.health().state() == v1::Health::OK; }));

  auto claim = [&] {
    auto stub = d.connect();
    grpc::ClientContext ctx;
    v1::ClaimRequest r;
    r.set_device_id("nfc0");
    r.set_seconds(1);
    v1::ClaimResponse resp;
    return stub->Claim(&ctx, r, &resp);
  };
  ASSERT_TRUE(claim().ok());

  pty.close_master();  // the scanner is pulled: the terminal is DEGRADED
  ASSERT_TRUE(wait_until([&] { return d.health().state() == v1::Health::DEGRADED; }));
  auto st = claim();
  EXPECT_EQ(st.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_NE(st.error_message().find("requires health OK and the terminal is DEGRADED"),
            std::string::npos)
      << st.error_message();
  EXPECT_NE(st.error_message().find("scanner0 is DEVICE_STATE_DISCONNECTED"), std::string::npos)
      << "the refusal names what is wrong: " << st.error_message();
  EXPECT_TRUE(d.audit_has("requires health OK"));

  pty.reopen();  // fixed: access comes back by itself
  ASSERT_TRUE(wait_until([&] { return d.health().state() == v1::Health::OK; }));
  EXPECT_TRUE(wait_until([&] { return claim().ok(); }));
}

// REQ-7, REQ-28: a lease cannot outlive the health its claim requires (it
// is revoked when the gate closes, and audited), and a renewal is decided
// and audited like a claim.
TEST(HealthGateTest, LeaseIsRevokedWhenTheGateClosesAndRenewalsAreAudited) {
  TempDir dir;
  Pty pty(dir.file("ttyACM0"));
  Daemon d(dir, gated_reader(pty));
  ASSERT_TRUE(d.start()) << d.log();
  ASSERT_TRUE(wait_until([&] { return d.health().state() == v1::Health::OK; }));
  auto stub = d.connect();
  v1::ClaimResponse claimed;
  {
    grpc::ClientContext ctx;
    v1::ClaimRequest r;
    r.set_device_id("nfc0");
    r.set_seconds(60);
    ASSERT_TRUE(stub->Claim(&ctx, r, &claimed).ok());
  }
  auto renew = [&] {
    grpc::ClientContext ctx;
    v1::RenewRequest r;
    r.set_lease_id(claimed.lease().lease_id());
    r.set_seconds(60);
    v1::ClaimResponse resp;
    return stub->Renew(&ctx, r, &resp);
  };
  ASSERT_TRUE(renew().ok());
  EXPECT_TRUE(d.audit_has("lease renewed 60s"));

  pty.close_master();  // DEGRADED: the claim's rule no longer holds
  ASSERT_TRUE(wait_until([&] { return d.health().state() == v1::Health::DEGRADED; }));
  EXPECT_TRUE(d.audit_has("\"event\":\"lease_revoked\""));
  EXPECT_TRUE(d.audit_has("requires health OK"));
  auto st = renew();
  EXPECT_FALSE(st.ok());
  EXPECT_EQ(st.error_code(), grpc::StatusCode::NOT_FOUND) << st.error_message();
}

TEST(HealthGateTest, BadRefusalEntryIsAConfigError) {
  TempDir dir;
  write_file(dir.file("c.toml"), "[health]\nrefuse_when_compromised = [\"eat:smartcard\"]\n");
  auto r = run({bin("portierd"), "--check-config", "--config", dir.file("c.toml")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("'eat:smartcard'"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace portier::test
