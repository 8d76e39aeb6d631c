#include "simulated/simulated_card_reader.h"

#include <random>

namespace portier::drivers {
namespace {

std::string sw(unsigned char sw1, unsigned char sw2) {
  return std::string{static_cast<char>(sw1), static_cast<char>(sw2)};
}

}  // namespace

SimulatedCardReader::SimulatedCardReader(SimulatedCardReaderConfig config)
    : config_(std::move(config)) {}

SimulatedCardReader::~SimulatedCardReader() { stop(); }

Result<void> SimulatedCardReader::start(DriverSink& sink) {
  sink_ = &sink;
  DeviceInfo info;
  info.id = config_.id;
  info.device_class = "nfc";
  info.driver = "simulated_card_reader";
  info.capabilities = {"events"};
  info.attributes = {{"reader", "Simulated PICC Reader 00 00"}};
  info.actions = {{"transmit", "transmit", true},
                  {"remove_card", "configure", true},
                  {"insert_card", "configure", true}};
  sink.device_added(info);
  sink.device_state(config_.id, DeviceState::ready, "");
  {
    std::lock_guard lock(mu_);
    card_present_ = true;
    stopping_ = false;
  }
  sink.device_event(config_.id,
                    {CardData{CardData::Kind::inserted, std::string(kAtr), std::string(kUid)}});
  return {};
}

void SimulatedCardReader::stop() {
  {
    std::lock_guard lock(mu_);
    if (!sink_ || stopping_) return;
    stopping_ = true;
  }
  cv_.notify_all();  // releases a "stuck card" exchange at once
  sink_->device_removed(config_.id);
}

Result<std::size_t> SimulatedCardReader::write(const std::string& device_id, std::string_view) {
  return fail(Errc::failed_precondition, config_.id, device_id,
              "a card reader takes APDUs through Transmit, not raw writes");
}

std::vector<SelfTestResult> SimulatedCardReader::self_test() {
  return {{config_.id, true, true, true, "simulated reader, card present"}};
}

Result<ActionResult> SimulatedCardReader::act(const ActionRequest& request) {
  if (request.action == "transmit") return transmit(request);
  bool insert = request.action == "insert_card";
  if (!insert && request.action != "remove_card") {
    return fail(Errc::invalid_argument, config_.id, request.action, "no such action");
  }
  {
    std::lock_guard lock(mu_);
    if (card_present_ == insert) return ActionResult{};
    card_present_ = insert;
  }
  sink_->device_event(config_.id,
                      {CardData{insert ? CardData::Kind::inserted : CardData::Kind::removed,
                                insert ? std::string(kAtr) : std::string(),
                                insert ? std::string(kUid) : std::string()}});
  return ActionResult{};
}

Result<ActionResult> SimulatedCardReader::transmit(const ActionRequest& request) {
  const std::string& apdu = request.data;
  if (apdu.size() < 4) {
    return fail(Errc::invalid_argument, config_.id, "APDU",
                "shorter than a header (CLA INS P1 P2): " + std::to_string(apdu.size()) + " bytes");
  }
  std::unique_lock lock(mu_);
  if (!card_present_) return fail(Errc::unavailable, config_.id, "transmit", "no card present");
  const auto ins = static_cast<unsigned char>(apdu[1]);
  ActionResult r;
  if (ins == 0xEE) {
    // A jammed card: nothing comes back; the exchange gives up at the deadline.
    cv_.wait_for(lock, request.timeout, [&] { return stopping_; });
    return fail(
        Errc::unavailable, config_.id, "transmit",
        "the card did not answer within " + std::to_string(request.timeout.count()) + " ms");
  }
  if (ins == 0xA4) {
    r.data = sw(0x90, 0x00);
  } else if (ins == 0x84) {
    std::size_t le = apdu.size() >= 5 ? static_cast<unsigned char>(apdu[4]) : 0;
    if (le == 0) le = 256;
    std::random_device rd;
    for (std::size_t i = 0; i < le; ++i) r.data += static_cast<char>(rd() & 0xff);
    r.data += sw(0x90, 0x00);
  } else {
    r.data = sw(0x6D, 0x00);
  }
  return r;
}

}  // namespace portier::drivers
