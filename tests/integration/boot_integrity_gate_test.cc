// The whole loop of the health gate against a real software TPM (swtpm):
// portierd's health monitor replays the firmware event log against the TPM's
// PCRs and the provisioned reference values; a tampered PCR makes the
// terminal COMPROMISED and closes card APDU exchange; once the boot is
// measured and provisioned again (a legitimate update), access reopens.
#include <gtest/gtest.h>

#include "agent/attest/reference_values.h"
#include "agent/attest/tcg_event_log.h"
#include "agent/attest/tpm_client.h"
#include "attest/attest_test_util.h"
#include "daemon_fixture.h"

namespace portier::test {
namespace {

using attest::testing::EventLogBuilder;
using attest::testing::Swtpm;

std::string transmit_status(Daemon& d) {
  auto stub = d.connect();
  {
    grpc::ClientContext ctx;
    v1::ClaimRequest r;
    r.set_device_id("nfc0");
    r.set_seconds(5);
    v1::ClaimResponse resp;
    auto st = stub->Claim(&ctx, r, &resp);
    if (!st.ok()) return "claim: " + st.error_message();
  }
  grpc::ClientContext ctx;
  v1::TransmitRequest r;
  r.set_device_id("nfc0");
  r.set_apdu(std::string("\x00\xA4\x04\x00\x02\x3F\x00", 7));
  v1::TransmitResponse resp;
  auto st = stub->Transmit(&ctx, r, &resp);
  return st.ok() ? "ok" : st.error_message();
}

std::string reference_of(attest::TpmClient& tpm) {
  const std::uint32_t pcrs[] = {0, 1, 2, 3, 4, 5, 6, 7};
  const std::uint16_t banks[] = {attest::kAlgSha256};
  auto now = tpm.read_pcrs(banks, pcrs);
  EXPECT_TRUE(now);
  return now ? attest::format_reference_values(now->values) : "";
}

// REQ-7: boot integrity feeds the health gate: a tampered PCR closes card
// APDU exchange, and it reopens when the boot is good again.
TEST(BootIntegrityGateTest, TamperedPcrClosesApduExchangeUntilFixed) {
  if (!Swtpm::installed()) GTEST_SKIP() << "swtpm not installed";
  Swtpm swtpm;
  ASSERT_TRUE(swtpm.running()) << swtpm.error();
  attest::TpmClient tpm(swtpm.config());
  EventLogBuilder log;
  log.add(0, attest::kEvSCrtmVersion, "CRTM 1.0");
  log.add(0, attest::kEvPostCode, "BIOS image");
  for (std::uint32_t p = 0; p < 8; ++p) log.add(p, attest::kEvSeparator, std::string(4, '\0'));
  for (const auto& ex : log.extends()) ASSERT_TRUE(tpm.extend(ex.pcr, ex.digests));

  TempDir dir;
  write_file(dir.file("eventlog.bin"), log.bytes());
  write_file(dir.file("reference.txt"), reference_of(tpm));
  DaemonOptions o;
  o.policy = "version = 1\n" + runner_app() + runner_rule("*", "[\"*\"]");
  o.extra_config =
      "[[reader]]\nid = \"nfc0\"\ntype = \"simulated\"\n[health]\nmonitor = true\n"
      "checks = [\"boot_integrity\"]\ntpm_tcti = \"" +
      swtpm.tcti() + "\"\ntpm_reference = \"" + dir.file("reference.txt") + "\"\nevent_log = \"" +
      dir.file("eventlog.bin") +
      "\"\nima_log = \"\"\n"
      "[health.interval_ms]\nboot_integrity = 100\n";
  Daemon d(dir, o);
  ASSERT_TRUE(d.start()) << d.log();
  auto watcher = d.connect();
  grpc::ClientContext wctx;
  wctx.set_deadline(std::chrono::system_clock::now() + 60s);
  v1::WatchDevicesRequest wreq;
  auto changes = watcher->WatchDevices(&wctx, wreq);
  ASSERT_TRUE(wait_until([&] {
    auto h = d.health();
    return h.checks_size() == 1 && h.checks(0).status() == "ok";
  })) << d.health().DebugString()
      << d.log();
  EXPECT_EQ(transmit_status(d), "ok");

  // Something extends PCR 7 that neither the firmware log nor the
  // provisioned reference values show.
  EventLogBuilder updated = log;
  updated.add(7, attest::kEvPostCode, "unexpected boot component");
  const auto& extra = updated.extends().back();
  ASSERT_TRUE(tpm.extend(extra.pcr, extra.digests));
  ASSERT_TRUE(wait_until([&] { return d.health().state() == v1::Health::COMPROMISED; }))
      << d.health().DebugString();
  auto refused = transmit_status(d);
  EXPECT_NE(refused.find("COMPROMISED"), std::string::npos) << refused;
  EXPECT_NE(refused.find("PCR 7"), std::string::npos) << "names the failing check: " << refused;
  EXPECT_TRUE(d.audit_has("\"event\":\"health_changed\""));
  // Apps watching the terminal are told.
  v1::DeviceChange ch;
  bool told = false;
  while (!told && changes->Read(&ch)) {
    told = ch.device().id() == "terminal" &&
           ch.device().state_reason().find("health COMPROMISED") != std::string::npos;
  }
  EXPECT_TRUE(told);
  wctx.TryCancel();

  // Fixed: the component is a legitimate update; the operator provisions the
  // new measurements (log and reference values). Access reopens by itself.
  write_file(dir.file("eventlog.bin"), updated.bytes());
  write_file(dir.file("reference.txt"), reference_of(tpm));
  ASSERT_TRUE(wait_until([&] { return d.health().state() == v1::Health::OK; }))
      << d.health().DebugString();
  EXPECT_EQ(transmit_status(d), "ok");

  // REQ-7: a self-check on demand runs every check now.
  auto stub = d.connect();
  grpc::ClientContext ctx;
  v1::Health h;
  ASSERT_TRUE(stub->RunHealthChecks(&ctx, {}, &h).ok());
  ASSERT_EQ(h.checks_size(), 1);
  EXPECT_EQ(h.checks(0).status(), "ok");
  EXPECT_GE(h.checks(0).runs(), 3u);
}

}  // namespace
}  // namespace portier::test
