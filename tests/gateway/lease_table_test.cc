// The lease table alone, on a clock the test steps: no daemon, no waiting.
#include "lease_table.h"

#include <gtest/gtest.h>

#include "hub_test_util.h"

namespace portier::gateway {
namespace {

using std::chrono::seconds;

TEST(LeaseTable, ALeaseExpiresWhenItsTimeIsUpAndNotBefore) {
  test::SteppedClock clock;
  LeaseTable t(clock.lease_clock());
  auto l = t.grant("scanner0", 1, {}, "payment", 10);
  ASSERT_TRUE(l) << l.error().message();
  EXPECT_EQ(l->lease_id.size(), 32u);
  EXPECT_EQ(t.seconds_left(*l), 10);
  clock.step(seconds(9));
  EXPECT_TRUE(t.expired().empty());
  EXPECT_EQ(t.seconds_left(*t.holder("scanner0")), 1);
  clock.step(seconds(1));
  EXPECT_EQ(t.expired(), std::vector<std::string>{"scanner0"});
  EXPECT_TRUE(t.remove("scanner0"));
  EXPECT_EQ(t.holder("scanner0"), nullptr);
  EXPECT_FALSE(t.next_expiry());
}

TEST(LeaseTable, RenewRestartsTheTimeForItsHolderOnly) {
  test::SteppedClock clock;
  LeaseTable t(clock.lease_clock());
  auto l = t.grant("card0", 7, {}, "", 10);
  ASSERT_TRUE(l);
  clock.step(seconds(8));
  auto other = t.renew(l->lease_id, 8, 30);
  ASSERT_FALSE(other);
  EXPECT_EQ(other.error().code, Errc::not_found);
  auto r = t.renew(l->lease_id, 7, 30);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->seconds, 30u);
  clock.step(seconds(29));
  EXPECT_TRUE(t.expired().empty());
  clock.step(seconds(1));
  EXPECT_EQ(t.expired().size(), 1u);
}

TEST(LeaseTable, ADeviceHasOneLeaseAndADisconnectFindsAllOfAConnection) {
  LeaseTable t;
  ASSERT_TRUE(t.grant("a", 1, {}, "", 30));
  ASSERT_TRUE(t.grant("b", 1, {}, "", 30));
  ASSERT_TRUE(t.grant("c", 2, {}, "", 30));
  auto again = t.grant("a", 2, {}, "", 30);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, Errc::already_exists);
  EXPECT_EQ(t.held_by(1), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(t.find(t.holder("a")->lease_id, 2), nullptr);  // not the holder
  EXPECT_NE(t.find(t.holder("a")->lease_id, 1), nullptr);
  EXPECT_NE(t.holder("a")->lease_id, t.holder("b")->lease_id);
}

TEST(LeaseTable, NextExpiryIsTheEarliest) {
  test::SteppedClock clock;
  LeaseTable t(clock.lease_clock());
  ASSERT_TRUE(t.grant("a", 1, {}, "", 30));
  ASSERT_TRUE(t.grant("b", 1, {}, "", 5));
  ASSERT_TRUE(t.next_expiry());
  EXPECT_EQ(*t.next_expiry(), clock.lease_clock().steady() + seconds(5));
}

}  // namespace
}  // namespace portier::gateway
