#include "common/sqlite/statement.h"

#include <sqlite3.h>

#include <utility>

#include "common/sqlite/database.h"

namespace portier::sqlite {

Statement::~Statement() { sqlite3_finalize(stmt_); }

Statement::Statement(Statement&& other) noexcept
    : db_(other.db_),
      stmt_(std::exchange(other.stmt_, nullptr)),
      purpose_(other.purpose_),
      bind_rc_(other.bind_rc_) {}

Statement& Statement::operator=(Statement&& other) noexcept {
  if (this != &other) {
    sqlite3_finalize(stmt_);
    db_ = other.db_;
    stmt_ = std::exchange(other.stmt_, nullptr);
    purpose_ = other.purpose_;
    bind_rc_ = other.bind_rc_;
  }
  return *this;
}

namespace {
int first_failure(int previous, int rc) { return previous != SQLITE_OK ? previous : rc; }
}  // namespace

Statement& Statement::bind_int(int index, std::int64_t value) {
  bind_rc_ = first_failure(bind_rc_, sqlite3_bind_int64(stmt_, index, value));
  return *this;
}

Statement& Statement::bind_text(int index, std::string_view value) {
  bind_rc_ = first_failure(bind_rc_, sqlite3_bind_text64(stmt_, index, value.data(), value.size(),
                                                         SQLITE_TRANSIENT, SQLITE_UTF8));
  return *this;
}

Statement& Statement::bind_blob(int index, std::string_view value) {
  bind_rc_ = first_failure(
      bind_rc_, sqlite3_bind_blob64(stmt_, index, value.data(), value.size(), SQLITE_TRANSIENT));
  return *this;
}

Statement& Statement::bind_blob(int index, std::span<const std::uint8_t> value) {
  bind_rc_ = first_failure(
      bind_rc_, sqlite3_bind_blob64(stmt_, index, value.data(), value.size(), SQLITE_TRANSIENT));
  return *this;
}

Statement& Statement::bind_null(int index) {
  bind_rc_ = first_failure(bind_rc_, sqlite3_bind_null(stmt_, index));
  return *this;
}

Error Statement::error() const { return db_->error(purpose_); }

Result<bool> Statement::step() {
  if (bind_rc_ != SQLITE_OK) {
    return fail(Errc::invalid_argument, db_->where(), std::string(purpose_),
                std::string("a value could not be bound: ") + sqlite3_errstr(bind_rc_));
  }
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return std::unexpected(error());
}

Result<void> Statement::run() {
  auto row = step();
  if (!row) return std::unexpected(row.error());
  if (*row) {
    return fail(Errc::internal, db_->where(), std::string(purpose_),
                "the statement returned a row where none was expected");
  }
  return {};
}

void Statement::reset() { sqlite3_reset(stmt_); }

std::int64_t Statement::column_int(int column) const { return sqlite3_column_int64(stmt_, column); }

bool Statement::column_is_null(int column) const {
  return sqlite3_column_type(stmt_, column) == SQLITE_NULL;
}

std::span<const std::uint8_t> Statement::column_blob(int column) const {
  const auto* p = static_cast<const std::uint8_t*>(sqlite3_column_blob(stmt_, column));
  if (p == nullptr) return {};
  return {p, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, column))};
}

std::string Statement::column_bytes(int column) const {
  const auto b = column_blob(column);
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

std::string Statement::column_text(int column) const {
  const auto* p = sqlite3_column_text(stmt_, column);
  if (p == nullptr) return {};
  return std::string(reinterpret_cast<const char*>(p),
                     static_cast<std::size_t>(sqlite3_column_bytes(stmt_, column)));
}

}  // namespace portier::sqlite
