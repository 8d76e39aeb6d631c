// The MQTT management link against a real Mosquitto with mutual TLS: the
// documented topics, acknowledgements, commands, the broker's outage, the
// last will (sent when the terminal dies, not when it stops cleanly), and
// the ids that could escape their topic level.
#include "agent/link/mqtt_link.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/link/fleet_peer.h"
#include "agent/link/link_events.h"
#include "common/mqtt/tls_fake_broker.h"
#include "policy/temp_dir.h"
#include "support/mosquitto_broker.h"

extern char** environ;

namespace portier::link {
namespace {

using namespace std::chrono_literals;
using portier::policy::testing::TempDir;
using portier::test::MosquittoBroker;
using portier::test::TestTls;

class MqttLinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tls_ = portier::test::write_test_tls(dir_.path(), {"t-0001", "fleet"});
    broker_ = std::make_unique<MosquittoBroker>(dir_.path(), tls_);
    ASSERT_TRUE(broker_->start());
  }
  MqttLinkOptions options() const {
    MqttLinkOptions o;
    o.server_uri = broker_->uri();
    o.fleet = "f1";
    o.terminal_id = "t-0001";
    o.tls = {tls_.ca_file, tls_.cert("t-0001"), tls_.key("t-0001")};
    o.will_payload = will_;
    o.backoff_min = 50ms;
    o.backoff_max = 400ms;
    return o;
  }
  std::unique_ptr<MqttLink> make_link(MqttLinkOptions o) {
    auto l = MqttLink::create(std::move(o));
    EXPECT_TRUE(l) << l.error().message();
    return l ? std::move(*l) : nullptr;
  }

  const std::string prefix_ = "portier/v1/f1/t-0001/";
  const std::string will_ = "\x0a\x06t-0001\x10\x07\x1a\x03sig";  // an Offline, 15 bytes
  TempDir dir_;
  TestTls tls_;
  std::unique_ptr<MosquittoBroker> broker_;
};

TEST(MqttTopicIds, IdsThatCouldEscapeTheirTopicLevelAreRefused) {
  EXPECT_TRUE(check_topic_id("terminal id", "t-0001"));
  EXPECT_TRUE(check_topic_id("terminal id", "3f2a9c1e-7b4d-4e1a-9c2b-0d5e6f7a8b9c"));
  EXPECT_TRUE(check_topic_id("terminal id", std::string(64, 'a')));
  for (const std::string& bad :
       {std::string(), std::string(65, 'a'), std::string("+"), std::string("#"),
        std::string("t/0001"), std::string("t-0001/down/cmd"), std::string("t\0x", 3),
        std::string("$SYS"), std::string("t 0001"), std::string("t+"), std::string("."),
        std::string(".."), std::string("t\n"), std::string("t\xc3\xa9"), std::string("t*")}) {
    auto r = check_topic_id("terminal id", bad);
    EXPECT_FALSE(r) << "accepted: " << bad;
    if (!r) {
      EXPECT_EQ(r.error().code, Errc::invalid_argument);
    }
  }
}

TEST_F(MqttLinkTest, HostileFleetOrTerminalIdsAndPlaintextAreRefusedAtCreate) {
  auto o = options();
  o.terminal_id = "+";  // would subscribe to every terminal's commands
  EXPECT_FALSE(MqttLink::create(o));
  o = options();
  o.fleet = "#";
  EXPECT_FALSE(MqttLink::create(o));
  o = options();
  o.terminal_id = "t-0002/down";
  EXPECT_FALSE(MqttLink::create(o));
  o = options();
  o.server_uri = "tcp://127.0.0.1:" + std::to_string(broker_->port());
  auto r = MqttLink::create(o);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("tcp://"), std::string::npos);
}

TEST_F(MqttLinkTest, ARunLandsOnTheDocumentedTopicAndAcknowledgementsReachTheHandler_REQ20) {
  Fleet fleet(broker_->uri(), tls_, {"portier/v1/+/+/up/#", "portier/v1/+/+/state"});
  Events events;
  auto link = make_link(options());
  EXPECT_FALSE(link->send({1, 1, "x"}));  // not started
  ASSERT_TRUE(link->start(events));
  ASSERT_TRUE(events.wait([&] { return events.connected == 1; })) << broker_->log();
  EXPECT_TRUE(link->connected());

  const std::string run(
      "\x0a\x03"
      "abc"
      "\x0a\x00",
      7);  // an EnvelopeRun: the link does not look
  ASSERT_TRUE(link->send({41, 42, run}));
  ASSERT_TRUE(fleet.wait([&] {
    return fleet.has(prefix_ + "up/run", run) && fleet.has(prefix_ + "state", "online");
  }));
  // The broker has it (the fleet's peer got it through it), yet only the
  // fleet's own acknowledgement lets the outbox delete it: handed to the
  // handler as received, to be verified there (the link vouches for nothing).
  EXPECT_TRUE(events.acknowledgements.empty());
  fleet.publish(prefix_ + "down/ack", "anything");
  fleet.publish("portier/v1/f1/t-0002/down/ack", "another terminal's");
  fleet.publish(prefix_ + "down/ack", std::string(64 * 1024 + 1, 'A'));  // above max_ack_bytes
  fleet.publish(prefix_ + "down/ack", "last");
  ASSERT_TRUE(events.wait([&] { return events.acknowledgements.size() == 2; }));
  EXPECT_EQ(events.acknowledgements, (std::vector<std::string>{"anything", "last"}));
}

TEST_F(MqttLinkTest, CommandsOnItsOwnTopicReachOnCommandAndNoOtherTerminals) {
  Events events;
  auto link = make_link(options());
  ASSERT_TRUE(link->start(events));
  ASSERT_TRUE(events.wait([&] { return events.connected == 1; }));
  Fleet fleet(broker_->uri(), tls_, {});
  fleet.publish("portier/v1/f1/t-0002/down/cmd", "for another terminal");
  fleet.publish("portier/v1/f2/t-0001/down/cmd", "for another fleet");
  fleet.publish(prefix_ + "down/cmd", std::string("signed\0command", 14));
  ASSERT_TRUE(events.wait([&] { return !events.commands.empty(); }));
  fleet.publish(prefix_ + "down/cmd", "second");
  ASSERT_TRUE(events.wait([&] { return events.commands.size() == 2; }));
  EXPECT_EQ(events.commands,
            (std::vector<std::string>{std::string("signed\0command", 14), "second"}));
}

TEST_F(MqttLinkTest, CommandSentWhileTheTerminalIsAwayWaitsInItsSession) {
  {
    Events events;
    auto link = make_link(options());
    ASSERT_TRUE(link->start(events));
    ASSERT_TRUE(events.wait([&] { return events.connected == 1; }));
    link->stop();  // the session (and its subscription) stays at the broker
  }
  Fleet fleet(broker_->uri(), tls_, {});
  fleet.publish(prefix_ + "down/cmd", "queued while away");

  Events events;
  auto link = make_link(options());
  ASSERT_TRUE(link->start(events));
  ASSERT_TRUE(events.wait([&] { return !events.commands.empty(); })) << broker_->log();
  EXPECT_EQ(events.commands[0], "queued while away");
}

TEST_F(MqttLinkTest, OversizedCommandIsDroppedNotDelivered) {
  Events events;
  auto o = options();
  o.max_command_bytes = 100;
  auto link = make_link(o);
  ASSERT_TRUE(link->start(events));
  ASSERT_TRUE(events.wait([&] { return events.connected == 1; }));
  Fleet fleet(broker_->uri(), tls_, {});
  fleet.publish(prefix_ + "down/cmd", std::string(101, 'X'));
  fleet.publish(prefix_ + "down/cmd", std::string(100, 'y'));
  ASSERT_TRUE(events.wait([&] { return !events.commands.empty(); }));
  ASSERT_EQ(events.commands.size(), 1u);
  EXPECT_EQ(events.commands[0], std::string(100, 'y'));
}

TEST_F(MqttLinkTest, BrokerOutageIsReportedAndTheLinkComesBackOnItsOwn) {
  Events events;
  auto link = make_link(options());
  ASSERT_TRUE(link->start(events));
  ASSERT_TRUE(events.wait([&] { return events.connected == 1; }));

  broker_->stop();
  ASSERT_TRUE(events.wait([&] { return events.disconnected.size() == 1; }));
  EXPECT_FALSE(link->connected());
  auto r = link->send({7, 7, "during the outage"});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::unavailable);  // the agent keeps it in the outbox

  ASSERT_TRUE(broker_->start());
  ASSERT_TRUE(events.wait([&] { return events.connected == 2; })) << broker_->log();
  Fleet fleet(broker_->uri(), tls_, {prefix_ + "up/run"});
  ASSERT_TRUE(link->send({7, 7, "resent"}));
  ASSERT_TRUE(fleet.wait([&] { return fleet.has(prefix_ + "up/run", "resent"); }));
  fleet.publish(prefix_ + "down/ack", "7");
  ASSERT_TRUE(
      events.wait([&] { return events.acknowledgements == std::vector<std::string>{"7"}; }));
}

// A hostile broker (past the TLS checks: it holds a certificate of the
// fleet's CA) pushes what the terminal never subscribed to, a payload far
// above the limit it announced, and then garbage.
TEST_F(MqttLinkTest, HostileBrokerReachesTheHandlerOnlyWithBoundedCommandsOnItsTopic) {
  portier::test::TlsFakeBroker broker(tls_, dir_.path() + "/s_server.log", {});
  Events events;
  auto o = options();
  o.server_uri = broker.uri();
  auto link = make_link(o);
  ASSERT_TRUE(link->start(events));

  const std::string connect = broker.read_packet();
  ASSERT_FALSE(connect.empty());
  broker.write(std::string("\x20\x03\x00\x00\x00", 5));  // CONNACK, MQTT 5
  const std::string subscribe = broker.read_packet();
  ASSERT_EQ(std::uint8_t(subscribe[0]), 0x82) << "expected SUBSCRIBE";
  // SUBACK for its packet id (after the 1-byte remaining length), QoS 1.
  broker.write(std::string("\x90\x04", 2) + subscribe.substr(2, 2) + std::string("\x00\x01", 2));
  ASSERT_TRUE(events.wait([&] { return events.connected == 1; }));

  broker.write(portier::test::publish_packet("portier/v1/f1/t-0002/down/cmd", "not yours"));
  broker.write(portier::test::publish_packet("portier/v1/f1/t-0001/down/cmd/x", "below it"));
  broker.write(portier::test::publish_packet("#", "a wildcard as a topic"));
  broker.write(portier::test::publish_packet(prefix_ + "down/cmd", std::string(300 * 1024, 'A')));
  broker.write(portier::test::publish_packet(prefix_ + "down/cmd", "yours"));
  ASSERT_TRUE(events.wait([&] { return !events.commands.empty(); }));
  const std::vector<std::string> only_yours = {"yours"};
  EXPECT_TRUE(events.commands == only_yours) << events.commands.size() << " commands, the first of "
                                             << events.commands[0].size() << " bytes";

  broker.write(std::string("\xf0\x7f", 2) + std::string(127, '\xff'));  // no such packet
  ASSERT_TRUE(events.wait([&] { return !events.disconnected.empty(); }));
  EXPECT_EQ(events.commands.size(), 1u);
}

// The link in its own process (mqtt_link_child), as a terminal's portierd.
class LinkProcess {
 public:
  LinkProcess(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {MQTT_LINK_CHILD};
    argv.insert(argv.end(), args.begin(), args.end());
    int in[2], out[2];
    EXPECT_EQ(::pipe2(in, O_CLOEXEC), 0);
    EXPECT_EQ(::pipe2(out, O_CLOEXEC), 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    std::vector<char*> cargs;
    for (auto& a : argv) cargs.push_back(a.data());
    cargs.push_back(nullptr);
    EXPECT_EQ(posix_spawn(&pid_, cargs[0], &fa, nullptr, cargs.data(), environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    ::close(in[0]);
    ::close(out[1]);
    to_ = in[1];
    from_ = out[0];
  }
  ~LinkProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    ::close(to_);
    ::close(from_);
  }
  // Waits for `line` on its stdout.
  bool wait_line(const std::string& line, std::chrono::seconds timeout = 20s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      if (buffer_.find(line + "\n") != std::string::npos) return true;
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      pollfd pfd{from_, POLLIN, 0};
      if (::poll(&pfd, 1, int(left.count())) <= 0) continue;
      char buf[256];
      const ssize_t n = ::read(from_, buf, sizeof buf);
      if (n <= 0) return false;
      buffer_.append(buf, std::size_t(n));
    }
  }
  void say(const std::string& line) {
    const std::string l = line + "\n";
    ASSERT_EQ(::write(to_, l.data(), l.size()), ssize_t(l.size()));
  }
  void kill_hard() {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  int wait_exit() {
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

 private:
  pid_t pid_ = -1;
  int to_ = -1, from_ = -1;
  std::string buffer_;
};

TEST_F(MqttLinkTest, LastWillMarksTheTerminalOfflineWhenItDies) {
  Fleet fleet(broker_->uri(), tls_, {prefix_ + "state"});
  LinkProcess terminal({broker_->uri(), "f1", "t-0001", tls_.ca_file, tls_.cert("t-0001"),
                        tls_.key("t-0001"), will_});
  ASSERT_TRUE(terminal.wait_line("connected")) << broker_->log();
  ASSERT_TRUE(fleet.wait([&] { return fleet.has(prefix_ + "state", "online"); }));

  terminal.kill_hard();  // SIGKILL: no DISCONNECT, the kernel closes the socket
  ASSERT_TRUE(fleet.wait([&] { return fleet.has(prefix_ + "state", will_); })) << broker_->log();

  // Retained: a fleet that subscribes later learns it too.
  Fleet late(broker_->uri(), tls_, {prefix_ + "state"});
  ASSERT_TRUE(late.wait([&] { return late.has(prefix_ + "state", will_); }));
}

TEST_F(MqttLinkTest, CleanStopSaysOfflineAndSendsNoLastWill) {
  Fleet fleet(broker_->uri(), tls_, {prefix_ + "state", "test/sentinel"});
  LinkProcess terminal({broker_->uri(), "f1", "t-0001", tls_.ca_file, tls_.cert("t-0001"),
                        tls_.key("t-0001"), will_});
  ASSERT_TRUE(terminal.wait_line("connected")) << broker_->log();
  terminal.say("stop");
  ASSERT_TRUE(terminal.wait_line("stopped"));
  EXPECT_EQ(terminal.wait_exit(), 0);
  ASSERT_TRUE(fleet.wait([&] { return fleet.has(prefix_ + "state", "offline"); }));

  // The broker handled the terminal's socket before this round trip of the
  // fleet's (its bytes arrived first): a will would now be ahead of it.
  fleet.publish("test/sentinel", "1");
  ASSERT_TRUE(fleet.wait([&] { return fleet.has("test/sentinel", "1"); }));
  fleet.publish("test/sentinel", "2");
  ASSERT_TRUE(fleet.wait([&] { return fleet.has("test/sentinel", "2"); }));
  std::lock_guard lock(fleet.mu);
  EXPECT_FALSE(fleet.has(prefix_ + "state", will_)) << "the last will was sent after stop()";
}

}  // namespace
}  // namespace portier::link
