// Pure parser of the binary USB descriptors a Linux usb_device exposes in
// sysfs `descriptors`: the 18-byte device descriptor, then each
// configuration's descriptors (configuration, interface, endpoint and
// class-specific ones) as read from the device, wTotalLength bytes each.
//
// No I/O, no exceptions for bad input, no portier/result.h: the libFuzzer
// target builds this file alone with clang (C++20). Every length is checked
// before it is used; a malformed blob yields the offset and the reason.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace portier::drivers::usb {

// Larger blobs are rejected (the kernel keeps at most 8 configurations of at
// most 64 KiB each).
inline constexpr std::size_t kMaxDescriptorBlob = 8 * 65536 + 18;

struct UsbEndpoint {
  std::uint8_t address = 0;     // bEndpointAddress (bit 7: IN)
  std::uint8_t attributes = 0;  // bmAttributes (bits 0-1: control/iso/bulk/interrupt)
  std::uint16_t max_packet_size = 0;
  std::uint8_t interval = 0;
};

struct UsbInterface {
  std::uint8_t number = 0;
  std::uint8_t alternate = 0;
  std::uint8_t num_endpoints = 0;  // as declared (bNumEndpoints)
  std::uint8_t interface_class = 0;
  std::uint8_t interface_subclass = 0;
  std::uint8_t interface_protocol = 0;
  std::uint8_t string_index = 0;
  std::vector<UsbEndpoint> endpoints;  // as found after it
};

struct UsbConfiguration {
  std::uint16_t total_length = 0;
  std::uint8_t num_interfaces = 0;  // as declared
  std::uint8_t value = 0;
  std::uint8_t string_index = 0;
  std::uint8_t attributes = 0;
  std::uint8_t max_power = 0;            // in units of 2 mA (USB 2) or 8 mA (USB 3)
  std::vector<UsbInterface> interfaces;  // every alternate setting
  std::size_t other_descriptors = 0;     // class-specific, IAD, HID, ...
};

struct UsbDeviceDescriptor {
  std::uint16_t bcd_usb = 0;
  std::uint8_t device_class = 0;
  std::uint8_t device_subclass = 0;
  std::uint8_t device_protocol = 0;
  std::uint8_t max_packet_size0 = 0;
  std::uint16_t vendor = 0;
  std::uint16_t product = 0;
  std::uint16_t bcd_device = 0;
  std::uint8_t manufacturer_index = 0;
  std::uint8_t product_index = 0;
  std::uint8_t serial_index = 0;
  std::uint8_t num_configurations = 0;
};

struct UsbDescriptors {
  UsbDeviceDescriptor device;
  std::vector<UsbConfiguration> configurations;
};

struct UsbDescriptorParseResult {
  bool ok = false;
  std::size_t error_offset = 0;  // when !ok: where in the blob
  std::string reason;            // when !ok: "at offset N: ..." for a person
  UsbDescriptors descriptors;    // when ok
};

// Rejects: an empty or oversized blob; a device descriptor that is not 18
// bytes of type 1; a configuration whose bLength < 9, type is not 2,
// wTotalLength < bLength or runs past the end of the blob; inside a
// configuration, a descriptor with bLength < 2 (e.g. 0, which would loop
// forever) or running past the configuration's end, an interface shorter than
// 9 bytes, an endpoint shorter than 7 bytes or before any interface, a nested
// device or configuration descriptor. Declared counts (bNumConfigurations,
// bNumInterfaces, bNumEndpoints) may disagree with what follows: the kernel
// tolerates that too, so it is not an error.
UsbDescriptorParseResult parse_usb_descriptors(std::string_view blob);

// The distinct bInterfaceClass values of every interface (all configurations
// and alternate settings), ascending.
std::vector<std::uint8_t> interface_classes(const UsbDescriptors& d);

}  // namespace portier::drivers::usb
