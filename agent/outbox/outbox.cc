#include "agent/outbox/outbox.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <mutex>
#include <span>

#include "common/file_read.h"

namespace portier::outbox {
namespace {

constexpr off_t kReserveBytes = 256 * 1024;

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS records (
  seq INTEGER PRIMARY KEY, priority INTEGER NOT NULL, created_ms INTEGER NOT NULL,
  envelope BLOB NOT NULL, digest BLOB NOT NULL, size INTEGER NOT NULL,
  prev_digest BLOB NOT NULL DEFAULT x'');
CREATE INDEX IF NOT EXISTS records_by_priority ON records (priority, seq);
CREATE INDEX IF NOT EXISTS records_by_age ON records (created_ms);
CREATE TABLE IF NOT EXISTS dropped (
  seq INTEGER PRIMARY KEY, priority INTEGER NOT NULL, digest BLOB NOT NULL,
  prev_digest BLOB NOT NULL DEFAULT x'');
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS chain (
  id INTEGER PRIMARY KEY CHECK (id = 1), epoch INTEGER NOT NULL, next_seq INTEGER NOT NULL,
  prev_digest BLOB NOT NULL);
)sql";

// Version 2 keeps each record's previous digest (for the fleet to follow the
// chain across a drop); a version 1 file gains the columns.
constexpr int kSchemaVersion = 2;
constexpr const char* kMigrate1To2 = R"sql(
ALTER TABLE records ADD COLUMN prev_digest BLOB NOT NULL DEFAULT x'';
ALTER TABLE dropped ADD COLUMN prev_digest BLOB NOT NULL DEFAULT x'';
)sql";

std::int64_t to_ms(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

// A prepared statement, finalized when it goes.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) { rc_ = sqlite3_prepare_v2(db, sql, -1, &s_, nullptr); }
  ~Stmt() { sqlite3_finalize(s_); }
  bool ok() const { return rc_ == SQLITE_OK; }
  sqlite3_stmt* get() { return s_; }
  void bind(int i, std::int64_t v) { sqlite3_bind_int64(s_, i, v); }
  void bind(int i, const std::string& blob) {
    sqlite3_bind_blob(s_, i, blob.data(), static_cast<int>(blob.size()), SQLITE_TRANSIENT);
  }
  int step() { return sqlite3_step(s_); }
  std::int64_t i64(int c) { return sqlite3_column_int64(s_, c); }
  std::string blob(int c) {
    auto* p = static_cast<const char*>(sqlite3_column_blob(s_, c));
    return p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(s_, c))) : "";
  }

 private:
  sqlite3_stmt* s_ = nullptr;
  int rc_ = SQLITE_ERROR;
};

}  // namespace

Error Outbox::sql_error(const std::string& what) const {
  const int rc = sqlite3_extended_errcode(db_);
  const bool full = (rc & 0xff) == SQLITE_FULL;
  return Error{full ? Errc::resource_exhausted : Errc::io, "outbox " + options_.path, what,
               full ? std::string("the disk is full (") + sqlite3_errmsg(db_) + ")"
                    : std::string(sqlite3_errmsg(db_))};
}

Result<std::unique_ptr<Outbox>> Outbox::open(OutboxOptions options) {
  // Before SQLite's first use in the process (the outbox is portierd's
  // first): no bulk allocation of 20 page-cache lines (84 KiB) per
  // connection; pages are allocated as they are read. A process that used
  // SQLite already keeps its setting (SQLITE_MISUSE, ignored).
  static std::once_flag page_cache;
  std::call_once(page_cache, [] { sqlite3_config(SQLITE_CONFIG_PAGECACHE, nullptr, 0, 0); });
  // Created 0600 before SQLite opens it (its -wal and -shm files take the
  // database file's mode): envelopes are the terminal's business only.
  const int fd = ::open(options.path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return fail_errno(Errc::io, "outbox " + options.path, "cannot open", errno);
  ::close(fd);
  // The terminal's unsent records: refused when anyone else could read or
  // replace them.
  auto own = open_private(options.path, "outbox", "chmod 0600");
  if (!own) return std::unexpected(own.error());
  ::close(*own);
  std::unique_ptr<Outbox> box(new Outbox(std::move(options)));
  box->keep_reserve();
  if (auto ok = box->connect(); !ok) return std::unexpected(ok.error());
  if (auto ok = box->migrate(); !ok) return std::unexpected(ok.error());
  // The bytes held: counted once here, then kept by every change (a sum over
  // the table on every put would cost a scan of the backlog each time).
  auto st = box->stats();
  if (!st) return std::unexpected(st.error());
  box->bytes_ = st->bytes;
  return box;
}

Outbox::~Outbox() { sqlite3_close_v2(db_); }

Result<void> Outbox::connect() {
  const int rc = sqlite3_open_v2(options_.path.c_str(), &db_,
                                 SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr);
  auto done = [&]() -> Result<void> {
    if (rc != SQLITE_OK) return std::unexpected(sql_error("cannot open"));
    sqlite3_busy_timeout(db_, 5000);
    // The WAL and its index stay when the connection closes (release_idle):
    // opening again then needs no new blocks, as on a full disk.
    int persist = 1;
    sqlite3_file_control(db_, nullptr, SQLITE_FCNTL_PERSIST_WAL, &persist);
    // A small WAL, checkpointed often and reused from its start: on a full
    // disk, deleting (acknowledgements) then needs no new blocks.
    for (const char* sql :
         {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL", "PRAGMA wal_autocheckpoint=16"}) {
      PORTIER_TRY(exec(sql));
    }
    return {};
  }();
  if (!done) {
    sqlite3_close_v2(db_);
    db_ = nullptr;
  }
  last_use_ = std::chrono::steady_clock::now();
  return done;
}

Result<void> Outbox::use() {
  last_use_ = std::chrono::steady_clock::now();
  if (db_) return {};
  released_ = false;  // whatever this call does, it may change the records
  return connect();
}

bool Outbox::release_idle(std::chrono::milliseconds idle) {
  std::lock_guard lock(mu_);
  if (!db_ || std::chrono::steady_clock::now() - last_use_ < idle) return false;
  // The newest record held, for from() to answer while released.
  {
    Stmt newest(db_, "SELECT coalesce(max(seq), 0) FROM records");
    if (!newest.ok() || newest.step() != SQLITE_ROW) return false;
    released_newest_ = static_cast<std::uint64_t>(newest.i64(0));
  }
  released_ = true;
  sqlite3_close_v2(db_);
  db_ = nullptr;
  return true;
}

Result<void> Outbox::migrate() {
  Stmt v(db_, "PRAGMA user_version");
  if (!v.ok() || v.step() != SQLITE_ROW)
    return std::unexpected(sql_error("read the schema version"));
  const auto version = v.i64(0);
  Stmt t(db_, "SELECT count(*) FROM sqlite_master WHERE name = 'records'");
  if (!t.ok() || t.step() != SQLITE_ROW) return std::unexpected(sql_error("read the schema"));
  const bool fresh = t.i64(0) == 0;
  if (version > kSchemaVersion) {
    return fail(Errc::failed_precondition, "outbox " + options_.path, "schema",
                "version " + std::to_string(version) + " is newer than this portierd's (" +
                    std::to_string(kSchemaVersion) + "): refusing to touch it");
  }
  PORTIER_TRY(exec("BEGIN IMMEDIATE"));
  auto done = [&]() -> Result<void> {
    if (!fresh && version < 2) PORTIER_TRY(exec(kMigrate1To2));
    PORTIER_TRY(exec(kSchema));
    PORTIER_TRY(exec("PRAGMA user_version = 2"));
    return exec("COMMIT");
  }();
  if (!done && !sqlite3_get_autocommit(db_)) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  return done;
}

Result<void> Outbox::exec(const char* sql) {
  char* msg = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &msg) != SQLITE_OK) {
    auto e = sql_error(sql);
    sqlite3_free(msg);
    return std::unexpected(e);
  }
  return {};
}

Result<envelope::ChainState> Outbox::chain_state() {
  std::lock_guard lock(mu_);
  PORTIER_TRY(use());
  Stmt s(db_, "SELECT epoch, next_seq, prev_digest FROM chain WHERE id = 1");
  if (!s.ok()) return std::unexpected(sql_error("read the chain state"));
  envelope::ChainState st;
  const int rc = s.step();
  if (rc == SQLITE_DONE) return st;  // nothing was ever put: the chain starts
  if (rc != SQLITE_ROW) return std::unexpected(sql_error("read the chain state"));
  // A state that cannot be right would restart or fork the chain: refused.
  const auto epoch = s.i64(0), next = s.i64(1);
  auto d = s.blob(2);
  if (epoch < 0 || next < 1 || d.size() != 32) {
    return fail(Errc::failed_precondition, "outbox " + options_.path, "chain state",
                "corrupt (epoch " + std::to_string(epoch) + ", next sequence " +
                    std::to_string(next) + ", digest of " + std::to_string(d.size()) +
                    " bytes): refusing to reuse sequence numbers");
  }
  st.session_epoch = static_cast<std::uint64_t>(epoch);
  st.next_sequence = static_cast<std::uint64_t>(next);
  st.prev_digest.assign(d.begin(), d.end());
  return st;
}

Result<std::uint64_t> Outbox::drop(std::uint64_t sequence) {
  Stmt copy(db_,
            "INSERT OR REPLACE INTO dropped (seq, priority, digest, prev_digest) "
            "SELECT seq, priority, digest, prev_digest FROM records WHERE seq = ?");
  if (!copy.ok()) return std::unexpected(sql_error("drop"));
  copy.bind(1, static_cast<std::int64_t>(sequence));
  if (copy.step() != SQLITE_DONE) return std::unexpected(sql_error("drop"));
  return delete_returning_size("DELETE FROM records WHERE seq = ? RETURNING size", sequence,
                               "drop");
}

Result<std::uint64_t> Outbox::delete_returning_size(const char* sql, std::uint64_t key,
                                                    const char* what) {
  Stmt del(db_, sql);
  if (!del.ok()) return std::unexpected(sql_error(what));
  del.bind(1, static_cast<std::int64_t>(key));
  std::uint64_t size = 0;
  int rc;
  while ((rc = del.step()) == SQLITE_ROW) size += static_cast<std::uint64_t>(del.i64(0));
  if (rc != SQLITE_DONE) return std::unexpected(sql_error(what));
  return size;
}

Result<void> Outbox::sweep_aged(std::chrono::system_clock::time_point now, std::uint64_t& bytes) {
  // Past their age, records below security go (security records are bounded
  // by size only: the trail must reach the fleet). Through the age index:
  // the cost is the aged records', not the backlog's.
  Stmt old(db_,
           "SELECT seq FROM records INDEXED BY records_by_age WHERE created_ms < ? AND "
           "priority < ?");
  if (!old.ok()) return std::unexpected(sql_error("make room"));
  old.bind(1, to_ms(now - options_.max_age));
  old.bind(2, static_cast<std::int64_t>(Priority::security));
  std::vector<std::uint64_t> aged;
  while (old.step() == SQLITE_ROW) aged.push_back(static_cast<std::uint64_t>(old.i64(0)));
  std::sort(aged.begin(), aged.end());
  for (auto seq : aged) {
    auto size = drop(seq);
    if (!size) return std::unexpected(size.error());
    bytes -= std::min(bytes, *size);
  }
  return {};
}

Result<bool> Outbox::make_room(std::uint64_t incoming, Priority priority,
                               std::chrono::system_clock::time_point now, std::uint64_t& bytes) {
  if (incoming > options_.max_bytes) return false;
  // Then, while over the limit, the oldest of the lowest priority, never one
  // that ranks above the incoming record.
  while (bytes + incoming > options_.max_bytes) {
    Stmt victim(db_,
                "SELECT seq, size FROM records WHERE priority <= ? ORDER BY priority, seq "
                "LIMIT 1");
    if (!victim.ok()) return std::unexpected(sql_error("make room"));
    victim.bind(1, static_cast<std::int64_t>(priority));
    if (victim.step() != SQLITE_ROW) return false;
    const auto seq = static_cast<std::uint64_t>(victim.i64(0));
    auto size = drop(seq);
    if (!size) return std::unexpected(size.error());
    bytes -= std::min(bytes, *size);
  }
  return true;
}

Result<bool> Outbox::write(const Record& record, std::chrono::system_clock::time_point now,
                           std::uint64_t& bytes) {
  const auto size = record.envelope.size();
  auto room = record.headroom && bytes + size <= options_.max_bytes + options_.max_bytes / 8
                  ? Result<bool>(true)
                  : make_room(size, record.priority, now, bytes);
  if (!room) return std::unexpected(room.error());
  if (*room) {
    Stmt ins(db_,
             "INSERT INTO records (seq, priority, created_ms, envelope, digest, size, "
             "prev_digest) VALUES (?, ?, ?, ?, ?, ?, ?)");
    if (!ins.ok()) return std::unexpected(sql_error("store"));
    ins.bind(1, static_cast<std::int64_t>(record.sequence));
    ins.bind(2, static_cast<std::int64_t>(record.priority));
    ins.bind(3, to_ms(record.created));
    ins.bind(4, record.envelope);
    ins.bind(5, record.digest);
    ins.bind(6, static_cast<std::int64_t>(record.envelope.size()));
    ins.bind(7, record.prev_digest);
    if (ins.step() != SQLITE_DONE) return std::unexpected(sql_error("store"));
    bytes += record.envelope.size();
  } else {
    Stmt ins(db_,
             "INSERT OR REPLACE INTO dropped (seq, priority, digest, prev_digest) "
             "VALUES (?, ?, ?, ?)");
    if (!ins.ok()) return std::unexpected(sql_error("record a drop"));
    ins.bind(1, static_cast<std::int64_t>(record.sequence));
    ins.bind(2, static_cast<std::int64_t>(record.priority));
    ins.bind(3, record.digest);
    ins.bind(4, record.prev_digest);
    if (ins.step() != SQLITE_DONE) return std::unexpected(sql_error("record a drop"));
  }
  return *room;
}

Result<void> Outbox::write_chain_state(const envelope::ChainState& after) {
  Stmt chain(db_,
             "INSERT OR REPLACE INTO chain (id, epoch, next_seq, prev_digest) VALUES (1, ?, ?, ?)");
  if (!chain.ok()) return std::unexpected(sql_error("store the chain state"));
  chain.bind(1, static_cast<std::int64_t>(after.session_epoch));
  chain.bind(2, static_cast<std::int64_t>(after.next_sequence));
  chain.bind(3, std::string(after.prev_digest.begin(), after.prev_digest.end()));
  if (chain.step() != SQLITE_DONE) return std::unexpected(sql_error("store the chain state"));
  return {};
}

Result<PutOutcome> Outbox::put(const Record& record, const envelope::ChainState& after,
                               std::chrono::system_clock::time_point now) {
  auto outcomes = put_batch(std::span<const Record>(&record, 1), after, now);
  if (!outcomes) return std::unexpected(outcomes.error());
  return outcomes->front();
}

Result<std::vector<PutOutcome>> Outbox::put_batch(std::span<const Record> records,
                                                  const envelope::ChainState& after,
                                                  std::chrono::system_clock::time_point now) {
  std::lock_guard lock(mu_);
  PORTIER_TRY(use());
  keep_reserve();
  if (auto ok = exec("BEGIN IMMEDIATE"); !ok) return std::unexpected(ok.error());
  // Every statement is finalized by now, so the rollback cannot be refused.
  // The byte count changes only once the transaction is committed.
  std::uint64_t bytes = bytes_;
  std::vector<PutOutcome> outcomes;
  outcomes.reserve(records.size());
  auto done = [&]() -> Result<void> {
    PORTIER_TRY(sweep_aged(now, bytes));  // once per transaction, not per record
    for (const auto& r : records) {
      auto stored = write(r, now, bytes);
      if (!stored) return std::unexpected(stored.error());
      outcomes.push_back(*stored ? PutOutcome::stored : PutOutcome::dropped);
    }
    PORTIER_TRY(write_chain_state(after));
    if (sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK) {
      return std::unexpected(sql_error("commit"));
    }
    return {};
  }();
  if (!done) {
    if (!sqlite3_get_autocommit(db_)) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    return std::unexpected(done.error());
  }
  bytes_ = bytes;
  return outcomes;
}

Result<std::vector<Record>> Outbox::oldest(std::size_t limit) { return from(0, limit); }

Result<std::vector<Record>> Outbox::from(std::uint64_t first, std::size_t limit) {
  std::lock_guard lock(mu_);
  // The sender looks here every second while idle, past what it sent: an
  // outbox released holding nothing from `first` on (nothing changed since:
  // every change opens it again) answers without opening, and finding
  // nothing is no use of the connection.
  if (!db_ && released_ && first > released_newest_) return std::vector<Record>{};
  const auto last_use = last_use_;
  PORTIER_TRY(use());
  Stmt s(db_,
         "SELECT seq, priority, created_ms, envelope, digest, prev_digest FROM records "
         "WHERE seq >= ? ORDER BY seq LIMIT ?");
  if (!s.ok()) return std::unexpected(sql_error("read"));
  s.bind(1, static_cast<std::int64_t>(first));
  s.bind(2, static_cast<std::int64_t>(limit));
  std::vector<Record> out;
  int rc;
  while ((rc = s.step()) == SQLITE_ROW) {
    Record r;
    r.sequence = static_cast<std::uint64_t>(s.i64(0));
    r.priority = static_cast<Priority>(s.i64(1));
    r.created = std::chrono::system_clock::time_point{} + std::chrono::milliseconds(s.i64(2));
    r.envelope = s.blob(3);
    r.digest = s.blob(4);
    r.prev_digest = s.blob(5);
    out.push_back(std::move(r));
  }
  if (rc != SQLITE_DONE) return std::unexpected(sql_error("read"));
  if (out.empty() && db_) last_use_ = last_use;
  return out;
}

void Outbox::keep_reserve() {
  const std::string path = options_.path + ".reserve";
  if (::access(path.c_str(), F_OK) == 0) return;
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return;
  // Best effort: on a disk already full there is nothing to keep.
  if (posix_fallocate(fd, 0, kReserveBytes) != 0) ::unlink(path.c_str());
  ::close(fd);
}

Result<std::uint64_t> Outbox::delete_with_reserve(const char* sql, std::uint64_t key,
                                                  const char* what) {
  auto deleted = delete_returning_size(sql, key, what);
  const bool full = !deleted && (sqlite3_extended_errcode(db_) & 0xff) == SQLITE_FULL;
  if (full && ::unlink((options_.path + ".reserve").c_str()) == 0) {
    deleted = delete_returning_size(sql, key, what);
  }
  return deleted;
}

Result<void> Outbox::ack(std::uint64_t sequence) {
  std::lock_guard lock(mu_);
  PORTIER_TRY(use());
  auto size = delete_with_reserve("DELETE FROM records WHERE seq = ? RETURNING size", sequence,
                                  "acknowledge");
  if (!size) return std::unexpected(size.error());
  bytes_ -= std::min(bytes_, *size);
  return {};
}

Result<void> Outbox::ack_all(std::span<const std::uint64_t> sequences) {
  std::lock_guard lock(mu_);
  PORTIER_TRY(use());
  if (sequences.empty()) return {};
  if (auto ok = exec("BEGIN IMMEDIATE"); !ok) return std::unexpected(ok.error());
  std::uint64_t freed = 0;
  auto done = [&]() -> Result<void> {
    for (auto seq : sequences) {
      auto size = delete_with_reserve("DELETE FROM records WHERE seq = ? RETURNING size", seq,
                                      "acknowledge");
      if (!size) return std::unexpected(size.error());
      freed += *size;
    }
    if (sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK) {
      return std::unexpected(sql_error("commit"));
    }
    return {};
  }();
  if (!done) {
    if (!sqlite3_get_autocommit(db_)) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    return std::unexpected(done.error());
  }
  bytes_ -= std::min(bytes_, freed);
  return {};
}

Result<std::vector<Dropped>> Outbox::drops(std::size_t limit) {
  std::lock_guard lock(mu_);
  PORTIER_TRY(use());
  Stmt s(db_, "SELECT seq, priority, digest, prev_digest FROM dropped ORDER BY seq LIMIT ?");
  if (!s.ok()) return std::unexpected(sql_error("read drops"));
  s.bind(1, static_cast<std::int64_t>(limit));
  std::vector<Dropped> out;
  while (s.step() == SQLITE_ROW) {
    out.push_back({static_cast<std::uint64_t>(s.i64(0)), static_cast<Priority>(s.i64(1)), s.blob(2),
                   s.blob(3)});
  }
  return out;
}

Result<void> Outbox::forget_drops(std::uint64_t up_to_sequence) {
  std::lock_guard lock(mu_);
  PORTIER_TRY(use());
  auto deleted =
      delete_with_reserve("DELETE FROM dropped WHERE seq <= ?", up_to_sequence, "forget drops");
  if (!deleted) return std::unexpected(deleted.error());
  return {};
}

Result<std::uint64_t> Outbox::counter(const std::string& key) {
  std::lock_guard lock(mu_);
  PORTIER_TRY(use());
  Stmt s(db_, "SELECT value FROM meta WHERE key = ?");
  if (!s.ok()) return std::unexpected(sql_error("read " + key));
  sqlite3_bind_text(s.get(), 1, key.data(), static_cast<int>(key.size()), SQLITE_TRANSIENT);
  const int rc = s.step();
  if (rc == SQLITE_DONE) return 0;
  if (rc != SQLITE_ROW) return std::unexpected(sql_error("read " + key));
  return static_cast<std::uint64_t>(s.i64(0));
}

Result<void> Outbox::set_counter(const std::string& key, std::uint64_t value) {
  std::lock_guard lock(mu_);
  PORTIER_TRY(use());
  Stmt s(db_, "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)");
  if (!s.ok()) return std::unexpected(sql_error("store " + key));
  sqlite3_bind_text(s.get(), 1, key.data(), static_cast<int>(key.size()), SQLITE_TRANSIENT);
  s.bind(2, static_cast<std::int64_t>(value));
  if (s.step() != SQLITE_DONE) return std::unexpected(sql_error("store " + key));
  return {};
}

Result<OutboxStats> Outbox::stats() {
  std::lock_guard lock(mu_);
  PORTIER_TRY(use());
  Stmt s(db_, "SELECT count(*), coalesce(sum(size), 0), coalesce(min(seq), 0) FROM records");
  if (!s.ok() || s.step() != SQLITE_ROW) return std::unexpected(sql_error("count"));
  return OutboxStats{static_cast<std::uint64_t>(s.i64(0)), static_cast<std::uint64_t>(s.i64(1)),
                     static_cast<std::uint64_t>(s.i64(2))};
}

}  // namespace portier::outbox
