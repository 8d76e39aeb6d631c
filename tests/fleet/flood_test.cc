// What a hostile broker or publisher can make the fleet write by flooding
// it: envelopes for terminal ids nobody registered, and unsigned links for a
// known terminal that no signature will ever cover. Each costs a bounded
// number of rows per interval (tallied incidents with their counts) and a
// bounded room per terminal (candidates evicted oldest first), and the
// genuine terminal's records are still stored, in order, exactly once.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <numeric>

#include "fleet_test_support.h"
#include "tools/fleet/receiver.h"
#include "tools/fleet/stored_chain_check.h"

namespace portier::fleet {
namespace {

using testing::bytes;
using testing::kT0;
using testing::seqs;
using testing::SimTerminal;
using testing::stored_sequences;

class FloodTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = SqliteFleetStore::open(dir.path() + "/fleet.db");
    ASSERT_TRUE(s) << s.error().message();
    store = std::move(*s);
    testing::register_terminal(*store, term);
  }
  std::vector<Incident> all_incidents() {
    auto all = store->incidents("", 1000000);
    EXPECT_TRUE(all) << all.error().message();
    return all ? *all : std::vector<Incident>{};
  }
  static std::uint64_t total(const std::vector<Incident>& incidents, const std::string& kind) {
    std::uint64_t n = 0;
    for (auto& i : incidents) n += i.kind == kind ? i.count : 0;
    return n;
  }

  testing::TempDir dir;
  std::unique_ptr<SqliteFleetStore> store;
  SimTerminal term{"ATM-0001", crypto::KeyType::ecdsa_p256};
};

// 10,000 envelopes (some unreadable) for 1,000 made-up terminal ids, through
// two receivers sharing the store: every one is refused and counted, in at
// most max_terminals + 1 rows per kind and interval, and a genuine
// terminal's envelopes, sent in between, are all stored.
TEST_F(FloodTest, TenThousandForgedEnvelopesForMadeUpIdsLeaveABoundedNumberOfIncidentRows) {
  Receiver::Options o;
  o.tally.max_terminals = 16;
  Receiver first(*store, o), second(*store, o);
  int genuine = 0;
  for (int id = 0; id < 1000; ++id) {
    SimTerminal stranger("ATM-FORGED-" + std::to_string(id), crypto::KeyType::ecdsa_p256);
    std::vector<Receiver::Message> group;
    for (int m = 0; m < 9; ++m) group.push_back({"envelope", bytes(stranger.health(m))});
    group.push_back({"envelope", "\xff\xff garbage"});
    auto& rx = id % 2 ? first : second;
    for (auto& r : rx.receive_many(stranger.id, group, kT0)) {
      ASSERT_FALSE(r);
      EXPECT_TRUE(r.error().code == Errc::not_found || r.error().code == Errc::invalid_argument)
          << r.error().message();
    }
    if (id % 100 == 0) {
      auto r = rx.receive(term.id, "envelope", bytes(term.health(++genuine)), kT0);
      ASSERT_TRUE(r) << r.error().message();
    }
  }
  auto incidents = all_incidents();
  // Per kind ("unknown terminal", "malformed"): 16 ids of their own and "*".
  EXPECT_LE(incidents.size(), 2u * (16 + 1));
  EXPECT_EQ(total(incidents, "unknown terminal"), 9000u);
  EXPECT_EQ(total(incidents, "malformed"), 1000u);
  std::size_t others = 0;
  for (auto& i : incidents) others += i.terminal_id == kOtherTerminals;
  EXPECT_EQ(others, 2u);
  // The genuine terminal: everything stored, no incident of its own.
  EXPECT_EQ(stored_sequences(*store, term.id), seqs(1, genuine));
  auto own = store->incidents(term.id, 100);
  ASSERT_TRUE(own);
  EXPECT_TRUE(own->empty()) << own->front().kind;
  // A new interval starts new rows: the rate of rows is bounded, not their
  // total over time.
  Receiver later(*store, o);
  SimTerminal stranger("ATM-FORGED-0", crypto::KeyType::ecdsa_p256);
  ASSERT_FALSE(
      later.receive(stranger.id, "envelope", bytes(stranger.health(1)), kT0 + o.tally.interval));
  EXPECT_EQ(all_incidents().size(), incidents.size() + 1);
}

// A broker floods a known terminal's chain with unsigned links of its own:
// what the fleet keeps of them stays within the terminal's room, the
// evictions and discards are tallied in a few rows, and the genuine run
// and its batch signature are stored when they come.
// Regression (review): a run that does not parse, or is too large, was
// written as one incident row per message, for any terminal id a broker
// made up.
TEST_F(FloodTest, AFloodOfJunkRunsLeavesABoundedNumberOfIncidentRows) {
  Receiver::Options o;
  o.tally.max_terminals = 16;
  Receiver rx(*store, o);
  for (int id = 0; id < 1000; ++id) {
    auto in = rx.receive_message("ATM-JUNK-" + std::to_string(id), "run", "\xff\xff junk", kT0);
    EXPECT_EQ(in.refused.size(), 1u);
  }
  auto in = rx.receive_message(term.id, "run", "\xff\xff junk", kT0);
  EXPECT_EQ(in.refused.size(), 1u);
  auto incidents = all_incidents();
  EXPECT_LE(incidents.size(), 16u + 1);
  EXPECT_EQ(total(incidents, "malformed"), 1001u);
  // The genuine terminal's own chain still goes on.
  auto r = rx.receive(term.id, "envelope", bytes(term.health(1)), kT0);
  EXPECT_TRUE(r) << r.error().message();
}

TEST_F(FloodTest, AFloodOfJunkCandidatesLeavesBoundedStateAndTheGenuineChainIsStored_REQ29) {
  Receiver::Options o;
  o.max_pending = 32;
  Receiver rx(*store, o);
  ASSERT_TRUE(rx.receive(term.id, "envelope", bytes(term.health(1)), kT0));
  const auto head = term.sealer.state();
  std::size_t most = 0;
  for (int i = 0; i < 2000; ++i) {
    SimTerminal forger(term.id, crypto::KeyType::ecdsa_p256);
    forger.sealer = envelope::EnvelopeSealer(term.id, crypto::KeyType::ecdsa_p256, head);
    auto r = rx.receive(term.id, "envelope", bytes(forger.health(1000 + i, false)), kT0);
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_EQ(r->outcome, Receipt::Outcome::held);
    auto chain = store->chain(term.id);
    ASSERT_TRUE(chain);
    most = std::max(most, chain->pending.size());
  }
  EXPECT_EQ(most, o.max_pending);
  auto two = term.health(2, false), three = term.health(3, false);
  ASSERT_TRUE(rx.receive(term.id, "envelope", bytes(two), kT0));
  ASSERT_TRUE(rx.receive(term.id, "envelope", bytes(three), kT0));
  auto covered = rx.receive(term.id, "batch", term.batch(2, 3, three.digest), kT0);
  ASSERT_TRUE(covered) << covered.error().message();
  EXPECT_EQ(covered->stored, seqs(2, 3));
  EXPECT_EQ(stored_sequences(*store, term.id), seqs(1, 3));
  EXPECT_TRUE(store->chain(term.id)->pending.empty());
  auto incidents = all_incidents();
  EXPECT_LE(incidents.size(), 2u) << "one tallied row each for evicted and inserted";
  EXPECT_EQ(total(incidents, "evicted") + total(incidents, "inserted"), 2000u);
  auto report = check_stored_chain(*store, term.id);
  ASSERT_TRUE(report) << report.error().message();
  EXPECT_TRUE(report->ok) << report->problem;
}

// A store made before incidents were tallied (schema 1) is brought up to
// date when opened: its incidents are kept (each one occurrence) and new
// ones are tallied.
TEST(FleetStoreSchema, AVersionOneStoreGetsTalliedIncidentsAndKeepsItsOwn) {
  testing::TempDir dir;
  const std::string path = dir.path() + "/old.db";
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db,
                         "CREATE TABLE incidents (id INTEGER PRIMARY KEY AUTOINCREMENT, "
                         "terminal_id TEXT NOT NULL, time_ms INTEGER NOT NULL, kind TEXT NOT NULL, "
                         "seq INTEGER NOT NULL, detail TEXT NOT NULL);"
                         "INSERT INTO incidents (terminal_id, time_ms, kind, seq, detail) "
                         "VALUES ('ATM-1', 0, 'gap', 3, 'old');"
                         "PRAGMA user_version=1;",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  auto store = SqliteFleetStore::open(path);
  ASSERT_TRUE(store) << store.error().message();
  Incident i{0, "ATM-X", kT0, "unknown terminal", 0, "x"};
  i.count = 5;
  ASSERT_TRUE((*store)->tally_incidents({i, i}, IncidentTally{}));
  auto all = (*store)->incidents("", 10);
  ASSERT_TRUE(all) << all.error().message();
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].detail, "old");
  EXPECT_EQ((*all)[0].count, 1u);
  EXPECT_EQ((*all)[1].count, 10u);
  auto again = SqliteFleetStore::open(path);  // and opens again as it is
  ASSERT_TRUE(again) << again.error().message();
}

}  // namespace
}  // namespace portier::fleet
