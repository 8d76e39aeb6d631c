// Signed, hash-chained envelopes: the terminal seals and signs, the fleet's
// verifier accepts the chain in order and rejects what an attacker on the
// way (a hostile broker) could do to it: drop, reorder, replay, insert,
// alter, re-sign with another key. Real keys through the crypto layer.
#include "agent/envelope/envelope_chain.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <vector>

namespace portier::envelope {
namespace {

using crypto::KeyType;

constexpr auto kT0 = std::chrono::system_clock::time_point{} + std::chrono::hours(500000);

struct Chain {
  explicit Chain(KeyType type, ChainState state = {})
      : key(*crypto::PrivateKey::generate(type)), sealer("T-0001", type, std::move(state)) {}
  std::vector<EnvelopeSealer::Sealed> seal(int n, bool sign) {
    std::vector<EnvelopeSealer::Sealed> out;
    for (int i = 0; i < n; ++i) {
      auto s = sealer.seal(v1::PAYLOAD_HEALTH, "payload " + std::to_string(i), kT0);
      EXPECT_TRUE(s) << s.error().message();
      if (sign) {
        EXPECT_TRUE(sign_envelope(s->envelope, key));
      }
      out.push_back(std::move(*s));
    }
    return out;
  }
  ChainVerifier verifier(ChainVerifier::Options o = {}) {
    return ChainVerifier("T-0001", *key.public_key(), {}, o);
  }
  crypto::PrivateKey key;
  EnvelopeSealer sealer;
};

class EnvelopeChainTest : public ::testing::TestWithParam<KeyType> {};

TEST_P(EnvelopeChainTest, EverySignedLinkIsAcceptedInOrder_REQ19) {
  Chain c(GetParam());
  auto v = c.verifier();
  for (auto& s : c.seal(5, true)) {
    auto covered = v.accept(s.envelope);
    ASSERT_TRUE(covered) << covered.error().message();
    ASSERT_EQ(covered->size(), 1u);
    EXPECT_EQ((*covered)[0].terminal_id(), "T-0001");  // the terminal id is in every signed body
    EXPECT_EQ((*covered)[0].sequence(), s.sequence);
  }
  EXPECT_EQ(v.state().next_sequence, 6u);
  EXPECT_EQ(v.state().prev_digest, c.sealer.state().prev_digest);
}

TEST_P(EnvelopeChainTest, OneBatchSignatureCoversARunThroughTheChain_REQ29) {
  Chain c(GetParam());
  auto v = c.verifier();
  auto run = c.seal(100, false);
  for (auto& s : run) {
    auto covered = v.accept(s.envelope);
    ASSERT_TRUE(covered);
    EXPECT_TRUE(covered->empty());  // nothing is handed out before a signature covers it
  }
  EXPECT_EQ(v.pending_count(), 100u);
  auto batch = sign_batch("T-0001", 1, 100, run.back().digest, c.key);
  ASSERT_TRUE(batch) << batch.error().message();
  auto ok = v.accept_batch(*batch);
  ASSERT_TRUE(ok) << ok.error().message();
  ASSERT_EQ(ok->size(), 100u);
  EXPECT_EQ(ok->front().sequence(), 1u);
  EXPECT_EQ(ok->back().sequence(), 100u);
  EXPECT_EQ(v.pending_count(), 0u);
  // The same batch again covers nothing any more.
  EXPECT_EQ(v.accept_batch(*batch).error().code, Errc::failed_precondition);
}

INSTANTIATE_TEST_SUITE_P(Algorithms, EnvelopeChainTest,
                         ::testing::Values(KeyType::ecdsa_p256, KeyType::ed25519, KeyType::sm2),
                         [](const auto& info) {
                           switch (info.param) {
                             case KeyType::ecdsa_p256:
                               return std::string("EcdsaP256");
                             case KeyType::ed25519:
                               return std::string("Ed25519");
                             case KeyType::sm2:
                               break;
                           }
                           return std::string("Sm2Sm3");
                         });

TEST(EnvelopeChain, ADroppedEnvelopeIsAGapAndNothingMoves_REQ23) {
  Chain c(KeyType::ecdsa_p256);
  auto v = c.verifier();
  auto run = c.seal(4, true);
  ASSERT_TRUE(v.accept(run[0].envelope));
  auto gap = v.accept(run[2].envelope);
  ASSERT_FALSE(gap);
  EXPECT_EQ(gap.error().code, Errc::failed_precondition);
  EXPECT_EQ(gap.error().message(), "envelope: sequence 3: expected 2: 1 envelope(s) missing");
  EXPECT_EQ(v.state().next_sequence, 2u);  // the rejected link changed nothing
  ASSERT_TRUE(v.accept(run[1].envelope));
  ASSERT_TRUE(v.accept(run[2].envelope));
}

TEST(EnvelopeChain, AReplayedEnvelopeIsRefused_REQ23) {
  Chain c(KeyType::ed25519);
  auto v = c.verifier();
  auto run = c.seal(2, true);
  ASSERT_TRUE(v.accept(run[0].envelope));
  ASSERT_TRUE(v.accept(run[1].envelope));
  auto again = v.accept(run[0].envelope);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().message(),
            "envelope: sequence 1: already received (a replay or a duplicate)");
}

TEST(EnvelopeChain, AnAlteredSignedBodyIsRefused) {
  Chain c(KeyType::sm2);
  auto v = c.verifier();
  auto run = c.seal(1, true);
  v1::EnvelopeBody body;
  ASSERT_TRUE(body.ParseFromString(run[0].envelope.body()));
  body.set_payload("payload X");
  body.SerializeToString(run[0].envelope.mutable_body());
  auto r = v.accept(run[0].envelope);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::permission_denied);
  EXPECT_NE(r.error().message().find("bad signature"), std::string::npos) << r.error().message();
}

v1::Envelope forge(const v1::Envelope& real) {
  auto forged = real;
  v1::EnvelopeBody body;
  EXPECT_TRUE(body.ParseFromString(forged.body()));
  body.set_payload("forged");
  body.SerializeToString(forged.mutable_body());
  return forged;
}

// A hostile broker sees every digest on the wire and injects its own link
// for a sequence: it is never handed out, and the genuine chain is still
// covered when the signature comes.
TEST(EnvelopeChain, ALinkInjectedByTheBrokerIsNeverAcceptedAndDoesNotWedgeTheChain_REQ36) {
  Chain c(KeyType::ecdsa_p256);
  auto run = c.seal(3, false);
  auto v = c.verifier();
  ASSERT_TRUE(v.accept(run[0].envelope));
  auto forged = v.accept(forge(run[1].envelope));
  ASSERT_TRUE(forged);
  EXPECT_TRUE(forged->empty());
  ASSERT_TRUE(v.accept(run[1].envelope));  // the genuine one, a second candidate
  ASSERT_TRUE(v.accept(run[2].envelope));
  auto batch = sign_batch("T-0001", 1, 3, run[2].digest, c.key);
  auto covered = v.accept_batch(*batch);
  ASSERT_TRUE(covered) << covered.error().message();
  ASSERT_EQ(covered->size(), 3u);
  EXPECT_EQ((*covered)[1].payload(), "payload 1");
  EXPECT_EQ(v.pending_count(), 0u);  // the forged candidate is gone too
}

TEST(EnvelopeChain, ALinkAlteredAtTheEndOfARunIsNotCovered) {
  Chain c(KeyType::ecdsa_p256);
  auto run = c.seal(3, false);
  auto v = c.verifier();
  ASSERT_TRUE(v.accept(run[0].envelope));
  ASSERT_TRUE(v.accept(run[1].envelope));
  ASSERT_TRUE(v.accept(forge(run[2].envelope)));
  auto batch = sign_batch("T-0001", 1, 3, run[2].digest, c.key);
  ASSERT_TRUE(batch);
  auto r = v.accept_batch(*batch);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::permission_denied);
  EXPECT_EQ(v.pending_count(), 3u);
  EXPECT_EQ(v.state().next_sequence, 1u);
}

TEST(EnvelopeChain, ABatchSignedByAnotherKeyUnderTheTerminalsKeyIdIsRefused) {
  Chain c(KeyType::ecdsa_p256);
  Chain other(KeyType::ecdsa_p256);
  auto run = c.seal(2, false);
  auto v = c.verifier();
  for (auto& s : run) ASSERT_TRUE(v.accept(s.envelope));
  auto batch = sign_batch("T-0001", 1, 2, run[1].digest, other.key);
  ASSERT_TRUE(batch);
  batch->mutable_signature()->set_key_id(*key_id(*c.key.public_key()));
  auto r = v.accept_batch(*batch);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("bad signature"), std::string::npos) << r.error().message();
  // A genuine batch over another range than it says is refused as well.
  auto shifted = sign_batch("T-0001", 2, 2, run[1].digest, c.key);
  EXPECT_FALSE(v.accept_batch(*shifted));
  auto moved = sign_batch("T-0001", 1, 2, run[1].digest, c.key);
  moved->set_first_sequence(1);
  moved->set_last_sequence(1);
  EXPECT_FALSE(v.accept_batch(*moved));
  EXPECT_TRUE(v.accept_batch(*sign_batch("T-0001", 1, 2, run[1].digest, c.key)));
}

TEST(EnvelopeChain, ASignedLinkCoversTheUnsignedOnesBeforeIt) {
  Chain c(KeyType::ed25519);
  auto run = c.seal(4, false);
  ASSERT_TRUE(sign_envelope(run[3].envelope, c.key));
  auto v = c.verifier();
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(v.accept(run[i].envelope));
  auto covered = v.accept(run[3].envelope);
  ASSERT_TRUE(covered);
  ASSERT_EQ(covered->size(), 4u);
  EXPECT_EQ(v.pending_count(), 0u);
  EXPECT_EQ(v.state().next_sequence, 5u);
}

TEST(EnvelopeChain, AnotherKeysSignatureOrAnotherTerminalIsRefused_REQ36) {
  Chain c(KeyType::ecdsa_p256);
  Chain other(KeyType::ecdsa_p256);
  auto v = c.verifier();
  auto run = c.seal(2, false);
  ASSERT_TRUE(sign_envelope(run[0].envelope, other.key));
  auto r = v.accept(run[0].envelope);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("not the terminal's key"), std::string::npos);
  auto batch = sign_batch("T-0001", 1, 1, run[0].digest, other.key);
  ASSERT_TRUE(batch);
  run[0].envelope.clear_signature();
  ASSERT_TRUE(v.accept(run[0].envelope));
  EXPECT_EQ(v.accept_batch(*batch).error().code, Errc::permission_denied);
  auto elsewhere = sign_batch("T-0002", 1, 1, run[0].digest, c.key);
  EXPECT_EQ(v.accept_batch(*elsewhere).error().code, Errc::permission_denied);
}

TEST(EnvelopeChain, TheChainContinuesAcrossARestartAndItsEpochOnlyGrows) {
  Chain c(KeyType::ed25519);
  auto v = c.verifier();
  for (auto& s : c.seal(2, true)) ASSERT_TRUE(v.accept(s.envelope));
  ChainState saved = c.sealer.state();  // what the outbox keeps on disk
  saved.session_epoch += 1;
  EnvelopeSealer restarted("T-0001", KeyType::ed25519, saved);
  auto s = restarted.seal(v1::PAYLOAD_BIRTH, "birth", kT0);
  ASSERT_TRUE(s);
  ASSERT_TRUE(sign_envelope(s->envelope, c.key));
  auto covered = v.accept(s->envelope);
  ASSERT_TRUE(covered) << covered.error().message();
  ASSERT_EQ(covered->size(), 1u);
  EXPECT_EQ((*covered)[0].sequence(), 3u);
  EXPECT_EQ((*covered)[0].session_epoch(), 1u);
  // A sealer started from a stale state (epoch back) is refused.
  ChainState stale = restarted.state();
  stale.session_epoch = 0;
  EnvelopeSealer old("T-0001", KeyType::ed25519, stale);
  auto s2 = old.seal(v1::PAYLOAD_HEALTH, "x", kT0);
  ASSERT_TRUE(sign_envelope(s2->envelope, c.key));
  EXPECT_EQ(v.accept(s2->envelope).error().code, Errc::permission_denied);
}

TEST(EnvelopeChain, UnsignedLinksWaitingForABatchAreBounded) {
  Chain c(KeyType::ecdsa_p256);
  auto v = c.verifier(ChainVerifier::Options{3});
  auto run = c.seal(4, false);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(v.accept(run[i].envelope));
  auto r = v.accept(run[3].envelope);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::resource_exhausted);
}

TEST(EnvelopeChain, GarbageIsNotABody) {
  Chain c(KeyType::ecdsa_p256);
  auto v = c.verifier();
  v1::Envelope e;
  e.set_body("\xff\xff\xff\xff");
  EXPECT_EQ(v.accept(e).error().code, Errc::invalid_argument);
}

// A verifier that lives for one call (the fleet's receivers share a store)
// hands its candidates over and a fresh one takes them back.
TEST(EnvelopeChain, CandidatesSurviveExportAndRestoreIntoAFreshVerifier) {
  Chain c(KeyType::sm2);
  auto run = c.seal(3, false);
  auto first = c.verifier();
  ASSERT_TRUE(first.accept(run[0].envelope));
  ASSERT_TRUE(first.accept(run[1].envelope));
  auto saved = first.pending_envelopes();
  ASSERT_EQ(saved.size(), 2u);
  auto second = c.verifier();
  ASSERT_TRUE(second.restore_pending(saved));
  EXPECT_EQ(second.pending_count(), 2u);
  EXPECT_EQ(second.expected_sequence(), 3u);
  ASSERT_TRUE(second.accept(run[2].envelope));
  auto covered = second.accept_batch_links(*sign_batch("T-0001", 1, 3, run[2].digest, c.key));
  ASSERT_TRUE(covered) << covered.error().message();
  ASSERT_EQ(covered->size(), 3u);
  for (int i = 0; i < 3; ++i) {
    // Each covered link comes with its envelope as received and its digest.
    EXPECT_EQ((*covered)[i].digest, std::string(run[i].digest.begin(), run[i].digest.end()));
    v1::Envelope e;
    ASSERT_TRUE(e.ParseFromString((*covered)[i].envelope));
    EXPECT_EQ(e.body(), run[i].envelope.body());
  }
}

TEST(EnvelopeChain, RestoreRefusesASignedOrMalformedCandidate) {
  Chain c(KeyType::ecdsa_p256);
  auto run = c.seal(1, true);
  auto v = c.verifier();
  EXPECT_EQ(v.restore_pending({run[0].envelope.SerializeAsString()}).error().code,
            Errc::invalid_argument);
  EXPECT_EQ(v.restore_pending({"\xff\xff"}).error().code, Errc::invalid_argument);
  EXPECT_EQ(v.pending_count(), 0u);
}

TEST(EnvelopeChain, AnInjectedCandidateIsReportedAsSupersededOnceTheChainIsCovered_REQ29) {
  Chain c(KeyType::ed25519);
  auto run = c.seal(2, false);
  ASSERT_TRUE(sign_envelope(run[1].envelope, c.key));
  auto v = c.verifier();
  ASSERT_TRUE(v.accept(forge(run[0].envelope)));
  ASSERT_TRUE(v.accept(run[0].envelope));
  EXPECT_TRUE(v.take_superseded().empty());  // nothing decided yet
  auto covered = v.accept(run[1].envelope);
  ASSERT_TRUE(covered) << covered.error().message();
  ASSERT_EQ(covered->size(), 2u);
  auto gone = v.take_superseded();
  ASSERT_EQ(gone.size(), 1u);
  EXPECT_EQ(gone[0].body.payload(), "forged");
  EXPECT_TRUE(v.take_superseded().empty());
}

// A broker strips the signature off a link and sends that copy first: the
// genuine signed copy that follows still covers it (it is not a duplicate).
TEST(EnvelopeChain, ASignedCopyCoversTheSameLinkHeldUnsigned_REQ29) {
  Chain c(KeyType::ed25519);
  auto run = c.seal(1, true);
  auto stripped = run[0].envelope;
  stripped.clear_signature();
  auto v = c.verifier();
  ASSERT_TRUE(v.accept(stripped));
  EXPECT_EQ(v.accept(stripped).error().code, Errc::failed_precondition);  // a plain resend
  auto garbled = run[0].envelope;
  garbled.mutable_signature()->mutable_value()->back() ^= 1;
  EXPECT_EQ(v.accept(garbled).error().code, Errc::permission_denied);
  EXPECT_EQ(v.pending_count(), 1u);
  auto covered = v.accept_links(run[0].envelope);
  ASSERT_TRUE(covered) << covered.error().message();
  ASSERT_EQ(covered->size(), 1u);
  EXPECT_EQ((*covered)[0].envelope, run[0].envelope.SerializeAsString());  // the signed copy
  EXPECT_EQ(v.state().next_sequence, 2u);
}

TEST(EnvelopeChain, AnEnvelopePastAGapIsCheckedOnItsOwn) {
  Chain c(KeyType::sm2);
  Chain other(KeyType::sm2);
  auto run = c.seal(3, true);
  auto v = c.verifier();
  EXPECT_TRUE(v.check_envelope(run[2].envelope));
  auto forged = run[2].envelope;
  ASSERT_TRUE(sign_envelope(forged, other.key));
  EXPECT_EQ(v.check_envelope(forged).error().code, Errc::permission_denied);
  EXPECT_EQ(v.check_envelope(forge(run[2].envelope)).error().code, Errc::permission_denied);
  EXPECT_EQ(v.state().next_sequence, 1u);
}

TEST(EnvelopeChain, ABatchIsCheckedOnItsOwnBeforeItsEnvelopesArrive) {
  Chain c(KeyType::ecdsa_p256);
  Chain other(KeyType::ecdsa_p256);
  auto run = c.seal(2, false);
  auto v = c.verifier();
  auto batch = sign_batch("T-0001", 1, 2, run[1].digest, c.key);
  EXPECT_TRUE(v.check_batch(*batch));
  auto forged = sign_batch("T-0001", 1, 2, run[1].digest, other.key);
  EXPECT_EQ(v.check_batch(*forged).error().code, Errc::permission_denied);
  auto stretched = *batch;
  stretched.set_last_sequence(3);  // the signature was over 1..2
  EXPECT_EQ(v.check_batch(stretched).error().code, Errc::permission_denied);
  EXPECT_EQ(v.state().next_sequence, 1u);
  for (auto& s : run) ASSERT_TRUE(v.accept(s.envelope));
  EXPECT_EQ(v.accept_batch(*batch)->size(), 2u);
}

// What a terminal's outbox sends after it had to drop envelopes unsent: a
// signed DropNotice listing each one's digest and previous digest.
EnvelopeSealer::Sealed drop_notice(Chain& c, const std::vector<EnvelopeSealer::Sealed>& dropped,
                                   bool sign, const crypto::PrivateKey* key = nullptr) {
  v1::DropNotice n;
  for (auto& d : dropped) {
    v1::EnvelopeBody b;
    EXPECT_TRUE(b.ParseFromString(d.envelope.body()));
    auto* e = n.add_dropped();
    e->set_sequence(d.sequence);
    e->set_digest(d.digest.data(), d.digest.size());
    e->set_prev_digest(b.prev_digest());
    e->set_priority("telemetry");
  }
  n.set_reason("outbox full");
  auto s = c.sealer.seal(v1::PAYLOAD_DROP, n.SerializeAsString(), kT0);
  EXPECT_TRUE(s);
  if (sign) {
    EXPECT_TRUE(sign_envelope(s->envelope, key ? *key : c.key));
  }
  return std::move(*s);
}

TEST(EnvelopeChain, ASignedDropNoticeBridgesTheGapTheOutboxLeft_REQ29) {
  Chain c(KeyType::ecdsa_p256);
  auto v = c.verifier();
  auto head = c.seal(1, true);
  auto dropped = c.seal(2, true);  // never sent
  auto notice = drop_notice(c, dropped, true);
  auto after = c.seal(1, true);
  ASSERT_TRUE(v.accept(head[0].envelope));
  EXPECT_EQ(v.accept(notice.envelope).error().code, Errc::failed_precondition);  // a gap
  auto bridged = v.bridge(notice.envelope);
  ASSERT_TRUE(bridged) << bridged.error().message();
  ASSERT_EQ(bridged->size(), 2u);
  EXPECT_EQ((*bridged)[0].sequence(), 2u);
  EXPECT_EQ(v.state().next_sequence, 4u);
  auto covered = v.accept(notice.envelope);
  ASSERT_TRUE(covered) << covered.error().message();
  ASSERT_EQ(covered->size(), 1u);
  EXPECT_EQ((*covered)[0].sequence(), 4u);
  ASSERT_TRUE(v.accept(after[0].envelope));
  EXPECT_EQ(v.state().prev_digest, c.sealer.state().prev_digest);
  // The dropped envelopes cannot come in afterwards.
  EXPECT_EQ(v.accept(dropped[0].envelope).error().code, Errc::failed_precondition);
}

TEST(EnvelopeChain, ANoticeOfDropsWithKeptLinksBetweenBridgesEachRunInTurn_REQ29) {
  Chain c(KeyType::sm2);
  auto v = c.verifier();
  auto head = c.seal(1, true);
  auto two = c.seal(1, true);
  auto three = c.seal(1, true);  // kept by the outbox, sent
  auto four = c.seal(1, true);
  auto notice = drop_notice(c, {two[0], four[0]}, true);
  ASSERT_TRUE(v.accept(head[0].envelope));
  auto first = v.bridge(notice.envelope);
  ASSERT_TRUE(first) << first.error().message();
  ASSERT_EQ(first->size(), 1u);
  EXPECT_EQ((*first)[0].sequence(), 2u);
  EXPECT_EQ(v.bridge(notice.envelope).error().code, Errc::failed_precondition);  // 3 comes next
  ASSERT_TRUE(v.accept(three[0].envelope));
  auto second = v.bridge(notice.envelope);
  ASSERT_TRUE(second) << second.error().message();
  EXPECT_EQ((*second)[0].sequence(), 4u);
  ASSERT_TRUE(v.accept(notice.envelope));
  EXPECT_EQ(v.state().prev_digest, c.sealer.state().prev_digest);
}

TEST(EnvelopeChain, OnlyAValidlySignedDropNoticeThatChainsBridges_REQ36) {
  Chain c(KeyType::ed25519);
  Chain other(KeyType::ed25519);
  auto head = c.seal(1, true);
  auto dropped = c.seal(2, true);
  const ChainState before_notice = c.sealer.state();
  auto unsigned_notice = drop_notice(c, dropped, false);
  c.sealer = EnvelopeSealer("T-0001", KeyType::ed25519, before_notice);
  auto foreign = drop_notice(c, dropped, true, &other.key);
  c.sealer = EnvelopeSealer("T-0001", KeyType::ed25519, before_notice);
  // A notice that claims only the second drop: it does not start at the gap.
  auto partial = drop_notice(c, {dropped[1]}, true);
  c.sealer = EnvelopeSealer("T-0001", KeyType::ed25519, before_notice);
  // A notice whose listed digest was altered after sealing: it no longer chains.
  auto altered = dropped;
  altered[0].digest[0] ^= 1;
  auto broken = drop_notice(c, altered, true);
  auto v = c.verifier();
  ASSERT_TRUE(v.accept(head[0].envelope));
  EXPECT_EQ(v.bridge(unsigned_notice.envelope).error().code, Errc::invalid_argument);
  auto f = v.bridge(foreign.envelope);
  ASSERT_FALSE(f);
  EXPECT_NE(f.error().message().find("bad signature"), std::string::npos) << f.error().message();
  EXPECT_EQ(v.bridge(partial.envelope).error().code, Errc::failed_precondition);
  EXPECT_EQ(v.bridge(broken.envelope).error().code, Errc::permission_denied);
  EXPECT_EQ(v.state().next_sequence, 2u);  // nothing moved
  // A notice for another terminal, or a non-drop envelope, does not bridge either.
  EXPECT_EQ(v.bridge(head[0].envelope).error().code, Errc::invalid_argument);
}

// A link sealed by whoever sees the chain's head: an injected candidate.
v1::Envelope junk(const crypto::Bytes& prev, std::uint64_t seq, int n) {
  v1::EnvelopeBody body;
  body.set_terminal_id("T-0001");
  body.set_sequence(seq);
  body.set_prev_digest(prev.data(), prev.size());
  body.set_payload_type(v1::PAYLOAD_HEALTH);
  body.set_payload("junk " + std::to_string(n));
  v1::Envelope e;
  body.SerializeToString(e.mutable_body());
  return e;
}

crypto::Bytes digest_of(const v1::Envelope& e) {
  return *crypto::digest(crypto::DigestAlgo::sha256, e.body());
}

// A hostile broker floods a terminal's chain with 10,000 unsigned links of
// its own, as siblings of the genuine ones and as long chains of their own:
// the candidates stay within their bounds (count and bytes), the evictions
// are counted, and the genuine run that follows is covered by its batch.
TEST(EnvelopeChain, AFloodOfJunkCandidatesIsEvictedAndTheGenuineChainIsStillCovered_REQ29) {
  Chain c(KeyType::ecdsa_p256);
  auto run = c.seal(3, false);
  ChainVerifier::Options o;
  o.max_pending = 64;
  o.max_pending_bytes = 8 * 1024;
  auto v = c.verifier(o);
  ASSERT_TRUE(v.accept(run[0].envelope));
  crypto::Bytes tip = run[0].digest;  // the junk chain's head
  for (int i = 0; i < 10000; ++i) {
    // Every tenth extends a junk chain; the others are siblings of link 2.
    v1::Envelope e = i % 10 == 0 ? junk(tip, 2 + static_cast<std::uint64_t>(i / 10) % 50, i)
                                 : junk(run[0].digest, 2, i);
    if (i % 10 == 0) {
      if ((i / 10) % 50 == 49) {
        tip = run[0].digest;  // start a new chain
      } else {
        tip = digest_of(e);
      }
    }
    auto r = v.accept(e);
    if (r) {
      EXPECT_TRUE(r->empty()) << "junk was handed out";
    } else {
      // A chain whose only evictable candidate is its own parent: refused.
      EXPECT_EQ(r.error().code, Errc::resource_exhausted) << r.error().message();
    }
    ASSERT_LE(v.pending_count(), o.max_pending);
  }
  EXPECT_GT(v.take_evicted(), 9000u);
  std::size_t bytes = 0;
  for (auto& e : v.pending_envelopes()) bytes += e.size();
  EXPECT_LE(bytes, o.max_pending_bytes);

  // The genuine links arrive (the broker forwards them late), then the
  // batch: the run is covered, and no junk is left.
  ASSERT_TRUE(v.accept(run[1].envelope));
  ASSERT_TRUE(v.accept(run[2].envelope));
  auto covered = v.accept_batch(*sign_batch("T-0001", 1, 3, run[2].digest, c.key));
  ASSERT_TRUE(covered) << covered.error().message();
  ASSERT_EQ(covered->size(), 3u);
  for (int i = 0; i < 3; ++i) EXPECT_EQ((*covered)[i].payload(), "payload " + std::to_string(i));
  EXPECT_EQ(v.pending_count(), 0u) << "junk chained to junk must go with it";
  for (auto& l : v.take_superseded()) {
    EXPECT_EQ(l.body.payload().rfind("junk ", 0), 0u) << l.body.payload();
  }
}

// The fleet keeps the candidates between calls (pending_envelopes); their
// age survives the round trip, so the oldest junk still goes first.
TEST(EnvelopeChain, EvictionAfterARestoreTakesTheOldestCandidateFirst) {
  Chain c(KeyType::ed25519);
  auto run = c.seal(2, false);
  ChainVerifier::Options o;
  o.max_pending = 3;
  auto v = c.verifier(o);
  const auto old_junk = junk(crypto::Bytes(32, 0), 1, 1);
  ASSERT_TRUE(v.accept(old_junk));
  ASSERT_TRUE(v.accept(run[0].envelope));
  ASSERT_TRUE(v.accept(junk(crypto::Bytes(32, 0), 1, 2)));
  auto saved = v.pending_envelopes();
  ASSERT_EQ(saved.size(), 3u);
  EXPECT_EQ(saved[0], old_junk.SerializeAsString()) << "oldest first";
  auto fresh = c.verifier(o);
  ASSERT_TRUE(fresh.restore_pending(saved));
  // Full: the genuine link 2 makes room by evicting the oldest leaf (the
  // first junk), never its own parent (link 1, the second oldest).
  ASSERT_TRUE(fresh.accept(run[1].envelope));
  EXPECT_EQ(fresh.take_evicted(), 1u);
  auto left = fresh.pending_envelopes();
  EXPECT_EQ(std::count(left.begin(), left.end(), old_junk.SerializeAsString()), 0);
  ASSERT_TRUE(sign_envelope(run[1].envelope, c.key));
  auto covered = fresh.accept(run[1].envelope);
  ASSERT_TRUE(covered) << covered.error().message();
  EXPECT_EQ(covered->size(), 2u);
}

// A store that keeps each candidate as a row (the fleet's): what
// restore_links() takes back, and how often it reads an envelope.
struct RowStore {
  std::map<std::pair<std::uint64_t, std::string>, std::string> rows;
  int reads = 0;
  void keep(const ChainVerifier& v) {
    for (auto& l : v.pending_links()) {
      if (!l.envelope.empty()) rows[{l.sequence, l.digest}] = l.envelope;
    }
  }
  ChainVerifier::EnvelopeLoader loader() {
    return [this](std::uint64_t seq, const std::string& digest) -> Result<std::string> {
      ++reads;
      auto it = rows.find({seq, digest});
      if (it == rows.end()) return fail(Errc::not_found, "rows", "candidate", "gone");
      return it->second;
    };
  }
  // The index as a store returns it: no envelopes.
  static std::vector<ChainVerifier::PendingLink> index(const ChainVerifier& v) {
    auto links = v.pending_links();
    for (auto& l : links) l.envelope.clear();
    return links;
  }
};

// Taking candidates back from a store costs their index only: no envelope
// is read until a signature covers it, and then exactly the covered ones.
TEST(EnvelopeChain, CandidatesRestoredAsAnIndexAreReadOnlyWhenASignatureCoversThem_REQ29) {
  Chain c(KeyType::ecdsa_p256);
  auto run = c.seal(3, false);
  ChainVerifier::Options o;
  o.max_pending = 8;
  auto first = c.verifier(o);
  ASSERT_TRUE(first.accept(run[0].envelope));
  ASSERT_TRUE(first.accept(run[1].envelope));
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(first.accept(junk(run[0].digest, 2, i)));
  RowStore store;
  store.keep(first);
  ASSERT_EQ(store.rows.size(), 7u);
  auto second = c.verifier(o);
  ASSERT_TRUE(second.restore_links(RowStore::index(first), store.loader()));
  EXPECT_EQ(second.pending_count(), 7u);
  EXPECT_EQ(second.pending_bytes(), first.pending_bytes());
  EXPECT_EQ(second.expected_sequence(), 3u);
  // More junk: evicted oldest first by the ages kept, nothing read.
  ASSERT_TRUE(second.accept(junk(run[1].digest, 3, 10)));
  ASSERT_TRUE(second.accept(junk(run[1].digest, 3, 11)));
  EXPECT_EQ(second.take_evicted(), 1u);
  EXPECT_EQ(store.reads, 0);
  ASSERT_TRUE(second.accept(run[2].envelope));
  auto covered = second.accept_batch_links(*sign_batch("T-0001", 1, 3, run[2].digest, c.key));
  ASSERT_TRUE(covered) << covered.error().message();
  ASSERT_EQ(covered->size(), 3u);
  for (int i = 0; i < 3; ++i) {
    v1::Envelope e;
    ASSERT_TRUE(e.ParseFromString((*covered)[i].envelope));
    EXPECT_EQ(e.body(), run[i].envelope.body());
    EXPECT_EQ((*covered)[i].body.payload(), "payload " + std::to_string(i));
  }
  EXPECT_EQ(store.reads, 2) << "the two covered links restored from the store, no junk";
  EXPECT_EQ(second.pending_count(), 0u);
}

// The index is trusted, the envelopes are not: a row the store lost or
// altered (here: a forged body put under the genuine link's digest) makes
// the cover fail, never gets its body handed out, and leaves the chain
// where the genuine links, sent again, cover it.
TEST(EnvelopeChain, AnAlteredStoredCandidateIsNeverHandedOutAndTheResentChainIsCovered_REQ29) {
  Chain c(KeyType::ed25519);
  auto run = c.seal(2, false);
  auto first = c.verifier();
  ASSERT_TRUE(first.accept(run[0].envelope));
  RowStore store;
  store.keep(first);
  const std::string d0(run[0].digest.begin(), run[0].digest.end());
  store.rows[{1, d0}] = forge(run[0].envelope).SerializeAsString();
  auto second = c.verifier();
  ASSERT_TRUE(second.restore_links(RowStore::index(first), store.loader()));
  ASSERT_TRUE(sign_envelope(run[1].envelope, c.key));
  auto r = second.accept(run[1].envelope);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::internal);
  EXPECT_NE(r.error().message().find("lost or altered"), std::string::npos) << r.error().message();
  EXPECT_EQ(second.state().next_sequence, 1u);
  EXPECT_EQ(second.pending_count(), 0u) << "the altered row goes";
  ASSERT_TRUE(second.accept(run[0].envelope));
  auto covered = second.accept(run[1].envelope);
  ASSERT_TRUE(covered) << covered.error().message();
  ASSERT_EQ(covered->size(), 2u);
  EXPECT_EQ((*covered)[0].payload(), "payload 0");

  // A row that is gone, and an index entry whose parent is gone (an
  // orphan): the first fails the cover the same way, the second is dropped
  // when restored.
  Chain d(KeyType::ecdsa_p256);
  auto more = d.seal(3, false);
  auto third = d.verifier();
  for (auto& s : more) ASSERT_TRUE(third.accept(s.envelope));
  auto index = RowStore::index(third);
  RowStore empty;
  auto orphaned = index;
  orphaned.erase(orphaned.begin());  // sequence 1, the oldest
  auto fourth = d.verifier();
  ASSERT_TRUE(fourth.restore_links(orphaned, empty.loader()));
  EXPECT_EQ(fourth.pending_count(), 0u);
  EXPECT_EQ(fourth.take_superseded().size(), 2u);
  auto fifth = d.verifier();
  ASSERT_TRUE(fifth.restore_links(index, empty.loader()));
  auto none = fifth.accept_batch_links(*sign_batch("T-0001", 1, 3, more[2].digest, d.key));
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code, Errc::internal) << none.error().message();
  EXPECT_EQ(fifth.state().next_sequence, 1u);
}

// A store's candidates asked for one by one (ChainVerifier::restore_index):
// what it is asked, counted.
struct IndexStore final : ChainVerifier::CandidateIndex {
  std::map<std::pair<std::uint64_t, std::string>, ChainVerifier::PendingLink> rows;
  int alls = 0, reads = 0, lookups = 0;
  void apply(ChainVerifier::Changes changes) {
    for (auto& key : changes.removed) rows.erase(key);
    for (auto& l : changes.added) rows[{l.sequence, l.digest}] = l;
  }
  ChainVerifier::PendingSummary summary() const {
    ChainVerifier::PendingSummary s;
    for (auto& [key, l] : rows) {
      ++s.count;
      s.bytes += l.size;
      s.last_sequence = std::max(s.last_sequence, l.sequence);
      s.last_arrival = std::max(s.last_arrival, l.arrival);
    }
    return s;
  }
  static ChainVerifier::PendingLink bare(ChainVerifier::PendingLink l) {
    l.envelope.clear();
    return l;
  }
  std::vector<ChainVerifier::PendingLink> by_arrival() const {
    std::vector<ChainVerifier::PendingLink> out;
    for (auto& [key, l] : rows) out.push_back(bare(l));
    std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.arrival < b.arrival; });
    return out;
  }
  Result<std::optional<ChainVerifier::PendingLink>> find(std::uint64_t seq,
                                                         const std::string& digest) override {
    ++lookups;
    auto it = rows.find({seq, digest});
    if (it == rows.end()) return std::optional<ChainVerifier::PendingLink>{};
    return std::optional<ChainVerifier::PendingLink>(bare(it->second));
  }
  Result<std::vector<ChainVerifier::PendingLink>> oldest_leaves(std::optional<std::uint64_t> after,
                                                                std::size_t limit) override {
    ++lookups;
    std::vector<ChainVerifier::PendingLink> out;
    for (auto& l : by_arrival()) {
      if ((after && l.arrival <= *after) || out.size() == limit) continue;
      bool leaf = true;
      for (auto& [key, c] : rows)
        leaf = leaf && !(c.sequence == l.sequence + 1 && c.prev == l.digest);
      if (leaf) out.push_back(l);
    }
    return out;
  }
  Result<std::vector<ChainVerifier::PendingLink>> newest(std::size_t limit) override {
    ++lookups;
    auto out = by_arrival();
    std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.sequence > b.sequence; });
    if (out.size() > limit) out.resize(limit);
    return out;
  }
  Result<std::vector<ChainVerifier::PendingLink>> all() override {
    ++alls;
    return by_arrival();
  }
  Result<std::string> envelope(std::uint64_t seq, const std::string& digest) override {
    ++reads;
    auto it = rows.find({seq, digest});
    if (it == rows.end()) return fail(Errc::not_found, "rows", "candidate", "gone");
    return it->second.envelope;
  }
};

// Unsigned candidates added to (and evicting from) a full room of stored
// ones cost lookups, never the whole index; the signature that covers
// reads it, and exactly the envelopes it covers.
TEST(EnvelopeChain, CandidatesAskedOneByOneAreReadWhollyOnlyForWhatASignatureCovers_REQ29) {
  Chain c(KeyType::ecdsa_p256);
  auto run = c.seal(3, false);
  ChainVerifier::Options o;
  o.max_pending = 8;
  auto first = c.verifier(o);
  ASSERT_TRUE(first.accept(run[0].envelope));
  ASSERT_TRUE(first.accept(run[1].envelope));
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(first.accept(junk(run[0].digest, 2, i)));
  IndexStore store;
  store.apply(first.take_changes());
  ASSERT_EQ(store.rows.size(), 7u);

  auto second = c.verifier(o);
  second.restore_index(store, store.summary());
  EXPECT_EQ(second.pending_count(), 7u);
  EXPECT_EQ(second.expected_sequence(), 3u);
  ASSERT_TRUE(second.accept(junk(run[1].digest, 3, 10)));  // the room is full now
  ASSERT_TRUE(second.accept(junk(run[1].digest, 3, 11)));  // evicts the oldest junk
  EXPECT_EQ(second.take_evicted(), 1u);
  EXPECT_EQ(second.pending_count(), 8u);
  auto r = second.accept(junk(run[0].digest, 2, 0));  // evicted: new again
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(second.take_evicted(), 1u);
  EXPECT_EQ(store.alls, 0) << "no unsigned candidate needs the whole index";
  EXPECT_EQ(store.reads, 0);
  EXPECT_LE(store.lookups, 12);
  auto changes = second.take_changes();
  EXPECT_EQ(changes.added.size(), 3u);
  EXPECT_EQ(changes.removed.size(), 2u) << "the two oldest junk rows";
  store.apply(std::move(changes));

  auto third = c.verifier(o);
  third.restore_index(store, store.summary());
  ASSERT_TRUE(third.accept(run[2].envelope));
  EXPECT_EQ(store.alls, 0);
  auto covered = third.accept_batch_links(*sign_batch("T-0001", 1, 3, run[2].digest, c.key));
  ASSERT_TRUE(covered) << covered.error().message();
  ASSERT_EQ(covered->size(), 3u);
  EXPECT_EQ((*covered)[1].body.payload(), "payload 1");
  EXPECT_EQ(store.alls, 1);
  EXPECT_EQ(store.reads, 2) << "run 0 and 1, from the store";
  EXPECT_EQ(third.pending_count(), 0u);
  store.apply(third.take_changes());
  EXPECT_TRUE(store.rows.empty()) << "covered and superseded rows all go";
}

}  // namespace
}  // namespace portier::envelope
