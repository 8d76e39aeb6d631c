// The SQLite store on its own: created 0600 with its schema version, kept
// across a reopen, and refusing what it cannot trust (a newer schema, a
// corrupt chain row) instead of guessing.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include "fleet_test_support.h"

namespace portier::fleet {
namespace {

using testing::kT0;

void exec(const std::string& db, const char* sql) {
  sqlite3* h = nullptr;
  ASSERT_EQ(sqlite3_open(db.c_str(), &h), SQLITE_OK);
  EXPECT_EQ(sqlite3_exec(h, sql, nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(h);
  sqlite3_close(h);
}

TEST(SqliteFleetStore, IsPrivateVersionedAndKeepsItsRowsAcrossAReopen) {
  testing::TempDir dir;
  const std::string db = dir.path() + "/fleet.db";
  testing::SimTerminal t("ATM-0001", crypto::KeyType::ed25519);
  {
    auto s = SqliteFleetStore::open(db);
    ASSERT_TRUE(s) << s.error().message();
    testing::register_terminal(**s, t);
    EXPECT_EQ((*s)->add_terminal(*(*s)->terminal(t.id)).error().code, Errc::already_exists);
    ASSERT_TRUE((*s)->add_incident(Incident{0, "ATM-9", kT0, "unknown terminal", 0, "x"}));
  }
  struct stat st {};
  ASSERT_EQ(::stat(db.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto s = SqliteFleetStore::open(db);
  ASSERT_TRUE(s);
  auto back = (*s)->terminal(t.id);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->public_key_pem, t.public_pem());
  EXPECT_EQ(back->key_algorithm, "ed25519");
  EXPECT_EQ((*s)->incidents("", 10)->size(), 1u);
  EXPECT_EQ((*s)->terminal("ATM-0404").error().code, Errc::not_found);
  EXPECT_EQ((*s)->chain(t.id)->version, 0u);  // no chain yet: it starts at 1
  EXPECT_EQ((*s)->chain(t.id)->state.next_sequence, 1u);
}

TEST(SqliteFleetStore, RefusesANewerSchemaAndACorruptChain) {
  testing::TempDir dir;
  const std::string db = dir.path() + "/fleet.db";
  testing::SimTerminal t("ATM-0001", crypto::KeyType::ecdsa_p256);
  {
    auto s = SqliteFleetStore::open(db);
    ASSERT_TRUE(s);
    testing::register_terminal(**s, t);
    Commit c;
    c.terminal_id = t.id;
    c.chain.state.prev_digest = crypto::Bytes(32, 7);
    c.chain.state.next_sequence = 5;
    ASSERT_TRUE((*s)->commit(c));
    EXPECT_EQ((*s)->chain(t.id)->version, 1u);
    EXPECT_EQ((*s)->commit(c).error().code, Errc::aborted);  // version 0 is taken now
  }
  exec(db, "UPDATE chains SET parked_batches = x'000000ff01'");
  {
    auto s = SqliteFleetStore::open(db);
    ASSERT_TRUE(s);
    auto chain = (*s)->chain(t.id);
    ASSERT_FALSE(chain);
    EXPECT_EQ(chain.error().code, Errc::failed_precondition);
  }
  exec(db, "PRAGMA user_version = 99");
  auto newer = SqliteFleetStore::open(db);
  ASSERT_FALSE(newer);
  EXPECT_EQ(newer.error().code, Errc::failed_precondition);
  EXPECT_NE(newer.error().message().find("newer"), std::string::npos);
}

}  // namespace
}  // namespace portier::fleet
