// A scanner without hardware, for demos and tests: every interval_ms it
// "reads" the next of a fixed rotating set of sample frames (EAN-13 "]E0",
// QR "]Q1" payment URL, Code 128 "]C1", QR with GB 18030 Chinese text) and
// passes them through the same ScanFramer and ScanDecoder as SerialScanner,
// so what the sink receives is real decoder output.
//
// Threads and callbacks: start() calls device_added() and
// device_state(ready) on the caller's thread; device_event() then comes
// from the driver's own thread and must not block for long; stop() wakes and
// joins that thread at once (no sleeping), then calls device_removed() on
// the caller's thread. write() accepts and discards data, like a scanner
// that ignores configuration commands.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "driver.h"
#include "serial_scanner/scanner_config.h"

namespace portier::drivers {

class SimulatedScanner final : public Driver {
 public:
  explicit SimulatedScanner(SimulatedScannerConfig config);
  ~SimulatedScanner() override;  // stops if running
  SimulatedScanner(const SimulatedScanner&) = delete;
  SimulatedScanner& operator=(const SimulatedScanner&) = delete;

  static Result<void> validate(const SimulatedScannerConfig& config);
  // The frames the simulated device sends, in order, each ending in CR.
  static std::vector<std::string> sample_frames();

  std::string_view name() const override { return "simulated_scanner"; }
  Result<void> start(DriverSink& sink) override;
  void stop() override;
  Result<std::size_t> write(const std::string& device_id, std::string_view data) override;

 private:
  void run();

  const SimulatedScannerConfig config_;
  DriverSink* sink_ = nullptr;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;  // guarded by mu_
  bool running_ = false;   // guarded by mu_
};

}  // namespace portier::drivers
