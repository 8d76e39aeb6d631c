#include "agent/commands/command_verifier.h"

#include <cstdio>
#include <ctime>
#include <optional>

#include "agent/commands/command_signing.h"
#include "common/audit_events.h"
#include "common/hex.h"
#include "common/log.h"

namespace portier::commands {
namespace {

constexpr std::size_t kMinNonce = 16, kMaxNonce = 256;
constexpr std::size_t kMaxCommandId = 128;
// Commands whose repeats are counted at once; beyond, they share one count.
constexpr std::size_t kMaxRepeatKeys = 256;
// google.protobuf.Timestamp's range: 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59Z.
constexpr std::int64_t kMinSeconds = -62135596800, kMaxSeconds = 253402300799;

std::int64_t to_ms(TimePoint t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}
TimePoint from_ms(std::int64_t ms) { return TimePoint(std::chrono::milliseconds(ms)); }

// Milliseconds since the epoch; nullopt when out of the Timestamp's range.
std::optional<std::int64_t> timestamp_ms(const google::protobuf::Timestamp& t) {
  if (t.seconds() < kMinSeconds || t.seconds() > kMaxSeconds || t.nanos() < 0 ||
      t.nanos() > 999999999) {
    return std::nullopt;
  }
  return t.seconds() * 1000 + t.nanos() / 1000000;
}

// RFC 3339, UTC, to the second (to the millisecond when it has some).
std::string rfc3339(std::int64_t ms) {
  std::int64_t secs = ms / 1000, frac = ms % 1000;
  if (frac < 0) frac += 1000, --secs;
  std::time_t tt = static_cast<std::time_t>(secs);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[64];
  if (frac == 0) {
    std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
  } else {
    std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                  static_cast<int>(frac));
  }
  return buf;
}

// A sender's string in a reason: quoted, cut at 64 bytes.
std::string quoted(std::string_view s) {
  constexpr std::size_t kMax = 64;
  if (s.size() <= kMax) return "'" + std::string(s) + "'";
  return "'" + std::string(s.substr(0, kMax)) + "...'";
}

}  // namespace

struct CommandVerifier::Refusal {
  std::string command_id;  // as the command claims it; "" when unreadable
  std::string digest;
  std::string action;
  std::string reason;
};

CommandVerifier::CommandVerifier(VerifierOptions options, CommandStore& store,
                                 CommandExecutor& executor, AuditSink& audit)
    : options_(std::move(options)),
      store_(store),
      executor_(executor),
      audit_(audit),
      tally_(RefusalTally::Options{options_.refusal_interval, 64}, options_.monotonic),
      repeats_(RefusalTally::Options{options_.repeat_interval, kMaxRepeatKeys},
               options_.monotonic) {}

Answer CommandVerifier::refuse(const Refusal& r, std::string_view source) {
  v1::CommandResult out;
  out.set_command_id(r.command_id);
  out.set_command_digest(r.digest);
  out.set_status(v1::CommandResult::REFUSED);
  out.set_message(r.reason);
  return answer_signed(std::move(out), r, source);
}

void CommandVerifier::forget_old(TimePoint now) {
  if (now - last_forget_ < std::chrono::hours(1) && now >= last_forget_) return;
  last_forget_ = now;
  if (auto gone = store_.forget(now, options_.max_nonces); !gone) {
    log_warning("commands: cannot forget old nonces and results: " + gone.error().message());
  }
}

Answer CommandVerifier::answer(std::string_view bytes, std::string_view source) {
  std::lock_guard lock(mu_);
  return handle_locked(bytes, source);
}

void CommandVerifier::count_dropped(std::string_view source, std::uint64_t n) {
  std::lock_guard lock(mu_);
  tally_.add(std::string(source) + "|dropped unread", n,
             "dropped unread: more commands arrived than the terminal queues");
}

void CommandVerifier::audit_reports(const std::vector<RefusalTally::Report>& reports) {
  for (auto& rep : reports) {
    if (rep.count == 0) continue;
    const auto bar = rep.key.find('|');
    const std::string source = rep.key.substr(0, bar);
    const std::string kind = bar == std::string::npos ? rep.key : rep.key.substr(bar + 1);
    auto e = audit::command_refused(
        source, "", "",
        std::to_string(rep.count) + " more command(s) refused unauthenticated (" + kind +
            ") within " + std::to_string(options_.refusal_interval.count() / 1000) +
            " s; the last: " + rep.last_reason);
    e.count = rep.count;
    audit_.record(e);
  }
}

std::optional<std::chrono::steady_clock::time_point> CommandVerifier::report_refusals(
    bool everything) {
  std::lock_guard lock(mu_);
  audit_reports(tally_.due(everything));
  audit_repeats(repeats_.due(everything));
  auto a = tally_.next_due(), b = repeats_.next_due();
  if (a && b) return std::min(*a, *b);
  return a ? a : b;
}

void CommandVerifier::audit_repeats(const std::vector<RefusalTally::Report>& reports) {
  for (auto& rep : reports) {
    if (rep.count == 0) continue;
    // The key: "source|command id|digest"; "other" for the commands beyond
    // kMaxRepeatKeys.
    const auto first = rep.key.find('|'), last = rep.key.rfind('|');
    std::string source, command_id;
    if (first != std::string::npos && last > first) {
      source = rep.key.substr(0, first);
      command_id = rep.key.substr(first + 1, last - first - 1);
    }
    auto e = audit::command_refused(
        source, command_id, "",
        std::to_string(rep.count) +
            " more copies of a command the fleet signed, answered already, within " +
            std::to_string(options_.repeat_interval.count() / 1000) +
            " s: not answered again, nothing run; the last: " + rep.last_reason);
    e.count = rep.count;
    audit_.record(e);
  }
}

Answer CommandVerifier::answer_signed(v1::CommandResult out, const Refusal& r,
                                      std::string_view source) {
  const std::string key =
      std::string(source) + "|" + r.command_id + "|" + to_hex(r.digest).substr(0, 16);
  const auto now = options_.monotonic();
  if (now - answers_since_ >= options_.repeat_interval) answers_since_ = now, answers_ = 0;
  if (answers_ >= options_.repeat_answers) {
    // Over the budget of all commands: counted with this one's copies.
    repeats_.add(key, 1, r.reason);
    return Answer{std::move(out), false};
  }
  RefusalTally::Report before;
  const bool alone = repeats_.admit(key, r.reason, &before);
  audit_repeats({before});
  if (!alone) return Answer{std::move(out), false};
  ++answers_;
  audit_.record(audit::command_refused(std::string(source), r.command_id, r.action, r.reason));
  return Answer{std::move(out), true};
}

Answer CommandVerifier::refuse_unauthenticated(const Refusal& r, std::string_view source) {
  // The kind: what the reason says before its details.
  const std::string kind = r.reason.substr(0, r.reason.find(':'));
  RefusalTally::Report before;
  const bool alone = tally_.admit(std::string(source) + "|" + kind, r.reason, &before);
  audit_reports({before});
  v1::CommandResult out;
  out.set_command_id(r.command_id);
  out.set_command_digest(r.digest);
  out.set_status(v1::CommandResult::REFUSED);
  out.set_message(r.reason);
  if (alone) {
    audit_.record(audit::command_refused(std::string(source), r.command_id, r.action, r.reason));
  }
  return Answer{std::move(out), false};
}

Answer CommandVerifier::answer_repeat(const CommandRecord& first, Refusal& r,
                                      std::string_view source) {
  r.reason = "duplicate: already run; its first result is answered again, nothing runs";
  v1::CommandResult out;
  out.set_command_id(first.command_id);
  out.set_command_digest(first.digest);
  out.set_repeated_command(true);
  if (!first.finished) {
    // Started in this run of the daemon and never finished: its result
    // could not be recorded (open() turns these into kInterrupted).
    out.set_status(v1::CommandResult::FAILED);
    out.set_message("ran, but its result could not be recorded");
    return answer_signed(std::move(out), r, source);
  }
  out.set_status(first.outcome.ok ? v1::CommandResult::OK : v1::CommandResult::FAILED);
  out.set_message(first.outcome.message);
  out.set_output(first.outcome.output);
  return answer_signed(std::move(out), r, source);
}

Answer CommandVerifier::handle_locked(std::string_view bytes, std::string_view source) {
  const TimePoint now = options_.clock();
  forget_old(now);
  Refusal r;

  // 1. Structure: nothing here costs more than parsing.
  if (bytes.size() > options_.max_bytes) {
    r.reason = "malformed: " + std::to_string(bytes.size()) + " bytes, more than the " +
               std::to_string(options_.max_bytes) + " a command may have";
    return refuse_unauthenticated(r, source);
  }
  v1::SignedCommand signed_command;
  if (!signed_command.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    r.reason = "malformed: not a SignedCommand";
    return refuse_unauthenticated(r, source);
  }
  v1::Command command;
  if (!command.ParseFromString(signed_command.command())) {
    r.reason = "malformed: the signed bytes are not a Command";
    return refuse_unauthenticated(r, source);
  }
  // Unverified yet: what of it goes into the audit trail and the answer is
  // bounded (a hostile broker's 250 KB id must not become a 250 KB record).
  r.command_id = command.command_id().size() <= kMaxCommandId
                     ? command.command_id()
                     : command.command_id().substr(0, kMaxCommandId) + "…";
  r.action = std::string(action_name(command));
  if (auto d = command_digest(signed_command.command()); d) {
    r.digest.assign(d->begin(), d->end());
  } else {
    r.reason = "not run: " + d.error().message();
    return refuse_unauthenticated(r, source);
  }
  const auto n_certs = static_cast<std::size_t>(signed_command.certificates_size());
  if (n_certs == 0) {
    r.reason = "malformed: no certificates";
    return refuse_unauthenticated(r, source);
  }
  if (n_certs > options_.max_certificates) {
    r.reason = "malformed: " + std::to_string(n_certs) + " certificates, more than the " +
               std::to_string(options_.max_certificates) + " a command may carry";
    return refuse_unauthenticated(r, source);
  }
  if (signed_command.signature().empty()) {
    r.reason = "bad signature: there is none";
    return refuse_unauthenticated(r, source);
  }
  if (command.command_id().empty() || command.command_id().size() > kMaxCommandId) {
    r.reason = "malformed: the command id must have 1 to " + std::to_string(kMaxCommandId) +
               " bytes, not " + std::to_string(command.command_id().size());
    return refuse_unauthenticated(r, source);
  }
  if (r.action.empty()) {
    r.reason = "malformed: no action (or one this terminal does not know)";
    return refuse_unauthenticated(r, source);
  }
  if (command.nonce().size() < kMinNonce || command.nonce().size() > kMaxNonce) {
    r.reason = "malformed: a nonce of " + std::to_string(command.nonce().size()) +
               " bytes (it must have " + std::to_string(kMinNonce) + " to " +
               std::to_string(kMaxNonce) + ")";
    return refuse_unauthenticated(r, source);
  }
  // A body this terminal verified and ran before (its id and digest in the
  // store): the fleet signed it, whatever signature a replay carries now;
  // its repeat is answered without verifying again.
  if (auto known = store_.find(command.command_id());
      known && *known && (*known)->digest == r.digest) {
    return answer_repeat(**known, r, source);
  }
  std::vector<crypto::Certificate> certs;
  for (std::size_t i = 0; i < n_certs; ++i) {
    auto c = crypto::Certificate::from_der(
        crypto::byte_view(signed_command.certificates(static_cast<int>(i))));
    if (!c) {
      r.reason = "untrusted chain: certificate " + std::to_string(i) +
                 " is malformed: " + c.error().message();
      return refuse_unauthenticated(r, source);
    }
    certs.push_back(std::move(*c));
  }

  // 2. The signature, then the chain it hangs on.
  auto key = certs[0].public_key();
  if (!key) {
    r.reason =
        "untrusted chain: the signer's certificate has no usable key: " + key.error().message();
    return refuse_unauthenticated(r, source);
  }
  if (auto ok = verify_command_signature(signed_command, *key); !ok) {
    r.reason = "bad signature";
    if (ok.error().code != Errc::permission_denied) r.reason += ": " + ok.error().message();
    return refuse_unauthenticated(r, source);
  }
  if (auto ok = crypto::verify_chain(certs[0], std::span(certs).subspan(1), options_.trust_anchors,
                                     now, crypto::CertUsage::command_signing);
      !ok) {
    r.reason = "untrusted chain: " + ok.error().message();
    return refuse_unauthenticated(r, source);
  }

  // 3. The target.
  if (command.target_terminal() != options_.terminal_id) {
    r.reason = "for terminal " + quoted(command.target_terminal()) + ", not this one";
    return refuse(r, source);
  }

  // 4. Once per command id: a repeat is answered, never run.
  auto before = store_.find(command.command_id());
  if (!before) {
    r.reason = "not run: " + before.error().message();
    return refuse(r, source);
  }
  if (*before) {
    const CommandRecord& first = **before;
    if (first.digest != r.digest) {
      r.reason = "command id reused with a different body";
      return refuse(r, source);
    }
    return answer_repeat(first, r, source);
  }

  // 5. The window.
  if (!command.has_not_before() || !command.has_expires()) {
    r.reason = std::string("malformed: no ") + (command.has_not_before() ? "expiry" : "not_before");
    return refuse(r, source);
  }
  const auto not_before = timestamp_ms(command.not_before());
  const auto expires = timestamp_ms(command.expires());
  if (!not_before || !expires) {
    r.reason = std::string("malformed: ") + (not_before ? "expires" : "not_before") +
               " is not a valid time";
    return refuse(r, source);
  }
  const std::int64_t now_ms = to_ms(now);
  const std::int64_t skew_ms = options_.skew.count() * 1000;
  const std::int64_t max_window_ms = options_.max_window.count() * 1000;
  if (*expires <= *not_before) {
    r.reason = "malformed: expires (" + rfc3339(*expires) + ") is not after not_before (" +
               rfc3339(*not_before) + ")";
    return refuse(r, source);
  }
  if (*expires - *not_before > max_window_ms) {
    r.reason = "window too long: " + std::to_string((*expires - *not_before) / 1000) +
               " s from not_before to expiry, at most " +
               std::to_string(options_.max_window.count()) + " s";
    return refuse(r, source);
  }
  if (now_ms > *expires) {
    r.reason = "expired at " + rfc3339(*expires);
    return refuse(r, source);
  }
  if (now_ms < *not_before - skew_ms) {
    r.reason = "not valid before " + rfc3339(*not_before);
    return refuse(r, source);
  }

  // 6. The nonce (begin() checks it again, atomically), never one that
  // may have been forgotten (see "The clock" in the header).
  auto forgotten = store_.nonces_forgotten_until();
  if (!forgotten) {
    r.reason = "not run: " + forgotten.error().message();
    return refuse(r, source);
  }
  if (*expires + skew_ms <= to_ms(*forgotten)) {
    r.reason = "nonce may have been forgotten: the command expired at " + rfc3339(*expires) +
               ", and this terminal has forgotten the nonces of commands expiring until " +
               rfc3339(to_ms(*forgotten) - skew_ms) +
               " (its clock went past them, or too many were kept); sign it again with a later "
               "expiry";
    return refuse(r, source);
  }
  auto used = store_.nonce_used(command.nonce());
  if (!used) {
    r.reason = "not run: " + used.error().message();
    return refuse(r, source);
  }
  if (*used) {
    r.reason = "nonce already used";
    return refuse(r, source);
  }

  // 7. What the action asks.
  if (auto ok = executor_.check(command); !ok) {
    r.reason = ok.error().message();
    return refuse(r, source);
  }

  // Recorded as started, durably, with the nonce: from here on it runs at
  // most once, whatever happens to the daemon.
  CommandStart start{command.command_id(),
                     r.digest,
                     r.action,
                     command.nonce(),
                     from_ms(*expires + skew_ms),
                     from_ms(*expires) + options_.result_retention};
  if (command.has_replace_policy()) start.policy_version = command.replace_policy().version();
  if (auto ok = store_.begin(start); !ok) {
    r.reason = ok.error().code == Errc::already_exists ? ok.error().why
                                                       : "not run: " + ok.error().message();
    return refuse(r, source);
  }
  CommandExecutor::Run run = executor_.run(command);
  if (auto ok = store_.finish(command.command_id(), run.outcome, run.policy_version); !ok) {
    log_error("commands: command " + command.command_id() +
              " ran but its result was not kept: " + ok.error().message());
  }
  audit_.record(audit::command_ran(std::string(source), r.command_id, r.action,
                                   run.outcome.ok ? "OK" : "FAILED: " + run.outcome.message));
  v1::CommandResult out;
  out.set_command_id(command.command_id());
  out.set_command_digest(r.digest);
  out.set_status(run.outcome.ok ? v1::CommandResult::OK : v1::CommandResult::FAILED);
  out.set_message(run.outcome.message);
  out.set_output(std::move(run.outcome.output));
  return Answer{std::move(out)};
}

std::vector<v1::CommandResult> CommandVerifier::interrupted_results() const {
  std::vector<v1::CommandResult> out;
  for (const auto& c : store_.interrupted()) {
    v1::CommandResult r;
    r.set_command_id(c.command_id);
    r.set_command_digest(c.digest);
    r.set_status(v1::CommandResult::FAILED);
    r.set_message(c.outcome.message);
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace portier::commands
