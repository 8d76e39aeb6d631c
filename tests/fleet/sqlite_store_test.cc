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

// The commands portier-fleet send signed (for tying a result to its
// action): sent_results() joins them with the results the chain covered,
// by command id, for one action, newest first; a store of schema 4 gets
// the table when it is opened.
TEST(SqliteFleetStore, SentResultsAreTheStoredResultsOfTheCommandsSentWithAnAction_REQ36) {
  testing::TempDir dir;
  const std::string db = dir.path() + "/fleet.db";
  testing::SimTerminal t("ATM-0001", crypto::KeyType::ecdsa_p256);
  {
    auto s = SqliteFleetStore::open(db);
    ASSERT_TRUE(s);
    testing::register_terminal(**s, t);
  }
  exec(db, "DROP TABLE sent_commands; PRAGMA user_version=4;");
  auto s = SqliteFleetStore::open(db);
  ASSERT_TRUE(s) << s.error().message();
  auto sent = [&](const std::string& id, const std::string& digest, const std::string& action) {
    return (*s)->add_sent_command({t.id, id, digest, action, kT0});
  };
  ASSERT_TRUE(sent("c-1", "d1", "rotate-key"));
  ASSERT_TRUE(sent("c-1", "d1", "rotate-key"));  // again: nothing changes
  ASSERT_TRUE(sent("c-2", "d2", "rotate-key"));
  ASSERT_TRUE(sent("c-3", "d3", "ping"));
  EXPECT_EQ((*s)->add_sent_command({"ATM-0404", "c-9", "d9", "ping", kT0}).error().code,
            Errc::not_found);
  // Results at sequences 1..4: c-1, c-3, c-2, and c-4 (never sent).
  Commit c;
  c.terminal_id = t.id;
  c.chain.state.prev_digest = crypto::Bytes(32, 7);
  c.chain.state.next_sequence = 5;
  const std::vector<std::string> ids{"c-1", "c-3", "c-2", "c-4"};
  for (std::uint64_t seq = 1; seq <= 4; ++seq) {
    c.envelopes.push_back(StoredEnvelope{t.id, seq, 1, "digest", 7, kT0, kT0, false, "e"});
    c.results.push_back(
        CommandResultEntry{t.id, seq, ids[seq - 1], 1, "", kT0, "result " + ids[seq - 1]});
  }
  ASSERT_TRUE((*s)->commit(c));
  auto rows = (*s)->sent_results(t.id, "rotate-key", 10);
  ASSERT_TRUE(rows) << rows.error().message();
  ASSERT_EQ(rows->size(), 2u);
  EXPECT_EQ((*rows)[0].result.sequence, 3u);
  EXPECT_EQ((*rows)[0].command.command_id, "c-2");
  EXPECT_EQ((*rows)[0].command.digest, "d2");
  EXPECT_EQ((*rows)[0].result.result, "result c-2");
  EXPECT_EQ((*rows)[1].result.sequence, 1u);
  EXPECT_EQ((*rows)[1].command.command_id, "c-1");
  EXPECT_EQ((*s)->sent_results(t.id, "rotate-key", 1)->size(), 1u);
  EXPECT_TRUE((*s)->sent_results(t.id, "install-certificate", 10)->empty());
  EXPECT_TRUE((*s)->sent_results("ATM-0404", "rotate-key", 10)->empty());
}

// A hostile broker replays an old rotate-key command until the terminal's
// answers to it (later sequences, the same result) fill the result window:
// the old command's first result must neither fall out of it nor be taken
// for a newer command's (review of session 8: the newest-first window of
// 1,000 rows let the replays of command A stand in for the newest, B).
TEST(SqliteFleetStore, ReplayedAnswersToAnOldCommandNeverMakeItTheNewest_REQ36) {
  testing::TempDir dir;
  testing::SimTerminal t("ATM-0001", crypto::KeyType::ecdsa_p256);
  auto s = SqliteFleetStore::open(dir.path() + "/fleet.db");
  ASSERT_TRUE(s) << s.error().message();
  testing::register_terminal(**s, t);
  ASSERT_TRUE((*s)->add_sent_command({t.id, "A", "dA", "rotate-key", kT0}));
  ASSERT_TRUE((*s)->add_sent_command({t.id, "B", "dB", "rotate-key", kT0}));
  // A answered at 1, B at 2, then A's answer again at 3..50 (replays).
  Commit c;
  c.terminal_id = t.id;
  c.chain.state.prev_digest = crypto::Bytes(32, 7);
  c.chain.state.next_sequence = 51;
  for (std::uint64_t seq = 1; seq <= 50; ++seq) {
    const std::string id = seq == 2 ? "B" : "A";
    c.envelopes.push_back(StoredEnvelope{t.id, seq, 1, "digest", 7, kT0, kT0, false, "e"});
    c.results.push_back(CommandResultEntry{t.id, seq, id, 1, "", kT0, "result " + id});
  }
  ASSERT_TRUE((*s)->commit(c));
  // A window far smaller than the replays: still both commands, each at
  // its first answer, B the newest.
  auto rows = (*s)->sent_results(t.id, "rotate-key", 2);
  ASSERT_TRUE(rows) << rows.error().message();
  ASSERT_EQ(rows->size(), 2u);
  EXPECT_EQ((*rows)[0].command.command_id, "B");
  EXPECT_EQ((*rows)[0].result.sequence, 2u);
  EXPECT_EQ((*rows)[1].command.command_id, "A");
  EXPECT_EQ((*rows)[1].result.sequence, 1u);
}

}  // namespace
}  // namespace portier::fleet
