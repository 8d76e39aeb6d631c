#include "tools/fleet/mqtt_intake.h"

#include <future>

#include "agent/link/mqtt_link.h"
#include "tools/fleet/fleet_ack.h"

namespace portier::fleet {

Result<std::unique_ptr<MqttIntake>> MqttIntake::create(
    MqttIntakeOptions options, Receiver& receiver, std::function<void(const std::string&)> log) {
  PORTIER_TRY(link::check_topic_id("fleet", options.fleet));
  if (!options.acks) {
    return fail(Errc::invalid_argument, "mqtt intake", "acks", "no acknowledgement signer given");
  }
  std::unique_ptr<MqttIntake> in(new MqttIntake(std::move(options), receiver, std::move(log)));
  mqtt::ClientOptions co;
  co.server_uri = in->options_.server_uri;
  co.client_id = in->options_.client_id;
  co.tls = in->options_.tls;
  co.max_incoming_payload = in->options_.max_message_bytes;
  co.max_in_flight = 1024;  // acknowledgements for many terminals
  mqtt::ClientCallbacks cb;
  auto* self = in.get();
  cb.message = [self](const std::string& topic, std::string payload) {
    self->on_message(topic, std::move(payload));
  };
  cb.connected = [self](int v) { self->log_("mqtt: connected (MQTT " + std::to_string(v) + ")"); };
  cb.disconnected = [self](const std::string& r) { self->log_("mqtt: disconnected: " + r); };
  cb.connect_failed = [self](const std::string& r) { self->log_("mqtt: cannot connect: " + r); };
  auto client = mqtt::MqttClient::create(std::move(co), std::move(cb));
  if (!client) return std::unexpected(client.error());
  in->client_ = std::move(*client);
  const std::string base = "portier/v1/" + in->options_.fleet + "/+/";
  const std::string share = in->options_.shared ? "$share/portier-fleet/" : "";
  in->client_->subscribe(share + base + "up/+", 1);
  in->client_->subscribe(share + base + "state", 1);
  return in;
}

MqttIntake::~MqttIntake() { stop(); }

void MqttIntake::start() { client_->start(); }

void MqttIntake::stop() {
  if (client_) client_->stop();
}

bool MqttIntake::connected() const { return client_ && client_->connected(); }

IntakeStats MqttIntake::stats() const { return {received_, accepted_, rejected_}; }

void MqttIntake::on_message(const std::string& topic, std::string payload) {
  ++received_;
  // portier/v1/<fleet>/<terminal>/up/<kind> or .../state
  const std::string prefix = "portier/v1/" + options_.fleet + "/";
  if (topic.rfind(prefix, 0) != 0) {
    ++rejected_;
    return;
  }
  const auto rest = topic.substr(prefix.size());
  const auto slash = rest.find('/');
  if (slash == std::string::npos) {
    ++rejected_;
    return;
  }
  const std::string terminal = rest.substr(0, slash);
  const std::string tail = rest.substr(slash + 1);
  std::string kind;
  if (tail.rfind("up/", 0) == 0) {
    kind = tail.substr(3);
  } else if (tail == "state") {
    if (payload == "online" || payload == "offline") return;  // unsigned markers: informative
    kind = "offline";
  } else {
    ++rejected_;
    return;
  }
  if (!link::check_topic_id("terminal", terminal) || !link::check_topic_id("kind", kind)) {
    ++rejected_;
    log_("mqtt: message on an unusable topic refused: " + topic);
    return;
  }
  auto in = receiver_.receive_message(terminal, kind, payload, std::chrono::system_clock::now());
  if (in.refused.empty()) {
    ++accepted_;
  } else {
    ++rejected_;
    log_(
        "mqtt: " + terminal + " " + kind + ": " + in.refused.front().message() +
        (in.refused.size() > 1 ? " (and " + std::to_string(in.refused.size() - 1) + " more)" : ""));
  }
  // Only what the store holds may leave the terminal's outbox (see
  // Receiver::receive_message), and only on the fleet's signature.
  if (in.acknowledge.empty()) return;
  auto ack = sign_stored(*options_.acks, receiver_, terminal, std::move(in.acknowledge),
                         std::chrono::system_clock::now());
  if (!ack) {
    log_("mqtt: cannot sign the acknowledgement for " + terminal + ": " + ack.error().message());
    return;
  }
  if (!*ack) return;
  (void)client_->publish("portier/v1/" + options_.fleet + "/" + terminal + "/down/ack",
                         std::move(**ack), false, [](Result<void>) {});
}

Result<void> MqttIntake::send_command(const std::string& terminal_id, std::string signed_command) {
  PORTIER_TRY(link::check_topic_id("terminal", terminal_id));
  // Delivered once the broker has it (PUBACK): it keeps it for the
  // terminal's persistent session.
  auto done = std::make_shared<std::promise<Result<void>>>();
  auto result = done->get_future();
  PORTIER_TRY(client_->publish("portier/v1/" + options_.fleet + "/" + terminal_id + "/down/cmd",
                               std::move(signed_command), false,
                               [done](Result<void> r) { done->set_value(std::move(r)); }));
  if (result.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
    return fail_msg(Errc::unavailable, "the broker did not acknowledge the command in 10 s");
  }
  return result.get();
}

}  // namespace portier::fleet
