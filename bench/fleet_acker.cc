#include "fleet_acker.h"

#include <chrono>
#include <stdexcept>
#include <thread>

#include "portier/v1/envelope.pb.h"

namespace portier::bench {

FleetAcker::FleetAcker(const std::string& uri, const std::string& fleet, mqtt::TlsFiles tls)
    : fleet_(fleet) {
  mqtt::ClientOptions o;
  o.server_uri = uri;
  o.client_id = "portier-fleet-bench-acker";
  o.tls = std::move(tls);
  o.max_in_flight = 4096;
  o.max_incoming_payload = 1 << 20;
  mqtt::ClientCallbacks cb;
  cb.message = [this](const std::string& topic, std::string payload) {
    // portier/v1/<fleet>/<terminal>/up/<kind>
    const std::string prefix = "portier/v1/" + fleet_ + "/";
    const auto rest = topic.substr(prefix.size());
    const auto terminal = rest.substr(0, rest.find('/'));
    v1::Envelope env;
    v1::EnvelopeBody body;
    if (!env.ParseFromString(payload) || !body.ParseFromString(env.body())) return;
    if (client_->publish(prefix + terminal + "/down/ack", std::to_string(body.sequence()), false,
                         [](Result<void>) {})) {
      ++acked_;
    }
  };
  auto c = mqtt::MqttClient::create(std::move(o), std::move(cb));
  if (!c) throw std::runtime_error("fleet acker: " + c.error().message());
  client_ = std::move(*c);
  client_->subscribe("portier/v1/" + fleet + "/+/up/+", 1);
  client_->start();
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
