// The terminal "T-1" as the management feature's tests wire it: a device
// key in memory, a real outbox file in a fresh temp dir, the Uplink that
// seals and signs into it and, for the tests of sending, the fleet's
// acknowledgement key from a throwaway PKI, a FakeLink that signs with it
// and the OutboxSender between the outbox and the link. OutboxLinkFixture
// is a mixin for a test class (derived from its gtest base as well): its
// members keep the names the tests use, its helpers assert, so a test calls
// them from SetUp or from its body. The free helpers serve tests that build
// only part of it (another outbox, a signer of their own).
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <tuple>

#include "agent/envelope/envelope_chain.h"
#include "agent/management/fake_link.h"
#include "agent/management/outbox_sender.h"
#include "agent/management/uplink.h"
#include "agent/outbox/outbox.h"
#include "common/crypto/sign.h"
#include "support/temp_dir.h"
#include "support/test_pki.h"

namespace portier::management::test {

// A fresh device key of `type`, in memory, and its signer.
inline Result<crypto::KeySigner> device_signer(crypto::KeyType type) {
  auto key = crypto::PrivateKey::generate(type);
  if (!key) return std::unexpected(key.error());
  return crypto::KeySigner::from(*key);
}

// An outbox file at `path` holding at most `max_bytes`, records kept 24 h.
inline Result<std::unique_ptr<outbox::Outbox>> open_outbox(const std::string& path,
                                                           std::size_t max_bytes = 64u << 20) {
  return outbox::Outbox::open({path, max_bytes, std::chrono::hours(24)});
}

// An uplink for "T-1" on `box`, sealing on from `state` and signing with
// `signer` (named by `key_id`); not started.
inline std::unique_ptr<Uplink> make_uplink(outbox::Outbox& box, const crypto::Signer& signer,
                                           const std::string& key_id, UplinkOptions options,
                                           envelope::ChainState state = {}) {
  return std::make_unique<Uplink>(box, envelope::EnvelopeSealer("T-1", signer.type(), state),
                                  signer, key_id, std::move(options));
}

// The name of a (key type, signing mode) parameter: "ecdsap256_each".
inline std::string key_and_signing_name(const std::tuple<crypto::KeyType, Signing>& param) {
  std::string n(crypto::name(std::get<0>(param)));
  std::erase(n, '-');
  return n + (std::get<1>(param) == Signing::each ? "_each" : "_batch");
}

class OutboxLinkFixture {
 protected:
  // `prefix` names the temp dir; `algo` is the terminal's chain digest,
  // with which link_.ack() names envelopes.
  explicit OutboxLinkFixture(std::string_view prefix,
                             crypto::DigestAlgo algo = crypto::DigestAlgo::sha256)
      : dir_(prefix), link_(algo) {}
  ~OutboxLinkFixture() { close(); }

  // signer_ and key_id_: a fresh device key of `type`.
  void make_signer(crypto::KeyType type = crypto::KeyType::ecdsa_p256) {
    auto s = device_signer(type);
    ASSERT_TRUE(s) << s.error().message();
    signer_ = std::make_unique<crypto::KeySigner>(std::move(*s));
    auto kid = envelope::key_id(signer_->public_key());
    ASSERT_TRUE(kid) << kid.error().message();
    key_id_ = *kid;
  }
  // box_: the outbox file outbox.db in dir_ (closing the uplink on the one
  // before).
  void open_box(std::size_t max_bytes = 64u << 20) {
    uplink_.reset();
    box_.reset();
    auto b = open_outbox(dir_.file("outbox.db"), max_bytes);
    ASSERT_TRUE(b) << b.error().message();
    box_ = std::move(*b);
  }
  // uplink_: started on box_, going on from its chain state; in a new
  // session (as portierd at every start) when `new_session`.
  void start_uplink(UplinkOptions options, bool new_session = false) {
    uplink_.reset();
    auto state = box_->chain_state();
    ASSERT_TRUE(state) << state.error().message();
    if (new_session) ++state->session_epoch;
    uplink_ = make_uplink(*box_, *signer_, key_id_, std::move(options), *state);
    uplink_->start();
  }
  // pki_: the fleet's throwaway PKI, in dir_.
  void make_fleet_pki() {
    auto pki = portier::test::TestPki::create(dir_.path());
    ASSERT_TRUE(pki) << pki.error().message();
    pki_ = std::make_unique<portier::test::TestPki>(std::move(*pki));
  }
  // pki_ and link_.acker: the fleet's acknowledgement key (a
  // command-signing leaf of pki_).
  void make_fleet_acks() {
    make_fleet_pki();
    if (!pki_) return;
    link_.acker = make_acker(*pki_);
    ASSERT_TRUE(link_.acker);
  }
  // sender_: portierd's sender, as started, between box_ and link_,
  // trusting pki_'s root for acknowledgements and woken by uplink_; the
  // newest acknowledgement's time in `newest_file` (empty: memory only).
  void start_sender(SenderOptions options, const std::string& newest_file = "") {
    sender_ = std::make_unique<OutboxSender>(
        *box_, link_,
        link::AckVerifierOptions{
            .terminal_id = "T-1", .trust_anchors = {pki_->root()}, .newest_file = newest_file},
        nullptr, options);
    ASSERT_TRUE(link_.start(*sender_));
    uplink_->on_stored([this] { sender_->wake(); });
    sender_->start();
  }
  // Waits (at most `timeout`) until `done()`, in bounded waits for the
  // sender's thread; true when it is.
  template <class Done>
  bool wait_until(Done done, std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!done() && std::chrono::steady_clock::now() < deadline) {
      link_.wait_sent(1000000, std::chrono::milliseconds(5));
    }
    return done();
  }
  // Waits until the outbox holds exactly `n` records.
  bool wait_records(std::uint64_t n, std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    return wait_until([&] { return box_->stats()->records == n; }, timeout);
  }
  // Stops the sender, then closes the uplink (whose last runs still wake
  // the sender), the sender and the outbox; dir_ stays.
  void close() {
    if (sender_) sender_->stop();
    uplink_.reset();
    sender_.reset();
    box_.reset();
  }

  portier::test_support::TempDir dir_;
  std::unique_ptr<crypto::KeySigner> signer_;
  std::string key_id_;
  std::unique_ptr<portier::test::TestPki> pki_;
  FakeLink link_;
  std::unique_ptr<outbox::Outbox> box_;
  std::unique_ptr<Uplink> uplink_;
  std::unique_ptr<OutboxSender> sender_;
};

}  // namespace portier::management::test
