#include "hid_scanner/keyboard_wedge_decoder.h"

#include <linux/input-event-codes.h>

#include <array>
#include <utility>

namespace portier::drivers {
namespace {

// What one key types on each level: 0 plain, 1 Shift, 2 AltGr ("" = none).
struct KeyEntry {
  std::array<std::string_view, 3> level{};
  unsigned dead = 0;    // bit i: level i is a dead key
  bool letter = false;  // Caps Lock inverts Shift for it
};

constexpr std::size_t kTableSize = 128;  // every KEY_* a layout maps is below 128
using KeyTable = std::array<KeyEntry, kTableSize>;

constexpr unsigned kDead0 = 1, kDead1 = 2, kDead2 = 4;

void set(KeyTable& t, int code, std::string_view plain, std::string_view shifted,
         std::string_view altgr = {}, unsigned dead = 0) {
  t[static_cast<std::size_t>(code)] = KeyEntry{{plain, shifted, altgr}, dead, false};
}

void letter(KeyTable& t, int code, std::string_view lower, std::string_view upper,
            std::string_view altgr = {}) {
  t[static_cast<std::size_t>(code)] = KeyEntry{{lower, upper, altgr}, 0, true};
}

// Maps a row of letter keys to single ASCII letters.
void letter_row(KeyTable& t, std::initializer_list<int> codes, std::string_view lowers) {
  static constexpr std::string_view kLower = "abcdefghijklmnopqrstuvwxyz";
  static constexpr std::string_view kUpper = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
  std::size_t i = 0;
  for (int code : codes) {
    const std::size_t at = kLower.find(lowers[i++]);
    letter(t, code, kLower.substr(at, 1), kUpper.substr(at, 1));
  }
}

// Keys that type the same on every layout here.
void common_keys(KeyTable& t) {
  set(t, KEY_SPACE, " ", " ");
  set(t, KEY_TAB, "\t", "\t");
  set(t, KEY_KP0, "0", "0");
  set(t, KEY_KP1, "1", "1");
  set(t, KEY_KP2, "2", "2");
  set(t, KEY_KP3, "3", "3");
  set(t, KEY_KP4, "4", "4");
  set(t, KEY_KP5, "5", "5");
  set(t, KEY_KP6, "6", "6");
  set(t, KEY_KP7, "7", "7");
  set(t, KEY_KP8, "8", "8");
  set(t, KEY_KP9, "9", "9");
  set(t, KEY_KPDOT, ".", ".");
  set(t, KEY_KPPLUS, "+", "+");
  set(t, KEY_KPMINUS, "-", "-");
  set(t, KEY_KPASTERISK, "*", "*");
  set(t, KEY_KPSLASH, "/", "/");
}

KeyTable us_table() {
  KeyTable t{};
  common_keys(t);
  set(t, KEY_1, "1", "!");
  set(t, KEY_2, "2", "@");
  set(t, KEY_3, "3", "#");
  set(t, KEY_4, "4", "$");
  set(t, KEY_5, "5", "%");
  set(t, KEY_6, "6", "^");
  set(t, KEY_7, "7", "&");
  set(t, KEY_8, "8", "*");
  set(t, KEY_9, "9", "(");
  set(t, KEY_0, "0", ")");
  set(t, KEY_MINUS, "-", "_");
  set(t, KEY_EQUAL, "=", "+");
  letter_row(t, {KEY_Q, KEY_W, KEY_E, KEY_R, KEY_T, KEY_Y, KEY_U, KEY_I, KEY_O, KEY_P},
             "qwertyuiop");
  set(t, KEY_LEFTBRACE, "[", "{");
  set(t, KEY_RIGHTBRACE, "]", "}");
  letter_row(t, {KEY_A, KEY_S, KEY_D, KEY_F, KEY_G, KEY_H, KEY_J, KEY_K, KEY_L}, "asdfghjkl");
  set(t, KEY_SEMICOLON, ";", ":");
  set(t, KEY_APOSTROPHE, "'", "\"");
  set(t, KEY_GRAVE, "`", "~");
  set(t, KEY_BACKSLASH, "\\", "|");
  letter_row(t, {KEY_Z, KEY_X, KEY_C, KEY_V, KEY_B, KEY_N, KEY_M}, "zxcvbnm");
  set(t, KEY_COMMA, ",", "<");
  set(t, KEY_DOT, ".", ">");
  set(t, KEY_SLASH, "/", "?");
  set(t, KEY_102ND, "\\", "|");
  return t;
}

KeyTable de_table() {
  KeyTable t{};
  common_keys(t);
  set(t, KEY_KPDOT, ",", ",");  // KP_Separator on the German keypad
  set(t, KEY_1, "1", "!", "¹");
  set(t, KEY_2, "2", "\"", "²");
  set(t, KEY_3, "3", "§", "³");
  set(t, KEY_4, "4", "$", "¼");
  set(t, KEY_5, "5", "%", "½");
  set(t, KEY_6, "6", "&", "¬");
  set(t, KEY_7, "7", "/", "{");
  set(t, KEY_8, "8", "(", "[");
  set(t, KEY_9, "9", ")", "]");
  set(t, KEY_0, "0", "=", "}");
  set(t, KEY_MINUS, "ß", "?", "\\");
  set(t, KEY_EQUAL, "´", "`", {}, kDead0 | kDead1);
  letter_row(t, {KEY_W, KEY_R, KEY_T, KEY_U, KEY_I, KEY_O, KEY_P}, "wrtuiop");
  letter(t, KEY_Q, "q", "Q", "@");
  letter(t, KEY_E, "e", "E", "€");
  letter(t, KEY_Y, "z", "Z");
  letter(t, KEY_LEFTBRACE, "ü", "Ü");
  set(t, KEY_RIGHTBRACE, "+", "*", "~");
  letter_row(t, {KEY_A, KEY_S, KEY_D, KEY_F, KEY_G, KEY_H, KEY_J, KEY_K, KEY_L}, "asdfghjkl");
  letter(t, KEY_SEMICOLON, "ö", "Ö");
  letter(t, KEY_APOSTROPHE, "ä", "Ä");
  set(t, KEY_GRAVE, "^", "°", {}, kDead0);
  set(t, KEY_BACKSLASH, "#", "'");
  letter_row(t, {KEY_Z, KEY_X, KEY_C, KEY_V, KEY_B, KEY_N}, "yxcvbn");
  letter(t, KEY_M, "m", "M", "µ");
  set(t, KEY_COMMA, ",", ";");
  set(t, KEY_DOT, ".", ":");
  set(t, KEY_SLASH, "-", "_");
  set(t, KEY_102ND, "<", ">", "|");
  return t;
}

KeyTable fr_table() {
  KeyTable t{};
  common_keys(t);
  set(t, KEY_1, "&", "1");
  set(t, KEY_2, "é", "2", "~", kDead2);
  set(t, KEY_3, "\"", "3", "#");
  set(t, KEY_4, "'", "4", "{");
  set(t, KEY_5, "(", "5", "[");
  set(t, KEY_6, "-", "6", "|");
  set(t, KEY_7, "è", "7", "`", kDead2);
  set(t, KEY_8, "_", "8", "\\");
  set(t, KEY_9, "ç", "9", "^");
  set(t, KEY_0, "à", "0", "@");
  set(t, KEY_MINUS, ")", "°", "]");
  set(t, KEY_EQUAL, "=", "+", "}");
  letter_row(t, {KEY_Q, KEY_W, KEY_R, KEY_T, KEY_Y, KEY_U, KEY_I, KEY_O, KEY_P}, "azrtyuiop");
  letter(t, KEY_E, "e", "E", "€");
  set(t, KEY_LEFTBRACE, "^", "¨", {}, kDead0 | kDead1);
  set(t, KEY_RIGHTBRACE, "$", "£", "¤");
  letter_row(t, {KEY_A, KEY_S, KEY_D, KEY_F, KEY_G, KEY_H, KEY_J, KEY_K, KEY_L, KEY_SEMICOLON},
             "qsdfghjklm");
  set(t, KEY_APOSTROPHE, "ù", "%");
  set(t, KEY_GRAVE, "²", {});
  set(t, KEY_BACKSLASH, "*", "µ");
  letter_row(t, {KEY_Z, KEY_X, KEY_C, KEY_V, KEY_B, KEY_N}, "wxcvbn");
  set(t, KEY_M, ",", "?");
  set(t, KEY_COMMA, ";", ".");
  set(t, KEY_DOT, ":", "/");
  set(t, KEY_SLASH, "!", "§");
  set(t, KEY_102ND, "<", ">");
  return t;
}

const KeyTable& table_for(KeyboardLayout layout) {
  static const KeyTable us = us_table();
  static const KeyTable de = de_table();
  static const KeyTable fr = fr_table();
  switch (layout) {
    case KeyboardLayout::de:
      return de;
    case KeyboardLayout::fr:
      return fr;
    case KeyboardLayout::us:
      break;
  }
  return us;
}

std::string_view layout_name(KeyboardLayout layout) {
  switch (layout) {
    case KeyboardLayout::de:
      return "de";
    case KeyboardLayout::fr:
      return "fr";
    case KeyboardLayout::us:
      break;
  }
  return "us";
}

}  // namespace

std::optional<KeyboardLayout> keyboard_layout_from_name(std::string_view name) {
  if (name == "us") return KeyboardLayout::us;
  if (name == "de") return KeyboardLayout::de;
  if (name == "fr") return KeyboardLayout::fr;
  return std::nullopt;
}

KeyboardWedgeDecoder::KeyboardWedgeDecoder(KeyboardLayout layout, std::size_t max_frame)
    : layout_(layout), max_frame_(max_frame) {}

void KeyboardWedgeDecoder::reset() {
  frame_.clear();
  dead_.clear();
  discarding_ = false;
  left_shift_ = right_shift_ = left_ctrl_ = right_ctrl_ = left_alt_ = right_alt_ = false;
  caps_lock_ = false;
}

WedgeItem KeyboardWedgeDecoder::fail(std::string code, std::string reason) {
  frame_.clear();
  dead_.clear();
  if (discarding_) return {};  // one fault per frame
  discarding_ = true;
  WedgeItem item;
  item.kind = WedgeItem::Kind::fault;
  item.code = std::move(code);
  item.reason = std::move(reason);
  return item;
}

WedgeItem KeyboardWedgeDecoder::feed(std::uint16_t type, std::uint16_t code, std::int32_t value) {
  if (type != EV_KEY) return {};
  if (value != 0 && value != 1) return {};  // 2 = autorepeat: never a new character
  const bool down = value == 1;
  switch (code) {
    case KEY_LEFTSHIFT:
      left_shift_ = down;
      return {};
    case KEY_RIGHTSHIFT:
      right_shift_ = down;
      return {};
    case KEY_LEFTCTRL:
      left_ctrl_ = down;
      return {};
    case KEY_RIGHTCTRL:
      right_ctrl_ = down;
      return {};
    case KEY_LEFTALT:
      left_alt_ = down;
      return {};
    case KEY_RIGHTALT:
      right_alt_ = down;
      return {};
    case KEY_CAPSLOCK:
      if (down) caps_lock_ = !caps_lock_;
      return {};
    case KEY_NUMLOCK:
    case KEY_SCROLLLOCK:
      return {};
    default:
      break;
  }
  if (!down) return {};
  return press(code);
}

WedgeItem KeyboardWedgeDecoder::press(std::uint16_t code) {
  const std::string key = "key code " + std::to_string(code);
  if (code == KEY_ENTER || code == KEY_KPENTER) {
    const bool was_discarding = discarding_;
    const bool dead_pending = !dead_.empty();
    std::string text = std::move(frame_);
    frame_.clear();
    dead_.clear();
    discarding_ = false;
    if (was_discarding) return {};
    if (dead_pending) {
      WedgeItem item;
      item.kind = WedgeItem::Kind::fault;
      item.code = "unknown_key";
      item.reason = "dead key followed by Enter: composition not supported; frame dropped";
      return item;
    }
    if (text.empty()) return {};
    WedgeItem item;
    item.kind = WedgeItem::Kind::frame;
    item.text = std::move(text);
    return item;
  }

  const std::string layout(layout_name(layout_));
  const bool has_altgr = layout_ != KeyboardLayout::us;
  const bool alt = left_alt_ || (right_alt_ && !has_altgr);
  const bool altgr = right_alt_ && has_altgr;
  const bool shift = left_shift_ || right_shift_;
  const bool ctrl = left_ctrl_ || right_ctrl_;
  if (alt) return fail("unknown_key", key + " with Alt has no character in layout " + layout);
  if (altgr && shift) {
    return fail("unknown_key", key + " with Shift+AltGr has no character in layout " + layout);
  }
  if (code >= kTableSize) {
    return fail("unknown_key", key + " has no character in layout " + layout);
  }
  const KeyEntry& entry = table_for(layout_)[code];
  const std::size_t level = altgr ? 2 : ((shift != (caps_lock_ && entry.letter)) ? 1 : 0);
  std::string_view text = entry.level[level];
  if (text.empty()) {
    static constexpr std::string_view kLevelName[] = {"", " with Shift", " with AltGr"};
    return fail("unknown_key",
                key + std::string(kLevelName[level]) + " has no character in layout " + layout);
  }
  const bool dead = (entry.dead & (1u << level)) != 0;

  if (ctrl) {
    const char c = text.size() == 1 ? text[0] : '\0';
    if (dead || !((c >= '@' && c <= '_') || (c >= 'a' && c <= 'z'))) {
      return fail("unknown_key", key + " with Ctrl has no control character in layout " + layout);
    }
    const char control = static_cast<char>(c & 0x1f);
    return type_text(std::string_view(&control, 1));
  }
  if (!dead_.empty()) {
    if (code != KEY_SPACE) {
      return fail("unknown_key", "dead key followed by " + key +
                                     ": composition not supported in layout " + layout);
    }
    const std::string accent = std::move(dead_);
    dead_.clear();
    return type_text(accent);
  }
  if (dead) {
    if (!discarding_) dead_ = std::string(text);
    return {};
  }
  return type_text(text);
}

WedgeItem KeyboardWedgeDecoder::type_text(std::string_view text) {
  if (discarding_) return {};
  if (frame_.size() + text.size() > max_frame_) {
    return fail("frame_too_long",
                "typed scan longer than " + std::to_string(max_frame_) + " bytes was discarded");
  }
  frame_ += text;
  return {};
}

}  // namespace portier::drivers
