// IMA ASCII log parser and PCR 10 replay (pure).
#include "agent/attest/ima_log.h"

#include <gtest/gtest.h>

#include "agent/attest/pcr_replay.h"
#include "attest_test_util.h"

namespace portier::attest {
namespace {

using testing::ima_ng_line;

// REQ-7: runtime measurements are parsed per template.
TEST(ImaLog, ParsesImaNgAndImaTemplates) {
  const std::string sha1 = std::string(40, 'a');
  const std::string text = ima_ng_line("boot_aggregate", "agg").text + "\n" +
                           ima_ng_line("/usr/bin/my tool", "bin").text + "\n" + "10 " +
                           std::string(40, '1') + " ima " + sha1 + " /etc/passwd\n";
  const auto r = parse_ima_log(text);
  ASSERT_TRUE(r.ok) << r.reason;
  ASSERT_EQ(r.entries.size(), 3u);
  EXPECT_EQ(r.entries[0].filename, "boot_aggregate");
  EXPECT_EQ(r.entries[1].filename, "/usr/bin/my tool");
  EXPECT_EQ(r.entries[1].filedata_alg, "sha256");
  EXPECT_EQ(r.entries[1].filedata_hash.size(), 32u);
  EXPECT_EQ(r.entries[2].template_name, "ima");
  EXPECT_EQ(r.entries[2].filedata_alg, "sha1");
  EXPECT_EQ(r.entries[2].line, 3u);
}

// REQ-5: errors name the line.
TEST(ImaLog, ErrorsCarryLineNumbers) {
  const std::string good = ima_ng_line("/a", "a").text + "\n";
  struct Case {
    std::string line;
    const char* want;
  } cases[] = {
      {"10 abc ima-ng sha256:00 /x", "template hash"},
      {"x1 " + std::string(40, '0') + " ima-ng sha256:00 /x", "not a number"},
      {"99 " + std::string(40, '0') + " ima-ng sha256:00 /x", "out of range"},
      {"10 " + std::string(40, '0') + " ima-ng sha256:0011 /x", "expected 32"},
      {"10 " + std::string(40, '0') + " ima-ng sha256" + std::string(64, '0') + " /x",
       "<alg>:<hex>"},
      {"10 " + std::string(40, '0') + " ima-ng sha256:" + std::string(64, '0'), "missing filename"},
      {"10 " + std::string(40, '0') + " ima zz /x", "40 hex"},
  };
  for (const auto& c : cases) {
    const auto r = parse_ima_log(good + good + c.line + "\n");
    ASSERT_FALSE(r.ok) << c.line;
    EXPECT_EQ(r.error_line, 3u);
    EXPECT_EQ(r.reason.rfind("line 3: ", 0), 0u) << r.reason;
    EXPECT_NE(r.reason.find(c.want), std::string::npos) << r.reason;
  }
}

// REQ-7: sha1 bank with template hashes, sha256 bank with the rebuilt
// template data, violations extend ff…, edited lines are caught.
TEST(ImaLog, ReplayBanksAndViolation) {
  const auto a = ima_ng_line("boot_aggregate", "agg");
  const auto b = ima_ng_line("/usr/sbin/portierd", "daemon");
  const std::string violation =
      "10 " + std::string(40, '0') + " ima-ng sha256:" + std::string(64, '0') + " /tmp/x";
  const auto r = parse_ima_log(a.text + "\n" + violation + "\n" + b.text + "\n");
  ASSERT_TRUE(r.ok) << r.reason;
  EXPECT_TRUE(r.entries[1].violation);
  auto rep = replay_ima_log(r.entries);
  ASSERT_TRUE(rep) << rep.error().message();
  Bytes s1(20, 0), s256(32, 0);
  s1 = pcr_extend(kAlgSha1, s1, a.digests.at(kAlgSha1));
  s1 = pcr_extend(kAlgSha1, s1, Bytes(20, 0xff));
  s1 = pcr_extend(kAlgSha1, s1, b.digests.at(kAlgSha1));
  s256 = pcr_extend(kAlgSha256, s256, a.digests.at(kAlgSha256));
  s256 = pcr_extend(kAlgSha256, s256, Bytes(32, 0xff));
  s256 = pcr_extend(kAlgSha256, s256, b.digests.at(kAlgSha256));
  EXPECT_EQ(rep->pcrs[kAlgSha1][10], s1);
  EXPECT_EQ(rep->pcrs[kAlgSha256][10], s256);

  // Edited filename: the template hash no longer matches.
  std::string edited = b.text;
  edited.back() = 'X';
  const auto r2 = parse_ima_log(a.text + "\n" + edited + "\n");
  ASSERT_TRUE(r2.ok);
  auto rep2 = replay_ima_log(r2.entries);
  ASSERT_FALSE(rep2);
  EXPECT_NE(rep2.error().message().find("line 2"), std::string::npos) << rep2.error().message();
}

TEST(ImaLog, PrefixMatchWhenLogGrewAfterPcrRead) {
  const auto a = ima_ng_line("boot_aggregate", "agg");
  const auto b = ima_ng_line("/bin/late", "late");
  PcrValues target;
  target[kAlgSha1][10] = pcr_extend(kAlgSha1, Bytes(20, 0), a.digests.at(kAlgSha1));
  const auto r = parse_ima_log(a.text + "\n" + b.text + "\n");
  ASSERT_TRUE(r.ok);
  auto rep = replay_ima_log(r.entries, ImaSha256Mode::template_data, &target);
  ASSERT_TRUE(rep);
  EXPECT_EQ(rep->matched_prefix[kAlgSha1][10], 1u);
  EXPECT_FALSE(rep->matched_prefix[kAlgSha256].contains(10));
}

TEST(ImaLog, RandomGarbageDoesNotCrash) {
  const std::string base =
      ima_ng_line("/a b", "x").text + "\n" + ima_ng_line("/c", "y").text + "\n";
  std::uint32_t seed = 7;
  for (int i = 0; i < 3000; ++i) {
    std::string t = base;
    for (int k = 0; k < 2; ++k) {
      seed = seed * 1103515245u + 12345u;
      t[(seed >> 8) % t.size()] = static_cast<char>(seed >> 24);
    }
    const auto r = parse_ima_log(t);
    if (!r.ok)
      EXPECT_FALSE(r.reason.empty());
    else
      (void)replay_ima_log(r.entries);
  }
}

}  // namespace
}  // namespace portier::attest
