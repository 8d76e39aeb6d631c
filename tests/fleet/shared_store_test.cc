// The receiver keeps nothing between calls: two receivers, each with its
// own connection to one store file, on two threads, take the envelopes of
// one terminal interleaved (odd sequences on one, even on the other, so
// each sees gaps and races the other's commits). Every record ends up
// stored exactly once, in order, and the chain verifies.
#include <gtest/gtest.h>

#include <thread>

#include "fleet_test_support.h"
#include "tools/fleet/receiver.h"
#include "tools/fleet/stored_chain_check.h"

namespace portier::fleet {
namespace {

using testing::kT0;
using testing::SimTerminal;

TEST(SharedStore, TwoReceiversOnOneStoreStoreEveryRecordExactlyOnceInOrder_REQ29) {
  testing::TempDir dir;
  const std::string db = dir.path() + "/fleet.db";
  auto a = SqliteFleetStore::open(db);
  auto b = SqliteFleetStore::open(db);
  ASSERT_TRUE(a && b);
  SimTerminal term("ATM-0001", crypto::KeyType::ed25519);
  testing::register_terminal(**a, term);

  // 200 envelopes in blocks of ten: 1-5 unsigned and covered by a batch
  // signature, 6-9 unsigned and covered by the signed 10th. Every one
  // carries an audit record. The batches go through a third receiver.
  constexpr int kCount = 200;
  std::vector<std::string> sent, batches;
  for (int i = 1; i <= kCount; ++i) {
    auto s =
        term.audit(static_cast<std::uint64_t>(i), {"record " + std::to_string(i)}, i % 10 == 0);
    sent.push_back(testing::bytes(s));
    if (i % 10 == 5) {
      batches.push_back(
          term.batch(static_cast<std::uint64_t>(i - 4), static_cast<std::uint64_t>(i), s.digest));
    }
  }
  auto c = SqliteFleetStore::open(db);
  ASSERT_TRUE(c);
  auto feed = [&](FleetStore& store, int parity) {
    Receiver rx(store);
    for (int i = parity; i < kCount; i += 2) {
      auto r = rx.receive(term.id, "audit", sent[static_cast<std::size_t>(i)], kT0);
      // A gap is expected (the other receiver has not taken the one before
      // yet); anything else would be a failure of the sharing.
      if (!r) {
        EXPECT_EQ(r.error().code, Errc::failed_precondition) << r.error().message();
      }
    }
  };
  auto sign = [&](FleetStore& store) {
    Receiver rx(store);
    for (auto& b : batches) {
      auto r = rx.receive(term.id, "batch", b, kT0);
      EXPECT_TRUE(r) << r.error().message();
    }
  };
  std::thread odd(feed, std::ref(**a), 0);
  std::thread even(feed, std::ref(**b), 1);
  std::thread batcher(sign, std::ref(**c));
  odd.join();
  even.join();
  batcher.join();

  // Whatever the interleaving, everything was taken when its turn came.
  auto rows = (*a)->envelopes(term.id, 0, 1000);
  ASSERT_TRUE(rows);
  ASSERT_EQ(rows->size(), static_cast<std::size_t>(kCount));
  for (int i = 0; i < kCount; ++i) {
    EXPECT_EQ((*rows)[static_cast<std::size_t>(i)].sequence, static_cast<std::uint64_t>(i + 1));
    EXPECT_EQ((*rows)[static_cast<std::size_t>(i)].envelope, sent[static_cast<std::size_t>(i)]);
  }
  auto audit = (*b)->audit(term.id, 0, 1000);
  ASSERT_EQ(audit->size(), static_cast<std::size_t>(kCount));
  for (int i = 0; i < kCount; ++i) {
    EXPECT_EQ((*audit)[static_cast<std::size_t>(i)].line, "record " + std::to_string(i + 1));
  }
  auto chain = (*a)->chain(term.id);
  EXPECT_EQ(chain->state.next_sequence, static_cast<std::uint64_t>(kCount + 1));
  EXPECT_TRUE(chain->pending.empty());
  EXPECT_TRUE(chain->parked.empty());
  EXPECT_TRUE(chain->parked_batches.empty());
  // Resends to either receiver are acknowledged and change nothing.
  Receiver again(**b);
  for (auto& s : sent) {
    EXPECT_EQ(again.receive(term.id, "audit", s, kT0)->outcome, Receipt::Outcome::duplicate);
  }
  for (auto& s : batches) {
    EXPECT_EQ(again.receive(term.id, "batch", s, kT0)->outcome, Receipt::Outcome::duplicate);
  }
  EXPECT_EQ((*a)->counts(term.id)->envelopes, static_cast<std::uint64_t>(kCount));
  auto report = check_stored_chain(**a, term.id);
  ASSERT_TRUE(report);
  EXPECT_TRUE(report->ok) << report->problem;
  EXPECT_EQ(report->verified, static_cast<std::uint64_t>(kCount));
}

// The optimistic check itself: a commit built on a chain another receiver
// has moved since is refused whole.
TEST(SharedStore, ACommitOnAStaleChainVersionIsRefusedAndWritesNothing) {
  testing::TempDir dir;
  auto store = SqliteFleetStore::open(dir.path() + "/fleet.db");
  ASSERT_TRUE(store);
  SimTerminal term("ATM-0001", crypto::KeyType::ecdsa_p256);
  testing::register_terminal(**store, term);
  Receiver rx(**store);
  ASSERT_TRUE(rx.receive(term.id, "health", testing::bytes(term.health(1)), kT0));
  auto loaded = (*store)->chain(term.id);
  ASSERT_TRUE(loaded);
  ASSERT_TRUE(rx.receive(term.id, "health", testing::bytes(term.health(2)), kT0));
  Commit stale;
  stale.terminal_id = term.id;
  stale.expected_version = loaded->version;
  stale.chain = *loaded;
  stale.incidents.push_back(Incident{0, term.id, kT0, "gap", 9, "must not be written"});
  auto r = (*store)->commit(stale);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::aborted);
  EXPECT_TRUE((*store)->incidents(term.id, 10)->empty());
  EXPECT_EQ((*store)->chain(term.id)->state.next_sequence, 3u);
}

}  // namespace
}  // namespace portier::fleet
