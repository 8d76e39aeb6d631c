// BluetoothDriver against python3-dbusmock's bluez5 template on a private
// D-Bus bus (one per test, so the tests run in parallel).
#include "bluetooth/bluetooth_driver.h"

#include <gtest/gtest.h>
#include <systemd/sd-bus.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "drivers/bluetooth/bluez_mock.h"
#include "drivers/bluetooth/bt_recording_sink.h"

namespace portier::drivers {
namespace {

using testing::BluezMock;
using testing::BtRecorded;
using testing::BtRecordingSink;
using clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr const char* kAdapter1 = "org.bluez.Adapter1";
constexpr const char* kDevice1 = "org.bluez.Device1";
constexpr const char* kPhone = "11:22:33:44:55:66";
constexpr const char* kPhoneId = "bt-112233445566";
constexpr const char* kStranger = "AA:BB:CC:DD:EE:FF";
constexpr const char* kStrangerId = "bt-aabbccddeeff";

ActionRequest request(const std::string& id, const std::string& action) {
  ActionRequest r;
  r.device_id = id;
  r.action = action;
  r.timeout = milliseconds(10000);
  return r;
}

std::string op_of(const DeviceInfo& d, const std::string& action) {
  for (const auto& a : d.actions) {
    if (a.name == action) return a.op + (a.needs_claim ? "+claim" : "");
  }
  return "(none)";
}

class BluetoothDriverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    mock_ = std::make_unique<BluezMock>(with_bluez_);
    ASSERT_TRUE(mock_->ok()) << mock_->error();
    config_.bus = mock_->address();
    config_.call_timeout_ms = 3000;
  }

  BluetoothDriver& start_driver() {
    driver_ = std::make_unique<BluetoothDriver>(config_);
    auto r = driver_->start(sink_);
    EXPECT_TRUE(r.has_value()) << r.error().message();
    return *driver_;
  }

  bool wait_added(const std::string& id) {
    return sink_.wait([&](const BtRecorded& r) { return r.find_added(id) != nullptr; });
  }
  bool wait_state(const std::string& id, const std::string& reason) {
    return sink_.wait([&](const BtRecorded& r) { return r.has_state(id, reason); });
  }

  bool with_bluez_ = true;
  std::unique_ptr<BluezMock> mock_;
  BluetoothConfig config_;
  BtRecordingSink sink_;
  std::unique_ptr<BluetoothDriver> driver_;  // destroyed before the mock
};

TEST_F(BluetoothDriverTest, AdapterAndDeviceDiscoveredAtStart) {
  ASSERT_TRUE(mock_->add_adapter("hci0", "terminal"));
  ASSERT_TRUE(mock_->add_device("hci0", kPhone, "My Phone"));
  start_driver();

  // Reported before start() returned: the adapter first, then the device.
  BtRecorded r = sink_.snapshot();
  ASSERT_EQ(r.added.size(), 2u);
  const DeviceInfo& a = r.added[0];
  EXPECT_EQ(a.id, "bt-hci0");
  EXPECT_EQ(a.device_class, "bluetooth");
  EXPECT_EQ(a.driver, "bluetooth");
  EXPECT_EQ(a.attributes.at("kind"), "adapter");
  EXPECT_EQ(a.attributes.at("address"), "00:01:02:03:04:05");
  EXPECT_EQ(a.attributes.at("name"), "terminal");
  EXPECT_EQ(a.attributes.at("class"), "0x00010c");
  EXPECT_EQ(a.attributes.at("powered"), "true");
  EXPECT_EQ(op_of(a, "power_on"), "power");
  EXPECT_EQ(op_of(a, "power_off"), "power");
  EXPECT_EQ(op_of(a, "discovery_on"), "configure");
  EXPECT_EQ(op_of(a, "discovery_off"), "configure");

  const DeviceInfo& d = r.added[1];
  EXPECT_EQ(d.id, kPhoneId);
  EXPECT_EQ(d.device_class, "bluetooth");
  EXPECT_EQ(d.attributes.at("kind"), "device");
  EXPECT_EQ(d.attributes.at("address"), kPhone);
  EXPECT_EQ(d.attributes.at("name"), "My Phone");
  EXPECT_EQ(d.attributes.at("alias"), "My Phone");
  EXPECT_EQ(d.attributes.at("class"), "0x000000");
  EXPECT_EQ(d.attributes.at("paired"), "false");
  EXPECT_EQ(d.attributes.at("trusted"), "false");
  EXPECT_EQ(d.attributes.at("connected"), "false");
  EXPECT_EQ(d.attributes.at("adapter"), "bt-hci0");
  EXPECT_EQ(op_of(d, "pair"), "pair");
  EXPECT_EQ(op_of(d, "trust"), "pair");
  EXPECT_EQ(op_of(d, "untrust"), "pair");
  EXPECT_EQ(op_of(d, "remove"), "pair");
  EXPECT_EQ(op_of(d, "connect"), "claim");
  EXPECT_EQ(op_of(d, "disconnect"), "claim");

  ASSERT_EQ(r.states.size(), 2u);
  EXPECT_EQ(r.states[0].id, "bt-hci0");
  EXPECT_EQ(r.states[0].state, DeviceState::ready);
  EXPECT_EQ(r.states[0].reason, "powered on");
  EXPECT_EQ(r.states[1].id, kPhoneId);
  EXPECT_EQ(r.states[1].state, DeviceState::ready);
  EXPECT_EQ(r.states[1].reason, "disconnected");
  EXPECT_TRUE(r.alarms.empty());
  EXPECT_EQ(driver_->devices().size(), 2u);

  driver_->stop();
  r = sink_.snapshot();
  EXPECT_EQ(r.removed, (std::vector<std::string>{kPhoneId, "bt-hci0"}));
  driver_->stop();  // idempotent
  EXPECT_EQ(sink_.snapshot().removed.size(), 2u);
}

TEST_F(BluetoothDriverTest, DeviceAddedAndRemovedWhileRunning) {
  ASSERT_TRUE(mock_->add_adapter("hci0", "terminal"));
  start_driver();
  ASSERT_EQ(sink_.snapshot().added.size(), 1u);

  ASSERT_TRUE(mock_->add_device("hci0", kPhone, "My Phone"));
  ASSERT_TRUE(wait_added(kPhoneId));
  ASSERT_TRUE(wait_state(kPhoneId, "disconnected"));

  ASSERT_TRUE(mock_->remove_device("hci0", kPhone));
  ASSERT_TRUE(sink_.wait([](const BtRecorded& r) { return r.was_removed(kPhoneId); }));
  EXPECT_FALSE(sink_.snapshot().was_removed("bt-hci0"));
  EXPECT_EQ(driver_->devices().size(), 1u);

  // Back again, then forgotten through the driver's own action.
  ASSERT_TRUE(mock_->add_device("hci0", kPhone, "My Phone"));
  ASSERT_TRUE(sink_.wait([](const BtRecorded& r) {
    return std::count_if(r.added.begin(), r.added.end(),
                         [](const DeviceInfo& d) { return d.id == kPhoneId; }) == 2;
  }));
  auto rm = driver_->act(request(kPhoneId, "remove"));
  ASSERT_TRUE(rm.has_value()) << rm.error().message();
  EXPECT_EQ(rm->values.at("removed"), "true");
  // Reported before act() returned.
  BtRecorded r = sink_.snapshot();
  EXPECT_EQ(std::count(r.removed.begin(), r.removed.end(), kPhoneId), 2);
  EXPECT_EQ(mock_->get_bool(BluezMock::device_path("hci0", kPhone), kDevice1, "Paired"),
            std::nullopt);  // gone from BlueZ

  auto gone = driver_->act(request(kPhoneId, "connect"));
  ASSERT_FALSE(gone.has_value());
  EXPECT_EQ(gone.error().code, Errc::not_found);
}

TEST_F(BluetoothDriverTest, PowerAndDiscoveryChangeTheAdapter) {
  ASSERT_TRUE(mock_->add_adapter("hci0", "terminal"));
  start_driver();
  const std::string path = "/org/bluez/hci0";

  auto off = driver_->act(request("bt-hci0", "power_off"));
  ASSERT_TRUE(off.has_value()) << off.error().message();
  EXPECT_EQ(off->values.at("powered"), "false");
  EXPECT_EQ(mock_->get_bool(path, kAdapter1, "Powered"), false);
  EXPECT_TRUE(sink_.snapshot().has_state("bt-hci0", "powered off"));

  auto on = driver_->act(request("bt-hci0", "power_on"));
  ASSERT_TRUE(on.has_value()) << on.error().message();
  EXPECT_EQ(on->values.at("powered"), "true");
  EXPECT_EQ(mock_->get_bool(path, kAdapter1, "Powered"), true);

  ASSERT_TRUE(mock_->set_discovery_filter("hci0"));  // the template needs it
  auto disc = driver_->act(request("bt-hci0", "discovery_on"));
  ASSERT_TRUE(disc.has_value()) << disc.error().message();
  EXPECT_EQ(disc->values.at("discovering"), "true");
  EXPECT_EQ(mock_->get_bool(path, kAdapter1, "Discovering"), true);
  EXPECT_TRUE(sink_.snapshot().has_state("bt-hci0", "discovering"));
  auto nodisc = driver_->act(request("bt-hci0", "discovery_off"));
  ASSERT_TRUE(nodisc.has_value()) << nodisc.error().message();
  EXPECT_EQ(mock_->get_bool(path, kAdapter1, "Discovering"), false);

  auto devs = driver_->devices();
  ASSERT_EQ(devs.size(), 1u);
  EXPECT_EQ(devs[0].attributes.at("powered"), "true");
  EXPECT_EQ(devs[0].attributes.at("discovering"), "false");

  auto wrong = driver_->act(request("bt-hci0", "pair"));
  ASSERT_FALSE(wrong.has_value());
  EXPECT_EQ(wrong.error().code, Errc::failed_precondition);
}

ActionRequest pair_with(const std::string& id, std::map<std::string, std::string> params) {
  ActionRequest r = request(id, "pair");
  r.params = std::move(params);
  return r;
}

// REQ-18: pairing a device that asks for a PIN code goes through Portier's
// agent with the PIN the maintenance app gave; without one, the error says
// what to pass. The PIN appears in no error.
TEST_F(BluetoothDriverTest, PinCodePairingThroughTheAgent) {
  ASSERT_TRUE(mock_->add_adapter("hci0", "terminal"));
  ASSERT_TRUE(mock_->add_device("hci0", kPhone, "Card terminal"));
  ASSERT_TRUE(mock_->require_agent("hci0", kPhone, "RequestPinCode", "4711"));
  start_driver();
  const std::string path = BluezMock::device_path("hci0", kPhone);

  auto bare = driver_->act(request(kPhoneId, "pair"));
  ASSERT_FALSE(bare.has_value());
  EXPECT_EQ(bare.error().code, Errc::failed_precondition);
  EXPECT_NE(bare.error().why.find("asks for a PIN code: give it as params pin="), std::string::npos)
      << bare.error().message();

  auto wrong = driver_->act(pair_with(kPhoneId, {{"pin", "1234"}}));
  ASSERT_FALSE(wrong.has_value());
  EXPECT_EQ(wrong.error().message().find("1234"), std::string::npos) << wrong.error().message();
  EXPECT_EQ(mock_->get_bool(path, kDevice1, "Paired"), false);

  auto ok = driver_->act(pair_with(kPhoneId, {{"pin", "4711"}}));
  ASSERT_TRUE(ok.has_value()) << ok.error().message();
  EXPECT_EQ(ok->values.at("paired"), "true");
  EXPECT_EQ(mock_->get_bool(path, kDevice1, "Paired"), true);
}

// Passkey entry (the digits the device shows) and numeric comparison (the
// same digits on both sides): the agent answers only with what was given.
TEST_F(BluetoothDriverTest, PasskeyAndNumericComparisonPairing) {
  constexpr const char* kPinpad = "22:22:22:22:22:22";
  ASSERT_TRUE(mock_->add_adapter("hci0", "terminal"));
  ASSERT_TRUE(mock_->add_device("hci0", kPhone, "Pinpad A"));
  ASSERT_TRUE(mock_->add_device("hci0", kPinpad, "Pinpad B"));
  ASSERT_TRUE(mock_->require_agent("hci0", kPhone, "RequestPasskey", "123456"));
  ASSERT_TRUE(mock_->require_agent("hci0", kPinpad, "RequestConfirmation", "", 654321));
  start_driver();

  auto passkey = driver_->act(pair_with(kPhoneId, {{"passkey", "123456"}}));
  ASSERT_TRUE(passkey.has_value()) << passkey.error().message();
  EXPECT_EQ(passkey->values.at("paired"), "true");

  auto mismatch = driver_->act(pair_with("bt-222222222222", {{"confirm", "111111"}}));
  ASSERT_FALSE(mismatch.has_value());
  EXPECT_EQ(mismatch.error().code, Errc::failed_precondition);
  EXPECT_NE(mismatch.error().why.find("not those the device shows"), std::string::npos)
      << mismatch.error().message();
  EXPECT_EQ(mismatch.error().message().find("654321"), std::string::npos);

  auto confirmed = driver_->act(pair_with("bt-222222222222", {{"confirm", "654321"}}));
  ASSERT_TRUE(confirmed.has_value()) << confirmed.error().message();
  EXPECT_EQ(confirmed->values.at("paired"), "true");
}

// REQ-30: a remote device that starts pairing by itself gets nothing from
// the agent, and the operators are told (pairing_refused on the adapter).
TEST_F(BluetoothDriverTest, PairingNobodyStartedIsRefusedWithAnAlarm) {
  ASSERT_TRUE(mock_->add_adapter("hci0", "terminal"));
  ASSERT_TRUE(mock_->add_device("hci0", kPhone, "Skimmer"));
  start_driver();
  const std::string answer = mock_->ask_agent_for_pin("hci0", kPhone);
  EXPECT_EQ(answer.rfind("org.bluez.Error.Rejected: ", 0), 0u) << answer;
  ASSERT_TRUE(sink_.wait([](const BtRecorded& r) {
    for (const auto& a : r.alarms) {
      if (a.alarm.code == "pairing_refused") return true;
    }
    return false;
  }));
  for (const auto& a : sink_.snapshot().alarms) {
    if (a.alarm.code != "pairing_refused") continue;
    EXPECT_EQ(a.id, "bt-hci0");
    EXPECT_EQ(a.alarm.details.at("address"), kPhone);
    EXPECT_EQ(a.alarm.details.at("request"), "PIN code");
  }
}

// Only the owner of org.bluez may ask the agent: another program on the bus
// calling it directly is refused.
TEST_F(BluetoothDriverTest, OnlyBluezMayUseTheAgent) {
  ASSERT_TRUE(mock_->add_adapter("hci0", "terminal"));
  ASSERT_TRUE(mock_->add_device("hci0", kPhone, "Phone"));
  start_driver();
  sd_bus* bus = nullptr;
  ASSERT_GE(sd_bus_new(&bus), 0);
  ASSERT_GE(sd_bus_set_address(bus, mock_->address().c_str()), 0);
  ASSERT_GE(sd_bus_set_bus_client(bus, 1), 0);
  ASSERT_GE(sd_bus_start(bus), 0);
  char** names = nullptr;
  ASSERT_GE(sd_bus_list_names(bus, &names, nullptr), 0);
  const char* me = nullptr;
  sd_bus_get_unique_name(bus, &me);
  std::vector<std::string> refusals;
  for (char** n = names; n && *n; ++n) {
    if ((*n)[0] != ':' || (me && std::string(*n) == me)) continue;
    sd_bus_message* m = nullptr;
    sd_bus_message* reply = nullptr;
    sd_bus_error e = SD_BUS_ERROR_NULL;
    sd_bus_message_new_method_call(bus, &m, *n, BluetoothDriver::kAgentPath, "org.bluez.Agent1",
                                   "RequestPinCode");
    sd_bus_message_append(m, "o", BluezMock::device_path("hci0", kPhone).c_str());
    if (sd_bus_call(bus, m, 500000, &e, &reply) < 0 && e.name &&
        std::string(e.name) == "org.bluez.Error.Rejected") {
      refusals.push_back(e.message ? e.message : "");
    }
    sd_bus_error_free(&e);
    sd_bus_message_unref(reply);
    sd_bus_message_unref(m);
  }
  for (char** n = names; n && *n; ++n) free(*n);
  free(names);
  sd_bus_flush_close_unref(bus);
  ASSERT_EQ(refusals.size(), 1u);
  EXPECT_EQ(refusals[0], "only BlueZ may use this agent");
  for (const auto& a : sink_.snapshot().alarms) EXPECT_NE(a.alarm.code, "pairing_refused");
}

TEST_F(BluetoothDriverTest, PairParamsAreValidatedWithoutEchoingThem) {
  ASSERT_TRUE(mock_->add_adapter("hci0", "terminal"));
  ASSERT_TRUE(mock_->add_device("hci0", kPhone, "Phone"));
  start_driver();
  for (auto params : std::vector<std::map<std::string, std::string>>{{{"pin", ""}},
                                                                     {{"pin", "12345678901234567"}},
                                                                     {{"pin", "12\n34"}},
                                                                     {{"passkey", "1234567"}},
                                                                     {{"passkey", "12a"}},
                                                                     {{"confirm", "-1"}},
                                                                     {{"colour", "zebra"}}}) {
    auto r = driver_->act(pair_with(kPhoneId, params));
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().code, Errc::invalid_argument) << r.error().message();
    const std::string& v = params.begin()->second;
    if (v.size() > 2) {
      EXPECT_EQ(r.error().message().find(v), std::string::npos) << r.error().message();
    }
  }
  EXPECT_EQ(mock_->get_bool(BluezMock::device_path("hci0", kPhone), kDevice1, "Paired"), false);
}

TEST_F(BluetoothDriverTest, WithoutTheAgentSecretsAreRefusedAndNoAgentIsRegistered) {
  config_.pairing_agent = false;
  ASSERT_TRUE(mock_->add_adapter("hci0", "terminal"));
  ASSERT_TRUE(mock_->add_device("hci0", kPhone, "Phone"));
  start_driver();
  auto r = driver_->act(pair_with(kPhoneId, {{"pin", "4711"}}));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Errc::failed_precondition);
  EXPECT_NE(r.error().why.find("pairing agent is off"), std::string::npos);
  // Still usable for devices that need no agent.
  auto plain = driver_->act(request(kPhoneId, "pair"));
  ASSERT_TRUE(plain.has_value()) << plain.error().message();
  EXPECT_NE(mock_->ask_agent_for_pin("hci0", kPhone).find("no agent registered"),
            std::string::npos);
}

TEST_F(BluetoothDriverTest, PairTrustConnectDisconnect) {
  ASSERT_TRUE(mock_->add_adapter("hci0", "terminal"));
  ASSERT_TRUE(mock_->add_device("hci0", kPhone, "My Phone"));
  start_driver();
  const std::string path = BluezMock::device_path("hci0", kPhone);

  // A payment app may only connect to a device maintenance trusted.
  auto refused = driver_->act(request(kPhoneId, "connect"));
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, Errc::failed_precondition);
  EXPECT_EQ(refused.error().why,
            "device is not trusted; a maintenance app must pair and trust it first");

  auto pair = driver_->act(request(kPhoneId, "pair"));
  ASSERT_TRUE(pair.has_value()) << pair.error().message();
  EXPECT_EQ(pair->values.at("paired"), "true");
  EXPECT_EQ(mock_->get_bool(path, kDevice1, "Paired"), true);
  EXPECT_TRUE(sink_.snapshot().has_state(kPhoneId, "paired"));
  auto again = driver_->act(request(kPhoneId, "pair"));  // idempotent
  ASSERT_TRUE(again.has_value()) << again.error().message();

  auto trust = driver_->act(request(kPhoneId, "trust"));
  ASSERT_TRUE(trust.has_value()) << trust.error().message();
  EXPECT_EQ(trust->values.at("trusted"), "true");
  EXPECT_EQ(mock_->get_bool(path, kDevice1, "Trusted"), true);
  EXPECT_TRUE(sink_.snapshot().has_state(kPhoneId, "trusted"));

  auto conn = driver_->act(request(kPhoneId, "connect"));
  ASSERT_TRUE(conn.has_value()) << conn.error().message();
  EXPECT_EQ(conn->values.at("connected"), "true");
  EXPECT_TRUE(sink_.snapshot().has_state(kPhoneId, "connected"));
  auto conn2 = driver_->act(request(kPhoneId, "connect"));  // already connected: fine
  ASSERT_TRUE(conn2.has_value()) << conn2.error().message();

  auto disc = driver_->act(request(kPhoneId, "disconnect"));
  ASSERT_TRUE(disc.has_value()) << disc.error().message();
  EXPECT_EQ(disc->values.at("connected"), "false");
  {
    BtRecorded r = sink_.snapshot();
    std::string last;
    for (const auto& s : r.states) {
      if (s.id == kPhoneId && (s.reason == "connected" || s.reason == "disconnected")) {
        last = s.reason;
      }
    }
    EXPECT_EQ(last, "disconnected");
  }
  auto disc2 = driver_->act(request(kPhoneId, "disconnect"));
  ASSERT_TRUE(disc2.has_value()) << disc2.error().message();

  auto untrust = driver_->act(request(kPhoneId, "untrust"));
  ASSERT_TRUE(untrust.has_value()) << untrust.error().message();
  EXPECT_EQ(mock_->get_bool(path, kDevice1, "Trusted"), false);
  auto refused2 = driver_->act(request(kPhoneId, "connect"));
  ASSERT_FALSE(refused2.has_value());
  EXPECT_EQ(refused2.error().code, Errc::failed_precondition);

  // Every device state reported is ready; connection is in the reason.
  for (const auto& s : sink_.snapshot().states) EXPECT_EQ(s.state, DeviceState::ready);
  auto devs = driver_->devices();
  auto it = std::find_if(devs.begin(), devs.end(), [](auto& d) { return d.id == kPhoneId; });
  ASSERT_NE(it, devs.end());
  EXPECT_EQ(it->attributes.at("paired"), "true");
  EXPECT_EQ(it->attributes.at("trusted"), "false");
  EXPECT_EQ(it->attributes.at("class"), "0x5a020c");  // the mock's Pair sets a phone class

  auto w = driver_->write(kPhoneId, "x");
  ASSERT_FALSE(w.has_value());
  EXPECT_EQ(w.error().code, Errc::failed_precondition);
  auto unknown = driver_->act(request("bt-000000000000", "connect"));
  ASSERT_FALSE(unknown.has_value());
  EXPECT_EQ(unknown.error().code, Errc::not_found);
}

// A peripheral outside the allow-list is refused, alarmed with its
// identity, and cannot be used.
// REQ-30
TEST_F(BluetoothDriverTest, DeviceOutsideAllowListIsRefusedWithAlarm) {
  config_.allowed_addresses = {"11:22:33:*"};
  ASSERT_TRUE(mock_->add_adapter("hci0", "terminal"));
  ASSERT_TRUE(mock_->add_device("hci0", kPhone, "My Phone"));
  ASSERT_TRUE(mock_->add_device("hci0", kStranger, "Skimmer"));
  start_driver();

  BtRecorded r = sink_.snapshot();
  EXPECT_NE(r.find_added(kPhoneId), nullptr);
  EXPECT_EQ(r.find_added(kStrangerId), nullptr);
  ASSERT_EQ(r.alarms.size(), 1u);
  EXPECT_EQ(r.alarms[0].id, "bt-hci0");  // on the adapter: the gateway audits it
  const AlarmData& a = r.alarms[0].alarm;
  EXPECT_EQ(a.code, "device_refused");
  EXPECT_EQ(a.details.at("address"), kStranger);
  EXPECT_EQ(a.details.at("class"), "0x000000");
  EXPECT_EQ(a.details.at("name"), "Skimmer");
  EXPECT_EQ(a.details.at("device"), kStrangerId);
  EXPECT_NE(a.message.find(kStranger), std::string::npos);

  for (const char* action : {"pair", "trust", "connect", "remove"}) {
    auto act = driver_->act(request(kStrangerId, action));
    ASSERT_FALSE(act.has_value()) << action;
    EXPECT_EQ(act.error().code, Errc::permission_denied) << action;
  }
  EXPECT_EQ(mock_->get_bool(BluezMock::device_path("hci0", kStranger), kDevice1, "Paired"), false);
  for (const auto& d : driver_->devices()) EXPECT_NE(d.id, kStrangerId);

  // One appearing later is refused the same way.
  ASSERT_TRUE(mock_->add_device("hci0", "DE:AD:BE:EF:00:01", "Other"));
  ASSERT_TRUE(sink_.wait([](const BtRecorded& r) { return r.alarms.size() == 2; }));
  r = sink_.snapshot();
  EXPECT_EQ(r.alarms[1].alarm.details.at("address"), "DE:AD:BE:EF:00:01");
  EXPECT_EQ(r.find_added("bt-deadbeef0001"), nullptr);
  ASSERT_TRUE(mock_->add_device("hci0", "11:22:33:00:00:01", "Allowed too"));
  ASSERT_TRUE(wait_added("bt-112233000001"));
  EXPECT_EQ(sink_.snapshot().alarms.size(), 2u);
}

// The class of device is checked too, and re-checked when it
// changes (BlueZ learns it on pairing).
// REQ-30
TEST_F(BluetoothDriverTest, ClassOutsideAllowListIsRefused) {
  config_.allowed_classes = {"phone"};
  ASSERT_TRUE(mock_->add_adapter("hci0", "terminal"));
  ASSERT_TRUE(mock_->add_device("hci0", kPhone, "My Phone"));  // class 0: miscellaneous
  start_driver();
  BtRecorded r = sink_.snapshot();
  EXPECT_EQ(r.find_added(kPhoneId), nullptr);
  ASSERT_EQ(r.alarms.size(), 1u);
  EXPECT_EQ(r.alarms[0].alarm.details.at("class"), "0x000000");

  ASSERT_TRUE(mock_->pair_device("hci0", kPhone, 0x5A020C));  // now a smartphone
  ASSERT_TRUE(wait_added(kPhoneId));
  EXPECT_EQ(sink_.snapshot().find_added(kPhoneId)->attributes.at("class"), "0x5a020c");
}

// Bluetooth managed through the gateway stays responsive when BlueZ
// hangs: actions fail with unavailable within the call timeout, stop() is prompt.
// REQ-18
TEST_F(BluetoothDriverTest, HungBlueZFailsActionsInTimeAndStopStaysPrompt) {
  config_.call_timeout_ms = 500;
  ASSERT_TRUE(mock_->add_adapter("hci0", "terminal"));
  ASSERT_TRUE(mock_->add_device("hci0", kPhone, "My Phone"));
  start_driver();
  mock_->freeze_bluez();

  auto t0 = clock::now();
  auto r = driver_->act(request("bt-hci0", "power_off"));
  auto took = clock::now() - t0;
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Errc::unavailable) << r.error().message();
  EXPECT_GE(took, milliseconds(450));
  EXPECT_LT(took, milliseconds(500 + 1500));

  // The request's own timeout caps the call too.
  auto shorter = request(kPhoneId, "pair");
  shorter.timeout = milliseconds(200);
  t0 = clock::now();
  r = driver_->act(shorter);
  took = clock::now() - t0;
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Errc::unavailable);
  EXPECT_LT(took, milliseconds(200 + 1500));

  t0 = clock::now();
  auto st = driver_->self_test();
  EXPECT_LT(clock::now() - t0, milliseconds(500 + 1500));
  ASSERT_FALSE(st.empty());
  EXPECT_EQ(st[0].device_id, "bt-hci0");
  EXPECT_FALSE(st[0].responding);
  EXPECT_FALSE(st[0].passed());

  t0 = clock::now();
  driver_->stop();
  EXPECT_LT(clock::now() - t0, milliseconds(1000));
  EXPECT_EQ(sink_.snapshot().removed.size(), 2u);
  mock_->thaw_bluez();
}

// stop() does not wait for a BlueZ call in flight; its caller gets
// unavailable at once.
// REQ-18
TEST_F(BluetoothDriverTest, StopDuringACallInFlightIsPrompt) {
  config_.call_timeout_ms = 30000;
  ASSERT_TRUE(mock_->add_adapter("hci0", "terminal"));
  start_driver();
  testing::CallWatch watch(mock_->address(), "Set");
  ASSERT_TRUE(watch.ok()) << watch.error();
  mock_->freeze_bluez();
  Result<ActionResult> result = fail(Errc::internal, "", "", "not run");
  std::thread caller([&] { result = driver_->act(request("bt-hci0", "power_off")); });
  ASSERT_TRUE(watch.wait(milliseconds(10000)));  // the Set is on its way to a frozen BlueZ
  const auto t0 = clock::now();
  driver_->stop();
  caller.join();
  EXPECT_LT(clock::now() - t0, milliseconds(1000));
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().code, Errc::unavailable);
  EXPECT_NE(result.error().why.find("closed"), std::string::npos) << result.error().message();
  mock_->thaw_bluez();
}

TEST_F(BluetoothDriverTest, SelfTestChecksAdaptersAndAllowedDevices) {
  config_.allowed_addresses = {kPhone, "22:22:22:22:22:22", "33:*"};
  ASSERT_TRUE(mock_->add_adapter("hci0", "terminal"));
  ASSERT_TRUE(mock_->add_device("hci0", kPhone, "My Phone"));
  start_driver();
  auto st = driver_->self_test();
  ASSERT_EQ(st.size(), 3u);
  EXPECT_EQ(st[0].device_id, "bt-hci0");
  EXPECT_TRUE(st[0].passed()) << st[0].detail;
  EXPECT_EQ(st[0].detail, "powered on");
  EXPECT_EQ(st[1].device_id, kPhoneId);
  EXPECT_TRUE(st[1].passed()) << st[1].detail;
  EXPECT_EQ(st[2].device_id, "bt-222222222222");
  EXPECT_FALSE(st[2].present);
  EXPECT_FALSE(st[2].passed());
}

TEST_F(BluetoothDriverTest, SelfTestWithoutAdapterFails) {
  start_driver();
  auto st = driver_->self_test();
  ASSERT_EQ(st.size(), 1u);
  EXPECT_EQ(st[0].device_id, "bt");
  EXPECT_FALSE(st[0].present);
}

class BluetoothDriverNoBlueZ : public BluetoothDriverTest {
 protected:
  BluetoothDriverNoBlueZ() { with_bluez_ = false; }
};

TEST_F(BluetoothDriverNoBlueZ, StartsEmptyAndPicksUpBlueZWhenItComesAndGoes) {
  start_driver();
  EXPECT_TRUE(sink_.snapshot().added.empty());
  auto st = driver_->self_test();
  ASSERT_EQ(st.size(), 1u);
  EXPECT_FALSE(st[0].passed());
  EXPECT_NE(st[0].detail.find("org.bluez"), std::string::npos) << st[0].detail;

  ASSERT_TRUE(mock_->start_bluez());
  ASSERT_TRUE(mock_->add_adapter("hci0", "terminal"));
  ASSERT_TRUE(mock_->add_device("hci0", kPhone, "My Phone"));
  ASSERT_TRUE(wait_added("bt-hci0"));
  ASSERT_TRUE(wait_added(kPhoneId));

  // BlueZ goes away: its devices go with it.
  ASSERT_TRUE(mock_->kill_bluez());
  ASSERT_TRUE(sink_.wait(
      [](const BtRecorded& r) { return r.was_removed("bt-hci0") && r.was_removed(kPhoneId); }));
  auto r = driver_->act(request("bt-hci0", "power_on"));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Errc::not_found);
}

// The bus itself goes away: every device is reported removed; when a bus
// is back, the driver reconnects and BlueZ's devices return.
TEST_F(BluetoothDriverTest, BusLostThenBackReconnects) {
  ASSERT_TRUE(mock_->add_adapter("hci0", "terminal"));
  ASSERT_TRUE(mock_->add_device("hci0", kPhone, "My Phone"));
  start_driver();
  ASSERT_TRUE(mock_->restart_bus());
  ASSERT_TRUE(sink_.wait(
      [](const BtRecorded& r) { return r.was_removed("bt-hci0") && r.was_removed(kPhoneId); }));
  auto r = driver_->act(request("bt-hci0", "power_off"));
  ASSERT_FALSE(r.has_value());

  ASSERT_TRUE(mock_->start_bluez());
  ASSERT_TRUE(mock_->add_adapter("hci0", "terminal"));
  ASSERT_TRUE(sink_.wait([](const BtRecorded& r) {
    return std::count_if(r.added.begin(), r.added.end(),
                         [](const DeviceInfo& d) { return d.id == "bt-hci0"; }) == 2;
  }));
  auto on = driver_->act(request("bt-hci0", "power_off"));
  ASSERT_TRUE(on.has_value()) << on.error().message();
  EXPECT_EQ(mock_->get_bool("/org/bluez/hci0", kAdapter1, "Powered"), false);
}

TEST(BluetoothDriverConfig, InvalidConfigAndUnreachableBus) {
  BtRecordingSink sink;
  auto expect_start_error = [&](BluetoothConfig c, Errc code) {
    BluetoothDriver driver(c);
    auto r = driver.start(sink);
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().code, code) << r.error().message();
  };
  BluetoothConfig c;
  c.bus = "nonsense";
  expect_start_error(c, Errc::invalid_argument);
  c = {};
  c.id_prefix = "";
  expect_start_error(c, Errc::invalid_argument);
  c = {};
  c.id_prefix = "b t";
  expect_start_error(c, Errc::invalid_argument);
  c = {};
  c.call_timeout_ms = 0;
  expect_start_error(c, Errc::invalid_argument);
  c = {};
  c.allowed_addresses = {"11:22"};
  expect_start_error(c, Errc::invalid_argument);
  c = {};
  c.allowed_classes = {"toaster"};
  expect_start_error(c, Errc::invalid_argument);
  c = {};
  c.bus = "unix:path=/nonexistent/portier-test-bus";
  c.call_timeout_ms = 1000;
  expect_start_error(c, Errc::unavailable);
  EXPECT_TRUE(sink.snapshot().added.empty());
  EXPECT_TRUE(BluetoothDriver::validate(BluetoothConfig{}).has_value());

  BluetoothDriver idle(BluetoothConfig{});
  auto act = idle.act(request("bt-hci0", "power_on"));
  ASSERT_FALSE(act.has_value());
  EXPECT_EQ(act.error().code, Errc::unavailable);
}

TEST_F(BluetoothDriverTest, StartTwiceFails) {
  start_driver();
  auto again = driver_->start(sink_);
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().code, Errc::failed_precondition);
}

}  // namespace
}  // namespace portier::drivers
