// The fleet's side of the MQTT link tests, on common/mqtt's client: what
// arrived on which topic, and commands to send.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "common/mqtt/mqtt_client.h"
#include "support/mosquitto_broker.h"

namespace portier::link {

// The fleet's side, on common/mqtt's client: what arrived on which topic.
struct Fleet {
  std::mutex mu;
  std::condition_variable cv;
  bool up = false;
  std::vector<std::pair<std::string, std::string>> messages;
  std::unique_ptr<mqtt::MqttClient> client;

  // Connects as the client certificate `name` of `tls` and subscribes.
  Fleet(const std::string& uri, const portier::test::TestTls& tls,
        const std::vector<std::string>& filters, const std::string& name = "fleet") {
    mqtt::ClientOptions o;
    o.server_uri = uri;
    o.client_id = "test-" + name;
    o.tls = {tls.ca_file, tls.cert(name), tls.key(name)};
    o.backoff_min = std::chrono::milliseconds(50);
    o.backoff_max = std::chrono::milliseconds(400);
    mqtt::ClientCallbacks cb;
    cb.connected = [this](int) { add([&] { up = true; }); };
    cb.message = [this](const std::string& t, std::string p) {
      add([&] { messages.emplace_back(t, std::move(p)); });
    };
    auto c = mqtt::MqttClient::create(o, cb);
    EXPECT_TRUE(c) << c.error().message();
    client = std::move(*c);
    for (const auto& f : filters) client->subscribe(f, 1);
    client->start();
    EXPECT_TRUE(wait([&] { return up; }));
  }
  template <class F>
  void add(F f) {
    std::lock_guard lock(mu);
    f();
    cv.notify_all();
  }
  template <class P>
  bool wait(P pred, std::chrono::seconds timeout = std::chrono::seconds(20)) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, timeout, pred);
  }
  bool has(const std::string& topic, const std::string& payload) {
    for (const auto& m : messages)
      if (m.first == topic && m.second == payload) return true;
    return false;
  }
  void publish(const std::string& topic, const std::string& payload) {
    ASSERT_TRUE(client->publish(topic, payload, false, [](Result<void>) {}));
  }
};

}  // namespace portier::link
