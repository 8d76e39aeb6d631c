// The driver's pure logic, without pcscd: device ids, which readers are
// offered and which are contactless, pinning alarms (REQ-3, REQ-4), and
// config validation.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "pcsc/pcsc_reader_driver.h"
#include "pcsc/pin_watch.h"
#include "pcsc/reader_ids.h"
#include "pcsc/reader_match.h"

namespace portier::drivers {
namespace {

TEST(ReaderIds, NumbersReadersInOrderOfFirstSightAndKeepsThem) {
  ReaderIds ids("reader", {});
  EXPECT_EQ(ids.id_for("A 00 00"), "reader0");
  EXPECT_EQ(ids.id_for("B 00 00"), "reader1");
  EXPECT_EQ(ids.id_for("A 00 00"), "reader0");  // seen again after a removal
  EXPECT_EQ(ids.id_for("C 00 00"), "reader2");
}

TEST(ReaderIds, PinnedNamesGetTheirIdsAndOthersSkipThem) {
  ReaderIds ids("reader", {{"reader0", "Pinned 00 00"}, {"door", "Door 00 00"}});
  EXPECT_EQ(ids.id_for("Other 00 00"), "reader1");  // reader0 is taken by the pin
  EXPECT_EQ(ids.id_for("Pinned 00 00"), "reader0");
  EXPECT_EQ(ids.id_for("Door 00 00"), "door");
  EXPECT_EQ(ids.pinned_id("Door 00 00"), "door");
  EXPECT_EQ(ids.pinned_id("Other 00 00"), std::nullopt);
}

TEST(ReaderMatch, AllowListGlobs) {
  EXPECT_TRUE(reader_allowed("anything", {}));
  EXPECT_TRUE(reader_allowed("ACS ACR1252 00 00", {"ACS *", "Gemalto*"}));
  EXPECT_FALSE(reader_allowed("Virtual PCD 00 00", {"ACS *"}));
  // Reader names carry brackets; an escaped bracket matches literally.
  EXPECT_TRUE(reader_allowed("ACS ACR1252 [PICC] 00 00", {"ACS ACR1252 \\[PICC\\] *"}));
}

// REQ-18: NFC readers are told apart from contact readers.
TEST(ReaderMatch, ContactlessByNameOrConfig) {
  EXPECT_TRUE(reader_contactless("ACS ACR1252 1S CL Reader [ACR1252 Reader PICC] 00 00", {}));
  EXPECT_TRUE(reader_contactless("Identiv uTrust 3700 F Contactless Reader 00 00", {}));
  EXPECT_TRUE(reader_contactless("SCM SCL3711 nfc reader 00 00", {}));
  EXPECT_FALSE(reader_contactless("Virtual PCD 00 00", {}));
  EXPECT_TRUE(reader_contactless("Virtual PCD 00 01", {"Virtual PCD 00 01"}));
}

// REQ-3, REQ-4: removal and substitution of pinned readers.
TEST(PinWatch, MissingAtStartRaisesDeviceRemoved) {
  PinWatch w(std::map<std::string, std::string>{{"door", "Door 00 00"}});
  auto changes = w.update({});
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].state.status, PinStatus::missing);
  ASSERT_TRUE(changes[0].alarm);
  EXPECT_EQ(changes[0].alarm->code, "device_removed");
  EXPECT_EQ(changes[0].alarm->details.at("expected"), "Door 00 00");
  EXPECT_TRUE(w.update({}).empty());  // nothing new, no repeat
}

TEST(PinWatch, RemovalThenSubstitutionThenReturn) {
  PinWatch w(std::map<std::string, std::string>{{"door", "Door 00 00"}});
  auto c = w.update({"Door 00 00"});
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].state.status, PinStatus::present);
  EXPECT_FALSE(c[0].alarm);

  c = w.update({});
  ASSERT_EQ(c.size(), 1u);
  ASSERT_TRUE(c[0].alarm);
  EXPECT_EQ(c[0].alarm->code, "device_removed");

  c = w.update({"Fake 00 00"});
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].state.status, PinStatus::substituted);
  ASSERT_TRUE(c[0].alarm);
  EXPECT_EQ(c[0].alarm->code, "device_substituted");
  EXPECT_EQ(c[0].alarm->details.at("expected"), "Door 00 00");
  EXPECT_EQ(c[0].alarm->details.at("actual"), "Fake 00 00");

  c = w.update({});  // the substitute left too: already reported, no alarm
  ASSERT_EQ(c.size(), 1u);
  EXPECT_FALSE(c[0].alarm);

  c = w.update({"Door 00 00"});
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].state.status, PinStatus::present);
  EXPECT_FALSE(c[0].alarm);
}

TEST(PinWatch, OtherPinnedReadersAreNotSubstitutes) {
  auto s = evaluate_pins({{"a", "A 00 00"}, {"b", "B 00 00"}}, {"B 00 00"});
  EXPECT_EQ(s.at("a").status, PinStatus::missing);
  EXPECT_EQ(s.at("b").status, PinStatus::present);
  s = evaluate_pins({{"a", "A 00 00"}, {"b", "B 00 00"}}, {"B 00 00", "X 00 00"});
  EXPECT_EQ(s.at("a").status, PinStatus::substituted);
  EXPECT_EQ(s.at("a").substitutes, (std::vector<std::string>{"X 00 00"}));
}

TEST(PcscConfigValidation, RefusesBadValues) {
  EXPECT_TRUE(PcscReaderDriver::validate(PcscConfig{}).has_value());
  auto bad = [](auto edit) {
    PcscConfig c;
    edit(c);
    return !PcscReaderDriver::validate(c).has_value();
  };
  EXPECT_TRUE(bad([](PcscConfig& c) { c.id_prefix = ""; }));
  EXPECT_TRUE(bad([](PcscConfig& c) { c.id_prefix = "a b"; }));
  EXPECT_TRUE(bad([](PcscConfig& c) { c.pinned = {{"x y", "R 00 00"}}; }));
  EXPECT_TRUE(bad([](PcscConfig& c) { c.pinned = {{"x", ""}}; }));
  EXPECT_TRUE(bad([](PcscConfig& c) { c.pinned = {{"x", "R 00 00"}, {"y", "R 00 00"}}; }));
  EXPECT_TRUE(bad([](PcscConfig& c) { c.readers_allowed = {""}; }));
  EXPECT_TRUE(bad([](PcscConfig& c) { c.contactless_readers = {""}; }));
  EXPECT_TRUE(bad([](PcscConfig& c) { c.transaction_timeout_ms = 0; }));
  EXPECT_TRUE(bad([](PcscConfig& c) { c.transaction_hold_ms = -1; }));
  EXPECT_TRUE(bad([](PcscConfig& c) { c.transaction_hold_ms = 60001; }));
  EXPECT_TRUE(bad([](PcscConfig& c) { c.poll_ms = 0; }));
  PcscConfig slow;
  slow.poll_ms = 1;
  auto r = PcscReaderDriver::validate(slow);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message().find("poll_ms"), std::string::npos);
}

}  // namespace
}  // namespace portier::drivers
