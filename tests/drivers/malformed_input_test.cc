// Random bytes through framer and decoder: nothing crashes, every output
// obeys the contract, and the stream resynchronises on the next suffix.
#include <gtest/gtest.h>

#include <cstdint>
#include <iterator>
#include <random>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "serial_scanner/scan_decoder.h"
#include "serial_scanner/scan_framer.h"

namespace portier::drivers {
namespace {

constexpr std::size_t kMaxFrame = 64;

// Random bytes, with tokens the parsers care about mixed in (suffixes, AIM
// flags, NUL, GB 18030 and UTF-8 lead bytes) so that frames keep ending.
std::string random_chunk(std::mt19937& rng, std::size_t n) {
  static const std::string_view kTokens[] = {
      "\r", "\n", "\r\n", "]", std::string_view("\0", 1), "]Q1", "\x81", "\xd6", "\xe4", "\xff"};
  std::uniform_int_distribution<int> pick(0, 99);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<std::size_t> token(0, std::size(kTokens) - 1);
  std::string s;
  s.reserve(n + 3);
  while (s.size() < n) {
    if (pick(rng) < 25) {
      s += kTokens[token(rng)];
    } else {
      s.push_back(static_cast<char>(byte(rng)));
    }
  }
  return s;
}

void check_scan(const ScanData& s, std::string_view frame) {
  EXPECT_LE(s.raw.size(), frame.size());
  if (s.decode_error) {
    EXPECT_EQ(s.encoding, "binary");
    EXPECT_TRUE(s.text.empty());
  } else {
    EXPECT_TRUE(s.encoding == "utf-8" || s.encoding == "gb18030") << s.encoding;
    EXPECT_TRUE(is_valid_utf8(s.text));
  }
  if (!s.aim_id.empty()) {
    EXPECT_EQ(s.aim_id.size(), 3u);
    EXPECT_FALSE(s.symbology.empty());
  }
}

// REQ-22: robust parsing of arbitrary input, with resynchronisation.
TEST(MalformedInput, RandomBytesThroughFramerAndDecoder) {
  for (FrameSuffix suffix : {FrameSuffix::cr, FrameSuffix::lf, FrameSuffix::crlf}) {
    for (TextEncoding enc : {TextEncoding::automatic, TextEncoding::utf8, TextEncoding::gb18030}) {
      std::mt19937 rng(20240522);
      ScanFramer framer(suffix, kMaxFrame);
      ScanDecoder decoder(DecoderOptions{"PFX", true, enc});
      std::uniform_int_distribution<std::size_t> len(1, 300);
      std::size_t frames = 0;
      std::size_t faults = 0;
      for (int round = 0; round < 300; ++round) {
        for (const FramerItem& item : framer.feed(random_chunk(rng, len(rng)))) {
          if (auto* f = std::get_if<std::string>(&item)) {
            ASSERT_FALSE(f->empty());
            ASSERT_LE(f->size(), kMaxFrame);
            check_scan(decoder.decode(*f), *f);
            ++frames;
          } else {
            EXPECT_EQ(std::get<FaultData>(item).code, "frame_too_long");
            ++faults;
          }
        }
      }
      EXPECT_GT(frames, 100u);
      EXPECT_GT(faults, 0u);
      // A suffix ends whatever was pending; the next frame is read normally.
      const std::string end = suffix == FrameSuffix::cr   ? "\r"
                              : suffix == FrameSuffix::lf ? "\n"
                                                          : "\r\n";
      framer.feed(end);
      auto items = framer.feed("PFX]Q1ok" + end);
      ASSERT_EQ(items.size(), 1u);
      ScanData s = decoder.decode(std::get<std::string>(items[0]));
      EXPECT_EQ(s.text, "ok");
      EXPECT_EQ(s.symbology, "QR Code");
    }
  }
}

// REQ-22: the decoder alone never fails on any frame.
TEST(MalformedInput, RandomFramesThroughDecoder) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<std::size_t> len(0, 200);
  for (TextEncoding enc : {TextEncoding::automatic, TextEncoding::utf8, TextEncoding::gb18030}) {
    ScanDecoder decoder(DecoderOptions{"", true, enc});
    for (int i = 0; i < 2000; ++i) {
      const std::string frame = random_chunk(rng, len(rng));
      check_scan(decoder.decode(frame), frame);
    }
  }
}

}  // namespace
}  // namespace portier::drivers
