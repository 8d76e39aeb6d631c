// Driver for one serial barcode/QR scanner (USB-CDC ttyACM, RS-232 ttyS, or
// a pty in tests). Reads frames, decodes them and reports them to the sink.
//
// Threads and callbacks (what the gateway must know):
//  - start() calls device_added() and then device_state(ready|disconnected|
//    error) on the caller's thread, before it returns.
//  - Afterwards every callback (device_event, device_state) comes from the
//    driver's own thread, one at a time, in stream order. Callbacks must not
//    block for long (queue and return): while one runs, the driver reads
//    nothing, and the kernel buffer of the tty eventually fills.
//  - stop() joins that thread, then calls device_removed() on the caller's
//    thread. Do not call stop() while holding a lock the sink takes.
//  - write() may be called from any thread, concurrently with the driver
//    thread. start()/stop() must not race each other.
//
// Device lifecycle: if the device is absent at start(), start() still
// succeeds; the device is reported disconnected and the driver keeps trying
// to open it. A vanished device (EOF, EIO, POLLHUP/POLLERR) is reported
// disconnected once, closed, and reopened with exponential backoff between
// reopen_min_ms and reopen_max_ms; when it is back, device_state(ready).
// The backoff returns to reopen_min_ms only after a connection stayed up for
// reopen_max_ms, so a device that opens and hangs up at once cannot make
// the driver flap. Open failures other than "absent" (permission, not a
// tty) are reported as DeviceState::error and retried the same way.
// device_state is reported only when the state changes.
//
// DeviceInfo: class "scanner", driver "serial_scanner", capabilities
// {"events","write"}, attributes path, baud ("9600"), suffix ("cr"|"lf"|
// "crlf"), encoding ("automatic"|"utf8"|"gb18030").
//
// Frame limit: max_frame counts the bytes between prefix and suffix, so the
// framer accepts max_frame + prefix.size() bytes before the suffix. Faults
// ("frame_too_long") and scans never carry more than that.
//
// The driver never logs; payloads reach only the sink.
#pragma once

#include <termios.h>

#include <atomic>
#include <cstddef>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "device_node_loop.h"
#include "driver.h"
#include "serial_scanner/scan_decoder.h"
#include "serial_scanner/scan_framer.h"
#include "serial_scanner/scanner_config.h"

namespace portier::drivers {

class SerialScanner final : public Driver {
 public:
  explicit SerialScanner(SerialScannerConfig config);
  ~SerialScanner() override;  // stops if running
  SerialScanner(const SerialScanner&) = delete;
  SerialScanner& operator=(const SerialScanner&) = delete;

  // Checks a config without touching the device (baud must be a standard
  // termios rate, limits positive); usable by config loaders.
  static Result<void> validate(const SerialScannerConfig& config);

  std::string_view name() const override { return "serial_scanner"; }
  // Errors: invalid_argument for a bad config, failed_precondition when
  // already started, io/internal when the eventfd or thread cannot be made.
  Result<void> start(DriverSink& sink) override;
  // Returns promptly (interrupts any backoff wait); idempotent.
  void stop() override;
  // Writes `data` to the device, waiting at most 1 s for the tty to accept
  // it. Returns the bytes written (fewer than data.size() only on timeout
  // after a partial write). Errors: not_found (unknown id), unavailable
  // (not started, disconnected, hung up, or nothing written within 1 s), io.
  Result<std::size_t> write(const std::string& device_id, std::string_view data) override;

 private:
  struct OpenOutcome {
    int fd = -1;
    DeviceState state = DeviceState::disconnected;  // when fd < 0
    std::string reason;
  };

  DeviceInfo info() const;
  OpenOutcome open_device() const;
  DeviceNodeLoop node_loop();  // the thread that reads and reopens the tty
  void close_node();
  void process(std::string_view bytes);
  void disconnect(const std::string& reason);
  void report(DeviceState state, const std::string& reason);

  const SerialScannerConfig config_;
  speed_t speed_ = B9600;
  ScanFramer framer_;
  ScanDecoder decoder_;

  DriverSink* sink_ = nullptr;
  std::atomic<bool> started_{false};
  std::optional<DeviceState> reported_;

  mutable std::mutex fd_mu_;  // guards fd_ against write() from other threads
  int fd_ = -1;               // only the driver thread (or start/stop) changes it
  DeviceNodeThread node_;     // last: its thread stops before the members above go
};

}  // namespace portier::drivers
