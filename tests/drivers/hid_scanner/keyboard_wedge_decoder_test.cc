// Keyboard-wedge decoding: evdev key events of us/de/fr layouts back to text.
#include "hid_scanner/keyboard_wedge_decoder.h"

#include <gtest/gtest.h>
#include <linux/input-event-codes.h>

#include <random>
#include <string>
#include <vector>

#include "serial_scanner/scan_decoder.h"

namespace portier::drivers {
namespace {

// Plays a scanner typing: every key tap is MSC_SCAN, press, SYN, release,
// SYN, as the kernel reports it. Collects the decoder's frames and faults.
class Typist {
 public:
  explicit Typist(KeyboardLayout layout, std::size_t max_frame = 4096)
      : decoder_(layout, max_frame) {}

  void event(std::uint16_t type, std::uint16_t code, std::int32_t value) {
    WedgeItem item = decoder_.feed(type, code, value);
    if (item.kind == WedgeItem::Kind::frame) frames.push_back(item.text);
    if (item.kind == WedgeItem::Kind::fault) faults.push_back(item);
  }
  void key(std::uint16_t code, std::int32_t value) {
    event(EV_MSC, MSC_SCAN, 0x70000 + code);
    event(EV_KEY, code, value);
    event(EV_SYN, SYN_REPORT, 0);
  }
  void tap(std::uint16_t code) {
    key(code, 1);
    key(code, 0);
  }
  void with(std::uint16_t modifier, std::uint16_t code) {
    key(modifier, 1);
    tap(code);
    key(modifier, 0);
  }
  void shift(std::uint16_t code) { with(KEY_LEFTSHIFT, code); }
  void altgr(std::uint16_t code) { with(KEY_RIGHTALT, code); }
  void taps(std::initializer_list<std::uint16_t> codes) {
    for (auto c : codes) tap(c);
  }
  void enter() { tap(KEY_ENTER); }

  std::vector<std::string> frames;
  std::vector<WedgeItem> faults;

 private:
  KeyboardWedgeDecoder decoder_;
};

const std::initializer_list<std::uint16_t> kDigitRow = {KEY_1, KEY_2, KEY_3, KEY_4, KEY_5,
                                                        KEY_6, KEY_7, KEY_8, KEY_9, KEY_0};

// A keyboard-wedge scanner's digits, letters and shifted characters.
// REQ-18
TEST(KeyboardWedgeDecoder, UsDigitsLettersShift) {
  Typist t(KeyboardLayout::us);
  t.taps(kDigitRow);
  t.enter();
  t.shift(KEY_H);
  t.taps({KEY_E, KEY_L, KEY_L, KEY_O, KEY_MINUS});
  t.shift(KEY_W);
  t.taps({KEY_O, KEY_R, KEY_L, KEY_D});
  t.shift(KEY_1);
  t.taps({KEY_SPACE, KEY_Y, KEY_Z, KEY_SLASH, KEY_SEMICOLON, KEY_RIGHTBRACE});
  t.enter();
  EXPECT_EQ(t.frames, (std::vector<std::string>{"1234567890", "Hello-World! yz/;]"}));
  EXPECT_TRUE(t.faults.empty());
}

// REQ-18
TEST(KeyboardWedgeDecoder, DeQwertzSwapsYZAndTypesUmlauts) {
  Typist t(KeyboardLayout::de);
  t.taps(kDigitRow);
  t.enter();
  t.taps({KEY_Y, KEY_Z});  // QWERTZ: the Y key types z, the Z key types y
  t.shift(KEY_Y);
  t.shift(KEY_7);  // Shift+7 = /
  t.shift(KEY_0);  // Shift+0 = =
  t.taps({KEY_SLASH, KEY_LEFTBRACE, KEY_SEMICOLON, KEY_APOSTROPHE, KEY_MINUS});
  t.shift(KEY_APOSTROPHE);
  t.altgr(KEY_Q);  // @
  t.altgr(KEY_9);  // ]
  t.altgr(KEY_E);  // €
  t.enter();
  EXPECT_EQ(t.frames, (std::vector<std::string>{"1234567890", "zyZ/=-üöäßÄ@]€"}));
  EXPECT_TRUE(t.faults.empty());
}

// REQ-18
TEST(KeyboardWedgeDecoder, FrAzertyDigitsNeedShift) {
  Typist t(KeyboardLayout::fr);
  t.taps(kDigitRow);  // unshifted: the symbols of the digit row
  t.enter();
  for (auto code : kDigitRow) t.shift(code);
  t.enter();
  t.taps({KEY_Q, KEY_W, KEY_A, KEY_Z, KEY_SEMICOLON, KEY_M, KEY_APOSTROPHE});
  t.shift(KEY_E);
  t.altgr(KEY_0);  // @
  t.enter();
  EXPECT_EQ(t.frames, (std::vector<std::string>{"&é\"'(-è_çà", "1234567890", "azqwm,ùE@"}));
  EXPECT_TRUE(t.faults.empty());
}

// REQ-18
TEST(KeyboardWedgeDecoder, EnterTerminatesEachFrameAndEmptyFramesAreDropped) {
  Typist t(KeyboardLayout::us);
  t.enter();
  t.taps({KEY_A, KEY_1});
  t.enter();
  t.enter();
  t.taps({KEY_KP4, KEY_KP2, KEY_KPDOT, KEY_KP0});
  t.tap(KEY_KPENTER);
  t.taps({KEY_B});  // no Enter yet: no frame
  EXPECT_EQ(t.frames, (std::vector<std::string>{"a1", "42.0"}));
  t.enter();
  EXPECT_EQ(t.frames.back(), "b");
}

// REQ-22
TEST(KeyboardWedgeDecoder, RepeatsAreIgnored) {
  Typist t(KeyboardLayout::us);
  t.key(KEY_A, 1);
  t.key(KEY_A, 2);
  t.key(KEY_A, 2);
  t.key(KEY_A, 0);
  t.key(KEY_LEFTSHIFT, 1);
  t.key(KEY_LEFTSHIFT, 2);
  t.tap(KEY_B);
  t.key(KEY_LEFTSHIFT, 0);
  t.tap(KEY_C);
  t.enter();
  EXPECT_EQ(t.frames, (std::vector<std::string>{"aBc"}));
}

// A key with no character is a fault, and the frame it hit is
// dropped rather than delivered with a character missing.
// REQ-22
TEST(KeyboardWedgeDecoder, UnknownKeyIsAFaultAndDropsTheFrame) {
  Typist t(KeyboardLayout::us);
  t.taps({KEY_4, KEY_0, KEY_F1, KEY_0, KEY_6, KEY_F2});
  t.enter();
  ASSERT_EQ(t.faults.size(), 1u);  // one per frame
  EXPECT_EQ(t.faults[0].code, "unknown_key");
  EXPECT_NE(t.faults[0].reason.find("key code " + std::to_string(KEY_F1)), std::string::npos)
      << t.faults[0].reason;
  EXPECT_EQ(t.faults[0].reason.find("40"), std::string::npos);  // no payload
  EXPECT_TRUE(t.frames.empty());
  t.taps({KEY_7});
  t.enter();
  EXPECT_EQ(t.frames, (std::vector<std::string>{"7"}));

  Typist alt(KeyboardLayout::us);
  alt.with(KEY_LEFTALT, KEY_A);
  alt.taps({KEY_BACKSPACE});
  alt.enter();
  ASSERT_EQ(alt.faults.size(), 1u);
  EXPECT_EQ(alt.faults[0].code, "unknown_key");

  Typist high(KeyboardLayout::de);
  high.tap(KEY_F13);
  high.altgr(KEY_A);  // no AltGr level on A
  high.enter();
  EXPECT_EQ(high.faults.size(), 1u);
  EXPECT_TRUE(high.frames.empty());
}

// REQ-18
TEST(KeyboardWedgeDecoder, CapsLockAffectsLettersOnly) {
  Typist t(KeyboardLayout::de);
  t.tap(KEY_CAPSLOCK);
  t.taps({KEY_A, KEY_1, KEY_SEMICOLON});
  t.shift(KEY_A);
  t.tap(KEY_CAPSLOCK);
  t.tap(KEY_A);
  t.enter();
  EXPECT_EQ(t.frames, (std::vector<std::string>{"A1Öaa"}));
}

// GS1 codes separate fields with GS, which wedges type as Ctrl+].
// REQ-18
TEST(KeyboardWedgeDecoder, CtrlTypesControlCharacters) {
  Typist t(KeyboardLayout::us);
  t.tap(KEY_0);
  t.with(KEY_LEFTCTRL, KEY_RIGHTBRACE);
  t.tap(KEY_1);
  t.with(KEY_RIGHTCTRL, KEY_D);
  t.enter();
  EXPECT_EQ(t.frames, (std::vector<std::string>{"0\x1d"
                                                "1\x04"}));
  Typist bad(KeyboardLayout::us);
  bad.with(KEY_LEFTCTRL, KEY_1);
  bad.enter();
  EXPECT_EQ(bad.faults.size(), 1u);
}

// REQ-22
TEST(KeyboardWedgeDecoder, DeadKeyThenSpaceTypesTheAccent) {
  Typist t(KeyboardLayout::de);
  t.taps({KEY_GRAVE, KEY_SPACE, KEY_1});
  t.enter();
  EXPECT_EQ(t.frames, (std::vector<std::string>{"^1"}));
  t.taps({KEY_GRAVE, KEY_E});  // ê: composition is not supported
  t.enter();
  ASSERT_EQ(t.faults.size(), 1u);
  EXPECT_EQ(t.frames.size(), 1u);

  Typist fr(KeyboardLayout::fr);
  fr.taps({KEY_LEFTBRACE, KEY_SPACE});
  fr.enter();
  EXPECT_EQ(fr.frames, (std::vector<std::string>{"^"}));
}

// REQ-22
TEST(KeyboardWedgeDecoder, OverLongFrameIsOneFault) {
  Typist t(KeyboardLayout::us, 8);
  for (int i = 0; i < 20; ++i) t.tap(KEY_9);
  t.enter();
  ASSERT_EQ(t.faults.size(), 1u);
  EXPECT_EQ(t.faults[0].code, "frame_too_long");
  EXPECT_TRUE(t.frames.empty());
  t.taps({KEY_1, KEY_2});
  t.enter();
  EXPECT_EQ(t.frames, (std::vector<std::string>{"12"}));
}

// The AIM id typed ahead of the data gives the symbology, as on serial.
// REQ-18
TEST(KeyboardWedgeDecoder, TypedAimIdGivesSymbology) {
  Typist t(KeyboardLayout::de);
  t.altgr(KEY_9);  // ]
  t.shift(KEY_E);
  t.taps({KEY_0, KEY_4, KEY_0, KEY_0, KEY_6, KEY_3, KEY_8, KEY_1, KEY_3, KEY_3, KEY_3, KEY_9, KEY_3,
          KEY_1});
  t.enter();
  ASSERT_EQ(t.frames.size(), 1u);
  ScanData s = ScanDecoder(DecoderOptions{"", true, TextEncoding::utf8}).decode(t.frames[0]);
  EXPECT_EQ(s.symbology, "EAN/UPC");
  EXPECT_EQ(s.text, "4006381333931");
}

TEST(KeyboardWedgeDecoder, LayoutNames) {
  EXPECT_EQ(keyboard_layout_from_name("us"), KeyboardLayout::us);
  EXPECT_EQ(keyboard_layout_from_name("de"), KeyboardLayout::de);
  EXPECT_EQ(keyboard_layout_from_name("fr"), KeyboardLayout::fr);
  EXPECT_FALSE(keyboard_layout_from_name("uk"));
  EXPECT_FALSE(keyboard_layout_from_name(""));
}

// Random events never crash the decoder or exceed max_frame.
// REQ-22
TEST(KeyboardWedgeDecoder, RandomEventsNeverCrash) {
  std::mt19937 rng(22);
  for (auto layout : {KeyboardLayout::us, KeyboardLayout::de, KeyboardLayout::fr}) {
    KeyboardWedgeDecoder d(layout, 64);
    for (int i = 0; i < 100000; ++i) {
      const auto type = static_cast<std::uint16_t>(rng() % 4 == 0 ? rng() : EV_KEY);
      const auto code = static_cast<std::uint16_t>(rng() % 3 == 0 ? rng() : rng() % 128);
      const auto value = static_cast<std::int32_t>(rng() % 5 == 0 ? rng() : rng() % 3);
      WedgeItem item = d.feed(type, code, value);
      if (item.kind == WedgeItem::Kind::frame) {
        EXPECT_LE(item.text.size(), 64u);
        EXPECT_FALSE(item.text.empty());
      }
    }
  }
}

}  // namespace
}  // namespace portier::drivers
