// The fan-out alone, with in-process subscribers: bounded queues, drop
// counts, per-device and claimant-only delivery. No daemon, no waiting.
#include "fan_out.h"

#include <gtest/gtest.h>

#include "queue_subscriber.h"

namespace portier::gateway {
namespace {

using Sub = QueueSubscriber<int>;
constexpr std::chrono::milliseconds kNow{0};

std::shared_ptr<const int> ev(int v) { return std::make_shared<const int>(v); }

TEST(FanOut, ASlowSubscriberDropsAndCountsOnlyItsOwnEvents) {
  FanOut<int> f;
  auto slow = std::make_shared<Sub>(2);
  auto fast = std::make_shared<Sub>(100);
  f.add({nullptr, 0, "", ""}, slow);
  f.add({nullptr, 0, "", ""}, fast);
  for (int i = 0; i < 5; ++i) f.deliver(ev(i), [](const Audience&) { return true; });
  EXPECT_EQ(slow->stats().queued, 2u);
  EXPECT_EQ(slow->stats().dropped, 3u);
  EXPECT_EQ(fast->stats().queued, 5u);
  EXPECT_EQ(fast->stats().dropped, 0u);
  EXPECT_EQ(*slow->next(kNow), 0);
  EXPECT_EQ(*slow->next(kNow), 1);
  EXPECT_EQ(slow->next(kNow), nullptr);
  EXPECT_EQ(slow->stats().delivered, 2u);
}

TEST(FanOut, AClaimedDevicesEventsGoToTheClaimantOnly) {
  FanOut<int> f;
  auto a = std::make_shared<Sub>(10), b = std::make_shared<Sub>(10);
  auto feature = std::make_shared<Sub>(10), other = std::make_shared<Sub>(10);
  f.add({nullptr, 1, "scanner0", "payment"}, a);
  f.add({nullptr, 2, "scanner0", "teller"}, b);
  f.add({nullptr, 0, "", ""}, feature);  // in process, every device
  f.add({nullptr, 3, "card0", ""}, other);
  EXPECT_EQ(f.deliver_device("scanner0", 0, ev(1)), 3u);  // free: all of scanner0's
  EXPECT_EQ(f.deliver_device("scanner0", 1, ev(2)), 1u);  // claimed by connection 1
  EXPECT_EQ(a->stats().queued, 2u);
  EXPECT_EQ(b->stats().queued, 1u);
  EXPECT_EQ(feature->stats().queued, 1u);
  EXPECT_EQ(other->stats().queued, 0u);
}

TEST(FanOut, EndedSubscriptionsAreForgottenAndToldWhy) {
  FanOut<int> f;
  auto a = std::make_shared<Sub>(10), b = std::make_shared<Sub>(10);
  auto ida = f.add({nullptr, 1, "scanner0", ""}, a);
  f.add({nullptr, 2, "card0", ""}, b);
  f.deliver_device("scanner0", 0, ev(1));
  f.end_if([](const Audience& x) { return x.device_id == "scanner0"; },
           fail_msg(Errc::not_found, "device removed"));
  ASSERT_TRUE(a->ended());
  EXPECT_EQ(a->ended()->error().message(), "device removed");
  EXPECT_EQ(a->next(kNow), nullptr);  // an error end drops what was queued
  EXPECT_FALSE(b->ended());
  f.remove(ida);  // already gone: harmless
  EXPECT_EQ(f.entries().size(), 1u);
  f.close(fail_msg(Errc::unavailable, "stopping"));
  EXPECT_TRUE(b->ended());
  EXPECT_EQ(f.add({nullptr, 4, "", ""}, std::make_shared<Sub>(1)), 0u);
}

}  // namespace
}  // namespace portier::gateway
