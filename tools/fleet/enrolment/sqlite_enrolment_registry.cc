#include "tools/fleet/enrolment/sqlite_enrolment_registry.h"

#include <algorithm>

#include "common/sqlite/statement.h"
#include "common/sqlite/transaction.h"

namespace portier::fleet {
namespace {

constexpr const char* kSchema = R"sql(
PRAGMA journal_mode = WAL;
PRAGMA synchronous = FULL;
CREATE TABLE IF NOT EXISTS expected_devices (
  serial TEXT PRIMARY KEY,
  secret BLOB NOT NULL,
  terminal_id TEXT,
  public_key_pem TEXT,
  certificate BLOB,
  rotation_allowed INTEGER NOT NULL DEFAULT 0,
  previous_key_pem TEXT,
  rotation_pending_since INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS enrolment_refusals (
  id INTEGER PRIMARY KEY,
  at_unix INTEGER NOT NULL,
  serial TEXT NOT NULL,
  terminal_id TEXT NOT NULL,
  reason TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS enrolment_refusals_serial ON enrolment_refusals(serial);
)sql";

crypto::Bytes to_bytes(crypto::ByteView b) { return crypto::Bytes(b.begin(), b.end()); }

}  // namespace

Result<std::unique_ptr<SqliteEnrolmentRegistry>> SqliteEnrolmentRegistry::open(
    const std::string& path) {
  // Errors read "<path>: enrolment registry: <what>: <SQLite's reason>".
  auto db = sqlite::Database::open(path, {.where = path,
                                          .create = true,
                                          .serialized = true,
                                          .busy_timeout = std::chrono::milliseconds(5000)});
  if (!db) {
    Error e = db.error();
    e.what = "enrolment registry: cannot open";
    return std::unexpected(std::move(e));
  }
  PORTIER_TRY(db->exec(kSchema, "enrolment registry: cannot create its tables"));
  // A registry made before rotations were gated: fails harmlessly when the
  // column is there already.
  (void)db->exec(
      "ALTER TABLE expected_devices ADD COLUMN rotation_allowed INTEGER NOT NULL "
      "DEFAULT 0");
  // ... or before the key a rotation replaced was kept (the same).
  (void)db->exec("ALTER TABLE expected_devices ADD COLUMN previous_key_pem TEXT");
  // ... or before a rotation was marked pending until the store took it.
  (void)db->exec(
      "ALTER TABLE expected_devices ADD COLUMN rotation_pending_since INTEGER NOT NULL "
      "DEFAULT 0");
  return std::unique_ptr<SqliteEnrolmentRegistry>(
      new SqliteEnrolmentRegistry(std::move(*db), path));
}

SqliteEnrolmentRegistry::~SqliteEnrolmentRegistry() = default;

Result<void> SqliteEnrolmentRegistry::expect(const std::string& serial, crypto::ByteView secret) {
  std::lock_guard lock(mu_);
  auto s = db_.prepare("INSERT INTO expected_devices(serial, secret) VALUES(?, ?)",
                       "enrolment registry: expect");
  if (!s) return std::unexpected(s.error());
  auto done = s->bind_text(1, serial).bind_blob(2, secret).run();
  if (!done && db_.constraint_failed()) {
    return fail(Errc::already_exists, path_, "serial \"" + serial + "\"", "expected already");
  }
  return done;
}

Result<std::optional<EnrolmentRecord>> SqliteEnrolmentRegistry::find(const std::string& serial) {
  std::lock_guard lock(mu_);
  auto s = db_.prepare(
      "SELECT secret, terminal_id, public_key_pem, certificate, rotation_allowed, "
      "previous_key_pem, rotation_pending_since FROM expected_devices "
      "WHERE serial = ?",
      "enrolment registry: find");
  if (!s) return std::unexpected(s.error());
  auto row = s->bind_text(1, serial).step();
  if (!row) return std::unexpected(row.error());
  if (!*row) return std::optional<EnrolmentRecord>{};
  EnrolmentRecord r;
  r.serial = serial;
  r.secret = to_bytes(s->column_blob(0));
  r.terminal_id = s->column_text(1);
  r.public_key_pem = s->column_text(2);
  r.certificate = to_bytes(s->column_blob(3));
  r.rotation_allowed = s->column_int(4) != 0;
  r.previous_key_pem = s->column_text(5);
  r.rotation_pending_since = s->column_int(6);
  return std::optional<EnrolmentRecord>(std::move(r));
}

Result<void> SqliteEnrolmentRegistry::bind(const std::string& serial,
                                           const std::string& terminal_id,
                                           const std::string& public_key_pem,
                                           crypto::ByteView certificate) {
  std::lock_guard lock(mu_);
  auto s = db_.prepare(
      "UPDATE expected_devices SET terminal_id = ?, public_key_pem = ?, certificate = ? "
      "WHERE serial = ? AND public_key_pem IS NULL",
      "enrolment registry: bind");
  if (!s) return std::unexpected(s.error());
  PORTIER_TRY(s->bind_text(1, terminal_id)
                  .bind_text(2, public_key_pem)
                  .bind_blob(3, certificate)
                  .bind_text(4, serial)
                  .run());
  if (db_.changes() != 1) {
    return fail(Errc::aborted, path_, "serial \"" + serial + "\"",
                "not expected, or enrolled by another request first");
  }
  return {};
}

Result<void> SqliteEnrolmentRegistry::update(const std::string& serial,
                                             const std::string& public_key_pem,
                                             crypto::ByteView certificate) {
  std::lock_guard lock(mu_);
  auto s = db_.prepare(
      "UPDATE expected_devices SET public_key_pem = ?, certificate = ?, rotation_allowed = 0 "
      "WHERE serial = ? AND public_key_pem IS NOT NULL",
      "enrolment registry: update");
  if (!s) return std::unexpected(s.error());
  PORTIER_TRY(s->bind_text(1, public_key_pem).bind_blob(2, certificate).bind_text(3, serial).run());
  if (db_.changes() != 1) {
    return fail(Errc::not_found, path_, "serial \"" + serial + "\"", "not enrolled");
  }
  return {};
}

Result<void> SqliteEnrolmentRegistry::replace_key(const std::string& serial,
                                                  const std::string& expected_pem,
                                                  const std::string& public_key_pem,
                                                  crypto::ByteView certificate, KeyChange change,
                                                  std::int64_t at_unix) {
  std::lock_guard lock(mu_);
  // BEGIN IMMEDIATE: the check and the write under one write lock, so that
  // two Renews (in this process or another sharing the file) cannot both
  // pass the check. Rolled back on any error.
  auto tx = sqlite::Transaction::begin(db_, "enrolment registry: begin a key change");
  if (!tx) return std::unexpected(tx.error());
  auto r = db_.prepare(
      "SELECT public_key_pem, rotation_allowed FROM expected_devices "
      "WHERE serial = ? AND public_key_pem IS NOT NULL",
      "enrolment registry: read a key");
  if (!r) return std::unexpected(r.error());
  auto row = r->bind_text(1, serial).step();
  if (!row) return std::unexpected(row.error());
  if (!*row) return fail(Errc::not_found, path_, "serial \"" + serial + "\"", "not enrolled");
  if (r->column_text(0) != expected_pem) {
    return fail(Errc::aborted, path_, "serial \"" + serial + "\"",
                "its key was changed by another request meanwhile");
  }
  const std::int64_t was_allowed = r->column_int(1);
  if (change == KeyChange::rotation && was_allowed == 0) {
    return fail(Errc::permission_denied, path_, "serial \"" + serial + "\"",
                "no rotation allowed (or it was used already)");
  }
  // A rotation keeps the key it replaced (a retry of it is answered), an
  // undo forgets it; a renewal leaves it. A rotation is pending (since
  // `at_unix`, at least 1) until settle_rotation; an undo clears that.
  auto u = db_.prepare(change == KeyChange::renewal
                           ? "UPDATE expected_devices SET public_key_pem = ?, certificate = ?, "
                             "rotation_allowed = ? WHERE serial = ?"
                           : "UPDATE expected_devices SET public_key_pem = ?, certificate = ?, "
                             "rotation_allowed = ?, previous_key_pem = ?, "
                             "rotation_pending_since = ? WHERE serial = ?",
                       "enrolment registry: change a key");
  if (!u) return std::unexpected(u.error());
  const std::int64_t allowed = change == KeyChange::renewal ? was_allowed
                               : change == KeyChange::undo  ? 1
                                                            : 0;  // rotation, undo_closed
  u->bind_text(1, public_key_pem).bind_blob(2, certificate).bind_int(3, allowed);
  if (change == KeyChange::renewal) {
    u->bind_text(4, serial);
  } else {
    if (change == KeyChange::rotation) {
      u->bind_text(4, expected_pem).bind_int(5, std::max<std::int64_t>(at_unix, 1));
    } else {
      u->bind_null(4).bind_int(5, 0);
    }
    u->bind_text(6, serial);
  }
  PORTIER_TRY(u->run());
  return tx->commit("enrolment registry: commit a key change");
}

Result<void> SqliteEnrolmentRegistry::settle_rotation(const std::string& serial,
                                                      const std::string& public_key_pem) {
  std::lock_guard lock(mu_);
  auto s = db_.prepare(
      "UPDATE expected_devices SET rotation_pending_since = 0 "
      "WHERE serial = ? AND public_key_pem = ?",
      "enrolment registry: settle a rotation");
  if (!s) return std::unexpected(s.error());
  PORTIER_TRY(s->bind_text(1, serial).bind_text(2, public_key_pem).run());
  if (db_.changes() != 1) {
    return fail(Errc::not_found, path_, "serial \"" + serial + "\"",
                "its key is no longer the one the rotation brought");
  }
  return {};
}

Result<void> SqliteEnrolmentRegistry::allow_rotation(const std::string& terminal_id) {
  std::lock_guard lock(mu_);
  auto s = db_.prepare(
      "UPDATE expected_devices SET rotation_allowed = 1 "
      "WHERE terminal_id = ? AND public_key_pem IS NOT NULL",
      "enrolment registry: allow a rotation");
  if (!s) return std::unexpected(s.error());
  PORTIER_TRY(s->bind_text(1, terminal_id).run());
  if (db_.changes() != 1) {
    return fail(Errc::not_found, path_, "terminal \"" + terminal_id + "\"", "not enrolled");
  }
  return {};
}

Result<void> SqliteEnrolmentRegistry::record_refusal(const EnrolmentRefusal& r) {
  std::lock_guard lock(mu_);
  auto s = db_.prepare(
      "INSERT INTO enrolment_refusals(at_unix, serial, terminal_id, reason) "
      "VALUES(?, ?, ?, ?)",
      "enrolment registry: record a refusal");
  if (!s) return std::unexpected(s.error());
  return s->bind_int(1, r.at_unix)
      .bind_text(2, r.serial)
      .bind_text(3, r.terminal_id)
      .bind_text(4, r.reason)
      .run();
}

Result<std::vector<EnrolmentRefusal>> SqliteEnrolmentRegistry::refusals(const std::string& serial) {
  std::lock_guard lock(mu_);
  auto s = db_.prepare(
      "SELECT at_unix, terminal_id, reason FROM enrolment_refusals WHERE serial = ? "
      "ORDER BY id",
      "enrolment registry: refusals");
  if (!s) return std::unexpected(s.error());
  s->bind_text(1, serial);
  std::vector<EnrolmentRefusal> out;
  for (;;) {
    auto row = s->step();
    if (!row) return std::unexpected(row.error());
    if (!*row) return out;
    out.push_back({s->column_int(0), serial, s->column_text(1), s->column_text(2)});
  }
}

}  // namespace portier::fleet
