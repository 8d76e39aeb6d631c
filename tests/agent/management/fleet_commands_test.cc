// The fleet's commands on the terminal under a flood from a hostile broker:
// a real outbox file and uplink, the real verifier and command store, and
// certificates from a throwaway PKI. Garbage and commands nobody trusted
// signed never reach the outbox (no result each at security priority that
// would evict the terminal's telemetry); they are audited in aggregate with
// their count, and a command the fleet signed is still answered.
#include "agent/management/fleet_commands.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <mutex>
#include <thread>

#include "agent/commands/command_signing.h"
#include "agent/commands/command_test_util.h"
#include "agent/management/outbox_link_fixture.h"
#include "support/test_pki.h"

namespace portier::management {
namespace {

using namespace std::chrono_literals;

using commands::test::KeptAudit;  // keeps every entry (tests/agent/commands)

class FleetCommandsTest : public ::testing::Test, protected test::OutboxLinkFixture {
 protected:
  FleetCommandsTest() : OutboxLinkFixture("portier-fleetcmd") {}
  void SetUp() override {
    make_fleet_pki();
    make_signer();
    open_box(512u << 10);
    start_uplink(UplinkOptions{.retry_min = 5ms});
    sources_ = std::make_unique<TelemetrySources>(nullptr, nullptr, *uplink_, BirthInfo{},
                                                  TelemetryIntervals{}, 0, nullptr);
  }
  void TearDown() override {
    commands_.reset();
    sources_.reset();
    close();
  }
  void start_commands() {
    commands::VerifierOptions vo;
    vo.terminal_id = "T-1";
    vo.trust_anchors = {pki_->root()};
    auto c = FleetCommands::create(dir_.file("commands.db"), vo, audit_, nullptr, *sources_,
                                   *uplink_, "mqtt");
    ASSERT_TRUE(c) << c.error().message();
    commands_ = std::move(*c);
    commands_->start();
  }
  std::string signed_by(const portier::test::IssuedLeaf& leaf, const std::string& id,
                        const std::string& target) {
    auto key_signer = crypto::KeySigner::from(leaf.key);
    EXPECT_TRUE(key_signer);
    std::vector<crypto::Certificate> chain{leaf.cert};
    chain.insert(chain.end(), leaf.chain.begin(), leaf.chain.end());
    v1::Command c;
    c.set_command_id(id);
    c.set_target_terminal(target);
    c.set_nonce(std::string(16, 'n') + id);
    const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    c.mutable_not_before()->set_seconds(now - 10);
    c.mutable_expires()->set_seconds(now + 600);
    c.mutable_ping()->set_text("hello");
    auto sc = commands::sign_command(c, *key_signer, chain);
    EXPECT_TRUE(sc) << sc.error().message();
    return sc->SerializeAsString();
  }
  // The outbox's records by payload type.
  std::map<int, int> outbox_types() {
    std::map<int, int> out;
    auto records = box_->oldest(1000000);
    EXPECT_TRUE(records);
    for (auto& r : *records) {
      v1::Envelope env;
      v1::EnvelopeBody body;
      EXPECT_TRUE(env.ParseFromString(r.envelope) && body.ParseFromString(env.body()));
      ++out[body.payload_type()];
    }
    return out;
  }

  std::unique_ptr<TelemetrySources> sources_;
  KeptAudit audit_;
  std::unique_ptr<FleetCommands> commands_;
};

// Regression: reading the installed policy version at start left the
// command store's connection open for good (its page cache and -shm
// mapping counted in the idle RSS, 32 kB of it visible in smaps). An idle
// terminal holds none; a command opens it.
TEST_F(FleetCommandsTest, AtStartTheCommandStoreHoldsNoConnection) {
  start_commands();
  // SQLite removes the -shm and -wal files with the last connection.
  EXPECT_FALSE(std::filesystem::exists(dir_.file("commands.db-shm")));
  auto fleet = pki_->issue({.name = "fleet-commands", .usage = crypto::CertUsage::command_signing});
  ASSERT_TRUE(fleet) << fleet.error().message();
  commands_->receive(signed_by(*fleet, "c-1", "T-1"));
  ASSERT_TRUE([&] {
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < deadline) {
      if (std::filesystem::exists(dir_.file("commands.db-shm"))) return true;
      std::this_thread::sleep_for(10ms);  // polling the feature's own thread
    }
    return false;
  }());
}

TEST_F(FleetCommandsTest, AFloodOfGarbageCommandsLeavesTheOutboxBoundedAndItsTelemetryKept_REQ28) {
  // The terminal's telemetry, waiting for the fleet (the link is down).
  for (int i = 0; i < 200; ++i) {
    ASSERT_TRUE(
        uplink_->submit(v1::PAYLOAD_HEALTH, std::string(1000, 'h'), outbox::Priority::telemetry));
  }
  ASSERT_TRUE(uplink_->flush(10s));
  start_commands();
  // A command the fleet signed for another terminal (replayed here by the
  // broker): refused and answered on its own.
  auto fleet = pki_->issue({.name = "fleet-commands", .usage = crypto::CertUsage::command_signing});
  ASSERT_TRUE(fleet) << fleet.error().message();
  commands_->receive(signed_by(*fleet, "c-other", "T-2"));
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (outbox_types()[v1::PAYLOAD_COMMAND_RESULT] == 0 &&
         std::chrono::steady_clock::now() < deadline) {
    uplink_->flush(100ms);
  }
  ASSERT_EQ(outbox_types()[v1::PAYLOAD_COMMAND_RESULT], 1);
  auto forged = pki_->issue({.name = "fleet-commands-forged",
                             .usage = crypto::CertUsage::command_signing,
                             .flaw = portier::test::Flaw::untrusted_issuer});
  ASSERT_TRUE(forged) << forged.error().message();
  const std::vector<std::string> garbage = {std::string(3000, '\xff'), "",
                                            signed_by(*forged, "c-forged", "T-1")};
  for (int i = 0; i < 10000; ++i) commands_->receive(garbage[static_cast<std::size_t>(i) % 3]);
  commands_->stop();  // every count audited
  ASSERT_TRUE(uplink_->flush(10s));

  auto types = outbox_types();
  EXPECT_EQ(types[v1::PAYLOAD_HEALTH], 200) << "telemetry evicted";
  EXPECT_EQ(types[v1::PAYLOAD_COMMAND_RESULT], 1) << "only the fleet's command is answered";
  EXPECT_EQ(uplink_->stats().dropped, 0u);
  auto entries = audit_.entries();
  std::uint64_t refused = 0;
  int other = 0;
  for (auto& e : entries) {
    if (e.command_id == "c-other") {
      ++other;
      continue;
    }
    refused += e.count.value_or(1);
  }
  EXPECT_EQ(other, 1);
  EXPECT_EQ(refused, 10000u) << "each garbage command counted, verified or dropped unread";
  EXPECT_LE(entries.size(), 12u) << "audited in aggregate, not one record each";
}

// The broker replays a command the fleet signed 1,000 times, each copy
// handed to the commands thread: the command runs once, and the outbox
// holds its result twice at most (the run and one repeat in the minute),
// not a result per replay; the audit trail counts every copy in a few
// records.
TEST_F(FleetCommandsTest, AThousandReplaysOfAGenuineCommandRunItOnceAndLeaveTwoResults_REQ28) {
  start_commands();
  auto fleet = pki_->issue({.name = "fleet-commands", .usage = crypto::CertUsage::command_signing});
  ASSERT_TRUE(fleet) << fleet.error().message();
  const auto bytes = signed_by(*fleet, "c-1", "T-1");
  std::uint64_t given = 0;
  for (int chunk = 0; chunk < 20; ++chunk) {
    // In chunks its queue holds: none dropped unread, each one verified.
    for (int i = 0; i < 50; ++i, ++given) commands_->receive(bytes);
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (commands_->handled() < given && std::chrono::steady_clock::now() < deadline) {
      uplink_->flush(5ms);  // a bounded wait for the commands thread
    }
    ASSERT_EQ(commands_->handled(), given);
  }
  commands_->stop();  // every count audited
  ASSERT_TRUE(uplink_->flush(10s));
  EXPECT_EQ(outbox_types()[v1::PAYLOAD_COMMAND_RESULT], 2);
  int ran = 0;
  std::uint64_t copies = 0;
  auto entries = audit_.entries();
  for (auto& e : entries) {
    if (e.decision == AuditDecision::allow) {
      ++ran;
    } else {
      copies += e.count.value_or(1);
    }
  }
  EXPECT_EQ(ran, 1);
  EXPECT_EQ(copies, 999u);
  EXPECT_LE(entries.size(), 3u);
}

}  // namespace
}  // namespace portier::management
