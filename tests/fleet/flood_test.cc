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
#include "forwarding_store.h"
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

// What the receiver asks of the store, counted through its interface (a
// decorator of the SQLite store): the bytes and rows each commit writes
// and the candidate envelopes it reads back.
class CountingStore final : public testing::ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;
  struct Write {
    std::size_t bytes = 0;           // envelopes, candidates, what is held past a gap
    std::size_t candidate_rows = 0;  // added or removed
    std::size_t parked_rows = 0;     // the same, of the envelopes held past a gap
    std::size_t incident_rows = 0;   // written or tallied
    bool chain = false;              // the chain row moved
  };
  std::vector<Write> commits;
  std::size_t candidate_reads = 0, parked_reads = 0;
  std::size_t index_reads = 0;      // the whole candidates' index
  std::size_t index_rows_read = 0;  // candidates' index rows, however asked for

  Result<void> commit(const Commit& c) override {
    Write w;
    for (auto& l : c.pending_added) w.bytes += l.envelope.size();
    for (auto& p : c.parked_added) w.bytes += p.envelope.size();
    w.candidate_rows = c.pending_added.size() + c.pending_removed.size();
    w.parked_rows = c.parked_added.size() + c.parked_removed.size();
    if (c.chain_changed && c.batches_changed) {
      for (auto& p : c.chain.parked_batches) w.bytes += p.size();
    }
    for (auto& e : c.envelopes) w.bytes += e.envelope.size();
    w.incident_rows = c.incidents.size() + c.tallied.size();
    w.chain = c.chain_changed;
    auto r = s_.commit(c);
    if (r) commits.push_back(w);
    return r;
  }
  Result<std::string> pending_envelope(const std::string& id, std::uint64_t sequence,
                                       const std::string& digest) override {
    ++candidate_reads;
    return s_.pending_envelope(id, sequence, digest);
  }
  Result<std::string> parked_envelope(const std::string& id, const std::string& key) override {
    ++parked_reads;
    return s_.parked_envelope(id, key);
  }
  Result<std::optional<PendingLink>> pending_find(const std::string& id, std::uint64_t sequence,
                                                  const std::string& digest) override {
    auto r = s_.pending_find(id, sequence, digest);
    index_rows_read += r && *r ? 1 : 0;
    return r;
  }
  Result<std::vector<PendingLink>> pending_index(const std::string& id) override {
    ++index_reads;
    return rows(s_.pending_index(id));
  }
  Result<std::vector<PendingLink>> pending_oldest_leaves(const std::string& id,
                                                         std::optional<std::uint64_t> after,
                                                         std::size_t limit) override {
    return rows(s_.pending_oldest_leaves(id, after, limit));
  }
  Result<std::vector<PendingLink>> pending_newest(const std::string& id,
                                                  std::size_t limit) override {
    return rows(s_.pending_newest(id, limit));
  }

 private:
  Result<std::vector<PendingLink>> rows(Result<std::vector<PendingLink>> r) {
    if (r) index_rows_read += r->size();
    return r;
  }
};

// A hostile broker floods a registered terminal's up/ topics: unsigned
// links chained to its head (the room fills, then every one evicts the
// oldest), envelopes signed by another key, stored envelopes replayed
// altered, links that do not chain, junk. Each message costs a bounded,
// small write whatever the terminal holds (its own candidate row and the
// one it evicts; never the other candidates again), reads no candidate
// envelope back, and its incident is tallied: one row per kind for the
// whole flood, with the count. The genuine terminal's runs and signed
// envelopes, sent in between, all land exactly once, in order.
// Regression (attacker review): each forged candidate rewrote the
// terminal's whole pending blob, each receive re-verified every stored
// candidate, and each forged message was an incident row of its own.
TEST_F(FloodTest, AForgedFloodOnARegisteredTerminalCostsABoundedWriteAndRowsPerMessage_REQ29) {
  Receiver::Options o;
  o.max_pending = 32;  // filled between two genuine runs: every candidate then evicts one
  o.max_parked = 16;   // the same for those held past a gap
  CountingStore counted(*store);
  Receiver rx(counted, o);
  std::uint64_t sent = 0;
  auto genuine = [&] {
    // A run of three unsigned envelopes and its batch signature, then a
    // signed one.
    auto a = term.health(1, false), b = term.health(2, false), c = term.health(3, false);
    for (auto* s : {&a, &b, &c}) {
      auto r = rx.receive(term.id, "envelope", bytes(*s), kT0);
      ASSERT_TRUE(r) << r.error().message();
      EXPECT_EQ(r->outcome, Receipt::Outcome::held);
    }
    auto covered = rx.receive(term.id, "batch", term.batch(a.sequence, c.sequence, c.digest), kT0);
    ASSERT_TRUE(covered) << covered.error().message();
    EXPECT_EQ(covered->stored, seqs(a.sequence, c.sequence));
    auto d = rx.receive(term.id, "envelope", bytes(term.health(4)), kT0);
    ASSERT_TRUE(d) << d.error().message();
    EXPECT_EQ(d->stored, std::vector<std::uint64_t>{sent + 4});
    sent += 4;
  };
  genuine();
  const auto first_stored = store->envelope(term.id, 1);
  ASSERT_TRUE(first_stored && *first_stored);
  SimTerminal forger(term.id, crypto::KeyType::ecdsa_p256);  // another key, the same id
  constexpr int kEach = 300;
  std::size_t most_pending = 0, most_parked = 0;
  for (int i = 0; i < kEach; ++i) {
    if (i % 50 == 49) genuine();
    const auto head = term.sealer.state();
    std::vector<std::string> forged;
    forger.sealer.reset(head);
    forged.push_back(bytes(forger.health(1000 + i, false)));  // a candidate: held
    forger.sealer.reset(head);
    forged.push_back(bytes(forger.health(2000 + i, true)));  // another key: bad signature
    v1::Envelope replay;
    ASSERT_TRUE(replay.ParseFromString((*first_stored)->envelope));
    v1::EnvelopeBody body;
    ASSERT_TRUE(body.ParseFromString(replay.body()));
    body.set_payload("altered " + std::to_string(i));
    replay.set_body(body.SerializeAsString());
    forged.push_back(replay.SerializeAsString());  // a replay, altered: duplicate conflicting
    auto unchained = head;
    unchained.prev_digest = crypto::Bytes(32, static_cast<std::uint8_t>(i));
    forger.sealer.reset(unchained);
    forged.push_back(bytes(forger.health(3000 + i, false)));  // does not chain: tampered
    forged.push_back("\xff\xff junk " + std::to_string(i));   // malformed
    auto ahead = head;
    ahead.next_sequence += 10000 - static_cast<std::uint64_t>(i);  // nearer each time
    forger.sealer.reset(ahead);
    forged.push_back(bytes(forger.health(4000 + i, false)));  // past a gap: held, unverified
    for (auto& m : forged) {
      const auto before = counted.commits.size();
      const auto reads = counted.candidate_reads;
      const auto index_reads = counted.index_reads;
      const auto rows_read = counted.index_rows_read;
      (void)rx.receive(term.id, "envelope", m, kT0);
      EXPECT_EQ(counted.candidate_reads, reads) << "a forged message read candidates back";
      EXPECT_EQ(counted.index_reads, index_reads) << "a forged message read the whole index";
      EXPECT_LE(counted.index_rows_read - rows_read, 20u) << "a forged message: a few lookups";
      for (auto w = before; w < counted.commits.size(); ++w) {
        const auto& c = counted.commits[w];
        EXPECT_LE(c.bytes, m.size()) << "message " << i;
        EXPECT_LE(c.candidate_rows, 2u) << "its own row and the one it evicted";
        EXPECT_LE(c.parked_rows, 2u) << "its own row and the one that made way";
        EXPECT_LE(c.incident_rows, 2u);
      }
    }
    auto chain = store->chain(term.id);
    ASSERT_TRUE(chain);
    most_pending = std::max(most_pending, chain->pending.size());
    // The count and bytes the chain row keeps are those of the rows.
    std::size_t held = 0;
    for (auto& l : chain->pending) held += l.size;
    EXPECT_EQ(chain->pending_summary.count, chain->pending.size());
    EXPECT_EQ(chain->pending_summary.bytes, held);
    most_parked = std::max(most_parked, chain->parked.size());
  }
  EXPECT_EQ(most_pending, o.max_pending);
  EXPECT_EQ(most_parked, o.max_parked);
  EXPECT_EQ(counted.parked_reads, 0u) << "nothing held past a gap was within the chain's reach";
  genuine();
  EXPECT_EQ(stored_sequences(*store, term.id), seqs(1, sent));
  auto report = check_stored_chain(*store, term.id);
  ASSERT_TRUE(report) << report.error().message();
  EXPECT_TRUE(report->ok) << report->problem;
  auto incidents = all_incidents();
  EXPECT_LE(incidents.size(), 7u)
      << "one row per kind: evicted, inserted, bad signature, duplicate conflicting, tampered, "
         "malformed, gap";
  EXPECT_EQ(total(incidents, "gap"), std::uint64_t{kEach});
  EXPECT_EQ(total(incidents, "bad signature"), std::uint64_t{kEach});
  EXPECT_EQ(total(incidents, "duplicate conflicting"), std::uint64_t{kEach});
  EXPECT_EQ(total(incidents, "tampered"), std::uint64_t{kEach});
  EXPECT_EQ(total(incidents, "malformed"), std::uint64_t{kEach});
  EXPECT_GT(total(incidents, "evicted"), 0u);
  EXPECT_EQ(total(incidents, "evicted") + total(incidents, "inserted"), std::uint64_t{kEach});
  for (auto& i : incidents) EXPECT_EQ(i.terminal_id, term.id) << i.kind;
}

// What the terminal's own signature proves stays an incident of its own:
// a gap shown by a signed envelope (with its range), each time, while the
// gaps anyone can claim with unsigned envelopes are tallied.
TEST_F(FloodTest, ASignedGapIsAnIncidentOfItsOwnWhileUnsignedGapsAreTallied_REQ29) {
  Receiver rx(*store);
  ASSERT_TRUE(rx.receive(term.id, "envelope", bytes(term.health(1)), kT0));
  auto lost = term.health(2);
  auto signed_past = term.health(3);
  SimTerminal forger(term.id, crypto::KeyType::ecdsa_p256);
  for (int i = 0; i < 100; ++i) {
    auto ahead = term.sealer.state();
    ahead.next_sequence = 10 + static_cast<std::uint64_t>(i);
    forger.sealer.reset(ahead);
    auto r = rx.receive(term.id, "envelope", bytes(forger.health(i, false)), kT0);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Errc::failed_precondition);
  }
  auto r = rx.receive(term.id, "envelope", bytes(signed_past), kT0);
  ASSERT_FALSE(r);
  auto incidents = all_incidents();
  std::size_t gap_rows = 0, signed_rows = 0;
  for (auto& i : incidents) {
    if (i.kind != "gap") continue;
    ++gap_rows;
    if (i.sequence == 3) {
      ++signed_rows;
      EXPECT_EQ(i.count, 1u);
      EXPECT_NE(i.detail.find("expected 2"), std::string::npos) << i.detail;
    }
  }
  EXPECT_EQ(signed_rows, 1u);
  EXPECT_EQ(gap_rows, 2u) << "the signed gap, and one tallied row for the 100 unsigned ones";
  EXPECT_EQ(total(incidents, "gap"), 101u);
  // The gap closes: both stored, in order.
  ASSERT_TRUE(rx.receive(term.id, "envelope", bytes(lost), kT0));
  EXPECT_EQ(stored_sequences(*store, term.id), seqs(1, 3));
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

// A store of schema 2 kept the candidates and the envelopes held past a
// gap as blobs in the chain row: opened, they become rows of their own
// (schema 4). The blobs are dropped (never acknowledged, so the terminal
// sends them again), the chain itself is kept, and it goes on.
TEST(FleetStoreSchema, AVersionTwoStoreGetsCandidateRowsAndKeepsItsChain) {
  testing::TempDir dir;
  const std::string path = dir.path() + "/old.db";
  SimTerminal term("ATM-0001", crypto::KeyType::ed25519);
  {
    auto s = SqliteFleetStore::open(dir.path() + "/new.db");  // for the chain's state
    ASSERT_TRUE(s);
    testing::register_terminal(**s, term);
    Receiver rx(**s);
    ASSERT_TRUE(rx.receive(term.id, "envelope", bytes(term.health(1)), kT0));
  }
  const auto head = term.sealer.state();
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  const std::string prev(head.prev_digest.begin(), head.prev_digest.end());
  std::string hex;
  for (unsigned char ch : prev) {
    static constexpr char kHex[] = "0123456789abcdef";
    hex += kHex[ch >> 4];
    hex += kHex[ch & 15];
  }
  const std::string sql =
      "CREATE TABLE terminals (id TEXT PRIMARY KEY, public_key_pem TEXT NOT NULL, "
      "key_algorithm TEXT NOT NULL, registered_ms INTEGER NOT NULL, first_seen_ms INTEGER, "
      "last_seen_ms INTEGER, last_birth BLOB, session_epoch INTEGER NOT NULL DEFAULT 0, "
      "online INTEGER NOT NULL DEFAULT 0);"
      "CREATE TABLE chains (terminal_id TEXT PRIMARY KEY REFERENCES terminals(id), "
      "version INTEGER NOT NULL, epoch INTEGER NOT NULL, next_seq INTEGER NOT NULL, "
      "prev_digest BLOB NOT NULL, pending BLOB NOT NULL, parked BLOB NOT NULL, "
      "parked_batches BLOB NOT NULL);"
      "CREATE TABLE incidents (id INTEGER PRIMARY KEY AUTOINCREMENT, terminal_id TEXT NOT NULL, "
      "time_ms INTEGER NOT NULL, kind TEXT NOT NULL, seq INTEGER NOT NULL, detail TEXT NOT NULL, "
      "count INTEGER NOT NULL DEFAULT 1, bucket INTEGER);"
      "INSERT INTO terminals (id, public_key_pem, key_algorithm, registered_ms) VALUES ('" +
      term.id + "', '" + term.public_pem() + "', 'ed25519', 0);" + "INSERT INTO chains VALUES ('" +
      term.id + "', 7, 0, 2, x'" + hex +
      "', x'00000003616263', x'00000003646566', x'');"
      "PRAGMA user_version=2;";
  ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK)
      << sqlite3_errmsg(db);
  sqlite3_close(db);
  auto store = SqliteFleetStore::open(path);
  ASSERT_TRUE(store) << store.error().message();
  auto chain = (*store)->chain(term.id);
  ASSERT_TRUE(chain) << chain.error().message();
  EXPECT_EQ(chain->version, 7u);
  EXPECT_EQ(chain->state.next_sequence, 2u);
  EXPECT_TRUE(chain->pending.empty());
  EXPECT_TRUE(chain->parked.empty());
  Receiver rx(**store);
  auto two = term.health(2, false);
  auto held = rx.receive(term.id, "envelope", bytes(two), kT0);
  ASSERT_TRUE(held) << held.error().message();
  EXPECT_EQ(held->outcome, Receipt::Outcome::held);
  EXPECT_EQ((*store)->chain(term.id)->pending.size(), 1u);
  auto three = term.health(3);
  auto r = rx.receive(term.id, "envelope", bytes(three), kT0);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->stored, seqs(2, 3));
  EXPECT_TRUE((*store)->chain(term.id)->pending.empty());
  auto again = SqliteFleetStore::open(path);  // and opens again as it is
  ASSERT_TRUE(again) << again.error().message();
}

}  // namespace
}  // namespace portier::fleet
