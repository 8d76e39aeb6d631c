// Configuration of one USB HID barcode/QR scanner, read either as a HID POS
// device (/dev/hidrawN) or as a keyboard wedge (/dev/input/eventN).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace portier::drivers {

struct HidScannerConfig {
  std::string id;  // device id, e.g. "scanner1"
  // "hidpos": HID POS scanned data reports (usage page 0x8C) from hidraw;
  // "keyboard": key events from evdev, decoded with `layout`.
  std::string mode = "hidpos";
  // /dev/hidrawN or /dev/input/eventN (a by-id symlink is better: stable
  // across ports), or a test file/FIFO.
  std::string path;
  std::string layout = "us";      // keyboard mode: "us", "de" or "fr"
  std::string encoding = "auto";  // hidpos mode: "auto", "utf-8" or "gb18030"
  bool aim = true;                // scans carry an AIM symbology id ("]Q1")
  // keyboard mode: take an exclusive EVIOCGRAB so scanned keystrokes never
  // reach another reader of the input device (X, a console, another app).
  bool grab = true;
  std::size_t max_frame = 4096;  // payload bytes of one scan
  int reopen_min_ms = 100;       // backoff when the device vanishes
  int reopen_max_ms = 5000;
  // Pinned USB identity: when set, self_test() and every (re)open compare
  // it with the device's (HIDIOCGRAWINFO for hidraw, EVIOCGID for evdev).
  std::optional<std::uint16_t> vendor;
  std::optional<std::uint16_t> product;
};

}  // namespace portier::drivers
