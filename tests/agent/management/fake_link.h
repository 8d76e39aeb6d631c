// An in-process Link for the management feature's unit tests: it records
// what is sent and lets the test acknowledge, drop the connection and
// deliver commands. The real links (MQTT against Mosquitto, gRPC against
// portier-fleet) have their own tests; this double only stands in for the
// transport so the outbox logic can be driven step by step. What is sent is
// recorded per envelope (each run taken apart); ack() answers as the fleet
// does, with an acknowledgement signed by `acker` naming the envelope by
// its sequence and its body's chain digest.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>

#include "agent/link/ack_signing.h"
#include "agent/link/link.h"
#include "common/crypto/digest.h"
#include "portier/v1/envelope.pb.h"
#include "support/test_pki.h"

namespace portier::management::test {

// The fleet's acknowledgement key: a command-signing leaf of `pki`.
inline std::shared_ptr<const link::AckSigner> make_acker(const portier::test::TestPki& pki,
                                                         const std::string& name = "fleet-acks") {
  auto leaf = pki.issue({.name = name, .usage = crypto::CertUsage::command_signing});
  if (!leaf) return nullptr;
  auto signer = crypto::KeySigner::from(leaf->key);
  if (!signer) return nullptr;
  std::vector<crypto::Certificate> chain{leaf->cert};
  chain.insert(chain.end(), leaf->chain.begin(), leaf->chain.end());
  auto a = link::AckSigner::create(std::make_shared<crypto::KeySigner>(std::move(*signer)), chain);
  if (!a) return nullptr;
  return std::make_shared<const link::AckSigner>(std::move(*a));
}

// One envelope as sent: its sequence, its payload's kind ("health",
// "result", ...), its bytes (a serialized Envelope).
struct SentEnvelope {
  std::uint64_t id = 0;
  std::string kind;
  std::string bytes;
};

// The chain digest of a serialized Envelope's body, as the fleet names it
// in an acknowledgement: SM3 for an SM2 terminal, else SHA-256 (`algo`).
inline std::string chain_digest_of(const std::string& envelope, crypto::DigestAlgo algo) {
  v1::Envelope env;
  if (!env.ParseFromString(envelope)) return {};
  auto d = crypto::digest(algo, env.body());
  return d ? std::string(d->begin(), d->end()) : std::string();
}

inline std::string kind_of(const v1::EnvelopeBody& body) {
  switch (body.payload_type()) {
    case v1::PAYLOAD_BIRTH:
      return "birth";
    case v1::PAYLOAD_HEALTH:
      return "health";
    case v1::PAYLOAD_INVENTORY:
      return "inventory";
    case v1::PAYLOAD_DECISION_SUMMARY:
      return "decisions";
    case v1::PAYLOAD_AUDIT:
      return "audit";
    case v1::PAYLOAD_COMMAND_RESULT:
      return "result";
    case v1::PAYLOAD_DROP:
      return "drop";
    case v1::PAYLOAD_AUDIT_CHECKPOINT:
      return "checkpoint";
    default:
      return "other";
  }
}

class FakeLink final : public link::Link {
 public:
  // `algo`: the terminal's chain digest (envelope::chain_digest of its key
  // type), with which ack() names envelopes.
  explicit FakeLink(crypto::DigestAlgo algo = crypto::DigestAlgo::sha256) : algo_(algo) {}

  Result<void> start(link::LinkHandler& handler) override {
    std::lock_guard lock(mu_);
    handler_ = &handler;
    return {};
  }
  void stop() override {
    std::lock_guard lock(mu_);
    handler_ = nullptr;
  }
  Result<void> send(const link::Outgoing& m) override {
    std::lock_guard lock(mu_);
    if (!up_) return fail_msg(Errc::unavailable, "fake link: down");
    v1::EnvelopeRun run;
    if (!run.ParseFromString(m.bytes)) return fail_msg(Errc::invalid_argument, "not a run");
    ++messages_;
    for (auto& e : run.envelopes()) {
      v1::Envelope env;
      v1::EnvelopeBody body;
      SentEnvelope s{0, "other", e};
      if (env.ParseFromString(e) && body.ParseFromString(env.body())) {
        s.id = body.sequence();
        s.kind = kind_of(body);
        terminal_ = body.terminal_id();
      }
      sent_.push_back(std::move(s));
    }
    cv_.notify_all();
    return {};
  }
  bool connected() const override {
    std::lock_guard lock(mu_);
    return up_;
  }

  void connect() {
    link::LinkHandler* h;
    {
      std::lock_guard lock(mu_);
      up_ = true;
      h = handler_;
    }
    if (h) h->on_connected();
  }
  void disconnect() {
    link::LinkHandler* h;
    {
      std::lock_guard lock(mu_);
      up_ = false;
      h = handler_;
    }
    if (h) h->on_disconnected("test");
  }
  // Waits for `n` sent messages in total; acknowledges none.
  bool wait_sent(std::size_t n, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return sent_.size() >= n; });
  }
  std::vector<SentEnvelope> sent() {
    std::lock_guard lock(mu_);
    return {sent_.begin(), sent_.end()};
  }
  std::size_t messages() {
    std::lock_guard lock(mu_);
    return messages_;
  }
  // The fleet (or a hostile broker) sends a command.
  void deliver(std::string bytes) {
    link::LinkHandler* h;
    {
      std::lock_guard lock(mu_);
      h = handler_;
    }
    if (h) h->on_command(std::move(bytes));
  }
  // The fleet stored envelope `id`: an acknowledgement signed by `acker`
  // for the terminal the envelopes name, naming it by its digest as last
  // sent.
  void ack(std::uint64_t id) {
    std::string terminal;
    {
      std::lock_guard lock(mu_);
      terminal = terminal_;
    }
    const auto digest = digest_of(id);
    const std::vector<link::AckedRange> ranges{{id, id, digest}};
    auto signed_ack = acker->sign(terminal, ranges, std::chrono::system_clock::now());
    if (signed_ack) ack_raw(std::move(*signed_ack));
  }
  // The digest of the body of envelope `id` as last sent; empty when never sent.
  std::string digest_of(std::uint64_t id) {
    std::lock_guard lock(mu_);
    for (auto it = sent_.rbegin(); it != sent_.rend(); ++it) {
      if (it->id == id) return chain_digest_of(it->bytes, algo_);
    }
    return {};
  }
  // Anything on the acknowledgement topic, as a broker would deliver it.
  void ack_raw(std::string bytes) {
    link::LinkHandler* h;
    {
      std::lock_guard lock(mu_);
      h = handler_;
    }
    if (h) h->on_acknowledgement(std::move(bytes));
  }

  std::shared_ptr<const link::AckSigner> acker;  // the fleet's key

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  link::LinkHandler* handler_ = nullptr;
  bool up_ = false;
  std::deque<SentEnvelope> sent_;
  std::size_t messages_ = 0;
  std::string terminal_;
  const crypto::DigestAlgo algo_;
};

}  // namespace portier::management::test
