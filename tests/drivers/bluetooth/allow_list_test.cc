#include "bluetooth/allow_list.h"

#include <gtest/gtest.h>

namespace portier::drivers {
namespace {

BtAddress addr(const char* s) { return *BtAddress::parse(s); }

TEST(AllowList, EmptyAllowsEverything) {
  auto l = AllowList::parse({}, {});
  ASSERT_TRUE(l.has_value());
  EXPECT_FALSE(l->refusal(addr("AA:BB:CC:DD:EE:FF"), std::nullopt));
  EXPECT_FALSE(l->refusal(addr("AA:BB:CC:DD:EE:FF"), 0x5A020C));
}

TEST(AllowList, ExactAndPrefixAddresses) {
  auto l = AllowList::parse({"11:22:33:44:55:66", "aa:bb:cc:*", "01:*"}, {});
  ASSERT_TRUE(l.has_value()) << l.error().message();
  EXPECT_FALSE(l->refusal(addr("11:22:33:44:55:66"), std::nullopt));
  EXPECT_FALSE(l->refusal(addr("AA:BB:CC:00:00:01"), std::nullopt));
  EXPECT_FALSE(l->refusal(addr("01:02:03:04:05:06"), std::nullopt));
  auto why = l->refusal(addr("11:22:33:44:55:67"), std::nullopt);
  ASSERT_TRUE(why.has_value());
  EXPECT_NE(why->find("11:22:33:44:55:67"), std::string::npos);
  EXPECT_TRUE(l->refusal(addr("AA:BB:CD:00:00:01"), std::nullopt));
  ASSERT_EQ(l->exact_addresses().size(), 1u);
  EXPECT_EQ(l->exact_addresses()[0].str(), "11:22:33:44:55:66");
}

TEST(AllowList, ClassesByHexAndMajorName) {
  // 0x000540: peripheral / keyboard. 0x5A020C: phone / smartphone + services.
  auto l = AllowList::parse({}, {"0x000540", "phone"});
  ASSERT_TRUE(l.has_value()) << l.error().message();
  const auto a = addr("11:22:33:44:55:66");
  EXPECT_FALSE(l->refusal(a, 0x000540));
  EXPECT_FALSE(l->refusal(a, 0x002540));  // same device class, a service bit more
  EXPECT_FALSE(l->refusal(a, 0x5A020C));
  EXPECT_TRUE(l->refusal(a, 0x000580));  // peripheral / mouse
  EXPECT_TRUE(l->refusal(a, 0x00010C));  // computer / laptop
  auto none = l->refusal(a, std::nullopt);
  ASSERT_TRUE(none.has_value());
  EXPECT_NE(none->find("no class"), std::string::npos);

  // Service bits named in an entry must be present.
  auto svc = AllowList::parse({}, {"0x200540"});
  ASSERT_TRUE(svc.has_value());
  EXPECT_TRUE(svc->refusal(a, 0x000540));
  EXPECT_FALSE(svc->refusal(a, 0x202540));
}

TEST(AllowList, BothListsMustAllow) {
  auto l = AllowList::parse({"11:22:33:*"}, {"Peripheral"});
  ASSERT_TRUE(l.has_value());
  EXPECT_FALSE(l->refusal(addr("11:22:33:44:55:66"), 0x000540));
  EXPECT_TRUE(l->refusal(addr("11:22:33:44:55:66"), 0x5A020C));
  EXPECT_TRUE(l->refusal(addr("11:22:34:44:55:66"), 0x000540));
}

TEST(AllowList, RejectsBadEntries) {
  for (const char* bad :
       {"11:22:33", "11:22:33:*:*", "*", "11:22:33:44:55:66:*", "zz:*", "11:22:33*", ""}) {
    auto l = AllowList::parse({bad}, {});
    ASSERT_FALSE(l.has_value()) << bad;
    EXPECT_EQ(l.error().code, Errc::invalid_argument);
  }
  for (const char* bad : {"0x", "0x1000000", "keyboard", "540", ""}) {
    auto l = AllowList::parse({}, {bad});
    ASSERT_FALSE(l.has_value()) << bad;
    EXPECT_EQ(l.error().code, Errc::invalid_argument);
  }
  EXPECT_TRUE(AllowList::parse({}, {"audio-video", "UNCATEGORIZED", "0x1F00"}).has_value());
}

TEST(AllowList, FormatsClass) {
  EXPECT_EQ(format_device_class(0x5A020C), "0x5a020c");
  EXPECT_EQ(format_device_class(0), "0x000000");
}

}  // namespace
}  // namespace portier::drivers
