// A stable identity for a USB device: the same device gets the same
// identity on any port, after a re-plug and after a reboot; another device
// of the same model differs when it has a different serial number.
//
// SHA-256 (lowercase hex) over a canonical, length-prefixed encoding of:
// vendor id, product id, bcdDevice, device class/subclass/protocol (as the
// lowercase hex sysfs shows: "0c2e", "0b61", "0100", "00"), the
// manufacturer, product and serial strings, and the distinct interface
// classes ("03,07"). Not the bus, port path, or device number.
//
// It identifies, it does not authenticate: a hostile device can copy all of
// these fields. It detects swaps of a pinned reader for another model or
// another unit with a different serial.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/result.h"

namespace portier::drivers::usb {

struct UsbIdentityInput {
  std::string vendor;  // idVendor, 4 hex digits
  std::string product;
  std::string bcd_device;
  std::string device_class;  // bDeviceClass, 2 hex digits
  std::string device_subclass;
  std::string device_protocol;
  std::string manufacturer;  // strings as the device reports them ("" when none)
  std::string product_name;
  std::string serial;
  std::string interface_classes;  // "03,07" (see format_interface_classes)
};

// Hex fields are lower-cased before hashing, so "0C2E" and "0c2e" agree.
Result<std::string> usb_identity(const UsbIdentityInput& in);

// {0x07, 0x03, 0x03} -> "03,07": two lowercase hex digits each, ascending,
// no duplicates.
std::string format_interface_classes(std::vector<std::uint8_t> classes);

// 64 lowercase hex digits.
bool is_identity(const std::string& s);

}  // namespace portier::drivers::usb
