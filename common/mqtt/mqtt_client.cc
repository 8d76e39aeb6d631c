// The MQTT client over Paho C++ (see mqtt_client.h): a connection thread
// that connects, watches and reconnects; Paho's threads deliver messages,
// PUBACKs and the loss of the connection.
#include "common/mqtt/mqtt_client.h"

#include <fcntl.h>
#include <mqtt/async_client.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "common/mqtt/backoff.h"

namespace portier::mqtt {
namespace {

constexpr char kWhere[] = "mqtt";
// TLS 1.2 minimum (see the header): every suite here is TLS 1.2 or newer.
constexpr char kTls12Ciphers[] = "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:@SECLEVEL=2";
constexpr int kReasonUnsupportedVersion = 0x84;  // MQTT 5 CONNACK
constexpr int kConnackBadVersion = 1;            // MQTT 3.1.1 CONNACK return code

Result<void> check_readable(const std::string& what, const std::string& path) {
  if (path.empty()) return fail(Errc::invalid_argument, kWhere, what, "no file given");
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail_errno(Errc::invalid_argument, kWhere, what + " " + path, errno);
  ::close(fd);
  return {};
}

// Paho reports the CONNACK's code as the return code (MQTT 5 and 3.1.1
// alike) or, for some paths, as the reason code.
bool refused_version(const ::mqtt::exception& e) {
  for (int code : {e.get_return_code(), e.get_reason_code()})
    if (code == kReasonUnsupportedVersion || code == kConnackBadVersion) return true;
  return false;
}

}  // namespace

Result<void> check_server_uri(const std::string& uri) {
  constexpr std::string_view scheme = "ssl://";
  if (!uri.starts_with(scheme))
    return fail(Errc::invalid_argument, kWhere, "server address '" + uri + "'",
                "only ssl://host:port is accepted (TLS with client certificates)");
  const std::string rest = uri.substr(scheme.size());
  const auto colon = rest.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == rest.size())
    return fail(Errc::invalid_argument, kWhere, "server address '" + uri + "'",
                "expected ssl://host:port");
  const std::string host = rest.substr(0, colon), port = rest.substr(colon + 1);
  if (port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
      std::stoi(port) < 1 || std::stoi(port) > 65535)
    return fail(Errc::invalid_argument, kWhere, "server address '" + uri + "'",
                "the port must be a number in 1..65535");
  if (host.find_first_of("/?#@ ") != std::string::npos)
    return fail(Errc::invalid_argument, kWhere, "server address '" + uri + "'",
                "the host may not hold '/', '?', '#', '@' or spaces");
  return {};
}

struct MqttClient::Impl : public ::mqtt::iaction_listener {
  ClientOptions options;
  ClientCallbacks callbacks;
  Backoff backoff;

  mutable std::mutex mu;
  std::condition_variable wake;
  bool stopping = false;
  bool lost = false;  // the current connection was lost
  std::string lost_reason;
  int version = 0;               // of the current connection, 0 when none
  std::uint64_t generation = 0;  // of the current Paho client: stale callbacks are ignored
  std::vector<std::pair<std::string, int>> subscriptions;
  std::shared_ptr<::mqtt::async_client> client;
  std::uint64_t next_publish = 1;
  std::map<std::uint64_t, PublishDone> in_flight;
  std::string tls_error;  // the last one Paho's TLS layer reported
  std::thread thread;

  Impl(ClientOptions o, ClientCallbacks c)
      : options(std::move(o)),
        callbacks(std::move(c)),
        backoff(options.backoff_min, options.backoff_max) {}

  void run();
  // One connection attempt at `mqtt_version`; the Paho client on success.
  Result<std::shared_ptr<::mqtt::async_client>> connect(int mqtt_version, std::uint64_t gen);
  ::mqtt::connect_options connect_options(int mqtt_version);
  void fail_in_flight(Errc code, const std::string& why);
  void wait_backoff();

  // PUBACK (or its failure) of the publish whose number is the context.
  // An MQTT 5 error reason in the PUBACK ("not authorized", "quota
  // exceeded") means the broker did not take the message.
  void on_success(const ::mqtt::token& tok) override { complete(tok, outcome(tok, true)); }
  void on_failure(const ::mqtt::token& tok) override { complete(tok, outcome(tok, false)); }
  static Result<void> outcome(const ::mqtt::token& tok, bool success) {
    const int reason = tok.get_reason_code();  // MQTTPP_V3_CODE (255): MQTT 3.1.1, no reason
    if (reason >= 0x80 && reason != ::mqtt::ReasonCode::MQTTPP_V3_CODE)
      return fail(Errc::permission_denied, kWhere, "publish",
                  "the broker refused it: " + ::mqtt::exception::reason_code_str(reason));
    if (success) return {};
    return fail(Errc::unavailable, kWhere, "publish",
                "not acknowledged (" + ::mqtt::exception::error_str(tok.get_return_code()) + ")");
  }
  void complete(const ::mqtt::token& tok, Result<void> outcome) {
    PublishDone done;
    {
      std::lock_guard lock(mu);
      auto it = in_flight.find(reinterpret_cast<std::uintptr_t>(tok.get_user_context()));
      if (it == in_flight.end()) return;  // failed already (lost connection, stop)
      done = std::move(it->second);
      in_flight.erase(it);
    }
    done(std::move(outcome));
  }
};

::mqtt::connect_options MqttClient::Impl::connect_options(int mqtt_version) {
  ::mqtt::ssl_options ssl;
  ssl.set_trust_store(options.tls.ca_file);
  ssl.set_key_store(options.tls.cert_file);
  ssl.set_private_key(options.tls.key_file);
  ssl.set_enable_server_cert_auth(true);
  ssl.set_verify(true);  // the broker's name or IP against its certificate
  // Ignored by Paho 1.3 with OpenSSL 3 (kTls12Ciphers sets the floor); kept
  // for a Paho that honours it.
  ssl.set_ssl_version(MQTT_SSL_VERSION_TLS_1_2);
  ssl.set_enabled_cipher_suites(kTls12Ciphers);
  ssl.set_error_handler([this](const std::string& msg) {
    std::lock_guard lock(mu);
    tls_error = msg;
  });

  ::mqtt::connect_options co;
  co.set_mqtt_version(mqtt_version);
  co.set_ssl(std::move(ssl));
  co.set_keep_alive_interval(options.keepalive);
  co.set_connect_timeout(options.connect_timeout);
  co.set_automatic_reconnect(false);
  co.set_max_inflight(options.max_in_flight);
  co.set_clean_session(false);
  if (mqtt_version >= MQTTVERSION_5) {
    co.set_clean_start(false);
    co.set_properties(
        {{::mqtt::property::SESSION_EXPIRY_INTERVAL, int32_t(options.session_expiry.count())},
         {::mqtt::property::MAXIMUM_PACKET_SIZE,
          // the payload plus room for the topic and properties
          int32_t(options.max_incoming_payload + 64 * 1024)}});
  }
  if (options.will)
    co.set_will(::mqtt::will_options(options.will->topic, options.will->payload, 1, true));
  return co;
}

Result<std::shared_ptr<::mqtt::async_client>> MqttClient::Impl::connect(int mqtt_version,
                                                                        std::uint64_t gen) {
  // Paho records every call of its own in a 400-entry trace ring (about
  // 122 KiB of heap, all of it written within seconds of idling) that only
  // its trace output reads: errors only keeps the ring nearly untouched
  // (idle RSS, bench/README.md) and saves that bookkeeping on every call.
  // Someone tracing Paho (MQTT_C_CLIENT_TRACE set) keeps its full trace.
  static std::once_flag quiet;
  std::call_once(quiet, [] {
    if (!std::getenv("MQTT_C_CLIENT_TRACE")) MQTTAsync_setTraceLevel(MQTTASYNC_TRACE_ERROR);
  });
  auto c = std::make_shared<::mqtt::async_client>(options.server_uri, options.client_id,
                                                  ::mqtt::create_options(mqtt_version), nullptr);
  c->set_connection_lost_handler([this, gen](const std::string& cause) {
    std::lock_guard lock(mu);
    if (gen != generation || lost) return;
    lost = true;
    lost_reason = cause.empty() ? "connection lost" : "connection lost: " + cause;
    wake.notify_all();
  });
  c->set_disconnected_handler([this, gen](const ::mqtt::properties&, ::mqtt::ReasonCode rc) {
    std::lock_guard lock(mu);
    if (gen != generation || lost) return;
    lost = true;
    lost_reason = "the broker disconnected: " + ::mqtt::exception::reason_code_str(rc);
    wake.notify_all();
  });
  c->set_message_callback([this](::mqtt::const_message_ptr m) {
    const auto& payload = m->get_payload();
    if (payload.size() > options.max_incoming_payload) {
      if (callbacks.oversized) callbacks.oversized(m->get_topic(), payload.size());
      return;
    }
    if (callbacks.message) callbacks.message(m->get_topic(), std::string(payload));
  });
  {
    std::lock_guard lock(mu);
    tls_error.clear();
  }
  try {
    auto tok = c->connect(connect_options(mqtt_version));
    // In slices, so that stop() need not wait for a broker that is slow to answer.
    const auto deadline =
        std::chrono::steady_clock::now() + options.connect_timeout + std::chrono::seconds(1);
    while (!tok->wait_for(std::chrono::milliseconds(100))) {
      if (std::lock_guard lock(mu); stopping)
        return fail(Errc::aborted, kWhere, "connect to " + options.server_uri, "stopped");
      if (std::chrono::steady_clock::now() > deadline)
        return fail(Errc::unavailable, kWhere, "connect to " + options.server_uri, "timed out");
    }
    return c;
  } catch (const ::mqtt::exception& e) {
    std::string why = e.what();
    {
      std::lock_guard lock(mu);
      if (!tls_error.empty()) why += " (TLS: " + tls_error + ")";
    }
    return fail(refused_version(e) ? Errc::failed_precondition : Errc::unavailable, kWhere,
                "connect to " + options.server_uri + " (MQTT " +
                    (mqtt_version >= MQTTVERSION_5 ? "5" : "3.1.1") + ")",
                why);
  } catch (const std::exception& e) {
    return fail(Errc::unavailable, kWhere, "connect to " + options.server_uri, e.what());
  }
}

void MqttClient::Impl::fail_in_flight(Errc code, const std::string& why) {
  std::map<std::uint64_t, PublishDone> failed;
  {
    std::lock_guard lock(mu);
    failed.swap(in_flight);
  }
  for (auto& [n, done] : failed) done(fail(code, kWhere, "publish", why));
}

void MqttClient::Impl::wait_backoff() {
  std::unique_lock lock(mu);
  wake.wait_for(lock, backoff.next(), [this] { return stopping; });
}

void MqttClient::Impl::run() {
  int mqtt_version = MQTTVERSION_5;
  for (;;) {
    std::uint64_t gen;
    {
      std::lock_guard lock(mu);
      if (stopping) return;
      gen = ++generation;
      lost = false;
    }
    auto c = connect(mqtt_version, gen);
    if (!c) {
      if (c.error().code == Errc::aborted) continue;  // stopping
      if (c.error().code == Errc::failed_precondition && mqtt_version == MQTTVERSION_5) {
        mqtt_version = MQTTVERSION_3_1_1;  // the broker speaks 3.1.1 only: at once
        continue;
      }
      if (callbacks.connect_failed) callbacks.connect_failed(c.error().message());
      wait_backoff();
      continue;
    }
    std::vector<std::pair<std::string, int>> subs;
    {
      std::lock_guard lock(mu);
      client = *c;
      version = mqtt_version;
      subs = subscriptions;
    }
    backoff.reset();
    for (const auto& [filter, qos] : subs) {
      try {
        (*c)->subscribe(filter, qos)->wait_for(options.connect_timeout);
      } catch (const std::exception&) {
        // the loss of the connection is reported by the handler
      }
    }
    if (callbacks.connected) callbacks.connected(mqtt_version);

    std::unique_lock lock(mu);
    wake.wait(lock, [this] { return stopping || lost; });
    const bool clean = stopping && !lost;
    const std::string reason = lost ? lost_reason : "stopped";
    version = 0;
    client.reset();
    lock.unlock();

    if (clean) {
      try {
        (*c)->disconnect(::mqtt::disconnect_options(std::chrono::seconds(2)))
            ->wait_for(std::chrono::seconds(3));
      } catch (const std::exception&) {
      }
    }
    fail_in_flight(clean ? Errc::aborted : Errc::unavailable, reason);
    if (callbacks.disconnected) callbacks.disconnected(reason);
    c->reset();  // destroys the Paho client outside any of its callbacks
    if (!clean) wait_backoff();
  }
}

Result<std::unique_ptr<MqttClient>> MqttClient::create(ClientOptions options,
                                                       ClientCallbacks callbacks) {
  PORTIER_TRY(check_server_uri(options.server_uri));
  PORTIER_TRY(check_readable("CA file", options.tls.ca_file));
  PORTIER_TRY(check_readable("client certificate", options.tls.cert_file));
  PORTIER_TRY(check_readable("client key", options.tls.key_file));
  if (options.client_id.empty() || options.client_id.size() > 128)
    return fail(
        Errc::invalid_argument, kWhere, "client id",
        "must hold 1 to 128 bytes (it has " + std::to_string(options.client_id.size()) + ")");
  if (options.max_in_flight < 1 || options.max_in_flight > 65535)
    return fail(Errc::invalid_argument, kWhere, "max_in_flight", "must be in 1..65535");
  if (options.max_incoming_payload < 1 || options.max_incoming_payload > (256u << 20))
    return fail(Errc::invalid_argument, kWhere, "max_incoming_payload",
                "must be in 1 byte..256 MiB");
  if (options.will && options.will->topic.empty())
    return fail(Errc::invalid_argument, kWhere, "last will", "has no topic");
  return std::unique_ptr<MqttClient>(
      new MqttClient(std::make_unique<Impl>(std::move(options), std::move(callbacks))));
}

MqttClient::MqttClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

MqttClient::~MqttClient() { stop(); }

void MqttClient::subscribe(const std::string& filter, int qos) {
  std::shared_ptr<::mqtt::async_client> c;
  {
    std::lock_guard lock(impl_->mu);
    impl_->subscriptions.emplace_back(filter, qos);
    c = impl_->client;
  }
  if (!c) return;
  try {
    c->subscribe(filter, qos);
  } catch (const std::exception&) {
    // subscribed again at the next connection
  }
}

void MqttClient::start() {
  std::lock_guard lock(impl_->mu);
  if (impl_->thread.joinable() || impl_->stopping) return;
  impl_->thread = std::thread([impl = impl_.get()] { impl->run(); });
}

void MqttClient::stop() {
  {
    std::lock_guard lock(impl_->mu);
    impl_->stopping = true;
    impl_->wake.notify_all();
  }
  if (impl_->thread.joinable()) impl_->thread.join();
  impl_->fail_in_flight(Errc::aborted, "stopped");
}

Result<void> MqttClient::publish(const std::string& topic, std::string payload, bool retained,
                                 PublishDone done) {
  std::shared_ptr<::mqtt::async_client> c;
  std::uint64_t n;
  {
    std::lock_guard lock(impl_->mu);
    if (!impl_->client || impl_->lost)
      return fail(Errc::unavailable, kWhere, "publish to " + topic, "not connected");
    if (impl_->in_flight.size() >= std::size_t(impl_->options.max_in_flight))
      return fail(Errc::resource_exhausted, kWhere, "publish to " + topic,
                  std::to_string(impl_->in_flight.size()) + " publishes await their PUBACK");
    c = impl_->client;
    n = impl_->next_publish++;
    impl_->in_flight.emplace(n, std::move(done));
  }
  try {
    auto msg = ::mqtt::make_message(topic, std::move(payload), 1, retained);
    c->publish(msg, reinterpret_cast<void*>(std::uintptr_t(n)), *impl_);
    return {};
  } catch (const std::exception& e) {
    std::lock_guard lock(impl_->mu);
    impl_->in_flight.erase(n);  // not handed to Paho: the caller gets the error, not `done`
    return fail(Errc::unavailable, kWhere, "publish to " + topic, e.what());
  }
}

bool MqttClient::connected() const {
  std::lock_guard lock(impl_->mu);
  return impl_->client && !impl_->lost;
}

int MqttClient::mqtt_version() const {
  std::lock_guard lock(impl_->mu);
  return impl_->version;
}

}  // namespace portier::mqtt
