// Turns one frame from the framer into a ScanData: strips the configured
// prefix and the AIM symbology identifier, and decodes the payload to UTF-8.
// Pure: no I/O, no threads, no logging; safe to use from several threads.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "driver.h"
#include "serial_scanner/scanner_config.h"

namespace portier::drivers {

struct DecoderOptions {
  std::string prefix;  // stripped when the frame starts with it
  bool aim = true;     // frames may start with "]" code modifier
  TextEncoding encoding = TextEncoding::automatic;
};

class ScanDecoder {
 public:
  explicit ScanDecoder(DecoderOptions options);

  // Never fails: undecodable payloads come back with decode_error = true,
  // encoding "binary", empty text and the bytes in `raw`.
  // Decoding rules:
  //   utf8      -> the payload must be valid UTF-8;
  //   gb18030   -> converted from GB 18030 with iconv;
  //   automatic -> valid UTF-8 is taken as UTF-8 (so ASCII is "utf-8"),
  //                otherwise GB 18030, otherwise binary.
  ScanData decode(std::string_view frame) const;

 private:
  DecoderOptions options_;
};

// Strict UTF-8 check: rejects overlong forms, surrogates (U+D800..U+DFFF),
// code points above U+10FFFF and truncated sequences. NUL is valid.
bool is_valid_utf8(std::string_view bytes);

// GB 18030 -> UTF-8 via glibc iconv; nullopt on any invalid or truncated
// sequence. NUL bytes are converted like any other byte.
std::optional<std::string> gb18030_to_utf8(std::string_view bytes);

}  // namespace portier::drivers
