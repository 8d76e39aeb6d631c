#include "pcsc/pcsc_reader_driver.h"

#include <algorithm>
#include <cctype>
#include <system_error>
#include <utility>

#include "pcsc/apdu.h"
#include "pcsc/pcsc_api.h"
#include "pcsc/pcsc_error.h"
#include "pcsc/reader_match.h"

namespace portier::drivers {
namespace {

using Clock = std::chrono::steady_clock;

constexpr auto kUidTimeout = std::chrono::seconds(1);
constexpr auto kWorkerGraceOnRemoval = std::chrono::milliseconds(200);
constexpr auto kWorkerGraceOnStop = std::chrono::milliseconds(500);
constexpr std::size_t kMaxIdLength = 64;
constexpr int kMaxIdNumberDigits = 10;
const char kPnpReader[] = "\\\\?PnP?\\Notification";

bool valid_id(const std::string& id, std::size_t max = kMaxIdLength) {
  if (id.empty() || id.size() > max) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
  });
}

bool context_lost(LONG rv) {
  return rv == SCARD_E_NO_SERVICE || rv == SCARD_E_SERVICE_STOPPED || rv == SCARD_F_COMM_ERROR ||
         rv == SCARD_E_INVALID_HANDLE;
}

// The readers pcscd lists, in its order.
LONG list_readers(SCARDCONTEXT context, std::vector<std::string>& out) {
  out.clear();
  LONG rv = SCARD_S_SUCCESS;
  std::string buf;
  for (int attempt = 0; attempt < 3; ++attempt) {
    DWORD len = 0;
    rv = pcsc().SCardListReaders(context, nullptr, nullptr, &len);
    if (rv == SCARD_E_NO_READERS_AVAILABLE) return SCARD_S_SUCCESS;
    if (rv != SCARD_S_SUCCESS) return rv;
    buf.assign(len, '\0');
    rv = pcsc().SCardListReaders(context, nullptr, buf.data(), &len);
    if (rv == SCARD_E_NO_READERS_AVAILABLE) return SCARD_S_SUCCESS;
    if (rv == SCARD_E_INSUFFICIENT_BUFFER) continue;  // a reader arrived in between
    if (rv != SCARD_S_SUCCESS) return rv;
    buf.resize(std::min<std::size_t>(len, buf.size()));
    break;
  }
  if (rv != SCARD_S_SUCCESS) return rv;
  std::size_t at = 0;
  while (at < buf.size()) {
    const std::size_t end = buf.find('\0', at);
    const std::size_t stop = end == std::string::npos ? buf.size() : end;
    if (stop == at) break;  // the empty string that ends the list
    out.emplace_back(buf, at, stop - at);
    at = stop + 1;
  }
  return SCARD_S_SUCCESS;
}

std::string where(const std::string& id) { return "pcsc " + id; }

}  // namespace

PcscReaderDriver::PcscReaderDriver(PcscConfig config)
    : config_(std::move(config)), ids_(config_.id_prefix, config_.pinned) {}

PcscReaderDriver::~PcscReaderDriver() { stop(); }

Result<void> PcscReaderDriver::validate(const PcscConfig& c) {
  const std::string w = "pcsc";
  if (!valid_id(c.id_prefix, kMaxIdLength - kMaxIdNumberDigits)) {
    return fail(Errc::invalid_argument, w, "id_prefix \"" + c.id_prefix + "\"",
                "must be 1-" + std::to_string(kMaxIdLength - kMaxIdNumberDigits) +
                    " characters of letters, digits, '-', '_' or '.'");
  }
  std::set<std::string> names;
  for (const auto& [id, reader] : c.pinned) {
    if (!valid_id(id)) {
      return fail(Errc::invalid_argument, w, "pinned id \"" + id + "\"",
                  "must be 1-64 characters of letters, digits, '-', '_' or '.'");
    }
    if (reader.empty()) {
      return fail(Errc::invalid_argument, w, "pinned." + id, "reader name must not be empty");
    }
    if (!names.insert(reader).second) {
      return fail(Errc::invalid_argument, w, "pinned." + id,
                  "reader \"" + reader + "\" is pinned to more than one id");
    }
  }
  for (const auto* globs : {&c.readers_allowed, &c.contactless_readers}) {
    for (const auto& g : *globs) {
      if (g.empty()) {
        return fail(Errc::invalid_argument, w,
                    globs == &c.readers_allowed ? "readers_allowed" : "contactless_readers",
                    "a glob must not be empty");
      }
    }
  }
  if (c.transaction_timeout_ms < 1 || c.transaction_timeout_ms > 600000) {
    return fail(Errc::invalid_argument, w,
                "transaction_timeout_ms " + std::to_string(c.transaction_timeout_ms),
                "must be between 1 and 600000");
  }
  if (c.transaction_hold_ms < 0 || c.transaction_hold_ms > 60000) {
    return fail(Errc::invalid_argument, w,
                "transaction_hold_ms " + std::to_string(c.transaction_hold_ms),
                "must be between 0 and 60000");
  }
  if (c.poll_ms < 10 || c.poll_ms > 60000) {
    return fail(Errc::invalid_argument, w, "poll_ms " + std::to_string(c.poll_ms),
                "must be between 10 and 60000");
  }
  return {};
}

bool PcscReaderDriver::contactless(const std::string& reader) const {
  return reader_contactless(reader, config_.contactless_readers);
}

DeviceInfo PcscReaderDriver::info(const std::string& id, const std::string& reader) const {
  const bool nfc = contactless(reader);
  DeviceInfo d;
  d.id = id;
  d.device_class = nfc ? "nfc" : "smartcard";
  d.driver = "pcsc";
  d.capabilities = {"events", "transmit"};
  d.attributes = {
      {"reader", reader}, {"protocol", nfc ? "iso14443" : "iso7816"}, {"driver", "pcsc"}};
  d.actions = {{"transmit", "transmit", true}, {"reset", "configure", true}};
  return d;
}

void PcscReaderDriver::report_state(const std::string& id, DeviceState state,
                                    const std::string& reason) {
  auto it = states_.find(id);
  if (it != states_.end() && it->second.first == state && it->second.second == reason) return;
  states_[id] = {state, reason};
  sink_->device_state(id, state, reason);
}

Result<void> PcscReaderDriver::start(DriverSink& sink) {
  if (started_) return fail(Errc::failed_precondition, "pcsc", "start", "already started");
  if (auto ok = validate(config_); !ok) return ok;
  // pcsc-lite is loaded here, by the first driver that starts (pcsc_api.h).
  if (auto api = pcsc_api(); !api) return std::unexpected(api.error());
  sink_ = &sink;
  pins_.emplace(config_.pinned);
  {
    std::lock_guard lock(mu_);
    stopping_ = false;
  }
  for (const auto& [id, reader] : config_.pinned) {
    sink.device_added(info(id, reader));
    reported_.insert(id);
  }
  LONG rv = SCARD_S_SUCCESS;
  std::vector<std::string> present;
  if (connect_service(&rv)) {
    SCARDCONTEXT c = 0;
    {
      std::lock_guard lock(mu_);
      c = context_;
    }
    rv = list_readers(c, present);
    if (rv != SCARD_S_SUCCESS) {
      drop_service();
      present.clear();
    }
  }
  listed_ = present;
  sync_readers(present, rv == SCARD_S_SUCCESS ? "the reader is not present" : pcsc_reason(rv));
  try {
    monitor_ = std::thread([this] { run(); });
  } catch (const std::system_error& e) {
    for (auto& [name, r] : readers_) r.worker->request_stop("the driver stopped");
    readers_.clear();
    {
      std::lock_guard lock(mu_);
      offered_.clear();
    }
    drop_service();
    for (const auto& id : reported_) sink.device_removed(id);
    reported_.clear();
    states_.clear();
    return fail(Errc::internal, "pcsc", "monitor thread", e.what());
  }
  started_ = true;
  return {};
}

void PcscReaderDriver::stop() {
  if (!started_) return;
  bool cancel = false;
  SCARDCONTEXT c = 0;
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    cancel = has_context_;
    c = context_;
  }
  cv_.notify_all();
  if (cancel) pcsc().SCardCancel(c);
  if (monitor_.joinable()) monitor_.join();
  drop_service();
  for (auto& [name, r] : readers_) r.worker->request_stop("the driver stopped");
  const auto deadline = Clock::now() + kWorkerGraceOnStop;
  for (auto& [name, r] : readers_) r.worker->finish(deadline);
  readers_.clear();
  {
    std::lock_guard lock(mu_);
    offered_.clear();
  }
  for (const auto& id : reported_) sink_->device_removed(id);
  reported_.clear();
  states_.clear();
  listed_.clear();
  started_ = false;
}

bool PcscReaderDriver::connect_service(LONG* rv) {
  SCARDCONTEXT c = 0;
  *rv = pcsc().SCardEstablishContext(SCARD_SCOPE_SYSTEM, nullptr, nullptr, &c);
  if (*rv != SCARD_S_SUCCESS) return false;
  std::lock_guard lock(mu_);
  context_ = c;
  has_context_ = true;
  return true;
}

void PcscReaderDriver::drop_service() {
  SCARDCONTEXT c = 0;
  {
    std::lock_guard lock(mu_);
    if (!has_context_) return;
    c = context_;
    has_context_ = false;
  }
  pcsc().SCardReleaseContext(c);
}

bool PcscReaderDriver::wait_for_stop(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return stopping_; });
}

void PcscReaderDriver::sync_readers(const std::vector<std::string>& present,
                                    const std::string& gone_reason) {
  std::vector<std::string> gone;
  for (auto& [name, r] : readers_) {
    if (std::find(present.begin(), present.end(), name) == present.end()) gone.push_back(name);
  }
  for (const auto& name : gone) {
    depart(readers_.at(name), gone_reason);
    readers_.erase(name);
  }
  for (const auto& name : present) {
    if (!readers_.contains(name)) arrive(name);
  }
  for (auto& change : pins_->update(present)) {
    const std::string& expected = config_.pinned.at(change.id);
    switch (change.state.status) {
      case PinStatus::present:
        break;  // arrive() reported it ready
      case PinStatus::missing:
        report_state(change.id, DeviceState::disconnected,
                     "pinned reader \"" + expected + "\" is not present" +
                         (gone_reason.empty() ? "" : ": " + gone_reason));
        break;
      case PinStatus::substituted:
        report_state(change.id, DeviceState::disconnected,
                     "pinned reader \"" + expected + "\" is missing; another reader is present");
        break;
    }
    if (change.alarm) sink_->device_event(change.id, DeviceEvent{std::move(*change.alarm)});
  }
}

void PcscReaderDriver::arrive(const std::string& name) {
  const auto pinned = ids_.pinned_id(name);
  if (!pinned && !reader_allowed(name, config_.readers_allowed)) return;
  Reader r;
  r.id = ids_.id_for(name);
  r.name = name;
  r.contactless = contactless(name);
  r.pinned = pinned.has_value();
  r.worker = std::make_shared<ReaderWorker>(where(r.id), name,
                                            std::chrono::milliseconds(config_.transaction_hold_ms));
  {
    std::lock_guard lock(mu_);
    offered_[r.id] = Offered{name, r.worker};
  }
  if (!r.pinned) {
    sink_->device_added(info(r.id, name));
    reported_.insert(r.id);
  }
  report_state(r.id, DeviceState::ready, "");
  readers_.emplace(name, std::move(r));
}

void PcscReaderDriver::depart(Reader& r, const std::string& reason) {
  if (r.card_present) {
    r.card_present = false;
    sink_->device_event(r.id, DeviceEvent{CardData{CardData::Kind::removed, {}, {}}});
  }
  r.worker->request_stop("the reader was removed");
  r.worker->finish(Clock::now() + kWorkerGraceOnRemoval);
  {
    std::lock_guard lock(mu_);
    offered_.erase(r.id);
  }
  if (r.pinned) {
    report_state(r.id, DeviceState::disconnected, reason);
  } else {
    states_.erase(r.id);
    reported_.erase(r.id);
    sink_->device_removed(r.id);
  }
}

void PcscReaderDriver::on_reader_state(Reader& r, const SCARD_READERSTATE& rs) {
  const DWORD ev = rs.dwEventState;
  if (ev & (SCARD_STATE_UNKNOWN | SCARD_STATE_UNAVAILABLE)) {
    r.last_event = ev & ~static_cast<DWORD>(SCARD_STATE_CHANGED);
    return;  // the reader is going away; the re-list reports it
  }
  const bool present = (ev & SCARD_STATE_PRESENT) != 0;
  const bool mute = present && (ev & SCARD_STATE_MUTE) != 0;
  const auto count = static_cast<std::uint16_t>(ev >> 16);
  // The event count (high word) moves on every insertion and removal, so a
  // card swapped between two waits shows as a removal and an insertion.
  const bool swapped = r.card_present && present && r.event_count && *r.event_count != count;
  if (r.card_present && (!present || mute || swapped)) {
    r.card_present = false;
    r.worker->card_changed();
    sink_->device_event(r.id, DeviceEvent{CardData{CardData::Kind::removed, {}, {}}});
  }
  if (present && !mute && !r.card_present) {
    CardData card;
    card.kind = CardData::Kind::inserted;
    card.atr.assign(reinterpret_cast<const char*>(rs.rgbAtr),
                    std::min<std::size_t>(rs.cbAtr, sizeof rs.rgbAtr));
    if (r.contactless) {
      card.uid = r.worker->contactless_uid(Clock::now() + kUidTimeout).value_or("");
    }
    r.card_present = true;
    sink_->device_event(r.id, DeviceEvent{std::move(card)});
  }
  if (mute && !r.mute_reported) {
    sink_->device_event(
        r.id, DeviceEvent{FaultData{"card_mute", "a card is in the reader but does not answer"}});
  }
  r.mute_reported = mute;
  r.event_count = count;
  r.last_event = ev & ~static_cast<DWORD>(SCARD_STATE_CHANGED);
}

void PcscReaderDriver::run() {
  const auto poll = std::chrono::milliseconds(config_.poll_ms);
  DWORD pnp_state = SCARD_STATE_UNAWARE;
  std::vector<SCARD_READERSTATE> states;
  std::vector<Reader*> watched;
  std::vector<std::string> listed;
  for (;;) {
    SCARDCONTEXT c = 0;
    {
      std::lock_guard lock(mu_);
      if (stopping_) break;
      c = context_;
      if (!has_context_) c = 0;
    }
    if (c == 0) {
      LONG rv = SCARD_S_SUCCESS;
      if (!connect_service(&rv)) {
        if (wait_for_stop(poll)) break;
        continue;
      }
      pnp_state = SCARD_STATE_UNAWARE;
      {
        std::lock_guard lock(mu_);
        c = context_;
      }
      const LONG lrv = list_readers(c, listed);
      if (lrv != SCARD_S_SUCCESS) {
        drop_service();
        if (wait_for_stop(poll)) break;
        continue;
      }
      listed_ = listed;
      sync_readers(listed_, "the reader was removed");
      continue;
    }

    states.clear();
    watched.clear();
    SCARD_READERSTATE pnp{};
    pnp.szReader = kPnpReader;
    pnp.dwCurrentState = pnp_state;
    states.push_back(pnp);
    for (auto& [name, r] : readers_) {
      SCARD_READERSTATE s{};
      s.szReader = r.name.c_str();
      s.dwCurrentState = r.last_event;
      states.push_back(s);
      watched.push_back(&r);
    }
    // A first round with a reader in an unaware state answers at once.
    const auto began = Clock::now();
    LONG rv = pcsc().SCardGetStatusChange(c, static_cast<DWORD>(config_.poll_ms), states.data(),
                                          static_cast<DWORD>(states.size()));
    {
      std::lock_guard lock(mu_);
      if (stopping_) break;
    }
    if (context_lost(rv)) {
      drop_service();
      listed_.clear();
      sync_readers({}, pcsc_reason(rv));
      if (wait_for_stop(poll)) break;
      continue;
    }
    bool acted = false;
    if (rv == SCARD_S_SUCCESS) {
      pnp_state = states[0].dwEventState & ~static_cast<DWORD>(SCARD_STATE_CHANGED);
      for (std::size_t i = 1; i < states.size(); ++i) {
        Reader& r = *watched[i - 1];
        const DWORD before = r.last_event;
        on_reader_state(r, states[i]);
        acted = acted || r.last_event != before;
      }
    }
    // Re-list after every wait: reader arrivals and removals are seen even
    // where the PnP notification is missed between two waits.
    const LONG lrv = list_readers(c, listed);
    if (context_lost(lrv)) {
      drop_service();
      listed_.clear();
      sync_readers({}, pcsc_reason(lrv));
      if (wait_for_stop(poll)) break;
      continue;
    }
    if (lrv == SCARD_S_SUCCESS && listed != listed_) {
      listed_ = listed;
      sync_readers(listed_, "the reader was removed");
      acted = true;
    }
    // Never spin: a wait that ends at once without news pauses a little.
    if (!acted && rv != SCARD_E_TIMEOUT && Clock::now() - began < std::chrono::milliseconds(5)) {
      if (wait_for_stop(std::min(poll, std::chrono::milliseconds(50)))) break;
    }
  }
  drop_service();
}

Result<std::size_t> PcscReaderDriver::write(const std::string& device_id, std::string_view) {
  return fail(Errc::failed_precondition, where(device_id), "write",
              "card readers take APDUs through the transmit action, not raw writes");
}

Result<ActionResult> PcscReaderDriver::act(const ActionRequest& request) {
  const std::string w = where(request.device_id);
  std::shared_ptr<ReaderWorker> worker;
  {
    std::lock_guard lock(mu_);
    if (!started_ || stopping_) {
      return fail(Errc::unavailable, w, request.action, "the PC/SC driver is not running");
    }
    if (auto it = offered_.find(request.device_id); it != offered_.end()) {
      worker = it->second.worker;
    }
  }
  if (!worker) {
    if (auto p = config_.pinned.find(request.device_id); p != config_.pinned.end()) {
      return fail(Errc::unavailable, w, request.action,
                  "pinned reader \"" + p->second + "\" is not present");
    }
    return fail(Errc::not_found, w, request.action, "no such reader");
  }
  auto timeout = std::chrono::milliseconds(config_.transaction_timeout_ms);
  if (request.timeout.count() > 0 && request.timeout < timeout) timeout = request.timeout;
  const auto deadline = Clock::now() + timeout;
  if (request.action == "transmit") {
    const ApduCheck check = parse_command_apdu(request.data);
    if (!check.ok) {
      return fail(Errc::invalid_argument, w, "transmit", "malformed command APDU: " + check.reason);
    }
    if (check.command.reader_command() && !config_.allow_reader_commands) {
      return fail(Errc::permission_denied, w, "transmit",
                  "reader commands (CLA FF) are disabled by configuration");
    }
    return worker->transmit(request.data, deadline);
  }
  if (request.action == "reset") return worker->reset(deadline);
  return fail(Errc::failed_precondition, w, request.action,
              "this device offers no such action (it offers transmit, reset)");
}

std::vector<SelfTestResult> PcscReaderDriver::self_test() {
  struct Device {
    std::string id;
    std::string name;
    bool pinned;
  };
  std::vector<Device> devices;
  for (const auto& [id, reader] : config_.pinned) devices.push_back({id, reader, true});
  {
    std::lock_guard lock(mu_);
    for (const auto& [id, o] : offered_) {
      if (!config_.pinned.contains(id)) devices.push_back({id, o.name, false});
    }
  }
  std::vector<SelfTestResult> results;
  if (auto api = pcsc_api(); !api) {
    for (const auto& d : devices) {
      SelfTestResult t;
      t.device_id = d.id;
      t.detail = "reader \"" + d.name + "\": " + api.error().message();
      results.push_back(std::move(t));
    }
    return results;
  }
  SCARDCONTEXT c = 0;
  LONG rv = pcsc().SCardEstablishContext(SCARD_SCOPE_SYSTEM, nullptr, nullptr, &c);
  std::vector<std::string> names;
  if (rv == SCARD_S_SUCCESS) {
    rv = list_readers(c, names);
  }
  if (rv != SCARD_S_SUCCESS) {
    for (const auto& d : devices) {
      SelfTestResult t;
      t.device_id = d.id;
      t.detail = "reader \"" + d.name + "\": " + pcsc_reason(rv);
      results.push_back(std::move(t));
    }
    if (c != 0) pcsc().SCardReleaseContext(c);
    return results;
  }
  const auto pins = evaluate_pins(config_.pinned, names);
  for (const auto& d : devices) {
    SelfTestResult t;
    t.device_id = d.id;
    t.present = std::find(names.begin(), names.end(), d.name) != names.end();
    if (t.present) {
      SCARD_READERSTATE s{};
      s.szReader = d.name.c_str();
      s.dwCurrentState = SCARD_STATE_UNAWARE;
      const LONG srv = pcsc().SCardGetStatusChange(c, 0, &s, 1);
      t.responding = (srv == SCARD_S_SUCCESS || srv == SCARD_E_TIMEOUT) &&
                     !(s.dwEventState & (SCARD_STATE_UNKNOWN | SCARD_STATE_UNAVAILABLE));
      if (!t.responding) {
        t.detail = "reader \"" + d.name + "\" does not answer: " + pcsc_reason(srv);
      } else if (s.dwEventState & SCARD_STATE_MUTE) {
        t.detail = "reader \"" + d.name + "\": a card is present but mute";
      } else if (s.dwEventState & SCARD_STATE_PRESENT) {
        t.detail =
            "reader \"" + d.name + "\": card present, ATR of " + std::to_string(s.cbAtr) + " bytes";
      } else {
        t.detail = "reader \"" + d.name + "\": ready, no card";
      }
    } else {
      t.detail = "reader \"" + d.name + "\" is not present";
    }
    if (d.pinned) {
      const PinState& p = pins.at(d.id);
      t.identity_ok = p.status != PinStatus::substituted;
      if (!t.identity_ok) {
        std::string found;
        for (const auto& n : p.substitutes) found += (found.empty() ? "" : ", ") + n;
        t.detail += "; another reader is present instead: " + found;
      }
    }
    results.push_back(std::move(t));
  }
  pcsc().SCardReleaseContext(c);
  return results;
}

}  // namespace portier::drivers
