// The MQTT client against a real Mosquitto with mutual TLS, and against
// hostile or outdated brokers played by `openssl s_server`: what it refuses
// (plaintext, TLS 1.1, a certificate of another CA, oversized payloads) and
// what it survives (a broker restart, a broker that speaks only 3.1.1).
#include "common/mqtt/mqtt_client.h"

#include <MQTTAsync.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <sstream>

#include "common/mqtt/tls_fake_broker.h"
#include "policy/temp_dir.h"
#include "support/mosquitto_broker.h"

extern char** environ;

namespace portier::mqtt {
namespace {

using namespace std::chrono_literals;
using portier::policy::testing::TempDir;
using portier::test::MosquittoBroker;
using portier::test::protocol_level;
using portier::test::TestTls;
using portier::test::TlsFakeBroker;
using portier::test::write_test_cert;

// What the client reported, for tests to wait on.
struct Recorder {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<int> connected;  // MQTT versions
  std::vector<std::string> disconnected, failed;
  std::vector<std::pair<std::string, std::string>> messages;
  std::vector<std::pair<std::string, std::size_t>> oversized;

  ClientCallbacks callbacks() {
    ClientCallbacks c;
    c.connected = [this](int v) { add([&] { connected.push_back(v); }); };
    c.disconnected = [this](const std::string& r) { add([&] { disconnected.push_back(r); }); };
    c.connect_failed = [this](const std::string& r) { add([&] { failed.push_back(r); }); };
    c.message = [this](const std::string& t, std::string p) {
      add([&] { messages.emplace_back(t, std::move(p)); });
    };
    c.oversized = [this](const std::string& t, std::size_t n) {
      add([&] { oversized.emplace_back(t, n); });
    };
    return c;
  }
  template <class F>
  void add(F f) {
    std::lock_guard lock(mu);
    f();
    cv.notify_all();
  }
  template <class P>
  bool wait(P pred, std::chrono::seconds timeout = 20s) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, timeout, pred);
  }
};

// Waits for the outcome of one publish.
struct Outcome {
  std::mutex mu;
  std::condition_variable cv;
  std::optional<Result<void>> result;
  PublishDone done() {
    return [this](Result<void> r) {
      std::lock_guard lock(mu);
      result = std::move(r);
      cv.notify_all();
    };
  }
  std::optional<Result<void>> wait(std::chrono::seconds timeout = 20s) {
    std::unique_lock lock(mu);
    cv.wait_for(lock, timeout, [&] { return result.has_value(); });
    return result;
  }
};

ClientOptions options_for(const std::string& uri, const TestTls& tls, const std::string& name) {
  ClientOptions o;
  o.server_uri = uri;
  o.client_id = "test-" + name;
  o.tls = {tls.ca_file, tls.cert(name), tls.key(name)};
  o.backoff_min = 50ms;
  o.backoff_max = 400ms;
  o.connect_timeout = 5s;
  return o;
}

std::unique_ptr<MqttClient> make_client(ClientOptions o, Recorder& r) {
  auto c = MqttClient::create(std::move(o), r.callbacks());
  EXPECT_TRUE(c) << c.error().message();
  return c ? std::move(*c) : nullptr;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class MqttClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tls_ = portier::test::write_test_tls(dir_.path(), {"t-0001", "fleet"});
    broker_ = std::make_unique<MosquittoBroker>(dir_.path(), tls_);
    ASSERT_TRUE(broker_->start());
  }

  TempDir dir_;
  TestTls tls_;
  std::unique_ptr<MosquittoBroker> broker_;
};

TEST(MqttServerUri, OnlySslWithHostAndPortIsAccepted) {
  EXPECT_TRUE(check_server_uri("ssl://broker.example:8883"));
  EXPECT_TRUE(check_server_uri("ssl://127.0.0.1:1"));
  for (const char* bad : {"tcp://broker:1883", "mqtt://broker:1883", "ws://broker:80",
                          "wss://broker:443", "broker:8883", "ssl://broker", "ssl://:8883",
                          "ssl://broker:0", "ssl://broker:65536", "ssl://broker:88a3",
                          "ssl://broker:8883/x", "ssl://user@broker:8883", "SSL://broker:8883"}) {
    auto r = check_server_uri(bad);
    EXPECT_FALSE(r) << bad;
    if (!r) {
      EXPECT_EQ(r.error().code, Errc::invalid_argument);
      EXPECT_NE(r.error().message().find(bad), std::string::npos) << r.error().message();
    }
  }
}

TEST(MqttClientOptions, PlaintextAndMissingTlsFilesAreRefusedAtCreate_REQ20) {
  TempDir dir;
  auto tls = portier::test::write_test_tls(dir.path(), {"t-0001"});
  Recorder r;
  auto o = options_for("tcp://127.0.0.1:1883", tls, "t-0001");
  auto c = MqttClient::create(o, r.callbacks());
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().message().find("ssl://"), std::string::npos) << c.error().message();

  o = options_for("ssl://127.0.0.1:8883", tls, "t-0001");
  o.tls.key_file = dir.path() + "/nonexistent.key";
  c = MqttClient::create(o, r.callbacks());
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().message().find("nonexistent.key"), std::string::npos);

  o = options_for("ssl://127.0.0.1:8883", tls, "t-0001");
  o.tls.cert_file.clear();  // no client certificate: mutual TLS only
  EXPECT_FALSE(MqttClient::create(o, r.callbacks()));
}

TEST_F(MqttClientTest, MutualTlsPublishAtQos1IsAcknowledgedAndDelivered_REQ20) {
  Recorder fleet_events, terminal_events;
  auto fleet = make_client(options_for(broker_->uri(), tls_, "fleet"), fleet_events);
  fleet->subscribe("portier/v1/+/+/up/#", 1);
  fleet->start();
  auto terminal = make_client(options_for(broker_->uri(), tls_, "t-0001"), terminal_events);
  terminal->start();
  ASSERT_TRUE(fleet_events.wait([&] { return !fleet_events.connected.empty(); })) << broker_->log();
  ASSERT_TRUE(terminal_events.wait([&] { return !terminal_events.connected.empty(); }));
  EXPECT_EQ(terminal_events.connected[0], 5);  // Mosquitto 2 speaks MQTT 5
  EXPECT_EQ(terminal->mqtt_version(), 5);

  Outcome acked;
  ASSERT_TRUE(terminal->publish("portier/v1/f/t-0001/up/health", std::string("\0\x01\xff", 3),
                                false, acked.done()));
  auto r = acked.wait();
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(*r) << r->error().message();
  ASSERT_TRUE(fleet_events.wait([&] { return !fleet_events.messages.empty(); }));
  EXPECT_EQ(fleet_events.messages[0].first, "portier/v1/f/t-0001/up/health");
  EXPECT_EQ(fleet_events.messages[0].second, std::string("\0\x01\xff", 3));
}

// Paho's trace: below errors, what it would record of its own calls (into
// a ring of about 122 KiB that nobody reads, on every call) is off once a
// client connects; errors still go to the trace.
std::atomic<int> paho_traces_below_error{0};
void count_paho_trace(enum MQTTASYNC_TRACE_LEVELS level, char*) {
  if (level < MQTTASYNC_TRACE_ERROR) ++paho_traces_below_error;
}

TEST_F(MqttClientTest, PahoRecordsNoTraceBelowErrorsWhileConnectedAndPublishing) {
  MQTTAsync_setTraceCallback(count_paho_trace);
  Recorder events;
  auto c = make_client(options_for(broker_->uri(), tls_, "t-0001"), events);
  c->start();
  ASSERT_TRUE(events.wait([&] { return !events.connected.empty(); })) << broker_->log();
  // Paho's start-up banner goes to a trace callback whatever the level.
  paho_traces_below_error = 0;
  for (int i = 0; i < 5; ++i) {
    Outcome acked;
    ASSERT_TRUE(c->publish("portier/v1/f/t-0001/up/health", "x", false, acked.done()));
    auto r = acked.wait();
    ASSERT_TRUE(r.has_value());
    EXPECT_TRUE(*r) << r->error().message();
  }
  c->stop();
  MQTTAsync_setTraceCallback(nullptr);
  EXPECT_EQ(paho_traces_below_error.load(), 0);
}

TEST_F(MqttClientTest, PublishWhileDisconnectedIsUnavailableAndNeverCallsBack) {
  Recorder events;
  auto c = make_client(options_for(broker_->uri(), tls_, "t-0001"), events);
  bool called = false;
  auto r = c->publish("a/b", "x", false, [&](Result<void>) { called = true; });
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::unavailable);
  c->stop();
  EXPECT_FALSE(called);
}

TEST_F(MqttClientTest, InFlightWindowIsBoundedAndStopAbortsWhatWaits) {
  Recorder events;
  auto o = options_for(broker_->uri(), tls_, "t-0001");
  o.max_in_flight = 2;
  auto c = make_client(o, events);
  c->start();
  ASSERT_TRUE(events.wait([&] { return !events.connected.empty(); }));
  broker_->freeze();  // accepts bytes, sends no PUBACK
  Outcome a, b;
  ASSERT_TRUE(c->publish("t/1", "1", false, a.done()));
  ASSERT_TRUE(c->publish("t/2", "2", false, b.done()));
  auto third = c->publish("t/3", "3", false, [](Result<void>) { ADD_FAILURE() << "called"; });
  ASSERT_FALSE(third);
  EXPECT_EQ(third.error().code, Errc::resource_exhausted);
  c->stop();  // the clean DISCONNECT times out against the frozen broker
  ASSERT_TRUE(a.wait(1s).has_value());
  EXPECT_EQ(a.result->error().code, Errc::aborted);
  ASSERT_TRUE(b.wait(1s).has_value());
  EXPECT_FALSE(*b.result);
  broker_->thaw();
}

TEST_F(MqttClientTest, BrokerRestartIsReportedThenReconnectedAndPublishesWorkAgain) {
  Recorder events;
  auto c = make_client(options_for(broker_->uri(), tls_, "t-0001"), events);
  c->subscribe("portier/v1/f/t-0001/down/cmd", 1);
  c->start();
  ASSERT_TRUE(events.wait([&] { return events.connected.size() == 1; }));

  broker_->stop();
  ASSERT_TRUE(events.wait([&] { return events.disconnected.size() == 1; }));
  EXPECT_FALSE(c->connected());
  auto r = c->publish("t/x", "x", false, [](Result<void>) {});
  EXPECT_FALSE(r);
  ASSERT_TRUE(broker_->start());  // same port
  ASSERT_TRUE(events.wait([&] { return events.connected.size() == 2; })) << broker_->log();

  Outcome acked;
  ASSERT_TRUE(c->publish("portier/v1/f/t-0001/up/health", "after", false, acked.done()));
  ASSERT_TRUE(acked.wait().has_value());
  EXPECT_TRUE(*acked.result);

  // The subscription is back too (persistence is off in the test broker, so
  // only the client's re-subscription can have done it).
  Recorder fleet_events;
  auto fleet = make_client(options_for(broker_->uri(), tls_, "fleet"), fleet_events);
  fleet->start();
  ASSERT_TRUE(fleet_events.wait([&] { return !fleet_events.connected.empty(); }));
  ASSERT_TRUE(fleet->publish("portier/v1/f/t-0001/down/cmd", "cmd", false, [](Result<void>) {}));
  ASSERT_TRUE(events.wait([&] { return !events.messages.empty(); }));
  EXPECT_EQ(events.messages[0].second, "cmd");
}

TEST_F(MqttClientTest, OversizedIncomingPayloadIsDroppedAndReported) {
  Recorder events, fleet_events;
  auto o = options_for(broker_->uri(), tls_, "t-0001");
  o.max_incoming_payload = 1000;
  auto c = make_client(o, events);
  c->subscribe("in/#", 1);
  c->start();
  auto fleet = make_client(options_for(broker_->uri(), tls_, "fleet"), fleet_events);
  fleet->start();
  ASSERT_TRUE(events.wait([&] { return !events.connected.empty(); }));
  ASSERT_TRUE(fleet_events.wait([&] { return !fleet_events.connected.empty(); }));

  // The broker honours MQTT 5's Maximum Packet Size and may not forward the
  // big one at all; either way it must never reach the message callback.
  ASSERT_TRUE(fleet->publish("in/big", std::string(5000, 'A'), false, [](Result<void>) {}));
  ASSERT_TRUE(fleet->publish("in/small", std::string(1000, 'b'), false, [](Result<void>) {}));
  ASSERT_TRUE(events.wait([&] { return !events.messages.empty(); }));
  ASSERT_EQ(events.messages.size(), 1u);
  EXPECT_EQ(events.messages[0].first, "in/small");
  for (const auto& [topic, size] : events.oversized) EXPECT_EQ(size, 5000u);
}

TEST_F(MqttClientTest, PublishTheBrokerRefusesIsAFailureNotAnAcknowledgement) {
  // An ACL that lets t-0001 write only under its own topics: a PUBACK with
  // "not authorized" must not let the caller delete the record.
  const std::string acl = dir_.path() + "/acl";
  std::ofstream(acl) << "pattern write portier/v1/+/%u/up/#\n";
  broker_->stop();
  broker_ = std::make_unique<MosquittoBroker>(
      dir_.path(), tls_,
      portier::test::BrokerOptions{.extra = "acl_file " + acl + "\n", .config = {}});
  ASSERT_TRUE(broker_->start());

  Recorder events;
  auto c = make_client(options_for(broker_->uri(), tls_, "t-0001"), events);
  c->start();
  ASSERT_TRUE(events.wait([&] { return !events.connected.empty(); }));
  Outcome own, foreign;
  ASSERT_TRUE(c->publish("portier/v1/f/t-0001/up/health", "mine", false, own.done()));
  ASSERT_TRUE(c->publish("portier/v1/f/t-0002/up/health", "forged", false, foreign.done()));
  ASSERT_TRUE(own.wait().has_value());
  EXPECT_TRUE(*own.result) << own.result->error().message();
  ASSERT_TRUE(foreign.wait().has_value());
  ASSERT_FALSE(*foreign.result);
  EXPECT_EQ(foreign.result->error().code, Errc::permission_denied)
      << foreign.result->error().message();
}

TEST_F(MqttClientTest, BrokerWithACertificateOfAnotherCaIsRefused_REQ20) {
  TempDir other_dir;
  auto other = portier::test::write_test_tls(other_dir.path(), {});
  MosquittoBroker impostor(other_dir.path(), other);
  ASSERT_TRUE(impostor.start());

  Recorder events;
  auto c = make_client(options_for(impostor.uri(), tls_, "t-0001"), events);
  c->start();
  ASSERT_TRUE(events.wait([&] { return events.failed.size() >= 2; }));  // and keeps trying
  c->stop();
  EXPECT_TRUE(events.connected.empty());
  EXPECT_NE(events.failed[0].find(impostor.uri()), std::string::npos) << events.failed[0];
  // The impostor saw a failed handshake, not an MQTT client.
  EXPECT_EQ(impostor.log().find("New client connected"), std::string::npos) << impostor.log();
}

// A broker of the right CA that is not the broker asked for: refused by
// the name check, and by the purpose check when the certificate is a
// client's (a terminal of the same fleet posing as the broker).
class ImpostorOfTheSameCaTest : public MqttClientTest,
                                public ::testing::WithParamInterface<std::string> {};

TEST_P(ImpostorOfTheSameCaTest, IsRefused_REQ20) {
  write_test_cert(tls_, "impostor", GetParam());
  TestTls impostor_tls = tls_;
  impostor_tls.server_cert = tls_.cert("impostor");
  impostor_tls.server_key = tls_.key("impostor");
  TempDir impostor_dir;
  MosquittoBroker impostor(impostor_dir.path(), impostor_tls);
  ASSERT_TRUE(impostor.start());

  Recorder events;
  auto c = make_client(options_for(impostor.uri(), tls_, "t-0001"), events);
  c->start();
  ASSERT_TRUE(events.wait([&] { return !events.failed.empty(); }));
  c->stop();
  EXPECT_TRUE(events.connected.empty());
  EXPECT_EQ(impostor.log().find("New client connected"), std::string::npos) << impostor.log();
}

INSTANTIATE_TEST_SUITE_P(
    Certificates, ImpostorOfTheSameCaTest,
    ::testing::Values("subjectAltName=DNS:broker.elsewhere.example\n"
                      "extendedKeyUsage=serverAuth\n",
                      "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=clientAuth\n"),
    [](const auto& info) { return info.index == 0 ? "AnotherName" : "AClientCertificate"; });

TEST(MqttClientStop, StopWhileConnectingToASilentBrokerReturnsPromptly) {
  TempDir dir;
  auto tls = portier::test::write_test_tls(dir.path(), {"t-0001"});
  // A listener that accepts and never answers the TLS handshake.
  int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(listener, 4), 0);
  ASSERT_EQ(::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len), 0);

  Recorder events;
  auto o = options_for("ssl://127.0.0.1:" + std::to_string(ntohs(addr.sin_port)), tls, "t-0001");
  o.connect_timeout = 30s;
  auto c = make_client(o, events);
  c->start();
  pollfd pfd{listener, POLLIN, 0};
  ASSERT_EQ(::poll(&pfd, 1, 10'000), 1);
  const int conn = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
  ASSERT_GE(conn, 0);  // the client is in its handshake now

  const auto before = std::chrono::steady_clock::now();
  c->stop();
  EXPECT_LT(std::chrono::steady_clock::now() - before, 3s);
  EXPECT_TRUE(events.connected.empty());
  ::close(conn);
  ::close(listener);
}

TEST_F(MqttClientTest, ServerThatSpeaksOnlyTls11IsRefusedThoughOpensslDefaultsAllowIt_REQ20) {
  // OpenSSL 3's defaults refuse TLS 1.1 only where it needs a SHA-1
  // signature; with RSA key transport (no signature, no client certificate
  // asked) a default client does connect. The client's own floor must hold.
  write_test_cert(tls_, "rsa-broker", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
                  true);
  const std::string log = dir_.path() + "/s_server.log";
  TlsFakeBroker old(tls_, log,
                    {"-tls1_1", "-cipher", "AES128-SHA:@SECLEVEL=0", "-cert",
                     tls_.cert("rsa-broker"), "-key", tls_.key("rsa-broker")},
                    false);

  // A client with OpenSSL's defaults gets TLS 1.1 from it: the refusal
  // below is the client's own.
  const std::string probe = dir_.path() + "/s_client.log";
  ASSERT_EQ(portier::test::run_command(
                {"openssl", "s_client", "-connect", "127.0.0.1:" + std::to_string(old.port()),
                 "-CAfile", tls_.ca_file, "-brief"},
                probe),
            0)
      << read_file(probe) << read_file(log);
  EXPECT_NE(read_file(probe).find("Protocol version: TLSv1.1"), std::string::npos)
      << read_file(probe);

  Recorder events;
  auto c = make_client(options_for(old.uri(), tls_, "t-0001"), events);
  c->start();
  ASSERT_TRUE(events.wait([&] { return !events.failed.empty(); }));
  c->stop();
  EXPECT_TRUE(events.connected.empty());
  EXPECT_FALSE(old.received_anything()) << "an MQTT CONNECT crossed a TLS 1.1 session";
  EXPECT_NE(events.failed[0].find("TLS"), std::string::npos) << events.failed[0];
}

// Mosquitto cannot be told to refuse MQTT 5, so the 3.1.1-only broker is
// `openssl s_server` (real TLS, the test's certificates) driven by the test.
class MqttFallbackTest : public ::testing::TestWithParam<std::string> {};

TEST_P(MqttFallbackTest, BrokerThatRefusesMqtt5IsSpokenToIn311) {
  TempDir dir;
  auto tls = portier::test::write_test_tls(dir.path(), {"t-0001"});
  TlsFakeBroker broker(tls, dir.path() + "/s_server.log", {});
  Recorder events;
  auto c = make_client(options_for(broker.uri(), tls, "t-0001"), events);
  c->start();

  const std::string first = broker.read_packet();
  ASSERT_FALSE(first.empty()) << read_file(dir.path() + "/s_server.log");
  EXPECT_EQ(first[0], 0x10);  // CONNECT
  EXPECT_EQ(protocol_level(first), 5);
  broker.write(GetParam());  // "unsupported protocol version", as the parameter words it

  const std::string second = broker.read_packet();
  ASSERT_FALSE(second.empty());
  EXPECT_EQ(protocol_level(second), 4) << (events.failed.empty() ? "" : events.failed[0]);
  EXPECT_EQ(second[9] & 0x02, 0) << "3.1.1 must keep the session (clean session off)";
  broker.write(std::string("\x20\x02\x00\x00", 4));  // CONNACK accepted
  ASSERT_TRUE(events.wait([&] { return !events.connected.empty(); }));
  EXPECT_EQ(events.connected[0], 4);
  EXPECT_EQ(c->mqtt_version(), 4);

  // A 3.1.1 PUBACK (no reason code) is an acknowledgement.
  Outcome acked;
  ASSERT_TRUE(c->publish("portier/v1/f/t-0001/up/health", "v3", false, acked.done()));
  const std::string publish = broker.read_packet();
  ASSERT_EQ(std::uint8_t(publish[0]) & 0xf6, 0x32) << "expected a QoS 1 PUBLISH";
  const std::size_t topic_len =
      std::size_t(std::uint8_t(publish[2])) << 8 | std::uint8_t(publish[3]);
  broker.write(std::string("\x40\x02", 2) + publish.substr(4 + topic_len, 2));  // its packet id
  ASSERT_TRUE(acked.wait().has_value());
  EXPECT_TRUE(*acked.result) << acked.result->error().message();
}

INSTANTIATE_TEST_SUITE_P(
    Connack, MqttFallbackTest,
    ::testing::Values(std::string("\x20\x02\x00\x01", 4),       // a 3.1.1 broker: return code 1
                      std::string("\x20\x03\x00\x84\x00", 5)),  // MQTT 5: reason 0x84
    [](const auto& info) { return info.index == 0 ? "ReturnCode1" : "Reason0x84"; });

}  // namespace
}  // namespace portier::mqtt
