#include "simulated/simulated_scanner.h"

#include <chrono>
#include <system_error>
#include <utility>
#include <variant>

#include "serial_scanner/scan_decoder.h"
#include "serial_scanner/scan_framer.h"

namespace portier::drivers {
namespace {

std::string where(const SimulatedScannerConfig& c) { return "simulated_scanner " + c.id; }

}  // namespace

SimulatedScanner::SimulatedScanner(SimulatedScannerConfig config) : config_(std::move(config)) {}

SimulatedScanner::~SimulatedScanner() { stop(); }

Result<void> SimulatedScanner::validate(const SimulatedScannerConfig& c) {
  if (c.id.empty()) return fail(Errc::invalid_argument, where(c), "id", "must not be empty");
  if (c.interval_ms <= 0) {
    return fail(Errc::invalid_argument, where(c), "interval_ms " + std::to_string(c.interval_ms),
                "must be positive");
  }
  return {};
}

std::vector<std::string> SimulatedScanner::sample_frames() {
  return {
      // EAN-13 product code.
      "]E04006381333931\r",
      // QR payment code (URL form, fictitious merchant and token).
      "]Q1https://pay.example.com/qr/PT7F3A9C2E?amt=12.50&cur=CNY\r",
      // Code 128 asset label.
      "]C1PORTIER-DEMO-0001\r",
      // QR with Chinese text in GB 18030: "中文支付码（测试）".
      std::string("]Q1"
                  "\xd6\xd0\xce\xc4\xd6\xa7\xb8\xb6\xc2\xeb"
                  "\xa3\xa8\xb2\xe2\xca\xd4\xa3\xa9"
                  "\r"),
  };
}

Result<void> SimulatedScanner::start(DriverSink& sink) {
  if (auto ok = validate(config_); !ok) return ok;
  {
    std::lock_guard lock(mu_);
    if (running_)
      return fail(Errc::failed_precondition, where(config_), "start", "already started");
    stopping_ = false;
  }
  sink_ = &sink;
  DeviceInfo info;
  info.id = config_.id;
  info.device_class = "scanner";
  info.driver = "simulated_scanner";
  info.capabilities = {"events", "write"};
  info.attributes = {{"interval_ms", std::to_string(config_.interval_ms)},
                     {"encoding", "automatic"}};
  sink.device_added(info);
  sink.device_state(config_.id, DeviceState::ready, "");
  try {
    thread_ = std::thread([this] { run(); });
  } catch (const std::system_error& e) {
    sink.device_removed(config_.id);
    return fail(Errc::internal, where(config_), "driver thread", e.what());
  }
  std::lock_guard lock(mu_);
  running_ = true;
  return {};
}

void SimulatedScanner::stop() {
  {
    std::lock_guard lock(mu_);
    if (!running_) return;
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  {
    std::lock_guard lock(mu_);
    running_ = false;
  }
  sink_->device_removed(config_.id);
}

Result<std::size_t> SimulatedScanner::write(const std::string& device_id, std::string_view data) {
  if (device_id != config_.id) {
    return fail(Errc::not_found, where(config_), "write to " + device_id, "no such device");
  }
  std::lock_guard lock(mu_);
  if (!running_ || stopping_) {
    return fail(Errc::unavailable, where(config_), "write", "driver is not running");
  }
  return data.size();
}

void SimulatedScanner::run() {
  const std::vector<std::string> frames = sample_frames();
  ScanFramer framer(FrameSuffix::cr, 4096);
  const ScanDecoder decoder(DecoderOptions{"", true, TextEncoding::automatic});
  const auto interval = std::chrono::milliseconds(config_.interval_ms);
  std::size_t next_frame = 0;
  std::unique_lock lock(mu_);
  for (;;) {
    const auto due = std::chrono::steady_clock::now() + interval;
    if (cv_.wait_until(lock, due, [this] { return stopping_; })) return;
    lock.unlock();
    for (FramerItem& item : framer.feed(frames[next_frame])) {
      if (auto* frame = std::get_if<std::string>(&item)) {
        sink_->device_event(config_.id, DeviceEvent{decoder.decode(*frame)});
      } else {
        sink_->device_event(config_.id, DeviceEvent{std::move(std::get<FaultData>(item))});
      }
    }
    next_frame = (next_frame + 1) % frames.size();
    lock.lock();
  }
}

}  // namespace portier::drivers
