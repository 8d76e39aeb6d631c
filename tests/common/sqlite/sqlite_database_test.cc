// The SQLite wrapper (common/sqlite) against real database files, one temp
// dir per test: values bound come back from their columns unchanged, a
// constraint's error names the database, the statement's purpose and
// SQLite's reason, a database another connection holds locked is a clear
// error once the busy timeout passes (never a hang), a transaction left
// without a commit is undone, a read transaction sees one snapshot without
// waiting for a writer, and hostile files (a symlink, junk) are
// refused by name.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "common/sqlite/database.h"
#include "common/sqlite/statement.h"
#include "common/sqlite/transaction.h"

namespace portier::sqlite {
namespace {

using namespace std::chrono_literals;

// A temporary string as a purpose would dangle: it must not compile.
static_assert(!std::is_constructible_v<Purpose, std::string&&>);
static_assert(std::is_constructible_v<Purpose, const std::string&>);

class SqliteTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char t[] = "/tmp/portier-sqlite-XXXXXX";
    dir_ = mkdtemp(t);
    path_ = dir_ + "/test.db";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  Database open(std::chrono::milliseconds busy = 5000ms) {
    auto db = Database::open(path_, {.where = "test store " + path_,
                                     .create = true,
                                     .busy_timeout = busy,
                                     .wal = true,
                                     .synchronous_full = true});
    EXPECT_TRUE(db) << db.error().message();
    return db ? std::move(*db) : Database();
  }
  std::int64_t count(Database& db) {
    auto n = db.query_int("SELECT count(*) FROM t", "count");
    EXPECT_TRUE(n) << n.error().message();
    return n ? *n : -1;
  }

  std::string dir_, path_;
};

TEST_F(SqliteTest, ValuesBoundComeBackFromTheirColumnsUnchanged) {
  auto db = open();
  ASSERT_TRUE(db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, i INTEGER, s TEXT, b BLOB, n)"));
  const std::string text("a\0b \xc3\xa9", 6);  // an embedded NUL and UTF-8
  std::vector<std::uint8_t> blob(256);
  for (int i = 0; i < 256; ++i) blob[i] = static_cast<std::uint8_t>(i);
  const std::int64_t values[] = {std::numeric_limits<std::int64_t>::min(), -1, 0,
                                 std::numeric_limits<std::int64_t>::max()};
  auto ins = db.prepare("INSERT INTO t (id, i, s, b, n) VALUES (?, ?, ?, ?, ?)", "insert");
  ASSERT_TRUE(ins) << ins.error().message();
  for (int k = 0; k < 4; ++k) {
    ins->reset();
    ins->bind_int(1, k).bind_int(2, values[k]).bind_text(3, text).bind_blob(4, blob).bind_null(5);
    ASSERT_TRUE(ins->run()) << "row " << k;
  }
  EXPECT_EQ(db.changes(), 1);
  auto none = db.query_int("SELECT i FROM t WHERE id = 99", "read row 99");
  ASSERT_FALSE(none);
  EXPECT_NE(none.error().message().find("read row 99: no row returned"), std::string::npos);

  auto sel = db.prepare("SELECT i, s, b, n, length(s) FROM t ORDER BY id", "read");
  ASSERT_TRUE(sel);
  for (int k = 0; k < 4; ++k) {
    auto row = sel->step();
    ASSERT_TRUE(row) << row.error().message();
    ASSERT_TRUE(*row) << "row " << k << " missing";
    EXPECT_EQ(sel->column_int(0), values[k]);
    EXPECT_EQ(sel->column_text(1), text);
    EXPECT_EQ(sel->column_bytes(1), text);
    const auto b = sel->column_blob(2);
    EXPECT_EQ(std::vector<std::uint8_t>(b.begin(), b.end()), blob);
    EXPECT_TRUE(sel->column_is_null(3));
    EXPECT_FALSE(sel->column_is_null(0));
    EXPECT_EQ(sel->column_bytes(3), "");
  }
  auto end = sel->step();
  ASSERT_TRUE(end);
  EXPECT_FALSE(*end);
  // Reset: the same rows again.
  sel->reset();
  auto again = sel->step();
  ASSERT_TRUE(again && *again);
  EXPECT_EQ(sel->column_int(0), values[0]);
}

TEST_F(SqliteTest, OpenAppliesWalAndFullSynchronous) {
  auto db = open();
  auto mode = db.prepare("PRAGMA journal_mode", "mode");
  ASSERT_TRUE(mode && *mode->step());
  EXPECT_EQ(mode->column_text(0), "wal");
  auto sync = db.prepare("PRAGMA synchronous", "sync");
  ASSERT_TRUE(sync && *sync->step());
  EXPECT_EQ(sync->column_int(0), 2);  // FULL
}

TEST_F(SqliteTest, AConstraintErrorNamesTheDatabaseThePurposeAndSqlitesReason) {
  auto db = open();
  ASSERT_TRUE(db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY)"));
  ASSERT_TRUE(db.exec("INSERT INTO t VALUES (7)"));
  const std::string purpose = "record terminal 7";
  auto ins = db.prepare("INSERT INTO t VALUES (?)", purpose);
  ASSERT_TRUE(ins);
  ins->bind_int(1, 7);
  auto r = ins->run();
  ASSERT_FALSE(r);
  EXPECT_TRUE(db.constraint_failed());
  EXPECT_EQ(r.error().code, Errc::io);
  EXPECT_EQ(r.error().message(),
            "test store " + path_ + ": record terminal 7: UNIQUE constraint failed: t.id");
}

TEST_F(SqliteTest, ABadStatementOrABadBindIsAnErrorNamingItsPurpose) {
  auto db = open();
  ASSERT_TRUE(db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY)"));
  auto bad = db.prepare("SELEC id FROM t", "read the ids");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message().find("read the ids: near \"SELEC\""), std::string::npos)
      << bad.error().message();
  auto ins = db.prepare("INSERT INTO t VALUES (?)", "insert");
  ASSERT_TRUE(ins);
  ins->bind_int(2, 1);  // no second parameter: the step says so, nothing is written
  auto r = ins->run();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::invalid_argument);
  EXPECT_NE(r.error().message().find("insert: a value could not be bound"), std::string::npos)
      << r.error().message();
  EXPECT_EQ(count(db), 0);
  auto exec = db.exec("DROP TABLE missing");
  ASSERT_FALSE(exec);
  EXPECT_FALSE(db.constraint_failed());
  EXPECT_EQ(exec.error().message(),
            "test store " + path_ + ": DROP TABLE missing: no such table: missing");
}

// Another connection (a second portier-fleet, an operator's sqlite3 shell)
// holds the write lock: BEGIN IMMEDIATE waits for the busy timeout, then
// fails saying so; it does not hang, and it does not return at once.
TEST_F(SqliteTest, ABusyDatabaseIsAClearErrorOnceTheBusyTimeoutPasses) {
  auto holder = open();
  ASSERT_TRUE(holder.exec("CREATE TABLE t (id INTEGER PRIMARY KEY)"));
  auto held = Transaction::begin(holder, "hold the lock");
  ASSERT_TRUE(held) << held.error().message();

  auto waiter = open(300ms);
  const auto start = std::chrono::steady_clock::now();
  auto tx = Transaction::begin(waiter, "store a record");
  const auto waited = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(tx);
  EXPECT_GE(waited, 250ms) << "did not wait for the busy timeout";
  EXPECT_LT(waited, 5s) << "waited far past the busy timeout";
  EXPECT_EQ(tx.error().code, Errc::unavailable);
  const auto m = tx.error().message();
  EXPECT_NE(m.find(path_), std::string::npos) << m;
  EXPECT_NE(m.find("store a record"), std::string::npos) << m;
  EXPECT_NE(m.find("busy timeout of 300 ms"), std::string::npos) << m;
  EXPECT_NE(m.find("database is locked"), std::string::npos) << m;

  // Once the holder lets go, the waiter gets in.
  ASSERT_TRUE(held->commit("release"));
  auto later = Transaction::begin(waiter, "store a record");
  ASSERT_TRUE(later) << later.error().message();
}

TEST_F(SqliteTest, ATransactionNotCommittedIsRolledBackWhenItGoes) {
  auto db = open();
  ASSERT_TRUE(db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY)"));
  auto write = [&](int id, bool commit) -> Result<void> {
    auto tx = Transaction::begin(db, "write");
    if (!tx) return std::unexpected(tx.error());
    auto ins = db.prepare("INSERT INTO t VALUES (?)", "insert");
    if (!ins) return std::unexpected(ins.error());
    PORTIER_TRY(ins->bind_int(1, id).run());
    if (!commit) return fail(Errc::aborted, "test", "write", "an error after the insert");
    return tx->commit("commit");
  };
  EXPECT_FALSE(write(1, false));
  EXPECT_FALSE(db.in_transaction());
  EXPECT_EQ(count(db), 0) << "the uncommitted insert stayed";
  ASSERT_TRUE(write(2, true));
  EXPECT_FALSE(db.in_transaction());
  EXPECT_EQ(count(db), 1);
  // Seen from another connection too: committed, durable.
  auto other = open();
  EXPECT_EQ(count(other), 1);
}

// A read transaction (a receiver loading a chain and its candidates while
// another receiver commits): it does not wait for the writer's lock, and
// every read in it sees the same commit, none made after its first read.
TEST_F(SqliteTest, AReadTransactionSeesOneSnapshotAndNeverWaitsForAWriter) {
  auto writer = open();
  ASSERT_TRUE(writer.exec("CREATE TABLE t (id INTEGER PRIMARY KEY)"));
  ASSERT_TRUE(writer.exec("INSERT INTO t VALUES (1)"));
  auto held = Transaction::begin(writer, "hold the write lock");
  ASSERT_TRUE(held) << held.error().message();
  ASSERT_TRUE(writer.exec("INSERT INTO t VALUES (2)"));

  auto reader = open(5000ms);
  const auto start = std::chrono::steady_clock::now();
  {
    auto read = Transaction::begin_read(reader, "read the rows");
    ASSERT_TRUE(read) << read.error().message();
    EXPECT_TRUE(reader.in_transaction());
    EXPECT_EQ(count(reader), 1) << "saw a row not committed";
    EXPECT_LT(std::chrono::steady_clock::now() - start, 2500ms)
        << "waited for the writer's lock (an IMMEDIATE transaction would)";
    ASSERT_TRUE(held->commit("commit row 2"));
    auto other = open();
    EXPECT_EQ(count(other), 2);
    EXPECT_EQ(count(reader), 1) << "a read in the transaction saw a later commit";
    ASSERT_TRUE(read->commit("end the read"));
    EXPECT_FALSE(reader.in_transaction());
    EXPECT_EQ(count(reader), 2);
  }
  // One left without a commit ends when it goes.
  {
    auto read = Transaction::begin_read(reader, "read the rows");
    ASSERT_TRUE(read);
    EXPECT_EQ(count(reader), 2);
  }
  EXPECT_FALSE(reader.in_transaction());
  // Nested in an open transaction: an error naming its purpose, not a crash.
  auto outer = Transaction::begin_read(reader, "outer read");
  ASSERT_TRUE(outer);
  auto inner = Transaction::begin_read(reader, "inner read");
  ASSERT_FALSE(inner);
  EXPECT_NE(inner.error().message().find("inner read: cannot start a transaction within a "
                                         "transaction"),
            std::string::npos)
      << inner.error().message();
}

TEST_F(SqliteTest, ASymlinkIsRefusedWhenNoFollowIsAsked) {
  const std::string target = dir_ + "/target.db";
  {
    auto db = Database::open(target, {.where = "target", .create = true});
    ASSERT_TRUE(db);
  }
  ASSERT_EQ(::symlink(target.c_str(), path_.c_str()), 0);
  auto db = Database::open(path_, {.where = "test store " + path_, .no_follow = true});
  ASSERT_FALSE(db) << "opened a database through a symlink";
  EXPECT_NE(db.error().message().find("test store " + path_ + ": cannot open"), std::string::npos)
      << db.error().message();
}

TEST_F(SqliteTest, JunkInPlaceOfADatabaseIsRefusedByName) {
  std::ofstream(path_) << std::string(8192, 'x');
  auto db = Database::open(path_, {.where = "test store " + path_, .wal = true});
  ASSERT_FALSE(db);
  EXPECT_EQ(db.error().message(),
            "test store " + path_ + ": PRAGMA journal_mode=WAL: file is not a database");
}

TEST_F(SqliteTest, AMissingFileIsNotCreatedUnlessAsked) {
  auto db = Database::open(path_, {.where = "test store " + path_});
  ASSERT_FALSE(db);
  EXPECT_EQ(db.error().message(),
            "test store " + path_ + ": cannot open: unable to open database file");
  EXPECT_FALSE(std::filesystem::exists(path_));
}

}  // namespace
}  // namespace portier::sqlite
