// A rotation the registry holds but the fleet's store has not taken yet
// (review finding REQ-33/1): the registry changed the key first and only
// then told the store; a retry arriving in between was handed the new
// certificate, and when the store then refused, the registry was undone
// while the terminal had already installed the certificate and destroyed
// its old key, the only one the fleet still accepted. The row is now
// marked "rotation pending" until the store took the key, and a retry
// meanwhile is answered UNAVAILABLE (the terminal keeps holding).
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "enrolment/enrolment_fixture.h"
#include "forwarding_store.h"
#include "tools/fleet/enrolment/issued_key_record.h"
#include "tools/fleet/sqlite_fleet_store.h"

namespace portier::test {
namespace {

using identity::RotationOutcome;

// A fleet store whose set_next_key (the store taking a rotated key) waits
// until released, then fails while `fail` is set.
class BlockingStore final : public fleet::testing::ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;
  Result<void> set_next_key(const std::string& id, const std::string& pem,
                            std::uint64_t cutover) override {
    std::unique_lock lock(mu_);
    ++entered_;
    cv_.notify_all();
    cv_.wait_for(lock, std::chrono::seconds(30), [&] { return released_; });
    if (fail) return fail_msg(Errc::io, "the fleet store's disk failed");
    lock.unlock();
    return ForwardingStore::set_next_key(id, pem, cutover);
  }
  bool wait_entered(int n) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(20), [&] { return entered_ >= n; });
  }
  void release() {
    std::lock_guard lock(mu_);
    released_ = true;
    cv_.notify_all();
  }
  std::atomic<bool> fail{true};

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int entered_ = 0;
  bool released_ = false;
};

class RotationPendingTest : public EnrolmentFixture {
 protected:
  void open_store() {
    auto s = fleet::SqliteFleetStore::open(dir_ + "/fleet.db");
    ASSERT_TRUE(s) << s.error().message();
    store_ = std::move(*s);
  }
  std::unique_ptr<fleet::SqliteFleetStore> store_;
};

TEST_F(RotationPendingTest, ARetryWhileTheStoreIsStillTakingTheKeyGetsNoCertificate_REQ33) {
  open_store();
  BlockingStore blocking(*store_);
  service_->on_issued([&](const fleet::IssuedKey& k) { return fleet::record_issued(blocking, k); });
  auto t = terminal("t1");
  ASSERT_TRUE(client(t).enroll(*t.identity));
  const std::string old_pem = *t.identity->signer()->public_key().to_pem();
  const std::string old_cert_pem = *t.identity->certificate()->cert.to_pem();
  ASSERT_TRUE(registry_->allow_rotation(t.terminal_id));
  auto req = rotation_request(*t.identity, 12);
  const std::string new_pem = *t.identity->pending_key()->to_pem();

  // The first Renew (its answer will be lost): the registry moved, the
  // store is still writing.
  std::optional<Result<v1::EnrollResponse>> first;
  std::thread lost([&] { first = service_->renew(old_cert_pem, req); });
  // Released and joined however this test ends.
  std::shared_ptr<void> join(nullptr, [&](void*) {
    blocking.release();
    if (lost.joinable()) lost.join();
  });
  ASSERT_TRUE(blocking.wait_entered(1));
  EXPECT_EQ((*registry_->find("SN-1001"))->public_key_pem, new_pem);
  EXPECT_NE((*registry_->find("SN-1001"))->rotation_pending_since, 0);

  // The terminal asks again in that gap: no certificate, ask again.
  auto retry = client(t).rotate_once(*t.identity, 12);
  EXPECT_EQ(retry.outcome, RotationOutcome::unknown) << (retry.error ? retry.error->message() : "");
  ASSERT_TRUE(retry.error);
  EXPECT_EQ(retry.error->code, Errc::unavailable) << retry.error->message();
  EXPECT_NE(retry.error->message().find("still being recorded"), std::string::npos)
      << retry.error->message();
  EXPECT_EQ(*t.identity->signer()->public_key().to_pem(), old_pem) << "the old key is kept";
  ASSERT_TRUE(t.identity->pending_key());

  // The store fails: the registry is undone, and the terminal, which holds
  // no certificate for the new key, still has its old key.
  blocking.release();
  lost.join();
  ASSERT_TRUE(first);
  EXPECT_FALSE(*first);
  auto rec = registry_->find("SN-1001");
  ASSERT_TRUE(rec && *rec);
  EXPECT_EQ((*rec)->public_key_pem, old_pem);
  EXPECT_EQ((*rec)->rotation_pending_since, 0);
  EXPECT_EQ((*store_->terminal(t.terminal_id)).public_key_pem, old_pem);

  // The store back: the same pending key and cutover rotate, and the store
  // holds the new key from the cutover.
  blocking.fail = false;
  auto again = client(t).rotate_once(*t.identity, 12);
  ASSERT_EQ(again.outcome, RotationOutcome::rotated) << (again.error ? again.error->message() : "");
  EXPECT_EQ(*t.identity->signer()->public_key().to_pem(), new_pem);
  auto keys = store_->keys(t.terminal_id);
  ASSERT_TRUE(keys) << keys.error().message();
  bool next = false;
  for (const auto& k : *keys) next |= k.public_key_pem == new_pem && k.cutover == 12;
  EXPECT_TRUE(next);
  EXPECT_EQ((*registry_->find("SN-1001"))->rotation_pending_since, 0);
}

// A fleet that stopped between its registry write and telling its store
// leaves the mark behind: a retry soon after is told to ask again; once the
// mark is stale (nothing in flight), the retry tells the store and gets
// the certificate recorded then.
TEST_F(RotationPendingTest, ARotationLeftPendingByAStoppedFleetIsFinishedByTheRetry_REQ33) {
  open_store();
  service_->on_issued([&](const fleet::IssuedKey& k) { return fleet::record_issued(*store_, k); });
  auto t = terminal("t1");
  ASSERT_TRUE(client(t).enroll(*t.identity));
  const std::string old_pem = *t.identity->signer()->public_key().to_pem();
  ASSERT_TRUE(registry_->allow_rotation(t.terminal_id));
  auto req = rotation_request(*t.identity, 9);
  auto csr = crypto::CertificateRequest::from_der(crypto::byte_view(req.csr()));
  ASSERT_TRUE(csr);
  const std::string new_pem = *csr->public_key()->to_pem();
  auto issued = ca_->issue_device(*csr, t.terminal_id, "SN-1001", std::chrono::system_clock::now());
  ASSERT_TRUE(issued) << issued.error().message();
  const auto der = *issued->der();
  // The fleet's first write, then it stops: the store never heard.
  const auto now_unix = std::chrono::duration_cast<std::chrono::seconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
  ASSERT_TRUE(registry_->replace_key("SN-1001", old_pem, new_pem, der,
                                     fleet::EnrolmentRegistry::KeyChange::rotation, now_unix));

  auto soon = client(t).rotate_once(*t.identity, 9);
  EXPECT_EQ(soon.outcome, RotationOutcome::unknown) << (soon.error ? soon.error->message() : "");
  EXPECT_EQ(*t.identity->signer()->public_key().to_pem(), old_pem);

  service_->set_clock([] { return std::chrono::system_clock::now() + std::chrono::minutes(10); });
  auto later = client(t).rotate_once(*t.identity, 9);
  ASSERT_EQ(later.outcome, RotationOutcome::rotated) << (later.error ? later.error->message() : "");
  EXPECT_EQ(*t.identity->certificate()->cert.der(), der) << "the certificate recorded then";
  auto keys = store_->keys(t.terminal_id);
  ASSERT_TRUE(keys) << keys.error().message();
  bool next = false;
  for (const auto& k : *keys) next |= k.public_key_pem == new_pem && k.cutover == 9;
  EXPECT_TRUE(next) << "the store was told before the certificate went out";
  EXPECT_EQ((*registry_->find("SN-1001"))->rotation_pending_since, 0);
}

}  // namespace
}  // namespace portier::test
