#include "tools/fleet/enrolment/sqlite_enrolment_registry.h"

#include <sqlite3.h>

namespace portier::fleet {
namespace {

// A prepared statement, finalized when it goes.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) { sqlite3_prepare_v2(db, sql, -1, &s_, nullptr); }
  ~Stmt() { sqlite3_finalize(s_); }
  explicit operator bool() const { return s_ != nullptr; }
  sqlite3_stmt* get() { return s_; }
  void text(int i, const std::string& v) {
    sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  }
  void blob(int i, crypto::ByteView v) {
    sqlite3_bind_blob(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  }
  std::string col_text(int i) {
    const auto* p = sqlite3_column_text(s_, i);
    return p ? std::string(reinterpret_cast<const char*>(p),
                           static_cast<std::size_t>(sqlite3_column_bytes(s_, i)))
             : std::string();
  }
  crypto::Bytes col_blob(int i) {
    const auto* p = static_cast<const std::uint8_t*>(sqlite3_column_blob(s_, i));
    return p ? crypto::Bytes(p, p + sqlite3_column_bytes(s_, i)) : crypto::Bytes();
  }

 private:
  sqlite3_stmt* s_ = nullptr;
};

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
  previous_key_pem TEXT
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

}  // namespace

std::unexpected<Error> SqliteEnrolmentRegistry::db_fail(const std::string& what) const {
  return fail(Errc::io, path_, "enrolment registry: " + what, sqlite3_errmsg(db_));
}

Result<std::unique_ptr<SqliteEnrolmentRegistry>> SqliteEnrolmentRegistry::open(
    const std::string& path) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                      nullptr) != SQLITE_OK) {
    std::string why = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    return fail(Errc::io, path, "enrolment registry: cannot open", why);
  }
  sqlite3_busy_timeout(db, 5000);
  std::unique_ptr<SqliteEnrolmentRegistry> r(new SqliteEnrolmentRegistry(db, path));
  if (sqlite3_exec(db, kSchema, nullptr, nullptr, nullptr) != SQLITE_OK) {
    return r->db_fail("cannot create its tables");
  }
  // A registry made before rotations were gated: fails harmlessly when the
  // column is there already.
  sqlite3_exec(db,
               "ALTER TABLE expected_devices ADD COLUMN rotation_allowed INTEGER NOT NULL "
               "DEFAULT 0",
               nullptr, nullptr, nullptr);
  // ... or before the key a rotation replaced was kept (the same).
  sqlite3_exec(db, "ALTER TABLE expected_devices ADD COLUMN previous_key_pem TEXT", nullptr,
               nullptr, nullptr);
  return r;
}

SqliteEnrolmentRegistry::~SqliteEnrolmentRegistry() { sqlite3_close(db_); }

Result<void> SqliteEnrolmentRegistry::expect(const std::string& serial, crypto::ByteView secret) {
  std::lock_guard lock(mu_);
  Stmt s(db_, "INSERT INTO expected_devices(serial, secret) VALUES(?, ?)");
  if (!s) return db_fail("prepare");
  s.text(1, serial);
  s.blob(2, secret);
  const int rc = sqlite3_step(s.get());
  if (rc == SQLITE_CONSTRAINT) {
    return fail(Errc::already_exists, path_, "serial \"" + serial + "\"", "expected already");
  }
  if (rc != SQLITE_DONE) return db_fail("expect");
  return {};
}

Result<std::optional<EnrolmentRecord>> SqliteEnrolmentRegistry::find(const std::string& serial) {
  std::lock_guard lock(mu_);
  Stmt s(db_,
         "SELECT secret, terminal_id, public_key_pem, certificate, rotation_allowed, "
         "previous_key_pem FROM expected_devices "
         "WHERE serial = ?");
  if (!s) return db_fail("prepare");
  s.text(1, serial);
  const int rc = sqlite3_step(s.get());
  if (rc == SQLITE_DONE) return std::optional<EnrolmentRecord>{};
  if (rc != SQLITE_ROW) return db_fail("find");
  EnrolmentRecord r;
  r.serial = serial;
  r.secret = s.col_blob(0);
  r.terminal_id = s.col_text(1);
  r.public_key_pem = s.col_text(2);
  r.certificate = s.col_blob(3);
  r.rotation_allowed = sqlite3_column_int(s.get(), 4) != 0;
  r.previous_key_pem = s.col_text(5);
  return std::optional<EnrolmentRecord>(std::move(r));
}

Result<void> SqliteEnrolmentRegistry::bind(const std::string& serial,
                                           const std::string& terminal_id,
                                           const std::string& public_key_pem,
                                           crypto::ByteView certificate) {
  std::lock_guard lock(mu_);
  Stmt s(db_,
         "UPDATE expected_devices SET terminal_id = ?, public_key_pem = ?, certificate = ? "
         "WHERE serial = ? AND public_key_pem IS NULL");
  if (!s) return db_fail("prepare");
  s.text(1, terminal_id);
  s.text(2, public_key_pem);
  s.blob(3, certificate);
  s.text(4, serial);
  if (sqlite3_step(s.get()) != SQLITE_DONE) return db_fail("bind");
  if (sqlite3_changes(db_) != 1) {
    return fail(Errc::aborted, path_, "serial \"" + serial + "\"",
                "not expected, or enrolled by another request first");
  }
  return {};
}

Result<void> SqliteEnrolmentRegistry::update(const std::string& serial,
                                             const std::string& public_key_pem,
                                             crypto::ByteView certificate) {
  std::lock_guard lock(mu_);
  Stmt s(db_,
         "UPDATE expected_devices SET public_key_pem = ?, certificate = ?, rotation_allowed = 0 "
         "WHERE serial = ? AND public_key_pem IS NOT NULL");
  if (!s) return db_fail("prepare");
  s.text(1, public_key_pem);
  s.blob(2, certificate);
  s.text(3, serial);
  if (sqlite3_step(s.get()) != SQLITE_DONE) return db_fail("update");
  if (sqlite3_changes(db_) != 1) {
    return fail(Errc::not_found, path_, "serial \"" + serial + "\"", "not enrolled");
  }
  return {};
}

Result<void> SqliteEnrolmentRegistry::replace_key(const std::string& serial,
                                                  const std::string& expected_pem,
                                                  const std::string& public_key_pem,
                                                  crypto::ByteView certificate, KeyChange change) {
  std::lock_guard lock(mu_);
  // BEGIN IMMEDIATE: the check and the write under one write lock, so that
  // two Renews (in this process or another sharing the file) cannot both
  // pass the check.
  if (sqlite3_exec(db_, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) != SQLITE_OK) {
    return db_fail("begin a key change");
  }
  auto ok = [&]() -> Result<void> {
    Stmt r(db_,
           "SELECT public_key_pem, rotation_allowed FROM expected_devices "
           "WHERE serial = ? AND public_key_pem IS NOT NULL");
    if (!r) return db_fail("prepare");
    r.text(1, serial);
    const int rc = sqlite3_step(r.get());
    if (rc == SQLITE_DONE) {
      return fail(Errc::not_found, path_, "serial \"" + serial + "\"", "not enrolled");
    }
    if (rc != SQLITE_ROW) return db_fail("read a key");
    if (r.col_text(0) != expected_pem) {
      return fail(Errc::aborted, path_, "serial \"" + serial + "\"",
                  "its key was changed by another request meanwhile");
    }
    if (change == KeyChange::rotation && sqlite3_column_int(r.get(), 1) == 0) {
      return fail(Errc::permission_denied, path_, "serial \"" + serial + "\"",
                  "no rotation allowed (or it was used already)");
    }
    // A rotation keeps the key it replaced (a retry of it is answered), an
    // undo forgets it; a renewal leaves it.
    Stmt u(db_, change == KeyChange::renewal
                    ? "UPDATE expected_devices SET public_key_pem = ?, certificate = ?, "
                      "rotation_allowed = ? WHERE serial = ?"
                    : "UPDATE expected_devices SET public_key_pem = ?, certificate = ?, "
                      "rotation_allowed = ?, previous_key_pem = ? WHERE serial = ?");
    if (!u) return db_fail("prepare");
    u.text(1, public_key_pem);
    u.blob(2, certificate);
    const int allowed = change == KeyChange::renewal ? sqlite3_column_int(r.get(), 1)
                        : change == KeyChange::undo  ? 1
                                                     : 0;  // rotation, undo_closed
    sqlite3_bind_int(u.get(), 3, allowed);
    if (change == KeyChange::renewal) {
      u.text(4, serial);
    } else {
      if (change == KeyChange::rotation) {
        u.text(4, expected_pem);
      } else {
        sqlite3_bind_null(u.get(), 4);
      }
      u.text(5, serial);
    }
    if (sqlite3_step(u.get()) != SQLITE_DONE) return db_fail("change a key");
    return {};
  }();
  if (ok && sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr) == SQLITE_OK) return {};
  Error e = ok ? db_fail("commit a key change").error() : ok.error();
  sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  return std::unexpected(std::move(e));
}

Result<void> SqliteEnrolmentRegistry::allow_rotation(const std::string& terminal_id) {
  std::lock_guard lock(mu_);
  Stmt s(db_,
         "UPDATE expected_devices SET rotation_allowed = 1 "
         "WHERE terminal_id = ? AND public_key_pem IS NOT NULL");
  if (!s) return db_fail("prepare");
  s.text(1, terminal_id);
  if (sqlite3_step(s.get()) != SQLITE_DONE) return db_fail("allow a rotation");
  if (sqlite3_changes(db_) != 1) {
    return fail(Errc::not_found, path_, "terminal \"" + terminal_id + "\"", "not enrolled");
  }
  return {};
}

Result<void> SqliteEnrolmentRegistry::record_refusal(const EnrolmentRefusal& r) {
  std::lock_guard lock(mu_);
  Stmt s(db_,
         "INSERT INTO enrolment_refusals(at_unix, serial, terminal_id, reason) "
         "VALUES(?, ?, ?, ?)");
  if (!s) return db_fail("prepare");
  sqlite3_bind_int64(s.get(), 1, r.at_unix);
  s.text(2, r.serial);
  s.text(3, r.terminal_id);
  s.text(4, r.reason);
  if (sqlite3_step(s.get()) != SQLITE_DONE) return db_fail("record a refusal");
  return {};
}

Result<std::vector<EnrolmentRefusal>> SqliteEnrolmentRegistry::refusals(const std::string& serial) {
  std::lock_guard lock(mu_);
  Stmt s(db_,
         "SELECT at_unix, terminal_id, reason FROM enrolment_refusals WHERE serial = ? "
         "ORDER BY id");
  if (!s) return db_fail("prepare");
  s.text(1, serial);
  std::vector<EnrolmentRefusal> out;
  int rc;
  while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
    out.push_back({sqlite3_column_int64(s.get(), 0), serial, s.col_text(1), s.col_text(2)});
  }
  if (rc != SQLITE_DONE) return db_fail("refusals");
  return out;
}

}  // namespace portier::fleet
