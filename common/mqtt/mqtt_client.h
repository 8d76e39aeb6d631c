// A small MQTT client over Eclipse Paho C++ (mqtt::async_client), shared by
// the terminal's link (agent/link/mqtt_link) and the fleet's receiver.
//
// What it enforces, whatever the caller asks:
// - TLS only (ssl://host:port; tcp://, ws:// and the rest are refused), with
//   mutual authentication: the broker's certificate is verified against the
//   configured CA and its name against the host, and the client presents its
//   own certificate. TLS 1.2 or newer: Paho 1.3 ignores its ssl_version with
//   OpenSSL 3, so the minimum is enforced by the cipher list, which holds
//   only AEAD suites with ECDHE (none of them exists before TLS 1.2; TLS 1.3
//   suites are configured apart and stay on).
// - MQTT 5 first, MQTT 3.1.1 when the broker refuses version 5 (CONNACK
//   "unacceptable protocol version" / "unsupported protocol version"), at
//   once and for the rest of this client's life.
// - A persistent session (clean start off; session expiry for MQTT 5), and
//   no Paho persistence on disk: the caller's store resends after a
//   reconnection (each connection uses a fresh Paho client, so Paho never
//   resends on its own and nothing is delivered twice by the library).
// - Reconnection by its own loop with exponential backoff and full jitter
//   (backoff.h), not Paho's automatic reconnect (which has no jitter).
// - QoS 1 publishes, at most max_in_flight awaiting their PUBACK; a PUBACK
//   with an MQTT 5 error reason (e.g. "not authorized") is a failure.
// - Incoming payloads above max_incoming_payload are dropped and reported:
//   a hostile broker may send anything. (MQTT 5 also tells the broker the
//   limit, as the Maximum Packet Size; Paho still reads what arrives.)
//
// Threads: one connection thread of its own plus Paho's; every callback is
// called from one of them, must not block for long and must not call stop().
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "common/result.h"

namespace portier::mqtt {

struct TlsFiles {
  std::string ca_file;    // the CA(s) the broker's certificate must chain to (PEM)
  std::string cert_file;  // this client's certificate (chain), PEM
  std::string key_file;   // its private key, PEM
};

// Published by the broker (QoS 1, retained) when the connection is lost
// without a DISCONNECT; never after stop().
struct Will {
  std::string topic;
  std::string payload;
};

struct ClientOptions {
  std::string server_uri;  // ssl://host:port
  std::string client_id;   // also the broker's session key
  TlsFiles tls;
  std::optional<Will> will;
  std::chrono::seconds keepalive{30};
  std::chrono::seconds session_expiry{7 * 24 * 3600};  // MQTT 5: how long the broker keeps it
  std::chrono::seconds connect_timeout{10};
  std::chrono::milliseconds backoff_min{500};
  std::chrono::milliseconds backoff_max{60'000};
  int max_in_flight = 64;
  std::size_t max_incoming_payload = 256 * 1024;
};

struct ClientCallbacks {
  std::function<void(int mqtt_version)> connected;                // 5, or 4 for 3.1.1
  std::function<void(const std::string& reason)> disconnected;    // only after connected
  std::function<void(const std::string& reason)> connect_failed;  // each failed attempt
  std::function<void(const std::string& topic, std::string payload)> message;
  std::function<void(const std::string& topic, std::size_t size)> oversized;  // dropped
};

// The outcome of one publish: success on PUBACK; unavailable when the
// connection was lost first, aborted at stop(), permission_denied when the
// broker refused it (MQTT 5 reason code).
using PublishDone = std::function<void(Result<void>)>;

class MqttClient {
 public:
  // Checks what can never work (address, TLS files, client id, limits).
  static Result<std::unique_ptr<MqttClient>> create(ClientOptions options,
                                                    ClientCallbacks callbacks);
  ~MqttClient();  // stop()

  // Subscribed (QoS `qos`) on every connection from now on, and at once
  // when connected. Call before start() for no gap.
  void subscribe(const std::string& filter, int qos = 1);

  // Connects in the background and keeps reconnecting until stop().
  void start();
  // Disconnects cleanly (a DISCONNECT: no last will), fails what waits for
  // a PUBACK (aborted) and joins; no callback after it returns. Idempotent.
  void stop();

  // QoS 1. unavailable while disconnected; resource_exhausted when
  // max_in_flight publishes wait for their PUBACK. `done` is called exactly
  // once when this returns success, never when it returns an error.
  Result<void> publish(const std::string& topic, std::string payload, bool retained,
                       PublishDone done);

  bool connected() const;
  int mqtt_version() const;  // of the current connection; 0 when none

  struct Impl;

 private:
  explicit MqttClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// "ssl://host:port" with a port in 1..65535, else why not.
Result<void> check_server_uri(const std::string& uri);

}  // namespace portier::mqtt
