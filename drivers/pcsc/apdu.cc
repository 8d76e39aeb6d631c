#include "pcsc/apdu.h"

#include <utility>

namespace portier::drivers {
namespace {

ApduCheck invalid(std::string reason) {
  ApduCheck c;
  c.reason = std::move(reason);
  return c;
}

std::string bytes(std::size_t n) { return std::to_string(n) + (n == 1 ? " byte" : " bytes"); }

std::size_t be16(std::string_view b, std::size_t at) {
  return (static_cast<std::size_t>(static_cast<unsigned char>(b[at])) << 8) |
         static_cast<unsigned char>(b[at + 1]);
}

}  // namespace

ApduCheck parse_command_apdu(std::string_view b) {
  const std::size_t n = b.size();
  if (n < 4) {
    return invalid("command APDU of " + bytes(n) + " is shorter than its 4-byte header");
  }
  if (n > kMaxCommandApdu) {
    return invalid("command APDU of " + bytes(n) + " is longer than the " +
                   std::to_string(kMaxCommandApdu) + " bytes of the largest extended-length one");
  }
  ApduCheck c;
  CommandApdu& a = c.command;
  a.cla = static_cast<std::uint8_t>(b[0]);
  a.ins = static_cast<std::uint8_t>(b[1]);
  a.p1 = static_cast<std::uint8_t>(b[2]);
  a.p2 = static_cast<std::uint8_t>(b[3]);
  const unsigned ins_high = a.ins & 0xF0u;
  if (ins_high == 0x60 || ins_high == 0x90) {
    return invalid("INS in the ranges 60-6F and 90-9F is invalid (ISO 7816-4 5.1.2)");
  }
  if (n == 4) {
    a.iso_case = 1;
    c.ok = true;
    return c;
  }
  const std::size_t p3 = static_cast<unsigned char>(b[4]);
  if (n == 5) {  // case 2S
    a.iso_case = 2;
    a.ne = p3 == 0 ? 256 : p3;
    c.ok = true;
    return c;
  }
  if (p3 != 0) {  // short Lc
    a.nc = p3;
    a.data_offset = 5;
    if (n == 5 + p3) {
      a.iso_case = 3;
    } else if (n == 6 + p3) {
      a.iso_case = 4;
      const std::size_t le = static_cast<unsigned char>(b[n - 1]);
      a.ne = le == 0 ? 256 : le;
    } else {
      return invalid("short Lc announces " + bytes(p3) + " of data, so the APDU must be " +
                     std::to_string(5 + p3) + " or " + std::to_string(6 + p3) + " bytes, not " +
                     std::to_string(n));
    }
    c.ok = true;
    return c;
  }
  // P3 = 00 and more than 5 bytes: extended length.
  if (n == 6) {
    return invalid("6-byte command APDU with a zero fifth byte is neither short nor extended");
  }
  a.extended = true;
  if (n == 7) {  // case 2E
    a.iso_case = 2;
    const std::size_t le = be16(b, 5);
    a.ne = le == 0 ? 65536 : le;
    c.ok = true;
    return c;
  }
  const std::size_t lc = be16(b, 5);
  if (lc == 0) {
    return invalid("extended Lc of 0 with " + bytes(n - 7) +
                   " following (Lc must be 1..65535 when data follows)");
  }
  a.nc = lc;
  a.data_offset = 7;
  if (n == 7 + lc) {
    a.iso_case = 3;
  } else if (n == 9 + lc) {
    a.iso_case = 4;
    const std::size_t le = be16(b, n - 2);
    a.ne = le == 0 ? 65536 : le;
  } else {
    return invalid("extended Lc announces " + bytes(lc) + " of data, so the APDU must be " +
                   std::to_string(7 + lc) + " or " + std::to_string(9 + lc) + " bytes, not " +
                   std::to_string(n));
  }
  c.ok = true;
  return c;
}

std::optional<std::uint16_t> status_word(std::string_view response) {
  if (response.size() < 2) return std::nullopt;
  return static_cast<std::uint16_t>(be16(response, response.size() - 2));
}

std::string status_word_hex(std::uint16_t sw) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string s(4, '0');
  for (int i = 3; i >= 0; --i) {
    s[static_cast<std::size_t>(i)] = kHex[sw & 0xF];
    sw = static_cast<std::uint16_t>(sw >> 4);
  }
  return s;
}

bool status_word_success(std::uint16_t sw) { return sw == 0x9000 || (sw >> 8) == 0x61; }

std::string_view status_word_meaning(std::uint16_t sw) {
  if (sw == 0x9000) return "success";
  switch (sw >> 8) {
    case 0x61:
      return "success, more response data available";
    case 0x62:
    case 0x63:
      return "warning, non-volatile memory unchanged or changed";
    case 0x64:
    case 0x65:
    case 0x66:
      return "execution error";
    case 0x67:
      return "wrong length";
    case 0x68:
      return "function in CLA not supported";
    case 0x69:
      return "command not allowed";
    case 0x6A:
      return "wrong parameters P1-P2 (e.g. file or application not found)";
    case 0x6B:
      return "wrong parameters P1-P2";
    case 0x6C:
      return "wrong Le field";
    case 0x6D:
      return "instruction code not supported or invalid";
    case 0x6E:
      return "class not supported";
    case 0x6F:
      return "no precise diagnosis";
    default:
      break;
  }
  if ((sw >> 12) == 0x9) return "application-specific status";
  return "not an ISO 7816-4 status word";
}

}  // namespace portier::drivers
