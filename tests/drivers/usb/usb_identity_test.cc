// The device identity: a stable, port-independent hash.
#include "usb/usb_identity.h"

#include <gtest/gtest.h>

namespace portier::drivers::usb {
namespace {

UsbIdentityInput scanner() {
  return {"0c2e",       "0b61", "0100", "00", "00", "00", "Honeywell", "Hand-held scanner",
          "18263B0042", "03,0a"};
}

TEST(UsbIdentity, MatchesTheDocumentedEncoding) {
  // Computed independently (Python hashlib) from the canonical encoding in
  // usb_identity.cc. Changing the encoding invalidates every configured pin.
  auto id = usb_identity(scanner());
  ASSERT_TRUE(id.has_value()) << id.error().message();
  EXPECT_EQ(*id, "20915e20a5b9feb4df0baa9cf7e3667fd9bfa6664224d4e7cd73c967f8c9bbdc");
  EXPECT_TRUE(is_identity(*id));
}

TEST(UsbIdentity, HexFieldsAreCaseInsensitive) {
  UsbIdentityInput upper = scanner();
  upper.vendor = "0C2E";
  upper.product = "0B61";
  upper.interface_classes = "03,0A";
  EXPECT_EQ(*usb_identity(upper), *usb_identity(scanner()));
}

TEST(UsbIdentity, EveryFieldCounts) {
  const std::string base = *usb_identity(scanner());
  std::vector<std::string UsbIdentityInput::*> fields = {
      &UsbIdentityInput::vendor,          &UsbIdentityInput::product,
      &UsbIdentityInput::bcd_device,      &UsbIdentityInput::device_class,
      &UsbIdentityInput::device_subclass, &UsbIdentityInput::device_protocol,
      &UsbIdentityInput::manufacturer,    &UsbIdentityInput::product_name,
      &UsbIdentityInput::serial,          &UsbIdentityInput::interface_classes};
  for (auto f : fields) {
    UsbIdentityInput in = scanner();
    in.*f += "1";
    EXPECT_NE(*usb_identity(in), base);
  }
}

TEST(UsbIdentity, FieldBoundariesAreUnambiguous) {
  UsbIdentityInput a = scanner(), b = scanner();
  a.manufacturer = "ab";
  a.product_name = "c";
  b.manufacturer = "a";
  b.product_name = "bc";
  EXPECT_NE(*usb_identity(a), *usb_identity(b));
}

TEST(UsbIdentity, FormatsInterfaceClasses) {
  EXPECT_EQ(format_interface_classes({0x07, 0x03, 0x03}), "03,07");
  EXPECT_EQ(format_interface_classes({0xff, 0x0b}), "0b,ff");
  EXPECT_EQ(format_interface_classes({}), "");
}

TEST(UsbIdentity, RecognisesIdentities) {
  EXPECT_TRUE(is_identity(std::string(64, 'a')));
  EXPECT_FALSE(is_identity(std::string(64, 'A')));
  EXPECT_FALSE(is_identity(std::string(63, 'a')));
  EXPECT_FALSE(is_identity(std::string(64, 'g')));
}

}  // namespace
}  // namespace portier::drivers::usb
