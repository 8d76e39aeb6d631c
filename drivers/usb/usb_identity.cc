#include "usb/usb_identity.h"

#include <algorithm>
#include <cctype>
#include <cstdio>

#include "common/crypto/digest.h"
#include "common/hex.h"

namespace portier::drivers::usb {
namespace {

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

void field(std::string& out, const char* name, const std::string& value) {
  out += name;
  out += '=';
  out += std::to_string(value.size());
  out += ':';
  out += value;
  out += '\n';
}

}  // namespace

std::string format_interface_classes(std::vector<std::uint8_t> classes) {
  std::sort(classes.begin(), classes.end());
  classes.erase(std::unique(classes.begin(), classes.end()), classes.end());
  std::string out;
  for (std::uint8_t c : classes) {
    char buf[4];
    std::snprintf(buf, sizeof buf, "%02x", c);
    if (!out.empty()) out += ',';
    out += buf;
  }
  return out;
}

bool is_identity(const std::string& s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

Result<std::string> usb_identity(const UsbIdentityInput& in) {
  std::string canon = "portier.usb.identity.v1\n";
  field(canon, "vendor", lower(in.vendor));
  field(canon, "product", lower(in.product));
  field(canon, "bcd_device", lower(in.bcd_device));
  field(canon, "class", lower(in.device_class));
  field(canon, "subclass", lower(in.device_subclass));
  field(canon, "protocol", lower(in.device_protocol));
  field(canon, "manufacturer", in.manufacturer);
  field(canon, "product_name", in.product_name);
  field(canon, "serial", in.serial);
  field(canon, "interface_classes", lower(in.interface_classes));

  auto md = crypto::digest(crypto::DigestAlgo::sha256, canon);
  if (!md) return fail(Errc::internal, "usb identity", "SHA-256", md.error().message());
  return to_hex(md->data(), md->size());
}

}  // namespace portier::drivers::usb
