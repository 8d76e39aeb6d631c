// The terminal's gate for the fleet's commands (issue 10, item 6): every
// SignedCommand that arrives, over any link, goes through handle(), which
// verifies it, runs it at most once and answers with the CommandResult the
// caller seals into an envelope. The link and the broker are never trusted:
// a command is accepted only on its own signature and chain.
//
// Checks, in this order (the first that fails refuses the command):
//   1. structure, cheap: at most 1 MiB, a SignedCommand holding a Command,
//      1 to 4 certificates, a signature, a command id, an action, a nonce of
//      16 to 256 bytes;
//   2. the signature, with certificates[0]'s key, over kCommandLabel and the
//      command bytes; then the chain: certificates[0] for command signing,
//      through the others, to a trust anchor of the config, valid now;
//   3. the target: exactly this terminal's id;
//   4. the command id: one already run with the same digest gets its first
//      result again (repeated_command, nothing runs), one run with another
//      digest is refused;
//   5. the window: not_before and expires both set, at most 24 h apart,
//      not_before - skew <= now <= expires;
//   6. the nonce: never accepted before (kept durably until expires + skew;
//      after that the window refuses the command anyway), and the expiry
//      above the watermark of forgotten nonces (see "The clock");
//   7. the action's own checks (CommandExecutor::check: a policy version
//      above the installed one, an audit range of at most 1000 records, ...).
// Then the nonce is consumed and the command recorded as started in one
// durable transaction, its handler runs, and its result is recorded
// (agent/commands/command_store.h says what a crash in between gives). A
// refused command consumes no nonce and records nothing but its audit
// record. Every refusal and every run is audited (event "command", with the
// command id, the source and the reason).
//
// Floods. A refusal before the signature and its chain are verified (steps
// 1 and 2) may come from anyone on the way, as often as they like: it gets
// no result of its own (answer().report is false) and is audited in
// aggregate (RefusalTally: the first per link and kind of refusal in an
// interval on its own, the rest counted into one record with `count` when
// the interval ends). A command the fleet signed and this terminal refuses
// (another target, expired, replayed, ...) is still audited and answered on
// its own: the fleet must learn why its command did not run.
//
// Replays. A broker can replay a command the fleet signed as often as it
// likes; each copy verifies, and the spec answers a repeat with the first
// result. So that the outbox does not grow with the replays, an answer
// that is not the command's own run (a repeat, or the refusal of a command
// the fleet signed: another target, expired, ...) goes back at most once
// per command (its link, id and digest) per `repeat_interval`, and is then
// audited on its own; the others in that interval get no answer of their
// own (answer().report is false: the fleet has the first) and are counted
// into one audit record with `count` when the interval ends
// (RefusalTally, as the unauthenticated refusals). Across all commands, at
// most `repeat_answers` such answers go back per interval (a broker holding
// many genuine commands for other terminals or expired ones must not grow
// the outbox either); the rest are counted the same way. A command runs at
// most once whatever the count. A command whose id and digest the store
// already holds is a body the fleet signed and this terminal verified: its
// repeat is answered without checking signature and chain again (a replay
// costs a lookup, not a verification).
//
// The clock. The window is checked against the wall clock, which can be
// set wrong; nonces are forgotten only once the window refuses their
// command anyway, and forgetting records the latest expiry forgotten (a
// watermark, durable). A command whose expiry + skew is not above the
// watermark is refused whatever the clock says: a clock set forward, which
// forgets every nonce, then set back cannot let a replay through. At most
// max_nonces are kept (the oldest expiries go first and raise the
// watermark), so a clock stuck in the past cannot grow the store unbounded.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/commands/command_executor.h"
#include "agent/commands/command_store.h"
#include "agent/commands/refusal_tally.h"
#include "common/audit_sink.h"
#include "common/crypto/x509.h"
#include "portier/v1/command.pb.h"

namespace portier::commands {

struct VerifierOptions {
  std::string terminal_id;
  // The certificates of the config a command key must chain to.
  std::vector<crypto::Certificate> trust_anchors;
  std::function<TimePoint()> clock = [] { return std::chrono::system_clock::now(); };
  std::chrono::seconds skew{60};                          // allowed ahead of not_before
  std::chrono::seconds max_window{24 * 3600};             // expires - not_before at most
  std::chrono::seconds result_retention{30 * 24 * 3600};  // past expiry: repeats still answered
  std::size_t max_bytes = 1 << 20;                        // a SignedCommand's size
  std::size_t max_certificates = 4;
  std::size_t max_nonces = 100000;  // kept at most (see "The clock")
  // Unauthenticated refusals: counted per link and kind in this interval.
  std::chrono::milliseconds refusal_interval{60000};
  // Answers to the same command that is not its run: at most one per interval.
  std::chrono::milliseconds repeat_interval{60000};
  // ... and at most this many per interval over all commands.
  std::size_t repeat_answers = 32;
  std::function<std::chrono::steady_clock::time_point()> monotonic = [] {
    return std::chrono::steady_clock::now();
  };
};

// What handle() answers and whether it goes back to the fleet.
struct Answer {
  v1::CommandResult result;
  // False for a refusal before the signature and chain were verified: not
  // sent (anyone could have sent the command), audited in aggregate. False
  // too for a repeat answered already in this interval (see "Replays").
  bool report = true;
};

class CommandVerifier {
 public:
  // `store`, `executor` and `audit` must outlive the verifier.
  CommandVerifier(VerifierOptions options, CommandStore& store, CommandExecutor& executor,
                  AuditSink& audit);

  // The answer to `bytes`, a SignedCommand as received over `source`
  // ("mqtt", "grpc"): OK or FAILED when it ran (or ran before: then
  // repeated_command is set), REFUSED with the reason when nothing ran (an
  // unreadable command's REFUSED has an empty command_id). Never fails, on
  // any input. Thread-safe; commands run one at a time.
  v1::CommandResult handle(std::string_view bytes, std::string_view source) {
    return answer(bytes, source).result;
  }
  // The same, with whether the result is to be sent.
  Answer answer(std::string_view bytes, std::string_view source);
  // `n` commands that arrived over `source` and were dropped unread (the
  // queue was full): counted with the unauthenticated refusals.
  void count_dropped(std::string_view source, std::uint64_t n);
  // Audits the counts of the intervals that ended (every count when
  // `everything`, at shutdown); when the next is due (nullopt: nothing
  // counted).
  std::optional<std::chrono::steady_clock::time_point> report_refusals(bool everything = false);

  // The results of the commands a restart interrupted (the store marked
  // them FAILED when it opened), for the owner to report once.
  std::vector<v1::CommandResult> interrupted_results() const;

 private:
  struct Refusal;
  Answer handle_locked(std::string_view bytes, std::string_view source);
  // A command the fleet signed, refused: answered through answer_signed().
  Answer refuse(const Refusal& r, std::string_view source);
  // A refusal before the signature and chain were verified.
  Answer refuse_unauthenticated(const Refusal& r, std::string_view source);
  void audit_reports(const std::vector<RefusalTally::Report>& reports);
  // A refusal of a command the fleet signed, or its repeat's first result:
  // answered and audited (with r.reason) once per interval, else counted.
  Answer answer_signed(v1::CommandResult out, const Refusal& r, std::string_view source);
  void audit_repeats(const std::vector<RefusalTally::Report>& reports);
  void forget_old(TimePoint now);

  VerifierOptions options_;
  CommandStore& store_;
  CommandExecutor& executor_;
  AuditSink& audit_;
  std::mutex mu_;
  TimePoint last_forget_{};
  Answer answer_repeat(const CommandRecord& first, Refusal& r, std::string_view source);
  RefusalTally tally_;
  RefusalTally repeats_;  // by link, command id and digest
  // The answers repeats_ let through in the current interval (all commands).
  std::chrono::steady_clock::time_point answers_since_{};
  std::size_t answers_ = 0;
};

}  // namespace portier::commands
