// Firmware event log parser and replay (pure; no TPM).
#include "agent/attest/tcg_event_log.h"

#include <gtest/gtest.h>

#include "agent/attest/pcr_replay.h"
#include "attest_test_util.h"

namespace portier::attest {
namespace {

using testing::EventLogBuilder;

EventLogBuilder sample_log() {
  EventLogBuilder b;
  b.add(0, kEvSCrtmVersion, "CRTM 1.0");
  b.add(0, kEvPostCode, "POST CODE");
  b.add(7, kEvEfiVariableDriverConfig, "SecureBoot=1");
  for (std::uint32_t p = 0; p < 8; ++p) b.add(p, kEvSeparator, std::string(4, '\0'));
  return b;
}

// REQ-7: the boot measurements are read from the firmware log.
TEST(TcgEventLog, ParsesCryptoAgileLog) {
  const auto b = sample_log();
  const auto r = parse_tcg_event_log(b.bytes());
  ASSERT_TRUE(r.ok) << r.reason;
  EXPECT_TRUE(r.log.crypto_agile);
  ASSERT_EQ(r.log.algorithms.size(), 2u);
  EXPECT_EQ(r.log.algorithms[1].alg_id, kAlgSha256);
  ASSERT_EQ(r.log.events.size(), 11u);
  EXPECT_EQ(r.log.events[2].pcr, 7u);
  EXPECT_EQ(r.log.events[2].data.size(), 12u);
  EXPECT_EQ(r.log.events[2].offset, b.event_offset(2));
}

// REQ-7: replay = H(H(0||d1)||d2)… per bank, EV_NO_ACTION does not extend.
TEST(TcgEventLog, ReplayMatchesManualExtends) {
  auto b = sample_log();
  b.add_no_action("not measured");
  const auto r = parse_tcg_event_log(b.bytes());
  ASSERT_TRUE(r.ok) << r.reason;
  auto rep = replay_tcg_event_log(r.log);
  ASSERT_TRUE(rep) << rep.error().message();
  PcrValues manual;
  for (auto bank : {kAlgSha1, kAlgSha256}) {
    for (std::uint32_t p = 0; p < 24; ++p)
      manual[bank][p] = Bytes(tcg_alg_digest_size(bank), (p >= 17 && p <= 22) ? 0xff : 0);
    for (const auto& ex : b.extends())
      manual[bank][ex.pcr] = pcr_extend(bank, manual[bank][ex.pcr], ex.digests.at(bank));
  }
  EXPECT_EQ(rep->pcrs, manual);
  EXPECT_EQ(rep->events_replayed, 11u);
  EXPECT_TRUE(rep->extended[kAlgSha256].contains(7));
  EXPECT_FALSE(rep->extended[kAlgSha256].contains(8));
}

// REQ-7: PCR 0 starts at 0…03 after a StartupLocality 3 event.
TEST(TcgEventLog, StartupLocalitySetsPcr0StartValue) {
  EventLogBuilder b;
  std::string loc("StartupLocality", 15);
  loc.push_back('\0');
  loc.push_back('\3');
  b.add_no_action(loc);
  b.add(0, kEvPostCode, "x");
  const auto r = parse_tcg_event_log(b.bytes());
  ASSERT_TRUE(r.ok) << r.reason;
  EXPECT_TRUE(r.log.has_startup_locality);
  EXPECT_EQ(r.log.startup_locality, 3);
  auto rep = replay_tcg_event_log(r.log);
  ASSERT_TRUE(rep);
  Bytes start(32, 0);
  start[31] = 3;
  EXPECT_EQ(rep->pcrs[kAlgSha256][0],
            pcr_extend(kAlgSha256, start, b.extends()[0].digests.at(kAlgSha256)));
}

// REQ-5: a truncated log never crashes and always names the offset.
TEST(TcgEventLog, EveryTruncationIsRejectedWithOffset) {
  const std::string full = sample_log().bytes();
  for (std::size_t n = 0; n < full.size(); ++n) {
    const auto r = parse_tcg_event_log(std::string_view(full).substr(0, n));
    // A cut exactly between events is a valid shorter log.
    if (r.ok) continue;
    EXPECT_NE(r.reason.find("offset "), std::string::npos) << r.reason;
    EXPECT_LE(r.error_offset, n);
  }
  EXPECT_FALSE(parse_tcg_event_log(std::string_view(full).substr(0, full.size() - 1)).ok);
}

// REQ-5: absurd digest count → error at the count's offset.
TEST(TcgEventLog, AbsurdDigestCountRejected) {
  auto b = sample_log();
  std::string bytes = b.bytes();
  const std::size_t count_at = b.event_offset(1) + 8;
  bytes[count_at] = '\xff';
  bytes[count_at + 1] = '\xff';
  const auto r = parse_tcg_event_log(bytes);
  ASSERT_FALSE(r.ok);
  EXPECT_EQ(r.error_offset, count_at);
  EXPECT_NE(r.reason.find("digest count"), std::string::npos) << r.reason;
}

// REQ-5: an event size past the end → error, no over-read.
TEST(TcgEventLog, WrongEventSizeRejected) {
  auto b = sample_log();
  std::string bytes = b.bytes();
  const std::size_t size_at = b.event_offset(10) + 12 + 2 + 20 + 2 + 32;
  bytes[size_at + 3] = '\x40';
  const auto r = parse_tcg_event_log(bytes);
  ASSERT_FALSE(r.ok);
  EXPECT_EQ(r.error_offset, size_at);
  EXPECT_NE(r.reason.find("event data size"), std::string::npos) << r.reason;
}

TEST(TcgEventLog, UnknownDigestAlgorithmAndBadPcrRejected) {
  auto b = sample_log();
  std::string bytes = b.bytes();
  bytes[b.event_offset(0) + 12] = '\x99';  // first digest's alg id
  auto r = parse_tcg_event_log(bytes);
  ASSERT_FALSE(r.ok);
  EXPECT_NE(r.reason.find("not declared"), std::string::npos) << r.reason;
  bytes = b.bytes();
  bytes[b.event_offset(0)] = 40;  // PCR 40
  r = parse_tcg_event_log(bytes);
  ASSERT_FALSE(r.ok);
  EXPECT_NE(r.reason.find("PCR index 40"), std::string::npos) << r.reason;
}

TEST(TcgEventLog, SpecIdWithBadAlgorithmCountRejected) {
  std::string bytes = EventLogBuilder().bytes();
  bytes[32 + 24] = '\x7f';  // numberOfAlgorithms
  const auto r = parse_tcg_event_log(bytes);
  ASSERT_FALSE(r.ok);
  EXPECT_NE(r.reason.find("number of algorithms"), std::string::npos) << r.reason;
  EXPECT_FALSE(parse_tcg_event_log("").ok);
}

TEST(TcgEventLog, LegacySha1LogParsedAndReplayed) {
  std::string bytes;
  Bytes pcr(20, 0);
  for (int i = 0; i < 3; ++i) {
    const std::string data = "event" + std::to_string(i);
    const Bytes d =
        hash_bytes(kAlgSha1, {reinterpret_cast<const std::uint8_t*>(data.data()), data.size()});
    testing::put_u32(bytes, 4);
    testing::put_u32(bytes, kEvPostCode);
    bytes += testing::bytes_str(d);
    testing::put_u32(bytes, static_cast<std::uint32_t>(data.size()));
    bytes += data;
    pcr = pcr_extend(kAlgSha1, pcr, d);
  }
  const auto r = parse_tcg_event_log(bytes);
  ASSERT_TRUE(r.ok) << r.reason;
  EXPECT_FALSE(r.log.crypto_agile);
  auto rep = replay_tcg_event_log(r.log);
  ASSERT_TRUE(rep);
  EXPECT_EQ(rep->pcrs[kAlgSha1][4], pcr);
  EXPECT_FALSE(rep->pcrs.contains(kAlgSha256));
}

// REQ-5: random corruption never crashes (a cheap in-test fuzz).
TEST(TcgEventLog, RandomByteFlipsDoNotCrash) {
  const std::string full = sample_log().bytes();
  std::uint32_t seed = 12345;
  for (int i = 0; i < 3000; ++i) {
    std::string b = full;
    for (int k = 0; k < 3; ++k) {
      seed = seed * 1103515245u + 12345u;
      b[(seed >> 8) % b.size()] = static_cast<char>(seed >> 24);
    }
    const auto r = parse_tcg_event_log(b);
    if (!r.ok)
      EXPECT_FALSE(r.reason.empty());
    else
      (void)replay_tcg_event_log(r.log);
  }
}

}  // namespace
}  // namespace portier::attest
