// Kernel uevent datagrams: the accepted format and every rejection.
#include "usb/uevent_parser.h"

#include <gtest/gtest.h>

#include <string>

#include "drivers/usb/usb_test_support.h"

namespace portier::drivers::usb {
namespace {

using namespace std::string_literals;
using testing::make_uevent;

constexpr const char* kDevpath = "/devices/pci0000:00/0000:00:14.0/usb1/1-1";

TEST(UeventParser, ParsesAKernelAddEvent) {
  const std::string d = make_uevent(
      "add", kDevpath,
      {{"DEVTYPE", "usb_device"}, {"PRODUCT", "c2e/b61/100"}, {"BUSNUM", "001"}, {"DEVNUM", "005"}},
      "usb", 1234);
  const auto r = parse_uevent(d);
  ASSERT_TRUE(r.ok) << r.reason;
  EXPECT_EQ(r.event.action, "add");
  EXPECT_EQ(r.event.devpath, kDevpath);
  EXPECT_EQ(r.event.subsystem, "usb");
  EXPECT_EQ(r.event.devtype, "usb_device");
  EXPECT_EQ(r.event.seqnum, 1234u);
  EXPECT_EQ(r.event.env.at("PRODUCT"), "c2e/b61/100");
  EXPECT_EQ(r.event.env.at("BUSNUM"), "001");
  EXPECT_EQ(r.event.env.size(), 8u);
}

TEST(UeventParser, LastFieldNeedsNoTerminator) {
  std::string d = make_uevent("remove", kDevpath);
  d.pop_back();  // no NUL after SEQNUM=...
  const auto r = parse_uevent(d);
  ASSERT_TRUE(r.ok) << r.reason;
  EXPECT_EQ(r.event.action, "remove");
  EXPECT_EQ(r.event.devtype, "");
  EXPECT_EQ(r.event.seqnum, 4242u);
}

TEST(UeventParser, AcceptsEveryKernelAction) {
  for (const char* a : {"add", "remove", "change", "move", "online", "offline", "bind", "unbind"}) {
    EXPECT_TRUE(parse_uevent(make_uevent(a, kDevpath)).ok) << a;
  }
}

TEST(UeventParser, RejectsUdevMonitorMessages) {
  // udev re-broadcasts with a binary header that starts with "libudev\0".
  std::string d = "libudev\0"s + "\xfe\xed\xca\xfe" + std::string(32, '\0') +
                  make_uevent("add", kDevpath).substr(0);
  const auto r = parse_uevent(d);
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.reason.find("libudev"), std::string::npos) << r.reason;
  EXPECT_NE(r.reason.find("not from the kernel"), std::string::npos) << r.reason;
}

struct Bad {
  const char* name;
  std::string datagram;
  const char* reason_part;
};

class UeventParserRejects : public ::testing::TestWithParam<Bad> {};

TEST_P(UeventParserRejects, WithAReason) {
  const auto r = parse_uevent(GetParam().datagram);
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.reason.find(GetParam().reason_part), std::string::npos) << r.reason;
  EXPECT_TRUE(r.event.action.empty());
}

std::string replace(std::string s, const std::string& from, const std::string& to) {
  const auto pos = s.find(from);
  if (pos != std::string::npos) s.replace(pos, from.size(), to);
  return s;
}

const std::string kGood = make_uevent("add", kDevpath, {{"DEVTYPE", "usb_device"}});

INSTANTIATE_TEST_SUITE_P(
    Malformed, UeventParserRejects,
    ::testing::Values(
        Bad{"empty", "", "empty message"},
        Bad{"no_at", "add/devices/x\0ACTION=add\0"s, "not ACTION@DEVPATH"},
        Bad{"unknown_action", replace(kGood, "add@", "explode@"), "unknown action"},
        Bad{"relative_devpath", replace(kGood, "add@/devices", "add@devices"), "not absolute"},
        Bad{"dotdot", replace(kGood, "add@/devices/", "add@/devices/../"), "\"..\" component"},
        Bad{"double_slash", replace(kGood, "add@/devices/", "add@/devices//"), "empty"},
        Bad{"control_char", replace(kGood, "add@/devices/", "add@/dev\x01ices/"),
            "control characters"},
        Bad{"header_only", "add@/devices/x"s, "no KEY=VALUE"},
        Bad{"header_only_nul", "add@/devices/x\0"s, "no KEY=VALUE"},
        Bad{"no_equals", replace(kGood, "SUBSYSTEM=usb", "SUBSYSTEMusb"), "is not KEY=VALUE"},
        Bad{"empty_key", replace(kGood, "SUBSYSTEM=usb", "=usb"), "is not KEY=VALUE"},
        Bad{"bad_key", replace(kGood, "DEVTYPE=", "DEV TYPE="), "has characters"},
        Bad{"empty_field", replace(kGood, "SUBSYSTEM=usb"s + '\0', "SUBSYSTEM=usb\0\0"s),
            "empty field at offset"},
        Bad{"duplicate", kGood + "ACTION=add"s + '\0', "duplicate key ACTION"},
        Bad{"missing_subsystem", replace(kGood, "SUBSYSTEM=usb"s + '\0', ""), "missing SUBSYSTEM"},
        Bad{"missing_seqnum", replace(kGood, "SEQNUM=4242"s + '\0', ""), "missing SEQNUM"},
        Bad{"action_mismatch", replace(kGood, "ACTION=add", "ACTION=remove"),
            "differs from the header"},
        Bad{"devpath_mismatch", replace(kGood, "DEVPATH=/devices/", "DEVPATH=/devices/x/"),
            "differs from the header"},
        Bad{"seqnum_text", replace(kGood, "SEQNUM=4242", "SEQNUM=42a"), "not a decimal"},
        Bad{"seqnum_negative", replace(kGood, "SEQNUM=4242", "SEQNUM=-1"), "not a decimal"},
        Bad{"seqnum_overflow", replace(kGood, "SEQNUM=4242", "SEQNUM=99999999999999999999999"),
            "not a decimal"},
        Bad{"empty_subsystem", replace(kGood, "SUBSYSTEM=usb", "SUBSYSTEM="), "empty SUBSYSTEM"},
        Bad{"oversized", kGood + "X=" + std::string(kMaxUeventSize, 'a'), "exceeds the limit"}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(UeventParser, RejectsMoreThan64Fields) {
  std::string d = kGood;
  for (int i = 0; i < 70; ++i) d += "K" + std::to_string(i) + "=v" + '\0';
  const auto r = parse_uevent(d);
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.reason.find("more than 64 fields"), std::string::npos) << r.reason;
}

TEST(UeventParser, ReasonsQuoteOnlyABoundedEscapedPrefix) {
  const std::string d = std::string(200, '\x01') + "@/x";
  const auto r = parse_uevent(d);
  EXPECT_FALSE(r.ok);
  EXPECT_LT(r.reason.size(), 200u);
  EXPECT_NE(r.reason.find("\\x01"), std::string::npos) << r.reason;
  EXPECT_NE(r.reason.find("..."), std::string::npos) << r.reason;
}

TEST(UeventSender, OnlyTheKernelOnGroupOne) {
  EXPECT_TRUE(check_uevent_sender(0, 1).ok);
  const auto user = check_uevent_sender(4711, 1);
  EXPECT_FALSE(user.ok);
  EXPECT_NE(user.reason.find("user-space port 4711"), std::string::npos) << user.reason;
  const auto udev = check_uevent_sender(0, 2);  // udev's group
  EXPECT_FALSE(udev.ok);
  EXPECT_NE(udev.reason.find("group mask 2"), std::string::npos) << udev.reason;
  EXPECT_FALSE(check_uevent_sender(0, 0).ok);  // unicast
  sockaddr_nl nl{};
  nl.nl_family = AF_NETLINK;
  nl.nl_pid = 0;
  nl.nl_groups = 1;
  EXPECT_TRUE(check_uevent_sender(nl).ok);
  nl.nl_pid = 99;
  EXPECT_FALSE(check_uevent_sender(nl).ok);
}

TEST(UeventParser, DevpathBasename) {
  EXPECT_EQ(devpath_basename("/devices/pci0000:00/usb1/1-1/1-1.2"), "1-1.2");
  EXPECT_EQ(devpath_basename("/devices/usb1/1-1/1-1:1.0"), "1-1:1.0");
  EXPECT_EQ(devpath_basename("usb1"), "usb1");
  EXPECT_EQ(devpath_basename("/x/"), "");
}

}  // namespace
}  // namespace portier::drivers::usb
