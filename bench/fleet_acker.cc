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
    // Each envelope named by its body's chain digest (SM3 for an SM2
    // terminal, as its signatures show, else SHA-256), as portier-fleet does.
    std::vector<std::uint64_t> sequences;
    std::map<std::uint64_t, std::string> bodies;
    auto algo = crypto::DigestAlgo::sha256;
    for (const auto& e : run.envelopes()) {
      v1::Envelope env;
      v1::EnvelopeBody body;
      if (env.ParseFromString(e) && body.ParseFromString(env.body())) {
        sequences.push_back(body.sequence());
        bodies[body.sequence()] = env.body();
        if (env.has_signature() && env.signature().algorithm() == v1::SM2_SM3) {
          algo = crypto::DigestAlgo::sm3;
        }
      }
    }
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
    if (ack && client_->publish(prefix + terminal + "/down/ack", std::move(*ack), false,
                                [](Result<void>) {})) {
      acked_ += n;
      ++messages_;
    }
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
