// Configuration of one serial (USB-CDC / RS-232) barcode/QR scanner.
#pragma once

#include <cstddef>
#include <string>

namespace portier::drivers {

enum class FrameSuffix { cr, lf, crlf };
enum class TextEncoding { automatic, utf8, gb18030 };

struct SerialScannerConfig {
  std::string id;    // device id, e.g. "scanner0"
  std::string path;  // e.g. /dev/ttyACM0 or a pty slave
  int baud = 9600;   // one of the standard termios rates
  FrameSuffix suffix = FrameSuffix::cr;
  std::string prefix;  // stripped when present at frame start
  bool aim = true;     // frames start with an AIM id like "]Q1"
  TextEncoding encoding = TextEncoding::automatic;
  std::size_t max_frame = 4096;  // bytes between prefix and suffix
  int reopen_min_ms = 100;       // backoff when the device vanishes
  int reopen_max_ms = 5000;
};

struct SimulatedScannerConfig {
  std::string id;          // e.g. "sim0"
  int interval_ms = 3000;  // one scan every interval
};

}  // namespace portier::drivers
