// BEGIN IMMEDIATE ... COMMIT on a Database: rolled back when it goes without
// a commit (an early return, an error), so a failure leaves nothing half
// written. IMMEDIATE takes the write lock at the start (waiting up to the
// busy timeout): a check and the write it guards cannot interleave with
// another connection's.
//
// Declare it before the statements of the transaction: they are finalized
// first, and the rollback is never refused.
#pragma once

#include "common/result.h"
#include "common/sqlite/purpose.h"

namespace portier::sqlite {

class Database;

class Transaction {
 public:
  // An error names `purpose` (what the transaction is for).
  static Result<Transaction> begin(Database& db, Purpose purpose);
  ~Transaction();
  Transaction(Transaction&& other) noexcept;
  Transaction& operator=(Transaction&&) = delete;
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  // Ends the transaction; on an error it is rolled back when it goes.
  Result<void> commit(Purpose purpose);

 private:
  explicit Transaction(Database* db) : db_(db) {}

  Database* db_ = nullptr;  // null once committed (or moved from)
};

}  // namespace portier::sqlite
