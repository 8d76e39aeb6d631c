// UsbBackend on libusb-1.0, loaded at run time (libusb_api.h).
#include <mutex>

#include "usb/libusb_api.h"
#include "usb/usb_backend.h"

namespace portier::drivers {
namespace {

class LibusbHandle final : public UsbHandle {
 public:
  LibusbHandle(const LibusbApi& api, libusb_device_handle* h) : api_(api), h_(h) {}
  ~LibusbHandle() override { api_.libusb_close(h_); }
  int claim_interface(int interface) override { return api_.libusb_claim_interface(h_, interface); }
  void release_interface(int interface) override { api_.libusb_release_interface(h_, interface); }
  int control_transfer(std::uint8_t request_type, std::uint8_t request, std::uint16_t value,
                       std::uint16_t index, unsigned char* data, std::uint16_t length,
                       unsigned timeout_ms) override {
    return api_.libusb_control_transfer(h_, request_type, request, value, index, data, length,
                                        timeout_ms);
  }
  int bulk_transfer(std::uint8_t endpoint, unsigned char* data, int length, int* transferred,
                    unsigned timeout_ms) override {
    return api_.libusb_bulk_transfer(h_, endpoint, data, length, transferred, timeout_ms);
  }

 private:
  const LibusbApi& api_;
  libusb_device_handle* h_;
};

class Libusb final : public UsbBackend {
 public:
  explicit Libusb(const LibusbApi& api) : api_(api) {}
  ~Libusb() override {
    if (ctx_) api_.libusb_exit(ctx_);
  }

  Opened open(int bus, int address, std::uint16_t vendor, std::uint16_t product) override {
    Opened out;
    libusb_context* ctx = context(&out);
    if (!ctx) return out;
    libusb_device** list = nullptr;
    const ssize_t count = api_.libusb_get_device_list(ctx, &list);
    if (count < 0) {
      out.rc = static_cast<int>(count);
      out.step = "libusb_get_device_list";
      return out;
    }
    libusb_device* device = nullptr;
    for (ssize_t i = 0; i < count; ++i) {
      if (api_.libusb_get_bus_number(list[i]) == bus &&
          api_.libusb_get_device_address(list[i]) == address) {
        device = api_.libusb_ref_device(list[i]);
        break;
      }
    }
    api_.libusb_free_device_list(list, 1);
    if (!device) {
      out.rc = LIBUSB_ERROR_NO_DEVICE;
      out.step = "find";
      return out;
    }
    libusb_device_descriptor desc{};
    libusb_device_handle* h = nullptr;
    if (int rc = api_.libusb_get_device_descriptor(device, &desc); rc < 0) {
      out.rc = rc;
      out.step = "libusb_get_device_descriptor";
    } else if (out.vendor = desc.idVendor, out.product = desc.idProduct;
               desc.idVendor != vendor || desc.idProduct != product) {
      out.rc = LIBUSB_ERROR_NO_DEVICE;
      out.step = "mismatch";
    } else if (rc = api_.libusb_open(device, &h); rc < 0) {
      out.rc = rc;
      out.step = "libusb_open";
    } else {
      out.handle = std::make_unique<LibusbHandle>(api_, h);
    }
    api_.libusb_unref_device(device);
    return out;
  }

 private:
  libusb_context* context(Opened* out) {
    std::lock_guard lock(mu_);
    if (ctx_) return ctx_;
    const int rc = api_.libusb_init(&ctx_);
    if (rc < 0) {
      ctx_ = nullptr;
      out->rc = rc;
      out->step = "libusb_init";
      return nullptr;
    }
    api_.libusb_set_option(ctx_, LIBUSB_OPTION_LOG_LEVEL, LIBUSB_LOG_LEVEL_NONE);
    return ctx_;
  }

  const LibusbApi& api_;
  std::mutex mu_;
  libusb_context* ctx_ = nullptr;
};

}  // namespace

Result<std::unique_ptr<UsbBackend>> libusb_backend() {
  auto api = libusb_api();
  if (!api) return std::unexpected(api.error());
  return std::make_unique<Libusb>(**api);
}

}  // namespace portier::drivers
