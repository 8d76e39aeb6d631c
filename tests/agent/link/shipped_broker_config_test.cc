// The broker configuration we ship (systemd/examples/mosquitto.conf and
// mosquitto.acl) run by a real Mosquitto, changed only in its paths and
// port: no client without a certificate, no TLS 1.1, and a terminal writes
// and reads only under its own id.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <sstream>

#include "agent/link/fleet_peer.h"
#include "agent/link/link_events.h"
#include "agent/link/mqtt_link.h"
#include "policy/temp_dir.h"
#include "support/mosquitto_broker.h"

namespace portier::link {
namespace {

using namespace std::chrono_literals;
using portier::policy::testing::TempDir;
using portier::test::MosquittoBroker;
using portier::test::run_command;

const std::string kReceiver = "portier-fleet:receiver";  // the CN the ACL names

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The shipped configuration with the test's paths and port; every line we
// change must be there (a shipped file that lost its listener or its ACL
// fails here).
std::string shipped_config(const std::string& dir) {
  const std::map<std::string, std::string> replaced = {
      {"listener", "listener @PORT@ 127.0.0.1"},
      {"cafile", "cafile @CAFILE@"},
      {"certfile", "certfile @CERTFILE@"},
      {"keyfile", "keyfile @KEYFILE@"},
      {"acl_file", "acl_file " + dir + "/acl"},
      {"persistence_location", "persistence_location " + dir + "/"},
      {"log_dest", "log_dest file " + dir + "/mosquitto.log"}};
  std::istringstream in(read_file(PORTIER_SOURCE_DIR "/systemd/examples/mosquitto.conf"));
  std::string out = "user @USER@\n", line;
  std::map<std::string, int> seen;
  while (std::getline(in, line)) {
    const std::string key = line.substr(0, line.find(' '));
    if (auto it = replaced.find(key); it != replaced.end()) {
      out += it->second + "\n";
      ++seen[key];
    } else {
      out += line + "\n";
    }
  }
  for (const auto& [key, with] : replaced) EXPECT_EQ(seen[key], 1) << key;
  std::ofstream(dir + "/acl") << read_file(PORTIER_SOURCE_DIR "/systemd/examples/mosquitto.acl");
  return out;
}

class ShippedBrokerConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tls_ = portier::test::write_test_tls(dir_.path(), {"t-0001", "t-0002", kReceiver});
    broker_ = std::make_unique<MosquittoBroker>(
        dir_.path(), tls_,
        portier::test::BrokerOptions{
            .tls_version = {}, .extra = {}, .config = shipped_config(dir_.path())});
    ASSERT_TRUE(broker_->start());
  }
  std::vector<std::string> pub(const std::string& topic) const {
    return {"mosquitto_pub",
            "-h",
            "127.0.0.1",
            "-p",
            std::to_string(broker_->port()),
            "--cafile",
            tls_.ca_file,
            "-t",
            topic,
            "-m",
            "x",
            "-q",
            "1"};
  }
  int s_client(std::vector<std::string> extra, const std::string& log) const {
    std::vector<std::string> argv = {
        "openssl", "s_client",          "-connect", "127.0.0.1:" + std::to_string(broker_->port()),
        "-cert",   tls_.cert("t-0001"), "-key",     tls_.key("t-0001"),
        "-CAfile", tls_.ca_file,        "-brief"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return run_command(argv, log);
  }

  TempDir dir_;
  portier::test::TestTls tls_;
  std::unique_ptr<MosquittoBroker> broker_;
};

TEST_F(ShippedBrokerConfigTest, ClientWithoutACertificateIsRefused_REQ20) {
  const std::string log = dir_.path() + "/pub.log";
  auto without = pub("portier/v1/f1/t-0001/up/health");
  EXPECT_NE(run_command(without, log), 0) << read_file(log);

  auto with = pub("portier/v1/f1/t-0001/up/health");
  for (const std::string& a :
       {std::string("--cert"), tls_.cert("t-0001"), std::string("--key"), tls_.key("t-0001")})
    with.push_back(a);
  EXPECT_EQ(run_command(with, log), 0) << read_file(log) << broker_->log();
}

TEST_F(ShippedBrokerConfigTest, Tls11AndTls12WithoutAeadAreRefused_REQ20) {
  const std::string old_log = dir_.path() + "/tls11.log";
  EXPECT_NE(s_client({"-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"}, old_log), 0)
      << read_file(old_log);
  EXPECT_EQ(read_file(old_log).find("CONNECTION ESTABLISHED"), std::string::npos);

  const std::string cbc_log = dir_.path() + "/cbc.log";
  EXPECT_NE(s_client({"-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA"}, cbc_log), 0)
      << read_file(cbc_log);

  const std::string ok_log = dir_.path() + "/tls12.log";  // the same client in TLS 1.2: fine
  EXPECT_EQ(s_client({"-tls1_2"}, ok_log), 0) << read_file(ok_log);
  EXPECT_NE(read_file(ok_log).find("TLSv1.2"), std::string::npos) << read_file(ok_log);
}

TEST_F(ShippedBrokerConfigTest, TerminalWritesAndReadsOnlyUnderItsOwnId) {
  Fleet receiver(broker_->uri(), tls_, {"portier/v1/+/+/up/+", "portier/v1/+/+/state"}, kReceiver);
  // The terminal's link: sends, and receives the receiver's command.
  Events events;
  MqttLinkOptions o;
  o.server_uri = broker_->uri();
  o.fleet = "f1";
  o.terminal_id = "t-0001";
  o.tls = {tls_.ca_file, tls_.cert("t-0001"), tls_.key("t-0001")};
  o.will_payload = "offline";
  o.backoff_min = 50ms;
  o.backoff_max = 400ms;
  auto link = MqttLink::create(o);
  ASSERT_TRUE(link);
  ASSERT_TRUE((*link)->start(events));
  ASSERT_TRUE(events.wait([&] { return events.connected == 1; })) << broker_->log();
  ASSERT_TRUE((*link)->send({1, 1, "mine"}));
  ASSERT_TRUE(receiver.wait([&] { return receiver.has("portier/v1/f1/t-0001/up/run", "mine"); }));
  receiver.publish("portier/v1/f1/t-0001/down/ack", "ack");
  ASSERT_TRUE(events.wait([&] { return events.acknowledgements.size() == 1; }));

  // The same certificate, trying to speak for t-0002.
  Fleet forger(broker_->uri(), tls_, {"portier/v1/f1/t-0002/down/cmd"}, "t-0001");
  std::mutex mu;
  std::condition_variable cv;
  std::vector<Result<void>> outcomes;
  auto done = [&](Result<void> r) {
    std::lock_guard lock(mu);
    outcomes.push_back(std::move(r));
    cv.notify_all();
  };
  ASSERT_TRUE(forger.client->publish("portier/v1/f1/t-0002/up/health", "forged", false, done));
  ASSERT_TRUE(forger.client->publish("portier/v1/f1/t-0002/state", "online", true, done));
  ASSERT_TRUE(forger.client->publish("portier/v1/f1/t-0002/down/cmd", "cmd", false, done));
  {
    std::unique_lock lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, 20s, [&] { return outcomes.size() == 3; }));
    for (const auto& r : outcomes) {
      ASSERT_FALSE(r);
      EXPECT_EQ(r.error().code, Errc::permission_denied) << r.error().message();
    }
  }

  // Commands: the receiver may send them; t-0001 gets only its own.
  receiver.publish("portier/v1/f1/t-0002/down/cmd", "for t-0002");
  receiver.publish("portier/v1/f1/t-0001/down/cmd", "for t-0001");
  ASSERT_TRUE(events.wait([&] { return events.commands.size() == 1; }));
  EXPECT_EQ(events.commands[0], "for t-0001");
  ASSERT_TRUE((*link)->send({2, 2, "sentinel"}));
  ASSERT_TRUE(
      receiver.wait([&] { return receiver.has("portier/v1/f1/t-0001/up/run", "sentinel"); }));
  std::lock_guard lock(receiver.mu);
  EXPECT_TRUE(receiver.has("portier/v1/f1/t-0001/up/run", "mine"));
  EXPECT_TRUE(receiver.has("portier/v1/f1/t-0001/state", "online"));
  EXPECT_FALSE(receiver.has("portier/v1/f1/t-0002/up/health", "forged"));
  EXPECT_FALSE(receiver.has("portier/v1/f1/t-0002/state", "online"));
  {
    std::lock_guard forger_lock(forger.mu);
    EXPECT_TRUE(forger.messages.empty()) << "t-0001 read t-0002's commands";
  }
}

}  // namespace
}  // namespace portier::link
