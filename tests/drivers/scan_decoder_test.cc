#include "serial_scanner/scan_decoder.h"

#include <gtest/gtest.h>
#include <iconv.h>

#include <cctype>
#include <string>
#include <utility>

#include "serial_scanner/aim_symbology.h"

namespace portier::drivers {
namespace {

using namespace std::string_literals;

// "中文支付码" in GB 18030, as a scanner configured for GB 18030 sends it.
const std::string kGbPayCode = "\xd6\xd0\xce\xc4\xd6\xa7\xb8\xb6\xc2\xeb";
const std::string kUtf8PayCode = "中文支付码";

ScanDecoder decoder(TextEncoding enc, std::string prefix = "", bool aim = true) {
  return ScanDecoder(DecoderOptions{std::move(prefix), aim, enc});
}

// Converts with iconv independently of the decoder under test.
std::string utf8_to_gb18030(const std::string& utf8) {
  iconv_t cd = iconv_open("GB18030", "UTF-8");
  EXPECT_NE(cd, reinterpret_cast<iconv_t>(-1));
  std::string out(utf8.size() * 4 + 8, '\0');
  char* in = const_cast<char*>(utf8.data());
  std::size_t in_left = utf8.size();
  char* o = out.data();
  std::size_t o_left = out.size();
  EXPECT_NE(iconv(cd, &in, &in_left, &o, &o_left), static_cast<std::size_t>(-1));
  iconv_close(cd);
  out.resize(out.size() - o_left);
  return out;
}

struct AimCase {
  std::string aim_id;
  std::string symbology;
};

class AimIdentifier : public ::testing::TestWithParam<AimCase> {};

TEST_P(AimIdentifier, IsRecordedNamedAndStripped) {
  const AimCase& c = GetParam();
  ScanData s = decoder(TextEncoding::automatic).decode(c.aim_id + "PAYLOAD-1");
  EXPECT_EQ(s.aim_id, c.aim_id);
  EXPECT_EQ(s.symbology, c.symbology);
  EXPECT_EQ(s.raw, "PAYLOAD-1");
  EXPECT_EQ(s.text, "PAYLOAD-1");
  EXPECT_EQ(s.encoding, "utf-8");
  EXPECT_FALSE(s.decode_error);
}

INSTANTIATE_TEST_SUITE_P(Iso15424, AimIdentifier,
                         ::testing::Values(AimCase{"]A0", "Code 39"}, AimCase{"]C1", "Code 128"},
                                           AimCase{"]d2", "Data Matrix"}, AimCase{"]E0", "EAN/UPC"},
                                           AimCase{"]E4", "EAN/UPC"}, AimCase{"]e0", "GS1 DataBar"},
                                           AimCase{"]F0", "Codabar"}, AimCase{"]G0", "Code 93"},
                                           AimCase{"]I1", "ITF"}, AimCase{"]L2", "PDF417"},
                                           AimCase{"]Q1", "QR Code"}, AimCase{"]z0", "Aztec"},
                                           AimCase{"]X0", "other"}),
                         [](const ::testing::TestParamInfo<AimCase>& info) {
                           const std::string& id = info.param.aim_id;
                           // gtest names are case-insensitive unique; keep the case visible.
                           return std::string(1, id[1]) +
                                  (std::islower(static_cast<unsigned char>(id[1])) ? "lower" : "") +
                                  id[2];
                         });

// REQ-22: an unknown AIM code is reported as such, never guessed.
TEST(ScanDecoder, UnknownAimCodeIsNamedUnknown) {
  ScanData s = decoder(TextEncoding::automatic).decode("]W1abc");
  EXPECT_EQ(s.aim_id, "]W1");
  EXPECT_EQ(s.symbology, "unknown (]W1)");
  EXPECT_EQ(s.raw, "abc");
  EXPECT_FALSE(aim_symbology('W').has_value());
  EXPECT_FALSE(aim_symbology(']').has_value());
}

TEST(ScanDecoder, NotAnAimIdentifierIsLeftAsData) {
  auto d = decoder(TextEncoding::automatic);
  for (const std::string& frame : {"]1xabc"s, "]Q"s, "]Q\x01z"s, "x]Q1"s}) {
    ScanData s = d.decode(frame);
    EXPECT_EQ(s.aim_id, "") << frame;
    EXPECT_EQ(s.symbology, "") << frame;
    EXPECT_EQ(s.raw, frame);
  }
}

TEST(ScanDecoder, AimDisabledKeepsIdentifierAsData) {
  ScanData s = decoder(TextEncoding::automatic, "", false).decode("]Q1abc");
  EXPECT_EQ(s.aim_id, "");
  EXPECT_EQ(s.raw, "]Q1abc");
  EXPECT_EQ(s.text, "]Q1abc");
}

TEST(ScanDecoder, PrefixIsStrippedBeforeAim) {
  auto d = decoder(TextEncoding::automatic, "\x02PFX");
  ScanData s = d.decode("\x02PFX]Q1abc");
  EXPECT_EQ(s.aim_id, "]Q1");
  EXPECT_EQ(s.raw, "abc");
  ScanData no_prefix = d.decode("]C1abc");
  EXPECT_EQ(no_prefix.aim_id, "]C1");
  EXPECT_EQ(no_prefix.raw, "abc");
  ScanData later = d.decode("abc\x02PFX");
  EXPECT_EQ(later.raw, "abc\x02PFX");
}

TEST(ScanDecoder, EmptyPayloadAfterAim) {
  ScanData s = decoder(TextEncoding::utf8).decode("]Q1");
  EXPECT_EQ(s.aim_id, "]Q1");
  EXPECT_EQ(s.raw, "");
  EXPECT_FALSE(s.decode_error);
}

// REQ-22: GB 18030 Chinese text is decoded to the same characters in UTF-8.
TEST(ScanDecoder, Gb18030ChineseText) {
  ASSERT_EQ(utf8_to_gb18030(kUtf8PayCode), kGbPayCode);
  ScanData s = decoder(TextEncoding::gb18030).decode("]Q1" + kGbPayCode);
  EXPECT_FALSE(s.decode_error);
  EXPECT_EQ(s.encoding, "gb18030");
  EXPECT_EQ(s.text, kUtf8PayCode);
  EXPECT_EQ(s.raw, kGbPayCode);
  EXPECT_EQ(s.symbology, "QR Code");
}

// REQ-22: four-byte GB 18030 sequences (outside the BMP) round-trip.
TEST(ScanDecoder, Gb18030FourByteSequences) {
  const std::string utf8 = "付款 \U0001F600 \u00e9\u0080";
  const std::string gb = utf8_to_gb18030(utf8);
  EXPECT_NE(gb.find("\x94\x39\xfc\x36"), std::string::npos);
  ScanData s = decoder(TextEncoding::gb18030).decode(gb);
  EXPECT_FALSE(s.decode_error);
  EXPECT_EQ(s.text, utf8);
}

// REQ-22: automatic mode decodes GB 18030 when the bytes are not UTF-8.
TEST(ScanDecoder, AutomaticFallsBackToGb18030) {
  ScanData s = decoder(TextEncoding::automatic).decode("]Q1" + kGbPayCode);
  EXPECT_FALSE(s.decode_error);
  EXPECT_EQ(s.encoding, "gb18030");
  EXPECT_EQ(s.text, kUtf8PayCode);
}

// Bytes that are valid UTF-8 (and also valid GB 18030) are always taken as
// UTF-8 in automatic mode, and the scan says which encoding was used.
// REQ-22: unambiguous decoding.
TEST(ScanDecoder, AutomaticPrefersValidUtf8) {
  const std::string utf8 = "中文";  // E4 B8 AD E6 96 87: also well-formed GB 18030
  ASSERT_TRUE(gb18030_to_utf8(utf8).has_value());
  ScanData s = decoder(TextEncoding::automatic).decode(utf8);
  EXPECT_EQ(s.encoding, "utf-8");
  EXPECT_EQ(s.text, utf8);
  ScanData ascii = decoder(TextEncoding::automatic).decode("]E04006381333931");
  EXPECT_EQ(ascii.encoding, "utf-8");
  EXPECT_EQ(ascii.text, "4006381333931");
}

// REQ-22: undecodable bytes are flagged, never passed off as text.
TEST(ScanDecoder, InvalidGb18030IsBinary) {
  for (const std::string& bad : {"\x81"s, "\x81\x7f"s, "ok\xff\xfe"s, "\x80"s, "\xd6"s}) {
    ScanData s = decoder(TextEncoding::gb18030).decode(bad);
    EXPECT_TRUE(s.decode_error) << testing::PrintToString(bad);
    EXPECT_EQ(s.encoding, "binary");
    EXPECT_EQ(s.text, "");
    EXPECT_EQ(s.raw, bad);
  }
}

// REQ-22: undecodable bytes are flagged, never passed off as text.
TEST(ScanDecoder, InvalidUtf8IsBinary) {
  ScanData s = decoder(TextEncoding::utf8).decode("]Q1" + kGbPayCode);
  EXPECT_TRUE(s.decode_error);
  EXPECT_EQ(s.encoding, "binary");
  EXPECT_EQ(s.text, "");
  EXPECT_EQ(s.raw, kGbPayCode);
  EXPECT_EQ(s.aim_id, "]Q1");
}

// REQ-22: bytes that are neither UTF-8 nor GB 18030 are binary in automatic mode.
TEST(ScanDecoder, AutomaticUndecodableIsBinary) {
  ScanData s = decoder(TextEncoding::automatic).decode("\xff\xfe\x80"s);
  EXPECT_TRUE(s.decode_error);
  EXPECT_EQ(s.encoding, "binary");
  EXPECT_EQ(s.text, "");
  EXPECT_EQ(s.raw, "\xff\xfe\x80"s);
}

// REQ-22: strict UTF-8 validation.
TEST(Utf8Validation, RejectsOverlongsSurrogatesAndOutOfRange) {
  for (const std::string& bad : {
           "\xc0\xaf"s,          // overlong '/'
           "\xc1\xbf"s,          // overlong
           "\xe0\x80\xaf"s,      // overlong 3-byte
           "\xf0\x80\x80\xaf"s,  // overlong 4-byte
           "\xed\xa0\x80"s,      // U+D800 surrogate
           "\xed\xbf\xbf"s,      // U+DFFF surrogate
           "\xf4\x90\x80\x80"s,  // U+110000
           "\xf5\x80\x80\x80"s,  // beyond any plane
           "\xff"s,              // never valid
           "\x80"s,              // lone continuation
           "\xe4\xb8"s,          // truncated
           "a\xe4\xb8z"s,        // bad continuation
       }) {
    EXPECT_FALSE(is_valid_utf8(bad)) << testing::PrintToString(bad);
  }
  for (const std::string& good :
       {""s, "plain ascii"s, "中文支付码"s, "\U0001F600"s, "\xf4\x8f\xbf\xbf"s /* U+10FFFF */,
        "\xed\x9f\xbf"s /* U+D7FF */, "a\0b"s}) {
    EXPECT_TRUE(is_valid_utf8(good)) << testing::PrintToString(good);
  }
}

// REQ-22: NUL bytes and control characters are kept, never truncate.
TEST(ScanDecoder, NulAndControlCharactersAreKept) {
  for (TextEncoding enc : {TextEncoding::utf8, TextEncoding::gb18030, TextEncoding::automatic}) {
    ScanData s = decoder(enc).decode("]C1a\0b\tc\x1d"s);
    EXPECT_FALSE(s.decode_error);
    EXPECT_EQ(s.raw, "a\0b\tc\x1d"s);
    EXPECT_EQ(s.text, "a\0b\tc\x1d"s);
    EXPECT_EQ(s.text.size(), 6u);
  }
}

}  // namespace
}  // namespace portier::drivers
