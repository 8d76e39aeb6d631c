#include "usb/usb_transfer.h"

#include <algorithm>
#include <charconv>
#include <cstdio>

#include "usb/libusb_api.h"
#include "usb/uevent_parser.h"

namespace portier::drivers {
namespace {

constexpr const char* kWhere = "usb";

std::string hex4(std::uint16_t v) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04x", v);
  return buf;
}

// libusb's name for an error ("LIBUSB_ERROR_BUSY"). The real backend has
// loaded libusb already; a test double may run without it.
std::string error_name(int rc) {
  if (auto api = libusb_api()) return (*api)->libusb_error_name(rc);
  return "LIBUSB_ERROR " + std::to_string(rc);
}

}  // namespace

std::optional<unsigned long> parse_usb_number(const std::string& s, unsigned long max) {
  std::string_view v = s;
  int base = 10;
  if (v.size() > 2 && v[0] == '0' && (v[1] == 'x' || v[1] == 'X')) {
    v.remove_prefix(2);
    base = 16;
  }
  unsigned long out = 0;
  auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), out, base);
  if (v.empty() || ec != std::errc() || ptr != v.data() + v.size() || out > max) {
    return std::nullopt;
  }
  return out;
}

Result<UsbTransfer> parse_usb_transfer(const ActionRequest& r, const std::string& what) {
  auto param = [&](const char* k) -> const std::string* {
    auto it = r.params.find(k);
    return it == r.params.end() ? nullptr : &it->second;
  };
  auto number = [&](const char* k, unsigned long max, bool required,
                    unsigned long dflt = 0) -> Result<unsigned long> {
    const std::string* s = param(k);
    if (!s) {
      if (required) {
        return fail(Errc::invalid_argument, kWhere, what, std::string("missing parameter ") + k);
      }
      return dflt;
    }
    auto v = parse_usb_number(*s, max);
    if (!v) {
      return fail(Errc::invalid_argument, kWhere, what,
                  std::string("parameter ") + k + " \"" + usb::escape_for_message(*s) +
                      "\" is not a number from 0 to " + std::to_string(max));
    }
    return *v;
  };
  UsbTransfer t;
  t.control = r.action == "control_transfer";
  if (t.control) {
    auto rt = number("request_type", 0xff, true);
    if (!rt) return std::unexpected(rt.error());
    auto rq = number("request", 0xff, true);
    if (!rq) return std::unexpected(rq.error());
    auto va = number("value", 0xffff, false);
    if (!va) return std::unexpected(va.error());
    auto ix = number("index", 0xffff, false);
    if (!ix) return std::unexpected(ix.error());
    t.request_type = static_cast<std::uint8_t>(*rt);
    t.request = static_cast<std::uint8_t>(*rq);
    t.value = static_cast<std::uint16_t>(*va);
    t.index = static_cast<std::uint16_t>(*ix);
    t.in = (t.request_type & LIBUSB_ENDPOINT_IN) != 0;
    if (t.in) {
      auto len = number("length", kMaxUsbControlData, true);
      if (!len) return std::unexpected(len.error());
      t.length = *len;
    } else if (r.data.size() > kMaxUsbControlData) {
      return fail(Errc::invalid_argument, kWhere, what,
                  "OUT data of " + std::to_string(r.data.size()) + " bytes exceeds " +
                      std::to_string(kMaxUsbControlData));
    }
  } else {
    auto ep = number("endpoint", 0xff, true);
    if (!ep) return std::unexpected(ep.error());
    t.endpoint = static_cast<std::uint8_t>(*ep);
    if ((t.endpoint & 0x0f) == 0 || (t.endpoint & 0x70) != 0) {
      return fail(Errc::invalid_argument, kWhere, what,
                  "endpoint " + *param("endpoint") +
                      " is not a bulk endpoint address (0x01-0x0f, 0x81-0x8f)");
    }
    t.in = (t.endpoint & LIBUSB_ENDPOINT_IN) != 0;
    if (param("interface")) {
      auto itf = number("interface", 0xff, true);
      if (!itf) return std::unexpected(itf.error());
      t.interface = static_cast<int>(*itf);
    }
    if (t.in) {
      auto len = number("length", kMaxUsbBulkData, true);
      if (!len) return std::unexpected(len.error());
      if (*len == 0) return fail(Errc::invalid_argument, kWhere, what, "length must be at least 1");
      t.length = *len;
    } else if (r.data.empty() || r.data.size() > kMaxUsbBulkData) {
      return fail(Errc::invalid_argument, kWhere, what,
                  "OUT data must be 1 to " + std::to_string(kMaxUsbBulkData) + " bytes");
    }
  }
  if (t.in && !r.data.empty()) {
    return fail(Errc::invalid_argument, kWhere, what, "an IN transfer takes no data");
  }
  if (!t.in && param("length")) {
    return fail(Errc::invalid_argument, kWhere, what,
                "length is for IN transfers; an OUT transfer sends `data`");
  }
  if (!t.in) t.out = r.data;
  t.timeout = std::clamp(r.timeout, std::chrono::milliseconds(1), kMaxUsbTimeout);
  return t;
}

Result<ActionResult> run_usb_transfer(UsbBackend& usb, int bus, int address, std::uint16_t vendor,
                                      std::uint16_t product, const UsbTransfer& t,
                                      const std::string& what) {
  const std::string at = "bus " + std::to_string(bus) + " address " + std::to_string(address);
  auto opened = usb.open(bus, address, vendor, product);
  if (!opened.handle) {
    if (opened.step == "find") {
      return fail(Errc::unavailable, kWhere, what,
                  "libusb sees no device at " + at + " (" + error_name(opened.rc) + ")");
    }
    if (opened.step == "mismatch") {  // not opened: a different device gets nothing
      return fail(Errc::unavailable, kWhere, what,
                  "the device at " + at + " is no longer " + hex4(vendor) + ":" + hex4(product) +
                      " but " + hex4(opened.vendor) + ":" + hex4(opened.product) +
                      " (LIBUSB_ERROR_NO_DEVICE)");
    }
    return fail(Errc::unavailable, kWhere, what,
                opened.step + " " + at + ": " + error_name(opened.rc));
  }
  UsbHandle& h = *opened.handle;
  if (t.interface) {
    if (const int rc = h.claim_interface(*t.interface); rc < 0) {
      return fail(Errc::unavailable, kWhere, what,
                  "libusb_claim_interface " + std::to_string(*t.interface) + ": " + error_name(rc) +
                      " (a kernel driver may hold it)");
    }
  }
  std::string buffer = t.in ? std::string(t.length, '\0') : t.out;
  int transferred = 0;
  int rc = 0;
  const auto ms = static_cast<unsigned>(t.timeout.count());
  auto* data = reinterpret_cast<unsigned char*>(buffer.data());
  if (t.control) {
    rc = h.control_transfer(t.request_type, t.request, t.value, t.index, data,
                            static_cast<std::uint16_t>(buffer.size()), ms);
    transferred = rc;
  } else {
    rc = h.bulk_transfer(t.endpoint, data, static_cast<int>(buffer.size()), &transferred, ms);
  }
  if (t.interface) h.release_interface(*t.interface);
  if (rc < 0) {
    std::string why =
        std::string(t.control ? "libusb_control_transfer: " : "libusb_bulk_transfer: ") +
        error_name(rc);
    if (rc == LIBUSB_ERROR_TIMEOUT && transferred > 0) {
      why += " after " + std::to_string(transferred) + " bytes";
    }
    if (rc == LIBUSB_ERROR_PIPE) why += " (the device stalled the request)";
    return fail(Errc::unavailable, kWhere, what, why);
  }
  ActionResult res;
  if (t.in) {
    buffer.resize(
        static_cast<std::size_t>(std::clamp<int>(transferred, 0, static_cast<int>(buffer.size()))));
    res.data = std::move(buffer);
  }
  res.values["transferred"] = std::to_string(transferred);
  return res;
}

}  // namespace portier::drivers
