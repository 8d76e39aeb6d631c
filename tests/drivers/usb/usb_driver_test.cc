// UsbDriver against fixture sysfs trees and injected uevents.
//
// The kernel USB stack is not reachable on a test machine: sysfs_root points
// at a tree the test builds in a temp dir (see usb_test_support.h), and
// uevent_source at a unix datagram socket in that dir to which the test
// sends what the kernel would send on NETLINK_KOBJECT_UEVENT. Every wait has
// a deadline; nothing sleeps and then checks.
#include "usb/usb_driver.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>

#include "drivers/usb/fake_usb_backend.h"
#include "drivers/usb/usb_test_support.h"
#include "usb/usb_identity.h"

namespace portier::drivers::usb {
namespace {

using namespace std::string_literals;
using testing::device_uevent;
using testing::eventually;
using testing::FixtureDevice;
using testing::FixtureTree;
using testing::make_uevent;
using testing::Recorded;
using testing::UeventInjector;
using testing::UsbSink;

std::string identity_of(const FixtureDevice& d) {
  UsbIdentityInput in{d.vendor,          d.product,
                      d.bcd_device,      d.device_class,
                      d.device_subclass, d.device_protocol,
                      d.manufacturer,    d.product_name,
                      d.serial,          format_interface_classes(d.interfaces)};
  return *usb_identity(in);
}

std::vector<std::string> action_names(const DeviceInfo& d) {
  std::vector<std::string> out;
  for (const auto& a : d.actions) out.push_back(a.name);
  return out;
}

const ActionSpec* find_action(const DeviceInfo& d, const std::string& name) {
  for (const auto& a : d.actions) {
    if (a.name == name) return &a;
  }
  return nullptr;
}

const testing::Alarm* find_alarm(const Recorded& r, const std::string& code) {
  for (const auto& a : r.alarms) {
    if (a.data.code == code) return &a;
  }
  return nullptr;
}

class UsbDriverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tree_.add(FixtureTree::root_hub(1));
    tree_.add(FixtureTree::scanner("1-1"));
    tree_.add(FixtureTree::card_reader("1-2"));
    config_.sysfs_root = tree_.sysfs().string();
    config_.uevent_source = tree_.socket_path();
  }

  // Starts the driver and checks it came up.
  void start(UsbDriver& d) { ASSERT_TRUE(d.start(sink_).has_value()); }
  UeventInjector& inject() {
    if (!injector_) injector_ = std::make_unique<UeventInjector>(tree_.socket_path());
    return *injector_;
  }
  // Plugs `d` into the fixture and sends its "add" uevent.
  void plug(const FixtureDevice& d) {
    tree_.add(d);
    ASSERT_TRUE(inject().send(device_uevent("add", d.name, d.busnum, d.devnum)));
  }
  void unplug(const std::string& name) {
    tree_.remove(name);
    ASSERT_TRUE(inject().send(device_uevent("remove", name)));
  }
  static bool handled_at_least(UsbDriver& d, std::uint64_t n) {
    return eventually([&] {
      const auto c = d.counters();
      return c.handled + c.ignored + c.rejected >= n;
    });
  }

  FixtureTree tree_;
  UsbConfig config_;
  UsbSink sink_;
  std::unique_ptr<UeventInjector> injector_;
};

TEST_F(UsbDriverTest, ReportsEveryDeviceWithAttributesAndActions) {
  UsbDriver driver(config_);
  start(driver);
  const Recorded r = sink_.snapshot();
  ASSERT_EQ(r.added.size(), 3u);
  EXPECT_EQ(r.added[0].id, "usb-usb1");  // root hub first, then by port
  EXPECT_EQ(r.added[1].id, "usb-1-1");
  EXPECT_EQ(r.added[2].id, "usb-1-2");
  EXPECT_TRUE(r.states.empty());  // all authorized: ready, as device_added implies
  EXPECT_TRUE(r.alarms.empty());

  const DeviceInfo& s = r.added[1];
  EXPECT_EQ(s.device_class, "usb");
  EXPECT_EQ(s.driver, "usb");
  EXPECT_EQ(s.capabilities, (std::vector<std::string>{"events"}));
  EXPECT_EQ(s.attributes.at("vendor"), "0c2e");
  EXPECT_EQ(s.attributes.at("product"), "0b61");
  EXPECT_EQ(s.attributes.at("bcd_device"), "0100");
  EXPECT_EQ(s.attributes.at("serial"), "18263B0042");
  EXPECT_EQ(s.attributes.at("manufacturer"), "Honeywell");
  EXPECT_EQ(s.attributes.at("product_name"), "Hand-held scanner");
  EXPECT_EQ(s.attributes.at("interface_classes"), "03,0a");
  EXPECT_EQ(s.attributes.at("identity"), identity_of(FixtureTree::scanner()));
  EXPECT_EQ(s.attributes.at("port"), "1-1");
  EXPECT_EQ(s.attributes.at("busnum"), "1");
  EXPECT_EQ(s.attributes.at("devnum"), "5");
  EXPECT_EQ(s.attributes.at("authorized"), "1");
  EXPECT_EQ(s.attributes.count("hub"), 0u);
  EXPECT_EQ(s.attributes.count("descriptor_error"), 0u);
  EXPECT_EQ(action_names(s), (std::vector<std::string>{"authorize", "deauthorize",
                                                       "control_transfer", "bulk_transfer"}));
  EXPECT_EQ(find_action(s, "authorize")->op, "authorize");
  EXPECT_FALSE(find_action(s, "authorize")->needs_claim);
  EXPECT_EQ(find_action(s, "control_transfer")->op, "write");
  EXPECT_TRUE(find_action(s, "control_transfer")->needs_claim);
  EXPECT_TRUE(find_action(s, "bulk_transfer")->needs_claim);

  const DeviceInfo& reader = r.added[2];
  EXPECT_EQ(reader.attributes.at("vendor"), "072f");
  EXPECT_EQ(reader.attributes.at("product"), "2200");
  EXPECT_EQ(reader.attributes.at("serial"), "");
  EXPECT_EQ(reader.attributes.at("interface_classes"), "0b");

  const DeviceInfo& hub = r.added[0];
  EXPECT_EQ(hub.attributes.at("hub"), "1");
  EXPECT_EQ(hub.attributes.at("authorized_default"), "1");
  EXPECT_EQ(hub.attributes.at("interface_classes"), "09");
  EXPECT_EQ(action_names(hub),
            (std::vector<std::string>{"authorize", "deauthorize", "authorize_default"}));
  EXPECT_EQ(find_action(hub, "authorize_default")->op, "authorize");

  driver.stop();
  const Recorded after = sink_.snapshot();
  // Children before their hub, no alarms: stopping is not a removal.
  EXPECT_EQ(after.removed, (std::vector<std::string>{"usb-1-1", "usb-1-2", "usb-usb1"}));
  EXPECT_TRUE(after.alarms.empty());
}

TEST_F(UsbDriverTest, HotplugAddAndRemove) {
  UsbDriver driver(config_);
  start(driver);
  FixtureDevice printer = FixtureTree::card_reader("1-3");
  printer.vendor = "0dd4";
  printer.product = "0205";
  printer.interfaces = {0x07};
  printer.devnum = "7";
  plug(printer);
  ASSERT_TRUE(sink_.wait_log("added usb-1-3"));
  EXPECT_EQ(sink_.snapshot().last_added("usb-1-3")->attributes.at("interface_classes"), "07");

  unplug("1-3");
  ASSERT_TRUE(sink_.wait_log("removed usb-1-3"));
  // A hub behind a port and a device behind it.
  FixtureDevice hub = FixtureTree::card_reader("1-4");
  hub.device_class = "09";
  hub.interfaces = {0x09};
  hub.devnum = "8";
  plug(hub);
  plug(FixtureTree::card_reader("1-4.1"));
  ASSERT_TRUE(sink_.wait_log("added usb-1-4.1"));
  EXPECT_EQ(sink_.snapshot().last_added("usb-1-4")->attributes.at("hub"), "1");
  // A hub has no authorized_default (the kernel keeps it on root hubs).
  EXPECT_EQ(sink_.snapshot().last_added("usb-1-4")->attributes.count("authorized_default"), 0u);
  EXPECT_TRUE(sink_.snapshot().alarms.empty());
}

TEST_F(UsbDriverTest, IgnoresUdevForeignAndMalformedUevents) {
  UsbDriver driver(config_);
  start(driver);
  tree_.add(FixtureTree::card_reader("1-3"));
  const std::string good = device_uevent("add", "1-3");
  // udev's re-broadcast of the same event: user space, not the kernel.
  ASSERT_TRUE(inject().send("libudev\0"s + std::string(32, '\x01') + good));
  ASSERT_TRUE(inject().send("garbage without structure"));
  ASSERT_TRUE(inject().send(std::string(64, '\0')));
  ASSERT_TRUE(inject().send(good.substr(0, good.find('\0'))));  // header only
  // Another subsystem, and a usb event that is neither device nor interface.
  ASSERT_TRUE(inject().send(make_uevent("add", "/devices/virtual/tty/ttyS9", {}, "tty")));
  ASSERT_TRUE(inject().send(make_uevent("add", "/devices/pci0000:00/usb1/1-1/ep_81")));
  ASSERT_TRUE(handled_at_least(driver, 6));
  {
    const auto c = driver.counters();
    EXPECT_EQ(c.rejected, 4u);
    EXPECT_EQ(c.ignored, 2u);
    EXPECT_EQ(c.handled, 0u);
    EXPECT_NE(c.last_rejection.find("no KEY=VALUE"), std::string::npos) << c.last_rejection;
  }
  EXPECT_EQ(sink_.snapshot().added.size(), 3u);  // nothing new yet

  // The real kernel event still works afterwards.
  ASSERT_TRUE(inject().send(good));
  ASSERT_TRUE(sink_.wait_log("added usb-1-3"));
  const Recorded r = sink_.snapshot();
  EXPECT_EQ(r.added.size(), 4u);
  EXPECT_TRUE(r.alarms.empty());
  EXPECT_TRUE(r.removed.empty());
}

TEST_F(UsbDriverTest, InterfaceEventsAndRepeatedAddsReportNothingNew) {
  UsbDriver driver(config_);
  start(driver);
  ASSERT_TRUE(inject().send(make_uevent("add", FixtureTree::devpath("1-1") + "/1-1:1.0",
                                        {{"DEVTYPE", "usb_interface"}, {"INTERFACE", "3/1/1"}})));
  ASSERT_TRUE(inject().send(make_uevent("remove", FixtureTree::devpath("1-1") + "/1-1:1.1",
                                        {{"DEVTYPE", "usb_interface"}})));
  ASSERT_TRUE(inject().send(device_uevent("add", "1-1", "1", "5")));  // e.g. udevadm trigger
  ASSERT_TRUE(inject().send(device_uevent("bind", "1-1", "1", "5")));
  ASSERT_TRUE(handled_at_least(driver, 4));
  EXPECT_EQ(driver.counters().handled, 4u);
  const Recorded r = sink_.snapshot();
  EXPECT_EQ(r.added.size(), 3u);
  EXPECT_TRUE(r.removed.empty());
  EXPECT_TRUE(r.states.empty());
}

TEST_F(UsbDriverTest, ChangeForAnUnknownDeviceAddsItAndReenumerationReplacesIt) {
  UsbDriver driver(config_);
  start(driver);
  // A missed "add": the next event about the device brings it in.
  tree_.add(FixtureTree::card_reader("1-3"));
  ASSERT_TRUE(inject().send(device_uevent("change", "1-3")));
  ASSERT_TRUE(sink_.wait_log("added usb-1-3"));
  // A missed remove + add: same port, new device number.
  tree_.remove("1-3");
  FixtureDevice again = FixtureTree::card_reader("1-3");
  again.devnum = "17";
  tree_.add(again);
  ASSERT_TRUE(inject().send(device_uevent("change", "1-3")));
  ASSERT_TRUE(sink_.wait_log("added usb-1-3", 2));
  const Recorded r = sink_.snapshot();
  EXPECT_EQ(r.count_log("removed usb-1-3"), 1u);
  EXPECT_EQ(r.last_added("usb-1-3")->attributes.at("devnum"), "17");
}

// REQ-3: a pinned reading device keeps its id wherever it is plugged in, and
// its removal raises an alarm.
TEST_F(UsbDriverTest, PinnedDeviceKeepsItsIdAcrossPortsAndRemovalRaisesAlarm) {
  config_.pinned = {{"scanner0", identity_of(FixtureTree::scanner()), ""}};
  UsbDriver driver(config_);
  start(driver);
  {
    const Recorded r = sink_.snapshot();
    const DeviceInfo* s = r.last_added("scanner0");
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(s->attributes.at("port"), "1-1");
    EXPECT_EQ(s->attributes.at("pinned"), "1");
    EXPECT_EQ(r.last_added("usb-1-1"), nullptr);
  }

  unplug("1-1");
  ASSERT_TRUE(sink_.wait_log("removed scanner0"));
  {
    const Recorded r = sink_.snapshot();
    // The alarm comes while the id is still known, before device_removed.
    const auto alarm_at = std::find(r.log.begin(), r.log.end(), "alarm scanner0 device_removed");
    const auto removed_at = std::find(r.log.begin(), r.log.end(), "removed scanner0");
    ASSERT_NE(alarm_at, r.log.end());
    EXPECT_LT(alarm_at, removed_at);
    const auto* a = find_alarm(r, "device_removed");
    EXPECT_EQ(a->device_id, "scanner0");
    EXPECT_EQ(a->data.details.at("pinned_id"), "scanner0");
    EXPECT_EQ(a->data.details.at("identity"), identity_of(FixtureTree::scanner()));
    EXPECT_EQ(a->data.details.at("port"), "1-1");
    EXPECT_EQ(a->data.details.at("serial"), "18263B0042");
    EXPECT_NE(a->data.message.find("scanner0"), std::string::npos);
  }

  // The same scanner on another port: same identity, same id, no new alarm.
  FixtureDevice moved = FixtureTree::scanner("1-3");
  moved.devnum = "12";
  plug(moved);
  ASSERT_TRUE(sink_.wait_log("added scanner0", 2));
  const Recorded r = sink_.snapshot();
  EXPECT_EQ(r.last_added("scanner0")->attributes.at("port"), "1-3");
  EXPECT_EQ(r.last_added("scanner0")->attributes.at("identity"),
            identity_of(FixtureTree::scanner()));
  EXPECT_EQ(r.alarms.size(), 1u);
  EXPECT_EQ(r.last_added("usb-1-3"), nullptr);
}

// REQ-4: another device on the port of an absent pinned reader is reported
// as a substitution; with block_unknown it is switched off at once.
TEST_F(UsbDriverTest, SubstitutionOnThePinnedPortRaisesAlarm) {
  config_.pinned = {{"scanner0", identity_of(FixtureTree::scanner()), ""}};
  UsbDriver driver(config_);
  start(driver);
  unplug("1-1");
  ASSERT_TRUE(sink_.wait_log("removed scanner0"));

  FixtureDevice other = FixtureTree::scanner("1-1");
  other.serial = "99999X0001";  // same model, another unit
  other.devnum = "13";
  plug(other);
  ASSERT_TRUE(sink_.wait_log("alarm usb-1-1 device_substituted"));
  const Recorded r = sink_.snapshot();
  const auto* a = find_alarm(r, "device_substituted");
  EXPECT_EQ(a->device_id, "usb-1-1");
  EXPECT_EQ(a->data.details.at("pinned_id"), "scanner0");
  EXPECT_EQ(a->data.details.at("expected_identity"), identity_of(FixtureTree::scanner()));
  EXPECT_EQ(a->data.details.at("actual_identity"), identity_of(other));
  EXPECT_EQ(a->data.details.at("port"), "1-1");
  EXPECT_EQ(a->data.details.at("serial"), "99999X0001");
  EXPECT_EQ(a->data.details.at("action"), "none");  // block_unknown is off
  EXPECT_EQ(tree_.read("1-1", "authorized"), "1");
  // device_added came first, so the gateway knows the id the alarm is on.
  const auto added_at = std::find(r.log.begin(), r.log.end(), "added usb-1-1");
  const auto alarm_at = std::find(r.log.begin(), r.log.end(), "alarm usb-1-1 device_substituted");
  EXPECT_LT(added_at, alarm_at);
}

// REQ-4, REQ-30: substitute blocked.
TEST_F(UsbDriverTest, SubstituteIsDeauthorizedWithBlockUnknown) {
  config_.pinned = {{"scanner0", identity_of(FixtureTree::scanner()), ""}};
  config_.allowed = {identity_of(FixtureTree::card_reader())};
  config_.block_unknown = true;
  UsbDriver driver(config_);
  start(driver);
  EXPECT_TRUE(sink_.snapshot().alarms.empty());  // hub, pinned and allowed: all known
  unplug("1-1");
  ASSERT_TRUE(sink_.wait_log("removed scanner0"));

  FixtureDevice other = FixtureTree::card_reader("1-1");
  other.devnum = "14";
  other.serial = "R2";
  plug(other);
  ASSERT_TRUE(sink_.wait_log("alarm usb-1-1 device_substituted"));
  EXPECT_EQ(tree_.read("1-1", "authorized"), "0");
  const Recorded r = sink_.snapshot();
  EXPECT_EQ(find_alarm(r, "device_substituted")->data.details.at("action"), "deauthorized");
  EXPECT_EQ(r.last_added("usb-1-1")->attributes.at("authorized"), "0");
  EXPECT_EQ(r.count_log("state usb-1-1 disconnected"), 1u);
}

// REQ-4: a pin with a configured port detects a substitute present at start.
TEST_F(UsbDriverTest, SubstituteOnTheConfiguredPortAtStart) {
  FixtureDevice expected = FixtureTree::card_reader("1-2");
  expected.serial = "ORIGINAL";
  config_.pinned = {{"reader0", identity_of(expected), "1-2"}};
  UsbDriver driver(config_);
  start(driver);  // reported before start() returns
  const Recorded r = sink_.snapshot();
  const auto* a = find_alarm(r, "device_substituted");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->device_id, "usb-1-2");
  EXPECT_EQ(a->data.details.at("pinned_id"), "reader0");
  EXPECT_EQ(a->data.details.at("actual_identity"), identity_of(FixtureTree::card_reader()));
}

// REQ-4: a pinned reader that moved while the daemon was down is found on
// its new port; another device on its configured port is then no
// substitution, even though that port is enumerated first.
TEST_F(UsbDriverTest, PinnedDeviceMovedWhileStoppedIsNoSubstitution) {
  tree_.remove("1-1");
  tree_.add(FixtureTree::scanner("1-3"));
  config_.pinned = {{"scanner0", identity_of(FixtureTree::scanner()), "1-1"}};
  tree_.add(FixtureTree::card_reader("1-1"));  // configured port, other device
  UsbDriver driver(config_);
  start(driver);
  const Recorded r = sink_.snapshot();
  EXPECT_TRUE(r.alarms.empty());
  ASSERT_NE(r.last_added("scanner0"), nullptr);
  EXPECT_EQ(r.last_added("scanner0")->attributes.at("port"), "1-3");
  // Its port is now 1-3: removing it and plugging another device there is.
  unplug("1-3");
  FixtureDevice other = FixtureTree::card_reader("1-3");
  other.serial = "X";
  plug(other);
  ASSERT_TRUE(sink_.wait_log("alarm usb-1-3 device_substituted"));
}

TEST_F(UsbDriverTest, SecondDeviceWithAPinnedIdentityIsADuplicate) {
  config_.pinned = {{"scanner0", identity_of(FixtureTree::scanner()), ""}};
  config_.block_unknown = true;
  UsbDriver driver(config_);
  start(driver);
  FixtureDevice clone = FixtureTree::scanner("1-3");
  clone.devnum = "15";
  plug(clone);
  ASSERT_TRUE(sink_.wait_log("alarm usb-1-3 device_duplicate"));
  const Recorded r = sink_.snapshot();
  const auto* a = find_alarm(r, "device_duplicate");
  EXPECT_EQ(a->data.details.at("pinned_id"), "scanner0");
  EXPECT_EQ(a->data.details.at("pinned_port"), "1-1");
  EXPECT_EQ(tree_.read("1-3", "authorized"), "0");
  EXPECT_EQ(tree_.read("1-1", "authorized"), "1");
}

// REQ-30: unknown peripherals are refused and the failure is reported with
// the device's identity.
TEST_F(UsbDriverTest, BlockUnknownDeauthorizesAndReportsTheIdentity) {
  config_.pinned = {{"scanner0", identity_of(FixtureTree::scanner()), ""}};
  config_.block_unknown = true;
  UsbDriver driver(config_);
  start(driver);
  {
    const Recorded r = sink_.snapshot();
    EXPECT_EQ(tree_.read("1-2", "authorized"), "0");
    EXPECT_EQ(tree_.read("1-1", "authorized"), "1");
    EXPECT_EQ(tree_.read("usb1", "authorized"), "1");  // root hubs are never refused
    ASSERT_EQ(r.alarms.size(), 1u);
    const auto& a = r.alarms[0];
    EXPECT_EQ(a.device_id, "usb-1-2");
    EXPECT_EQ(a.data.code, "device_refused");
    EXPECT_EQ(a.data.details.at("identity"), identity_of(FixtureTree::card_reader()));
    EXPECT_EQ(a.data.details.at("vendor"), "072f");
    EXPECT_EQ(a.data.details.at("product"), "2200");
    EXPECT_EQ(a.data.details.at("port"), "1-2");
    EXPECT_EQ(a.data.details.at("action"), "deauthorized");
    EXPECT_EQ(r.last_added("usb-1-2")->attributes.at("authorized"), "0");
    // Deauthorized before it was reported: added, then state, then alarm.
    const std::vector<std::string> tail(r.log.end() - 3, r.log.end());
    EXPECT_EQ(tail, (std::vector<std::string>{"added usb-1-2", "state usb-1-2 disconnected",
                                              "alarm usb-1-2 device_refused"}));
  }
  // Hot-plugged unknown device: refused as well.
  FixtureDevice stick = FixtureTree::card_reader("1-3");
  stick.vendor = "0781";
  stick.product = "5567";
  stick.interfaces = {0x08};
  stick.devnum = "16";
  plug(stick);
  ASSERT_TRUE(sink_.wait_log("alarm usb-1-3 device_refused"));
  EXPECT_EQ(tree_.read("1-3", "authorized"), "0");
  // A hub is let through (allow_hubs), a device behind it is checked.
  FixtureDevice hub = FixtureTree::card_reader("1-4");
  hub.device_class = "09";
  hub.interfaces = {0x09};
  hub.devnum = "18";
  plug(hub);
  plug(FixtureTree::card_reader("1-4.2"));
  ASSERT_TRUE(sink_.wait_log("alarm usb-1-4.2 device_refused"));
  EXPECT_EQ(tree_.read("1-4", "authorized"), "1");
  EXPECT_EQ(sink_.snapshot().count_log("alarm usb-1-4 device_refused"), 0u);
}

// REQ-1: ports (devices, interfaces, root hub defaults) switched on and off
// by software.
TEST_F(UsbDriverTest, AuthorizeAndDeauthorizeWriteSysfs) {
  UsbDriver driver(config_);
  start(driver);
  ActionRequest off{"usb-1-1", "deauthorize", "", {}, std::chrono::milliseconds(1000)};
  auto r1 = driver.act(off);
  ASSERT_TRUE(r1.has_value()) << r1.error().message();
  EXPECT_EQ(r1->values.at("authorized"), "0");
  EXPECT_EQ(tree_.read("1-1", "authorized"), "0");
  ASSERT_TRUE(sink_.wait_log("state usb-1-1 disconnected"));

  ActionRequest on{"usb-1-1", "authorize", "", {}, std::chrono::milliseconds(1000)};
  ASSERT_TRUE(driver.act(on).has_value());
  EXPECT_EQ(tree_.read("1-1", "authorized"), "1");
  ASSERT_TRUE(sink_.wait_log("state usb-1-1 ready"));

  ActionRequest iface_off{"usb-1-1", "deauthorize", "", {{"interface", "1.1"}}};
  auto r2 = driver.act(iface_off);
  ASSERT_TRUE(r2.has_value()) << r2.error().message();
  EXPECT_EQ(r2->values.at("interface"), "1.1");
  EXPECT_EQ(tree_.read("1-1", "1-1:1.1/authorized"), "0");
  EXPECT_EQ(tree_.read("1-1", "1-1:1.0/authorized"), "1");
  EXPECT_EQ(tree_.read("1-1", "authorized"), "1");
  ActionRequest iface_on{"usb-1-1", "authorize", "", {{"interface", "1.1"}}};
  ASSERT_TRUE(driver.act(iface_on).has_value());
  EXPECT_EQ(tree_.read("1-1", "1-1:1.1/authorized"), "1");

  ActionRequest default_off{"usb-usb1", "authorize_default", "", {{"value", "0"}}};
  auto r3 = driver.act(default_off);
  ASSERT_TRUE(r3.has_value()) << r3.error().message();
  EXPECT_EQ(r3->values.at("authorized_default"), "0");
  EXPECT_EQ(tree_.read("usb1", "authorized_default"), "0");
  ActionRequest default_on{"usb-usb1", "authorize_default", "", {{"value", "1"}}};
  ASSERT_TRUE(driver.act(default_on).has_value());
  EXPECT_EQ(tree_.read("usb1", "authorized_default"), "1");
}

// REQ-1
TEST_F(UsbDriverTest, AuthorizeActionsRejectBadRequests) {
  UsbDriver driver(config_);
  ActionRequest early{"usb-1-1", "deauthorize", "", {}};
  EXPECT_EQ(driver.act(early).error().code, Errc::failed_precondition);
  start(driver);
  auto code = [&](ActionRequest r) { return driver.act(r).error().code; };
  EXPECT_EQ(code({"usb-9-9", "deauthorize", "", {}}), Errc::not_found);
  EXPECT_EQ(code({"usb-1-1", "explode", "", {}}), Errc::failed_precondition);
  EXPECT_EQ(code({"usb-1-1", "authorize_default", "", {{"value", "0"}}}),
            Errc::failed_precondition);  // not a root hub
  EXPECT_EQ(code({"usb-usb1", "authorize_default", "", {{"value", "2"}}}), Errc::invalid_argument);
  EXPECT_EQ(code({"usb-usb1", "authorize_default", "", {}}), Errc::invalid_argument);
  EXPECT_EQ(code({"usb-1-1", "deauthorize", "", {{"interface", "../../x"}}}),
            Errc::invalid_argument);
  EXPECT_EQ(code({"usb-1-1", "deauthorize", "", {{"interface", "1.9"}}}), Errc::not_found);
  EXPECT_EQ(code({"usb-1-1", "deauthorize", "", {{"port", "1"}}}), Errc::invalid_argument);
  EXPECT_EQ(tree_.read("1-1", "authorized"), "1");
  EXPECT_EQ(tree_.read("usb1", "authorized_default"), "1");
}

// With the real libusb, which reaches no device on a test machine: parameter checks
// and the error path (transfers themselves: UsbTransferTest below).
TEST_F(UsbDriverTest, TransfersValidateParametersAndReportLibusbErrors) {
  UsbDriver driver(config_);
  start(driver);
  auto code = [&](ActionRequest r) { return driver.act(r).error().code; };
  const auto bad = Errc::invalid_argument;
  EXPECT_EQ(code({"usb-1-1", "control_transfer", "", {}}), bad);  // no request_type
  EXPECT_EQ(code({"usb-1-1", "control_transfer", "", {{"request_type", "0x80"}}}), bad);
  EXPECT_EQ(code({"usb-1-1", "control_transfer", "", {{"request_type", "0x80"}, {"request", "6"}}}),
            bad);  // IN without length
  EXPECT_EQ(code({"usb-1-1",
                  "control_transfer",
                  "x",
                  {{"request_type", "0x80"}, {"request", "6"}, {"length", "18"}}}),
            bad);  // IN with data
  EXPECT_EQ(code({"usb-1-1",
                  "control_transfer",
                  "",
                  {{"request_type", "0x180"}, {"request", "6"}, {"length", "18"}}}),
            bad);  // > 0xff
  EXPECT_EQ(code({"usb-1-1",
                  "control_transfer",
                  "",
                  {{"request_type", "0x80"}, {"request", "6"}, {"length", "5000"}}}),
            bad);
  EXPECT_EQ(code({"usb-1-1",
                  "control_transfer",
                  std::string(5000, 'x'),
                  {{"request_type", "0x21"}, {"request", "9"}}}),
            bad);
  EXPECT_EQ(code({"usb-1-1",
                  "control_transfer",
                  "",
                  {{"request_type", "zz"}, {"request", "6"}, {"length", "1"}}}),
            bad);
  EXPECT_EQ(code({"usb-1-1", "bulk_transfer", "x", {{"endpoint", "0x00"}}}), bad);
  EXPECT_EQ(code({"usb-1-1", "bulk_transfer", "x", {{"endpoint", "0x81"}}}), bad);  // IN + data
  EXPECT_EQ(code({"usb-1-1", "bulk_transfer", "", {{"endpoint", "0x02"}}}), bad);   // no data
  EXPECT_EQ(code({"usb-1-1", "bulk_transfer", "", {{"endpoint", "0x81"}, {"length", "0"}}}), bad);
  EXPECT_EQ(code({"usb-1-1", "bulk_transfer", "x", {{"endpoint", "0x02"}, {"length", "1"}}}),
            bad);  // length is for IN
  EXPECT_EQ(code({"usb-1-1", "bulk_transfer", "x", {{"endpoint", "0x02"}, {"speed", "1"}}}), bad);
  EXPECT_EQ(code({"usb-usb1", "bulk_transfer", "x", {{"endpoint", "0x02"}}}),
            Errc::failed_precondition);  // not on hubs
  EXPECT_EQ(code({"usb-usb1",
                  "control_transfer",
                  "",
                  {{"request_type", "0x80"}, {"request", "6"}, {"length", "18"}}}),
            Errc::failed_precondition);  // not on root hubs

  // Valid requests reach libusb, which finds no such device here.
  auto ctl = driver.act({"usb-1-1",
                         "control_transfer",
                         "",
                         {{"request_type", "0x80"},
                          {"request", "6"},
                          {"value", "0x0100"},
                          {"index", "0"},
                          {"length", "18"}},
                         std::chrono::milliseconds(200)});
  ASSERT_FALSE(ctl.has_value());
  EXPECT_EQ(ctl.error().code, Errc::unavailable);
  EXPECT_NE(ctl.error().message().find("LIBUSB_ERROR_"), std::string::npos)
      << ctl.error().message();
  auto bulk = driver.act({"usb-1-1",
                          "bulk_transfer",
                          "\x1b@"s,
                          {{"endpoint", "0x02"}, {"interface", "1"}},
                          std::chrono::milliseconds(200)});
  ASSERT_FALSE(bulk.has_value());
  EXPECT_EQ(bulk.error().code, Errc::unavailable);
  EXPECT_NE(bulk.error().message().find("LIBUSB_ERROR_"), std::string::npos)
      << bulk.error().message();

  // A deauthorized device takes no transfers.
  ASSERT_TRUE(driver.act({"usb-1-1", "deauthorize", "", {}}).has_value());
  ASSERT_TRUE(sink_.wait_log("state usb-1-1 disconnected"));
  EXPECT_EQ(code({"usb-1-1", "bulk_transfer", "x", {{"endpoint", "0x02"}}}),
            Errc::failed_precondition);
}

// The kernel's USB stack is not reachable here: these transfers go to a
// libusb-level double playing the scanner at bus 1 address 5
// (fake_usb_backend.h). Everything above that boundary is the driver's.
class UsbTransferTest : public UsbDriverTest {
 protected:
  drivers::testing::FakeUsbDevice device_{1, 5, 0x0c2e, 0x0b61};
};

TEST_F(UsbTransferTest, ControlTransfersInAndOut) {
  UsbDriver driver(config_, device_.backend());
  start(driver);
  auto desc = driver.act(
      {"usb-1-1",
       "control_transfer",
       "",
       {{"request_type", "0x80"}, {"request", "6"}, {"value", "0x0100"}, {"length", "18"}},
       std::chrono::milliseconds(500)});
  ASSERT_TRUE(desc.has_value()) << desc.error().message();
  ASSERT_EQ(desc->data.size(), 18u);
  EXPECT_EQ(static_cast<unsigned char>(desc->data[8]), 0x2e);  // idVendor, little endian
  EXPECT_EQ(static_cast<unsigned char>(desc->data[9]), 0x0c);
  EXPECT_EQ(desc->values.at("transferred"), "18");

  auto out = driver.act(
      {"usb-1-1", "control_transfer", "beep"s, {{"request_type", "0x40"}, {"request", "1"}}});
  ASSERT_TRUE(out.has_value()) << out.error().message();
  EXPECT_EQ(out->values.at("transferred"), "4");
  EXPECT_TRUE(out->data.empty());
  auto back = driver.act({"usb-1-1",
                          "control_transfer",
                          "",
                          {{"request_type", "0xC0"}, {"request", "1"}, {"length", "64"}}});
  ASSERT_TRUE(back.has_value()) << back.error().message();
  EXPECT_EQ(back->data, "beep");  // a short IN returns what came

  auto stall = driver.act({"usb-1-1",
                           "control_transfer",
                           "",
                           {{"request_type", "0xC0"}, {"request", "99"}, {"length", "1"}}});
  ASSERT_FALSE(stall.has_value());
  EXPECT_EQ(stall.error().code, Errc::unavailable);
  EXPECT_NE(stall.error().why.find("LIBUSB_ERROR_PIPE (the device stalled the request)"),
            std::string::npos)
      << stall.error().message();
  EXPECT_EQ(device_.open_handles(), 0u);  // every transfer closed its handle
}

TEST_F(UsbTransferTest, BulkLoopbackClaimsAndReleasesTheInterface) {
  UsbDriver driver(config_, device_.backend());
  start(driver);
  auto sent = driver.act(
      {"usb-1-1", "bulk_transfer", "\x1b@hello"s, {{"endpoint", "0x02"}, {"interface", "1"}}});
  ASSERT_TRUE(sent.has_value()) << sent.error().message();
  EXPECT_EQ(sent->values.at("transferred"), "7");
  auto read = driver.act({"usb-1-1",
                          "bulk_transfer",
                          "",
                          {{"endpoint", "0x81"}, {"interface", "1"}, {"length", "5"}}});
  ASSERT_TRUE(read.has_value()) << read.error().message();
  EXPECT_EQ(read->data, "\x1b@hel"s);
  EXPECT_EQ(device_.calls(),
            (std::vector<std::string>{"open", "claim 1", "bulk 0x02 7", "release 1", "close",
                                      "open", "claim 1", "bulk 0x81 5", "release 1", "close"}));

  auto rest =
      driver.act({"usb-1-1", "bulk_transfer", "", {{"endpoint", "0x81"}, {"length", "64"}}});
  ASSERT_TRUE(rest.has_value()) << rest.error().message();
  EXPECT_EQ(rest->data, "lo");
  auto empty = driver.act({"usb-1-1",
                           "bulk_transfer",
                           "",
                           {{"endpoint", "0x81"}, {"length", "8"}},
                           std::chrono::milliseconds(50)});
  ASSERT_FALSE(empty.has_value());
  EXPECT_NE(empty.error().why.find("LIBUSB_ERROR_TIMEOUT"), std::string::npos);
}

TEST_F(UsbTransferTest, InterfaceHeldByAKernelDriverIsNotTaken) {
  UsbDriver driver(config_, device_.backend());
  start(driver);
  auto r =
      driver.act({"usb-1-1", "bulk_transfer", "x", {{"endpoint", "0x02"}, {"interface", "0"}}});
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Errc::unavailable);
  EXPECT_NE(r.error().why.find("libusb_claim_interface 0: LIBUSB_ERROR_BUSY (a kernel driver may "
                               "hold it)"),
            std::string::npos)
      << r.error().message();
  const auto calls = device_.calls();
  EXPECT_EQ(std::count(calls.begin(), calls.end(), "bulk 0x02 1"), 0);  // nothing was sent
  EXPECT_EQ(device_.open_handles(), 0u);
}

// REQ-4: a transfer never reaches a different device that now sits at the
// address, and a device that went away answers unavailable.
TEST_F(UsbTransferTest, ReplacedOrRemovedDeviceGetsNoTransfer) {
  UsbDriver driver(config_, device_.backend());
  start(driver);
  device_.replace(0xdead, 0xbeef);
  auto swapped = driver.act({"usb-1-1", "bulk_transfer", "x", {{"endpoint", "0x02"}}});
  ASSERT_FALSE(swapped.has_value());
  EXPECT_NE(swapped.error().why.find("is no longer 0c2e:0b61 but dead:beef"), std::string::npos)
      << swapped.error().message();
  const auto calls = device_.calls();
  EXPECT_EQ(std::count(calls.begin(), calls.end(), "open"), 0);  // not even opened
  EXPECT_EQ(std::count(calls.begin(), calls.end(), "bulk 0x02 1"), 0);

  device_.unplug();
  auto gone = driver.act({"usb-1-1", "bulk_transfer", "x", {{"endpoint", "0x02"}}});
  ASSERT_FALSE(gone.has_value());
  EXPECT_EQ(gone.error().code, Errc::unavailable);
  EXPECT_NE(
      gone.error().why.find("libusb sees no device at bus 1 address 5 (LIBUSB_ERROR_NO_DEVICE)"),
      std::string::npos)
      << gone.error().message();
}

TEST_F(UsbDriverTest, WriteIsNotHowUsbDevicesTakeData) {
  UsbDriver driver(config_);
  start(driver);
  EXPECT_EQ(driver.write("usb-1-1", "x").error().code, Errc::failed_precondition);
  EXPECT_EQ(driver.write("nope", "x").error().code, Errc::not_found);
}

// REQ-12: pinned devices are self-tested before the daemon is ready.
TEST_F(UsbDriverTest, SelfTestChecksPresenceAuthorizationAndIdentity) {
  FixtureDevice reader_off = FixtureTree::card_reader("1-2");
  tree_.set("1-2", "authorized", "0");
  config_.pinned = {
      {"scanner0", identity_of(FixtureTree::scanner()), ""},
      {"reader0", identity_of(reader_off), ""},
      {"printer0", std::string(64, 'e'), "1-5"},
  };
  UsbDriver driver(config_);
  start(driver);
  EXPECT_EQ(sink_.snapshot().count_log("state reader0 disconnected"), 1u);
  auto results = driver.self_test();
  ASSERT_EQ(results.size(), 3u);
  EXPECT_EQ(results[0].device_id, "scanner0");
  EXPECT_TRUE(results[0].present);
  EXPECT_TRUE(results[0].responding);
  EXPECT_TRUE(results[0].identity_ok);
  EXPECT_TRUE(results[0].passed()) << results[0].detail;

  EXPECT_EQ(results[1].device_id, "reader0");
  EXPECT_TRUE(results[1].present);
  EXPECT_FALSE(results[1].responding);
  EXPECT_TRUE(results[1].identity_ok);
  EXPECT_NE(results[1].detail.find("deauthorized"), std::string::npos) << results[1].detail;

  EXPECT_EQ(results[2].device_id, "printer0");
  EXPECT_FALSE(results[2].present);
  EXPECT_FALSE(results[2].passed());
  EXPECT_NE(results[2].detail.find("1-5"), std::string::npos) << results[2].detail;

  // The scanner's strings change under us (firmware swap, spoofing):
  // identity_ok turns false.
  tree_.set("1-1", "serial", "CHANGED");
  results = driver.self_test();
  EXPECT_TRUE(results[0].present);
  EXPECT_FALSE(results[0].identity_ok);
  EXPECT_NE(results[0].detail.find("identity is now"), std::string::npos) << results[0].detail;

  // Its sysfs node disappears (the remove uevent not yet handled).
  tree_.remove("1-1");
  results = driver.self_test();
  EXPECT_FALSE(results[0].present);
  EXPECT_FALSE(results[0].passed());
}

TEST_F(UsbDriverTest, SelfTestWithoutPinsIsEmpty) {
  UsbDriver driver(config_);
  start(driver);
  EXPECT_TRUE(driver.self_test().empty());
}

TEST_F(UsbDriverTest, MalformedOrMissingDescriptorsAreListedWithTheReason) {
  FixtureDevice truncated = FixtureTree::card_reader("1-3");
  truncated.has_descriptors_override = true;
  truncated.descriptors_override = testing::descriptors_for(truncated).substr(0, 30);
  tree_.add(truncated);
  FixtureDevice zero = FixtureTree::card_reader("1-4");
  zero.has_descriptors_override = true;
  zero.descriptors_override = testing::descriptors_for(zero);
  zero.descriptors_override[27] = 0;  // bLength 0 of the interface descriptor
  tree_.add(zero);
  FixtureDevice none = FixtureTree::card_reader("1-5");
  none.write_descriptors = false;
  tree_.add(none);
  UsbDriver driver(config_);
  start(driver);
  const Recorded r = sink_.snapshot();
  const DeviceInfo* t = r.last_added("usb-1-3");
  ASSERT_NE(t, nullptr);
  EXPECT_NE(t->attributes.at("descriptor_error").find("runs past the end"), std::string::npos)
      << t->attributes.at("descriptor_error");
  // Interface classes then come from the interface directories.
  EXPECT_EQ(t->attributes.at("interface_classes"), "0b");
  EXPECT_EQ(t->attributes.at("identity"), identity_of(truncated));
  const DeviceInfo* z = r.last_added("usb-1-4");
  ASSERT_NE(z, nullptr);
  EXPECT_NE(z->attributes.at("descriptor_error").find("at offset 27: descriptor bLength 0"),
            std::string::npos)
      << z->attributes.at("descriptor_error");
  const DeviceInfo* n = r.last_added("usb-1-5");
  ASSERT_NE(n, nullptr);
  EXPECT_NE(n->attributes.at("descriptor_error").find("cannot read descriptors"),
            std::string::npos);
}

TEST_F(UsbDriverTest, StartStopAndConfig) {
  UsbDriver driver(config_);
  start(driver);
  EXPECT_EQ(driver.start(sink_).error().code, Errc::failed_precondition);
  const auto t0 = std::chrono::steady_clock::now();
  driver.stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
  driver.stop();  // idempotent
  EXPECT_FALSE(std::filesystem::exists(tree_.socket_path()));
  // Restartable; a stale socket file from a crashed run is replaced.
  {
    const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    tree_.socket_path().copy(sa.sun_path, sizeof sa.sun_path - 1);
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    ::close(fd);
    ASSERT_TRUE(std::filesystem::exists(tree_.socket_path()));
  }
  start(driver);
  EXPECT_EQ(sink_.snapshot().added.size(), 6u);
  driver.stop();

  // No USB at all: no devices, no error.
  UsbConfig empty = config_;
  empty.sysfs_root = (tree_.dir() / "none").string();
  UsbDriver nothing(empty);
  UsbSink sink2;
  ASSERT_TRUE(nothing.start(sink2).has_value());
  EXPECT_TRUE(sink2.snapshot().added.empty());
  nothing.stop();
}

TEST_F(UsbDriverTest, StartFailsCleanlyAndDeletesNothingItDidNotCreate) {
  // A file that is not a socket where the test socket should go.
  { std::ofstream(tree_.socket_path()) << "precious"; }
  UsbDriver driver(config_);
  auto r = driver.start(sink_);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Errc::failed_precondition);
  EXPECT_TRUE(std::filesystem::exists(tree_.socket_path()));
  EXPECT_TRUE(sink_.snapshot().added.empty());
  std::filesystem::remove(tree_.socket_path());

  // bus/usb/devices exists but cannot be listed: an error, not "no USB".
  std::filesystem::remove_all(tree_.sysfs() / "bus/usb/devices");
  { std::ofstream(tree_.sysfs() / "bus/usb/devices") << "not a directory"; }
  auto r2 = driver.start(sink_);
  ASSERT_FALSE(r2.has_value());
  EXPECT_EQ(r2.error().code, Errc::io);
  EXPECT_FALSE(std::filesystem::exists(tree_.socket_path()));
}

TEST(UsbDriverConfig, Validation) {
  UsbConfig ok;
  EXPECT_TRUE(UsbDriver::validate(ok).has_value());
  auto bad = [](auto mutate) {
    UsbConfig c;
    mutate(c);
    auto r = UsbDriver::validate(c);
    return !r.has_value() && r.error().code == Errc::invalid_argument;
  };
  const std::string id(64, 'a');
  EXPECT_TRUE(bad([](UsbConfig& c) { c.sysfs_root.clear(); }));
  EXPECT_TRUE(bad([](UsbConfig& c) { c.uevent_source = "relative.sock"; }));
  EXPECT_TRUE(bad([](UsbConfig& c) { c.uevent_source = "/" + std::string(200, 'x'); }));
  EXPECT_TRUE(bad([](UsbConfig& c) { c.id_prefix = "USB"; }));
  EXPECT_TRUE(bad([](UsbConfig& c) { c.id_prefix.clear(); }));
  EXPECT_TRUE(bad([&](UsbConfig& c) { c.pinned = {{"", id, ""}}; }));
  EXPECT_TRUE(bad([&](UsbConfig& c) { c.pinned = {{"usb-1-1", id, ""}}; }));
  EXPECT_TRUE(bad([&](UsbConfig& c) { c.pinned = {{"a", id, ""}, {"a", id, ""}}; }));
  EXPECT_TRUE(bad([&](UsbConfig& c) { c.pinned = {{"a", "abc", ""}}; }));
  EXPECT_TRUE(bad([&](UsbConfig& c) { c.pinned = {{"a", std::string(64, 'A'), ""}}; }));
  EXPECT_TRUE(bad([&](UsbConfig& c) { c.pinned = {{"a", id, "../x"}}; }));
  EXPECT_TRUE(bad([&](UsbConfig& c) { c.allowed = {"x"}; }));
  UsbConfig good;
  good.pinned = {{"scanner0", id, "1-1.2"}, {"reader0", std::string(64, 'b'), ""}};
  good.allowed = {std::string(64, 'c')};
  EXPECT_TRUE(UsbDriver::validate(good).has_value());
  UsbDriver d(good);
  good.uevent_source = "x";
  UsbDriver broken(good);
  UsbSink sink;
  EXPECT_EQ(broken.start(sink).error().code, Errc::invalid_argument);
}

// The production source: a NETLINK_KOBJECT_UEVENT socket on group 1. It
// receives nothing from the USB stack here, but must open and stop cleanly.
TEST_F(UsbDriverTest, NetlinkSourceStartsAndStops) {
  config_.uevent_source = "netlink";
  UsbDriver driver(config_);
  auto started = driver.start(sink_);
  if (!started && started.error().code == Errc::unavailable) {
    GTEST_SKIP() << "no uevent netlink here: " << started.error().message();
  }
  ASSERT_TRUE(started.has_value()) << started.error().message();
  EXPECT_EQ(sink_.snapshot().added.size(), 3u);
  const auto t0 = std::chrono::steady_clock::now();
  driver.stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
}

}  // namespace
}  // namespace portier::drivers::usb
