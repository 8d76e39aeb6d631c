// The Uplink's signing spread over several threads: with every algorithm and
// both modes the outbox holds every payload once, in order, on a chain the
// fleet's verifier accepts link by link; signatures really are made at once
// by two threads (and never for a signer that is not concurrent); a run
// refused while the next one is being signed (a signer that fails, a full
// disk) loses nothing and duplicates nothing; drop notices stay where the
// outbox stands while runs are in flight; idle signing threads end.
#include <gtest/gtest.h>
#include <sys/mount.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "agent/identity/softhsm_token.h"
#include "agent/management/fleet_takes_outbox.h"
#include "agent/management/outbox_link_fixture.h"
#include "agent/management/uplink.h"
#include "portier/v1/telemetry.pb.h"
#include "tools/fleet/receiver.h"
#include "tools/fleet/sqlite_fleet_store.h"

namespace portier::management {
namespace {

using namespace std::chrono_literals;

// A key in memory seen through a signer that counts the calls in progress
// (the most at once), fails the calls numbered [fail_from, fail_to) and can
// hold its first call until a second one is under way (so that parallel
// signing is shown, not guessed from timing).
class WatchedSigner final : public crypto::Signer {
 public:
  WatchedSigner(crypto::KeySigner inner, bool concurrent)
      : inner_(std::move(inner)), concurrent_(concurrent) {}
  crypto::KeyType type() const override { return inner_.type(); }
  const crypto::PublicKey& public_key() const override { return inner_.public_key(); }
  bool concurrent() const override { return concurrent_; }
  Result<crypto::Bytes> sign(crypto::ByteView message) const override {
    const auto n = calls_.fetch_add(1);
    {
      std::unique_lock lock(mu_);
      max_active_ = std::max(max_active_, ++active_);
      cv_.notify_all();
      if (n == 0 && hold_first_) {
        // Released by a second call while this one is still in progress.
        cv_.wait_for(lock, 10s, [&] { return active_ >= 2; });
      }
    }
    Result<crypto::Bytes> out =
        fail(Errc::unavailable, "watched signer", "call " + std::to_string(n), "failed on purpose");
    if (n < fail_from_ || n >= fail_to_) out = inner_.sign(message);
    std::lock_guard lock(mu_);
    --active_;
    return out;
  }
  int max_active() const {
    std::lock_guard lock(mu_);
    return max_active_;
  }
  void hold_first() { hold_first_ = true; }
  void fail_calls(std::uint64_t from, std::uint64_t to) {
    fail_from_ = from;
    fail_to_ = to;
  }

 private:
  crypto::KeySigner inner_;
  bool concurrent_;
  bool hold_first_ = false;
  std::uint64_t fail_from_ = 0, fail_to_ = 0;
  mutable std::atomic<std::uint64_t> calls_{0};
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  mutable int active_ = 0, max_active_ = 0;
};

std::string payload(int i) { return "payload " + std::to_string(i); }

// Every 5th payload is a security record: in batch mode those are signed on
// their own, so a run has several signatures to share out.
outbox::Priority priority(int i) {
  return i % 5 == 4 ? outbox::Priority::security : outbox::Priority::telemetry;
}

class UplinkSigningTest : public ::testing::TestWithParam<std::tuple<crypto::KeyType, Signing>> {
 protected:
  void SetUp() override {
    auto s = test::device_signer(std::get<0>(GetParam()));
    ASSERT_TRUE(s);
    signer_ = std::make_unique<WatchedSigner>(std::move(*s), true);
    key_id_ = *envelope::key_id(signer_->public_key());
  }
  void TearDown() override {
    uplink_.reset();
    box_.reset();
    if (mounted_) umount2(dir_.path().c_str(), MNT_DETACH);
  }
  // The uplink is made but not started: payloads submitted before start()
  // wait, so the first run is a full one.
  void make_uplink(std::size_t threads, std::size_t max_run = 32) {
    auto b = test::open_outbox(dir_.file("outbox.db"));
    ASSERT_TRUE(b) << b.error().message();
    box_ = std::move(*b);
    UplinkOptions o;
    o.signing = std::get<1>(GetParam());
    o.max_run = max_run;
    o.signing_threads = threads;
    o.retry_min = 5ms;
    o.retry_max = 20ms;
    uplink_ = test::make_uplink(*box_, *signer_, key_id_, o);
  }
  void submit(int n, int from = 0) {
    for (int i = from; i < from + n; ++i) {
      ASSERT_TRUE(uplink_->submit(v1::PAYLOAD_HEALTH, payload(i), priority(i)));
    }
  }
  // Everything in the outbox through the fleet's verifier, in order: the
  // payloads it accepts. Checks the sequences follow each other and, when
  // every envelope is signed, that each one carries its signature.
  std::vector<std::string> verified() {
    envelope::ChainVerifier v("T-1", signer_->public_key(), {});
    std::vector<std::string> out;
    auto records = box_->oldest(1000000);
    EXPECT_TRUE(records);
    if (!records) return out;
    std::uint64_t expect = 1;
    for (auto& r : *records) {
      EXPECT_EQ(r.sequence, expect++);
      v1::Envelope env;
      EXPECT_TRUE(env.ParseFromString(r.envelope));
      if (std::get<1>(GetParam()) == Signing::each) {
        EXPECT_TRUE(env.has_signature()) << "sequence " << r.sequence;
      }
      auto bodies = v.accept(env);
      EXPECT_TRUE(bodies) << bodies.error().message();
      if (!bodies) break;
      for (auto& b : *bodies) out.push_back(b.payload());
    }
    EXPECT_EQ(v.pending_count(), 0u) << "every run ends with a signed link";
    return out;
  }
  void expect_all_in_order(int n) {
    auto got = verified();
    ASSERT_EQ(got.size(), static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) ASSERT_EQ(got[i], payload(i)) << "at " << i;
  }

  portier::test_support::TempDir dir_{"portier-uplink-signing"};
  bool mounted_ = false;
  std::unique_ptr<WatchedSigner> signer_;
  std::string key_id_;
  std::unique_ptr<outbox::Outbox> box_;
  std::unique_ptr<Uplink> uplink_;
};

TEST_P(UplinkSigningTest, SignedByTwoThreadsAtOnceYetCommittedInOrderOnAValidChain_REQ29) {
  const int n = std::get<0>(GetParam()) == crypto::KeyType::sm2 ? 300 : 1200;
  signer_->hold_first();
  make_uplink(4);
  submit(n);
  uplink_->start();
  ASSERT_TRUE(uplink_->flush(120s));
  EXPECT_EQ(uplink_->stats().sealed, static_cast<std::uint64_t>(n));
  EXPECT_GE(signer_->max_active(), 2) << "the signatures were made one at a time";
  EXPECT_LE(signer_->max_active(), 4) << "more threads signed than signing_threads";
  expect_all_in_order(n);
}

TEST_P(UplinkSigningTest, ASignerThatIsNotConcurrentIsOnlyEverCalledByOneThread) {
  auto s = test::device_signer(std::get<0>(GetParam()));
  ASSERT_TRUE(s);
  signer_ = std::make_unique<WatchedSigner>(std::move(*s), false);
  key_id_ = *envelope::key_id(signer_->public_key());
  make_uplink(4);
  submit(200);
  uplink_->start();
  ASSERT_TRUE(uplink_->flush(60s));
  EXPECT_EQ(signer_->max_active(), 1);
  EXPECT_EQ(uplink_->stats().signing_threads, 0u) << "threads started for a serial signer";
  expect_all_in_order(200);
}

// Signatures fail in the middle of a run while the next one is sealed and
// being signed: both go back to the queue, the sealer goes back to where
// the outbox stands, the failure is reported once and cleared, and the
// retried runs reuse the same sequence numbers (no gap, no duplicate).
TEST_P(UplinkSigningTest, ARunThatFailsWhileTheNextIsSignedLosesAndDuplicatesNothing_REQ29) {
  signer_->fail_calls(40, 47);
  make_uplink(4, 16);
  std::vector<std::string> states;
  std::mutex mu;
  uplink_->on_state([&](const std::string& s) {
    std::lock_guard lock(mu);
    states.push_back(s);
  });
  submit(400);
  uplink_->start();
  ASSERT_TRUE(uplink_->flush(60s));
  auto st = uplink_->stats();
  EXPECT_EQ(st.sealed, 400u);
  EXPECT_EQ(st.queued, 0u);
  EXPECT_TRUE(st.failure.empty()) << st.failure;
  expect_all_in_order(400);
  std::lock_guard lock(mu);
  ASSERT_EQ(states.size(), 2u) << "the failure is told once, then its end";
  EXPECT_NE(states.front().find("failed on purpose"), std::string::npos) << states.front();
  EXPECT_TRUE(states.back().empty());
}

TEST_P(UplinkSigningTest, AFullDiskRefusesRunsInFlightAndLosesNothingOnceThereIsRoom_REQ29) {
  if (geteuid() != 0) GTEST_SKIP() << "mounting a small tmpfs needs root";
  ASSERT_EQ(mount("tmpfs", dir_.path().c_str(), "tmpfs", 0, "size=1m"), 0) << strerror(errno);
  mounted_ = true;
  make_uplink(4, 16);
  {
    std::ofstream fill(dir_.file("filler"), std::ios::binary);
    std::string block(64 * 1024, 'x');
    while (fill.write(block.data(), block.size())) {
    }
  }
  submit(300);
  uplink_->start();
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (uplink_->stats().failure.empty() && std::chrono::steady_clock::now() < deadline) {
    uplink_->flush(10ms);
  }
  auto st = uplink_->stats();
  ASSERT_FALSE(st.failure.empty()) << "the disk was full, yet every commit worked";
  EXPECT_EQ(st.queued + st.sealed, 300u);
  std::filesystem::remove(dir_.file("filler"));
  ASSERT_TRUE(uplink_->flush(30s));
  EXPECT_TRUE(uplink_->stats().failure.empty());
  EXPECT_EQ(uplink_->stats().sealed, 300u);
  expect_all_in_order(300);
}

INSTANTIATE_TEST_SUITE_P(KeysAndSigning, UplinkSigningTest,
                         ::testing::Combine(::testing::Values(crypto::KeyType::ecdsa_p256,
                                                              crypto::KeyType::ed25519,
                                                              crypto::KeyType::sm2),
                                            ::testing::Values(Signing::each, Signing::batch)),
                         [](const auto& info) { return test::key_and_signing_name(info.param); });

// The signing threads exist only while there is work: none before the
// first burst nor for a lone payload, some during a burst, none again once
// they were idle for signing_idle.
TEST(UplinkSigningThreadsTest, StartedForABurstAndGoneWhenIdle) {
  const portier::test_support::TempDir dir("portier-uplink-idle");
  auto signer = test::device_signer(crypto::KeyType::ecdsa_p256);
  ASSERT_TRUE(signer);
  WatchedSigner watched(std::move(*signer), true);
  watched.hold_first();  // the burst's signing threads are seen at work
  const auto kid = *envelope::key_id(watched.public_key());
  {
    auto box = test::open_outbox(dir.file("outbox.db"));
    ASSERT_TRUE(box);
    UplinkOptions o;
    o.signing_threads = 3;
    o.signing_idle = 100ms;
    o.max_run = 64;
    Uplink up(**box, envelope::EnvelopeSealer("T-1", watched.type(), {}), watched, kid, o);
    up.start();
    EXPECT_EQ(up.stats().signing_threads, 0u);
    for (int i = 0; i < 200; ++i) {
      ASSERT_TRUE(up.submit(v1::PAYLOAD_HEALTH, payload(i), outbox::Priority::telemetry));
    }
    ASSERT_TRUE(up.flush(30s));
    EXPECT_GE(watched.max_active(), 2);
    auto gone = [&] {
      for (auto until = std::chrono::steady_clock::now() + 10s;
           std::chrono::steady_clock::now() < until;) {
        if (up.stats().signing_threads == 0) return true;
        up.flush(10ms);  // a bounded wait
      }
      return false;
    };
    EXPECT_TRUE(gone()) << up.stats().signing_threads << " signing threads left while idle";
    // A lone payload is signed by the writer: no thread is started for it.
    ASSERT_TRUE(up.submit(v1::PAYLOAD_HEALTH, payload(200), outbox::Priority::telemetry));
    ASSERT_TRUE(up.flush(10s));
    EXPECT_EQ(up.stats().signing_threads, 0u);
    // Another burst starts them again.
    for (int i = 201; i < 400; ++i) {
      ASSERT_TRUE(up.submit(v1::PAYLOAD_HEALTH, payload(i), outbox::Priority::telemetry));
    }
    ASSERT_TRUE(up.flush(30s));
    EXPECT_EQ(up.stats().sealed, 400u);
    up.stop();
    EXPECT_EQ(up.stats().signing_threads, 0u) << "stop() ends the signing threads";
  }
}

// A key in a PKCS#11 token (SoftHSM2): one session, so the signer says it
// is not concurrent; called from several threads at once it still gives
// only valid signatures (its mutex), and the Uplink signs with it on the
// writer alone, starting no signing thread, with the chain intact.
TEST(UplinkSigningPkcs11Test, ATokenKeyIsUsedByOneThreadAndEverySignatureVerifies_REQ16) {
  const portier::test_support::TempDir dir("portier-uplink-p11");
  portier::test::SoftHsmToken token;
  const std::string e = token.init(dir.path());
  ASSERT_TRUE(e.empty()) << e;
  for (auto type : {crypto::KeyType::ecdsa_p256, crypto::KeyType::ed25519}) {
    SCOPED_TRACE(std::string(crypto::name(type)));
    auto signer = identity::Pkcs11Signer::open_or_create(
        token.options(std::string(crypto::name(type)), type));
    ASSERT_TRUE(signer) << signer.error().message();
    EXPECT_FALSE((*signer)->concurrent());
    std::atomic<int> bad{0};
    std::vector<std::thread> threads;
    for (int k = 0; k < 4; ++k) {
      threads.emplace_back([&, k] {
        for (int i = 0; i < 25; ++i) {
          const std::string m = "message " + std::to_string(k) + "/" + std::to_string(i);
          auto sig = (*signer)->sign(crypto::byte_view(m));
          if (!sig || !crypto::verify((*signer)->public_key(), crypto::byte_view(m), *sig)) ++bad;
        }
      });
    }
    for (auto& th : threads) th.join();
    EXPECT_EQ(bad.load(), 0);

    const auto kid = *envelope::key_id((*signer)->public_key());
    auto box = test::open_outbox(dir.file(std::string(crypto::name(type)) + ".db"));
    ASSERT_TRUE(box);
    UplinkOptions o;
    o.signing_threads = 4;
    o.max_run = 16;
    Uplink up(**box, envelope::EnvelopeSealer("T-1", type, {}), **signer, kid, o);
    for (int i = 0; i < 100; ++i) {
      ASSERT_TRUE(up.submit(v1::PAYLOAD_HEALTH, payload(i), outbox::Priority::telemetry));
    }
    up.start();
    ASSERT_TRUE(up.flush(60s));
    EXPECT_EQ(up.stats().signing_threads, 0u) << "threads started for a one-session signer";
    up.stop();
    envelope::ChainVerifier v("T-1", (*signer)->public_key(), {});
    auto records = (*box)->oldest(1000);
    ASSERT_TRUE(records);
    ASSERT_EQ(records->size(), 100u);
    int i = 0;
    for (auto& r : *records) {
      v1::Envelope env;
      ASSERT_TRUE(env.ParseFromString(r.envelope));
      auto bodies = v.accept(env);
      ASSERT_TRUE(bodies) << bodies.error().message();
      ASSERT_EQ(bodies->size(), 1u);
      EXPECT_EQ(bodies->front().payload(), payload(i++));
    }
  }
}

// Drops while runs are in flight: every notice is sealed where the outbox
// stands, so the fleet's receiver follows the chain to the end across every
// gap with nothing refused.
TEST(UplinkSigningDropsTest, DropNoticesStayInChainOrderWhileRunsAreInFlight_REQ29) {
  const portier::test_support::TempDir dir("portier-uplink-drops");
  auto signer = test::device_signer(crypto::KeyType::ecdsa_p256);
  ASSERT_TRUE(signer);
  const auto kid = *envelope::key_id(signer->public_key());
  {
    auto box = test::open_outbox(dir.file("outbox.db"), 48000);
    ASSERT_TRUE(box);
    UplinkOptions o;
    o.signing = Signing::each;
    o.max_run = 8;
    o.signing_threads = 4;
    Uplink up(**box, envelope::EnvelopeSealer("T-1", signer->type(), {}), *signer, kid, o);
    // The chain state the outbox holds after each run: where a restart
    // would go on, so it must never go back.
    std::vector<std::uint64_t> states;
    up.on_stored([&] {
      if (auto st = (*box)->chain_state()) states.push_back(st->next_sequence);
    });
    for (int i = 0; i < 300; ++i) {
      v1::HealthReport h;
      h.mutable_health()->add_reasons(std::string(200, static_cast<char>('a' + i % 26)));
      ASSERT_TRUE(
          up.submit(v1::PAYLOAD_HEALTH, h.SerializeAsString(), outbox::Priority::telemetry));
    }
    up.start();
    ASSERT_TRUE(up.flush(60s));
    up.stop();
    EXPECT_GT(states.size(), 10u);
    EXPECT_TRUE(std::is_sorted(states.begin(), states.end()))
        << "the outbox's chain state went back: a record was stored ahead of one sealed before it";
    auto left = (*box)->drops(10);
    ASSERT_TRUE(left);
    EXPECT_TRUE(left->empty()) << "every drop was reported";

    // Where a restart goes on: after the last record (a notice stored ahead
    // of a run sealed before it would leave the state behind it).
    auto records = (*box)->oldest(100000);
    ASSERT_TRUE(records);
    ASSERT_FALSE(records->empty());
    auto state = (*box)->chain_state();
    ASSERT_TRUE(state);
    EXPECT_EQ(state->next_sequence, records->back().sequence + 1);
    int notices = 0;
    test::expect_fleet_takes_outbox(**box, signer->public_key(), dir.file("fleet.db"), &notices);
    EXPECT_GT(notices, 1) << "the outbox was meant to overflow, more than once";
  }
}

}  // namespace
}  // namespace portier::management
