// Reading and writing a (fixture) sysfs USB tree.
#include "usb/sysfs_usb_tree.h"

#include <gtest/gtest.h>

#include "drivers/usb/usb_test_support.h"

namespace portier::drivers::usb {
namespace {

using testing::FixtureTree;

TEST(SysfsUsbTree, Names) {
  for (const char* n : {"usb1", "usb12", "1-1", "1-1.2", "3-10.4.2"}) {
    EXPECT_TRUE(SysfsUsbTree::is_device_name(n)) << n;
  }
  for (const char* n : {"", "usb", "usbx", "1-", "-1", "1-1.", "1-1..2", "1-1:1.0", "../1-1",
                        "1-1/..", "ep_81", "usb1/../x"}) {
    EXPECT_FALSE(SysfsUsbTree::is_device_name(n)) << n;
  }
  EXPECT_TRUE(SysfsUsbTree::is_interface_name("1-1:1.0"));
  EXPECT_TRUE(SysfsUsbTree::is_interface_name("1-0:1.0"));
  EXPECT_TRUE(SysfsUsbTree::is_interface_name("2-1.4:2.13"));
  EXPECT_FALSE(SysfsUsbTree::is_interface_name("1-1"));
  EXPECT_FALSE(SysfsUsbTree::is_interface_name("usb1:1.0"));
  EXPECT_FALSE(SysfsUsbTree::is_interface_name("1-1:1"));
  EXPECT_TRUE(SysfsUsbTree::is_interface_suffix("1.0"));
  EXPECT_FALSE(SysfsUsbTree::is_interface_suffix("1.0/../x"));
  EXPECT_FALSE(SysfsUsbTree::is_interface_suffix("."));
}

TEST(SysfsUsbTree, ListsDevicesParentsFirstWithoutInterfaces) {
  FixtureTree t;
  t.add(FixtureTree::root_hub(1));
  t.add(FixtureTree::scanner("1-1"));
  auto hub = FixtureTree::scanner("1-3");
  hub.device_class = "09";
  hub.interfaces = {0x09};
  t.add(hub);
  t.add(FixtureTree::card_reader("1-3.2"));
  t.add(FixtureTree::card_reader("1-2"));
  SysfsUsbTree tree(t.sysfs().string());
  auto names = tree.list_devices();
  ASSERT_TRUE(names.has_value()) << names.error().message();
  EXPECT_EQ(*names, (std::vector<std::string>{"usb1", "1-1", "1-2", "1-3", "1-3.2"}));
}

TEST(SysfsUsbTree, NoUsbAtAllIsNotFound) {
  FixtureTree t;
  SysfsUsbTree tree((t.dir() / "nothing").string());
  auto names = tree.list_devices();
  ASSERT_FALSE(names.has_value());
  EXPECT_EQ(names.error().code, Errc::not_found);
}

TEST(SysfsUsbTree, ReadsADevice) {
  FixtureTree t;
  t.add(FixtureTree::root_hub(1));
  t.add(FixtureTree::scanner("1-1"));
  SysfsUsbTree tree(t.sysfs().string());
  auto d = tree.read_device("1-1");
  ASSERT_TRUE(d.has_value()) << d.error().message();
  EXPECT_EQ(d->name, "1-1");
  EXPECT_FALSE(d->root_hub);
  EXPECT_FALSE(d->hub());
  EXPECT_EQ(d->vendor, "0c2e");
  EXPECT_EQ(d->product, "0b61");
  EXPECT_EQ(d->bcd_device, "0100");
  EXPECT_EQ(d->manufacturer, "Honeywell");
  EXPECT_EQ(d->product_name, "Hand-held scanner");
  EXPECT_EQ(d->serial, "18263B0042");
  EXPECT_EQ(d->authorized, "1");
  EXPECT_FALSE(d->has_authorized_default);
  EXPECT_EQ(d->busnum, "1");
  EXPECT_EQ(d->devnum, "5");
  EXPECT_EQ(d->descriptors, testing::descriptors_for(FixtureTree::scanner("1-1")));
  ASSERT_EQ(d->interfaces.size(), 2u);
  EXPECT_EQ(d->interfaces[0].name, "1-1:1.0");
  EXPECT_EQ(d->interfaces[0].config_and_number, "1.0");
  EXPECT_EQ(d->interfaces[0].interface_class, "03");
  EXPECT_EQ(d->interfaces[1].interface_class, "0a");

  auto hub = tree.read_device("usb1");
  ASSERT_TRUE(hub.has_value()) << hub.error().message();
  EXPECT_TRUE(hub->root_hub);
  EXPECT_TRUE(hub->hub());
  EXPECT_TRUE(hub->has_authorized_default);
  EXPECT_EQ(hub->authorized_default, "1");
  ASSERT_EQ(hub->interfaces.size(), 1u);
  EXPECT_EQ(hub->interfaces[0].name, "1-0:1.0");
}

TEST(SysfsUsbTree, MissingDeviceAndRequiredAttribute) {
  FixtureTree t;
  t.add(FixtureTree::root_hub(1));
  t.add(FixtureTree::scanner("1-1"));
  SysfsUsbTree tree(t.sysfs().string());
  auto gone = tree.read_device("1-7");
  ASSERT_FALSE(gone.has_value());
  EXPECT_EQ(gone.error().code, Errc::not_found);
  std::filesystem::remove(t.device_dir("1-1") / "idVendor");
  auto broken = tree.read_device("1-1");
  ASSERT_FALSE(broken.has_value());
  EXPECT_NE(broken.error().message().find("idVendor"), std::string::npos);
  auto bad = tree.read_device("../../etc");
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code, Errc::invalid_argument);
}

// REQ-1: ports switched on and off by software.
TEST(SysfsUsbTree, WritesAuthorizedForDevicesInterfacesAndRootHubDefault) {
  FixtureTree t;
  t.add(FixtureTree::root_hub(1));
  t.add(FixtureTree::scanner("1-1"));
  SysfsUsbTree tree(t.sysfs().string());
  ASSERT_TRUE(tree.write_authorized("1-1", false).has_value());
  EXPECT_EQ(t.read("1-1", "authorized"), "0");
  ASSERT_TRUE(tree.write_authorized("1-1", true).has_value());
  EXPECT_EQ(t.read("1-1", "authorized"), "1");
  ASSERT_TRUE(tree.write_interface_authorized("1-1", "1.1", false).has_value());
  EXPECT_EQ(t.read("1-1", "1-1:1.1/authorized"), "0");
  EXPECT_EQ(t.read("1-1", "1-1:1.0/authorized"), "1");
  ASSERT_TRUE(tree.write_interface_authorized("usb1", "1.0", false).has_value());
  EXPECT_EQ(t.read("usb1", "1-0:1.0/authorized"), "0");
  ASSERT_TRUE(tree.write_authorized_default("usb1", false).has_value());
  EXPECT_EQ(t.read("usb1", "authorized_default"), "0");

  auto no_iface = tree.write_interface_authorized("1-1", "1.7", false);
  ASSERT_FALSE(no_iface.has_value());
  EXPECT_EQ(no_iface.error().code, Errc::not_found);
  // Attributes the kernel does not offer are not created.
  auto no_default = tree.write_authorized_default("1-1", false);
  ASSERT_FALSE(no_default.has_value());
  EXPECT_EQ(no_default.error().code, Errc::not_found);
  EXPECT_FALSE(std::filesystem::exists(t.device_dir("1-1") / "authorized_default"));
  EXPECT_EQ(tree.write_authorized("1-1/../usb1", false).error().code, Errc::invalid_argument);
  EXPECT_EQ(tree.write_interface_authorized("1-1", "../x", false).error().code,
            Errc::invalid_argument);
}

}  // namespace
}  // namespace portier::drivers::usb
