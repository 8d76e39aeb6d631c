// The terminal's check of the fleet's acknowledgements: only one signed by a
// fleet key that chains to the trust anchors, for this terminal, names
// anything; every forgery a broker (or anyone publishing on down/ack) can
// make is refused with its kind, and a validated chain is checked once.
// The newest verified time outlives a restart (newest_file), and a flood of
// one forgery costs one signature check.
#include "agent/link/ack_verifier.h"

#include <gtest/gtest.h>

#include "agent/commands/command_signing.h"
#include "agent/link/sequence_set.h"
#include "common/file_read.h"
#include "common/file_write.h"
#include "policy/temp_dir.h"
#include "portier/v1/fleet.pb.h"
#include "support/test_pki.h"

namespace portier::link {
namespace {

using namespace std::chrono_literals;
using portier::policy::testing::TempDir;
using portier::test::Flaw;
using portier::test::IssuedLeaf;
using portier::test::TestPki;

constexpr const char* kTerminal = "T-0001";

struct Key {
  std::shared_ptr<crypto::KeySigner> signer;
  std::vector<crypto::Certificate> chain;
  AckSigner acks;
};

Key fleet_key(const TestPki& pki, const std::string& name,
              crypto::CertUsage usage = crypto::CertUsage::command_signing,
              Flaw flaw = Flaw::none) {
  auto leaf = pki.issue({.name = name, .usage = usage, .flaw = flaw});
  EXPECT_TRUE(leaf) << leaf.error().message();
  auto s = crypto::KeySigner::from(leaf->key);
  auto signer = std::make_shared<crypto::KeySigner>(std::move(*s));
  std::vector<crypto::Certificate> chain{leaf->cert};
  chain.insert(chain.end(), leaf->chain.begin(), leaf->chain.end());
  auto a = AckSigner::create(signer, chain);
  EXPECT_TRUE(a) << a.error().message();
  return Key{signer, chain, std::move(*a)};
}

class AckVerifierTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto pki = TestPki::create(dir_.path());
    ASSERT_TRUE(pki) << pki.error().message();
    pki_ = std::make_unique<TestPki>(std::move(*pki));
    now_ = pki_->made_at();
  }
  AckVerifierOptions options() {
    return {.terminal_id = kTerminal, .trust_anchors = {pki_->root()}, .clock = [this] {
              return now_;
            }};
  }
  AckVerifier verifier() { return AckVerifier(options()); }
  std::unique_ptr<AckVerifier> verifier(AckVerifierOptions o) {
    return std::make_unique<AckVerifier>(std::move(o));
  }
  // A stand-in for the chain digest of envelope `last` (the verifier only
  // carries it; OutboxSender matches it against the outbox).
  static std::string digest_of(std::uint64_t last) {
    std::string d(kAckDigestBytes, 'd');
    for (std::size_t i = 0; i < 8; ++i) d[i] = static_cast<char>(last >> (8 * i));
    return d;
  }
  static std::vector<AckedRange> named(const std::vector<SequenceRange>& ranges) {
    return with_digests(ranges, [](std::uint64_t last) { return digest_of(last); });
  }
  std::string sign(const Key& k, const std::vector<SequenceRange>& ranges,
                   const std::string& terminal = kTerminal) {
    auto s = k.acks.sign(terminal, named(ranges), now_);
    EXPECT_TRUE(s) << s.error().message();
    return *s;
  }
  // The refusal's kind, or "accepted".
  static std::string kind(const Result<std::vector<AckedRange>>& r) {
    return r ? "accepted" : r.error().what;
  }
  // The time a newest_file holds.
  static std::optional<std::chrono::system_clock::time_point> stored_time(const std::string& path) {
    auto text = read_small_file(path);
    if (!text) return std::nullopt;
    const auto dot = text->find('.');
    if (dot == std::string::npos) return std::nullopt;
    return std::chrono::system_clock::time_point(
        std::chrono::duration_cast<std::chrono::system_clock::duration>(
            std::chrono::seconds(std::stoll(text->substr(0, dot))) +
            std::chrono::nanoseconds(std::stoll(text->substr(dot + 1)))));
  }

  TempDir dir_;
  std::unique_ptr<TestPki> pki_;
  std::chrono::system_clock::time_point now_;
};

TEST(AckRanges, SequencesBecomeAscendingMergedRanges) {
  EXPECT_EQ(to_ranges({5, 3, 4, 9, 1, 4, 0, 10}),
            (std::vector<SequenceRange>{{1, 1}, {3, 5}, {9, 10}}));
  EXPECT_TRUE(to_ranges({}).empty());
}

TEST_F(AckVerifierTest, AGenuineAcknowledgementNamesItsRangesAndTheChainIsCheckedOnce) {
  auto fleet = fleet_key(*pki_, "fleet-commands");
  auto v = verifier();
  for (std::uint64_t i = 0; i < 50; ++i) {
    auto r = v.verify(sign(fleet, {{10 * i + 1, 10 * i + 5}, {10 * i + 7, 10 * i + 7}}));
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_EQ(*r, named({{10 * i + 1, 10 * i + 5}, {10 * i + 7, 10 * i + 7}}));
  }
  EXPECT_EQ(v.chain_checks(), 1u) << "a validated chain is remembered";
  // A replay of an old genuine one verifies again: harmless, since the
  // sequences it names were stored and are never reused.
  const auto old = sign(fleet, {{1, 2}});
  EXPECT_TRUE(v.verify(old));
  EXPECT_TRUE(v.verify(old));
}

TEST_F(AckVerifierTest, ForgedUnsignedWronglySignedAndAlteredAcknowledgementsAreRefused) {
  auto fleet = fleet_key(*pki_, "fleet-commands");
  auto v = verifier();
  const auto genuine = sign(fleet, {{1, 100}});
  ASSERT_TRUE(v.verify(genuine));

  EXPECT_EQ(kind(v.verify("1,2,3")), "malformed");  // the old unsigned text format
  EXPECT_EQ(kind(v.verify(std::string(70 * 1024, 'x'))), "malformed");
  v1::SignedAcknowledgement s;
  ASSERT_TRUE(s.ParseFromString(genuine));

  auto unsigned_ack = s;
  unsigned_ack.clear_signature();
  EXPECT_EQ(kind(v.verify(unsigned_ack.SerializeAsString())), "unsigned");

  auto no_certs = s;
  no_certs.clear_certificates();
  EXPECT_EQ(kind(v.verify(no_certs.SerializeAsString())), "malformed");

  // More sequences, the genuine signature and certificates.
  auto widened = s;
  v1::Acknowledgement a;
  ASSERT_TRUE(a.ParseFromString(s.acknowledgement()));
  a.mutable_stored(0)->set_last(1000000);
  widened.set_acknowledgement(a.SerializeAsString());
  EXPECT_EQ(kind(v.verify(widened.SerializeAsString())), "bad signature");

  // Signed by another key of the same PKI, carrying the fleet's certificates.
  auto other = fleet_key(*pki_, "someone-else");
  auto by_other = s;
  auto sig = other.signer->sign(ack_signing_input(s.acknowledgement()));
  ASSERT_TRUE(sig);
  by_other.set_signature(std::string(sig->begin(), sig->end()));
  EXPECT_EQ(kind(v.verify(by_other.SerializeAsString())), "bad signature");

  // The fleet's key, but a command's signature over the same bytes: the
  // labels keep the two apart.
  auto as_command = s;
  auto csig = fleet.signer->sign(commands::command_signing_input(s.acknowledgement()));
  ASSERT_TRUE(csig);
  as_command.set_signature(std::string(csig->begin(), csig->end()));
  EXPECT_EQ(kind(v.verify(as_command.SerializeAsString())), "bad signature");

  // Overlapping or empty ranges, genuinely signed: refused before anything.
  EXPECT_EQ(kind(v.verify(sign(fleet, {{5, 9}, {7, 12}}))), "malformed");
  EXPECT_EQ(kind(v.verify(sign(fleet, {{0, 3}}))), "malformed");
  EXPECT_EQ(kind(v.verify(sign(fleet, {{9, 5}}))), "malformed");
}

// Each range must carry its last envelope's digest (32 bytes): one without
// it, genuinely signed (a fleet from before digests, or a bug), names no
// envelope and is refused before its signature is checked.
TEST_F(AckVerifierTest, ARangeWithoutItsDigestIsMalformed_REQ29) {
  auto fleet = fleet_key(*pki_, "fleet-commands");
  auto v = verifier();
  for (const auto& digest :
       {std::string(), std::string(31, 'x'), std::string(33, 'x'), std::string(64, 'x')}) {
    const std::vector<AckedRange> ranges{{1, 5, digest_of(5)}, {7, 9, digest}};
    auto bytes = fleet.acks.sign(kTerminal, ranges, now_);
    ASSERT_TRUE(bytes);
    auto r = v.verify(*bytes);
    ASSERT_FALSE(r) << digest.size() << " bytes";
    EXPECT_EQ(r.error().what, "malformed");
    EXPECT_NE(r.error().message().find("7..9"), std::string::npos) << r.error().message();
    EXPECT_EQ(v.inspect(*bytes).error().what, "malformed");
  }
  EXPECT_EQ(v.signature_checks(), 0u);
}

TEST_F(AckVerifierTest, AnotherTerminalsGenuineAcknowledgementIsRefused) {
  auto fleet = fleet_key(*pki_, "fleet-commands");
  auto v = verifier();
  auto r = v.verify(sign(fleet, {{1, 5}}, "T-0002"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().what, "other terminal");
  EXPECT_NE(r.error().message().find("T-0002"), std::string::npos) << r.error().message();
}

TEST_F(AckVerifierTest, KeysThatDoNotChainToTheAnchorsAsCommandSignersAreRefused) {
  auto v = verifier();
  // Another PKI altogether, with the same names.
  TempDir other_dir;
  auto other = TestPki::create(other_dir.path());
  ASSERT_TRUE(other);
  EXPECT_EQ(kind(v.verify(sign(fleet_key(*other, "fleet-commands"), {{1, 1}}))), "untrusted chain");
  // This PKI, but flawed: not for command signing, expired, self-signed,
  // an issuer that is not a CA, another root of the same name.
  EXPECT_EQ(kind(v.verify(sign(fleet_key(*pki_, "tls", crypto::CertUsage::tls_client), {{1, 1}}))),
            "untrusted chain");
  for (auto flaw : {Flaw::expired, Flaw::not_yet_valid, Flaw::self_signed, Flaw::issuer_not_ca,
                    Flaw::untrusted_issuer}) {
    auto k = fleet_key(*pki_, "flawed-" + std::to_string(static_cast<int>(flaw)),
                       crypto::CertUsage::command_signing, flaw);
    EXPECT_EQ(kind(v.verify(sign(k, {{1, 1}}))), "untrusted chain")
        << "flaw " << static_cast<int>(flaw);
  }
}

TEST_F(AckVerifierTest, ARememberedChainIsCheckedAgainOnceItsCertificateHasExpired) {
  auto fleet = fleet_key(*pki_, "fleet-commands");
  auto v = verifier();
  ASSERT_TRUE(v.verify(sign(fleet, {{1, 1}})));
  ASSERT_EQ(v.chain_checks(), 1u);
  now_ += 11min;  // past the 10 minutes a chain is remembered
  ASSERT_TRUE(v.verify(sign(fleet, {{2, 2}})));
  EXPECT_EQ(v.chain_checks(), 2u);
  now_ = fleet.chain[0].not_after() + 1s;
  auto r = v.verify(sign(fleet, {{3, 3}}));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().what, "untrusted chain") << r.error().message();
}

// A hostile broker withholds the fleet's acknowledgement of 1..5 and
// delivers it after a newer one: it is refused as old without its
// signature checked, and so is every replay of it. One signed a little
// before the newest (several fleet workers) is still taken.
TEST_F(AckVerifierTest, AnOlderGenuineAcknowledgementAfterANewerOneIsRefusedUnverified_REQ29) {
  auto fleet = fleet_key(*pki_, "fleet-commands");
  auto v = verifier();
  const auto withheld = sign(fleet, {{1, 5}});
  now_ += 1min;
  ASSERT_TRUE(v.verify(sign(fleet, {{6, 10}})));
  const auto checks = v.signature_checks();
  EXPECT_EQ(checks, 1u);
  for (int i = 0; i < 100; ++i) {
    auto r = v.verify(withheld);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().what, "old") << r.error().message();
  }
  auto claim = v.inspect(withheld);
  ASSERT_FALSE(claim);
  EXPECT_EQ(claim.error().what, "old");
  EXPECT_EQ(v.signature_checks(), checks) << "an old one cost a signature check";
  // Signed 3 s before the newest: within the 5 s a fleet's workers may be
  // out of step.
  now_ -= 3s;
  EXPECT_TRUE(v.verify(sign(fleet, {{11, 12}})));
}

// inspect() reads what an acknowledgement claims and trusts none of it: a
// forgery passes it (only verify() refuses it), and nothing is checked or
// remembered.
TEST_F(AckVerifierTest, InspectReadsTheClaimWithoutCheckingTheSignature) {
  auto fleet = fleet_key(*pki_, "fleet-commands");
  auto v = verifier();
  v1::SignedAcknowledgement s;
  ASSERT_TRUE(s.ParseFromString(sign(fleet, {{3, 7}, {9, 9}})));
  s.mutable_signature()->back() ^= 0x01;
  const auto forged = s.SerializeAsString();
  auto claim = v.inspect(forged);
  ASSERT_TRUE(claim) << claim.error().message();
  EXPECT_EQ(claim->ranges, named({{3, 7}, {9, 9}}));
  EXPECT_EQ(claim->time, now_);
  EXPECT_EQ(v.signature_checks(), 0u);
  EXPECT_EQ(v.chain_checks(), 0u);
  EXPECT_EQ(kind(v.verify(forged)), "bad signature");
  EXPECT_EQ(v.signature_checks(), 1u);
  // A forgery never moves the newest time: a genuine one signed before the
  // forged time is still taken.
  v1::Acknowledgement a;
  ASSERT_TRUE(a.ParseFromString(s.acknowledgement()));
  a.mutable_time()->set_seconds(a.time().seconds() + 3600);
  s.set_acknowledgement(a.SerializeAsString());
  EXPECT_EQ(kind(v.verify(s.SerializeAsString())), "bad signature");
  EXPECT_TRUE(v.verify(sign(fleet, {{1, 1}})));
  // Refused unverified: another terminal's, no time.
  EXPECT_EQ(v.inspect(sign(fleet, {{1, 1}}, "T-0002")).error().what, "other terminal");
  a.clear_time();
  s.set_acknowledgement(a.SerializeAsString());
  EXPECT_EQ(v.inspect(s.SerializeAsString()).error().what, "malformed");
}

// The fleet's clock runs a year ahead, then is corrected: its
// acknowledgements are "old" for at most max_ahead (5 minutes) of this
// terminal's clock, never for the year.
TEST_F(AckVerifierTest, AFleetClockFarAheadThenCorrectedLocksOutItsAcknowledgementsBriefly) {
  auto fleet = fleet_key(*pki_, "fleet-commands");
  auto v = verifier();
  const auto real = now_;
  now_ += std::chrono::hours(24 * 365);
  const auto ahead = sign(fleet, {{1, 1}});
  now_ = real;
  ASSERT_TRUE(v.verify(ahead));
  EXPECT_EQ(kind(v.verify(sign(fleet, {{2, 2}}))), "old");
  now_ = real + 5min;
  EXPECT_EQ(kind(v.verify(sign(fleet, {{3, 3}}))), "accepted");
}

// The newest verified time is kept in newest_file: after a restart (a new
// verifier on the same file) a genuine acknowledgement signed well before
// it, which a broker kept, is refused as old, unverified. Written at once
// on the first, then at most every persist_every unless it jumps more than
// persist_at_once, and when the verifier goes.
TEST_F(AckVerifierTest, AnOldGenuineAcknowledgementReplayedAfterARestartIsRefusedAsOld_REQ29) {
  auto fleet = fleet_key(*pki_, "fleet-commands");
  auto o = options();
  o.newest_file = dir_.path() + "/ack-newest";
  o.persist_every = std::chrono::hours(1);
  const auto start = now_;
  const auto kept = sign(fleet, {{1, 5}});  // the broker keeps it
  {
    auto v = verifier(o);
    now_ += 10s;
    ASSERT_TRUE(v->verify(sign(fleet, {{6, 10}})));
    EXPECT_EQ(stored_time(o.newest_file), now_) << "the first is written at once";
    const auto first = now_;
    now_ += 2s;
    ASSERT_TRUE(v->verify(sign(fleet, {{11, 11}})));
    v->persist_due();
    EXPECT_EQ(stored_time(o.newest_file), first) << "written again within persist_every";
    now_ += 2min;  // more than persist_at_once
    ASSERT_TRUE(v->verify(sign(fleet, {{12, 12}})));
    EXPECT_EQ(stored_time(o.newest_file), now_) << "a jump is written at once";
    now_ += 1s;
    ASSERT_TRUE(v->verify(sign(fleet, {{13, 13}})));
    EXPECT_NE(stored_time(o.newest_file), now_);
  }
  EXPECT_EQ(stored_time(o.newest_file), now_) << "written when the verifier goes";
  // The restart.
  auto v = verifier(o);
  EXPECT_EQ(v->newest(), now_);
  auto r = v->verify(kept);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().what, "old") << r.error().message();
  EXPECT_EQ(v->inspect(kept).error().what, "old");
  EXPECT_EQ(v->signature_checks(), 0u) << "an old one cost a signature check";
  // The fleet's next one is taken.
  EXPECT_TRUE(v->verify(sign(fleet, {{14, 14}})));
  // Without the file (memory only, as before) the kept one would pass.
  EXPECT_GT(now_, start + 2min);
  auto forgetful = verifier();
  EXPECT_TRUE(forgetful.verify(kept));
}

// A newest_file that does not hold a time (damaged, a stranger's junk) is
// taken as none, never a crash; one far in the future is capped at
// max_ahead past the clock, so it cannot lock the fleet out for longer.
TEST_F(AckVerifierTest, AnUnusableOrFarFutureNewestFileIsTakenAsNoneOrCapped) {
  auto fleet = fleet_key(*pki_, "fleet-commands");
  auto o = options();
  o.newest_file = dir_.path() + "/ack-newest";
  for (const std::string& junk :
       std::vector<std::string>{"", "yesterday\n", "12.5\n", "-1.000000000\n",
                                "99999999999999.000000000\n", std::string(100, '7')}) {
    ASSERT_TRUE(replace_file(o.newest_file, junk, 0600));
    auto v = verifier(o);
    EXPECT_EQ(v->newest(), std::chrono::system_clock::time_point{}) << junk;
    EXPECT_TRUE(v->verify(sign(fleet, {{1, 1}}))) << junk;
  }
  const auto year_ahead = now_ + std::chrono::hours(24 * 365);
  const auto s = std::chrono::duration_cast<std::chrono::seconds>(year_ahead.time_since_epoch());
  ASSERT_TRUE(replace_file(o.newest_file, std::to_string(s.count()) + ".000000000\n", 0600));
  auto v = verifier(o);
  EXPECT_EQ(v->newest(), now_ + o.max_ahead);
  now_ += o.max_ahead;
  EXPECT_TRUE(v->verify(sign(fleet, {{2, 2}})));
}

// A broker floods the terminal with 10,000 copies of one forgery naming
// held records: its signature is checked once; every copy after is refused
// by inspect(), unchecked. The memory holds the last 64 refused: a 65th
// distinct forgery pushes the first out, and it is checked again.
TEST_F(AckVerifierTest, TenThousandIdenticalForgeriesCostOneSignatureCheck_REQ29) {
  auto fleet = fleet_key(*pki_, "fleet-commands");
  auto v = verifier();
  auto forge = [&](std::uint64_t last) {
    v1::SignedAcknowledgement s;
    EXPECT_TRUE(s.ParseFromString(sign(fleet, {{1, last}})));
    s.mutable_signature()->back() ^= 0x01;
    return s.SerializeAsString();
  };
  const auto forged = forge(10);
  for (int i = 0; i < 10000; ++i) {
    auto claim = v.inspect(forged);
    ASSERT_EQ(claim ? "accepted" : claim.error().what, i == 0 ? "accepted" : "bad signature");
    EXPECT_EQ(kind(v.verify(forged)), "bad signature");
  }
  EXPECT_EQ(v.signature_checks(), 1u);
  EXPECT_EQ(v.repeats_refused(), 2u * 9999);
  auto r = v.inspect(forged);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("refused before"), std::string::npos) << r.error().message();
  // The genuine one for the same records still verifies.
  EXPECT_TRUE(v.verify(sign(fleet, {{1, 10}})));
  EXPECT_EQ(v.signature_checks(), 2u);
  // An untrusted chain's copies cost one chain validation.
  TempDir other_dir;
  auto other = TestPki::create(other_dir.path());
  ASSERT_TRUE(other);
  const auto stranger = sign(fleet_key(*other, "fleet-commands"), {{1, 10}});
  const auto chains = v.chain_checks();
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(kind(v.verify(stranger)), "untrusted chain");
  EXPECT_EQ(v.chain_checks(), chains + 1);
  // 64 remembered: 63 more distinct forgeries keep `forged`, the 64th
  // pushes it out.
  for (std::uint64_t i = 0; i < 62; ++i) EXPECT_EQ(kind(v.verify(forge(100 + i))), "bad signature");
  const auto checks = v.signature_checks();
  EXPECT_EQ(kind(v.verify(forged)), "bad signature");
  EXPECT_EQ(v.signature_checks(), checks) << "still remembered";
  EXPECT_EQ(kind(v.verify(forge(1000))), "bad signature");
  EXPECT_EQ(kind(v.verify(forged)), "bad signature");
  EXPECT_EQ(v.signature_checks(), checks + 2) << "forgotten after 64 others";
}

TEST(SequenceSet, AddsMergesRemovesAndIntersectsRanges) {
  SequenceSet s;
  for (std::uint64_t i = 1; i <= 10; ++i) s.add(i, i);
  EXPECT_EQ(s.ranges(), 1u);
  s.add(20, 30);
  s.add(12, 12);
  EXPECT_EQ(s.ranges(), 3u);
  EXPECT_TRUE(s.intersects(11, 12));
  EXPECT_FALSE(s.intersects(13, 19));
  EXPECT_FALSE(s.intersects(31, UINT64_MAX));
  s.remove(3, 5);
  s.remove(12, 25);
  EXPECT_EQ(s.overlap(1, 100), (std::vector<SequenceRange>{{1, 2}, {6, 10}, {26, 30}}));
  EXPECT_FALSE(s.contains(4));
  EXPECT_TRUE(s.contains(6));
  s.add(3, 27);
  EXPECT_EQ(s.overlap(0, UINT64_MAX), (std::vector<SequenceRange>{{1, 30}}));
  s.remove(0, UINT64_MAX);
  EXPECT_TRUE(s.empty());
  s.add(UINT64_MAX - 1, UINT64_MAX);
  s.add(1, 1);
  EXPECT_EQ(s.overlap(0, UINT64_MAX),
            (std::vector<SequenceRange>{{1, 1}, {UINT64_MAX - 1, UINT64_MAX}}));
}

}  // namespace
}  // namespace portier::link
