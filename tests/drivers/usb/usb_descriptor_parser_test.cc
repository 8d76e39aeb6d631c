// Binary USB descriptors as in sysfs `descriptors`: valid blobs and every
// malformation with its offset.
#include "usb/usb_descriptor_parser.h"

#include <gtest/gtest.h>

#include <string>

#include "drivers/usb/usb_test_support.h"

namespace portier::drivers::usb {
namespace {

using namespace std::string_literals;
using testing::FixtureDevice;
using testing::FixtureTree;

std::string scanner_blob() { return testing::descriptors_for(FixtureTree::scanner()); }

TEST(UsbDescriptorParser, ParsesDeviceConfigurationInterfacesEndpoints) {
  const std::string blob = scanner_blob();
  const auto r = parse_usb_descriptors(blob);
  ASSERT_TRUE(r.ok) << r.reason;
  const auto& d = r.descriptors.device;
  EXPECT_EQ(d.bcd_usb, 0x0200);
  EXPECT_EQ(d.vendor, 0x0c2e);
  EXPECT_EQ(d.product, 0x0b61);
  EXPECT_EQ(d.bcd_device, 0x0100);
  EXPECT_EQ(d.device_class, 0);
  EXPECT_EQ(d.max_packet_size0, 64);
  EXPECT_EQ(d.num_configurations, 1);
  ASSERT_EQ(r.descriptors.configurations.size(), 1u);
  const auto& c = r.descriptors.configurations[0];
  EXPECT_EQ(c.total_length, blob.size() - 18);
  EXPECT_EQ(c.num_interfaces, 2);
  EXPECT_EQ(c.value, 1);
  EXPECT_EQ(c.max_power, 50);
  EXPECT_EQ(c.other_descriptors, 1u);  // the HID descriptor
  ASSERT_EQ(c.interfaces.size(), 2u);
  EXPECT_EQ(c.interfaces[0].interface_class, 0x03);
  EXPECT_EQ(c.interfaces[0].interface_subclass, 1);
  ASSERT_EQ(c.interfaces[0].endpoints.size(), 1u);
  EXPECT_EQ(c.interfaces[0].endpoints[0].address, 0x81);
  EXPECT_EQ(c.interfaces[0].endpoints[0].attributes, 3);
  EXPECT_EQ(c.interfaces[0].endpoints[0].max_packet_size, 64);
  EXPECT_EQ(c.interfaces[0].endpoints[0].interval, 10);
  EXPECT_EQ(c.interfaces[1].number, 1);
  EXPECT_EQ(c.interfaces[1].interface_class, 0x0a);
  EXPECT_EQ(c.interfaces[1].endpoints[0].address, 0x82);
  EXPECT_EQ(interface_classes(r.descriptors), (std::vector<std::uint8_t>{0x03, 0x0a}));
}

TEST(UsbDescriptorParser, DeviceDescriptorAloneAndTwoConfigurations) {
  const std::string blob = scanner_blob();
  const auto alone = parse_usb_descriptors(blob.substr(0, 18));
  ASSERT_TRUE(alone.ok) << alone.reason;
  EXPECT_TRUE(alone.descriptors.configurations.empty());

  const std::string two = blob + blob.substr(18);
  const auto r = parse_usb_descriptors(two);
  ASSERT_TRUE(r.ok) << r.reason;
  EXPECT_EQ(r.descriptors.configurations.size(), 2u);
  EXPECT_EQ(interface_classes(r.descriptors), (std::vector<std::uint8_t>{0x03, 0x0a}));
}

struct Bad {
  const char* name;
  std::string blob;
  std::size_t offset;
  const char* reason_part;
};

std::string patched(std::size_t at, std::initializer_list<unsigned> bytes) {
  std::string b = scanner_blob();
  for (unsigned v : bytes) b[at++] = static_cast<char>(v);
  return b;
}

// Layout of scanner_blob(): device 0..17, configuration 18..26, interface 0
// at 27, HID at 36, endpoint at 45, interface 1 at 52, endpoint at 61; 68
// bytes in all.
class UsbDescriptorParserRejects : public ::testing::TestWithParam<Bad> {};

TEST_P(UsbDescriptorParserRejects, WithOffsetAndReason) {
  const auto r = parse_usb_descriptors(GetParam().blob);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.error_offset, GetParam().offset) << r.reason;
  EXPECT_NE(r.reason.find(GetParam().reason_part), std::string::npos) << r.reason;
  EXPECT_EQ(r.reason.rfind("at offset " + std::to_string(GetParam().offset) + ": ", 0), 0u)
      << r.reason;
}

INSTANTIATE_TEST_SUITE_P(
    Malformed, UsbDescriptorParserRejects,
    ::testing::Values(
        Bad{"empty", "", 0, "no data"},
        Bad{"truncated_device", scanner_blob().substr(0, 10), 0, "device descriptor truncated"},
        Bad{"device_blength_0", patched(0, {0}), 0, "bLength 0 (must be 18)"},
        Bad{"device_blength_9", patched(0, {9}), 0, "bLength 9 (must be 18)"},
        Bad{"device_type", patched(1, {2}), 1, "device descriptor (1)"},
        Bad{"one_trailing_byte", scanner_blob() + "\x09"s, 68, "1 byte left"},
        Bad{"config_type", patched(19, {4}), 19, "configuration descriptor (2)"},
        Bad{"config_blength_0", patched(18, {0}), 18, "bLength 0 (must be at least 9)"},
        Bad{"config_truncated", scanner_blob().substr(0, 22), 18,
            "configuration descriptor truncated"},
        Bad{"total_length_past_end", patched(20, {0xff, 0x00}), 20,
            "wTotalLength 255 runs past the end"},
        Bad{"truncated_configuration", scanner_blob().substr(0, 60), 20,
            "runs past the end of the data (42 bytes left)"},
        Bad{"total_length_below_blength", patched(20, {4, 0}), 20, "less than"},
        Bad{"descriptor_blength_0", patched(27, {0}), 27, "bLength 0 (must be at least 2)"},
        Bad{"descriptor_blength_1", patched(45, {1}), 45, "bLength 1 (must be at least 2)"},
        Bad{"descriptor_past_config", patched(61, {0x40}), 61,
            "runs past the end of the configuration (7 bytes left)"},
        Bad{"short_interface", patched(27, {8}), 27, "interface descriptor bLength 8"},
        Bad{"short_endpoint", patched(45, {6}), 45, "endpoint descriptor bLength 6"},
        Bad{"endpoint_first", patched(27, {9, 5}), 27, "before any interface"},
        Bad{"nested_config", patched(36, {9, 2}), 37, "nested inside a configuration"},
        Bad{"oversized", std::string(kMaxDescriptorBlob + 1, '\x12'), kMaxDescriptorBlob,
            "exceed the limit"}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(UsbDescriptorParser, DeclaredCountsMayDisagreeLikeTheKernelTolerates) {
  // bNumInterfaces 5 and bNumEndpoints 3 while fewer follow.
  std::string b = patched(22, {5});
  b[31] = 3;
  const auto r = parse_usb_descriptors(b);
  ASSERT_TRUE(r.ok) << r.reason;
  EXPECT_EQ(r.descriptors.configurations[0].num_interfaces, 5);
  EXPECT_EQ(r.descriptors.configurations[0].interfaces.size(), 2u);
  EXPECT_EQ(r.descriptors.configurations[0].interfaces[0].num_endpoints, 3);
  EXPECT_EQ(r.descriptors.configurations[0].interfaces[0].endpoints.size(), 1u);
}

TEST(UsbDescriptorParser, EveryPrefixFailsCleanlyOrParses) {
  // No prefix of a valid blob may crash; those ending inside a
  // configuration must fail.
  const std::string blob = scanner_blob();
  for (std::size_t n = 0; n <= blob.size(); ++n) {
    const auto r = parse_usb_descriptors(blob.substr(0, n));
    EXPECT_EQ(r.ok, n == 18 || n == blob.size()) << n << ": " << r.reason;
  }
}

}  // namespace
}  // namespace portier::drivers::usb
