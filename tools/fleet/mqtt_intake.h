// The fleet's MQTT side (issue 10, item 8): subscribes to every terminal's
// up/ and state topics of one fleet at the broker, hands each message to
// the Receiver with the terminal id of its topic (the broker's ACL lets a
// terminal publish only under its own id; the Receiver checks the body
// names the same terminal and carries that terminal's signature anyway),
// acknowledges what it stored on the terminal's down/ack topic with a
// SignedAcknowledgement (agent/link/ack_signing.h: ranges of sequences,
// signed by the fleet's command key; only then does the terminal delete
// them from its outbox), and publishes signed commands on a terminal's
// down/cmd topic. A message on up/run carries a run of envelopes
// (EnvelopeRun), stored in one transaction; one on up/<kind> a single
// envelope (as older terminals sent them). With MQTT 5
// it subscribes as a shared subscription ($share/portier-fleet/...), so
// several fleet workers on one store split the load.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "agent/link/ack_signing.h"
#include "common/mqtt/mqtt_client.h"
#include "tools/fleet/receiver.h"

namespace portier::fleet {

struct MqttIntakeOptions {
  std::string server_uri;  // ssl://host:port
  std::string fleet;
  mqtt::TlsFiles tls;
  std::string client_id;  // the broker keeps this session's messages while it is away
  bool shared = true;     // a shared subscription (MQTT 5)
  std::shared_ptr<const link::AckSigner> acks;  // signs the acknowledgements (required)
  std::size_t max_message_bytes = 1u << 20;     // larger messages are dropped by the client
};

struct IntakeStats {
  std::uint64_t received = 0, accepted = 0, rejected = 0;
};

class MqttIntake {
 public:
  static Result<std::unique_ptr<MqttIntake>> create(MqttIntakeOptions options, Receiver& receiver,
                                                    std::function<void(const std::string&)> log);
  ~MqttIntake();
  void start();
  void stop();
  bool connected() const;
  // Publishes a serialized SignedCommand to the terminal's down/cmd topic
  // (QoS 1; the broker keeps it for the terminal's persistent session).
  Result<void> send_command(const std::string& terminal_id, std::string signed_command);
  IntakeStats stats() const;

 private:
  MqttIntake(MqttIntakeOptions options, Receiver& receiver,
             std::function<void(const std::string&)> log)
      : options_(std::move(options)), receiver_(receiver), log_(std::move(log)) {}
  void on_message(const std::string& topic, std::string payload);

  MqttIntakeOptions options_;
  Receiver& receiver_;
  std::function<void(const std::string&)> log_;
  std::unique_ptr<mqtt::MqttClient> client_;
  std::atomic<std::uint64_t> received_{0}, accepted_{0}, rejected_{0};
};

}  // namespace portier::fleet
