// UsbBackend on libusb-1.0.
#include <libusb.h>

#include <mutex>

#include "usb/usb_backend.h"

namespace portier::drivers {
namespace {

class LibusbHandle final : public UsbHandle {
 public:
  explicit LibusbHandle(libusb_device_handle* h) : h_(h) {}
  ~LibusbHandle() override { libusb_close(h_); }
  int claim_interface(int interface) override { return libusb_claim_interface(h_, interface); }
  void release_interface(int interface) override { libusb_release_interface(h_, interface); }
  int control_transfer(std::uint8_t request_type, std::uint8_t request, std::uint16_t value,
                       std::uint16_t index, unsigned char* data, std::uint16_t length,
                       unsigned timeout_ms) override {
    return libusb_control_transfer(h_, request_type, request, value, index, data, length,
                                   timeout_ms);
  }
  int bulk_transfer(std::uint8_t endpoint, unsigned char* data, int length, int* transferred,
                    unsigned timeout_ms) override {
    return libusb_bulk_transfer(h_, endpoint, data, length, transferred, timeout_ms);
  }

 private:
  libusb_device_handle* h_;
};

class Libusb final : public UsbBackend {
 public:
  ~Libusb() override {
    if (ctx_) libusb_exit(ctx_);
  }

  Opened open(int bus, int address, std::uint16_t vendor, std::uint16_t product) override {
    Opened out;
    libusb_context* ctx = context(&out);
    if (!ctx) return out;
    libusb_device** list = nullptr;
    const ssize_t count = libusb_get_device_list(ctx, &list);
    if (count < 0) {
      out.rc = static_cast<int>(count);
      out.step = "libusb_get_device_list";
      return out;
    }
    libusb_device* device = nullptr;
    for (ssize_t i = 0; i < count; ++i) {
      if (libusb_get_bus_number(list[i]) == bus && libusb_get_device_address(list[i]) == address) {
        device = libusb_ref_device(list[i]);
        break;
      }
    }
    libusb_free_device_list(list, 1);
    if (!device) {
      out.rc = LIBUSB_ERROR_NO_DEVICE;
      out.step = "find";
      return out;
    }
    libusb_device_descriptor desc{};
    libusb_device_handle* h = nullptr;
    if (int rc = libusb_get_device_descriptor(device, &desc); rc < 0) {
      out.rc = rc;
      out.step = "libusb_get_device_descriptor";
    } else if (out.vendor = desc.idVendor, out.product = desc.idProduct;
               desc.idVendor != vendor || desc.idProduct != product) {
      out.rc = LIBUSB_ERROR_NO_DEVICE;
      out.step = "mismatch";
    } else if (rc = libusb_open(device, &h); rc < 0) {
      out.rc = rc;
      out.step = "libusb_open";
    } else {
      out.handle = std::make_unique<LibusbHandle>(h);
    }
    libusb_unref_device(device);
    return out;
  }

 private:
  libusb_context* context(Opened* out) {
    std::lock_guard lock(mu_);
    if (ctx_) return ctx_;
    const int rc = libusb_init(&ctx_);
    if (rc < 0) {
      ctx_ = nullptr;
      out->rc = rc;
      out->step = "libusb_init";
      return nullptr;
    }
    libusb_set_option(ctx_, LIBUSB_OPTION_LOG_LEVEL, LIBUSB_LOG_LEVEL_NONE);
    return ctx_;
  }

  std::mutex mu_;
  libusb_context* ctx_ = nullptr;
};

}  // namespace

std::unique_ptr<UsbBackend> libusb_backend() { return std::make_unique<Libusb>(); }

}  // namespace portier::drivers
