// BEGIN IMMEDIATE ... COMMIT on a Database: rolled back when it goes without
// a commit (an early return, an error), so a failure leaves nothing half
// written. IMMEDIATE takes the write lock at the start (waiting up to the
// busy timeout): a check and the write it guards cannot interleave with
// another connection's.
//
// begin_read() is a plain (DEFERRED) BEGIN for reads that must agree with
// each other: the first read takes a snapshot, and every read until the
// commit sees that one commit of the other connections, none after it. It
// takes no write lock, so in WAL mode it neither waits for a writer nor
// holds one up; a write inside it may fail (busy) where an IMMEDIATE one
// would have waited, so it is for reads only.
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
  static Result<Transaction> begin_read(Database& db, Purpose purpose);
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
