#include "tools/fleet/sqlite_fleet_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <utility>

#include "common/sqlite/statement.h"
#include "common/sqlite/transaction.h"
#include "portier/v1/command.pb.h"

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

std::uint64_t u64(const sqlite::Statement& s, int column) {
  return static_cast<std::uint64_t>(s.column_int(column));
}

// Every row `s` returns, each made by `read`.
template <class Read>
auto collect(sqlite::Statement& s, Read read)
    -> Result<std::vector<decltype(read(std::as_const(s)))>> {
  std::vector<decltype(read(std::as_const(s)))> out;
  for (;;) {
    auto row = s.step();
    if (!row) return std::unexpected(row.error());
    if (!*row) return out;
    out.push_back(read(std::as_const(s)));
  }
}

constexpr const char* kTerminalColumns =
    "id, public_key_pem, key_algorithm, registered_ms, first_seen_ms, last_seen_ms, last_birth, "
    "session_epoch, online";

Terminal read_terminal(const sqlite::Statement& s) {
  Terminal t;
  t.id = s.column_bytes(0);
  t.public_key_pem = s.column_bytes(1);
  t.key_algorithm = s.column_bytes(2);
  t.registered = from_ms(s.column_int(3));
  if (!s.column_is_null(4)) t.first_seen = from_ms(s.column_int(4));
  if (!s.column_is_null(5)) t.last_seen = from_ms(s.column_int(5));
  t.last_birth = s.column_bytes(6);
  t.session_epoch = u64(s, 7);
  t.online = s.column_int(8) != 0;
  return t;
}

constexpr const char* kEnvelopeColumns =
    "terminal_id, seq, epoch, digest, payload_type, time_ms, received_ms, historical, envelope";

StoredEnvelope read_envelope(const sqlite::Statement& s) {
  StoredEnvelope e;
  e.terminal_id = s.column_bytes(0);
  e.sequence = u64(s, 1);
  e.session_epoch = u64(s, 2);
  e.digest = s.column_bytes(3);
  e.payload_type = static_cast<int>(s.column_int(4));
  e.time = from_ms(s.column_int(5));
  e.received = from_ms(s.column_int(6));
  e.historical = s.column_int(7) != 0;
  e.envelope = s.column_bytes(8);
  return e;
}

FleetStore::PendingLink read_link(const sqlite::Statement& s) {
  return FleetStore::PendingLink{u64(s, 0),
                                 s.column_bytes(1),
                                 s.column_bytes(2),
                                 u64(s, 3),
                                 static_cast<std::size_t>(s.column_int(4)),
                                 {}};
}

// Brings a store of schema `version` (older than kSchemaVersion) up to
// date, in one transaction.
Result<void> migrate(sqlite::Database& db, std::int64_t version) {
  auto tx = sqlite::Transaction::begin(db, "migrate the schema");
  if (!tx) return std::unexpected(tx.error());
  PORTIER_TRY(db.exec(kSchema, "create the tables"));
  if (version == 1) PORTIER_TRY(db.exec(kSchema2, "migrate the schema to version 2"));
  // A terminal_keys table of before version 3 (the CREATE above made
  // none, or one that has it already).
  auto has_cutover =
      db.query_int("SELECT COUNT(*) FROM pragma_table_info('terminal_keys') WHERE name = 'cutover'",
                   "schema of terminal_keys");
  if (!has_cutover) return std::unexpected(has_cutover.error());
  if (*has_cutover == 0) PORTIER_TRY(db.exec(kSchema3, "migrate the schema to version 3"));
  // A chains table of before version 4 (blobs of candidates and parked
  // envelopes).
  auto has_blobs =
      db.query_int("SELECT count(*) FROM pragma_table_info('chains') WHERE name = 'pending'",
                   "schema of chains");
  if (!has_blobs) return std::unexpected(has_blobs.error());
  if (*has_blobs != 0) PORTIER_TRY(db.exec(kSchema4, "migrate the schema to version 4"));
  PORTIER_TRY(db.exec(kTallyIndex));
  PORTIER_TRY(db.exec(("PRAGMA user_version=" + std::to_string(kSchemaVersion)).c_str()));
  return tx->commit("migrate the schema");
}

}  // namespace

Result<std::unique_ptr<SqliteFleetStore>> SqliteFleetStore::open(const std::string& path) {
  // Created 0600 before SQLite opens it (its -wal and -shm files take the
  // database file's mode): terminals' records are the operator's only.
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return fail_errno(Errc::io, "fleet store " + path, "cannot open", errno);
  ::close(fd);
  auto db = sqlite::Database::open(path, {.where = "fleet store " + path,
                                          .busy_timeout = std::chrono::milliseconds(10000),
                                          .wal = true,
                                          .synchronous_full = true,
                                          .pragmas = {"PRAGMA foreign_keys=ON"}});
  if (!db) return std::unexpected(db.error());
  auto version = db->query_int("PRAGMA user_version", "schema version");
  if (!version) return std::unexpected(version.error());
  if (*version > kSchemaVersion) {
    return fail(Errc::failed_precondition, "fleet store " + path, "schema",
                "version " + std::to_string(*version) + " is newer than this portier-fleet's (" +
                    std::to_string(kSchemaVersion) + ")");
  }
  if (*version < kSchemaVersion) PORTIER_TRY(migrate(*db, *version));
  return std::unique_ptr<SqliteFleetStore>(new SqliteFleetStore(path, std::move(*db)));
}

SqliteFleetStore::~SqliteFleetStore() = default;

Result<void> SqliteFleetStore::add_terminal(const Terminal& t) {
  std::lock_guard lock(mu_);
  const std::string what = "add terminal " + t.id;
  auto s = db_.prepare(
      "INSERT INTO terminals (id, public_key_pem, key_algorithm, registered_ms, "
      "session_epoch, online) VALUES (?, ?, ?, ?, 0, 0)",
      what);
  if (!s) return std::unexpected(s.error());
  auto done = s->bind_text(1, t.id)
                  .bind_text(2, t.public_key_pem)
                  .bind_text(3, t.key_algorithm)
                  .bind_int(4, to_ms(t.registered))
                  .run();
  if (!done && db_.constraint_failed()) {
    return fail(Errc::already_exists, "fleet store", "terminal " + t.id, "already registered");
  }
  return done;
}

Result<void> SqliteFleetStore::set_next_key(const std::string& id,
                                            const std::string& public_key_pem,
                                            std::uint64_t cutover) {
  std::lock_guard lock(mu_);
  const std::string what = "next key of " + id;
  auto tx = sqlite::Transaction::begin(db_, what);
  if (!tx) return std::unexpected(tx.error());
  {
    auto t = db_.prepare("SELECT 1 FROM terminals WHERE id = ?", "read terminal");
    if (!t) return std::unexpected(t.error());
    auto row = t->bind_text(1, id).step();
    if (!row) return std::unexpected(row.error());
    if (!*row) return fail(Errc::not_found, "fleet store", "terminal " + id, "unknown");
  }
  if (cutover != 0) {
    // The chain must not have passed the cutover: what it holds from there
    // on was signed by the old key, which the terminal says it no longer
    // uses.
    auto c = db_.prepare("SELECT next_seq FROM chains WHERE terminal_id = ?", "read chain");
    if (!c) return std::unexpected(c.error());
    auto row = c->bind_text(1, id).step();
    if (!row) return std::unexpected(row.error());
    if (*row && u64(*c, 0) > cutover) {
      return fail(Errc::failed_precondition, "fleet store", "terminal " + id,
                  "its chain already holds sequences " + std::to_string(cutover) + ".." +
                      std::to_string(u64(*c, 0) - 1) +
                      " signed by its current key, at or after the cutover " +
                      std::to_string(cutover) +
                      " the rotation names: someone else signs with that key");
    }
  }
  // The chain's version moves, so that a receiver that loaded the keys
  // before this commits nothing: not what the old key signed past the
  // cutover, nor a takeover by a next key this one replaces.
  for (const char* sql : {"UPDATE chains SET version = version + 1 WHERE terminal_id = ?",
                          "DELETE FROM terminal_keys WHERE terminal_id = ? AND from_seq = 0"}) {
    auto s = db_.prepare(sql, what);
    if (!s) return std::unexpected(s.error());
    PORTIER_TRY(s->bind_text(1, id).run());
  }
  {
    auto s = db_.prepare(
        "INSERT INTO terminal_keys (terminal_id, public_key_pem, from_seq, cutover) "
        "VALUES (?, ?, 0, ?) ON CONFLICT DO NOTHING",
        what);
    if (!s) return std::unexpected(s.error());
    PORTIER_TRY(s->bind_text(1, id).bind_text(2, public_key_pem).bind_int(3, cutover).run());
  }
  return tx->commit(what);
}

Result<std::vector<TerminalKey>> SqliteFleetStore::keys(const std::string& id) {
  std::lock_guard lock(mu_);
  const std::string what = "read keys of " + id;
  auto s = db_.prepare(
      "SELECT public_key_pem, from_seq, cutover FROM terminal_keys WHERE terminal_id = ? "
      "ORDER BY from_seq = 0, from_seq",
      what);
  if (!s) return std::unexpected(s.error());
  s->bind_text(1, id);
  return collect(*s, [](const sqlite::Statement& r) {
    return TerminalKey{r.column_bytes(0), u64(r, 1), u64(r, 2)};
  });
}

Result<Terminal> SqliteFleetStore::terminal(const std::string& id) {
  std::lock_guard lock(mu_);
  const std::string what = "read terminal " + id;
  auto s = db_.prepare(
      (std::string("SELECT ") + kTerminalColumns + " FROM terminals WHERE id = ?").c_str(), what);
  if (!s) return std::unexpected(s.error());
  auto row = s->bind_text(1, id).step();
  if (!row) return std::unexpected(row.error());
  if (!*row) return fail(Errc::not_found, "fleet store", "terminal " + id, "unknown");
  return read_terminal(*s);
}

Result<std::vector<Terminal>> SqliteFleetStore::terminals() {
  std::lock_guard lock(mu_);
  auto s = db_.prepare(
      (std::string("SELECT ") + kTerminalColumns + " FROM terminals ORDER BY id").c_str(),
      "list terminals");
  if (!s) return std::unexpected(s.error());
  return collect(*s, read_terminal);
}

Result<bool> SqliteFleetStore::mark_offline(const std::string& id, std::uint64_t epoch,
                                            TimePoint now) {
  std::lock_guard lock(mu_);
  const std::string what = "mark " + id + " offline";
  auto s = db_.prepare(
      "UPDATE terminals SET online = 0, session_epoch = ?, last_seen_ms = ? "
      "WHERE id = ? AND session_epoch <= ?",
      what);
  if (!s) return std::unexpected(s.error());
  PORTIER_TRY(
      s->bind_int(1, epoch).bind_int(2, to_ms(now)).bind_text(3, id).bind_int(4, epoch).run());
  return db_.changes() == 1;
}

Result<ChainRecord> SqliteFleetStore::chain(const std::string& id) {
  std::lock_guard lock(mu_);
  return read_chain(id, true);
}

Result<ChainRecord> SqliteFleetStore::chain_state(const std::string& id) {
  std::lock_guard lock(mu_);
  return read_chain(id, false);
}

Result<std::vector<FleetStore::PendingLink>> SqliteFleetStore::read_pending(const char* sql,
                                                                            const std::string& id,
                                                                            std::int64_t a,
                                                                            std::int64_t b) {
  const std::string what = "read candidates of " + id;
  auto p = db_.prepare(sql, what);
  if (!p) return std::unexpected(p.error());
  p->bind_text(1, id).bind_int(2, a).bind_int(3, b);
  return collect(*p, read_link);
}

Result<std::optional<FleetStore::PendingLink>> SqliteFleetStore::pending_find(
    const std::string& id, std::uint64_t sequence, const std::string& digest) {
  std::lock_guard lock(mu_);
  const std::string what = "read candidate of " + id;
  auto p = db_.prepare(
      "SELECT seq, digest, prev, arrival, size FROM candidates "
      "WHERE terminal_id = ? AND seq = ? AND digest = ?",
      what);
  if (!p) return std::unexpected(p.error());
  auto row = p->bind_text(1, id).bind_int(2, sequence).bind_blob(3, digest).step();
  if (!row) return std::unexpected(row.error());
  if (!*row) return std::optional<PendingLink>{};
  return std::optional<PendingLink>(read_link(*p));
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
  const std::string what = "read chain of " + id;
  // One read transaction: the chain and its candidates as of one commit.
  auto tx = sqlite::Transaction::begin_read(db_, what);
  if (!tx) return std::unexpected(tx.error());
  ChainRecord c;
  {
    auto s = db_.prepare(
        "SELECT version, epoch, next_seq, prev_digest, parked_batches, pending_count, "
        "pending_bytes FROM chains WHERE terminal_id = ?",
        what);
    if (!s) return std::unexpected(s.error());
    auto row = s->bind_text(1, id).step();
    if (!row) return std::unexpected(row.error());
    if (!*row) {
      PORTIER_TRY(tx->commit(what));
      return c;
    }
    c.version = u64(*s, 0);
    c.state.session_epoch = u64(*s, 1);
    c.state.next_sequence = u64(*s, 2);
    const auto d = s->column_bytes(3);
    c.state.prev_digest.assign(d.begin(), d.end());
    auto batches = unpack(s->column_bytes(4));
    if (!batches || c.state.next_sequence == 0 || d.size() != 32) {
      return fail(Errc::failed_precondition, "fleet store " + path_, "chain of " + id, "corrupt");
    }
    c.parked_batches = std::move(*batches);
    c.pending_summary.count = static_cast<std::size_t>(s->column_int(5));
    c.pending_summary.bytes = static_cast<std::size_t>(s->column_int(6));
  }
  {
    const std::string parked = "read parked of " + id;
    auto h = db_.prepare(
        "SELECT key, seq, bridge, size FROM parked WHERE terminal_id = ? ORDER BY id", parked);
    if (!h) return std::unexpected(h.error());
    h->bind_text(1, id);
    auto held = collect(*h, [](const sqlite::Statement& r) {
      return ParkedEnvelope{r.column_bytes(0),
                            u64(r, 1),
                            r.column_int(2) != 0,
                            static_cast<std::size_t>(r.column_int(3)),
                            {}};
    });
    if (!held) return std::unexpected(held.error());
    c.parked = std::move(*held);
  }
  // The candidates: their summary (count and bytes kept in the chain row,
  // the highest sequence and arrival from the indexes: no scan), and their
  // index (not their envelopes, read when covered) when asked.
  const std::string candidates = "read candidates of " + id;
  auto highest = [&](const char* sql) -> Result<std::uint64_t> {
    auto m = db_.prepare(sql, candidates);
    if (!m) return std::unexpected(m.error());
    auto row = m->bind_text(1, id).step();
    if (!row) return std::unexpected(row.error());
    return *row ? u64(*m, 0) : 0;  // NULL (none): 0
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
  PORTIER_TRY(tx->commit(what));
  return c;
}

Result<std::string> SqliteFleetStore::parked_envelope(const std::string& id,
                                                      const std::string& key) {
  std::lock_guard lock(mu_);
  const std::string what = "read parked of " + id;
  auto s = db_.prepare("SELECT envelope FROM parked WHERE terminal_id = ? AND key = ?", what);
  if (!s) return std::unexpected(s.error());
  auto row = s->bind_text(1, id).bind_blob(2, key).step();
  if (!row) return std::unexpected(row.error());
  if (!*row) {
    return fail(Errc::not_found, "fleet store " + path_, "parked envelope of " + id,
                "not held past a gap (any more)");
  }
  return s->column_bytes(0);
}

Result<std::string> SqliteFleetStore::pending_envelope(const std::string& id,
                                                       std::uint64_t sequence,
                                                       const std::string& digest) {
  std::lock_guard lock(mu_);
  const std::string what = "read candidate of " + id;
  auto s = db_.prepare(
      "SELECT envelope FROM candidates WHERE terminal_id = ? AND seq = ? AND digest = ?", what);
  if (!s) return std::unexpected(s.error());
  auto row = s->bind_text(1, id).bind_int(2, sequence).bind_blob(3, digest).step();
  if (!row) return std::unexpected(row.error());
  if (!*row) {
    return fail(Errc::not_found, "fleet store " + path_,
                "candidate " + std::to_string(sequence) + " of " + id,
                "not waiting for a signature (any more)");
  }
  return s->column_bytes(0);
}

Result<void> SqliteFleetStore::insert_incident(const Incident& i) {
  auto s = db_.prepare(
      "INSERT INTO incidents (terminal_id, time_ms, kind, seq, detail) VALUES (?, ?, ?, ?, ?)",
      "add incident");
  if (!s) return std::unexpected(s.error());
  return s->bind_text(1, i.terminal_id)
      .bind_int(2, to_ms(i.time))
      .bind_text(3, i.kind)
      .bind_int(4, i.sequence)
      .bind_text(5, i.detail)
      .run();
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
    auto s = db_.prepare(
        "UPDATE incidents SET count = count + ? "
        "WHERE bucket = ? AND kind = ? AND terminal_id = ?",
        "tally incident");
    if (!s) return std::unexpected(s.error());
    PORTIER_TRY(s->bind_int(1, i.count)
                    .bind_int(2, bucket)
                    .bind_text(3, i.kind)
                    .bind_text(4, terminal)
                    .run());
    return db_.changes() > 0;
  };
  auto insert = [&](const std::string& terminal, const std::string& detail) -> Result<void> {
    auto s = db_.prepare(
        "INSERT INTO incidents (terminal_id, time_ms, kind, seq, detail, count, bucket) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        "tally incident");
    if (!s) return std::unexpected(s.error());
    return s->bind_text(1, terminal)
        .bind_int(2, t)
        .bind_text(3, i.kind)
        .bind_int(4, i.sequence)
        .bind_text(5, detail)
        .bind_int(6, i.count)
        .bind_int(7, bucket)
        .run();
  };
  auto added = add_to(i.terminal_id);
  if (!added) return std::unexpected(added.error());
  if (*added) return {};
  std::uint64_t terminals = 0;  // with a row of their own for this kind and interval
  {
    auto n = db_.prepare(
        "SELECT count(*) FROM incidents WHERE bucket = ? AND kind = ? AND terminal_id != ?",
        "tally incident");
    if (!n) return std::unexpected(n.error());
    auto row = n->bind_int(1, bucket).bind_text(2, i.kind).bind_text(3, kOtherTerminals).step();
    if (!row) return std::unexpected(row.error());
    if (!*row) return fail(Errc::internal, db_.where(), "tally incident", "no row returned");
    terminals = u64(*n, 0);
  }
  if (terminals < tally.max_terminals) return insert(i.terminal_id, i.detail);
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
  auto tx = sqlite::Transaction::begin(db_, "tally incidents");
  if (!tx) return std::unexpected(tx.error());
  for (auto& i : incidents) PORTIER_TRY(tally_incident(i, tally));
  return tx->commit("tally incidents");
}

Result<void> SqliteFleetStore::write_chain(const Commit& c) {
  const auto& st = c.chain.state;
  const std::string prev(st.prev_digest.begin(), st.prev_digest.end());
  if (!c.chain_changed) {
    // Nothing moved: only that nobody else moved it either.
    auto s = db_.prepare("SELECT version FROM chains WHERE terminal_id = ?", "check chain");
    if (!s) return std::unexpected(s.error());
    auto row = s->bind_text(1, c.terminal_id).step();
    if (!row) return std::unexpected(row.error());
    if ((*row ? u64(*s, 0) : 0) != c.expected_version) {
      return fail(Errc::aborted, "fleet store", "chain of " + c.terminal_id,
                  "changed by another receiver since it was loaded");
    }
    return {};
  }
  if (c.expected_version == 0) {
    auto s = db_.prepare(
        "INSERT INTO chains (terminal_id, version, epoch, next_seq, prev_digest, "
        "parked_batches) VALUES (?, 1, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        "write chain");
    if (!s) return std::unexpected(s.error());
    PORTIER_TRY(s->bind_text(1, c.terminal_id)
                    .bind_int(2, st.session_epoch)
                    .bind_int(3, st.next_sequence)
                    .bind_blob(4, prev)
                    .bind_blob(5, pack(c.chain.parked_batches))
                    .run());
  } else if (c.batches_changed) {
    auto s = db_.prepare(
        "UPDATE chains SET version = version + 1, epoch = ?, next_seq = ?, prev_digest = ?, "
        "parked_batches = ? WHERE terminal_id = ? AND version = ?",
        "write chain");
    if (!s) return std::unexpected(s.error());
    PORTIER_TRY(s->bind_int(1, st.session_epoch)
                    .bind_int(2, st.next_sequence)
                    .bind_blob(3, prev)
                    .bind_blob(4, pack(c.chain.parked_batches))
                    .bind_text(5, c.terminal_id)
                    .bind_int(6, c.expected_version)
                    .run());
  } else {
    auto s = db_.prepare(
        "UPDATE chains SET version = version + 1, epoch = ?, next_seq = ?, prev_digest = ? "
        "WHERE terminal_id = ? AND version = ?",
        "write chain");
    if (!s) return std::unexpected(s.error());
    PORTIER_TRY(s->bind_int(1, st.session_epoch)
                    .bind_int(2, st.next_sequence)
                    .bind_blob(3, prev)
                    .bind_text(4, c.terminal_id)
                    .bind_int(5, c.expected_version)
                    .run());
  }
  if (db_.changes() != 1) {
    return fail(Errc::aborted, "fleet store", "chain of " + c.terminal_id,
                "changed by another receiver since it was loaded");
  }
  {
    auto n =
        db_.prepare("UPDATE chains SET pending_count = ?, pending_bytes = ? WHERE terminal_id = ?",
                    "write chain");
    if (!n) return std::unexpected(n.error());
    PORTIER_TRY(n->bind_int(1, static_cast<std::int64_t>(c.chain.pending_summary.count))
                    .bind_int(2, static_cast<std::int64_t>(c.chain.pending_summary.bytes))
                    .bind_text(3, c.terminal_id)
                    .run());
  }
  // The candidates that changed, one row each.
  for (auto& [seq, digest] : c.pending_removed) {
    auto s = db_.prepare("DELETE FROM candidates WHERE terminal_id = ? AND seq = ? AND digest = ?",
                         "remove candidate");
    if (!s) return std::unexpected(s.error());
    PORTIER_TRY(s->bind_text(1, c.terminal_id).bind_int(2, seq).bind_blob(3, digest).run());
  }
  for (auto& l : c.pending_added) {
    auto s = db_.prepare(
        "INSERT OR REPLACE INTO candidates (terminal_id, seq, digest, prev, arrival, size, "
        "envelope) VALUES (?, ?, ?, ?, ?, ?, ?)",
        "add candidate");
    if (!s) return std::unexpected(s.error());
    PORTIER_TRY(s->bind_text(1, c.terminal_id)
                    .bind_int(2, l.sequence)
                    .bind_blob(3, l.digest)
                    .bind_blob(4, l.prev)
                    .bind_int(5, l.arrival)
                    .bind_int(6, static_cast<std::int64_t>(l.envelope.size()))
                    .bind_blob(7, l.envelope)
                    .run());
  }
  for (auto& key : c.parked_removed) {
    auto s = db_.prepare("DELETE FROM parked WHERE terminal_id = ? AND key = ?", "remove parked");
    if (!s) return std::unexpected(s.error());
    PORTIER_TRY(s->bind_text(1, c.terminal_id).bind_blob(2, key).run());
  }
  for (auto& p : c.parked_added) {
    auto s = db_.prepare(
        "INSERT OR REPLACE INTO parked (terminal_id, key, seq, bridge, size, envelope) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        "add parked");
    if (!s) return std::unexpected(s.error());
    PORTIER_TRY(s->bind_text(1, c.terminal_id)
                    .bind_blob(2, p.key)
                    .bind_int(3, p.sequence)
                    .bind_int(4, p.bridge ? 1 : 0)
                    .bind_int(5, static_cast<std::int64_t>(p.envelope.size()))
                    .bind_blob(6, p.envelope)
                    .run());
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
      auto h = db_.prepare(
          "INSERT INTO terminal_keys (terminal_id, public_key_pem, from_seq) "
          "SELECT id, public_key_pem, 1 FROM terminals WHERE id = ? ON CONFLICT DO NOTHING",
          "key history");
      if (!h) return std::unexpected(h.error());
      PORTIER_TRY(h->bind_text(1, c.terminal_id).run());
    }
    {
      auto n = db_.prepare(
          "UPDATE terminal_keys SET from_seq = ? WHERE terminal_id = ? AND from_seq = 0",
          "key history");
      if (!n) return std::unexpected(n.error());
      PORTIER_TRY(n->bind_int(1, c.next_key_from).bind_text(2, c.terminal_id).run());
    }
    if (db_.changes() != 1) {
      return fail(Errc::aborted, "fleet store", "next key of " + c.terminal_id,
                  "taken or replaced by another receiver since it was loaded");
    }
    auto t = db_.prepare(
        "UPDATE terminals SET public_key_pem = (SELECT public_key_pem FROM terminal_keys "
        "WHERE terminal_id = ? AND from_seq = ?) WHERE id = ?",
        "key history");
    if (!t) return std::unexpected(t.error());
    PORTIER_TRY(t->bind_text(1, c.terminal_id)
                    .bind_int(2, c.next_key_from)
                    .bind_text(3, c.terminal_id)
                    .run());
  }
  for (auto& e : c.envelopes) {
    const std::string what = "store envelope " + std::to_string(e.sequence);
    auto s = db_.prepare((std::string("INSERT INTO envelopes (") + kEnvelopeColumns +
                          ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
                             .c_str(),
                         what);
    if (!s) return std::unexpected(s.error());
    PORTIER_TRY(s->bind_text(1, e.terminal_id)
                    .bind_int(2, e.sequence)
                    .bind_int(3, e.session_epoch)
                    .bind_blob(4, e.digest)
                    .bind_int(5, e.payload_type)
                    .bind_int(6, to_ms(e.time))
                    .bind_int(7, to_ms(e.received))
                    .bind_int(8, e.historical ? 1 : 0)
                    .bind_blob(9, e.envelope)
                    .run());
  }
  for (auto& t : c.telemetry) {
    auto s = db_.prepare(
        "INSERT INTO telemetry (terminal_id, seq, payload_type, time_ms, payload) "
        "VALUES (?, ?, ?, ?, ?)",
        "store telemetry");
    if (!s) return std::unexpected(s.error());
    PORTIER_TRY(s->bind_text(1, t.terminal_id)
                    .bind_int(2, t.sequence)
                    .bind_int(3, t.payload_type)
                    .bind_int(4, to_ms(t.time))
                    .bind_blob(5, t.payload)
                    .run());
  }
  for (auto& a : c.audit) {
    auto s = db_.prepare(
        "INSERT INTO audit (terminal_id, record, seq, line) VALUES (?, ?, ?, ?) "
        "ON CONFLICT DO NOTHING",
        "store audit");
    if (!s) return std::unexpected(s.error());
    PORTIER_TRY(s->bind_text(1, a.terminal_id)
                    .bind_int(2, a.record)
                    .bind_int(3, a.sequence)
                    .bind_text(4, a.line)
                    .run());
  }
  for (auto& r : c.results) {
    auto s = db_.prepare(
        "INSERT INTO command_results (terminal_id, seq, command_id, status, message, time_ms, "
        "result) VALUES (?, ?, ?, ?, ?, ?, ?)",
        "store command result");
    if (!s) return std::unexpected(s.error());
    PORTIER_TRY(s->bind_text(1, r.terminal_id)
                    .bind_int(2, r.sequence)
                    .bind_text(3, r.command_id)
                    .bind_int(4, r.status)
                    .bind_text(5, r.message)
                    .bind_int(6, to_ms(r.time))
                    .bind_blob(7, r.result)
                    .run());
  }
  for (auto& p : c.proofs) {
    auto s = db_.prepare(
        "INSERT OR REPLACE INTO proofs (terminal_id, kind, seq, data) VALUES (?, ?, ?, ?)",
        "store proof");
    if (!s) return std::unexpected(s.error());
    PORTIER_TRY(s->bind_text(1, c.terminal_id)
                    .bind_int(2, static_cast<int>(p.kind))
                    .bind_int(3, p.sequence)
                    .bind_blob(4, p.data)
                    .run());
  }
  for (auto& i : c.incidents) PORTIER_TRY(insert_incident(i));
  for (auto& i : c.tallied) PORTIER_TRY(tally_incident(i, c.tally));
  if (c.seen) {
    auto s = db_.prepare(
        "UPDATE terminals SET last_seen_ms = ?, first_seen_ms = coalesce(first_seen_ms, ?), "
        "online = 1, session_epoch = max(session_epoch, ?), "
        "last_birth = CASE WHEN length(?) > 0 THEN ? ELSE last_birth END WHERE id = ?",
        "update terminal");
    if (!s) return std::unexpected(s.error());
    PORTIER_TRY(s->bind_int(1, to_ms(*c.seen))
                    .bind_int(2, to_ms(*c.seen))
                    .bind_int(3, c.session_epoch)
                    .bind_blob(4, c.birth)
                    .bind_blob(5, c.birth)
                    .bind_text(6, c.terminal_id)
                    .run());
  }
  return {};
}

Result<void> SqliteFleetStore::commit(const Commit& c) {
  std::lock_guard lock(mu_);
  // IMMEDIATE: the version check and the writes under one write lock,
  // against every other receiver on the file.
  auto tx = sqlite::Transaction::begin(db_, "begin a commit");
  if (!tx) return std::unexpected(tx.error());
  PORTIER_TRY(write(c));
  return tx->commit("commit");
}

Result<std::optional<StoredEnvelope>> SqliteFleetStore::envelope(const std::string& id,
                                                                 std::uint64_t sequence) {
  std::lock_guard lock(mu_);
  auto s = db_.prepare((std::string("SELECT ") + kEnvelopeColumns +
                        " FROM envelopes WHERE terminal_id = ? AND seq = ?")
                           .c_str(),
                       "read envelope");
  if (!s) return std::unexpected(s.error());
  auto row = s->bind_text(1, id).bind_int(2, sequence).step();
  if (!row) return std::unexpected(row.error());
  if (!*row) return std::optional<StoredEnvelope>{};
  return std::optional<StoredEnvelope>(read_envelope(*s));
}

Result<std::vector<StoredEnvelope>> SqliteFleetStore::envelopes(const std::string& id,
                                                                std::uint64_t from,
                                                                std::size_t limit) {
  std::lock_guard lock(mu_);
  auto s = db_.prepare((std::string("SELECT ") + kEnvelopeColumns +
                        " FROM envelopes WHERE terminal_id = ? AND seq >= ? ORDER BY seq LIMIT ?")
                           .c_str(),
                       "read envelopes");
  if (!s) return std::unexpected(s.error());
  s->bind_text(1, id).bind_int(2, from).bind_int(3, static_cast<std::int64_t>(limit));
  return collect(*s, read_envelope);
}

Result<std::vector<ChainProof>> SqliteFleetStore::proofs(const std::string& id) {
  std::lock_guard lock(mu_);
  auto s = db_.prepare(
      "SELECT kind, seq, data FROM proofs WHERE terminal_id = ? ORDER BY seq, kind", "read proofs");
  if (!s) return std::unexpected(s.error());
  s->bind_text(1, id);
  return collect(*s, [](const sqlite::Statement& r) {
    return ChainProof{r.column_int(0) == 1 ? ChainProof::Kind::drop : ChainProof::Kind::batch,
                      u64(r, 1), r.column_bytes(2)};
  });
}

Result<std::optional<Telemetry>> SqliteFleetStore::latest(const std::string& id, int payload_type) {
  std::lock_guard lock(mu_);
  auto s = db_.prepare(
      "SELECT seq, time_ms, payload FROM telemetry WHERE terminal_id = ? AND payload_type = ? "
      "ORDER BY seq DESC LIMIT 1",
      "read telemetry");
  if (!s) return std::unexpected(s.error());
  auto row = s->bind_text(1, id).bind_int(2, payload_type).step();
  if (!row) return std::unexpected(row.error());
  if (!*row) return std::optional<Telemetry>{};
  return std::optional<Telemetry>(
      Telemetry{id, u64(*s, 0), payload_type, from_ms(s->column_int(1)), s->column_bytes(2)});
}

Result<std::vector<AuditEntry>> SqliteFleetStore::audit(const std::string& id,
                                                        std::uint64_t from_record,
                                                        std::size_t limit) {
  std::lock_guard lock(mu_);
  auto s = db_.prepare(
      "SELECT record, seq, line FROM audit WHERE terminal_id = ? AND record >= ? "
      "ORDER BY record LIMIT ?",
      "read audit");
  if (!s) return std::unexpected(s.error());
  s->bind_text(1, id).bind_int(2, from_record).bind_int(3, static_cast<std::int64_t>(limit));
  return collect(*s, [&](const sqlite::Statement& r) {
    return AuditEntry{id, u64(r, 0), u64(r, 1), r.column_bytes(2)};
  });
}

Result<std::vector<CommandResultEntry>> SqliteFleetStore::results(const std::string& id,
                                                                  std::size_t limit) {
  std::lock_guard lock(mu_);
  auto s = db_.prepare(
      "SELECT seq, command_id, status, message, time_ms, result FROM command_results "
      "WHERE terminal_id = ? ORDER BY seq LIMIT ?",
      "read command results");
  if (!s) return std::unexpected(s.error());
  s->bind_text(1, id).bind_int(2, static_cast<std::int64_t>(limit));
  return collect(*s, [&](const sqlite::Statement& r) {
    return CommandResultEntry{id,
                              u64(r, 0),
                              r.column_bytes(1),
                              static_cast<int>(r.column_int(2)),
                              r.column_bytes(3),
                              from_ms(r.column_int(4)),
                              r.column_bytes(5)};
  });
}

Result<void> SqliteFleetStore::add_sent_command(const SentCommand& c) {
  std::lock_guard lock(mu_);
  {
    auto t = db_.prepare("SELECT 1 FROM terminals WHERE id = ?", "record a sent command");
    if (!t) return std::unexpected(t.error());
    auto row = t->bind_text(1, c.terminal_id).step();
    if (!row) return std::unexpected(row.error());
    if (!*row) {
      return fail(Errc::not_found, "fleet store", "terminal " + c.terminal_id, "unknown terminal");
    }
  }
  auto s = db_.prepare(
      "INSERT OR IGNORE INTO sent_commands (terminal_id, command_id, digest, action, sent_ms) "
      "VALUES (?, ?, ?, ?, ?)",
      "record a sent command");
  if (!s) return std::unexpected(s.error());
  return s->bind_text(1, c.terminal_id)
      .bind_text(2, c.command_id)
      .bind_blob(3, c.digest)
      .bind_text(4, c.action)
      .bind_int(5, to_ms(c.sent))
      .run();
}

Result<std::vector<SentCommandResult>> SqliteFleetStore::sent_results(const std::string& id,
                                                                      const std::string& action,
                                                                      std::size_t limit) {
  std::lock_guard lock(mu_);
  auto s = db_.prepare(
      // Each command's first answer of each kind only: the terminal answers
      // a replayed command with its first result again (the same bytes,
      // later sequences), so a broker replaying an old command can neither
      // push another command's result out of the limit nor make the old
      // one look newest. Only OK results: a refusal (of a forged command
      // naming any id) never counts, so forgeries cannot fill the limit.
      "SELECT r.seq, r.command_id, r.status, r.message, r.time_ms, r.result, c.digest, "
      "c.sent_ms FROM command_results r JOIN sent_commands c "
      "ON c.terminal_id = r.terminal_id AND c.command_id = r.command_id "
      "JOIN (SELECT MIN(r2.seq) AS first FROM command_results r2 "
      "JOIN sent_commands c2 ON c2.terminal_id = r2.terminal_id AND c2.command_id = r2.command_id "
      "WHERE r2.terminal_id = ?1 AND c2.action = ?2 AND r2.status = ?4 "
      "GROUP BY r2.command_id, r2.result) f ON f.first = r.seq "
      "WHERE r.terminal_id = ?1 ORDER BY r.seq DESC, c.sent_ms DESC LIMIT ?3",
      "read sent commands' results");
  if (!s) return std::unexpected(s.error());
  s->bind_text(1, id).bind_text(2, action).bind_int(3, static_cast<std::int64_t>(limit));
  s->bind_int(4, v1::CommandResult::OK);
  return collect(*s, [&](const sqlite::Statement& r) {
    SentCommandResult out;
    out.result = CommandResultEntry{id,
                                    u64(r, 0),
                                    r.column_bytes(1),
                                    static_cast<int>(r.column_int(2)),
                                    r.column_bytes(3),
                                    from_ms(r.column_int(4)),
                                    r.column_bytes(5)};
    out.command =
        SentCommand{id, out.result.command_id, r.column_bytes(6), action, from_ms(r.column_int(7))};
    return out;
  });
}

Result<std::vector<Incident>> SqliteFleetStore::incidents(const std::string& id,
                                                          std::size_t limit) {
  std::lock_guard lock(mu_);
  auto s = db_.prepare(
      "SELECT * FROM (SELECT id, terminal_id, time_ms, kind, seq, detail, count FROM incidents "
      "WHERE ? = '' OR terminal_id = ? ORDER BY id DESC LIMIT ?) ORDER BY id",
      "read incidents");
  if (!s) return std::unexpected(s.error());
  s->bind_text(1, id).bind_text(2, id).bind_int(3, static_cast<std::int64_t>(limit));
  return collect(*s, [](const sqlite::Statement& r) {
    return Incident{r.column_int(0),   r.column_bytes(1), from_ms(r.column_int(2)),
                    r.column_bytes(3), u64(r, 4),         r.column_bytes(5),
                    u64(r, 6)};
  });
}

Result<TerminalCounts> SqliteFleetStore::counts(const std::string& id) {
  std::lock_guard lock(mu_);
  auto s = db_.prepare(
      "SELECT (SELECT count(*) FROM envelopes WHERE terminal_id = ?1), "
      "(SELECT count(*) FROM audit WHERE terminal_id = ?1), "
      "(SELECT count(*) FROM command_results WHERE terminal_id = ?1), "
      "(SELECT coalesce(sum(count), 0) FROM incidents WHERE terminal_id = ?1), "
      "(SELECT coalesce(max(seq), 0) FROM envelopes WHERE terminal_id = ?1)",
      "count");
  if (!s) return std::unexpected(s.error());
  auto row = s->bind_text(1, id).step();
  if (!row) return std::unexpected(row.error());
  if (!*row) return fail(Errc::internal, db_.where(), "count", "no row returned");
  return TerminalCounts{u64(*s, 0), u64(*s, 1), u64(*s, 2), u64(*s, 3), u64(*s, 4)};
}

}  // namespace portier::fleet
