#include "bluetooth/bt_address.h"

#include <gtest/gtest.h>

namespace portier::drivers {
namespace {

TEST(BtAddress, ParsesEitherCaseAndFormats) {
  auto a = BtAddress::parse("aa:Bb:0c:DD:ee:01");
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->str(), "AA:BB:0C:DD:EE:01");
  EXPECT_EQ(a->compact(), "aabb0cddee01");
  EXPECT_EQ(a->device_path("/org/bluez/hci0"), "/org/bluez/hci0/dev_AA_BB_0C_DD_EE_01");
}

TEST(BtAddress, RejectsMalformed) {
  for (const char* bad :
       {"", "AA:BB:CC:DD:EE", "AA:BB:CC:DD:EE:FF:00", "AA-BB-CC-DD-EE-FF", "AA:BB:CC:DD:EE:FG",
        "AABBCCDDEEFF", " AA:BB:CC:DD:EE:FF", "AA:BB:CC:DD:EE:F", "A:BB:CC:DD:EE:FFF"}) {
    EXPECT_FALSE(BtAddress::parse(bad).has_value()) << bad;
  }
}

TEST(BtAddress, FromDevicePath) {
  auto a = BtAddress::from_device_path("/org/bluez/hci1/dev_11_22_33_44_55_66");
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->str(), "11:22:33:44:55:66");
  EXPECT_EQ(*a, *BtAddress::parse("11:22:33:44:55:66"));
  EXPECT_FALSE(BtAddress::from_device_path("/org/bluez/hci0").has_value());
  EXPECT_FALSE(BtAddress::from_device_path("/org/bluez/hci0/dev_11_22_33_44_55").has_value());
  EXPECT_FALSE(BtAddress::from_device_path("/org/bluez/hci0/dev_11:22:33:44:55:66").has_value());
}

TEST(BtAddress, PathBasename) {
  EXPECT_EQ(path_basename("/org/bluez/hci0"), "hci0");
  EXPECT_EQ(path_basename("hci0"), "hci0");
  EXPECT_EQ(path_basename("/"), "");
}

}  // namespace
}  // namespace portier::drivers
