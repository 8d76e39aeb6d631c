// Turns the Linux input events of a keyboard-wedge scanner (a scanner that
// "types" its data as a USB keyboard) back into the text it typed. Pure: no
// I/O, no threads, no logging, and free of portier/result.h and
// std::expected so that the libFuzzer build (clang) compiles it.
//
// Input: evdev events (struct input_event from <linux/input.h>): EV_KEY with
// a KEY_* code and value 1 press, 0 release, 2 autorepeat. Everything else
// (EV_SYN, EV_MSC scan codes, EV_LED, ...) is ignored, as are releases of
// non-modifier keys and autorepeats (a scanner never holds a key; a repeat
// would duplicate a character).
//
// Layouts follow the Linux console/xkb layouts of the same name:
//   us  QWERTY.
//   de  QWERTZ: Y and Z swapped, ß ü ö ä on their own keys, AltGr for
//       @ € { [ ] } \ ~ |; ^ ´ ` are dead keys.
//   fr  AZERTY: A/Q and Z/W swapped, M right of L; the digit row types
//       & é " ' ( - è _ ç à and needs Shift for digits; AltGr for
//       ~ # { [ | ` \ ^ @ ] } €; ^ ¨ ~ ` are dead keys.
// Modifiers: Shift (left/right), Caps Lock (toggles; affects letters only),
// AltGr (right Alt, de and fr), Ctrl (Ctrl + a key typing @, A-Z, [ \ ] ^ _
// or a-z types the control character, e.g. Ctrl+] = GS, the GS1 separator).
// Keypad digits and operators type as with Num Lock on. Tab types a tab.
// A dead key followed by Space types the accent itself; any other
// composition is not supported and is reported like an unknown key.
//
// KEY_ENTER or KEY_KPENTER ends a frame; empty frames are dropped. A key
// with no character in the layout (or an unsupported combination) yields
// one "unknown_key" fault, and the rest of that frame up to Enter is
// discarded: a scan with a character missing is worse than no scan. A frame
// longer than max_frame bytes of UTF-8 yields one "frame_too_long" fault and
// is discarded the same way. Faults name the key code, never the payload.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace portier::drivers {

enum class KeyboardLayout { us, de, fr };

// "us", "de" or "fr"; nullopt for anything else.
std::optional<KeyboardLayout> keyboard_layout_from_name(std::string_view name);

struct WedgeItem {
  enum class Kind { none, frame, fault };
  Kind kind = Kind::none;
  std::string text;    // frame: the UTF-8 text typed before Enter
  std::string code;    // fault: "unknown_key" or "frame_too_long"
  std::string reason;  // fault: for a person; never carries payload
};

// One decoder per device; not thread-safe.
class KeyboardWedgeDecoder {
 public:
  KeyboardWedgeDecoder(KeyboardLayout layout, std::size_t max_frame);

  // Feeds one input event (type, code, value of struct input_event).
  WedgeItem feed(std::uint16_t type, std::uint16_t code, std::int32_t value);

  // Forgets the frame in progress and all modifier state (after a reconnect).
  void reset();

 private:
  WedgeItem press(std::uint16_t code);
  WedgeItem type_text(std::string_view text);
  WedgeItem fail(std::string code, std::string reason);

  KeyboardLayout layout_;
  std::size_t max_frame_;
  std::string frame_;
  bool discarding_ = false;  // a fault hit this frame; skip to Enter
  bool left_shift_ = false, right_shift_ = false;
  bool left_ctrl_ = false, right_ctrl_ = false;
  bool left_alt_ = false, right_alt_ = false;
  bool caps_lock_ = false;
  std::string dead_;  // the accent of a pending dead key, or ""
};

}  // namespace portier::drivers
