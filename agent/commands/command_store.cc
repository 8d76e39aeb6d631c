#include "agent/commands/command_store.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <utility>

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

// A prepared statement, finalized when it goes.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) { rc_ = sqlite3_prepare_v2(db, sql, -1, &s_, nullptr); }
  ~Stmt() { sqlite3_finalize(s_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  bool ok() const { return rc_ == SQLITE_OK; }
  void bind(int i, std::int64_t v) { sqlite3_bind_int64(s_, i, v); }
  void bind_blob(int i, std::string_view b) {
    sqlite3_bind_blob(s_, i, b.data(), static_cast<int>(b.size()), SQLITE_TRANSIENT);
  }
  void bind_text(int i, std::string_view t) {
    sqlite3_bind_text(s_, i, t.data(), static_cast<int>(t.size()), SQLITE_TRANSIENT);
  }
  int step() { return sqlite3_step(s_); }
  std::int64_t i64(int c) { return sqlite3_column_int64(s_, c); }
  std::string bytes(int c) {
    auto* p = static_cast<const char*>(sqlite3_column_blob(s_, c));
    return p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(s_, c))) : "";
  }

 private:
  sqlite3_stmt* s_ = nullptr;
  int rc_ = SQLITE_ERROR;
};

// BEGIN IMMEDIATE ... COMMIT; rolled back unless committed.
class Transaction {
 public:
  explicit Transaction(sqlite3* db) : db_(db) {
    ok_ = sqlite3_exec(db_, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK;
  }
  ~Transaction() {
    if (ok_ && !done_) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  bool ok() const { return ok_; }
  bool commit() {
    done_ = sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr) == SQLITE_OK;
    return done_;
  }

 private:
  sqlite3* db_;
  bool ok_ = false, done_ = false;
};

CommandRecord read_record(Stmt& s) {
  // SELECT command_id, digest, action, state, status, message, output
  CommandRecord r;
  r.command_id = s.bytes(0);
  r.digest = s.bytes(1);
  r.action = s.bytes(2);
  r.finished = s.i64(3) == kFinished;
  r.outcome.ok = s.i64(4) == kStatusOk;
  r.outcome.message = s.bytes(5);
  r.outcome.output = s.bytes(6);
  return r;
}

}  // namespace

Error CommandStore::sql_error(const std::string& what) const {
  const int rc = sqlite3_extended_errcode(db_);
  const bool full = (rc & 0xff) == SQLITE_FULL;
  return Error{full ? Errc::resource_exhausted : Errc::io, "command store " + path_, what,
               full ? std::string("the disk is full (") + sqlite3_errmsg(db_) + ")"
                    : std::string(sqlite3_errmsg(db_))};
}

Result<std::unique_ptr<CommandStore>> CommandStore::open(std::string path) {
  std::unique_ptr<CommandStore> store(new CommandStore(std::move(path), nullptr));
  PORTIER_TRY(store->connect());
  PORTIER_TRY(store->mark_interrupted());
  // Closed until a command comes: an idle terminal keeps no connection (its
  // page cache, schema and -shm mapping) for a store it may not use for days.
  store->disconnect();
  return store;
}

Result<void> CommandStore::connect() {
  if (db_ != nullptr) return {};
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
  const int rc =
      sqlite3_open_v2(path_.c_str(), &db_,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW, nullptr);
  if (rc != SQLITE_OK) {
    auto e = sql_error("cannot open");
    disconnect();
    return std::unexpected(e);
  }
  sqlite3_busy_timeout(db_, 5000);
  for (const char* sql : {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL", kSchema}) {
    if (auto ok = exec(sql); !ok) {
      disconnect();
      return ok;
    }
  }
  return {};
}

void CommandStore::disconnect() {
  sqlite3_close_v2(db_);
  db_ = nullptr;
}

CommandStore::~CommandStore() { disconnect(); }

Result<void> CommandStore::exec(const char* sql) {
  char* msg = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &msg) != SQLITE_OK) {
    auto e = sql_error(sql);
    sqlite3_free(msg);
    return std::unexpected(e);
  }
  return {};
}

Result<void> CommandStore::mark_interrupted() {
  Transaction tx(db_);
  if (!tx.ok()) return std::unexpected(sql_error("recover interrupted commands"));
  {
    Stmt s(db_,
           "UPDATE commands SET state = ?, status = ?, message = ?, output = x'' "
           "WHERE state = ? RETURNING command_id, digest, action, state, status, message, output");
    if (!s.ok()) return std::unexpected(sql_error("recover interrupted commands"));
    s.bind(1, kFinished);
    s.bind(2, kStatusFailed);
    s.bind_text(3, kInterrupted);
    s.bind(4, kStarted);
    int rc;
    while ((rc = s.step()) == SQLITE_ROW) interrupted_.push_back(read_record(s));
    if (rc != SQLITE_DONE) return std::unexpected(sql_error("recover interrupted commands"));
  }
  // A policy replacement cut short may have replaced the file: its version
  // counts as installed (never lower than the one before).
  for (const char* sql :
       {"INSERT INTO counters (name, value) SELECT 'policy_version', value FROM counters "
        "WHERE name = 'policy_pending' ON CONFLICT (name) DO UPDATE SET value = "
        "max(value, excluded.value)",
        "DELETE FROM counters WHERE name = 'policy_pending'"}) {
    Stmt p(db_, sql);
    if (!p.ok() || p.step() != SQLITE_DONE) {
      return std::unexpected(sql_error("recover interrupted commands"));
    }
  }
  if (!tx.commit()) return std::unexpected(sql_error("recover interrupted commands"));
  return {};
}

Result<std::optional<CommandRecord>> CommandStore::find(std::string_view command_id) {
  PORTIER_TRY(connect());
  Stmt s(db_,
         "SELECT command_id, digest, action, state, status, message, output FROM commands "
         "WHERE command_id = ?");
  if (!s.ok()) return std::unexpected(sql_error("find a command"));
  s.bind_text(1, command_id);
  const int rc = s.step();
  if (rc == SQLITE_DONE) return std::optional<CommandRecord>();
  if (rc != SQLITE_ROW) return std::unexpected(sql_error("find a command"));
  return std::optional<CommandRecord>(read_record(s));
}

Result<bool> CommandStore::nonce_used(std::string_view nonce) {
  PORTIER_TRY(connect());
  Stmt s(db_, "SELECT 1 FROM nonces WHERE nonce = ?");
  if (!s.ok()) return std::unexpected(sql_error("look up a nonce"));
  s.bind_blob(1, nonce);
  const int rc = s.step();
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return std::unexpected(sql_error("look up a nonce"));
}

Result<void> CommandStore::begin(const CommandStart& start) {
  PORTIER_TRY(connect());
  Transaction tx(db_);
  if (!tx.ok()) return std::unexpected(sql_error("record command " + start.command_id));
  {
    Stmt n(db_, "INSERT OR IGNORE INTO nonces (nonce, forget_after_ms) VALUES (?, ?)");
    if (!n.ok()) return std::unexpected(sql_error("record a nonce"));
    n.bind_blob(1, start.nonce);
    n.bind(2, to_ms(start.forget_nonce_after));
    if (n.step() != SQLITE_DONE) return std::unexpected(sql_error("record a nonce"));
    if (sqlite3_changes(db_) == 0) {
      return fail(Errc::already_exists, "command store " + path_, "command " + start.command_id,
                  "nonce already used");
    }
  }
  {
    Stmt c(db_,
           "INSERT OR IGNORE INTO commands (command_id, digest, action, state, keep_until_ms) "
           "VALUES (?, ?, ?, ?, ?)");
    if (!c.ok()) return std::unexpected(sql_error("record command " + start.command_id));
    c.bind_text(1, start.command_id);
    c.bind_blob(2, start.digest);
    c.bind_text(3, start.action);
    c.bind(4, kStarted);
    c.bind(5, to_ms(start.keep_result_until));
    if (c.step() != SQLITE_DONE) return std::unexpected(sql_error("record " + start.command_id));
    if (sqlite3_changes(db_) == 0) {
      return fail(Errc::already_exists, "command store " + path_, "command " + start.command_id,
                  "command id already recorded");
    }
  }
  if (start.policy_version) {
    Stmt v(db_,
           "INSERT INTO counters (name, value) VALUES ('policy_pending', ?) "
           "ON CONFLICT (name) DO UPDATE SET value = excluded.value");
    if (!v.ok()) return std::unexpected(sql_error("record command " + start.command_id));
    v.bind(1, static_cast<std::int64_t>(*start.policy_version));
    if (v.step() != SQLITE_DONE) {
      return std::unexpected(sql_error("record command " + start.command_id));
    }
  }
  if (!tx.commit()) return std::unexpected(sql_error("record command " + start.command_id));
  return {};
}

Result<void> CommandStore::finish(std::string_view command_id, const Outcome& outcome,
                                  std::optional<std::uint64_t> policy_version) {
  PORTIER_TRY(connect());
  const std::string what = "record the result of command " + std::string(command_id);
  Transaction tx(db_);
  if (!tx.ok()) return std::unexpected(sql_error(what));
  {
    Stmt s(db_,
           "UPDATE commands SET state = ?, status = ?, message = ?, output = ? "
           "WHERE command_id = ? AND state = ?");
    if (!s.ok()) return std::unexpected(sql_error(what));
    s.bind(1, kFinished);
    s.bind(2, outcome.ok ? kStatusOk : kStatusFailed);
    s.bind_text(3, outcome.message);
    s.bind_blob(4, outcome.output);
    s.bind_text(5, command_id);
    s.bind(6, kStarted);
    if (s.step() != SQLITE_DONE) return std::unexpected(sql_error(what));
    if (sqlite3_changes(db_) == 0) {
      return fail(Errc::failed_precondition, "command store " + path_, what,
                  "it was not recorded as started, or is already finished");
    }
  }
  if (policy_version) {
    Stmt v(db_,
           "INSERT INTO counters (name, value) VALUES ('policy_version', ?) "
           "ON CONFLICT (name) DO UPDATE SET value = excluded.value");
    if (!v.ok()) return std::unexpected(sql_error(what));
    v.bind(1, static_cast<std::int64_t>(*policy_version));
    if (v.step() != SQLITE_DONE) return std::unexpected(sql_error(what));
  }
  {
    Stmt p(db_, "DELETE FROM counters WHERE name = 'policy_pending'");
    if (!p.ok() || p.step() != SQLITE_DONE) return std::unexpected(sql_error(what));
  }
  if (!tx.commit()) return std::unexpected(sql_error(what));
  return {};
}

Result<std::uint64_t> CommandStore::policy_version() {
  PORTIER_TRY(connect());
  Stmt s(db_, "SELECT value FROM counters WHERE name = 'policy_version'");
  if (!s.ok()) return std::unexpected(sql_error("read the policy version"));
  const int rc = s.step();
  if (rc == SQLITE_DONE) return std::uint64_t{0};
  if (rc != SQLITE_ROW) return std::unexpected(sql_error("read the policy version"));
  return static_cast<std::uint64_t>(s.i64(0));
}

Result<std::uint64_t> CommandStore::forget(TimePoint now, std::size_t max_nonces) {
  PORTIER_TRY(connect());
  const std::string what = "forget old commands";
  std::uint64_t rows = 0;
  Transaction tx(db_);
  if (!tx.ok()) return std::unexpected(sql_error(what));
  // The nonces to go: those past their time, and the oldest beyond the cap.
  // The watermark first, in the same transaction: a nonce is never gone
  // while a command it could answer for is still accepted.
  std::int64_t cut = to_ms(now) - 1;  // forget_after_ms <= cut goes
  {
    Stmt n(db_,
           "SELECT forget_after_ms FROM nonces ORDER BY forget_after_ms DESC LIMIT 1 OFFSET ?");
    if (!n.ok()) return std::unexpected(sql_error(what));
    n.bind(1, static_cast<std::int64_t>(std::min<std::size_t>(max_nonces, INT64_MAX)));
    const int rc = n.step();
    if (rc == SQLITE_ROW) cut = std::max(cut, n.i64(0));
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return std::unexpected(sql_error(what));
  }
  {
    Stmt w(db_,
           "INSERT INTO counters (name, value) SELECT 'nonces_forgotten_until', "
           "max(forget_after_ms) FROM nonces WHERE forget_after_ms <= ?1 HAVING count(*) > 0 "
           "ON CONFLICT (name) DO UPDATE SET value = max(value, excluded.value)");
    if (!w.ok()) return std::unexpected(sql_error(what));
    w.bind(1, cut);
    if (w.step() != SQLITE_DONE) return std::unexpected(sql_error(what));
  }
  const std::pair<const char*, std::int64_t> deletes[] = {
      {"DELETE FROM nonces WHERE forget_after_ms <= ?", cut},
      {"DELETE FROM commands WHERE keep_until_ms <= ? AND state = 1", to_ms(now) - 1}};
  for (auto& [sql, until] : deletes) {
    Stmt s(db_, sql);
    if (!s.ok()) return std::unexpected(sql_error(what));
    s.bind(1, until);
    if (s.step() != SQLITE_DONE) return std::unexpected(sql_error(what));
    rows += static_cast<std::uint64_t>(sqlite3_changes(db_));
  }
  if (!tx.commit()) return std::unexpected(sql_error(what));
  return rows;
}

Result<TimePoint> CommandStore::nonces_forgotten_until() {
  PORTIER_TRY(connect());
  Stmt s(db_, "SELECT value FROM counters WHERE name = 'nonces_forgotten_until'");
  if (!s.ok()) return std::unexpected(sql_error("read the forgotten nonces' watermark"));
  const int rc = s.step();
  if (rc == SQLITE_DONE) return TimePoint{};
  if (rc != SQLITE_ROW) return std::unexpected(sql_error("read the forgotten nonces' watermark"));
  return TimePoint(std::chrono::milliseconds(s.i64(0)));
}

}  // namespace portier::commands
