#include "common/sqlite/transaction.h"

#include <utility>

#include "common/sqlite/database.h"

namespace portier::sqlite {

Result<Transaction> Transaction::begin(Database& db, Purpose purpose) {
  PORTIER_TRY(db.exec("BEGIN IMMEDIATE", purpose));
  return Transaction(&db);
}

Result<Transaction> Transaction::begin_read(Database& db, Purpose purpose) {
  PORTIER_TRY(db.exec("BEGIN", purpose));
  return Transaction(&db);
}

Transaction::~Transaction() {
  // Not committed: the work is undone. A failed COMMIT may have ended the
  // transaction already (SQLite rolls back on some errors): then nothing.
  if (db_ != nullptr && db_->in_transaction()) (void)db_->exec("ROLLBACK", "roll back");
}

Transaction::Transaction(Transaction&& other) noexcept : db_(std::exchange(other.db_, nullptr)) {}

Result<void> Transaction::commit(Purpose purpose) {
  PORTIER_TRY(db_->exec("COMMIT", purpose));
  db_ = nullptr;
  return {};
}

}  // namespace portier::sqlite
