// The durable memory of the fleet's commands (issue 10, item 6): the nonces
// already accepted, the result of every command id run, and the version of
// the last policy a command installed. SQLite in WAL mode with
// synchronous=FULL, the file created 0600 (its -wal and -shm files take its
// mode).
//
// Once per command id, even across a crash. A verified command is recorded
// as started, in the same transaction that consumes its nonce, and that
// transaction is durable before its handler runs (begin()); the result is
// recorded when it finishes (finish()). A command found started but not
// finished when the store opens was running when the daemon died: it may
// have done all, part or none of its work, and it is NOT run again. It is
// marked FAILED "interrupted by a restart" at open (interrupted() lists
// them, so the owner can report them), and a repeat of it gets that result.
// Running it again could apply half a key rotation or a policy twice; the
// fleet, told it was interrupted, looks at the terminal and sends a new
// command if it still wants it. At most once, never twice.
//
// The connection is opened when a command needs it (open() only recovers
// the interrupted commands and closes it again), then kept.
//
// Not thread-safe: one user at a time (the verifier serializes commands).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "common/sqlite/database.h"

namespace portier::commands {

using TimePoint = std::chrono::system_clock::time_point;

// What a command that ran came to (CommandResult's status OK or FAILED).
struct Outcome {
  bool ok = false;
  std::string message;  // why it failed; "" when ok
  std::string output;   // the action's output
};

struct CommandRecord {
  std::string command_id;
  std::string digest;     // SHA-256 of SignedCommand.command, as run
  std::string action;     // "ping", ...
  bool finished = false;  // false: started, its result never recorded
  Outcome outcome;        // when finished
};

// What begin() records for a command about to run.
struct CommandStart {
  std::string command_id;
  std::string digest;
  std::string action;
  std::string nonce;
  TimePoint forget_nonce_after;  // its expiry + the clock skew: refused by its window then
  TimePoint keep_result_until;   // a repeat until then gets the first result
  // A ReplacePolicy: the version it installs. Kept with the start, so that a
  // restart in the middle (the policy file may already be replaced) counts
  // the version as installed and a lower one cannot roll it back.
  std::optional<std::uint64_t> policy_version{};
};

// The message an interrupted command's result carries.
inline constexpr std::string_view kInterrupted =
    "interrupted by a restart: it may have run in part and is not run again";

class CommandStore {
 public:
  static Result<std::unique_ptr<CommandStore>> open(std::string path);
  ~CommandStore();
  CommandStore(const CommandStore&) = delete;
  CommandStore& operator=(const CommandStore&) = delete;

  // The commands open() found started but never finished, now recorded as
  // FAILED kInterrupted.
  const std::vector<CommandRecord>& interrupted() const { return interrupted_; }

  // The command run under `command_id`, if any.
  Result<std::optional<CommandRecord>> find(std::string_view command_id);
  Result<bool> nonce_used(std::string_view nonce);
  // Consumes the nonce and records the command as started, in one durable
  // transaction. already_exists ("nonce already used", "command id already
  // recorded") when either is there: then nothing changes.
  Result<void> begin(const CommandStart& start);
  // Records the result of a started command; with `policy_version`, also
  // the version of the policy it installed, in the same transaction.
  Result<void> finish(std::string_view command_id, const Outcome& outcome,
                      std::optional<std::uint64_t> policy_version = std::nullopt);
  // The version of the last policy a command installed; 0 when none.
  Result<std::uint64_t> policy_version();
  // Forgets the nonces and results whose time has passed, and the nonces
  // with the oldest forget times beyond `max_nonces`; how many rows. The
  // latest forget time of a nonce forgotten is kept (durably, never lower):
  // nonces_forgotten_until().
  Result<std::uint64_t> forget(TimePoint now, std::size_t max_nonces = SIZE_MAX);
  // Every nonce whose forget time (its command's expiry + skew) is at or
  // before this may have been forgotten: a command up to it must be
  // refused. The epoch when none was ever forgotten.
  Result<TimePoint> nonces_forgotten_until();

  const std::string& path() const { return path_; }
  // Closes the connection until the next operation opens it again (after a
  // read at start: an idle terminal keeps no connection, page cache or
  // -shm mapping for a store it may not use for days).
  void release() { disconnect(); }

 private:
  explicit CommandStore(std::string path) : path_(std::move(path)) {}
  // The connection, opened (file checked 0600, WAL, schema) when closed.
  Result<void> connect();
  void disconnect();
  Result<void> mark_interrupted();

  std::string path_;
  sqlite::Database db_;  // closed while released
  std::vector<CommandRecord> interrupted_;
};

}  // namespace portier::commands
