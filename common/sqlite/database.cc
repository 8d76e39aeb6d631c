#include "common/sqlite/database.h"

#include <sqlite3.h>

#include <mutex>
#include <utility>

#include "common/sqlite/statement.h"

namespace portier::sqlite {

Result<Database> Database::open(const std::string& path, OpenOptions options) {
  Database db;
  db.where_ = std::move(options.where);
  db.busy_timeout_ = options.busy_timeout;
  int flags = SQLITE_OPEN_READWRITE;
  if (options.create) flags |= SQLITE_OPEN_CREATE;
  if (options.no_follow) flags |= SQLITE_OPEN_NOFOLLOW;
  flags |= options.serialized ? SQLITE_OPEN_FULLMUTEX : SQLITE_OPEN_NOMUTEX;
  if (sqlite3_open_v2(path.c_str(), &db.db_, flags, nullptr) != SQLITE_OK) {
    if (db.db_ == nullptr) {
      return fail(Errc::resource_exhausted, db.where_, "cannot open", "out of memory");
    }
    return std::unexpected(db.error("cannot open"));
  }
  sqlite3_busy_timeout(db.db_, static_cast<int>(options.busy_timeout.count()));
  if (options.persist_wal) {
    int persist = 1;
    sqlite3_file_control(db.db_, nullptr, SQLITE_FCNTL_PERSIST_WAL, &persist);
  }
  if (options.wal) PORTIER_TRY(db.exec("PRAGMA journal_mode=WAL"));
  if (options.synchronous_full) PORTIER_TRY(db.exec("PRAGMA synchronous=FULL"));
  for (const char* sql : options.pragmas) PORTIER_TRY(db.exec(sql));
  return db;
}

Database::~Database() { close(); }

Database::Database(Database&& other) noexcept
    : db_(std::exchange(other.db_, nullptr)),
      where_(std::move(other.where_)),
      busy_timeout_(other.busy_timeout_) {}

Database& Database::operator=(Database&& other) noexcept {
  if (this != &other) {
    close();
    db_ = std::exchange(other.db_, nullptr);
    where_ = std::move(other.where_);
    busy_timeout_ = other.busy_timeout_;
  }
  return *this;
}

void Database::close() {
  // close_v2: a statement still unfinalized (a bug) keeps the connection
  // until it goes, rather than leaking it.
  sqlite3_close_v2(db_);
  db_ = nullptr;
}

Result<void> Database::exec(const char* sql, Purpose purpose) {
  return exec_as(sql, purpose.view());
}

Result<void> Database::exec_as(const char* sql, std::string_view purpose) {
  if (sqlite3_exec(db_, sql, nullptr, nullptr, nullptr) != SQLITE_OK) {
    return std::unexpected(error(purpose));
  }
  return {};
}

Result<Statement> Database::prepare(const char* sql, Purpose purpose) {
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db_, sql, -1, &stmt, nullptr) != SQLITE_OK) {
    sqlite3_finalize(stmt);
    return std::unexpected(error(purpose.view()));
  }
  return Statement(this, stmt, purpose.view());
}

Result<std::int64_t> Database::query_int(const char* sql, Purpose purpose) {
  auto s = prepare(sql, purpose);
  if (!s) return std::unexpected(s.error());
  auto row = s->step();
  if (!row) return std::unexpected(row.error());
  if (!*row) return fail(Errc::internal, where_, std::string(purpose.view()), "no row returned");
  return s->column_int(0);
}

std::int64_t Database::changes() const { return sqlite3_changes64(db_); }

bool Database::constraint_failed() const {
  return db_ != nullptr && (sqlite3_extended_errcode(db_) & 0xff) == SQLITE_CONSTRAINT;
}

bool Database::in_transaction() const { return db_ != nullptr && !sqlite3_get_autocommit(db_); }

Error Database::error(std::string_view what) const {
  if (db_ == nullptr)
    return Error{Errc::failed_precondition, where_, std::string(what), "not open"};
  const int rc = sqlite3_extended_errcode(db_) & 0xff;
  const std::string message = sqlite3_errmsg(db_);
  switch (rc) {
    case SQLITE_FULL:
      return Error{Errc::resource_exhausted, where_, std::string(what),
                   "the disk is full (" + message + ")"};
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return Error{Errc::unavailable, where_, std::string(what),
                   "another connection held the database locked for longer than the busy "
                   "timeout of " +
                       std::to_string(busy_timeout_.count()) + " ms (" + message + ")"};
    default:
      return Error{Errc::io, where_, std::string(what), message};
  }
}

void allocate_page_cache_on_demand() {
  static std::once_flag once;
  // SQLITE_MISUSE when SQLite is initialized already: that setting stays.
  std::call_once(once, [] { sqlite3_config(SQLITE_CONFIG_PAGECACHE, nullptr, 0, 0); });
}

}  // namespace portier::sqlite
