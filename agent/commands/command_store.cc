#include "agent/commands/command_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <utility>

#include "common/sqlite/statement.h"
#include "common/sqlite/transaction.h"

namespace portier::commands {
namespace {

// state: 0 started, 1 finished. status: 1 OK, 3 FAILED (CommandResult's).
constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS nonces (
  nonce BLOB PRIMARY KEY, forget_after_ms INTEGER NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS nonces_by_age ON nonces (forget_after_ms);
CREATE TABLE IF NOT EXISTS commands (
  command_id TEXT PRIMARY KEY, digest BLOB NOT NULL, action TEXT NOT NULL,
  state INTEGER NOT NULL, status INTEGER NOT NULL DEFAULT 0,
  message TEXT NOT NULL DEFAULT '', output BLOB NOT NULL DEFAULT x'',
  keep_until_ms INTEGER NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS commands_by_age ON commands (keep_until_ms);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
)sql";

constexpr int kStarted = 0, kFinished = 1;
constexpr int kStatusOk = 1, kStatusFailed = 3;

std::int64_t to_ms(TimePoint t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

CommandRecord read_record(const sqlite::Statement& s) {
  // SELECT command_id, digest, action, state, status, message, output
  CommandRecord r;
  r.command_id = s.column_bytes(0);
  r.digest = s.column_bytes(1);
  r.action = s.column_bytes(2);
  r.finished = s.column_int(3) == kFinished;
  r.outcome.ok = s.column_int(4) == kStatusOk;
  r.outcome.message = s.column_bytes(5);
  r.outcome.output = s.column_bytes(6);
  return r;
}

}  // namespace

Result<std::unique_ptr<CommandStore>> CommandStore::open(std::string path) {
  std::unique_ptr<CommandStore> store(new CommandStore(std::move(path)));
  PORTIER_TRY(store->connect());
  PORTIER_TRY(store->mark_interrupted());
  // Closed until a command comes: an idle terminal keeps no connection (its
  // page cache, schema and -shm mapping) for a store it may not use for days.
  store->disconnect();
  return store;
}

Result<void> CommandStore::connect() {
  if (db_.is_open()) return {};
  // Created 0600 before SQLite opens it; an older file is brought back to
  // 0600 (what ran and which nonces were seen is the terminal's business).
  // Checked at every connection, not only at the start.
  const int fd = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return fail_errno(Errc::io, "command store " + path_, "cannot open", errno);
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return fail(Errc::failed_precondition, "command store " + path_, "cannot open",
                "not a regular file");
  }
  if ((st.st_mode & 0777) != 0600 && ::fchmod(fd, 0600) != 0) {
    const int err = errno;
    ::close(fd);
    return fail_errno(Errc::permission_denied, "command store " + path_, "cannot make it 0600",
                      err);
  }
  ::close(fd);
  auto db = sqlite::Database::open(path_, {.where = "command store " + path_,
                                           .no_follow = true,
                                           .busy_timeout = std::chrono::milliseconds(5000),
                                           .wal = true,
                                           .synchronous_full = true,
                                           .pragmas = {kSchema}});
  if (!db) return std::unexpected(db.error());
  db_ = std::move(*db);
  return {};
}

void CommandStore::disconnect() { db_.close(); }

CommandStore::~CommandStore() = default;

Result<void> CommandStore::mark_interrupted() {
  static constexpr char kWhat[] = "recover interrupted commands";
  auto tx = sqlite::Transaction::begin(db_, kWhat);
  if (!tx) return std::unexpected(tx.error());
  {
    auto s = db_.prepare(
        "UPDATE commands SET state = ?, status = ?, message = ?, output = x'' "
        "WHERE state = ? RETURNING command_id, digest, action, state, status, message, output",
        kWhat);
    if (!s) return std::unexpected(s.error());
    s->bind_int(1, kFinished)
        .bind_int(2, kStatusFailed)
        .bind_text(3, kInterrupted)
        .bind_int(4, kStarted);
    for (;;) {
      auto row = s->step();
      if (!row) return std::unexpected(row.error());
      if (!*row) break;
      interrupted_.push_back(read_record(*s));
    }
  }
  // A policy replacement cut short may have replaced the file: its version
  // counts as installed (never lower than the one before).
  for (const char* sql :
       {"INSERT INTO counters (name, value) SELECT 'policy_version', value FROM counters "
        "WHERE name = 'policy_pending' ON CONFLICT (name) DO UPDATE SET value = "
        "max(value, excluded.value)",
        "DELETE FROM counters WHERE name = 'policy_pending'"}) {
    auto p = db_.prepare(sql, kWhat);
    if (!p) return std::unexpected(p.error());
    PORTIER_TRY(p->run());
  }
  return tx->commit(kWhat);
}

Result<std::optional<CommandRecord>> CommandStore::find(std::string_view command_id) {
  PORTIER_TRY(connect());
  auto s = db_.prepare(
      "SELECT command_id, digest, action, state, status, message, output FROM commands "
      "WHERE command_id = ?",
      "find a command");
  if (!s) return std::unexpected(s.error());
  auto row = s->bind_text(1, command_id).step();
  if (!row) return std::unexpected(row.error());
  if (!*row) return std::optional<CommandRecord>();
  return std::optional<CommandRecord>(read_record(*s));
}

Result<bool> CommandStore::nonce_used(std::string_view nonce) {
  PORTIER_TRY(connect());
  auto s = db_.prepare("SELECT 1 FROM nonces WHERE nonce = ?", "look up a nonce");
  if (!s) return std::unexpected(s.error());
  return s->bind_blob(1, nonce).step();
}

Result<void> CommandStore::begin(const CommandStart& start) {
  PORTIER_TRY(connect());
  const std::string what = "record command " + start.command_id;
  auto tx = sqlite::Transaction::begin(db_, what);
  if (!tx) return std::unexpected(tx.error());
  {
    auto n = db_.prepare("INSERT OR IGNORE INTO nonces (nonce, forget_after_ms) VALUES (?, ?)",
                         "record a nonce");
    if (!n) return std::unexpected(n.error());
    PORTIER_TRY(n->bind_blob(1, start.nonce).bind_int(2, to_ms(start.forget_nonce_after)).run());
    if (db_.changes() == 0) {
      return fail(Errc::already_exists, "command store " + path_, "command " + start.command_id,
                  "nonce already used");
    }
  }
  {
    auto c = db_.prepare(
        "INSERT OR IGNORE INTO commands (command_id, digest, action, state, keep_until_ms) "
        "VALUES (?, ?, ?, ?, ?)",
        what);
    if (!c) return std::unexpected(c.error());
    PORTIER_TRY(c->bind_text(1, start.command_id)
                    .bind_blob(2, start.digest)
                    .bind_text(3, start.action)
                    .bind_int(4, kStarted)
                    .bind_int(5, to_ms(start.keep_result_until))
                    .run());
    if (db_.changes() == 0) {
      return fail(Errc::already_exists, "command store " + path_, "command " + start.command_id,
                  "command id already recorded");
    }
  }
  if (start.policy_version) {
    auto v = db_.prepare(
        "INSERT INTO counters (name, value) VALUES ('policy_pending', ?) "
        "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        what);
    if (!v) return std::unexpected(v.error());
    PORTIER_TRY(v->bind_int(1, static_cast<std::int64_t>(*start.policy_version)).run());
  }
  return tx->commit(what);
}

Result<void> CommandStore::finish(std::string_view command_id, const Outcome& outcome,
                                  std::optional<std::uint64_t> policy_version) {
  PORTIER_TRY(connect());
  const std::string what = "record the result of command " + std::string(command_id);
  auto tx = sqlite::Transaction::begin(db_, what);
  if (!tx) return std::unexpected(tx.error());
  {
    auto s = db_.prepare(
        "UPDATE commands SET state = ?, status = ?, message = ?, output = ? "
        "WHERE command_id = ? AND state = ?",
        what);
    if (!s) return std::unexpected(s.error());
    PORTIER_TRY(s->bind_int(1, kFinished)
                    .bind_int(2, outcome.ok ? kStatusOk : kStatusFailed)
                    .bind_text(3, outcome.message)
                    .bind_blob(4, outcome.output)
                    .bind_text(5, command_id)
                    .bind_int(6, kStarted)
                    .run());
    if (db_.changes() == 0) {
      return fail(Errc::failed_precondition, "command store " + path_, what,
                  "it was not recorded as started, or is already finished");
    }
  }
  if (policy_version) {
    auto v = db_.prepare(
        "INSERT INTO counters (name, value) VALUES ('policy_version', ?) "
        "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        what);
    if (!v) return std::unexpected(v.error());
    PORTIER_TRY(v->bind_int(1, static_cast<std::int64_t>(*policy_version)).run());
  }
  PORTIER_TRY(db_.exec("DELETE FROM counters WHERE name = 'policy_pending'", what));
  return tx->commit(what);
}

Result<std::uint64_t> CommandStore::policy_version() {
  PORTIER_TRY(connect());
  auto s = db_.prepare("SELECT value FROM counters WHERE name = 'policy_version'",
                       "read the policy version");
  if (!s) return std::unexpected(s.error());
  auto row = s->step();
  if (!row) return std::unexpected(row.error());
  if (!*row) return std::uint64_t{0};
  return static_cast<std::uint64_t>(s->column_int(0));
}

Result<std::uint64_t> CommandStore::forget(TimePoint now, std::size_t max_nonces) {
  PORTIER_TRY(connect());
  const std::string what = "forget old commands";
  std::uint64_t rows = 0;
  auto tx = sqlite::Transaction::begin(db_, what);
  if (!tx) return std::unexpected(tx.error());
  // The nonces to go: those past their time, and the oldest beyond the cap.
  // The watermark first, in the same transaction: a nonce is never gone
  // while a command it could answer for is still accepted.
  std::int64_t cut = to_ms(now) - 1;  // forget_after_ms <= cut goes
  {
    auto n = db_.prepare(
        "SELECT forget_after_ms FROM nonces ORDER BY forget_after_ms DESC LIMIT 1 OFFSET ?", what);
    if (!n) return std::unexpected(n.error());
    auto row =
        n->bind_int(1, static_cast<std::int64_t>(std::min<std::size_t>(max_nonces, INT64_MAX)))
            .step();
    if (!row) return std::unexpected(row.error());
    if (*row) cut = std::max(cut, n->column_int(0));
  }
  {
    auto w = db_.prepare(
        "INSERT INTO counters (name, value) SELECT 'nonces_forgotten_until', "
        "max(forget_after_ms) FROM nonces WHERE forget_after_ms <= ?1 HAVING count(*) > 0 "
        "ON CONFLICT (name) DO UPDATE SET value = max(value, excluded.value)",
        what);
    if (!w) return std::unexpected(w.error());
    PORTIER_TRY(w->bind_int(1, cut).run());
  }
  const std::pair<const char*, std::int64_t> deletes[] = {
      {"DELETE FROM nonces WHERE forget_after_ms <= ?", cut},
      {"DELETE FROM commands WHERE keep_until_ms <= ? AND state = 1", to_ms(now) - 1}};
  for (auto& [sql, until] : deletes) {
    auto s = db_.prepare(sql, what);
    if (!s) return std::unexpected(s.error());
    PORTIER_TRY(s->bind_int(1, until).run());
    rows += static_cast<std::uint64_t>(db_.changes());
  }
  PORTIER_TRY(tx->commit(what));
  return rows;
}

Result<TimePoint> CommandStore::nonces_forgotten_until() {
  PORTIER_TRY(connect());
  auto s = db_.prepare("SELECT value FROM counters WHERE name = 'nonces_forgotten_until'",
                       "read the forgotten nonces' watermark");
  if (!s) return std::unexpected(s.error());
  auto row = s->step();
  if (!row) return std::unexpected(row.error());
  if (!*row) return TimePoint{};
  return TimePoint(std::chrono::milliseconds(s->column_int(0)));
}

}  // namespace portier::commands
