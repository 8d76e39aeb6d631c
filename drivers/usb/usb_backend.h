// The part of libusb-1.0 that the USB driver's transfers use, behind an
// interface. libusb_backend() is the real one. The kernel's USB stack is not
// reachable on a test machine, so the driver tests hand the driver a double
// that plays a device at this boundary (and say so); everything above it —
// parameters, device checks, interface claiming, error mapping — is the
// driver's own code under test.
//
// Return values follow libusb: 0 (or a byte count) on success,
// LIBUSB_ERROR_* (< 0) on failure.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "common/result.h"

namespace portier::drivers {

class UsbHandle {  // an open device; closed by the destructor
 public:
  virtual ~UsbHandle() = default;
  virtual int claim_interface(int interface) = 0;
  virtual void release_interface(int interface) = 0;
  // Bytes transferred, or an error.
  virtual int control_transfer(std::uint8_t request_type, std::uint8_t request, std::uint16_t value,
                               std::uint16_t index, unsigned char* data, std::uint16_t length,
                               unsigned timeout_ms) = 0;
  virtual int bulk_transfer(std::uint8_t endpoint, unsigned char* data, int length,
                            int* transferred, unsigned timeout_ms) = 0;
};

class UsbBackend {
 public:
  struct Opened {
    std::unique_ptr<UsbHandle> handle;      // null on failure
    std::uint16_t vendor = 0, product = 0;  // of the device found at the address
    int rc = 0;                             // the error when handle is null
    std::string step;                       // what failed: "find", "mismatch", "libusb_open", ...
  };
  virtual ~UsbBackend() = default;
  // Opens the device at bus/address if it is vendor:product. None there:
  // step "find", LIBUSB_ERROR_NO_DEVICE. Another device there: step
  // "mismatch" with its ids, and it is not opened.
  virtual Opened open(int bus, int address, std::uint16_t vendor, std::uint16_t product) = 0;
};

// libusb-1.0 itself, loaded by this call (libusb_api.h): not_found when it
// cannot be loaded. Its context is created on first use. Thread-safe.
Result<std::unique_ptr<UsbBackend>> libusb_backend();

}  // namespace portier::drivers
