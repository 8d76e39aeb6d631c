// Driver for PC/SC card readers (contact and contactless/NFC) through
// pcscd: readers come and go as devices, cards as CardData events, and
// apps exchange APDUs through the "transmit" action.
//
// Devices: one per reader pcscd lists that readers_allowed lets through,
// id <id_prefix><N> (stable per reader name for the driver's life) or the
// id config pins to the reader's name. class "nfc" for contactless readers
// (name contains PICC, Contactless or NFC, or matches contactless_readers),
// "smartcard" otherwise; driver "pcsc"; capabilities {"events","transmit"};
// attributes reader (PC/SC name), protocol ("iso14443" contactless,
// "iso7816" contact), driver ("pcsc"); actions
//   transmit  op "transmit",  needs_claim: data = C-APDU, result = R-APDU
//             (values sw "9000", protocol "T=1");
//   reset     op "configure", needs_claim: warm reset, result = new ATR.
// Unpinned readers are added when they appear and removed when they go.
// Pinned ids are added at start() and stay until stop(): ready while their
// reader is present, disconnected otherwise; their removal or substitution
// raises an AlarmData on the pinned id (see pin_watch.h).
//
// Events: CardData inserted (ATR; for contactless readers also the UID from
// FF CA 00 00 00, read on the reader's worker with a 1 s bound, so a
// contactless card that does not answer delays other readers' events by at
// most that second; empty UID then) and removed; a card that is present
// but gives no ATR is a FaultData "card_mute". A reader that goes away with
// a card in it reports the card removed first. stop() reports no card
// removals, only device_removed.
//
// Threads and callbacks (what the gateway must know):
//  - start() calls device_added / device_state / device_event (alarms for
//    pinned readers missing at start) on the caller's thread before it
//    returns; card events for cards already present follow from the
//    driver's monitor thread.
//  - Afterwards every callback comes from the monitor thread, one at a
//    time. Callbacks must not block for long.
//  - The monitor follows reader arrivals/removals (SCardGetStatusChange
//    with \\?PnP?\Notification, and a re-list after every wait) and card
//    changes; each wait lasts at most poll_ms, and stop() wakes it with
//    SCardCancel. When pcscd goes away every reader is reported gone and
//    the monitor reconnects every poll_ms.
//  - act() runs on the caller's thread but does card I/O on the reader's
//    own worker thread and context (reader_worker.h): it returns within
//    min(request.timeout, transaction_timeout_ms) plus a few ms, whatever
//    the card does; other readers and the monitor are never held up.
//  - stop() joins the monitor, ends the workers (leaving behind, detached,
//    any worker stuck inside pcsc-lite), then calls device_removed() for
//    every device on the caller's thread. It returns within about a second.
//    Do not call it while holding a lock the sink takes.
//  - act(), write() and self_test() may be called from any thread.
//
// The driver never logs; APDUs, ATRs and UIDs reach only the sink and the
// caller. Error texts carry lengths and PC/SC codes, never card data.
#pragma once

#include <winscard.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "driver.h"
#include "pcsc/pcsc_config.h"
#include "pcsc/pin_watch.h"
#include "pcsc/reader_ids.h"
#include "pcsc/reader_worker.h"

namespace portier::drivers {

class PcscReaderDriver final : public Driver {
 public:
  explicit PcscReaderDriver(PcscConfig config);
  ~PcscReaderDriver() override;  // stops if running
  PcscReaderDriver(const PcscReaderDriver&) = delete;
  PcscReaderDriver& operator=(const PcscReaderDriver&) = delete;

  // Checks a config without touching PC/SC; usable by config loaders.
  static Result<void> validate(const PcscConfig& config);

  std::string_view name() const override { return "pcsc"; }
  // Errors: invalid_argument (config), failed_precondition (already
  // started), internal (no thread), not_found (libpcsclite.so.1 cannot be
  // loaded: it is loaded here, see pcsc_api.h). pcscd being down is not an
  // error: the driver starts without readers and keeps trying.
  Result<void> start(DriverSink& sink) override;
  void stop() override;
  // Always failed_precondition: readers take APDUs through act("transmit").
  Result<std::size_t> write(const std::string& device_id, std::string_view data) override;
  // Errors: not_found (no such reader), unavailable (reader or card absent,
  // timed out, pcscd down, reader busy after a timed-out exchange),
  // invalid_argument (malformed APDU; nothing is sent), permission_denied
  // (reader command while allow_reader_commands is false),
  // failed_precondition (unknown action).
  Result<ActionResult> act(const ActionRequest& request) override;
  // Per pinned id and per offered reader: present (pcscd lists it),
  // responding (pcscd answers a status query for it; the ATR of a present
  // card is read, no APDU is sent), identity_ok (a pinned id's reader is
  // not replaced by another). Returns within a second or so.
  std::vector<SelfTestResult> self_test() override;

 private:
  struct Reader {  // a reader the driver offers; the monitor thread's
    std::string id;
    std::string name;
    bool contactless = false;
    bool pinned = false;
    std::shared_ptr<ReaderWorker> worker;
    DWORD last_event = SCARD_STATE_UNAWARE;
    bool card_present = false;
    bool mute_reported = false;
    std::optional<std::uint16_t> event_count;
  };
  struct Offered {  // what act() and self_test() need, under mu_
    std::string name;
    std::shared_ptr<ReaderWorker> worker;
  };

  DeviceInfo info(const std::string& id, const std::string& reader) const;
  bool contactless(const std::string& reader) const;
  void run();
  bool wait_for_stop(std::chrono::milliseconds timeout);
  bool connect_service(LONG* rv);
  void drop_service();
  void sync_readers(const std::vector<std::string>& present, const std::string& gone_reason);
  void arrive(const std::string& name);
  void depart(Reader& r, const std::string& reason);
  void on_reader_state(Reader& r, const SCARD_READERSTATE& rs);
  void report_state(const std::string& id, DeviceState state, const std::string& reason);

  const PcscConfig config_;
  ReaderIds ids_;
  std::optional<PinWatch> pins_;
  DriverSink* sink_ = nullptr;
  std::thread monitor_;
  std::atomic<bool> started_{false};

  // The monitor thread's (and start()/stop()'s while it is not running).
  std::map<std::string, Reader> readers_;  // by reader name
  std::vector<std::string> listed_;        // reader names pcscd listed last
  std::set<std::string> reported_;         // ids given to device_added
  std::map<std::string, std::pair<DeviceState, std::string>> states_;

  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  SCARDCONTEXT context_ = 0;  // the monitor's; read by stop() for SCardCancel
  bool has_context_ = false;
  std::map<std::string, Offered> offered_;  // by device id
};

}  // namespace portier::drivers
