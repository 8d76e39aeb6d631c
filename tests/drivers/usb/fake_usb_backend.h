// A UsbBackend double. The kernel's USB stack (and so libusb's view of real
// devices) is not reachable on a test machine; this plays one device at a
// bus/address the way libusb reports it, so the driver's transfer code runs
// against something with a device's behaviour:
//  - control IN  GET_DESCRIPTOR(device) (0x80, 6, 0x0100): 18-byte device
//    descriptor with the vendor/product;
//  - control OUT vendor request 0x01 (0x40) stores `data`; control IN 0x01
//    (0xC0) returns it; any other request stalls (LIBUSB_ERROR_PIPE);
//  - bulk OUT 0x02 appends to a loopback buffer, bulk IN 0x81 reads it
//    back (LIBUSB_ERROR_TIMEOUT when empty);
//  - interface 0 is held by a kernel driver (LIBUSB_ERROR_BUSY);
//  - unplugged(): LIBUSB_ERROR_NO_DEVICE; replaced(): other ids there.
// Every call is logged, in order ("open", "claim 1", "bulk 0x02 3", ...).
#pragma once

#include <libusb.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "usb/usb_backend.h"

namespace portier::drivers::testing {

class FakeUsbDevice {
 public:
  FakeUsbDevice(int bus, int address, std::uint16_t vendor, std::uint16_t product)
      : bus_(bus), address_(address), vendor_(vendor), product_(product) {}

  void unplug() {
    std::lock_guard l(mu_);
    present_ = false;
  }
  void replace(std::uint16_t vendor, std::uint16_t product) {
    std::lock_guard l(mu_);
    vendor_ = vendor;
    product_ = product;
  }
  std::vector<std::string> calls() const {
    std::lock_guard l(mu_);
    return calls_;
  }
  std::size_t open_handles() const {
    std::lock_guard l(mu_);
    return open_;
  }

  // The backend the driver gets (shares this device).
  std::unique_ptr<UsbBackend> backend();

 private:
  friend class FakeHandle;
  friend class FakeBackend;
  void log(std::string s) { calls_.push_back(std::move(s)); }

  mutable std::mutex mu_;
  int bus_, address_;
  std::uint16_t vendor_, product_;
  bool present_ = true;
  std::size_t open_ = 0;
  std::string vendor_data_;
  std::string loopback_;
  std::vector<std::string> calls_;
};

class FakeHandle final : public UsbHandle {
 public:
  explicit FakeHandle(FakeUsbDevice& d) : d_(d) {}
  ~FakeHandle() override {
    std::lock_guard l(d_.mu_);
    --d_.open_;
    d_.log("close");
  }
  int claim_interface(int i) override {
    std::lock_guard l(d_.mu_);
    d_.log("claim " + std::to_string(i));
    return i == 0 ? LIBUSB_ERROR_BUSY : 0;
  }
  void release_interface(int i) override {
    std::lock_guard l(d_.mu_);
    d_.log("release " + std::to_string(i));
  }
  int control_transfer(std::uint8_t rt, std::uint8_t rq, std::uint16_t value, std::uint16_t,
                       unsigned char* data, std::uint16_t length, unsigned) override {
    std::lock_guard l(d_.mu_);
    char buf[64];
    std::snprintf(buf, sizeof buf, "control 0x%02x %u %u", rt, rq, length);
    d_.log(buf);
    if (!d_.present_) return LIBUSB_ERROR_NO_DEVICE;
    if (rt == 0x80 && rq == 6 && value == 0x0100) {
      const unsigned char desc[18] = {18,
                                      1,
                                      0x00,
                                      0x02,
                                      0,
                                      0,
                                      0,
                                      64,
                                      static_cast<unsigned char>(d_.vendor_ & 0xff),
                                      static_cast<unsigned char>(d_.vendor_ >> 8),
                                      static_cast<unsigned char>(d_.product_ & 0xff),
                                      static_cast<unsigned char>(d_.product_ >> 8),
                                      0,
                                      1,
                                      1,
                                      2,
                                      3,
                                      1};
      const int n = std::min<int>(length, 18);
      std::memcpy(data, desc, static_cast<std::size_t>(n));
      return n;
    }
    if (rt == 0x40 && rq == 1) {
      d_.vendor_data_.assign(reinterpret_cast<const char*>(data), length);
      return length;
    }
    if (rt == 0xC0 && rq == 1) {
      const int n = std::min<int>(length, static_cast<int>(d_.vendor_data_.size()));
      std::memcpy(data, d_.vendor_data_.data(), static_cast<std::size_t>(n));
      return n;
    }
    return LIBUSB_ERROR_PIPE;
  }
  int bulk_transfer(std::uint8_t ep, unsigned char* data, int length, int* transferred,
                    unsigned) override {
    std::lock_guard l(d_.mu_);
    char buf[64];
    std::snprintf(buf, sizeof buf, "bulk 0x%02x %d", ep, length);
    d_.log(buf);
    *transferred = 0;
    if (!d_.present_) return LIBUSB_ERROR_NO_DEVICE;
    if (ep == 0x02) {
      d_.loopback_.append(reinterpret_cast<const char*>(data), static_cast<std::size_t>(length));
      *transferred = length;
      return 0;
    }
    if (ep == 0x81) {
      if (d_.loopback_.empty()) return LIBUSB_ERROR_TIMEOUT;
      const int n = std::min<int>(length, static_cast<int>(d_.loopback_.size()));
      std::memcpy(data, d_.loopback_.data(), static_cast<std::size_t>(n));
      d_.loopback_.erase(0, static_cast<std::size_t>(n));
      *transferred = n;
      return 0;
    }
    return LIBUSB_ERROR_PIPE;
  }

 private:
  FakeUsbDevice& d_;
};

class FakeBackend final : public UsbBackend {
 public:
  explicit FakeBackend(FakeUsbDevice& d) : d_(d) {}
  Opened open(int bus, int address, std::uint16_t vendor, std::uint16_t product) override {
    std::lock_guard l(d_.mu_);
    Opened o;
    if (!d_.present_ || bus != d_.bus_ || address != d_.address_) {
      o.rc = LIBUSB_ERROR_NO_DEVICE;
      o.step = "find";
      return o;
    }
    if (vendor != d_.vendor_ || product != d_.product_) {
      o.rc = LIBUSB_ERROR_NO_DEVICE;
      o.step = "mismatch";
      o.vendor = d_.vendor_;
      o.product = d_.product_;
      return o;
    }
    d_.log("open");
    ++d_.open_;
    o.handle = std::make_unique<FakeHandle>(d_);
    o.vendor = d_.vendor_;
    o.product = d_.product_;
    return o;
  }

 private:
  FakeUsbDevice& d_;
};

inline std::unique_ptr<UsbBackend> FakeUsbDevice::backend() {
  return std::make_unique<FakeBackend>(*this);
}

}  // namespace portier::drivers::testing
