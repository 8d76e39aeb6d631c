// USB devices and ports through portierd. The kernel USB stack is not
// reachable on a test machine: the daemon reads a fixture sysfs tree and
// takes uevents from a test socket (the driver's [usb] sysfs_root and
// uevent_source); the driver's own tests cover the parsing in detail.
#include <gtest/gtest.h>

#include "daemon_fixture.h"
#include "drivers/usb/usb_test_support.h"

namespace portier::test {
namespace {

using drivers::usb::testing::device_uevent;
using drivers::usb::testing::FixtureTree;
using drivers::usb::testing::UeventInjector;

class UsbThroughDaemonTest : public ::testing::Test {
 protected:
  void start(const std::string& usb_ops, const std::string& pins = "") {
    tree_.add(FixtureTree::root_hub());
    tree_.add(FixtureTree::scanner("1-1"));
    DaemonOptions o;
    o.policy = policy(usb_ops);
    o.extra_config = "[usb]\nsysfs_root = \"" + tree_.sysfs().string() + "\"\nuevent_source = \"" +
                     tree_.socket_path() + "\"\n" + pins;
    daemon_ = std::make_unique<Daemon>(dir_, o);
    ASSERT_TRUE(daemon_->start()) << daemon_->log();
  }
  static std::string policy(const std::string& usb_ops) {
    return "version = 1\n" + runner_app() + runner_rule("terminal", "[\"read\"]") +
           "[[rule]]\napp = \"test-runner\"\nclass = \"usb\"\nops = " + usb_ops + "\n";
  }
  grpc::Status act(const std::string& device, const std::string& action,
                   std::map<std::string, std::string> params = {}) {
    auto stub = daemon_->connect();
    grpc::ClientContext ctx;
    v1::ActRequest r;
    r.set_device_id(device);
    r.set_action(action);
    for (auto& [k, v] : params) (*r.mutable_params())[k] = v;
    v1::ActResponse resp;
    return stub->Act(&ctx, r, &resp);
  }
  std::vector<std::string> device_ids() {
    auto stub = daemon_->connect();
    grpc::ClientContext ctx;
    v1::ListDevicesResponse r;
    EXPECT_TRUE(stub->ListDevices(&ctx, {}, &r).ok());
    std::vector<std::string> ids;
    for (auto& d : r.devices()) ids.push_back(d.id());
    return ids;
  }

  TempDir dir_;
  FixtureTree tree_;
  std::unique_ptr<Daemon> daemon_;
};

// REQ-1: a USB port is switched off by software, only for apps the policy allows.
TEST_F(UsbThroughDaemonTest, AuthorizeIsAPolicyOperation) {
  start("[\"list\", \"watch\", \"read\"]");
  auto ids = device_ids();
  ASSERT_NE(std::find(ids.begin(), ids.end(), "usb-1-1"), ids.end());
  auto denied = act("usb-1-1", "deauthorize");
  EXPECT_EQ(denied.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_NE(denied.error_message().find("may not authorize 'usb-1-1'"), std::string::npos)
      << denied.error_message();
  EXPECT_EQ(read_file((tree_.sysfs() / "bus/usb/devices/1-1/authorized").string()), "1\n");

  replace_file(daemon_->policy_path(), policy("[\"list\", \"watch\", \"read\", \"authorize\"]"));
  ASSERT_TRUE(wait_until([&] { return daemon_->health().policy().generation() == 2; }));
  ASSERT_TRUE(act("usb-1-1", "deauthorize").ok());
  auto value = read_file((tree_.sysfs() / "bus/usb/devices/1-1/authorized").string());
  EXPECT_EQ(value.substr(0, 1), "0");
  EXPECT_TRUE(
      daemon_->audit_has("\"device\":\"usb-1-1\",\"op\":\"authorize\",\"decision\":\"allow\""));
}

// REQ-18: hotplug reaches apps watching devices.
TEST_F(UsbThroughDaemonTest, HotplugReachesWatchers) {
  start("[\"list\", \"watch\"]");
  auto stub = daemon_->connect();
  grpc::ClientContext ctx;
  v1::WatchDevicesRequest req;
  req.set_include_existing(true);
  auto reader = stub->WatchDevices(&ctx, req);
  v1::DeviceChange ch;
  // The existing devices come first: once read, the watch is registered.
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(reader->Read(&ch));
    EXPECT_EQ(ch.kind(), v1::DeviceChange::EXISTING);
  }
  tree_.add(FixtureTree::card_reader("1-2"));
  UeventInjector inject(tree_.socket_path());
  ASSERT_TRUE(inject.send(device_uevent("add", "1-2", "1", "6")));
  ASSERT_TRUE(reader->Read(&ch));
  EXPECT_EQ(ch.kind(), v1::DeviceChange::ADDED);
  EXPECT_EQ(ch.device().id(), "usb-1-2");
  EXPECT_EQ(ch.device().attributes().at("vendor"), "072f");
  ctx.TryCancel();
}

// REQ-4: a device on a pinned port that is not the pinned one raises an
// alarm with both identities, audited.
TEST_F(UsbThroughDaemonTest, SubstitutedDeviceRaisesAnAuditedAlarm) {
  start("[\"list\"]", "[[usb.pinned]]\nid = \"scanner0\"\nidentity = \"" + std::string(64, 'a') +
                          "\"\nport = \"1-1\"\n");
  ASSERT_TRUE(daemon_->audit_has("\"event\":\"alarm\",\"device\":\"usb-1-1\""));
  EXPECT_TRUE(daemon_->audit_has("device_substituted"));
  EXPECT_NE(daemon_->log().find("ALARM device usb-1-1 device_substituted"), std::string::npos);
}

}  // namespace
}  // namespace portier::test
