#include "fleet_acker.h"

#include <chrono>
#include <map>
#include <stdexcept>
#include <thread>

#include "common/crypto/digest.h"
#include "portier/v1/envelope.pb.h"

namespace portier::bench {
namespace {

// A root CA and a command-signing leaf under it, valid for a day.
std::pair<crypto::Certificate, link::AckSigner> make_key() {
  auto fail = [](const std::string& what, const Error& e) {
    return std::runtime_error("fleet acker: " + what + ": " + e.message());
  };
  const auto now = std::chrono::system_clock::now();
  auto root_key = crypto::PrivateKey::generate(crypto::KeyType::ecdsa_p256);
  if (!root_key) throw fail("root key", root_key.error());
  auto root_pub = root_key->public_key();
  if (!root_pub) throw fail("root key", root_pub.error());
  crypto::IssueOptions ro;
  ro.subject.common_name = "bench fleet CA";
  ro.usage = crypto::CertUsage::ca;
  ro.not_before = now - std::chrono::hours(1);
  ro.not_after = now + std::chrono::hours(24);
  auto root = crypto::issue_certificate(*root_pub, ro, nullptr, *root_key);
  if (!root) throw fail("root certificate", root.error());
  auto key = crypto::PrivateKey::generate(crypto::KeyType::ecdsa_p256);
  if (!key) throw fail("key", key.error());
  auto pub = key->public_key();
  if (!pub) throw fail("key", pub.error());
  crypto::IssueOptions lo;
  lo.subject.common_name = "bench fleet acknowledgements";
  lo.usage = crypto::CertUsage::command_signing;
  lo.not_before = ro.not_before;
  lo.not_after = ro.not_after;
  auto leaf = crypto::issue_certificate(*pub, lo, &*root, *root_key);
  if (!leaf) throw fail("certificate", leaf.error());
  auto signer = crypto::KeySigner::from(std::move(*key));
  if (!signer) throw fail("signer", signer.error());
  const std::vector<crypto::Certificate> chain{*leaf};
  auto acks =
      link::AckSigner::create(std::make_shared<crypto::KeySigner>(std::move(*signer)), chain);
  if (!acks) throw fail("signer", acks.error());
  return {std::move(*root), std::move(*acks)};
}

}  // namespace

void FleetAcker::send(const std::string& topic, std::string bytes) {
  auto keep = [this, topic, bytes] {
    std::lock_guard lock(pending_mu_);
    pending_.emplace_back(topic, bytes);
  };
  if (!client_ || !client_->publish(topic, bytes, false, [keep](Result<void> done) {
        if (!done) keep();
      })) {
    keep();
  }
}

FleetAcker::FleetAcker(const std::string& uri, const std::string& fleet, mqtt::TlsFiles tls,
                       bool wait_connected)
    : fleet_(fleet) {
  auto [anchor, signer] = make_key();
  anchor_.emplace(std::move(anchor));
  signer_.emplace(std::move(signer));
  mqtt::ClientOptions o;
  o.server_uri = uri;
  o.client_id = "portier-fleet-bench-acker";
  o.tls = std::move(tls);
  o.max_in_flight = 4096;
  o.max_incoming_payload = 1 << 20;
  o.backoff_min = std::chrono::milliseconds(50);  // back soon after a broker's outage
  o.backoff_max = std::chrono::milliseconds(200);
  mqtt::ClientCallbacks cb;
  cb.message = [this](const std::string& topic, std::string payload) {
    // portier/v1/<fleet>/<terminal>/up/run
    const std::string prefix = "portier/v1/" + fleet_ + "/";
    const auto rest = topic.substr(prefix.size());
    const auto terminal = rest.substr(0, rest.find('/'));
    v1::EnvelopeRun run;
    if (!run.ParseFromString(payload)) return;
    // Each envelope named by its body's chain digest, as portier-fleet
    // does (it knows the algorithm from the terminal's certificate: SM3 for
    // an SM2 key, else SHA-256). The acker has no certificate: it finds the
    // algorithm whose digest of one body is the next body's prev_digest, or
    // an envelope's own signature says it, and keeps the last one found for
    // a run of one unsigned envelope.
    std::vector<std::uint64_t> sequences;
    std::map<std::uint64_t, std::string> bodies;
    std::string prev_body;
    for (const auto& e : run.envelopes()) {
      v1::Envelope env;
      v1::EnvelopeBody body;
      if (!env.ParseFromString(e) || !body.ParseFromString(env.body())) continue;
      sequences.push_back(body.sequence());
      bodies[body.sequence()] = env.body();
      if (env.has_signature()) {
        algo_ = env.signature().algorithm() == v1::SM2_SM3 ? crypto::DigestAlgo::sm3
                                                           : crypto::DigestAlgo::sha256;
      } else if (!prev_body.empty()) {
        for (auto a : {crypto::DigestAlgo::sha256, crypto::DigestAlgo::sm3}) {
          auto d = crypto::digest(a, prev_body);
          if (d && std::string(d->begin(), d->end()) == body.prev_digest()) algo_ = a;
        }
      }
      prev_body = env.body();
    }
    const auto algo = algo_.load();
    const auto n = sequences.size();
    const auto ranges = link::to_ranges(std::move(sequences));
    auto ack =
        signer_->sign(terminal,
                      link::with_digests(ranges,
                                         [&](std::uint64_t last) -> std::optional<std::string> {
                                           auto d = crypto::digest(algo, bodies[last]);
                                           if (!d) return std::nullopt;
                                           return std::string(d->begin(), d->end());
                                         }),
                      std::chrono::system_clock::now());
    if (!ack) return;
    acked_ += n;
    ++messages_;
    send(prefix + terminal + "/down/ack", std::move(*ack));
  };
  // Acknowledgements that did not go out (the connection lost meanwhile, as
  // at a broker's restart) go again at the next connection, as portier-fleet
  // answers a run it stored; otherwise the terminal waits for its
  // acknowledgement timeout.
  cb.connected = [this](int) {
    std::vector<std::pair<std::string, std::string>> again;
    {
      std::lock_guard lock(pending_mu_);
      again.swap(pending_);
    }
    for (auto& [topic, bytes] : again) send(topic, std::move(bytes));
  };
  auto c = mqtt::MqttClient::create(std::move(o), std::move(cb));
  if (!c) throw std::runtime_error("fleet acker: " + c.error().message());
  client_ = std::move(*c);
  client_->subscribe("portier/v1/" + fleet + "/+/up/run", 1);
  client_->start();
  if (!wait_connected) return;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!client_->connected() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (!client_->connected()) throw std::runtime_error("fleet acker: cannot connect to " + uri);
}

FleetAcker::~FleetAcker() {
  if (client_) client_->stop();
}

}  // namespace portier::bench
