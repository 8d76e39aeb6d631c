// The control_transfer and bulk_transfer actions of the USB driver: their
// parameters (see usb_driver.h) and running one on a UsbBackend.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "driver.h"
#include "usb/usb_backend.h"

namespace portier::drivers {

inline constexpr std::size_t kMaxUsbControlData = 4096;
inline constexpr std::size_t kMaxUsbBulkData = 1 << 20;
inline constexpr std::chrono::milliseconds kMaxUsbTimeout{60000};

// Decimal or 0x-prefixed hex, at most `max`.
std::optional<unsigned long> parse_usb_number(const std::string& s, unsigned long max);

struct UsbTransfer {
  bool control = false;
  bool in = false;
  std::uint8_t request_type = 0, request = 0;  // control
  std::uint16_t value = 0, index = 0;          // control
  std::uint8_t endpoint = 0;                   // bulk
  std::optional<int> interface;                // bulk: claimed for the transfer
  std::size_t length = 0;                      // IN: bytes to read
  std::string out;                             // OUT: bytes to send
  std::chrono::milliseconds timeout{1000};
};

// Checks the request's params and data; `what` prefixes errors.
Result<UsbTransfer> parse_usb_transfer(const ActionRequest& r, const std::string& what);

// Opens the device at bus/address, checks it is still vendor:product,
// claims the interface when asked, transfers, releases, closes. Result:
// data (IN) and values transferred. libusb errors -> Errc::unavailable
// naming the call and LIBUSB_ERROR_*.
Result<ActionResult> run_usb_transfer(UsbBackend& usb, int bus, int address, std::uint16_t vendor,
                                      std::uint16_t product, const UsbTransfer& t,
                                      const std::string& what);

}  // namespace portier::drivers
