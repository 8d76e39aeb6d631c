#include "usb/usb_descriptor_parser.h"

#include <algorithm>

namespace portier::drivers::usb {
namespace {

constexpr std::uint8_t kTypeDevice = 1;
constexpr std::uint8_t kTypeConfig = 2;
constexpr std::uint8_t kTypeInterface = 4;
constexpr std::uint8_t kTypeEndpoint = 5;
constexpr std::size_t kDeviceLength = 18;
constexpr std::size_t kConfigLength = 9;
constexpr std::size_t kInterfaceLength = 9;
constexpr std::size_t kEndpointLength = 7;

std::uint8_t u8(std::string_view b, std::size_t i) { return static_cast<std::uint8_t>(b[i]); }
std::uint16_t u16(std::string_view b, std::size_t i) {
  return static_cast<std::uint16_t>(u8(b, i) | (u8(b, i + 1) << 8));
}

UsbDescriptorParseResult error_at(std::size_t offset, const std::string& why) {
  UsbDescriptorParseResult r;
  r.error_offset = offset;
  r.reason = "at offset " + std::to_string(offset) + ": " + why;
  return r;
}

}  // namespace

UsbDescriptorParseResult parse_usb_descriptors(std::string_view b) {
  if (b.empty()) return error_at(0, "no data (expected an 18-byte device descriptor)");
  if (b.size() > kMaxDescriptorBlob) {
    return error_at(kMaxDescriptorBlob, std::to_string(b.size()) + " bytes exceed the limit of " +
                                            std::to_string(kMaxDescriptorBlob));
  }
  if (b.size() < kDeviceLength) {
    return error_at(0,
                    "device descriptor truncated: " + std::to_string(b.size()) + " bytes, need 18");
  }
  if (u8(b, 0) != kDeviceLength) {
    return error_at(0, "device descriptor bLength " + std::to_string(u8(b, 0)) + " (must be 18)");
  }
  if (u8(b, 1) != kTypeDevice) {
    return error_at(1, "bDescriptorType " + std::to_string(u8(b, 1)) +
                           " where the device descriptor (1) must be");
  }

  UsbDescriptorParseResult r;
  UsbDeviceDescriptor& dev = r.descriptors.device;
  dev.bcd_usb = u16(b, 2);
  dev.device_class = u8(b, 4);
  dev.device_subclass = u8(b, 5);
  dev.device_protocol = u8(b, 6);
  dev.max_packet_size0 = u8(b, 7);
  dev.vendor = u16(b, 8);
  dev.product = u16(b, 10);
  dev.bcd_device = u16(b, 12);
  dev.manufacturer_index = u8(b, 14);
  dev.product_index = u8(b, 15);
  dev.serial_index = u8(b, 16);
  dev.num_configurations = u8(b, 17);

  std::size_t off = kDeviceLength;
  while (off < b.size()) {
    const std::size_t left = b.size() - off;
    if (left < 2) return error_at(off, "1 byte left where a configuration descriptor must start");
    const std::size_t len = u8(b, off);
    if (u8(b, off + 1) != kTypeConfig) {
      return error_at(off + 1, "bDescriptorType " + std::to_string(u8(b, off + 1)) +
                                   " where a configuration descriptor (2) must start");
    }
    if (len < kConfigLength) {
      return error_at(
          off, "configuration descriptor bLength " + std::to_string(len) + " (must be at least 9)");
    }
    if (left < kConfigLength) {
      return error_at(off, "configuration descriptor truncated: " + std::to_string(left) +
                               " bytes left, need 9");
    }
    UsbConfiguration cfg;
    cfg.total_length = u16(b, off + 2);
    cfg.num_interfaces = u8(b, off + 4);
    cfg.value = u8(b, off + 5);
    cfg.string_index = u8(b, off + 6);
    cfg.attributes = u8(b, off + 7);
    cfg.max_power = u8(b, off + 8);
    if (cfg.total_length < len) {
      return error_at(off + 2, "wTotalLength " + std::to_string(cfg.total_length) +
                                   " is less than the configuration's bLength " +
                                   std::to_string(len));
    }
    if (cfg.total_length > left) {
      return error_at(off + 2, "wTotalLength " + std::to_string(cfg.total_length) +
                                   " runs past the end of the data (" + std::to_string(left) +
                                   " bytes left)");
    }
    const std::size_t cfg_end = off + cfg.total_length;
    std::size_t p = off + len;
    while (p < cfg_end) {
      if (cfg_end - p < 2) {
        return error_at(p, "1 byte left in the configuration where a descriptor must start");
      }
      const std::size_t dlen = u8(b, p);
      const std::uint8_t type = u8(b, p + 1);
      if (dlen < 2) {
        return error_at(p, "descriptor bLength " + std::to_string(dlen) + " (must be at least 2)");
      }
      if (dlen > cfg_end - p) {
        return error_at(p, "descriptor bLength " + std::to_string(dlen) +
                               " runs past the end of the configuration (" +
                               std::to_string(cfg_end - p) + " bytes left)");
      }
      switch (type) {
        case kTypeInterface: {
          if (dlen < kInterfaceLength) {
            return error_at(p, "interface descriptor bLength " + std::to_string(dlen) +
                                   " (must be at least 9)");
          }
          UsbInterface i;
          i.number = u8(b, p + 2);
          i.alternate = u8(b, p + 3);
          i.num_endpoints = u8(b, p + 4);
          i.interface_class = u8(b, p + 5);
          i.interface_subclass = u8(b, p + 6);
          i.interface_protocol = u8(b, p + 7);
          i.string_index = u8(b, p + 8);
          cfg.interfaces.push_back(std::move(i));
          break;
        }
        case kTypeEndpoint: {
          if (dlen < kEndpointLength) {
            return error_at(
                p, "endpoint descriptor bLength " + std::to_string(dlen) + " (must be at least 7)");
          }
          if (cfg.interfaces.empty()) {
            return error_at(p, "endpoint descriptor before any interface descriptor");
          }
          UsbEndpoint e;
          e.address = u8(b, p + 2);
          e.attributes = u8(b, p + 3);
          e.max_packet_size = u16(b, p + 4);
          e.interval = u8(b, p + 6);
          cfg.interfaces.back().endpoints.push_back(e);
          break;
        }
        case kTypeDevice:
        case kTypeConfig:
          return error_at(
              p + 1, "descriptor type " + std::to_string(type) + " nested inside a configuration");
        default:
          ++cfg.other_descriptors;
          break;
      }
      p += dlen;
    }
    r.descriptors.configurations.push_back(std::move(cfg));
    off = cfg_end;
  }
  r.ok = true;
  return r;
}

std::vector<std::uint8_t> interface_classes(const UsbDescriptors& d) {
  std::vector<std::uint8_t> out;
  for (const auto& c : d.configurations) {
    for (const auto& i : c.interfaces) out.push_back(i.interface_class);
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

}  // namespace portier::drivers::usb
