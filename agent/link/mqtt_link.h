// The MQTT kind of the management link (issue 10): envelopes up and signed
// commands down through a broker, over common/mqtt's client (TLS 1.2+ with
// client certificates only, MQTT 5 with a 3.1.1 fallback, a persistent
// session, reconnection with backoff and jitter).
//
// Topics (<fleet> and <terminal> as checked by check_topic_id):
//   portier/v1/<fleet>/<terminal>/up/run      terminal -> fleet, QoS 1, not
//       retained: one serialized portier.v1.EnvelopeRun, a run of
//       envelopes in sequence order (Outgoing::bytes).
//   portier/v1/<fleet>/<terminal>/down/cmd    fleet -> terminal, QoS 1: one
//       serialized portier.v1.SignedCommand (verified by the agent, never
//       by the link); subscribed on every connection, at most
//       max_command_bytes.
//   portier/v1/<fleet>/<terminal>/down/ack    fleet -> terminal, QoS 1: one
//       serialized portier.v1.SignedAcknowledgement naming the ranges of
//       sequences the fleet stored, signed by a fleet key chained to the
//       terminal's command_trust_anchors: only then does an envelope leave
//       the outbox (the broker's PUBACK says only that the broker has it).
//       Handed to LinkHandler::on_acknowledgement as received (at most
//       max_ack_bytes); the agent verifies it (ack_verifier.h), so a broker
//       that forges one deletes nothing.
//   portier/v1/<fleet>/<terminal>/state       terminal -> fleet, QoS 1,
//       retained: the ASCII text "online" (published at every connection),
//       "offline" (published by stop() before its clean DISCONNECT), or else
//       a serialized portier.v1.Offline, signed by the device key: the last
//       will, which the broker publishes when the terminal vanished without
//       a DISCONNECT. The two markers are not signed: they are as good as
//       the broker's ACL, which lets only the terminal write its own topics.
// The MQTT client id is "portier-<fleet>-<terminal>" (the broker's session).
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/link/link.h"
#include "common/mqtt/mqtt_client.h"

namespace portier::link {

struct MqttLinkOptions {
  std::string server_uri;  // ssl://host:port
  std::string fleet;
  std::string terminal_id;
  mqtt::TlsFiles tls;
  std::string will_payload;  // a serialized portier.v1.Offline
  std::chrono::milliseconds backoff_min{500};
  std::chrono::milliseconds backoff_max{60'000};
  int max_in_flight = 64;
  std::size_t max_command_bytes = 256 * 1024;
  std::size_t max_ack_bytes = 64 * 1024;
};

// A fleet or terminal id, or a kind, that may stand as one topic level:
// 1 to 64 bytes of [A-Za-z0-9._-], not "." or "..": no wildcard ('+',
// '#'), no level separator, no NUL, no '$' (the broker's own topics).
Result<void> check_topic_id(std::string_view what, std::string_view id);

// "portier/v1/<fleet>/<terminal>/" (ids unchecked).
std::string topic_prefix(const std::string& fleet, const std::string& terminal_id);

class MqttLink : public Link {
 public:
  static Result<std::unique_ptr<MqttLink>> create(MqttLinkOptions options);
  ~MqttLink() override;

  Result<void> start(LinkHandler& handler) override;
  void stop() override;
  Result<void> send(const Outgoing& message) override;
  bool connected() const override;

  struct Impl;

 private:
  explicit MqttLink(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace portier::link
