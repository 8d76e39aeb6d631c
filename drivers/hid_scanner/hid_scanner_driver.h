// Driver for one USB HID barcode/QR scanner, in one of two modes:
//  - "hidpos": reads HID POS Scanned Data Reports (usage page 0x8C, see
//    hid_pos_report_parser.h) from /dev/hidrawN, one report per read();
//  - "keyboard": reads the key events of a keyboard-wedge scanner from
//    /dev/input/eventN (see keyboard_wedge_decoder.h), after taking an
//    exclusive grab (EVIOCGRAB): while the grab is held the kernel delivers
//    the scanner's keystrokes to this driver only, so scanned digits never
//    reach a focused window, a console or another app as typing. Without the
//    grab there is no such guarantee, so a path that cannot be grabbed (not
//    an evdev node, or grabbed by someone else) is an error state unless the
//    config says grab = false (meant for tests feeding a FIFO).
// Scans come out as ScanData shaped like the serial scanner's (same
// ScanDecoder: AIM id -> symbology, UTF-8 / GB 18030 decoding); problems
// with the data as FaultData ("malformed_report", "frame_too_long",
// "unknown_key"), never carrying payload.
//
// A path that is not a character device (a FIFO or regular file in tests)
// is read as a byte stream cut into 64-byte reports (hidpos) or
// struct input_event records (keyboard). End of file (the FIFO's writer
// closed) counts as the device vanishing.
//
// Threads and callbacks are as for SerialScanner: start() calls
// device_added() and device_state() on the caller's thread; afterwards every
// device_event/device_state comes from the driver's own thread, in order,
// and must not block for long; stop() joins it (promptly: an eventfd wakes
// it from any wait) and calls device_removed() on the caller's thread.
// Vanished devices are reported disconnected once and reopened with
// exponential backoff between reopen_min_ms and reopen_max_ms; other open
// failures (permission, cannot grab, identity mismatch) are DeviceState::
// error and retried the same way. device_state is reported on change only.
//
// DeviceInfo: class "scanner", driver "hid_scanner", capabilities
// {"events"} (the driver never writes to the scanner), attributes path,
// mode, encoding, aim ("true"/"false"), and for keyboard mode layout and
// grab; vendor/product ("0c2e") when pinned.
//
// The driver never logs; payloads reach only the sink.
#pragma once

#include <atomic>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "device_node_loop.h"
#include "driver.h"
#include "hid_scanner/hid_pos_report_parser.h"
#include "hid_scanner/hid_scanner_config.h"
#include "hid_scanner/keyboard_wedge_decoder.h"
#include "serial_scanner/scan_decoder.h"

namespace portier::drivers {

class HidScannerDriver final : public Driver {
 public:
  explicit HidScannerDriver(HidScannerConfig config);
  ~HidScannerDriver() override;  // stops if running
  HidScannerDriver(const HidScannerDriver&) = delete;
  HidScannerDriver& operator=(const HidScannerDriver&) = delete;

  // Checks a config without touching the device; usable by config loaders.
  static Result<void> validate(const HidScannerConfig& config);

  std::string_view name() const override { return "hid_scanner"; }
  // Errors: invalid_argument for a bad config, failed_precondition when
  // already started, io/internal when the eventfd or thread cannot be made.
  Result<void> start(DriverSink& sink) override;
  // Returns promptly; idempotent.
  void stop() override;
  // Always fails: not_found for an unknown id, else failed_precondition
  // (HID scanners here are input-only).
  Result<std::size_t> write(const std::string& device_id, std::string_view data) override;
  // present: the path opens for reading; responding: HIDIOCGRAWINFO (hidpos)
  // or EVIOCGID (keyboard) answers on a character device, or the test
  // file/FIFO is readable; identity_ok: vendor/product match when pinned.
  // Does not take the grab and returns at once (non-blocking opens).
  std::vector<SelfTestResult> self_test() override;

 private:
  struct OpenOutcome {
    int fd = -1;
    bool packets = false;  // one report per read() (hidraw character device)
    DeviceState state = DeviceState::disconnected;  // when fd < 0
    std::string reason;
  };

  DeviceInfo info() const;
  OpenOutcome open_device() const;
  DeviceNodeLoop node_loop();  // the thread that reads and reopens the node
  void process_stream(std::string_view bytes);
  void process_unit(std::string_view unit);
  void emit_scan(const std::string& aim, const std::string& data, bool aim_known);
  void disconnect(const std::string& reason);
  void report(DeviceState state, const std::string& reason);

  const HidScannerConfig config_;
  const bool keyboard_;
  HidPosAssembler assembler_;
  KeyboardWedgeDecoder keys_;
  ScanDecoder decoder_with_aim_;  // frames that may start with "]Cm"
  ScanDecoder decoder_plain_;     // payloads known to carry no AIM id

  DriverSink* sink_ = nullptr;
  std::atomic<bool> started_{false};
  std::optional<DeviceState> reported_;
  int fd_ = -1;  // only the driver thread (or start/stop) touches it
  bool packets_ = false;
  std::string pending_;    // stream mode: bytes of an incomplete unit
  DeviceNodeThread node_;  // last: its thread stops before the members above go
};

}  // namespace portier::drivers
