#include "agent/outbox/outbox.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <mutex>
#include <span>

#include "common/file_read.h"
#include "common/sqlite/statement.h"
#include "common/sqlite/transaction.h"

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

// An error of `e` naming `what` (a purpose built only when it failed).
Error named(Error e, std::string what) {
  e.what = std::move(what);
  return e;
}

}  // namespace

Result<std::unique_ptr<Outbox>> Outbox::open(OutboxOptions options) {
  // Before SQLite's first use in the process (the outbox is portierd's
  // first): no bulk allocation of 20 page-cache lines (84 KiB) per
  // connection; pages are allocated as they are read.
  sqlite::allocate_page_cache_on_demand();
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

Outbox::~Outbox() = default;

Result<void> Outbox::connect() {
  auto db = sqlite::Database::open(options_.path, {.where = "outbox " + options_.path,
                                                   .busy_timeout = std::chrono::milliseconds(5000),
                                                   // The WAL and its index stay when the connection
                                                   // closes (release_idle): opening again then
                                                   // needs no new blocks, as on a full disk.
                                                   .persist_wal = true,
                                                   .wal = true,
                                                   .synchronous_full = true,
                                                   // A small WAL, checkpointed often and reused
                                                   // from its start: on a full disk, deleting
                                                   // (acknowledgements) then needs no new blocks.
                                                   .pragmas = {"PRAGMA wal_autocheckpoint=16"}});
  last_use_ = std::chrono::steady_clock::now();
  if (!db) return std::unexpected(db.error());
  db_ = std::move(*db);
  return {};
}

Result<void> Outbox::use() {
  last_use_ = std::chrono::steady_clock::now();
  if (db_.is_open()) return {};
  released_ = false;  // whatever this call does, it may change the records
  return connect();
}

bool Outbox::release_idle(std::chrono::milliseconds idle) {
  std::lock_guard lock(mu_);
  if (!db_.is_open() || std::chrono::steady_clock::now() - last_use_ < idle) return false;
  // The newest record held, for from() to answer while released.
  auto newest = db_.query_int("SELECT coalesce(max(seq), 0) FROM records", "read the newest");
  if (!newest) return false;
  released_newest_ = static_cast<std::uint64_t>(*newest);
  released_ = true;
  db_.close();
  return true;
}

Result<void> Outbox::migrate() {
  auto v = db_.query_int("PRAGMA user_version", "read the schema version");
  if (!v) return std::unexpected(v.error());
  const auto version = *v;
  auto t =
      db_.query_int("SELECT count(*) FROM sqlite_master WHERE name = 'records'", "read the schema");
  if (!t) return std::unexpected(t.error());
  const bool fresh = *t == 0;
  if (version > kSchemaVersion) {
    return fail(Errc::failed_precondition, "outbox " + options_.path, "schema",
                "version " + std::to_string(version) + " is newer than this portierd's (" +
                    std::to_string(kSchemaVersion) + "): refusing to touch it");
  }
  auto tx = sqlite::Transaction::begin(db_, "BEGIN IMMEDIATE");
  if (!tx) return std::unexpected(tx.error());
  if (!fresh && version < 2) PORTIER_TRY(db_.exec(kMigrate1To2));
  PORTIER_TRY(db_.exec(kSchema));
  PORTIER_TRY(db_.exec("PRAGMA user_version = 2"));
  return tx->commit("COMMIT");
}

Result<envelope::ChainState> Outbox::chain_state() {
  std::lock_guard lock(mu_);
  PORTIER_TRY(use());
  auto s = db_.prepare("SELECT epoch, next_seq, prev_digest FROM chain WHERE id = 1",
                       "read the chain state");
  if (!s) return std::unexpected(s.error());
  envelope::ChainState st;
  auto row = s->step();
  if (!row) return std::unexpected(row.error());
  if (!*row) return st;  // nothing was ever put: the chain starts
  // A state that cannot be right would restart or fork the chain: refused.
  const auto epoch = s->column_int(0), next = s->column_int(1);
  auto d = s->column_blob(2);
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
  auto copy = db_.prepare(
      "INSERT OR REPLACE INTO dropped (seq, priority, digest, prev_digest) "
      "SELECT seq, priority, digest, prev_digest FROM records WHERE seq = ?",
      "drop");
  if (!copy) return std::unexpected(copy.error());
  PORTIER_TRY(copy->bind_int(1, static_cast<std::int64_t>(sequence)).run());
  return delete_returning_size("DELETE FROM records WHERE seq = ? RETURNING size", sequence,
                               "drop");
}

Result<std::uint64_t> Outbox::delete_returning_size(const char* sql, std::uint64_t key,
                                                    sqlite::Purpose what) {
  auto del = db_.prepare(sql, what);
  if (!del) return std::unexpected(del.error());
  del->bind_int(1, static_cast<std::int64_t>(key));
  std::uint64_t size = 0;
  for (;;) {
    auto row = del->step();
    if (!row) return std::unexpected(row.error());
    if (!*row) return size;
    size += static_cast<std::uint64_t>(del->column_int(0));
  }
}

Result<void> Outbox::sweep_aged(std::chrono::system_clock::time_point now, std::uint64_t& bytes) {
  // Past their age, records below security go (security records are bounded
  // by size only: the trail must reach the fleet). Through the age index:
  // the cost is the aged records', not the backlog's.
  auto old = db_.prepare(
      "SELECT seq FROM records INDEXED BY records_by_age WHERE created_ms < ? AND "
      "priority < ?",
      "make room");
  if (!old) return std::unexpected(old.error());
  old->bind_int(1, to_ms(now - options_.max_age));
  old->bind_int(2, static_cast<std::int64_t>(Priority::security));
  std::vector<std::uint64_t> aged;
  for (;;) {
    auto row = old->step();
    if (!row) return std::unexpected(row.error());
    if (!*row) break;
    aged.push_back(static_cast<std::uint64_t>(old->column_int(0)));
  }
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
    auto victim = db_.prepare(
        "SELECT seq, size FROM records WHERE priority <= ? ORDER BY priority, seq "
        "LIMIT 1",
        "make room");
    if (!victim) return std::unexpected(victim.error());
    victim->bind_int(1, static_cast<std::int64_t>(priority));
    auto row = victim->step();
    if (!row) return std::unexpected(row.error());
    if (!*row) return false;
    const auto seq = static_cast<std::uint64_t>(victim->column_int(0));
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
    auto ins = db_.prepare(
        "INSERT INTO records (seq, priority, created_ms, envelope, digest, size, "
        "prev_digest) VALUES (?, ?, ?, ?, ?, ?, ?)",
        "store");
    if (!ins) return std::unexpected(ins.error());
    ins->bind_int(1, static_cast<std::int64_t>(record.sequence))
        .bind_int(2, static_cast<std::int64_t>(record.priority))
        .bind_int(3, to_ms(record.created))
        .bind_blob(4, record.envelope)
        .bind_blob(5, record.digest)
        .bind_int(6, static_cast<std::int64_t>(record.envelope.size()))
        .bind_blob(7, record.prev_digest);
    PORTIER_TRY(ins->run());
    bytes += record.envelope.size();
  } else {
    auto ins = db_.prepare(
        "INSERT OR REPLACE INTO dropped (seq, priority, digest, prev_digest) "
        "VALUES (?, ?, ?, ?)",
        "record a drop");
    if (!ins) return std::unexpected(ins.error());
    ins->bind_int(1, static_cast<std::int64_t>(record.sequence))
        .bind_int(2, static_cast<std::int64_t>(record.priority))
        .bind_blob(3, record.digest)
        .bind_blob(4, record.prev_digest);
    PORTIER_TRY(ins->run());
  }
  return *room;
}

Result<void> Outbox::write_chain_state(const envelope::ChainState& after) {
  auto chain = db_.prepare(
      "INSERT OR REPLACE INTO chain (id, epoch, next_seq, prev_digest) VALUES (1, ?, ?, ?)",
      "store the chain state");
  if (!chain) return std::unexpected(chain.error());
  return chain->bind_int(1, static_cast<std::int64_t>(after.session_epoch))
      .bind_int(2, static_cast<std::int64_t>(after.next_sequence))
      .bind_blob(3, after.prev_digest)
      .run();
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
  // Rolled back on any error (every statement is finalized by then, so the
  // rollback cannot be refused). The byte count changes only once the
  // transaction is committed.
  auto tx = sqlite::Transaction::begin(db_, "BEGIN IMMEDIATE");
  if (!tx) return std::unexpected(tx.error());
  std::uint64_t bytes = bytes_;
  std::vector<PutOutcome> outcomes;
  outcomes.reserve(records.size());
  PORTIER_TRY(sweep_aged(now, bytes));  // once per transaction, not per record
  for (const auto& r : records) {
    auto stored = write(r, now, bytes);
    if (!stored) return std::unexpected(stored.error());
    outcomes.push_back(*stored ? PutOutcome::stored : PutOutcome::dropped);
  }
  PORTIER_TRY(write_chain_state(after));
  PORTIER_TRY(tx->commit("commit"));
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
  if (!db_.is_open() && released_ && first > released_newest_) return std::vector<Record>{};
  const auto last_use = last_use_;
  PORTIER_TRY(use());
  auto s = db_.prepare(
      "SELECT seq, priority, created_ms, envelope, digest, prev_digest FROM records "
      "WHERE seq >= ? ORDER BY seq LIMIT ?",
      "read");
  if (!s) return std::unexpected(s.error());
  s->bind_int(1, static_cast<std::int64_t>(first)).bind_int(2, static_cast<std::int64_t>(limit));
  std::vector<Record> out;
  for (;;) {
    auto row = s->step();
    if (!row) return std::unexpected(row.error());
    if (!*row) break;
    Record r;
    r.sequence = static_cast<std::uint64_t>(s->column_int(0));
    r.priority = static_cast<Priority>(s->column_int(1));
    r.created =
        std::chrono::system_clock::time_point{} + std::chrono::milliseconds(s->column_int(2));
    r.envelope = s->column_bytes(3);
    r.digest = s->column_bytes(4);
    r.prev_digest = s->column_bytes(5);
    out.push_back(std::move(r));
  }
  if (out.empty() && db_.is_open()) last_use_ = last_use;
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
                                                  sqlite::Purpose what) {
  auto deleted = delete_returning_size(sql, key, what);
  // resource_exhausted: SQLite said the disk is full.
  const bool full = !deleted && deleted.error().code == Errc::resource_exhausted;
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
  auto tx = sqlite::Transaction::begin(db_, "BEGIN IMMEDIATE");
  if (!tx) return std::unexpected(tx.error());
  std::uint64_t freed = 0;
  for (auto seq : sequences) {
    auto size =
        delete_with_reserve("DELETE FROM records WHERE seq = ? RETURNING size", seq, "acknowledge");
    if (!size) return std::unexpected(size.error());
    freed += *size;
  }
  PORTIER_TRY(tx->commit("commit"));
  bytes_ -= std::min(bytes_, freed);
  return {};
}

Result<std::vector<Dropped>> Outbox::drops(std::size_t limit) {
  std::lock_guard lock(mu_);
  PORTIER_TRY(use());
  auto s = db_.prepare(
      "SELECT seq, priority, digest, prev_digest FROM dropped ORDER BY seq LIMIT ?", "read drops");
  if (!s) return std::unexpected(s.error());
  s->bind_int(1, static_cast<std::int64_t>(limit));
  std::vector<Dropped> out;
  for (;;) {
    auto row = s->step();
    if (!row) return std::unexpected(row.error());
    if (!*row) return out;
    out.push_back({static_cast<std::uint64_t>(s->column_int(0)),
                   static_cast<Priority>(s->column_int(1)), s->column_bytes(2),
                   s->column_bytes(3)});
  }
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
  auto s = db_.prepare("SELECT value FROM meta WHERE key = ?", "read");
  if (!s) return std::unexpected(named(s.error(), "read " + key));
  auto row = s->bind_text(1, key).step();
  if (!row) return std::unexpected(named(row.error(), "read " + key));
  if (!*row) return 0;
  return static_cast<std::uint64_t>(s->column_int(0));
}

Result<void> Outbox::set_counter(const std::string& key, std::uint64_t value) {
  std::lock_guard lock(mu_);
  PORTIER_TRY(use());
  auto s = db_.prepare("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", "store");
  if (!s) return std::unexpected(named(s.error(), "store " + key));
  auto done = s->bind_text(1, key).bind_int(2, static_cast<std::int64_t>(value)).run();
  if (!done) return std::unexpected(named(done.error(), "store " + key));
  return {};
}

Result<OutboxStats> Outbox::stats() {
  std::lock_guard lock(mu_);
  PORTIER_TRY(use());
  auto s = db_.prepare(
      "SELECT count(*), coalesce(sum(size), 0), coalesce(min(seq), 0) FROM records", "count");
  if (!s) return std::unexpected(s.error());
  auto row = s->step();
  if (!row) return std::unexpected(row.error());
  return OutboxStats{static_cast<std::uint64_t>(s->column_int(0)),
                     static_cast<std::uint64_t>(s->column_int(1)),
                     static_cast<std::uint64_t>(s->column_int(2))};
}

}  // namespace portier::outbox
