#include "tools/fleet/sqlite_fleet_store.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

namespace portier::fleet {
namespace {

constexpr int kSchemaVersion = 5;

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS terminals (
  id TEXT PRIMARY KEY, public_key_pem TEXT NOT NULL, key_algorithm TEXT NOT NULL,
  registered_ms INTEGER NOT NULL, first_seen_ms INTEGER, last_seen_ms INTEGER,
  last_birth BLOB, session_epoch INTEGER NOT NULL DEFAULT 0,
  online INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS chains (
  terminal_id TEXT PRIMARY KEY REFERENCES terminals(id), version INTEGER NOT NULL,
  epoch INTEGER NOT NULL, next_seq INTEGER NOT NULL, prev_digest BLOB NOT NULL,
  parked_batches BLOB NOT NULL, pending_count INTEGER NOT NULL DEFAULT 0,
  pending_bytes INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS candidates (
  terminal_id TEXT NOT NULL REFERENCES terminals(id), seq INTEGER NOT NULL,
  digest BLOB NOT NULL, prev BLOB NOT NULL, arrival INTEGER NOT NULL, size INTEGER NOT NULL,
  envelope BLOB NOT NULL, PRIMARY KEY (terminal_id, seq, digest));
CREATE INDEX IF NOT EXISTS candidates_index
  ON candidates (terminal_id, arrival, seq, digest, prev, size);
CREATE INDEX IF NOT EXISTS candidates_children ON candidates (terminal_id, seq, prev);
CREATE TABLE IF NOT EXISTS parked (
  id INTEGER PRIMARY KEY AUTOINCREMENT, terminal_id TEXT NOT NULL REFERENCES terminals(id),
  key BLOB NOT NULL, seq INTEGER NOT NULL, bridge INTEGER NOT NULL, size INTEGER NOT NULL,
  envelope BLOB NOT NULL, UNIQUE (terminal_id, key));
CREATE INDEX IF NOT EXISTS parked_index ON parked (terminal_id, id, key, seq, bridge, size);
CREATE TABLE IF NOT EXISTS envelopes (
  terminal_id TEXT NOT NULL REFERENCES terminals(id), seq INTEGER NOT NULL,
  epoch INTEGER NOT NULL, digest BLOB NOT NULL, payload_type INTEGER NOT NULL,
  time_ms INTEGER NOT NULL, received_ms INTEGER NOT NULL, historical INTEGER NOT NULL,
  envelope BLOB NOT NULL, PRIMARY KEY (terminal_id, seq));
CREATE TABLE IF NOT EXISTS telemetry (
  terminal_id TEXT NOT NULL, seq INTEGER NOT NULL, payload_type INTEGER NOT NULL,
  time_ms INTEGER NOT NULL, payload BLOB NOT NULL, PRIMARY KEY (terminal_id, seq),
  FOREIGN KEY (terminal_id, seq) REFERENCES envelopes(terminal_id, seq));
CREATE INDEX IF NOT EXISTS telemetry_by_type ON telemetry (terminal_id, payload_type, seq);
CREATE TABLE IF NOT EXISTS audit (
  terminal_id TEXT NOT NULL, record INTEGER NOT NULL, seq INTEGER NOT NULL,
  line TEXT NOT NULL, PRIMARY KEY (terminal_id, record),
  FOREIGN KEY (terminal_id, seq) REFERENCES envelopes(terminal_id, seq));
CREATE TABLE IF NOT EXISTS command_results (
  terminal_id TEXT NOT NULL, seq INTEGER NOT NULL, command_id TEXT NOT NULL,
  status INTEGER NOT NULL, message TEXT NOT NULL, time_ms INTEGER NOT NULL,
  result BLOB NOT NULL, PRIMARY KEY (terminal_id, seq),
  FOREIGN KEY (terminal_id, seq) REFERENCES envelopes(terminal_id, seq));
CREATE TABLE IF NOT EXISTS proofs (
  terminal_id TEXT NOT NULL REFERENCES terminals(id), kind INTEGER NOT NULL,
  seq INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY (terminal_id, kind, seq));
CREATE TABLE IF NOT EXISTS incidents (
  id INTEGER PRIMARY KEY AUTOINCREMENT, terminal_id TEXT NOT NULL, time_ms INTEGER NOT NULL,
  kind TEXT NOT NULL, seq INTEGER NOT NULL, detail TEXT NOT NULL,
  count INTEGER NOT NULL DEFAULT 1, bucket INTEGER);
CREATE INDEX IF NOT EXISTS incidents_by_terminal ON incidents (terminal_id, id);
CREATE TABLE IF NOT EXISTS terminal_keys (
  terminal_id TEXT NOT NULL REFERENCES terminals(id), public_key_pem TEXT NOT NULL,
  from_seq INTEGER NOT NULL, cutover INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (terminal_id, public_key_pem));
CREATE TABLE IF NOT EXISTS sent_commands (
  terminal_id TEXT NOT NULL REFERENCES terminals(id), command_id TEXT NOT NULL,
  digest BLOB NOT NULL, action TEXT NOT NULL, sent_ms INTEGER NOT NULL,
  PRIMARY KEY (terminal_id, command_id, digest));
)sql";

// Version 1 to 2: incidents tallied per interval (count, and the interval's
// start in ms for a tallied row; NULL for a row of its own).
constexpr const char* kSchema2 = R"sql(
ALTER TABLE incidents ADD COLUMN count INTEGER NOT NULL DEFAULT 1;
ALTER TABLE incidents ADD COLUMN bucket INTEGER;
)sql";

// Version 2 to 3: a next key's cutover (the first sequence the terminal
// signs with it, declared with its rotation; 0: not declared).
constexpr const char* kSchema3 =
    "ALTER TABLE terminal_keys ADD COLUMN cutover INTEGER NOT NULL DEFAULT 0";

// Version 3 to 4: the candidates waiting for a signature and the envelopes
// held past a gap are rows of their own (one written or deleted per
// change), no longer blobs in the chain rewritten whole. Those of the blobs
// are dropped, not converted: neither was ever acknowledged, so the
// terminal sends them again (as after an eviction).
constexpr const char* kSchema4 =
    "ALTER TABLE chains DROP COLUMN pending; ALTER TABLE chains DROP COLUMN parked; "
    "ALTER TABLE chains ADD COLUMN pending_count INTEGER NOT NULL DEFAULT 0; "
    "ALTER TABLE chains ADD COLUMN pending_bytes INTEGER NOT NULL DEFAULT 0";

// Version 4 to 5: the commands this fleet sent (sent_commands, made by
// kSchema's CREATE TABLE IF NOT EXISTS), for tying a result to its action.

constexpr const char* kTallyIndex =
    "CREATE INDEX IF NOT EXISTS incidents_tallied ON incidents (bucket, kind, terminal_id) "
    "WHERE bucket IS NOT NULL";

std::int64_t to_ms(TimePoint t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}
TimePoint from_ms(std::int64_t ms) { return TimePoint{} + std::chrono::milliseconds(ms); }

// A list of byte strings in one blob: each a 4-byte big-endian length and
// its bytes.
std::string pack(const std::vector<std::string>& items) {
  std::string out;
  for (auto& s : items) {
    const auto n = static_cast<std::uint32_t>(s.size());
    for (int i = 3; i >= 0; --i) out.push_back(static_cast<char>(n >> (8 * i)));
    out += s;
  }
  return out;
}

std::optional<std::vector<std::string>> unpack(const std::string& blob) {
  std::vector<std::string> out;
  std::size_t at = 0;
  while (at < blob.size()) {
    if (blob.size() - at < 4) return std::nullopt;
    std::uint32_t n = 0;
    for (int i = 0; i < 4; ++i) n = (n << 8) | static_cast<unsigned char>(blob[at + i]);
    at += 4;
    if (blob.size() - at < n) return std::nullopt;
    out.push_back(blob.substr(at, n));
    at += n;
  }
  return out;
}

// A prepared statement, finalized when it goes.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) { rc_ = sqlite3_prepare_v2(db, sql, -1, &s_, nullptr); }
  ~Stmt() { sqlite3_finalize(s_); }
  bool ok() const { return rc_ == SQLITE_OK; }
  void bind(int i, std::int64_t v) { sqlite3_bind_int64(s_, i, v); }
  void bind(int i, std::uint64_t v) { sqlite3_bind_int64(s_, i, static_cast<std::int64_t>(v)); }
  void bind(int i, int v) { sqlite3_bind_int(s_, i, v); }
  void bind(int i, const std::string& text) {
    sqlite3_bind_text(s_, i, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
  }
  void bind_blob(int i, const std::string& blob) {
    sqlite3_bind_blob(s_, i, blob.data(), static_cast<int>(blob.size()), SQLITE_TRANSIENT);
  }
  void bind_null(int i) { sqlite3_bind_null(s_, i); }
  int step() { return sqlite3_step(s_); }
  std::int64_t i64(int c) { return sqlite3_column_int64(s_, c); }
  std::uint64_t u64(int c) { return static_cast<std::uint64_t>(sqlite3_column_int64(s_, c)); }
  bool null(int c) { return sqlite3_column_type(s_, c) == SQLITE_NULL; }
  std::string blob(int c) {
    auto* p = static_cast<const char*>(sqlite3_column_blob(s_, c));
    return p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(s_, c))) : "";
  }

 private:
  sqlite3_stmt* s_ = nullptr;
  int rc_ = SQLITE_ERROR;
};

constexpr const char* kTerminalColumns =
    "id, public_key_pem, key_algorithm, registered_ms, first_seen_ms, last_seen_ms, last_birth, "
    "session_epoch, online";

Terminal read_terminal(Stmt& s) {
  Terminal t;
  t.id = s.blob(0);
  t.public_key_pem = s.blob(1);
  t.key_algorithm = s.blob(2);
  t.registered = from_ms(s.i64(3));
  if (!s.null(4)) t.first_seen = from_ms(s.i64(4));
  if (!s.null(5)) t.last_seen = from_ms(s.i64(5));
  t.last_birth = s.blob(6);
  t.session_epoch = s.u64(7);
  t.online = s.i64(8) != 0;
  return t;
}

constexpr const char* kEnvelopeColumns =
    "terminal_id, seq, epoch, digest, payload_type, time_ms, received_ms, historical, envelope";

StoredEnvelope read_envelope(Stmt& s) {
  StoredEnvelope e;
  e.terminal_id = s.blob(0);
  e.sequence = s.u64(1);
  e.session_epoch = s.u64(2);
  e.digest = s.blob(3);
  e.payload_type = static_cast<int>(s.i64(4));
  e.time = from_ms(s.i64(5));
  e.received = from_ms(s.i64(6));
  e.historical = s.i64(7) != 0;
  e.envelope = s.blob(8);
  return e;
}

}  // namespace

Error SqliteFleetStore::sql_error(const std::string& what) const {
  const int rc = sqlite3_extended_errcode(db_);
  Errc code = Errc::io;
  if ((rc & 0xff) == SQLITE_FULL) code = Errc::resource_exhausted;
  if ((rc & 0xff) == SQLITE_BUSY) code = Errc::unavailable;
  return Error{code, "fleet store " + path_, what, sqlite3_errmsg(db_)};
}

Result<std::unique_ptr<SqliteFleetStore>> SqliteFleetStore::open(const std::string& path) {
  // Created 0600 before SQLite opens it (its -wal and -shm files take the
  // database file's mode): terminals' records are the operator's only.
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return fail_errno(Errc::io, "fleet store " + path, "cannot open", errno);
  ::close(fd);
  sqlite3* db = nullptr;
  const int rc =
      sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr);
  std::unique_ptr<SqliteFleetStore> store(new SqliteFleetStore(path, db));
  if (rc != SQLITE_OK) return std::unexpected(store->sql_error("cannot open"));
  sqlite3_busy_timeout(db, 10000);
  for (const char* sql :
       {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL", "PRAGMA foreign_keys=ON"}) {
    if (auto ok = store->exec(sql); !ok) return std::unexpected(ok.error());
  }
  Stmt v(db, "PRAGMA user_version");
  if (!v.ok() || v.step() != SQLITE_ROW) return std::unexpected(store->sql_error("schema version"));
  const auto version = v.i64(0);
  if (version > kSchemaVersion) {
    return fail(Errc::failed_precondition, "fleet store " + path, "schema",
                "version " + std::to_string(version) + " is newer than this portier-fleet's (" +
                    std::to_string(kSchemaVersion) + ")");
  }
  if (version < kSchemaVersion) {
    if (auto ok = store->exec("BEGIN IMMEDIATE"); !ok) return std::unexpected(ok.error());
    if (auto ok = store->exec(kSchema); !ok) return std::unexpected(ok.error());
    if (version == 1) {
      if (auto ok = store->exec(kSchema2); !ok) return std::unexpected(ok.error());
    }
    // A terminal_keys table of before version 3 (the CREATE above made
    // none, or one that has it already).
    bool has_cutover = false;
    {
      Stmt has(db,
               "SELECT COUNT(*) FROM pragma_table_info('terminal_keys') WHERE name = 'cutover'");
      if (!has.ok() || has.step() != SQLITE_ROW) {
        return std::unexpected(store->sql_error("schema of terminal_keys"));
      }
      has_cutover = has.i64(0) != 0;
    }
    if (!has_cutover) {
      if (auto ok = store->exec(kSchema3); !ok) return std::unexpected(ok.error());
    }
    // A chains table of before version 4 (blobs of candidates and parked
    // envelopes).
    bool has_blobs = false;
    {
      Stmt old(db, "SELECT count(*) FROM pragma_table_info('chains') WHERE name = 'pending'");
      if (!old.ok() || old.step() != SQLITE_ROW) {
        return std::unexpected(store->sql_error("schema of chains"));
      }
      has_blobs = old.i64(0) != 0;
    }
    if (has_blobs) {
      if (auto ok = store->exec(kSchema4); !ok) return std::unexpected(ok.error());
    }
    if (auto ok = store->exec(kTallyIndex); !ok) return std::unexpected(ok.error());
    if (auto ok = store->exec(("PRAGMA user_version=" + std::to_string(kSchemaVersion)).c_str());
        !ok) {
      return std::unexpected(ok.error());
    }
    if (auto ok = store->exec("COMMIT"); !ok) return std::unexpected(ok.error());
  }
  return store;
}

SqliteFleetStore::~SqliteFleetStore() { sqlite3_close_v2(db_); }

Result<void> SqliteFleetStore::exec(const char* sql) {
  char* msg = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &msg) != SQLITE_OK) {
    auto e = sql_error(sql);
    sqlite3_free(msg);
    if (!sqlite3_get_autocommit(db_)) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    return std::unexpected(e);
  }
  return {};
}

Result<void> SqliteFleetStore::add_terminal(const Terminal& t) {
  std::lock_guard lock(mu_);
  Stmt s(db_,
         "INSERT INTO terminals (id, public_key_pem, key_algorithm, registered_ms, "
         "session_epoch, online) VALUES (?, ?, ?, ?, 0, 0)");
  if (!s.ok()) return std::unexpected(sql_error("add terminal"));
  s.bind(1, t.id);
  s.bind(2, t.public_key_pem);
  s.bind(3, t.key_algorithm);
  s.bind(4, to_ms(t.registered));
  const int rc = s.step();
  if (rc == SQLITE_CONSTRAINT) {
    return fail(Errc::already_exists, "fleet store", "terminal " + t.id, "already registered");
  }
  if (rc != SQLITE_DONE) return std::unexpected(sql_error("add terminal " + t.id));
  return {};
}

Result<void> SqliteFleetStore::set_next_key(const std::string& id,
                                            const std::string& public_key_pem,
                                            std::uint64_t cutover) {
  std::lock_guard lock(mu_);
  PORTIER_TRY(exec("BEGIN IMMEDIATE"));
  auto ok = [&]() -> Result<void> {
    Stmt t(db_, "SELECT 1 FROM terminals WHERE id = ?");
    if (!t.ok()) return std::unexpected(sql_error("read terminal"));
    t.bind(1, id);
    if (t.step() != SQLITE_ROW) {
      return fail(Errc::not_found, "fleet store", "terminal " + id, "unknown");
    }
    if (cutover != 0) {
      // The chain must not have passed the cutover: what it holds from there
      // on was signed by the old key, which the terminal says it no longer
      // uses.
      Stmt c(db_, "SELECT next_seq FROM chains WHERE terminal_id = ?");
      if (!c.ok()) return std::unexpected(sql_error("read chain"));
      c.bind(1, id);
      const int rc = c.step();
      if (rc == SQLITE_ROW && c.u64(0) > cutover) {
        return fail(Errc::failed_precondition, "fleet store", "terminal " + id,
                    "its chain already holds sequences " + std::to_string(cutover) + ".." +
                        std::to_string(c.u64(0) - 1) +
                        " signed by its current key, at or after the cutover " +
                        std::to_string(cutover) +
                        " the rotation names: someone else signs with that key");
      }
      if (rc != SQLITE_ROW && rc != SQLITE_DONE) return std::unexpected(sql_error("read chain"));
    }
    // The chain's version moves, so that a receiver that loaded the keys
    // before this commits nothing: not what the old key signed past the
    // cutover, nor a takeover by a next key this one replaces.
    Stmt v(db_, "UPDATE chains SET version = version + 1 WHERE terminal_id = ?");
    if (!v.ok()) return std::unexpected(sql_error("next key"));
    v.bind(1, id);
    if (v.step() != SQLITE_DONE) return std::unexpected(sql_error("next key"));
    Stmt d(db_, "DELETE FROM terminal_keys WHERE terminal_id = ? AND from_seq = 0");
    if (!d.ok()) return std::unexpected(sql_error("next key"));
    d.bind(1, id);
    if (d.step() != SQLITE_DONE) return std::unexpected(sql_error("next key"));
    Stmt s(db_,
           "INSERT INTO terminal_keys (terminal_id, public_key_pem, from_seq, cutover) "
           "VALUES (?, ?, 0, ?) ON CONFLICT DO NOTHING");
    if (!s.ok()) return std::unexpected(sql_error("next key"));
    s.bind(1, id);
    s.bind(2, public_key_pem);
    s.bind(3, cutover);
    if (s.step() != SQLITE_DONE) return std::unexpected(sql_error("next key of " + id));
    return {};
  }();
  if (ok && sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr) == SQLITE_OK) return {};
  Error e = ok ? sql_error("commit") : ok.error();
  if (!sqlite3_get_autocommit(db_)) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  if (!sqlite3_get_autocommit(db_)) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  return std::unexpected(e);
}

Result<std::vector<TerminalKey>> SqliteFleetStore::keys(const std::string& id) {
  std::lock_guard lock(mu_);
  Stmt s(db_,
         "SELECT public_key_pem, from_seq, cutover FROM terminal_keys WHERE terminal_id = ? "
         "ORDER BY from_seq = 0, from_seq");
  if (!s.ok()) return std::unexpected(sql_error("read keys"));
  s.bind(1, id);
  std::vector<TerminalKey> out;
  int rc;
  while ((rc = s.step()) == SQLITE_ROW) out.push_back(TerminalKey{s.blob(0), s.u64(1), s.u64(2)});
  if (rc != SQLITE_DONE) return std::unexpected(sql_error("read keys of " + id));
  return out;
}

Result<Terminal> SqliteFleetStore::terminal(const std::string& id) {
  std::lock_guard lock(mu_);
  Stmt s(db_, (std::string("SELECT ") + kTerminalColumns + " FROM terminals WHERE id = ?").c_str());
  if (!s.ok()) return std::unexpected(sql_error("read terminal"));
  s.bind(1, id);
  const int rc = s.step();
  if (rc == SQLITE_DONE) return fail(Errc::not_found, "fleet store", "terminal " + id, "unknown");
  if (rc != SQLITE_ROW) return std::unexpected(sql_error("read terminal " + id));
  return read_terminal(s);
}

Result<std::vector<Terminal>> SqliteFleetStore::terminals() {
  std::lock_guard lock(mu_);
  Stmt s(db_, (std::string("SELECT ") + kTerminalColumns + " FROM terminals ORDER BY id").c_str());
  if (!s.ok()) return std::unexpected(sql_error("list terminals"));
  std::vector<Terminal> out;
  int rc;
  while ((rc = s.step()) == SQLITE_ROW) out.push_back(read_terminal(s));
  if (rc != SQLITE_DONE) return std::unexpected(sql_error("list terminals"));
  return out;
}

Result<bool> SqliteFleetStore::mark_offline(const std::string& id, std::uint64_t epoch,
                                            TimePoint now) {
  std::lock_guard lock(mu_);
  Stmt s(db_,
         "UPDATE terminals SET online = 0, session_epoch = ?, last_seen_ms = ? "
         "WHERE id = ? AND session_epoch <= ?");
  if (!s.ok()) return std::unexpected(sql_error("mark offline"));
  s.bind(1, epoch);
  s.bind(2, to_ms(now));
  s.bind(3, id);
  s.bind(4, epoch);
  if (s.step() != SQLITE_DONE) return std::unexpected(sql_error("mark " + id + " offline"));
  return sqlite3_changes(db_) == 1;
}

Result<ChainRecord> SqliteFleetStore::chain(const std::string& id) {
  std::lock_guard lock(mu_);
  // One read transaction: the chain and its candidates as of one commit.
  PORTIER_TRY(exec("BEGIN"));
  auto c = read_chain(id, true);
  if (sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK && c) {
    c = std::unexpected(sql_error("read chain of " + id));
  }
  if (!sqlite3_get_autocommit(db_)) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  return c;
}

Result<ChainRecord> SqliteFleetStore::chain_state(const std::string& id) {
  std::lock_guard lock(mu_);
  PORTIER_TRY(exec("BEGIN"));
  auto c = read_chain(id, false);
  if (sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK && c) {
    c = std::unexpected(sql_error("read chain of " + id));
  }
  if (!sqlite3_get_autocommit(db_)) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  return c;
}

Result<std::vector<FleetStore::PendingLink>> SqliteFleetStore::read_pending(const char* sql,
                                                                            const std::string& id,
                                                                            std::int64_t a,
                                                                            std::int64_t b) {
  Stmt p(db_, sql);
  if (!p.ok()) return std::unexpected(sql_error("read candidates"));
  p.bind(1, id);
  p.bind(2, a);
  p.bind(3, b);
  std::vector<PendingLink> out;
  int rc;
  while ((rc = p.step()) == SQLITE_ROW) {
    out.push_back(PendingLink{
        p.u64(0), p.blob(1), p.blob(2), p.u64(3), static_cast<std::size_t>(p.i64(4)), {}});
  }
  if (rc != SQLITE_DONE) return std::unexpected(sql_error("read candidates of " + id));
  return out;
}

Result<std::optional<FleetStore::PendingLink>> SqliteFleetStore::pending_find(
    const std::string& id, std::uint64_t sequence, const std::string& digest) {
  std::lock_guard lock(mu_);
  Stmt p(db_,
         "SELECT seq, digest, prev, arrival, size FROM candidates "
         "WHERE terminal_id = ? AND seq = ? AND digest = ?");
  if (!p.ok()) return std::unexpected(sql_error("read candidate"));
  p.bind(1, id);
  p.bind(2, sequence);
  p.bind_blob(3, digest);
  const int rc = p.step();
  if (rc == SQLITE_DONE) return std::optional<PendingLink>{};
  if (rc != SQLITE_ROW) return std::unexpected(sql_error("read candidate of " + id));
  return std::optional<PendingLink>(PendingLink{
      p.u64(0), p.blob(1), p.blob(2), p.u64(3), static_cast<std::size_t>(p.i64(4)), {}});
}

Result<std::vector<FleetStore::PendingLink>> SqliteFleetStore::pending_index(
    const std::string& id) {
  std::lock_guard lock(mu_);
  return read_pending(
      "SELECT seq, digest, prev, arrival, size FROM candidates WHERE terminal_id = ?1 "
      "AND ?2 = ?3 ORDER BY arrival",
      id, 0, 0);
}

Result<std::vector<FleetStore::PendingLink>> SqliteFleetStore::pending_oldest_leaves(
    const std::string& id, std::optional<std::uint64_t> after, std::size_t limit) {
  std::lock_guard lock(mu_);
  return read_pending(
      "SELECT seq, digest, prev, arrival, size FROM candidates c WHERE terminal_id = ?1 "
      "AND arrival > ?2 AND NOT EXISTS (SELECT 1 FROM candidates d WHERE d.terminal_id = ?1 "
      "AND d.seq = c.seq + 1 AND d.prev = c.digest) ORDER BY arrival LIMIT ?3",
      id, after ? static_cast<std::int64_t>(*after) : -1,
      static_cast<std::int64_t>(std::min<std::size_t>(limit, INT64_MAX)));
}

Result<std::vector<FleetStore::PendingLink>> SqliteFleetStore::pending_newest(const std::string& id,
                                                                              std::size_t limit) {
  std::lock_guard lock(mu_);
  return read_pending(
      "SELECT seq, digest, prev, arrival, size FROM candidates WHERE terminal_id = ?1 "
      "AND ?2 = 0 ORDER BY seq DESC LIMIT ?3",
      id, 0, static_cast<std::int64_t>(std::min<std::size_t>(limit, INT64_MAX)));
}

Result<ChainRecord> SqliteFleetStore::read_chain(const std::string& id, bool index) {
  Stmt s(db_,
         "SELECT version, epoch, next_seq, prev_digest, parked_batches, pending_count, "
         "pending_bytes FROM chains WHERE terminal_id = ?");
  if (!s.ok()) return std::unexpected(sql_error("read chain"));
  s.bind(1, id);
  const int rc = s.step();
  ChainRecord c;
  if (rc == SQLITE_DONE) return c;
  if (rc != SQLITE_ROW) return std::unexpected(sql_error("read chain of " + id));
  c.version = s.u64(0);
  c.state.session_epoch = s.u64(1);
  c.state.next_sequence = s.u64(2);
  auto d = s.blob(3);
  c.state.prev_digest.assign(d.begin(), d.end());
  auto batches = unpack(s.blob(4));
  if (!batches || c.state.next_sequence == 0 || d.size() != 32) {
    return fail(Errc::failed_precondition, "fleet store " + path_, "chain of " + id, "corrupt");
  }
  c.parked_batches = std::move(*batches);
  c.pending_summary.count = static_cast<std::size_t>(s.i64(5));
  c.pending_summary.bytes = static_cast<std::size_t>(s.i64(6));
  Stmt h(db_, "SELECT key, seq, bridge, size FROM parked WHERE terminal_id = ? ORDER BY id");
  if (!h.ok()) return std::unexpected(sql_error("read parked"));
  h.bind(1, id);
  int hrc;
  while ((hrc = h.step()) == SQLITE_ROW) {
    c.parked.push_back(
        ParkedEnvelope{h.blob(0), h.u64(1), h.i64(2) != 0, static_cast<std::size_t>(h.i64(3)), {}});
  }
  if (hrc != SQLITE_DONE) return std::unexpected(sql_error("read parked of " + id));
  // The candidates: their summary (count and bytes kept in the chain row,
  // the highest sequence and arrival from the indexes: no scan), and their
  // index (not their envelopes, read when covered) when asked.
  auto highest = [&](const char* sql) -> Result<std::uint64_t> {
    Stmt m(db_, sql);
    if (!m.ok()) return std::unexpected(sql_error("read candidates"));
    m.bind(1, id);
    if (m.step() != SQLITE_ROW) return std::unexpected(sql_error("read candidates of " + id));
    return m.u64(0);  // NULL (none): 0
  };
  auto last_seq = highest("SELECT max(seq) FROM candidates WHERE terminal_id = ?");
  if (!last_seq) return std::unexpected(last_seq.error());
  auto last_arrival = highest("SELECT max(arrival) FROM candidates WHERE terminal_id = ?");
  if (!last_arrival) return std::unexpected(last_arrival.error());
  c.pending_summary.last_sequence = *last_seq;
  c.pending_summary.last_arrival = *last_arrival;
  if (index) {
    auto pending = read_pending(
        "SELECT seq, digest, prev, arrival, size FROM candidates WHERE terminal_id = ?1 "
        "AND ?2 = ?3 ORDER BY arrival",
        id, 0, 0);
    if (!pending) return std::unexpected(pending.error());
    c.pending = std::move(*pending);
  }
  return c;
}

Result<std::string> SqliteFleetStore::parked_envelope(const std::string& id,
                                                      const std::string& key) {
  std::lock_guard lock(mu_);
  Stmt s(db_, "SELECT envelope FROM parked WHERE terminal_id = ? AND key = ?");
  if (!s.ok()) return std::unexpected(sql_error("read parked"));
  s.bind(1, id);
  s.bind_blob(2, key);
  const int rc = s.step();
  if (rc == SQLITE_DONE) {
    return fail(Errc::not_found, "fleet store " + path_, "parked envelope of " + id,
                "not held past a gap (any more)");
  }
  if (rc != SQLITE_ROW) return std::unexpected(sql_error("read parked of " + id));
  return s.blob(0);
}

Result<std::string> SqliteFleetStore::pending_envelope(const std::string& id,
                                                       std::uint64_t sequence,
                                                       const std::string& digest) {
  std::lock_guard lock(mu_);
  Stmt s(db_, "SELECT envelope FROM candidates WHERE terminal_id = ? AND seq = ? AND digest = ?");
  if (!s.ok()) return std::unexpected(sql_error("read candidate"));
  s.bind(1, id);
  s.bind(2, sequence);
  s.bind_blob(3, digest);
  const int rc = s.step();
  if (rc == SQLITE_DONE) {
    return fail(Errc::not_found, "fleet store " + path_,
                "candidate " + std::to_string(sequence) + " of " + id,
                "not waiting for a signature (any more)");
  }
  if (rc != SQLITE_ROW) return std::unexpected(sql_error("read candidate of " + id));
  return s.blob(0);
}

Result<void> SqliteFleetStore::insert_incident(const Incident& i) {
  Stmt s(db_,
         "INSERT INTO incidents (terminal_id, time_ms, kind, seq, detail) VALUES (?, ?, ?, ?, ?)");
  if (!s.ok()) return std::unexpected(sql_error("add incident"));
  s.bind(1, i.terminal_id);
  s.bind(2, to_ms(i.time));
  s.bind(3, i.kind);
  s.bind(4, i.sequence);
  s.bind(5, i.detail);
  if (s.step() != SQLITE_DONE) return std::unexpected(sql_error("add incident"));
  return {};
}

Result<void> SqliteFleetStore::add_incident(const Incident& incident) {
  std::lock_guard lock(mu_);
  return insert_incident(incident);
}

// Inside a transaction: the incident added to its interval's row for its
// terminal, else to a new row while the interval has fewer than
// max_terminals of its kind, else to the row of kOtherTerminals.
Result<void> SqliteFleetStore::tally_incident(const Incident& i, const IncidentTally& tally) {
  const std::int64_t width = std::max<std::int64_t>(1, tally.interval.count()) * 1000;
  const std::int64_t t = to_ms(i.time);
  const std::int64_t bucket = t - ((t % width) + width) % width;
  auto add_to = [&](const std::string& terminal) -> Result<bool> {
    Stmt s(db_,
           "UPDATE incidents SET count = count + ? "
           "WHERE bucket = ? AND kind = ? AND terminal_id = ?");
    if (!s.ok()) return std::unexpected(sql_error("tally incident"));
    s.bind(1, i.count);
    s.bind(2, bucket);
    s.bind(3, i.kind);
    s.bind(4, terminal);
    if (s.step() != SQLITE_DONE) return std::unexpected(sql_error("tally incident"));
    return sqlite3_changes(db_) > 0;
  };
  auto insert = [&](const std::string& terminal, const std::string& detail) -> Result<void> {
    Stmt s(db_,
           "INSERT INTO incidents (terminal_id, time_ms, kind, seq, detail, count, bucket) "
           "VALUES (?, ?, ?, ?, ?, ?, ?)");
    if (!s.ok()) return std::unexpected(sql_error("tally incident"));
    s.bind(1, terminal);
    s.bind(2, t);
    s.bind(3, i.kind);
    s.bind(4, i.sequence);
    s.bind(5, detail);
    s.bind(6, i.count);
    s.bind(7, bucket);
    if (s.step() != SQLITE_DONE) return std::unexpected(sql_error("tally incident"));
    return {};
  };
  auto added = add_to(i.terminal_id);
  if (!added) return std::unexpected(added.error());
  if (*added) return {};
  Stmt n(db_, "SELECT count(*) FROM incidents WHERE bucket = ? AND kind = ? AND terminal_id != ?");
  if (!n.ok()) return std::unexpected(sql_error("tally incident"));
  n.bind(1, bucket);
  n.bind(2, i.kind);
  n.bind(3, std::string(kOtherTerminals));
  if (n.step() != SQLITE_ROW) return std::unexpected(sql_error("tally incident"));
  if (static_cast<std::uint64_t>(n.i64(0)) < tally.max_terminals) {
    return insert(i.terminal_id, i.detail);
  }
  added = add_to(kOtherTerminals);
  if (!added) return std::unexpected(added.error());
  if (*added) return {};
  return insert(kOtherTerminals, "more than " + std::to_string(tally.max_terminals) +
                                     " terminal ids had this kind of incident in the interval; "
                                     "the others are counted here (the first: " +
                                     i.terminal_id + ": " + i.detail + ")");
}

Result<void> SqliteFleetStore::tally_incidents(const std::vector<Incident>& incidents,
                                               const IncidentTally& tally) {
  if (incidents.empty()) return {};
  std::lock_guard lock(mu_);
  PORTIER_TRY(exec("BEGIN IMMEDIATE"));
  for (auto& i : incidents) {
    if (auto ok = tally_incident(i, tally); !ok) {
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
      return ok;
    }
  }
  if (sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr) == SQLITE_OK) return {};
  auto e = sql_error("tally incidents");
  if (!sqlite3_get_autocommit(db_)) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  return std::unexpected(e);
}

Result<void> SqliteFleetStore::write_chain(const Commit& c) {
  const auto& st = c.chain.state;
  const std::string prev(st.prev_digest.begin(), st.prev_digest.end());
  if (!c.chain_changed) {
    // Nothing moved: only that nobody else moved it either.
    Stmt s(db_, "SELECT version FROM chains WHERE terminal_id = ?");
    if (!s.ok()) return std::unexpected(sql_error("check chain"));
    s.bind(1, c.terminal_id);
    const int rc = s.step();
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return std::unexpected(sql_error("check chain"));
    if ((rc == SQLITE_ROW ? s.u64(0) : 0) != c.expected_version) {
      return fail(Errc::aborted, "fleet store", "chain of " + c.terminal_id,
                  "changed by another receiver since it was loaded");
    }
    return {};
  }
  if (c.expected_version == 0) {
    Stmt s(db_,
           "INSERT INTO chains (terminal_id, version, epoch, next_seq, prev_digest, "
           "parked_batches) VALUES (?, 1, ?, ?, ?, ?) ON CONFLICT DO NOTHING");
    if (!s.ok()) return std::unexpected(sql_error("write chain"));
    s.bind(1, c.terminal_id);
    s.bind(2, st.session_epoch);
    s.bind(3, st.next_sequence);
    s.bind_blob(4, prev);
    s.bind_blob(5, pack(c.chain.parked_batches));
    if (s.step() != SQLITE_DONE) return std::unexpected(sql_error("write chain"));
  } else if (c.batches_changed) {
    Stmt s(db_,
           "UPDATE chains SET version = version + 1, epoch = ?, next_seq = ?, prev_digest = ?, "
           "parked_batches = ? WHERE terminal_id = ? AND version = ?");
    if (!s.ok()) return std::unexpected(sql_error("write chain"));
    s.bind(1, st.session_epoch);
    s.bind(2, st.next_sequence);
    s.bind_blob(3, prev);
    s.bind_blob(4, pack(c.chain.parked_batches));
    s.bind(5, c.terminal_id);
    s.bind(6, c.expected_version);
    if (s.step() != SQLITE_DONE) return std::unexpected(sql_error("write chain"));
  } else {
    Stmt s(db_,
           "UPDATE chains SET version = version + 1, epoch = ?, next_seq = ?, prev_digest = ? "
           "WHERE terminal_id = ? AND version = ?");
    if (!s.ok()) return std::unexpected(sql_error("write chain"));
    s.bind(1, st.session_epoch);
    s.bind(2, st.next_sequence);
    s.bind_blob(3, prev);
    s.bind(4, c.terminal_id);
    s.bind(5, c.expected_version);
    if (s.step() != SQLITE_DONE) return std::unexpected(sql_error("write chain"));
  }
  if (sqlite3_changes(db_) != 1) {
    return fail(Errc::aborted, "fleet store", "chain of " + c.terminal_id,
                "changed by another receiver since it was loaded");
  }
  {
    Stmt n(db_, "UPDATE chains SET pending_count = ?, pending_bytes = ? WHERE terminal_id = ?");
    if (!n.ok()) return std::unexpected(sql_error("write chain"));
    n.bind(1, static_cast<std::uint64_t>(c.chain.pending_summary.count));
    n.bind(2, static_cast<std::uint64_t>(c.chain.pending_summary.bytes));
    n.bind(3, c.terminal_id);
    if (n.step() != SQLITE_DONE) return std::unexpected(sql_error("write chain"));
  }
  // The candidates that changed, one row each.
  for (auto& [seq, digest] : c.pending_removed) {
    Stmt s(db_, "DELETE FROM candidates WHERE terminal_id = ? AND seq = ? AND digest = ?");
    if (!s.ok()) return std::unexpected(sql_error("remove candidate"));
    s.bind(1, c.terminal_id);
    s.bind(2, seq);
    s.bind_blob(3, digest);
    if (s.step() != SQLITE_DONE) return std::unexpected(sql_error("remove candidate"));
  }
  for (auto& l : c.pending_added) {
    Stmt s(db_,
           "INSERT OR REPLACE INTO candidates (terminal_id, seq, digest, prev, arrival, size, "
           "envelope) VALUES (?, ?, ?, ?, ?, ?, ?)");
    if (!s.ok()) return std::unexpected(sql_error("add candidate"));
    s.bind(1, c.terminal_id);
    s.bind(2, l.sequence);
    s.bind_blob(3, l.digest);
    s.bind_blob(4, l.prev);
    s.bind(5, l.arrival);
    s.bind(6, static_cast<std::uint64_t>(l.envelope.size()));
    s.bind_blob(7, l.envelope);
    if (s.step() != SQLITE_DONE) return std::unexpected(sql_error("add candidate"));
  }
  for (auto& key : c.parked_removed) {
    Stmt s(db_, "DELETE FROM parked WHERE terminal_id = ? AND key = ?");
    if (!s.ok()) return std::unexpected(sql_error("remove parked"));
    s.bind(1, c.terminal_id);
    s.bind_blob(2, key);
    if (s.step() != SQLITE_DONE) return std::unexpected(sql_error("remove parked"));
  }
  for (auto& p : c.parked_added) {
    Stmt s(db_,
           "INSERT OR REPLACE INTO parked (terminal_id, key, seq, bridge, size, envelope) "
           "VALUES (?, ?, ?, ?, ?, ?)");
    if (!s.ok()) return std::unexpected(sql_error("add parked"));
    s.bind(1, c.terminal_id);
    s.bind_blob(2, p.key);
    s.bind(3, p.sequence);
    s.bind(4, p.bridge ? 1 : 0);
    s.bind(5, static_cast<std::uint64_t>(p.envelope.size()));
    s.bind_blob(6, p.envelope);
    if (s.step() != SQLITE_DONE) return std::unexpected(sql_error("add parked"));
  }
  return {};
}

Result<void> SqliteFleetStore::write(const Commit& c) {
  PORTIER_TRY(write_chain(c));
  if (c.next_key_from != 0) {
    // The key in use so far goes into the history (from 1 when it is the
    // first; not at all when the next key takes over at 1: it never signed
    // anything), the next key takes over.
    if (c.next_key_from > 1) {
      Stmt h(db_,
             "INSERT INTO terminal_keys (terminal_id, public_key_pem, from_seq) "
             "SELECT id, public_key_pem, 1 FROM terminals WHERE id = ? ON CONFLICT DO NOTHING");
      if (!h.ok()) return std::unexpected(sql_error("key history"));
      h.bind(1, c.terminal_id);
      if (h.step() != SQLITE_DONE) return std::unexpected(sql_error("key history"));
    }
    Stmt n(db_, "UPDATE terminal_keys SET from_seq = ? WHERE terminal_id = ? AND from_seq = 0");
    if (!n.ok()) return std::unexpected(sql_error("key history"));
    n.bind(1, c.next_key_from);
    n.bind(2, c.terminal_id);
    if (n.step() != SQLITE_DONE) return std::unexpected(sql_error("key history"));
    if (sqlite3_changes(db_) != 1) {
      return fail(Errc::aborted, "fleet store", "next key of " + c.terminal_id,
                  "taken or replaced by another receiver since it was loaded");
    }
    Stmt t(db_,
           "UPDATE terminals SET public_key_pem = (SELECT public_key_pem FROM terminal_keys "
           "WHERE terminal_id = ? AND from_seq = ?) WHERE id = ?");
    if (!t.ok()) return std::unexpected(sql_error("key history"));
    t.bind(1, c.terminal_id);
    t.bind(2, c.next_key_from);
    t.bind(3, c.terminal_id);
    if (t.step() != SQLITE_DONE) return std::unexpected(sql_error("key history"));
  }
  for (auto& e : c.envelopes) {
    Stmt s(db_, (std::string("INSERT INTO envelopes (") + kEnvelopeColumns +
                 ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
                    .c_str());
    if (!s.ok()) return std::unexpected(sql_error("store envelope"));
    s.bind(1, e.terminal_id);
    s.bind(2, e.sequence);
    s.bind(3, e.session_epoch);
    s.bind_blob(4, e.digest);
    s.bind(5, e.payload_type);
    s.bind(6, to_ms(e.time));
    s.bind(7, to_ms(e.received));
    s.bind(8, e.historical ? 1 : 0);
    s.bind_blob(9, e.envelope);
    if (s.step() != SQLITE_DONE) {
      return std::unexpected(sql_error("store envelope " + std::to_string(e.sequence)));
    }
  }
  for (auto& t : c.telemetry) {
    Stmt s(db_,
           "INSERT INTO telemetry (terminal_id, seq, payload_type, time_ms, payload) "
           "VALUES (?, ?, ?, ?, ?)");
    if (!s.ok()) return std::unexpected(sql_error("store telemetry"));
    s.bind(1, t.terminal_id);
    s.bind(2, t.sequence);
    s.bind(3, t.payload_type);
    s.bind(4, to_ms(t.time));
    s.bind_blob(5, t.payload);
    if (s.step() != SQLITE_DONE) return std::unexpected(sql_error("store telemetry"));
  }
  for (auto& a : c.audit) {
    Stmt s(db_,
           "INSERT INTO audit (terminal_id, record, seq, line) VALUES (?, ?, ?, ?) "
           "ON CONFLICT DO NOTHING");
    if (!s.ok()) return std::unexpected(sql_error("store audit"));
    s.bind(1, a.terminal_id);
    s.bind(2, a.record);
    s.bind(3, a.sequence);
    s.bind(4, a.line);
    if (s.step() != SQLITE_DONE) return std::unexpected(sql_error("store audit"));
  }
  for (auto& r : c.results) {
    Stmt s(db_,
           "INSERT INTO command_results (terminal_id, seq, command_id, status, message, time_ms, "
           "result) VALUES (?, ?, ?, ?, ?, ?, ?)");
    if (!s.ok()) return std::unexpected(sql_error("store command result"));
    s.bind(1, r.terminal_id);
    s.bind(2, r.sequence);
    s.bind(3, r.command_id);
    s.bind(4, r.status);
    s.bind(5, r.message);
    s.bind(6, to_ms(r.time));
    s.bind_blob(7, r.result);
    if (s.step() != SQLITE_DONE) return std::unexpected(sql_error("store command result"));
  }
  for (auto& p : c.proofs) {
    Stmt s(db_, "INSERT OR REPLACE INTO proofs (terminal_id, kind, seq, data) VALUES (?, ?, ?, ?)");
    if (!s.ok()) return std::unexpected(sql_error("store proof"));
    s.bind(1, c.terminal_id);
    s.bind(2, static_cast<int>(p.kind));
    s.bind(3, p.sequence);
    s.bind_blob(4, p.data);
    if (s.step() != SQLITE_DONE) return std::unexpected(sql_error("store proof"));
  }
  for (auto& i : c.incidents) PORTIER_TRY(insert_incident(i));
  for (auto& i : c.tallied) PORTIER_TRY(tally_incident(i, c.tally));
  if (c.seen) {
    Stmt s(db_,
           "UPDATE terminals SET last_seen_ms = ?, first_seen_ms = coalesce(first_seen_ms, ?), "
           "online = 1, session_epoch = max(session_epoch, ?), "
           "last_birth = CASE WHEN length(?) > 0 THEN ? ELSE last_birth END WHERE id = ?");
    if (!s.ok()) return std::unexpected(sql_error("update terminal"));
    s.bind(1, to_ms(*c.seen));
    s.bind(2, to_ms(*c.seen));
    s.bind(3, c.session_epoch);
    s.bind_blob(4, c.birth);
    s.bind_blob(5, c.birth);
    s.bind(6, c.terminal_id);
    if (s.step() != SQLITE_DONE) return std::unexpected(sql_error("update terminal"));
  }
  return {};
}

Result<void> SqliteFleetStore::commit(const Commit& c) {
  std::lock_guard lock(mu_);
  PORTIER_TRY(exec("BEGIN IMMEDIATE"));
  auto ok = write(c);
  if (ok && sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr) == SQLITE_OK) return {};
  Error e = ok ? sql_error("commit") : ok.error();
  if (!sqlite3_get_autocommit(db_)) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  return std::unexpected(e);
}

Result<std::optional<StoredEnvelope>> SqliteFleetStore::envelope(const std::string& id,
                                                                 std::uint64_t sequence) {
  std::lock_guard lock(mu_);
  Stmt s(db_, (std::string("SELECT ") + kEnvelopeColumns +
               " FROM envelopes WHERE terminal_id = ? AND seq = ?")
                  .c_str());
  if (!s.ok()) return std::unexpected(sql_error("read envelope"));
  s.bind(1, id);
  s.bind(2, sequence);
  const int rc = s.step();
  if (rc == SQLITE_DONE) return std::optional<StoredEnvelope>{};
  if (rc != SQLITE_ROW) return std::unexpected(sql_error("read envelope"));
  return std::optional<StoredEnvelope>(read_envelope(s));
}

Result<std::vector<StoredEnvelope>> SqliteFleetStore::envelopes(const std::string& id,
                                                                std::uint64_t from,
                                                                std::size_t limit) {
  std::lock_guard lock(mu_);
  Stmt s(db_, (std::string("SELECT ") + kEnvelopeColumns +
               " FROM envelopes WHERE terminal_id = ? AND seq >= ? ORDER BY seq LIMIT ?")
                  .c_str());
  if (!s.ok()) return std::unexpected(sql_error("read envelopes"));
  s.bind(1, id);
  s.bind(2, from);
  s.bind(3, static_cast<std::uint64_t>(limit));
  std::vector<StoredEnvelope> out;
  int rc;
  while ((rc = s.step()) == SQLITE_ROW) out.push_back(read_envelope(s));
  if (rc != SQLITE_DONE) return std::unexpected(sql_error("read envelopes"));
  return out;
}

Result<std::vector<ChainProof>> SqliteFleetStore::proofs(const std::string& id) {
  std::lock_guard lock(mu_);
  Stmt s(db_, "SELECT kind, seq, data FROM proofs WHERE terminal_id = ? ORDER BY seq, kind");
  if (!s.ok()) return std::unexpected(sql_error("read proofs"));
  s.bind(1, id);
  std::vector<ChainProof> out;
  int rc;
  while ((rc = s.step()) == SQLITE_ROW) {
    out.push_back(ChainProof{s.i64(0) == 1 ? ChainProof::Kind::drop : ChainProof::Kind::batch,
                             s.u64(1), s.blob(2)});
  }
  if (rc != SQLITE_DONE) return std::unexpected(sql_error("read proofs"));
  return out;
}

Result<std::optional<Telemetry>> SqliteFleetStore::latest(const std::string& id, int payload_type) {
  std::lock_guard lock(mu_);
  Stmt s(db_,
         "SELECT seq, time_ms, payload FROM telemetry WHERE terminal_id = ? AND payload_type = ? "
         "ORDER BY seq DESC LIMIT 1");
  if (!s.ok()) return std::unexpected(sql_error("read telemetry"));
  s.bind(1, id);
  s.bind(2, payload_type);
  const int rc = s.step();
  if (rc == SQLITE_DONE) return std::optional<Telemetry>{};
  if (rc != SQLITE_ROW) return std::unexpected(sql_error("read telemetry"));
  return std::optional<Telemetry>(
      Telemetry{id, s.u64(0), payload_type, from_ms(s.i64(1)), s.blob(2)});
}

Result<std::vector<AuditEntry>> SqliteFleetStore::audit(const std::string& id,
                                                        std::uint64_t from_record,
                                                        std::size_t limit) {
  std::lock_guard lock(mu_);
  Stmt s(db_,
         "SELECT record, seq, line FROM audit WHERE terminal_id = ? AND record >= ? "
         "ORDER BY record LIMIT ?");
  if (!s.ok()) return std::unexpected(sql_error("read audit"));
  s.bind(1, id);
  s.bind(2, from_record);
  s.bind(3, static_cast<std::uint64_t>(limit));
  std::vector<AuditEntry> out;
  int rc;
  while ((rc = s.step()) == SQLITE_ROW)
    out.push_back(AuditEntry{id, s.u64(0), s.u64(1), s.blob(2)});
  if (rc != SQLITE_DONE) return std::unexpected(sql_error("read audit"));
  return out;
}

Result<std::vector<CommandResultEntry>> SqliteFleetStore::results(const std::string& id,
                                                                  std::size_t limit) {
  std::lock_guard lock(mu_);
  Stmt s(db_,
         "SELECT seq, command_id, status, message, time_ms, result FROM command_results "
         "WHERE terminal_id = ? ORDER BY seq LIMIT ?");
  if (!s.ok()) return std::unexpected(sql_error("read command results"));
  s.bind(1, id);
  s.bind(2, static_cast<std::uint64_t>(limit));
  std::vector<CommandResultEntry> out;
  int rc;
  while ((rc = s.step()) == SQLITE_ROW) {
    out.push_back(CommandResultEntry{id, s.u64(0), s.blob(1), static_cast<int>(s.i64(2)), s.blob(3),
                                     from_ms(s.i64(4)), s.blob(5)});
  }
  if (rc != SQLITE_DONE) return std::unexpected(sql_error("read command results"));
  return out;
}

Result<void> SqliteFleetStore::add_sent_command(const SentCommand& c) {
  std::lock_guard lock(mu_);
  {
    Stmt t(db_, "SELECT 1 FROM terminals WHERE id = ?");
    if (!t.ok()) return std::unexpected(sql_error("record a sent command"));
    t.bind(1, c.terminal_id);
    const int rc = t.step();
    if (rc == SQLITE_DONE) {
      return fail(Errc::not_found, "fleet store", "terminal " + c.terminal_id, "unknown terminal");
    }
    if (rc != SQLITE_ROW) return std::unexpected(sql_error("record a sent command"));
  }
  Stmt s(db_,
         "INSERT OR IGNORE INTO sent_commands (terminal_id, command_id, digest, action, sent_ms) "
         "VALUES (?, ?, ?, ?, ?)");
  if (!s.ok()) return std::unexpected(sql_error("record a sent command"));
  s.bind(1, c.terminal_id);
  s.bind(2, c.command_id);
  s.bind_blob(3, c.digest);
  s.bind(4, c.action);
  s.bind(5, to_ms(c.sent));
  if (s.step() != SQLITE_DONE) return std::unexpected(sql_error("record a sent command"));
  return {};
}

Result<std::vector<SentCommandResult>> SqliteFleetStore::sent_results(const std::string& id,
                                                                      const std::string& action,
                                                                      std::size_t limit) {
  std::lock_guard lock(mu_);
  Stmt s(db_,
         "SELECT r.seq, r.command_id, r.status, r.message, r.time_ms, r.result, c.digest, "
         "c.sent_ms FROM command_results r JOIN sent_commands c "
         "ON c.terminal_id = r.terminal_id AND c.command_id = r.command_id "
         "WHERE r.terminal_id = ? AND c.action = ? ORDER BY r.seq DESC, c.sent_ms DESC LIMIT ?");
  if (!s.ok()) return std::unexpected(sql_error("read sent commands' results"));
  s.bind(1, id);
  s.bind(2, action);
  s.bind(3, static_cast<std::uint64_t>(limit));
  std::vector<SentCommandResult> out;
  int rc;
  while ((rc = s.step()) == SQLITE_ROW) {
    SentCommandResult r;
    r.result =
        CommandResultEntry{id,        s.u64(0),          s.blob(1), static_cast<int>(s.i64(2)),
                           s.blob(3), from_ms(s.i64(4)), s.blob(5)};
    r.command = SentCommand{id, r.result.command_id, s.blob(6), action, from_ms(s.i64(7))};
    out.push_back(std::move(r));
  }
  if (rc != SQLITE_DONE) return std::unexpected(sql_error("read sent commands' results"));
  return out;
}

Result<std::vector<Incident>> SqliteFleetStore::incidents(const std::string& id,
                                                          std::size_t limit) {
  std::lock_guard lock(mu_);
  Stmt s(db_,
         "SELECT * FROM (SELECT id, terminal_id, time_ms, kind, seq, detail, count FROM incidents "
         "WHERE ? = '' OR terminal_id = ? ORDER BY id DESC LIMIT ?) ORDER BY id");
  if (!s.ok()) return std::unexpected(sql_error("read incidents"));
  s.bind(1, id);
  s.bind(2, id);
  s.bind(3, static_cast<std::uint64_t>(limit));
  std::vector<Incident> out;
  int rc;
  while ((rc = s.step()) == SQLITE_ROW) {
    out.push_back(
        Incident{s.i64(0), s.blob(1), from_ms(s.i64(2)), s.blob(3), s.u64(4), s.blob(5), s.u64(6)});
  }
  if (rc != SQLITE_DONE) return std::unexpected(sql_error("read incidents"));
  return out;
}

Result<TerminalCounts> SqliteFleetStore::counts(const std::string& id) {
  std::lock_guard lock(mu_);
  Stmt s(db_,
         "SELECT (SELECT count(*) FROM envelopes WHERE terminal_id = ?1), "
         "(SELECT count(*) FROM audit WHERE terminal_id = ?1), "
         "(SELECT count(*) FROM command_results WHERE terminal_id = ?1), "
         "(SELECT coalesce(sum(count), 0) FROM incidents WHERE terminal_id = ?1), "
         "(SELECT coalesce(max(seq), 0) FROM envelopes WHERE terminal_id = ?1)");
  if (!s.ok()) return std::unexpected(sql_error("count"));
  s.bind(1, id);
  if (s.step() != SQLITE_ROW) return std::unexpected(sql_error("count"));
  return TerminalCounts{s.u64(0), s.u64(1), s.u64(2), s.u64(3), s.u64(4)};
}

}  // namespace portier::fleet
