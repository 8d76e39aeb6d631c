#include "serial_scanner/scan_decoder.h"

#include <iconv.h>

#include <cerrno>
#include <utility>

#include "serial_scanner/aim_symbology.h"

namespace portier::drivers {
namespace {

bool is_ascii_alnum(char c) {
  return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

bool is_ascii_alpha(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); }

// Closes an iconv descriptor on every path.
class IconvHandle {
 public:
  IconvHandle(const char* to, const char* from) : cd_(iconv_open(to, from)) {}
  ~IconvHandle() {
    if (ok()) iconv_close(cd_);
  }
  IconvHandle(const IconvHandle&) = delete;
  IconvHandle& operator=(const IconvHandle&) = delete;
  bool ok() const { return cd_ != reinterpret_cast<iconv_t>(-1); }
  iconv_t get() const { return cd_; }

 private:
  iconv_t cd_;
};

}  // namespace

bool is_valid_utf8(std::string_view bytes) {
  const auto* s = reinterpret_cast<const unsigned char*>(bytes.data());
  const std::size_t n = bytes.size();
  std::size_t i = 0;
  while (i < n) {
    const unsigned char b0 = s[i];
    if (b0 < 0x80) {
      ++i;
      continue;
    }
    std::size_t len = 0;
    unsigned char lo = 0x80;  // allowed range of the second byte
    unsigned char hi = 0xBF;
    if (b0 >= 0xC2 && b0 <= 0xDF) {
      len = 2;
    } else if (b0 == 0xE0) {
      len = 3;
      lo = 0xA0;  // no overlongs
    } else if (b0 >= 0xE1 && b0 <= 0xEC) {
      len = 3;
    } else if (b0 == 0xED) {
      len = 3;
      hi = 0x9F;  // no surrogates
    } else if (b0 >= 0xEE && b0 <= 0xEF) {
      len = 3;
    } else if (b0 == 0xF0) {
      len = 4;
      lo = 0x90;  // no overlongs
    } else if (b0 >= 0xF1 && b0 <= 0xF3) {
      len = 4;
    } else if (b0 == 0xF4) {
      len = 4;
      hi = 0x8F;  // nothing above U+10FFFF
    } else {
      return false;  // continuation byte, C0/C1 overlong leads, F5..FF
    }
    if (n - i < len) return false;
    if (s[i + 1] < lo || s[i + 1] > hi) return false;
    for (std::size_t k = 2; k < len; ++k) {
      if (s[i + k] < 0x80 || s[i + k] > 0xBF) return false;
    }
    i += len;
  }
  return true;
}

std::optional<std::string> gb18030_to_utf8(std::string_view bytes) {
  IconvHandle cd("UTF-8", "GB18030");
  if (!cd.ok()) return std::nullopt;
  std::string out;
  // GB 18030 -> UTF-8 grows at most 3 bytes per 2 input bytes.
  out.resize(bytes.size() * 2 + 16);
  char* in_ptr = const_cast<char*>(bytes.data());
  std::size_t in_left = bytes.size();
  char* out_ptr = out.data();
  std::size_t out_left = out.size();
  while (in_left > 0) {
    const std::size_t r = iconv(cd.get(), &in_ptr, &in_left, &out_ptr, &out_left);
    if (r != static_cast<std::size_t>(-1)) break;
    if (errno != E2BIG) return std::nullopt;  // EILSEQ or EINVAL (truncated)
    const std::size_t used = out.size() - out_left;
    out.resize(out.size() * 2);
    out_ptr = out.data() + used;
    out_left = out.size() - used;
  }
  if (in_left != 0) return std::nullopt;
  // Flush any shift state (none for GB 18030, but cheap and correct).
  if (iconv(cd.get(), nullptr, nullptr, &out_ptr, &out_left) == static_cast<std::size_t>(-1)) {
    return std::nullopt;
  }
  out.resize(out.size() - out_left);
  if (!is_valid_utf8(out)) return std::nullopt;
  return out;
}

ScanDecoder::ScanDecoder(DecoderOptions options) : options_(std::move(options)) {}

ScanData ScanDecoder::decode(std::string_view frame) const {
  ScanData scan;
  if (!options_.prefix.empty() && frame.starts_with(options_.prefix)) {
    frame.remove_prefix(options_.prefix.size());
  }
  if (options_.aim && frame.size() >= 3 && frame[0] == ']' && is_ascii_alpha(frame[1]) &&
      is_ascii_alnum(frame[2])) {
    scan.aim_id = std::string(frame.substr(0, 3));
    if (auto name = aim_symbology(frame[1])) {
      scan.symbology = std::string(*name);
    } else {
      scan.symbology = "unknown (" + scan.aim_id + ")";
    }
    frame.remove_prefix(3);
  }
  scan.raw = std::string(frame);

  auto as_binary = [&scan] {
    scan.decode_error = true;
    scan.encoding = "binary";
    scan.text.clear();
  };
  switch (options_.encoding) {
    case TextEncoding::utf8:
      if (is_valid_utf8(frame)) {
        scan.text = scan.raw;
        scan.encoding = "utf-8";
      } else {
        as_binary();
      }
      break;
    case TextEncoding::gb18030:
      if (auto text = gb18030_to_utf8(frame)) {
        scan.text = std::move(*text);
        scan.encoding = "gb18030";
      } else {
        as_binary();
      }
      break;
    case TextEncoding::automatic:
      if (is_valid_utf8(frame)) {
        scan.text = scan.raw;
        scan.encoding = "utf-8";
      } else if (auto text = gb18030_to_utf8(frame)) {
        scan.text = std::move(*text);
        scan.encoding = "gb18030";
      } else {
        as_binary();
      }
      break;
  }
  return scan;
}

}  // namespace portier::drivers
