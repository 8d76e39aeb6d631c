// TPM client against a real swtpm per test.
#include "agent/attest/tpm_client.h"

#include <gtest/gtest.h>

#include <chrono>

#include "agent/attest/pcr_replay.h"
#include "attest_test_util.h"

namespace portier::attest {
namespace {

using namespace std::chrono_literals;
using testing::Swtpm;

#define REQUIRE_SWTPM(t)                                          \
  if (!Swtpm::installed()) GTEST_SKIP() << "swtpm not installed"; \
  Swtpm t;                                                        \
  ASSERT_TRUE(t.running()) << t.error()

const std::uint16_t kBanks[] = {kAlgSha1, kAlgSha256};

// REQ-5: the TPM answers and its PCRs can be read.
TEST(TpmClient, ProbeAndReadPcrs) {
  REQUIRE_SWTPM(tpm);
  TpmClient c(tpm.config());
  auto m = c.probe();
  ASSERT_TRUE(m) << m.error().message();
  EXPECT_FALSE(m->empty());
  const std::uint32_t pcrs[] = {0, 7, 10, 16, 23};
  auto r = c.read_pcrs(kBanks, pcrs);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_TRUE(r->absent_banks.empty());
  EXPECT_EQ(r->values[kAlgSha256][7], Bytes(32, 0));
  EXPECT_EQ(r->values[kAlgSha1][23], Bytes(20, 0));
  EXPECT_EQ(r->values[kAlgSha256].size(), 5u);
}

// REQ-7: an extend is visible and equals H(old || digest).
TEST(TpmClient, ExtendThenReadAllPcrs) {
  REQUIRE_SWTPM(tpm);
  TpmClient c(tpm.config());
  const Bytes d1 = hash_bytes(kAlgSha1, Bytes{1, 2, 3});
  const Bytes d256 = hash_bytes(kAlgSha256, Bytes{1, 2, 3});
  ASSERT_TRUE(c.extend(7, {{kAlgSha1, d1}, {kAlgSha256, d256}}));
  std::vector<std::uint32_t> all;
  for (std::uint32_t i = 0; i < 24; ++i) all.push_back(i);
  auto r = c.read_pcrs(kBanks, all);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->values[kAlgSha256].size(), 24u);
  EXPECT_EQ(r->values[kAlgSha256][7], pcr_extend(kAlgSha256, Bytes(32, 0), d256));
  EXPECT_EQ(r->values[kAlgSha1][7], pcr_extend(kAlgSha1, Bytes(20, 0), d1));
  EXPECT_FALSE(c.extend(24, {{kAlgSha1, d1}}));
  EXPECT_FALSE(c.extend(7, {{kAlgSha1, d256}}));
}

// REQ-7: a quote verifies with the right nonce and expected PCRs, and fails
// with a wrong nonce, wrong PCR values, a foreign key or a flipped bit.
TEST(TpmClient, QuoteVerifiesOnlyWithRightNonceAndPcrs) {
  REQUIRE_SWTPM(tpm);
  TpmClient c(tpm.config());
  const Bytes d = hash_bytes(kAlgSha256, Bytes{9});
  ASSERT_TRUE(c.extend(7, {{kAlgSha256, d}, {kAlgSha1, hash_bytes(kAlgSha1, Bytes{9})}}));
  const std::uint32_t pcrs[] = {0, 7};
  const Bytes nonce = hash_bytes(kAlgSha256, Bytes{'n', 'o', 'n', 'c', 'e'});
  auto q = c.quote(nonce, kAlgSha256, pcrs);
  ASSERT_TRUE(q) << q.error().message();
  EXPECT_EQ(q->ak_point.size(), 65u);
  auto read = c.read_pcrs(kBanks, pcrs);
  ASSERT_TRUE(read);
  auto ok = verify_quote(*q, q->ak_point, nonce, read->values);
  EXPECT_TRUE(ok) << ok.error().message();

  Bytes wrong_nonce = nonce;
  wrong_nonce[0] ^= 1;
  auto bad = verify_quote(*q, q->ak_point, wrong_nonce, read->values);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message().find("nonce"), std::string::npos);

  PcrValues expected = read->values;
  expected[kAlgSha256][7] = Bytes(32, 0);  // the untampered value
  bad = verify_quote(*q, q->ak_point, nonce, expected);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message().find("PCR digest"), std::string::npos);

  Quote forged = *q;
  forged.attest.back() ^= 1;
  EXPECT_FALSE(verify_quote(forged, q->ak_point, nonce, read->values));

  // Same AK template on the same TPM → same key; a second quote verifies too.
  auto q2 = c.quote(nonce, kAlgSha256, pcrs);
  ASSERT_TRUE(q2);
  EXPECT_EQ(q2->ak_point, q->ak_point);
  Bytes other_key = q->ak_point;
  auto q3 = verify_quote(*q2, other_key, nonce, read->values);
  EXPECT_TRUE(q3);
  EXPECT_FALSE(c.quote(Bytes(65, 1), kAlgSha256, pcrs));
}

// REQ-5: no TPM behind the TCTI → not_found quickly, no hang.
TEST(TpmClient, NoTpmIsNotFound) {
  TpmConfig cfg;
  cfg.tcti = "swtpm:host=127.0.0.1,port=" + std::to_string(testing::closed_port());
  cfg.timeout = 5s;
  TpmClient c(cfg);
  const std::uint32_t pcrs[] = {0};
  auto r = c.read_pcrs(kBanks, pcrs);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::not_found);
  EXPECT_NE(r.error().message().find("no TPM"), std::string::npos) << r.error().message();
}

// REQ-5: a TPM that stops answering mid-session gives an error within the
// timeout; further calls do not pile up threads.
TEST(TpmClient, StoppedTpmTimesOut) {
  REQUIRE_SWTPM(tpm);
  TpmClient c(tpm.config(700ms));
  ASSERT_TRUE(c.probe());
  tpm.stop_process();
  const std::uint32_t pcrs[] = {0, 7};
  const auto t0 = std::chrono::steady_clock::now();
  auto q = c.quote(Bytes(32, 7), kAlgSha256, pcrs);
  const auto took = std::chrono::steady_clock::now() - t0;
  ASSERT_FALSE(q);
  EXPECT_EQ(q.error().code, Errc::unavailable);
  EXPECT_NE(q.error().message().find("did not answer within 700 ms"), std::string::npos)
      << q.error().message();
  EXPECT_LT(took, 2s);
  EXPECT_EQ(c.abandoned_calls(), 1);
  ASSERT_FALSE(c.read_pcrs(kBanks, pcrs));
  EXPECT_EQ(c.abandoned_calls(), 2);
  // Beyond the cap: refused at once.
  const auto t1 = std::chrono::steady_clock::now();
  auto r = c.read_pcrs(kBanks, pcrs);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("still busy"), std::string::npos);
  EXPECT_LT(std::chrono::steady_clock::now() - t1, 100ms);
}

}  // namespace
}  // namespace portier::attest
