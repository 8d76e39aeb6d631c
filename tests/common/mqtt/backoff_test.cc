// The reconnection delays: bounded, growing, spread, and small again after
// a success.
#include "common/mqtt/backoff.h"

#include <gtest/gtest.h>

#include <set>

namespace portier::mqtt {
namespace {

using std::chrono::milliseconds;

TEST(Backoff, EveryDelayStaysUnderTheCeilingAndTheMaximum) {
  Backoff b(milliseconds(100), milliseconds(5000), 42);
  for (int i = 0; i < 200; ++i) {
    const auto ceiling = b.ceiling();
    const auto d = b.next();
    EXPECT_GE(d.count(), 0);
    EXPECT_LE(d, ceiling);
    EXPECT_LE(d, milliseconds(5000));
  }
}

TEST(Backoff, TheCeilingDoublesFromTheMinimumUntilTheMaximum) {
  Backoff b(milliseconds(100), milliseconds(1000), 1);
  std::vector<long> ceilings;
  for (int i = 0; i < 6; ++i) {
    ceilings.push_back(b.ceiling().count());
    b.next();
  }
  EXPECT_EQ(ceilings, (std::vector<long>{100, 200, 400, 800, 1000, 1000}));
}

TEST(Backoff, ManyAttemptsNeverOverflowTheCeiling) {
  Backoff b(milliseconds(1), milliseconds(3'600'000), 7);
  for (int i = 0; i < 10'000; ++i) b.next();
  EXPECT_EQ(b.ceiling(), milliseconds(3'600'000));
}

TEST(Backoff, DelaysAreSpreadOverTheWholeRangeNotInLockstep) {
  // Full jitter: terminals that lost the same broker come back apart.
  std::set<long> first_delays;
  long below_half = 0, above_half = 0;
  for (std::uint64_t seed = 1; seed <= 200; ++seed) {
    Backoff b(milliseconds(1000), milliseconds(60'000), seed);
    const long d = b.next().count();
    first_delays.insert(d);
    (d < 500 ? below_half : above_half)++;
  }
  EXPECT_GT(first_delays.size(), 150u);  // 200 draws from 1001 values
  EXPECT_GT(below_half, 50);
  EXPECT_GT(above_half, 50);
}

TEST(Backoff, ResetAfterASuccessStartsFromTheMinimumAgain) {
  Backoff b(milliseconds(100), milliseconds(10'000), 3);
  for (int i = 0; i < 10; ++i) b.next();
  EXPECT_EQ(b.ceiling(), milliseconds(10'000));
  b.reset();
  EXPECT_EQ(b.ceiling(), milliseconds(100));
  EXPECT_LE(b.next(), milliseconds(100));
}

TEST(Backoff, NonsenseBoundsAreClampedNotTrusted) {
  Backoff b(milliseconds(0), milliseconds(-5), 9);
  EXPECT_EQ(b.ceiling(), milliseconds(1));
  EXPECT_LE(b.next(), milliseconds(1));
}

}  // namespace
}  // namespace portier::mqtt
