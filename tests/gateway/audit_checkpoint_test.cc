// REQ-29 (integrity evidence), issue 10 item 7: signed checkpoints catch
// what the hash chain alone cannot: a trail rewritten from some record on
// with its chain recomputed, and a trail truncated or deleted. The trail is
// written by the real AuditLog; the checkpoints are signed as the
// management feature signs them.
#include "agent/audit_checkpoint.h"

#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <map>

#include "agent/audit_log.h"
#include "audit_test_util.h"

namespace portier::agent {
namespace {

using test::Dir;
using test::file_lines;
using test::write_lines;

class AuditCheckpointTest : public ::testing::TestWithParam<crypto::KeyType> {
 protected:
  void SetUp() override {
    path_ = dir_.path + "/audit.jsonl";
    cp_path_ = dir_.path + "/checkpoints.jsonl";
    auto log = AuditLog::open(path_);
    ASSERT_TRUE(log);
    for (int i = 0; i < 30; ++i) {
      (*log)->record(test::event(AuditEvent::policy_loaded, "record " + std::to_string(i)));
    }
    ASSERT_TRUE((*log)->flush());
    auto key = crypto::PrivateKey::generate(GetParam());
    ASSERT_TRUE(key);
    auto s = crypto::KeySigner::from(*key);
    ASSERT_TRUE(s);
    signer_ = std::make_unique<crypto::KeySigner>(std::move(*s));
    // Checkpoints at records 10 and 20, as the terminal signed them.
    std::map<std::uint64_t, std::string> digests;
    auto r = verify_audit_files({path_}, [&](std::uint64_t seq, const std::string& d,
                                             const std::string&) { digests[seq] = d; });
    ASSERT_TRUE(r.ok) << r.problem;
    for (std::uint64_t seq : {10, 20}) {
      AuditCheckpoint c{"T-1", seq, digests[seq], 1765000000000 + static_cast<std::int64_t>(seq),
                        1};
      ASSERT_TRUE(sign_checkpoint(c, *signer_, "kid"));
      ASSERT_TRUE(append_checkpoint(cp_path_, c));
    }
  }
  CheckpointVerifyResult verify() {
    auto cps = read_checkpoints(cp_path_);
    EXPECT_TRUE(cps) << cps.error().message();
    return verify_with_checkpoints({path_}, *cps, signer_->public_key());
  }
  // Rewrites records from seq `from` on (a changed reason) and recomputes
  // the chain, as someone with write access to the file would.
  void rewrite_from(std::uint64_t from) {
    auto lines = file_lines(path_);
    std::string prev;
    for (auto& l : lines) {
      auto c = parse_chained_line(l);
      ASSERT_TRUE(c);
      if (c->seq >= from) {
        std::string body(c->body);
        auto at = body.find("record ");
        if (at != std::string::npos) body.replace(at, 7, "RECORD ");
        l = "{\"seq\":" + std::to_string(c->seq) + ",\"prev\":\"" + prev + "\"," + body;
      }
      prev = sha256_hex(l);
    }
    write_lines(path_, lines);
  }

  Dir dir_;
  std::string path_, cp_path_;
  std::unique_ptr<crypto::KeySigner> signer_;
};

TEST_P(AuditCheckpointTest, AnUntouchedTrailMatchesEveryCheckpoint_REQ29) {
  auto r = verify();
  ASSERT_TRUE(r.ok) << r.problem;
  EXPECT_EQ(r.matched, 2u);
  EXPECT_NE(r.summary().find("2 of 2 signed checkpoints match"), std::string::npos);
}

TEST_P(AuditCheckpointTest, ATrailRewrittenWithItsChainIsCaughtAndTheRecordNamed_REQ29) {
  rewrite_from(15);
  ASSERT_TRUE(verify_audit_files({path_}).ok) << "the chain alone cannot see a rewrite";
  auto r = verify();
  ASSERT_FALSE(r.ok);
  EXPECT_NE(r.problem.find("record seq 20 at " + path_ + ":"), std::string::npos) << r.problem;
  EXPECT_NE(r.problem.find("last matching checkpoint: seq 10"), std::string::npos) << r.problem;
}

TEST_P(AuditCheckpointTest, ATruncatedTrailIsCaught_REQ29) {
  auto lines = file_lines(path_);
  lines.resize(12);
  write_lines(path_, lines);
  auto r = verify();
  ASSERT_FALSE(r.ok);
  EXPECT_NE(r.problem.find("records seq 13..20 were truncated or deleted"), std::string::npos)
      << r.problem;
}

TEST_P(AuditCheckpointTest, ACheckpointSignedByAnotherKeyIsRefused_REQ29) {
  auto other = crypto::PrivateKey::generate(GetParam());
  auto s = crypto::KeySigner::from(*other);
  auto cps = read_checkpoints(cp_path_);
  ASSERT_TRUE(cps);
  (*cps)[1].time_ms += 1;  // a forger moves it and re-signs with its own key
  ASSERT_TRUE(sign_checkpoint((*cps)[1], *s, "kid"));
  auto r = verify_with_checkpoints({path_}, *cps, signer_->public_key());
  ASSERT_FALSE(r.ok);
  EXPECT_NE(r.problem.find("does not verify with the terminal's key"), std::string::npos)
      << r.problem;
}

// After a rotation the trail's early checkpoints are the old key's and the
// later ones the new key's: with both keys the trail verifies; with the new
// one alone the old key's checkpoint is named.
TEST_P(AuditCheckpointTest, ACheckpointTrailAcrossAKeyRotationVerifiesWithBothKeys_REQ29) {
  auto next = crypto::PrivateKey::generate(GetParam());
  ASSERT_TRUE(next);
  auto s = crypto::KeySigner::from(*next);
  ASSERT_TRUE(s);
  auto cps = read_checkpoints(cp_path_);
  ASSERT_TRUE(cps);
  // The new key signs the head of seq 20 again (the handover), as the
  // management feature does after a rotation.
  AuditCheckpoint handover = (*cps)[1];
  handover.time_ms += 1000;
  ASSERT_TRUE(sign_checkpoint(handover, *s, "kid2"));
  cps->push_back(handover);
  auto r = verify_with_checkpoints({path_}, *cps, {signer_->public_key(), s->public_key()});
  EXPECT_TRUE(r.ok) << r.problem;
  auto alone = verify_with_checkpoints({path_}, *cps, s->public_key());
  ASSERT_FALSE(alone.ok);
  EXPECT_NE(alone.problem.find("the checkpoint of seq 10"), std::string::npos) << alone.problem;
}

TEST_P(AuditCheckpointTest, AMalformedCheckpointLineIsNamedAndATornLastLineIgnored) {
  {
    std::ofstream f(cp_path_, std::ios::app);
    f << "{\"terminal\":\"T-1\",\"seq\":";  // torn: no newline
  }
  auto cps = read_checkpoints(cp_path_);
  ASSERT_TRUE(cps) << cps.error().message();
  EXPECT_EQ(cps->size(), 2u);
  {
    std::ofstream f(cp_path_, std::ios::app);
    f << "\nnot a checkpoint\n";
  }
  cps = read_checkpoints(cp_path_);
  ASSERT_FALSE(cps);
  EXPECT_NE(cps.error().message().find(cp_path_ + ":3"), std::string::npos)
      << cps.error().message();
}

INSTANTIATE_TEST_SUITE_P(Keys, AuditCheckpointTest,
                         ::testing::Values(crypto::KeyType::ecdsa_p256, crypto::KeyType::ed25519,
                                           crypto::KeyType::sm2),
                         [](const auto& info) {
                           std::string n(crypto::name(info.param));
                           std::erase(n, '-');
                           return n;
                         });

}  // namespace
}  // namespace portier::agent
