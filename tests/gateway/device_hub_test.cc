// The device hub in process, without a daemon or a socket: leases on a
// stepped clock, claimant-only events, the change stream and the health
// seen through GatewayView, with the real policy and this process's own
// kernel identity.
#include "device_hub.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "device_actions.h"
#include "hub_test_util.h"
#include "queue_subscriber.h"

namespace portier::gateway {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

class DeviceHubTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char t[] = "/tmp/portier-hub-XXXXXX";
    dir_ = mkdtemp(t);
    std::ofstream(dir_ + "/policy.toml") << "version = 1\n"
                                         << "[[app]]\nname = \"me\"\nuid = " << getuid() << "\n"
                                         << "[[rule]]\napp = \"me\"\nops = [\"*\"]\n";
    store_ = std::make_unique<PolicyStore>(dir_ + "/policy.toml");
    ASSERT_TRUE(store_->reload());
    HubOptions o;
    o.clock = clock_.lease_clock();
    o.max_lease_seconds = 60;
    hub_ = std::make_unique<DeviceHub>(*store_, audit_, o);
    drivers::DeviceInfo info;
    info.id = "scanner0";
    info.device_class = "scanner";
    info.driver = "test";
    info.attributes = {{"serial", "A1"}};
    hub_->device_added(nullptr, info);
    a_ = test::self_connection(1);
    b_ = test::self_connection(2);
    ASSERT_TRUE(a_ && b_);
  }
  void TearDown() override {
    hub_.reset();
    std::filesystem::remove_all(dir_);
  }
  void scan(const std::string& text) {
    drivers::ScanData s;
    s.text = text;
    hub_->device_event("scanner0", drivers::DeviceEvent{s});
  }

  std::string dir_;
  test::MemoryAudit audit_;
  test::SteppedClock clock_;
  std::unique_ptr<PolicyStore> store_;
  std::unique_ptr<DeviceHub> hub_;
  std::shared_ptr<Connection> a_, b_;
};

using Changes = QueueSubscriber<DeviceChangeRecord>;
using Events = QueueSubscriber<DeviceEventRecord>;

TEST_F(DeviceHubTest, ALeaseExpiresOnTheHubsClockAndWatchersSeeItGo) {
  auto changes = std::make_shared<Changes>(16);
  ASSERT_NE(hub_->listen_changes(changes), 0u);
  auto lease = hub_->claim(a_, "scanner0", 30);
  ASSERT_TRUE(lease) << lease.error().message();
  auto claimed = changes->next(milliseconds(0));
  ASSERT_TRUE(claimed);
  EXPECT_EQ(claimed->device.claimed_by, "me");
  EXPECT_EQ(hub_->device("scanner0")->claimed_by, "me");

  clock_.step(seconds(29));
  hub_->expire_leases();
  EXPECT_EQ(hub_->device("scanner0")->claimed_by, "me");
  clock_.step(seconds(1));
  hub_->expire_leases();
  EXPECT_EQ(hub_->device("scanner0")->claimed_by, "");
  auto freed = changes->next(milliseconds(0));
  ASSERT_TRUE(freed);
  EXPECT_EQ(freed->kind, ChangeKind::state_changed);
  EXPECT_EQ(freed->device.claimed_by, "");
  EXPECT_TRUE(audit_.has("lease_expired scanner0 (lease ran out)"));
  // Once expired the lease cannot be renewed.
  EXPECT_EQ(hub_->renew(*a_, lease->lease_id, 30).error().code, Errc::not_found);
}

TEST_F(DeviceHubTest, RenewOnTheHubsClockKeepsTheLease) {
  auto lease = hub_->claim(a_, "scanner0", 10);
  ASSERT_TRUE(lease);
  clock_.step(seconds(9));
  ASSERT_TRUE(hub_->renew(*a_, lease->lease_id, 10));
  clock_.step(seconds(9));
  hub_->expire_leases();
  EXPECT_EQ(hub_->device("scanner0")->claimed_by, "me");
  // Another connection can neither renew nor release it, nor claim the device.
  EXPECT_EQ(hub_->renew(*b_, lease->lease_id, 10).error().code, Errc::not_found);
  EXPECT_EQ(hub_->release(*b_, lease->lease_id).error().code, Errc::not_found);
  auto taken = hub_->claim(b_, "scanner0", 10);
  ASSERT_FALSE(taken);
  EXPECT_EQ(taken.error().code, Errc::already_exists);
  EXPECT_NE(taken.error().message().find("is claimed by app 'me' for 1 more seconds"),
            std::string::npos)
      << taken.error().message();
  EXPECT_EQ(hub_->claim(a_, "scanner0", 0).error().code, Errc::invalid_argument);
  EXPECT_EQ(hub_->claim(a_, "scanner0", 61).error().code, Errc::invalid_argument);
}

TEST_F(DeviceHubTest, ADisconnectReleasesTheConnectionsLeases) {
  ASSERT_TRUE(hub_->claim(a_, "scanner0", 30));
  hub_->connection_closed(b_);
  EXPECT_EQ(hub_->device("scanner0")->claimed_by, "me");
  hub_->connection_closed(a_);
  EXPECT_EQ(hub_->device("scanner0")->claimed_by, "");
  EXPECT_TRUE(audit_.has("lease_released scanner0 (holder disconnected)"));
  EXPECT_TRUE(hub_->claim(b_, "scanner0", 30));
}

TEST_F(DeviceHubTest, AClaimedScannersEventsReachOnlyTheClaimant) {
  auto ea = std::make_shared<Events>(8), eb = std::make_shared<Events>(8);
  auto feature = std::make_shared<Events>(8);
  ASSERT_TRUE(hub_->subscribe(a_, "scanner0", ea));
  ASSERT_TRUE(hub_->subscribe(b_, "scanner0", eb));
  ASSERT_NE(hub_->listen_events(feature, ""), 0u);
  scan("one");
  ASSERT_TRUE(hub_->claim(a_, "scanner0", 30));
  scan("two");
  EXPECT_EQ(ea->stats().queued, 2u);
  EXPECT_EQ(eb->stats().queued, 1u);
  EXPECT_EQ(feature->stats().queued, 1u);
  auto first = ea->next(milliseconds(0));
  auto second = ea->next(milliseconds(0));
  EXPECT_EQ(std::get<drivers::ScanData>(second->event.payload).text, "two");
  EXPECT_EQ(second->sequence, first->sequence + 1);
}

TEST_F(DeviceHubTest, ARemovedDeviceEndsItsStreamsAndLease) {
  auto ea = std::make_shared<Events>(8);
  ASSERT_TRUE(hub_->subscribe(a_, "scanner0", ea));
  ASSERT_TRUE(hub_->claim(a_, "scanner0", 30));
  hub_->device_removed("scanner0");
  ASSERT_TRUE(ea->ended());
  EXPECT_EQ(ea->ended()->error().code, Errc::not_found);
  EXPECT_TRUE(audit_.has("lease_released scanner0 (device removed)"));
  EXPECT_FALSE(hub_->device("scanner0"));
  EXPECT_EQ(hub_->subscribe(a_, "scanner0", ea).error().code, Errc::not_found);
}

TEST_F(DeviceHubTest, GatewayViewShowsDevicesAndHealth) {
  GatewayView& view = *hub_;
  auto devices = view.devices();
  ASSERT_EQ(devices.size(), 2u);
  EXPECT_EQ(devices[0].info.id, "scanner0");
  EXPECT_EQ(devices[0].info.attributes.at("serial"), "A1");
  EXPECT_EQ(devices[1].info.id, "terminal");
  auto changes = std::make_shared<Changes>(8);
  view.listen_changes(changes);
  hub_->device_state("scanner0", drivers::DeviceState::error, "cable cut");
  hub_->set_component_health("feature link", policy::Health::degraded, "broker unreachable");
  auto h = view.health();
  EXPECT_EQ(h.state, policy::Health::degraded);
  EXPECT_EQ(h.summary(),
            "health DEGRADED: scanner0 is DEVICE_STATE_ERROR: cable cut; feature link failed: "
            "broker unreachable");
  auto c1 = changes->next(milliseconds(0));
  ASSERT_TRUE(c1);
  EXPECT_EQ(c1->device.state, drivers::DeviceState::error);
  auto c2 = changes->next(milliseconds(0));
  ASSERT_TRUE(c2);
  EXPECT_EQ(c2->device.info.id, "terminal");
  EXPECT_EQ(c2->device.state_reason, h.summary());
  hub_->end_all_streams(fail_msg(Errc::unavailable, "stopping").error());
  EXPECT_TRUE(changes->ended());
  EXPECT_EQ(view.listen_changes(std::make_shared<Changes>(1)), 0u);
}

}  // namespace
}  // namespace portier::gateway

namespace portier::gateway {
namespace {

// A card reader with a card reset and a pairing action, on a GatedDriver.
class ReaderHubTest : public DeviceHubTest {
 protected:
  void SetUp() override {
    DeviceHubTest::SetUp();
    drivers::DeviceInfo info;
    info.id = "card0";
    info.device_class = "smartcard";
    info.driver = "gated";
    info.actions = {{"reset", "transmit", true}, {"pair", "pair", false}};
    hub_->device_added(&driver_, info);
  }
  void TearDown() override {
    driver_.open_gate();
    DeviceHubTest::TearDown();
  }
  test::GatedDriver driver_;
};

TEST_F(ReaderHubTest, NoClaimWhileTheLastHoldersCardIsBeingReset) {
  auto lease = hub_->claim(a_, "card0", 30);
  ASSERT_TRUE(lease);
  ASSERT_TRUE(hub_->release(*a_, lease->lease_id));
  ASSERT_TRUE(driver_.wait_resets(1, seconds(5)));
  // The reset has not finished: the next app does not get the card yet.
  auto early = hub_->claim(b_, "card0", 30);
  ASSERT_FALSE(early);
  EXPECT_EQ(early.error().code, Errc::unavailable);
  EXPECT_EQ(early.error().message(), "'card0' is being reset after its last lease; retry shortly");
  EXPECT_TRUE(audit_.has("claim:deny card0 (card reset under way)"));
  driver_.open_gate();
  auto deadline = std::chrono::steady_clock::now() + seconds(5);
  Result<Lease> later = early;
  while (!later && std::chrono::steady_clock::now() < deadline) {
    later = hub_->claim(b_, "card0", 30);
    if (!later) std::this_thread::sleep_for(milliseconds(5));  // polling a condition, bounded
  }
  ASSERT_TRUE(later) << later.error().message();
  EXPECT_TRUE(audit_.has("card_reset card0"));
}

TEST_F(ReaderHubTest, AtShutdownLeasesEndAndCardsResetBeforeDriversStop) {
  ASSERT_TRUE(hub_->claim(a_, "card0", 30));
  driver_.open_gate();
  hub_->end_leases_and_drain("portierd is stopping");
  EXPECT_EQ(driver_.resets(), 1);
  EXPECT_TRUE(audit_.has("lease_released card0 (portierd is stopping)"));
  EXPECT_TRUE(audit_.has("card_reset card0"));
  // A device a driver drops while stopping starts no reset any more.
  hub_->device_removed("card0");
  EXPECT_EQ(driver_.resets(), 1);
}

TEST_F(ReaderHubTest, ADriversAlreadyExistsIsNotTheApisAlreadyClaimed) {
  DeviceActions actions(*hub_, audit_);
  drivers::ActionRequest r;
  r.device_id = "card0";
  r.action = "pair";
  auto paired = actions.act(*a_, r);
  ASSERT_FALSE(paired);
  EXPECT_EQ(paired.error().code, Errc::unavailable);
  EXPECT_EQ(paired.error().message(), "bluez: pair: AlreadyConnected");
  EXPECT_TRUE(audit_.has("action_failed card0 (pair: bluez: pair: AlreadyConnected)"));
}

TEST_F(DeviceHubTest, TheHealthReportListsAppsStreamsNotFeatures) {
  auto app = std::make_shared<Events>(8), feature = std::make_shared<Events>(8);
  ASSERT_TRUE(hub_->subscribe(a_, "scanner0", app));
  hub_->listen_events(feature, "");
  auto report = hub_->health_report();
  ASSERT_EQ(report.subscribers.size(), 1u);
  EXPECT_EQ(report.subscribers[0].device_id, "scanner0");
  EXPECT_EQ(report.subscribers[0].pid, getpid());
}

}  // namespace
}  // namespace portier::gateway
