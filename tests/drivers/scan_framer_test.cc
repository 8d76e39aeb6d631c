#include "serial_scanner/scan_framer.h"

#include <gtest/gtest.h>

#include <string>
#include <variant>
#include <vector>

namespace portier::drivers {
namespace {

using namespace std::string_literals;

std::vector<std::string> frames_of(const std::vector<FramerItem>& items) {
  std::vector<std::string> out;
  for (const auto& item : items) {
    if (auto* f = std::get_if<std::string>(&item)) out.push_back(*f);
  }
  return out;
}

std::vector<FaultData> faults_of(const std::vector<FramerItem>& items) {
  std::vector<FaultData> out;
  for (const auto& item : items) {
    if (auto* f = std::get_if<FaultData>(&item)) out.push_back(*f);
  }
  return out;
}

std::vector<FramerItem> feed_bytewise(ScanFramer& framer, std::string_view bytes) {
  std::vector<FramerItem> all;
  for (char c : bytes) {
    for (auto& item : framer.feed(std::string_view(&c, 1))) all.push_back(std::move(item));
  }
  return all;
}

TEST(ScanFramer, CarriageReturnEndsFrames) {
  ScanFramer framer(FrameSuffix::cr, 64);
  EXPECT_EQ(frames_of(framer.feed("abc\rdef\r")), (std::vector<std::string>{"abc", "def"}));
}

TEST(ScanFramer, LineFeedIsDataWhenSuffixIsCr) {
  ScanFramer framer(FrameSuffix::cr, 64);
  EXPECT_EQ(frames_of(framer.feed("a\nb\r")), (std::vector<std::string>{"a\nb"}));
}

TEST(ScanFramer, LineFeedEndsFrames) {
  ScanFramer framer(FrameSuffix::lf, 64);
  EXPECT_EQ(frames_of(framer.feed("abc\ndef\n")), (std::vector<std::string>{"abc", "def"}));
  EXPECT_EQ(frames_of(framer.feed("x\ry\n")), (std::vector<std::string>{"x\ry"}));
}

TEST(ScanFramer, CrLfEndsFramesAndLoneCrOrLfIsData) {
  ScanFramer framer(FrameSuffix::crlf, 64);
  EXPECT_EQ(frames_of(framer.feed("abc\r\ndef\r\n")), (std::vector<std::string>{"abc", "def"}));
  EXPECT_EQ(frames_of(framer.feed("a\rb\nc\r\n")), (std::vector<std::string>{"a\rb\nc"}));
  EXPECT_EQ(frames_of(framer.feed("a\r\r\n")), (std::vector<std::string>{"a\r"}));
  EXPECT_EQ(frames_of(framer.feed("\n\ra\r\n")), (std::vector<std::string>{"\n\ra"}));
}

TEST(ScanFramer, CrLfSplitAcrossReads) {
  ScanFramer framer(FrameSuffix::crlf, 64);
  EXPECT_TRUE(framer.feed("ab\r").empty());
  EXPECT_EQ(frames_of(framer.feed("\ncd\r")), (std::vector<std::string>{"ab"}));
  EXPECT_EQ(frames_of(framer.feed("\n")), (std::vector<std::string>{"cd"}));
}

// REQ-22: a frame split at any byte boundary yields exactly the same frames.
TEST(ScanFramer, ByteByByteEqualsWholeStream) {
  const std::string stream = "]Q1first\r\n\r\n]E0123\rx\n\r\nlast\r\n"s;
  for (FrameSuffix s : {FrameSuffix::cr, FrameSuffix::lf, FrameSuffix::crlf}) {
    ScanFramer whole(s, 64);
    ScanFramer split(s, 64);
    const auto expected = frames_of(whole.feed(stream));
    EXPECT_FALSE(expected.empty());
    EXPECT_EQ(frames_of(feed_bytewise(split, stream)), expected);
  }
}

TEST(ScanFramer, FrameOfExactlyMaxBytesIsAccepted) {
  ScanFramer framer(FrameSuffix::cr, 8);
  auto items = framer.feed("01234567\r");
  EXPECT_EQ(frames_of(items), (std::vector<std::string>{"01234567"}));
  EXPECT_TRUE(faults_of(items).empty());
}

// An over-long frame is reported once, without its bytes, and the next
// frame is read normally.
// REQ-22: robust parsing.
TEST(ScanFramer, OverlongFrameFaultsOnceThenGoodFrame) {
  ScanFramer framer(FrameSuffix::cr, 8);
  std::vector<FramerItem> items;
  // 100 bytes, in several reads, then the suffix, then a good frame.
  for (int i = 0; i < 10; ++i) {
    for (auto& it : framer.feed("SECRET6789")) items.push_back(std::move(it));
  }
  for (auto& it : framer.feed("\rok\r")) items.push_back(std::move(it));
  ASSERT_EQ(items.size(), 2u);
  auto* fault = std::get_if<FaultData>(&items[0]);
  ASSERT_NE(fault, nullptr);
  EXPECT_EQ(fault->code, "frame_too_long");
  EXPECT_NE(fault->message.find("8"), std::string::npos);
  EXPECT_EQ(fault->message.find("SECRET"), std::string::npos);
  EXPECT_EQ(frames_of(items), (std::vector<std::string>{"ok"}));
}

TEST(ScanFramer, OverlongFrameWithCrLfAndLoneCrAtLimit) {
  ScanFramer framer(FrameSuffix::crlf, 8);
  EXPECT_EQ(frames_of(framer.feed("01234567\r\n")), (std::vector<std::string>{"01234567"}));
  auto items = framer.feed("01234567\rX\r\nok\r\n");
  ASSERT_EQ(faults_of(items).size(), 1u);
  EXPECT_EQ(frames_of(items), (std::vector<std::string>{"ok"}));
}

TEST(ScanFramer, OverlongFrameByteByByte) {
  ScanFramer framer(FrameSuffix::lf, 4);
  auto items = feed_bytewise(framer, "abcdefghij\nxy\n");
  EXPECT_EQ(faults_of(items).size(), 1u);
  EXPECT_EQ(frames_of(items), (std::vector<std::string>{"xy"}));
}

TEST(ScanFramer, EmptyFramesAreIgnored) {
  ScanFramer cr(FrameSuffix::cr, 64);
  EXPECT_EQ(frames_of(cr.feed("\r\r\rabc\r\r")), (std::vector<std::string>{"abc"}));
  ScanFramer crlf(FrameSuffix::crlf, 64);
  EXPECT_TRUE(crlf.feed("\r\n\r\n\r\n").empty());
}

// REQ-22: NUL bytes are data and never truncate a frame.
TEST(ScanFramer, NulBytesInsideFrame) {
  ScanFramer framer(FrameSuffix::cr, 64);
  auto frames = frames_of(framer.feed("a\0b\0\rc\r"s));
  ASSERT_EQ(frames.size(), 2u);
  EXPECT_EQ(frames[0], "a\0b\0"s);
  EXPECT_EQ(frames[0].size(), 4u);
  EXPECT_EQ(frames[1], "c");
}

TEST(ScanFramer, ResetDropsPartialFrame) {
  ScanFramer framer(FrameSuffix::cr, 64);
  EXPECT_TRUE(framer.feed("partial").empty());
  framer.reset();
  EXPECT_EQ(frames_of(framer.feed("whole\r")), (std::vector<std::string>{"whole"}));
}

}  // namespace
}  // namespace portier::drivers
