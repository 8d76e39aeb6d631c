// The thread and PC/SC context of one reader. Every card exchange with the
// reader runs here, so a card or reader that stops answering holds up its
// own reader only: never another reader, the driver's monitor thread, or a
// caller past its deadline.
//
// Callers (any thread) hand a job over and wait until their deadline:
//  - a job still queued at the deadline is dropped; nothing reaches the card;
//  - a job already running is abandoned: the caller gets unavailable "timed
//    out", SCardCancel is called on the worker's context, and the job sends
//    nothing more once its current PC/SC call returns (pcsc-lite cannot
//    interrupt SCardTransmit or a SCardBeginTransaction that waits for
//    another program's transaction);
//  - while an abandoned job is still blocked, new jobs fail at once
//    (unavailable, "reader busy") rather than queue behind a dead card.
//
// The worker keeps the card connected in shared mode between jobs (connect
// on first use, afresh after card_changed()). APDUs run inside a PC/SC
// transaction (SCardBeginTransaction) that stays open across the APDUs of a
// session: it ends (SCardEndTransaction, SCARD_LEAVE_CARD) `hold` after the
// last APDU, before a reset, or with the card handle; with hold = 0 it ends
// after every APDU. Reading a contactless UID never holds it.
//
// Ending: request_stop() fails queued jobs and lets the running one finish;
// finish() waits until a deadline and then detaches a thread still blocked
// in pcsc-lite. A detached thread owns its state, touches nothing else and
// reports to nobody; it disconnects and ends when its call returns.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "driver.h"

namespace portier::drivers {

class ReaderWorker {
 public:
  using Clock = std::chrono::steady_clock;

  // `where` prefixes errors ("pcsc reader0"); `reader` is the PC/SC name.
  ReaderWorker(std::string where, std::string reader,
               std::chrono::milliseconds hold = std::chrono::milliseconds(0));
  ~ReaderWorker();  // request_stop() + finish() within half a second
  ReaderWorker(const ReaderWorker&) = delete;
  ReaderWorker& operator=(const ReaderWorker&) = delete;

  // One APDU exchange. `apdu` must be a valid command APDU (parse first).
  // data = the response APDU; values: sw ("9000"), protocol ("T=0"|"T=1").
  Result<ActionResult> transmit(std::string apdu, Clock::time_point deadline);
  // Warm reset of the card. data = its ATR; values: protocol.
  Result<ActionResult> reset(Clock::time_point deadline);
  // The UID of the contactless card in the reader (FF CA 00 00 00), or
  // nullopt when it cannot be read by the deadline.
  std::optional<std::string> contactless_uid(Clock::time_point deadline);

  // The card was removed or replaced: the next job connects afresh.
  void card_changed();
  // Queued jobs fail with `reason`, new ones are refused; returns at once.
  void request_stop(const std::string& reason);
  // Waits until the thread has ended or `deadline`, then joins or detaches.
  void finish(Clock::time_point deadline);

  struct State;
  struct Session;
  using JobFn = std::function<Result<ActionResult>(State&, Session&)>;

 private:
  Result<ActionResult> run(const std::string& what, JobFn fn, Clock::time_point deadline);

  std::shared_ptr<State> state_;
  std::thread thread_;
};

}  // namespace portier::drivers
