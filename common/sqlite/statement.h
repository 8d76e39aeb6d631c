// A prepared SQLite statement (made by Database::prepare), finalized when it
// goes: binding (copied in, so the values need not outlive it), stepping and
// reading columns. step() and run() report errors as Database::error does,
// naming the statement's purpose; a bind that failed (an index out of range,
// a value too large) is reported by the next step.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "common/result.h"
#include "common/sqlite/purpose.h"

struct sqlite3_stmt;

namespace portier::sqlite {

class Database;

class Statement {
 public:
  ~Statement();
  Statement(Statement&& other) noexcept;
  Statement& operator=(Statement&& other) noexcept;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  // Parameters count from 1, as in SQL's ?1.
  Statement& bind_int(int index, std::int64_t value);
  Statement& bind_text(int index, std::string_view value);
  Statement& bind_blob(int index, std::string_view value);
  Statement& bind_blob(int index, std::span<const std::uint8_t> value);
  Statement& bind_null(int index);

  // true: a row is there to read; false: done.
  Result<bool> step();
  // Steps once and expects no row (INSERT, UPDATE, DELETE without RETURNING).
  Result<void> run();
  // Back to before the first step, keeping the bindings.
  void reset();

  // Columns count from 0; valid while on a row.
  std::int64_t column_int(int column) const;
  bool column_is_null(int column) const;
  // A blob's or a text's bytes ("" for NULL).
  std::string column_bytes(int column) const;
  // The same, viewed: valid until the next step, reset or column call.
  std::span<const std::uint8_t> column_blob(int column) const;
  std::string column_text(int column) const;

 private:
  friend class Database;
  Statement(const Database* db, sqlite3_stmt* stmt, std::string_view purpose)
      : db_(db), stmt_(stmt), purpose_(purpose) {}
  Error error() const;

  const Database* db_ = nullptr;
  sqlite3_stmt* stmt_ = nullptr;
  std::string_view purpose_;
  int bind_rc_ = 0;  // the first failed bind's result code; 0 when none failed
};

}  // namespace portier::sqlite
