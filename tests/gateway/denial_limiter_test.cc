// The per-uid rate limit of denial records: a token bucket per key, counted
// suppressions reported when the key is admitted again or after a while.
// A fake clock: no sleeps. REQ-28 (abnormal events audited without flooding).
#include "agent/denial_limiter.h"

#include <gtest/gtest.h>

namespace portier::agent {
namespace {

using namespace std::chrono_literals;

struct FakeClock {
  DenialLimiter::TimePoint now{};
  DenialLimiter::Clock fn() {
    return [this] { return now; };
  }
};

TEST(DenialLimiterTest, BurstThenRateAndSuppressedDenialsAreCounted_REQ28) {
  FakeClock clock;
  DenialLimiter limiter({20, 2, 10s, 4096}, clock.fn());
  std::uint64_t suppressed = 99;
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(limiter.admit("1000", &suppressed)) << i;
    EXPECT_EQ(suppressed, 0u);
  }
  for (int i = 0; i < 40; ++i) EXPECT_FALSE(limiter.admit("1000", &suppressed));
  EXPECT_EQ(limiter.suppressed_total(), 40u);
  // Another key has its own bucket.
  EXPECT_TRUE(limiter.admit("unidentified", &suppressed));
  // Half a second later the key has a token again: admitted, after one
  // report of the 40 suppressed.
  clock.now += 499ms;
  EXPECT_FALSE(limiter.admit("1000", &suppressed));
  clock.now += 1ms;
  ASSERT_TRUE(limiter.admit("1000", &suppressed));
  EXPECT_EQ(suppressed, 41u);
  EXPECT_FALSE(limiter.admit("1000", &suppressed));
  EXPECT_TRUE(limiter.due().empty());
}

TEST(DenialLimiterTest, SuppressedDenialsAreReportedAtTheLatestAfterTheInterval_REQ28) {
  FakeClock clock;
  DenialLimiter limiter({2, 0.01, 10s, 4096}, clock.fn());
  std::uint64_t suppressed = 0;
  EXPECT_FALSE(limiter.next_due());
  limiter.admit("7", &suppressed);
  limiter.admit("7", &suppressed);
  clock.now += 1s;
  EXPECT_FALSE(limiter.admit("7", &suppressed));
  EXPECT_FALSE(limiter.admit("7", &suppressed));
  ASSERT_TRUE(limiter.next_due());
  EXPECT_EQ(*limiter.next_due(), DenialLimiter::TimePoint{} + 11s);
  clock.now += 9999ms;
  EXPECT_TRUE(limiter.due().empty());
  clock.now += 1ms;
  auto due = limiter.due();
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].key, "7");
  EXPECT_EQ(due[0].count, 2u);
  EXPECT_TRUE(limiter.due().empty());
  EXPECT_FALSE(limiter.next_due());
  EXPECT_EQ(limiter.suppressed_total(), 2u);
}

TEST(DenialLimiterTest, KeysAreBoundedAndIdleOnesForgotten) {
  FakeClock clock;
  DenialLimiter limiter({1, 1, 10s, 2}, clock.fn());
  std::uint64_t suppressed = 0;
  EXPECT_TRUE(limiter.admit("1", &suppressed));
  EXPECT_TRUE(limiter.admit("2", &suppressed));
  // Both buckets are empty: a third uid shares the key "other".
  EXPECT_TRUE(limiter.admit("3", &suppressed));
  EXPECT_FALSE(limiter.admit("4", &suppressed));
  // Refilled buckets with nothing to report are forgotten to make room.
  clock.now += 5s;
  EXPECT_TRUE(limiter.admit("5", &suppressed));
  EXPECT_FALSE(limiter.admit("5", &suppressed));
  // The shared key's suppressed denial is still reported.
  clock.now += 5s;
  auto due = limiter.due();
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].key, "other");
  EXPECT_EQ(due[0].count, 1u);
}

}  // namespace
}  // namespace portier::agent
