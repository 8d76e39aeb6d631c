// A contactless card reader without hardware, for the demo and for tests of
// the gateway's Transmit path: one reader whose card is present from start
// (ATR and UID as a contactless card reports them), answering APDUs the way
// a small test applet does:
//   SELECT (00 A4 ..)          -> 90 00
//   GET CHALLENGE (00 84 00 00 Le) -> Le random bytes, 90 00
//   INS EE ("stuck card")      -> never answers: the call fails after the
//                                 request's timeout, as a jammed card would
//   anything else              -> 6D 00 (instruction not supported)
// Actions: `transmit` (op transmit, needs the lease), `remove_card` and
// `insert_card` (op configure, need the lease) to play card events.
// Threads: callbacks come from the caller of start()/stop()/act().
#pragma once

#include <condition_variable>
#include <mutex>
#include <string>

#include "driver.h"

namespace portier::drivers {

struct SimulatedCardReaderConfig {
  std::string id;  // e.g. "nfc0"
};

class SimulatedCardReader final : public Driver {
 public:
  explicit SimulatedCardReader(SimulatedCardReaderConfig config);
  ~SimulatedCardReader() override;

  static constexpr std::string_view kAtr =
      "\x3b\x8f\x80\x01\x80\x4f\x0c\xa0\x00\x00\x03\x06\x03\x00\x01\x00\x00\x00\x00\x6a";
  static constexpr std::string_view kUid = "\x04\xa2\x4b\x1a\x5c\x61\x80";

  std::string_view name() const override { return "simulated_card_reader"; }
  Result<void> start(DriverSink& sink) override;
  void stop() override;
  Result<std::size_t> write(const std::string& device_id, std::string_view data) override;
  Result<ActionResult> act(const ActionRequest& request) override;
  std::vector<SelfTestResult> self_test() override;

 private:
  Result<ActionResult> transmit(const ActionRequest& request);

  const SimulatedCardReaderConfig config_;
  DriverSink* sink_ = nullptr;
  std::mutex mu_;
  std::condition_variable cv_;
  bool card_present_ = false;
  bool stopping_ = false;
};

}  // namespace portier::drivers
