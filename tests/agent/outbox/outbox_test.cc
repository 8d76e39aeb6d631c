// The durable outbox against a real SQLite file: stored before sending,
// deleted on acknowledgement, the chain state kept with each record, bounds
// by size and age that drop the lowest priority first and record every
// drop, and a full disk (a small tmpfs) that is a clear error losing
// nothing.
#include "agent/outbox/outbox.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace portier::outbox {
namespace {

using std::chrono::hours;
const auto kNow = std::chrono::system_clock::time_point{} + hours(500000);

class OutboxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char t[] = "/tmp/portier-outbox-XXXXXX";
    dir_ = mkdtemp(t);
  }
  void TearDown() override {
    box_.reset();
    if (mounted_) umount2(dir_.c_str(), MNT_DETACH);
    std::filesystem::remove_all(dir_);
  }
  Outbox& open(std::uint64_t max_bytes = 1u << 20) {
    box_.reset();
    auto b = Outbox::open({dir_ + "/outbox.db", max_bytes, std::chrono::hours(24)});
    EXPECT_TRUE(b) << b.error().message();
    box_ = std::move(*b);
    return *box_;
  }
  // Record `seq` of `priority`, `size` bytes, and the chain state after it.
  Result<PutOutcome> put(std::uint64_t seq, Priority p, std::size_t size = 100,
                         std::chrono::system_clock::time_point created = kNow) {
    Record r{seq,
             p,
             created,
             std::string(size, 'e'),
             "digest-" + std::to_string(seq),
             "digest-" + std::to_string(seq - 1)};
    envelope::ChainState after{7, seq + 1, crypto::Bytes(32, static_cast<std::uint8_t>(seq))};
    return box_->put(r, after, kNow);
  }
  std::vector<std::uint64_t> stored() {
    std::vector<std::uint64_t> out;
    auto records = box_->oldest(1000);
    EXPECT_TRUE(records);
    for (auto& r : *records) out.push_back(r.sequence);
    return out;
  }
  std::vector<std::uint64_t> dropped() {
    std::vector<std::uint64_t> out;
    auto drops = box_->drops(1000);
    EXPECT_TRUE(drops);
    for (auto& d : *drops) out.push_back(d.sequence);
    return out;
  }

  std::string dir_;
  bool mounted_ = false;
  std::unique_ptr<Outbox> box_;
};

TEST_F(OutboxTest, StoredInOrderUntilAcknowledgedAndAcrossAReopen_REQ29) {
  open();
  for (std::uint64_t s = 1; s <= 3; ++s)
    ASSERT_EQ(*put(s, Priority::telemetry), PutOutcome::stored);
  ASSERT_TRUE(box_->ack(2));
  ASSERT_TRUE(box_->ack(2));  // acknowledged twice: harmless
  EXPECT_EQ(stored(), (std::vector<std::uint64_t>{1, 3}));
  // As after a crash: a new process opens the same file.
  open();
  EXPECT_EQ(stored(), (std::vector<std::uint64_t>{1, 3}));
  auto r = box_->oldest(1);
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ((*r)[0].envelope, std::string(100, 'e'));
  EXPECT_EQ((*r)[0].digest, "digest-1");
  auto st = box_->chain_state();
  ASSERT_TRUE(st);
  EXPECT_EQ(st->session_epoch, 7u);
  EXPECT_EQ(st->next_sequence, 4u);  // the chain goes on where it was: no sequence reused
  EXPECT_EQ(st->prev_digest, crypto::Bytes(32, 3));
  struct stat sb;
  ASSERT_EQ(stat((dir_ + "/outbox.db").c_str(), &sb), 0);
  EXPECT_EQ(sb.st_mode & 0777, 0600u);
}

TEST_F(OutboxTest, AFreshOutboxStartsTheChain) {
  open();
  auto st = box_->chain_state();
  ASSERT_TRUE(st);
  EXPECT_EQ(st->next_sequence, 1u);
  EXPECT_TRUE(st->prev_digest.empty());
}

TEST_F(OutboxTest, WhenFullTheOldestOfTheLowestPriorityGoFirstAndEachDropIsRecorded) {
  open(1000);  // room for 10 records of 100 bytes
  std::uint64_t seq = 0;
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(put(++seq, Priority::security));   // 1..4
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(put(++seq, Priority::inventory));  // 5..7
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(put(++seq, Priority::telemetry));  // 8..10
  ASSERT_EQ(*put(++seq, Priority::telemetry), PutOutcome::stored);           // 11: drops 8
  ASSERT_EQ(*put(++seq, Priority::inventory), PutOutcome::stored);           // 12: drops 9
  ASSERT_EQ(*put(++seq, Priority::security), PutOutcome::stored);            // 13: drops 10
  ASSERT_EQ(*put(++seq, Priority::security), PutOutcome::stored);            // 14: drops 11
  ASSERT_EQ(*put(++seq, Priority::security), PutOutcome::stored);            // 15: drops 5
  EXPECT_EQ(dropped(), (std::vector<std::uint64_t>{5, 8, 9, 10, 11}));
  EXPECT_EQ(stored(), (std::vector<std::uint64_t>{1, 2, 3, 4, 6, 7, 12, 13, 14, 15}));
  auto d = box_->drops(1);
  ASSERT_EQ(d->size(), 1u);
  EXPECT_EQ((*d)[0].digest, "digest-5");  // the fleet follows the chain across the gap
  EXPECT_EQ((*d)[0].priority, Priority::inventory);
  ASSERT_TRUE(box_->forget_drops(9));
  EXPECT_EQ(dropped(), (std::vector<std::uint64_t>{10, 11}));
}

TEST_F(OutboxTest, SecurityRecordsAreNeverDroppedForTelemetry) {
  open(500);
  for (std::uint64_t s = 1; s <= 5; ++s) ASSERT_TRUE(put(s, Priority::security));
  auto r = put(6, Priority::telemetry);
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, PutOutcome::dropped);  // recorded, not stored, not silent
  EXPECT_EQ(stored(), (std::vector<std::uint64_t>{1, 2, 3, 4, 5}));
  EXPECT_EQ(dropped(), (std::vector<std::uint64_t>{6}));
  EXPECT_EQ(box_->chain_state()->next_sequence, 7u);  // the chain moved on past it
  // A newer security record does replace the oldest one.
  ASSERT_EQ(*put(7, Priority::security), PutOutcome::stored);
  EXPECT_EQ(stored(), (std::vector<std::uint64_t>{2, 3, 4, 5, 7}));
}

TEST_F(OutboxTest, AcknowledgedRecordsMakeRoomAlsoAfterAReopen) {
  open(500);
  for (std::uint64_t s = 1; s <= 5; ++s) ASSERT_TRUE(put(s, Priority::security));
  ASSERT_TRUE(box_->ack(1));
  ASSERT_EQ(*put(6, Priority::telemetry), PutOutcome::stored);  // the room ack 1 freed
  open(500);  // the count of bytes held is the file's, not the last process's
  ASSERT_EQ(*put(7, Priority::telemetry), PutOutcome::stored);  // drops 6, the lowest
  EXPECT_EQ(dropped(), (std::vector<std::uint64_t>{6}));
  ASSERT_TRUE(box_->ack(2));
  ASSERT_TRUE(box_->ack(3));
  ASSERT_EQ(*put(8, Priority::telemetry), PutOutcome::stored);
  EXPECT_EQ(stored(), (std::vector<std::uint64_t>{4, 5, 7, 8}));
  EXPECT_EQ(box_->stats()->bytes, 400u);
}

TEST_F(OutboxTest, RecordsPastTheirAgeGoExceptSecurityRecords) {
  open();
  const auto old = kNow - hours(48);
  ASSERT_TRUE(put(1, Priority::telemetry, 100, old));
  ASSERT_TRUE(put(2, Priority::security, 100, old));
  ASSERT_TRUE(put(3, Priority::telemetry));
  EXPECT_EQ(stored(), (std::vector<std::uint64_t>{2, 3}));
  EXPECT_EQ(dropped(), (std::vector<std::uint64_t>{1}));
}

TEST_F(OutboxTest, AFullDiskIsAClearErrorAndLosesNothing_REQ29) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to mount a small tmpfs";
  if (mount("tmpfs", dir_.c_str(), "tmpfs", 0, "size=1m,mode=0700") != 0) {
    GTEST_SKIP() << "cannot mount a tmpfs here: " << std::strerror(errno);
  }
  mounted_ = true;
  open(64u << 20);
  std::uint64_t seq = 0;
  Result<PutOutcome> r = PutOutcome::stored;
  while (r && seq < 10000) r = put(++seq, Priority::security, 4096);
  ASSERT_FALSE(r) << "the tmpfs never filled";
  EXPECT_EQ(r.error().code, Errc::resource_exhausted);
  EXPECT_NE(r.error().message().find("the disk is full"), std::string::npos) << r.error().message();
  // Everything stored before is still there, and the chain state is the
  // last stored record's: the failed put changed nothing.
  const auto kept = stored();
  ASSERT_EQ(kept.size(), seq - 1);
  EXPECT_EQ(box_->chain_state()->next_sequence, seq);
  // The fleet acknowledges while the disk is still full (the outbox must
  // drain): then the same record goes in.
  for (std::uint64_t s = 1; s <= 20; ++s) {
    auto acked = box_->ack(s);
    ASSERT_TRUE(acked) << acked.error().message();
  }
  auto again = put(seq, Priority::security, 4096);
  ASSERT_TRUE(again) << again.error().message();
  EXPECT_EQ(*again, PutOutcome::stored);
}

// Whether this process maps the outbox's WAL index (its open connection).
bool maps_wal_index(const std::string& dir) {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    if (line.find(dir + "/outbox.db-shm") != std::string::npos) return true;
  }
  return false;
}

TEST_F(OutboxTest, AnIdleOutboxLetsGoOfItsConnectionAndOpensAgainWhenNeeded) {
  open();
  ASSERT_TRUE(put(1, Priority::telemetry));
  EXPECT_TRUE(maps_wal_index(dir_));
  // A record sent, waiting for the fleet: looking past it finds nothing,
  // and is no use; the connection goes, and comes back for the record.
  EXPECT_FALSE(box_->release_idle(std::chrono::hours(1)));
  ASSERT_TRUE(box_->release_idle(std::chrono::milliseconds(0)));
  EXPECT_FALSE(maps_wal_index(dir_));
  auto past = box_->from(2, 10);
  ASSERT_TRUE(past);
  EXPECT_TRUE(past->empty());
  EXPECT_FALSE(maps_wal_index(dir_));
  EXPECT_EQ(stored(), (std::vector<std::uint64_t>{1}));
  EXPECT_TRUE(maps_wal_index(dir_));
  ASSERT_TRUE(box_->ack(1));
  // Just used: it stays.
  EXPECT_FALSE(box_->release_idle(std::chrono::hours(1)));
  EXPECT_TRUE(box_->release_idle(std::chrono::milliseconds(0)));
  EXPECT_FALSE(maps_wal_index(dir_));
  // The WAL stays on disk (opening again needs no new blocks).
  EXPECT_TRUE(std::filesystem::exists(dir_ + "/outbox.db-wal"));
  // The sender's idle looks (from its cursor, past what it sent) find
  // nothing without opening it.
  auto none = box_->from(2, 10);
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->empty());
  EXPECT_FALSE(maps_wal_index(dir_));
  // The next record opens it again, and the chain goes on from the state
  // the last record left.
  EXPECT_EQ(box_->chain_state()->next_sequence, 2u);
  ASSERT_TRUE(put(2, Priority::security));
  EXPECT_TRUE(maps_wal_index(dir_));
  EXPECT_EQ(stored(), (std::vector<std::uint64_t>{2}));
  // Record 2 was written after the release: a look from 2 on opens again.
  ASSERT_TRUE(box_->release_idle(std::chrono::milliseconds(0)));
  auto two = box_->from(2, 10);
  ASSERT_TRUE(two);
  ASSERT_EQ(two->size(), 1u);
  EXPECT_EQ(two->front().sequence, 2u);
}

TEST_F(OutboxTest, ReleasedOnAFullDiskItOpensAgainAndSaysTheDiskIsFull) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to mount a small tmpfs";
  if (mount("tmpfs", dir_.c_str(), "tmpfs", 0, "size=1m,mode=0700") != 0) {
    GTEST_SKIP() << "cannot mount a tmpfs here: " << std::strerror(errno);
  }
  mounted_ = true;
  open();
  ASSERT_TRUE(put(1, Priority::security, 4096));
  ASSERT_TRUE(box_->ack(1));
  ASSERT_TRUE(box_->release_idle(std::chrono::milliseconds(0)));
  {
    // The rest of the disk taken by someone else.
    std::ofstream filler(dir_ + "/filler", std::ios::binary);
    const std::string block(4096, 'f');
    while (filler.write(block.data(), block.size())) {
    }
  }
  std::uint64_t seq = 1;
  Result<PutOutcome> r = PutOutcome::stored;
  while (r && seq < 1000) r = put(++seq, Priority::security, 4096);
  ASSERT_FALSE(r) << "the tmpfs never filled";
  EXPECT_EQ(r.error().code, Errc::resource_exhausted) << r.error().message();
  std::filesystem::remove(dir_ + "/filler");
  auto again = put(seq, Priority::security, 4096);
  ASSERT_TRUE(again) << again.error().message();
  EXPECT_EQ(stored().back(), seq);
}

TEST_F(OutboxTest, ACorruptChainStateIsRefusedNotRestarted) {
  open();
  ASSERT_TRUE(put(1, Priority::telemetry));
  box_.reset();
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open((dir_ + "/outbox.db").c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "UPDATE chain SET next_seq = 0", nullptr, nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close(db);
  }
  open();
  auto st = box_->chain_state();
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message().find("refusing to reuse sequence numbers"), std::string::npos)
      << st.error().message();
}

TEST_F(OutboxTest, AnUnopenablePathIsAClearError) {
  auto b = Outbox::open({dir_ + "/no/such/dir/outbox.db"});
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().message(),
            "outbox " + dir_ + "/no/such/dir/outbox.db: cannot open: No such file or directory");
}

TEST_F(OutboxTest, ABatchIsStoredInOneTransactionWithTheChainStateAfterItsLast) {
  open();
  std::vector<Record> run;
  for (std::uint64_t s = 1; s <= 50; ++s) {
    run.push_back({s, Priority::telemetry, kNow, std::string(100, 'e'),
                   "digest-" + std::to_string(s), "digest-" + std::to_string(s - 1)});
  }
  envelope::ChainState after{3, 51, crypto::Bytes(32, 0x51)};
  auto outcomes = box_->put_batch(run, after, kNow);
  ASSERT_TRUE(outcomes) << outcomes.error().message();
  EXPECT_EQ(outcomes->size(), 50u);
  open();
  EXPECT_EQ(stored().size(), 50u);
  auto st = box_->chain_state();
  ASSERT_TRUE(st);
  EXPECT_EQ(st->next_sequence, 51u);
  EXPECT_EQ(st->session_epoch, 3u);
  auto page = box_->from(49, 10);
  ASSERT_TRUE(page);
  ASSERT_EQ(page->size(), 2u);
  EXPECT_EQ(page->front().sequence, 49u);
  std::vector<std::uint64_t> acks{1, 2, 3, 49};
  ASSERT_TRUE(box_->ack_all(acks));
  EXPECT_EQ(stored().size(), 46u);
  EXPECT_EQ(box_->stats()->bytes, 46u * 100);
}

TEST_F(OutboxTest, ADropKeepsWhatTheFleetNeedsToFollowTheChainAcrossIt) {
  open(250);
  ASSERT_EQ(*put(1, Priority::telemetry), PutOutcome::stored);
  ASSERT_EQ(*put(2, Priority::telemetry), PutOutcome::stored);
  ASSERT_EQ(*put(3, Priority::security), PutOutcome::stored);  // 1 goes
  auto drops = box_->drops(10);
  ASSERT_TRUE(drops);
  ASSERT_EQ(drops->size(), 1u);
  EXPECT_EQ((*drops)[0].sequence, 1u);
  EXPECT_EQ((*drops)[0].digest, "digest-1");
  EXPECT_EQ((*drops)[0].prev_digest, "digest-0");
}

TEST_F(OutboxTest, AVersionOneFileIsMigratedKeepingItsRecords) {
  const std::string path = dir_ + "/outbox.db";
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db,
                         "CREATE TABLE records (seq INTEGER PRIMARY KEY, priority INTEGER NOT "
                         "NULL, created_ms INTEGER NOT NULL, envelope BLOB NOT NULL, digest BLOB "
                         "NOT NULL, size INTEGER NOT NULL);"
                         "CREATE TABLE dropped (seq INTEGER PRIMARY KEY, priority INTEGER NOT "
                         "NULL, digest BLOB NOT NULL);"
                         "INSERT INTO records VALUES (9, 0, 0, x'01', x'02', 1);",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  ASSERT_EQ(::chmod(path.c_str(), 0600), 0);  // as the old outbox made it
  open();
  EXPECT_EQ(stored(), (std::vector<std::uint64_t>{9}));
  ASSERT_EQ(*put(10, Priority::telemetry), PutOutcome::stored);
  EXPECT_EQ(box_->oldest(2)->back().prev_digest, "digest-9");
}

TEST_F(OutboxTest, CountersSurviveAReopen) {
  open();
  EXPECT_EQ(*box_->counter("audit_cursor"), 0u);
  ASSERT_TRUE(box_->set_counter("audit_cursor", 41));
  ASSERT_TRUE(box_->set_counter("audit_cursor", 42));
  open();
  EXPECT_EQ(*box_->counter("audit_cursor"), 42u);
}

TEST_F(OutboxTest, AFileOthersCanReadIsRefused) {
  open();
  box_.reset();
  ASSERT_EQ(::chmod((dir_ + "/outbox.db").c_str(), 0644), 0);
  auto b = Outbox::open({dir_ + "/outbox.db", 1u << 20, std::chrono::hours(24)});
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().code, Errc::permission_denied);
  EXPECT_NE(b.error().message().find("0600"), std::string::npos) << b.error().message();
}

TEST_F(OutboxTest, AFileFromANewerPortierdIsRefused) {
  open();
  box_.reset();
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir_ + "/outbox.db").c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "PRAGMA user_version = 99", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  auto b = Outbox::open({dir_ + "/outbox.db", 1u << 20, std::chrono::hours(24)});
  ASSERT_FALSE(b);
  EXPECT_NE(b.error().message().find("newer"), std::string::npos) << b.error().message();
}

}  // namespace
}  // namespace portier::outbox
