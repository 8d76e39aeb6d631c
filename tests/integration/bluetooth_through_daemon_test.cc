// Bluetooth through portierd against BlueZ's D-Bus API, played by
// python3-dbusmock's bluez5 template on a private bus: devices appear as
// Portier devices, and pairing, trust, connection and power are separate
// policy operations.
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "bluetooth/bluez_mock.h"
#include "daemon_fixture.h"

namespace portier::test {
namespace {

using drivers::testing::BluezMock;

class BluetoothThroughDaemonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (access("/usr/bin/dbus-daemon", X_OK) != 0) GTEST_SKIP() << "dbus-daemon not installed";
    mock_ = std::make_unique<BluezMock>();
    ASSERT_TRUE(mock_->ok()) << mock_->error();
    ASSERT_TRUE(mock_->add_adapter("hci0", "terminal"));
    ASSERT_TRUE(mock_->add_device("hci0", "11:22:33:44:55:66", "pinpad"));
  }
  void start(const std::string& ops) {
    DaemonOptions o;
    o.policy = "version = 1\n" + runner_app() + runner_rule("terminal", "[\"read\"]") +
               "[[rule]]\napp = \"test-runner\"\nclass = \"bluetooth\"\nops = " + ops + "\n";
    o.extra_config =
        "[bluetooth]\nbus = \"" + mock_->address() + "\"\nallowed_addresses = [\"11:22:33:*\"]\n";
    daemon_ = std::make_unique<Daemon>(dir_, o);
    ASSERT_TRUE(daemon_->start()) << daemon_->log();
  }
  grpc::Status act(const std::string& device, const std::string& action,
                   v1::ActResponse* out = nullptr, std::map<std::string, std::string> params = {}) {
    auto stub = daemon_->connect();
    grpc::ClientContext ctx;
    v1::ActRequest r;
    r.set_device_id(device);
    r.set_action(action);
    for (auto& [k, v] : params) (*r.mutable_params())[k] = v;
    v1::ActResponse resp;
    auto st = stub->Act(&ctx, r, &resp);
    if (out) *out = resp;
    return st;
  }

  TempDir dir_;
  std::unique_ptr<BluezMock> mock_;
  std::unique_ptr<Daemon> daemon_;
};

// REQ-18: a payment app may use only a device that was paired and trusted
// by an app allowed to `pair`; each step is its own policy operation.
TEST_F(BluetoothThroughDaemonTest, PairTrustConnectAreSeparateOperations) {
  start("[\"list\", \"claim\"]");
  auto st = act("bt-112233445566", "pair");
  EXPECT_EQ(st.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_NE(st.error_message().find("may not pair 'bt-112233445566'"), std::string::npos)
      << st.error_message();
  auto untrusted = act("bt-112233445566", "connect");
  EXPECT_EQ(untrusted.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(untrusted.error_message().find("not trusted"), std::string::npos);

  replace_file(daemon_->policy_path(),
               "version = 1\n" + runner_app() + runner_rule("terminal", "[\"read\"]") +
                   "[[rule]]\napp = \"test-runner\"\nclass = \"bluetooth\"\n"
                   "ops = [\"list\", \"claim\", \"pair\"]\n");
  ASSERT_TRUE(wait_until([&] { return daemon_->health().policy().generation() == 2; }));
  ASSERT_TRUE(act("bt-112233445566", "pair").ok());
  ASSERT_TRUE(act("bt-112233445566", "trust").ok());
  v1::ActResponse resp;
  ASSERT_TRUE(act("bt-112233445566", "connect", &resp).ok());
  EXPECT_EQ(resp.values().at("connected"), "true");
  EXPECT_EQ(mock_->get_bool(BluezMock::device_path("hci0", "11:22:33:44:55:66"),
                            "org.bluez.Device1", "Trusted"),
            true);
  // Radio power stays closed: not granted.
  EXPECT_EQ(act("bt-hci0", "power_off").error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(daemon_->audit_has("\"op\":\"pair\",\"decision\":\"allow\""));
}

// REQ-30: a device outside the allow-list is refused and audited with its address.
TEST_F(BluetoothThroughDaemonTest, UnknownDeviceIsRefusedAndAudited) {
  start("[\"list\"]");
  ASSERT_TRUE(mock_->add_device("hci0", "AA:BB:CC:DD:EE:FF", "skimmer"));
  ASSERT_TRUE(daemon_->audit_has("device_refused"));
  EXPECT_TRUE(daemon_->audit_has("address=AA:BB:CC:DD:EE:FF"));
  auto stub = daemon_->connect();
  grpc::ClientContext ctx;
  v1::ListDevicesResponse r;
  ASSERT_TRUE(stub->ListDevices(&ctx, {}, &r).ok());
  for (auto& d : r.devices()) EXPECT_NE(d.id(), "bt-aabbccddeeff");
}

// REQ-18, REQ-30: a pinpad that wants a PIN pairs through portierd's agent
// with the PIN the maintenance app passes; the PIN is in no log or audit
// record; a pairing the device starts by itself is refused and audited.
TEST_F(BluetoothThroughDaemonTest, PinPairingThroughTheAgentLeavesNoSecretBehind) {
  ASSERT_TRUE(mock_->require_agent("hci0", "11:22:33:44:55:66", "RequestPinCode", "80417"));
  start("[\"list\", \"pair\"]");
  auto bare = act("bt-112233445566", "pair");
  EXPECT_EQ(bare.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(bare.error_message().find("params pin="), std::string::npos) << bare.error_message();
  v1::ActResponse resp;
  auto st = act("bt-112233445566", "pair", &resp, {{"pin", "80417"}});
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(resp.values().at("paired"), "true");

  ASSERT_TRUE(mock_->add_device("hci0", "11:22:33:00:00:01", "stranger"));
  EXPECT_EQ(
      mock_->ask_agent_for_pin("hci0", "11:22:33:00:00:01").rfind("org.bluez.Error.Rejected", 0),
      0u);
  ASSERT_TRUE(daemon_->audit_has("pairing_refused"));
  EXPECT_TRUE(daemon_->audit_has("address=11:22:33:00:00:01"));
  EXPECT_FALSE(daemon_->audit_has("80417"));
  EXPECT_EQ(daemon_->log().find("80417"), std::string::npos);
}

}  // namespace
}  // namespace portier::test
