// Boot-integrity check end to end against swtpm and fixture logs.
#include "agent/attest/boot_integrity_check.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "agent/attest/reference_values.h"
#include "attest_test_util.h"

namespace portier::attest {
namespace {

using namespace std::chrono_literals;
using testing::EventLogBuilder;
using testing::Swtpm;

#define REQUIRE_SWTPM(t)                                          \
  if (!Swtpm::installed()) GTEST_SKIP() << "swtpm not installed"; \
  Swtpm t;                                                        \
  ASSERT_TRUE(t.running()) << t.error()

std::string joined(const BootIntegrityResult& r) {
  std::string s;
  for (const auto& x : r.reasons) s += x + "\n";
  return s;
}

EventLogBuilder good_boot() {
  EventLogBuilder b;
  b.add(0, kEvSCrtmVersion, "CRTM 1.0");
  b.add(0, kEvPostCode, "BIOS image");
  b.add(1, kEvPostCode, "config");
  b.add(7, kEvEfiVariableDriverConfig, "SecureBoot=1");
  b.add_no_action("ignored");
  for (std::uint32_t p = 0; p < 8; ++p) b.add(p, kEvSeparator, std::string(4, '\0'));
  b.add(4, 0x80000003, "shimx64.efi");
  return b;
}

void boot(TpmClient& c, const EventLogBuilder& b) {
  for (const auto& ex : b.extends()) ASSERT_TRUE(c.extend(ex.pcr, ex.digests));
}

BootIntegrityConfig config_for(const Swtpm& tpm, const std::string& log_bytes,
                               const std::string& tag) {
  BootIntegrityConfig cfg;
  cfg.tpm = tpm.config();
  cfg.event_log_path = testing::write_temp_file(tag + ".bin", log_bytes);
  cfg.ima_log_path.clear();
  return cfg;
}

// REQ-7: a good boot (log replay == PCRs, reference values match) is ok.
TEST(BootIntegrity, GoodBootIsOk) {
  REQUIRE_SWTPM(tpm);
  const auto b = good_boot();
  BootIntegrityCheck check(config_for(tpm, b.bytes(), "good"));
  boot(check.tpm(), b);
  // Provision reference values from this known-good state.
  const std::uint32_t pcrs[] = {0, 4, 7};
  const std::uint16_t banks[] = {kAlgSha256};
  auto now = check.tpm().read_pcrs(banks, pcrs);
  ASSERT_TRUE(now);
  BootIntegrityConfig cfg = config_for(tpm, b.bytes(), "good");
  cfg.reference_path = testing::write_temp_file("good.ref", format_reference_values(now->values));
  BootIntegrityCheck check2(cfg);
  const auto r = check2.run();
  EXPECT_EQ(r.state, BootState::ok) << joined(r);
  EXPECT_TRUE(r.tpm_present);
  EXPECT_EQ(r.event_log_events, 13u);
  EXPECT_EQ(r.measured.size(), 48u);
  EXPECT_EQ(r.measured.at("sha256:7"), to_hex(now->values[kAlgSha256][7]));
}

// REQ-7: an extend on PCR 7 that is not in the log → fail naming PCR 7.
TEST(BootIntegrity, TamperedBootFailsNamingPcr7) {
  REQUIRE_SWTPM(tpm);
  const auto b = good_boot();
  BootIntegrityCheck check(config_for(tpm, b.bytes(), "tampered"));
  boot(check.tpm(), b);
  ASSERT_TRUE(check.tpm().extend(7, {{kAlgSha256, Bytes(32, 0xab)}, {kAlgSha1, Bytes(20, 0xab)}}));
  const auto r = check.run();
  EXPECT_EQ(r.state, BootState::fail);
  const std::string all = joined(r);
  EXPECT_NE(all.find("PCR 7 (sha256)"), std::string::npos) << all;
  EXPECT_NE(all.find("PCR 7 (sha1)"), std::string::npos) << all;
  EXPECT_NE(all.find("tampered"), std::string::npos) << all;
  EXPECT_EQ(all.find("PCR 4 "), std::string::npos) << all;
}

// REQ-5: corrupted logs give a failed check with a reason, never a crash.
TEST(BootIntegrity, CorruptedLogFailsWithReason) {
  REQUIRE_SWTPM(tpm);
  const auto b = good_boot();
  std::string truncated = b.bytes().substr(0, b.bytes().size() - 5);
  std::string absurd = b.bytes();
  absurd[b.event_offset(2) + 8] = '\x7f';
  std::string wrong_size = b.bytes();
  wrong_size[b.event_offset(0) + 68 + 2] = '\x10';
  int i = 0;
  for (const auto& bytes : {truncated, absurd, wrong_size}) {
    BootIntegrityCheck check(config_for(tpm, bytes, "corrupt" + std::to_string(i++)));
    const auto r = check.run();
    EXPECT_EQ(r.state, BootState::fail);
    ASSERT_FALSE(r.reasons.empty());
    const std::string all = joined(r);
    EXPECT_NE(all.find("firmware event log corrupted: offset "), std::string::npos) << all;
  }
}

// REQ-7: a PCR that differs from the provisioned reference → fail.
TEST(BootIntegrity, ReferenceMismatchFails) {
  REQUIRE_SWTPM(tpm);
  const auto b = good_boot();
  BootIntegrityConfig cfg = config_for(tpm, b.bytes(), "refmismatch");
  cfg.reference_path =
      testing::write_temp_file("mismatch.ref", "sha256:0=" + std::string(64, '1') + "\n");
  BootIntegrityCheck check(cfg);
  boot(check.tpm(), b);
  const auto r = check.run();
  EXPECT_EQ(r.state, BootState::fail);
  const std::string all = joined(r);
  EXPECT_NE(all.find("PCR 0 (sha256) differs from the provisioned reference"), std::string::npos)
      << all;
}

// REQ-7: no TPM → warn "degraded: no TPM", never ok.
TEST(BootIntegrity, NoTpmIsDegraded) {
  BootIntegrityConfig cfg;
  cfg.tpm.tcti = "swtpm:host=127.0.0.1,port=" + std::to_string(testing::closed_port());
  cfg.tpm.timeout = 5s;
  cfg.event_log_path.clear();
  cfg.ima_log_path.clear();
  BootIntegrityCheck check(cfg);
  const auto r = check.run();
  EXPECT_EQ(r.state, BootState::warn);
  EXPECT_TRUE(r.degraded);
  EXPECT_FALSE(r.tpm_present);
  ASSERT_FALSE(r.reasons.empty());
  EXPECT_EQ(r.reasons[0].rfind("degraded: no TPM", 0), 0u) << r.reasons[0];
}

// REQ-5: a TPM that stops answering → fail within the timeout.
TEST(BootIntegrity, HungTpmFailsWithinTimeout) {
  REQUIRE_SWTPM(tpm);
  BootIntegrityConfig cfg = config_for(tpm, good_boot().bytes(), "hung");
  cfg.tpm.timeout = 500ms;
  BootIntegrityCheck check(cfg);
  tpm.stop_process();
  const auto r = check.run();
  EXPECT_EQ(r.state, BootState::fail);
  EXPECT_LT(r.elapsed, 1500ms);
  EXPECT_NE(joined(r).find("did not answer"), std::string::npos) << joined(r);
}

// REQ-7: IMA log replay against PCR 10: good → ok, extra extend → fail.
TEST(BootIntegrity, ImaLogReplayAgainstPcr10) {
  REQUIRE_SWTPM(tpm);
  const auto b = good_boot();
  BootIntegrityConfig cfg = config_for(tpm, b.bytes(), "ima");
  const auto l1 = testing::ima_ng_line("boot_aggregate", "agg");
  const auto l2 = testing::ima_ng_line("/usr/sbin/portierd", "bin");
  cfg.ima_log_path = testing::write_temp_file("ima.txt", l1.text + "\n" + l2.text + "\n");
  BootIntegrityCheck check(cfg);
  boot(check.tpm(), b);
  ASSERT_TRUE(check.tpm().extend(10, l1.digests));
  ASSERT_TRUE(check.tpm().extend(10, l2.digests));
  auto r = check.run();
  EXPECT_EQ(r.ima_entries, 2u);
  EXPECT_NE(r.state, BootState::fail) << joined(r);  // warn: no reference values
  EXPECT_EQ(joined(r).find("IMA"), std::string::npos) << joined(r);
  ASSERT_TRUE(check.tpm().extend(10, testing::ima_ng_line("/tmp/evil", "x").digests));
  r = check.run();
  EXPECT_EQ(r.state, BootState::fail);
  EXPECT_NE(joined(r).find("PCR 10 (sha256)"), std::string::npos) << joined(r);
  EXPECT_NE(joined(r).find("IMA log"), std::string::npos) << joined(r);
}

}  // namespace
}  // namespace portier::attest
