// The command-APDU parser: every ISO 7816-4 case in short and extended
// form, the length limits, and what it refuses (REQ-18: APDUs reach a card
// through the gateway only when well-formed).
#include "pcsc/apdu.h"

#include <gtest/gtest.h>

#include <string>

namespace portier::drivers {
namespace {

using namespace std::string_literals;

std::string header() { return "\x00\xA4\x04\x00"s; }

TEST(Apdu, Case1IsTheBareHeader) {
  auto c = parse_command_apdu(header());
  ASSERT_TRUE(c.ok) << c.reason;
  EXPECT_EQ(c.command.iso_case, 1);
  EXPECT_FALSE(c.command.extended);
  EXPECT_EQ(c.command.cla, 0x00);
  EXPECT_EQ(c.command.ins, 0xA4);
  EXPECT_EQ(c.command.p1, 0x04);
  EXPECT_EQ(c.command.p2, 0x00);
  EXPECT_EQ(c.command.nc, 0u);
  EXPECT_EQ(c.command.ne, 0u);
}

TEST(Apdu, Case2ShortLeZeroMeans256) {
  auto c = parse_command_apdu(header() + "\x00"s);
  ASSERT_TRUE(c.ok) << c.reason;
  EXPECT_EQ(c.command.iso_case, 2);
  EXPECT_EQ(c.command.ne, 256u);
  c = parse_command_apdu(header() + "\x10"s);
  ASSERT_TRUE(c.ok);
  EXPECT_EQ(c.command.ne, 16u);
}

TEST(Apdu, Case3And4Short) {
  auto c = parse_command_apdu(header() + "\x07\xA0\x00\x00\x00\x03\x10\x10"s);
  ASSERT_TRUE(c.ok) << c.reason;
  EXPECT_EQ(c.command.iso_case, 3);
  EXPECT_EQ(c.command.nc, 7u);
  EXPECT_EQ(c.command.data_offset, 5u);
  EXPECT_EQ(c.command.ne, 0u);

  c = parse_command_apdu(header() + "\x07\xA0\x00\x00\x00\x03\x10\x10\x00"s);
  ASSERT_TRUE(c.ok) << c.reason;
  EXPECT_EQ(c.command.iso_case, 4);
  EXPECT_EQ(c.command.nc, 7u);
  EXPECT_EQ(c.command.ne, 256u);

  c = parse_command_apdu(header() + "\xFF"s + std::string(255, 'x') + "\x01"s);
  ASSERT_TRUE(c.ok) << c.reason;
  EXPECT_EQ(c.command.iso_case, 4);
  EXPECT_EQ(c.command.nc, 255u);
  EXPECT_EQ(c.command.ne, 1u);
}

TEST(Apdu, ExtendedCases) {
  auto c = parse_command_apdu(header() + "\x00\x00\x00"s);  // 2E, Le 0000
  ASSERT_TRUE(c.ok) << c.reason;
  EXPECT_EQ(c.command.iso_case, 2);
  EXPECT_TRUE(c.command.extended);
  EXPECT_EQ(c.command.ne, 65536u);

  c = parse_command_apdu(header() + "\x00\x01\x00"s + std::string(256, 'd'));  // 3E
  ASSERT_TRUE(c.ok) << c.reason;
  EXPECT_EQ(c.command.iso_case, 3);
  EXPECT_TRUE(c.command.extended);
  EXPECT_EQ(c.command.nc, 256u);
  EXPECT_EQ(c.command.data_offset, 7u);

  c = parse_command_apdu(header() + "\x00\x01\x00"s + std::string(256, 'd') + "\x02\x00"s);
  ASSERT_TRUE(c.ok) << c.reason;
  EXPECT_EQ(c.command.iso_case, 4);
  EXPECT_EQ(c.command.ne, 512u);
}

TEST(Apdu, LargestExtendedApduIs65544BytesAndOneMoreIsRefused) {
  const std::string largest = header() + "\x00\xFF\xFF"s + std::string(65535, 'd') + "\x00\x00"s;
  ASSERT_EQ(largest.size(), kMaxCommandApdu);
  ASSERT_EQ(kMaxCommandApdu, 65544u);
  auto c = parse_command_apdu(largest);
  ASSERT_TRUE(c.ok) << c.reason;
  EXPECT_EQ(c.command.iso_case, 4);
  EXPECT_EQ(c.command.nc, 65535u);
  EXPECT_EQ(c.command.ne, 65536u);

  c = parse_command_apdu(largest + "\x00"s);
  EXPECT_FALSE(c.ok);
  EXPECT_NE(c.reason.find("65545 bytes"), std::string::npos) << c.reason;
  EXPECT_FALSE(parse_command_apdu(std::string(100000, '\0')).ok);
}

TEST(Apdu, MalformedCommandsAreRefusedWithAReason) {
  const std::string bad[] = {
      ""s,
      "\x00\xA4\x04"s,                         // short header
      header() + "\x05\x01\x02"s,              // Lc 5, 2 bytes of data
      header() + "\x02\x01\x02\x03\x04"s,      // Lc 2, 4 bytes follow
      header() + "\x00\x01"s,                  // 6 bytes, zero P3
      header() + "\x00\x00\x00\x01"s,          // extended Lc 0 with data
      header() + "\x00\x00\x05\x01\x02"s,      // extended Lc 5, 2 bytes
      header() + "\x00\x00\x02\x01\x02\x00"s,  // extended case 4 with a 1-byte Le
      "\x00\x61\x00\x00"s,                     // INS 6X
      "\x00\x9F\x00\x00\x00"s,                 // INS 9X
  };
  for (const auto& apdu : bad) {
    auto c = parse_command_apdu(apdu);
    EXPECT_FALSE(c.ok) << "accepted an APDU of " << apdu.size() << " bytes";
    EXPECT_FALSE(c.reason.empty());
  }
}

// Reasons go to audit records: lengths only, never the APDU's bytes.
TEST(Apdu, ReasonsNeverQuoteTheBytes) {
  const std::string secret = "\x00\xA4\x04\x00\x20"s + "4111SECRET"s;
  auto c = parse_command_apdu(secret);
  ASSERT_FALSE(c.ok);
  EXPECT_EQ(c.reason.find("SECRET"), std::string::npos) << c.reason;
  EXPECT_EQ(c.reason.find("4111"), std::string::npos) << c.reason;
}

TEST(Apdu, ReaderCommandsAreParsedAndFlagged) {
  auto c = parse_command_apdu("\xFF\xCA\x00\x00\x00"s);
  ASSERT_TRUE(c.ok) << c.reason;
  EXPECT_TRUE(c.command.reader_command());
  EXPECT_FALSE(parse_command_apdu(header()).command.reader_command());
}

TEST(Apdu, StatusWords) {
  EXPECT_EQ(status_word("\x90\x00"s), 0x9000);
  EXPECT_EQ(status_word("data\x6A\x82"s), 0x6A82);
  EXPECT_EQ(status_word("\x90"s), std::nullopt);
  EXPECT_EQ(status_word_hex(0x9000), "9000");
  EXPECT_EQ(status_word_hex(0x6A82), "6A82");
  EXPECT_EQ(status_word_hex(0x0001), "0001");
  EXPECT_TRUE(status_word_success(0x9000));
  EXPECT_TRUE(status_word_success(0x6110));
  EXPECT_FALSE(status_word_success(0x6A82));
  EXPECT_EQ(status_word_meaning(0x6700), "wrong length");
  EXPECT_EQ(status_word_meaning(0x9000), "success");
}

}  // namespace
}  // namespace portier::drivers
