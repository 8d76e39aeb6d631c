// The pairing agent's answers, without D-Bus (the driver tests run them
// against the bluez5 mock).
#include "bluetooth/pairing_agent.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

namespace portier::drivers {
namespace {

using K = AgentRequest::Kind;
constexpr const char* kDev = "/org/bluez/hci0/dev_11_22_33_44_55_66";

AgentRequest req(K kind, std::uint32_t passkey = 0) {
  AgentRequest r;
  r.kind = kind;
  r.device = kDev;
  r.passkey = passkey;
  return r;
}

TEST(PairingParams, ParsesEachSecret) {
  auto s = parse_pairing_params({{"pin", "0000"}, {"passkey", "000042"}, {"confirm", "999999"}});
  ASSERT_TRUE(s.has_value()) << s.error().message();
  EXPECT_EQ(*s->pin, "0000");
  EXPECT_EQ(*s->passkey, 42u);
  EXPECT_EQ(*s->confirm, 999999u);
  auto none = parse_pairing_params({});
  ASSERT_TRUE(none.has_value());
  EXPECT_FALSE(none->pin || none->passkey || none->confirm);
}

TEST(PairingParams, RefusesBadValuesNamingTheKeyOnly) {
  for (auto p : std::vector<std::map<std::string, std::string>>{{{"pin", ""}},
                                                                {{"pin", std::string(17, '7')}},
                                                                {{"pin", "12\x01"}},
                                                                {{"passkey", ""}},
                                                                {{"passkey", "1000000"}},
                                                                {{"passkey", "+12"}},
                                                                {{"confirm", "12 34"}},
                                                                {{"other", "x"}}}) {
    auto r = parse_pairing_params(p);
    ASSERT_FALSE(r.has_value()) << p.begin()->first;
    EXPECT_EQ(r.error().code, Errc::invalid_argument);
    EXPECT_NE(r.error().message().find("params." + p.begin()->first), std::string::npos);
  }
}

TEST(PairingAgent, AnswersOnlyDuringAPairingItWasGiven) {
  PairingAgent a;
  auto unsolicited = a.answer(req(K::request_pin_code));
  EXPECT_FALSE(unsolicited.ok);
  EXPECT_EQ(unsolicited.error, "org.bluez.Error.Rejected");
  EXPECT_FALSE(a.answer(req(K::request_authorization)).ok);

  const auto token = a.begin(kDev, {"8080", 123456, std::nullopt});
  ASSERT_NE(token, 0u);
  EXPECT_TRUE(a.pairing(kDev));
  auto pin = a.answer(req(K::request_pin_code));
  ASSERT_TRUE(pin.ok);
  EXPECT_EQ(pin.pin, "8080");
  auto passkey = a.answer(req(K::request_passkey));
  ASSERT_TRUE(passkey.ok);
  EXPECT_EQ(passkey.passkey, 123456u);
  EXPECT_TRUE(a.answer(req(K::request_authorization)).ok);
  EXPECT_TRUE(a.answer(req(K::display_passkey, 5)).ok);
  EXPECT_EQ(a.end(kDev, token), "");
  EXPECT_FALSE(a.pairing(kDev));
  EXPECT_FALSE(a.answer(req(K::request_pin_code)).ok);
}

TEST(PairingAgent, RefusalsSayWhatToPassAndAreKeptForTheAction) {
  PairingAgent a;
  const auto token = a.begin(kDev, {});
  auto r = a.answer(req(K::request_passkey));
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.message.find("params passkey="), std::string::npos);
  EXPECT_EQ(a.end(kDev, token), r.message);
}

TEST(PairingAgent, NumericComparisonNeedsTheSameDigits) {
  PairingAgent a;
  a.begin(kDev, {std::nullopt, std::nullopt, 314159});
  EXPECT_TRUE(a.answer(req(K::request_confirmation, 314159)).ok);
  auto wrong = a.answer(req(K::request_confirmation, 271828));
  EXPECT_FALSE(wrong.ok);
  EXPECT_EQ(wrong.message.find("271828"), std::string::npos);
  EXPECT_EQ(wrong.message.find("314159"), std::string::npos);
}

TEST(PairingAgent, ServiceAuthorizationIsNeverGrantedAndReleaseForgetsAll) {
  PairingAgent a;
  a.begin(kDev, {"1", std::nullopt, std::nullopt});
  EXPECT_FALSE(a.answer(req(K::authorize_service)).ok);
  EXPECT_TRUE(a.answer(req(K::release)).ok);
  EXPECT_FALSE(a.pairing(kDev));
}

// One pairing per device at a time: a second pair action (another app, or
// a retry while BlueZ still pairs) cannot swap the secrets, and the end of
// an older action cannot take away those of the running one.
TEST(PairingAgent, OnePairingPerDeviceAndStaleEndsChangeNothing) {
  PairingAgent a;
  const auto first = a.begin(kDev, {"1111", std::nullopt, std::nullopt});
  ASSERT_NE(first, 0u);
  EXPECT_EQ(a.begin(kDev, {"2222", std::nullopt, std::nullopt}), 0u);
  EXPECT_EQ(a.answer(req(K::request_pin_code)).pin, "1111");
  EXPECT_EQ(a.end(kDev, first + 1), "");
  EXPECT_TRUE(a.pairing(kDev));
  a.end(kDev, first);
  const auto second = a.begin(kDev, {"2222", std::nullopt, std::nullopt});
  ASSERT_NE(second, 0u);
  EXPECT_NE(second, first);
  a.end(kDev, first);  // stale
  EXPECT_EQ(a.answer(req(K::request_pin_code)).pin, "2222");
}

}  // namespace
}  // namespace portier::drivers
