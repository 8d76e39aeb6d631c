// One SQLite connection (the outbox, the command store, the fleet's stores):
// opened with the flags, busy timeout, WAL and synchronous setting its owner
// asks for, closed when it goes. Every error names the database (the
// `where` its owner gives, e.g. "outbox /var/lib/portier/outbox.db"), what
// was being done, and SQLite's own message; a full disk is
// resource_exhausted, a lock held past the busy timeout unavailable.
//
// The header names no SQLite type beyond a forward declaration: its
// includers need not see sqlite3.h. Not thread-safe unless opened
// `serialized`; statements (statement.h) must go before their database
// closes or moves.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "common/sqlite/purpose.h"
#include "common/sqlite/statement.h"

struct sqlite3;

namespace portier::sqlite {

struct OpenOptions {
  std::string where;        // names the database in errors ("outbox <path>")
  bool create = false;      // create the file when missing (SQLITE_OPEN_CREATE)
  bool no_follow = false;   // refuse a symlink (SQLITE_OPEN_NOFOLLOW)
  bool serialized = false;  // one connection shared by threads (FULLMUTEX), else NOMUTEX
  std::chrono::milliseconds busy_timeout{5000};
  bool persist_wal = false;            // the WAL and its index stay when the connection closes
  bool wal = false;                    // PRAGMA journal_mode=WAL
  bool synchronous_full = false;       // PRAGMA synchronous=FULL
  std::vector<const char*> pragmas{};  // run in order after those ("PRAGMA foreign_keys=ON")
};

class Database {
 public:
  // A closed database (every call but open() and close() needs an open one).
  Database() = default;
  static Result<Database> open(const std::string& path, OpenOptions options);
  ~Database();
  Database(Database&& other) noexcept;
  Database& operator=(Database&& other) noexcept;
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  bool is_open() const { return db_ != nullptr; }
  void close();

  // Runs one or more statements that return no rows; an error names
  // `purpose` (a caller passing the SQL itself gets it named).
  Result<void> exec(const char* sql, Purpose purpose);
  Result<void> exec(const char* sql) { return exec_as(sql, sql); }
  Result<Statement> prepare(const char* sql, Purpose purpose);
  // The first column of the one row a query always returns (a count, a max,
  // a pragma); no row is an error.
  Result<std::int64_t> query_int(const char* sql, Purpose purpose);
  // Rows changed by the last INSERT, UPDATE or DELETE.
  std::int64_t changes() const;
  // The last error was a constraint's (UNIQUE, NOT NULL, CHECK, ...): the
  // caller may have a better word for it ("already registered").
  bool constraint_failed() const;
  // A transaction is open (BEGIN without COMMIT or ROLLBACK yet).
  bool in_transaction() const;

  // The connection's last error, as every failure here reports it.
  Error error(std::string_view what) const;
  const std::string& where() const { return where_; }
  sqlite3* handle() const { return db_; }

 private:
  Result<void> exec_as(const char* sql, std::string_view purpose);

  sqlite3* db_ = nullptr;
  std::string where_;
  std::chrono::milliseconds busy_timeout_{0};
};

// Before SQLite's first use in the process: no bulk allocation of page-cache
// lines per connection (84 KiB for 20); pages are allocated as they are
// read. A process that used SQLite already keeps its setting. Once.
void allocate_page_cache_on_demand();

}  // namespace portier::sqlite
