// The MQTT management link (see mqtt_link.h).
#include "agent/link/mqtt_link.h"

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <vector>

namespace portier::link {
namespace {

constexpr char kWhere[] = "mqtt link";
constexpr std::size_t kMaxIdBytes = 64;
constexpr char kOnline[] = "online";
constexpr char kOffline[] = "offline";
constexpr auto kGoodbyeWait = std::chrono::seconds(2);

}  // namespace

Result<void> check_topic_id(std::string_view what, std::string_view id) {
  const std::string shown = std::string(what);
  if (id.empty() || id.size() > kMaxIdBytes)
    return fail(Errc::invalid_argument, kWhere, shown,
                "must hold 1 to 64 bytes (it has " + std::to_string(id.size()) + ")");
  for (unsigned char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok)
      return fail(Errc::invalid_argument, kWhere, shown,
                  "may hold only letters, digits, '.', '_' and '-' (byte " + std::to_string(c) +
                      " is not)");
  }
  if (id == "." || id == "..")
    return fail(Errc::invalid_argument, kWhere, shown, "may not be '.' or '..'");
  return {};
}

std::string topic_prefix(const std::string& fleet, const std::string& terminal_id) {
  return "portier/v1/" + fleet + "/" + terminal_id + "/";
}

struct MqttLink::Impl {
  MqttLinkOptions options;
  std::string prefix, run_topic, cmd_topic, ack_topic, state_topic;
  std::unique_ptr<mqtt::MqttClient> client;

  std::mutex mu;
  LinkHandler* handler = nullptr;  // null once stopped: no call after stop()

  template <class F>
  void with_handler(F f) {
    LinkHandler* h;
    {
      std::lock_guard lock(mu);
      h = handler;
    }
    if (h) f(*h);
  }
};

Result<std::unique_ptr<MqttLink>> MqttLink::create(MqttLinkOptions options) {
  PORTIER_TRY(check_topic_id("fleet id '" + options.fleet + "'", options.fleet));
  PORTIER_TRY(check_topic_id("terminal id '" + options.terminal_id + "'", options.terminal_id));
  PORTIER_TRY(mqtt::check_server_uri(options.server_uri));
  if (options.will_payload.empty())
    return fail(Errc::invalid_argument, kWhere, "last will", "no Offline message given");
  auto impl = std::make_unique<Impl>();
  impl->prefix = topic_prefix(options.fleet, options.terminal_id);
  impl->run_topic = impl->prefix + "up/run";
  impl->cmd_topic = impl->prefix + "down/cmd";
  impl->ack_topic = impl->prefix + "down/ack";
  impl->state_topic = impl->prefix + "state";
  impl->options = std::move(options);
  return std::unique_ptr<MqttLink>(new MqttLink(std::move(impl)));
}

MqttLink::MqttLink(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

MqttLink::~MqttLink() { stop(); }

Result<void> MqttLink::start(LinkHandler& handler) {
  if (impl_->client) return fail(Errc::failed_precondition, kWhere, "start", "started already");
  const auto& o = impl_->options;
  mqtt::ClientOptions co;
  co.server_uri = o.server_uri;
  co.client_id = "portier-" + o.fleet + "-" + o.terminal_id;
  co.tls = o.tls;
  co.will = mqtt::Will{impl_->state_topic, o.will_payload};
  co.backoff_min = o.backoff_min;
  co.backoff_max = o.backoff_max;
  co.max_in_flight = o.max_in_flight;
  co.max_incoming_payload = std::max(o.max_command_bytes, o.max_ack_bytes);

  Impl* impl = impl_.get();
  mqtt::ClientCallbacks cb;
  cb.connected = [impl](int) {
    // Not waited for: a lost "online" is replaced at the next connection.
    (void)impl->client->publish(impl->state_topic, kOnline, true, [](Result<void>) {});
    impl->with_handler([](LinkHandler& h) { h.on_connected(); });
  };
  cb.disconnected = [impl](const std::string& reason) {
    impl->with_handler([&](LinkHandler& h) { h.on_disconnected(reason); });
  };
  cb.message = [impl](const std::string& topic, std::string payload) {
    if (topic == impl->ack_topic) {
      // Verified by the handler (ack_verifier.h), never here.
      if (payload.size() > impl->options.max_ack_bytes) return;
      impl->with_handler([&](LinkHandler& h) { h.on_acknowledgement(std::move(payload)); });
      return;
    }
    // Only what we subscribed to is ours; the client's own limit is the
    // larger of the two.
    if (topic != impl->cmd_topic || payload.size() > impl->options.max_command_bytes) return;
    impl->with_handler([&](LinkHandler& h) { h.on_command(std::move(payload)); });
  };
  auto client = mqtt::MqttClient::create(std::move(co), std::move(cb));
  if (!client) return std::unexpected(client.error().with_context(kWhere));
  {
    std::lock_guard lock(impl_->mu);
    impl_->handler = &handler;
  }
  impl_->client = std::move(*client);
  impl_->client->subscribe(impl_->cmd_topic, 1);
  impl_->client->subscribe(impl_->ack_topic, 1);
  impl_->client->start();
  return {};
}

void MqttLink::stop() {
  if (!impl_->client) return;
  // The fleet learns of a clean stop from the retained state; then a
  // DISCONNECT, so the broker drops the last will.
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  auto goodbye = impl_->client->publish(impl_->state_topic, kOffline, true, [&](Result<void>) {
    std::lock_guard lock(mu);
    done = true;
    cv.notify_all();
  });
  if (goodbye) {
    std::unique_lock lock(mu);
    cv.wait_for(lock, kGoodbyeWait, [&] { return done; });
  }
  {
    std::lock_guard lock(impl_->mu);
    impl_->handler = nullptr;
  }
  impl_->client->stop();  // fails the goodbye if still waiting: `done` is set before it returns
  impl_->client.reset();
}

Result<void> MqttLink::send(const Outgoing& message) {
  if (!impl_->client) return fail(Errc::failed_precondition, kWhere, "send", "not started");
  // The broker's PUBACK only says the broker has it; the records leave the
  // outbox when the fleet says it stored them (a signed down/ack).
  return with_context(
      impl_->client->publish(impl_->run_topic, message.bytes, false, [](Result<void>) {}), kWhere);
}

bool MqttLink::connected() const { return impl_->client && impl_->client->connected(); }

}  // namespace portier::link
