// libFuzzer target for the two pure parsers of the HID scanner driver: the
// HID POS report parser/assembler and the keyboard-wedge decoder.
//
// Input: byte 0 selects the parser (bit 0: 0 = HID POS, 1 = keyboard) and,
// for the keyboard, the layout (bits 1..2: us, de, fr, us). The rest is
//   HID POS:  records of one length byte L and L report bytes, each fed as
//             one report (as hidraw delivers them); the same bytes are also
//             cut into 64-byte reports, as the driver reads a stream;
//   keyboard: records of 5 bytes: type, code (2, little endian), value (2,
//             little endian, signed), fed as input events.
// Invariants checked (a violation aborts): no scan or frame is empty or
// longer than max_frame, every fault has a code and a reason.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "hid_scanner/hid_pos_report_parser.h"
#include "hid_scanner/keyboard_wedge_decoder.h"

namespace {

using portier::drivers::HidPosAssembler;
using portier::drivers::HidPosItem;
using portier::drivers::KeyboardLayout;
using portier::drivers::KeyboardWedgeDecoder;
using portier::drivers::WedgeItem;

constexpr std::size_t kMaxFrame = 200;

void check(const HidPosItem& item) {
  if (item.kind == HidPosItem::Kind::scan && (item.data.empty() || item.data.size() > kMaxFrame)) {
    std::abort();
  }
  if (item.kind == HidPosItem::Kind::fault && (item.code.empty() || item.reason.empty())) {
    std::abort();
  }
}

void fuzz_hid_pos(std::string_view in) {
  HidPosAssembler records(kMaxFrame);
  std::string_view rest = in;
  while (!rest.empty()) {
    const std::size_t n =
        std::min<std::size_t>(static_cast<unsigned char>(rest[0]), rest.size() - 1);
    const std::string_view report = rest.substr(1, n);
    rest.remove_prefix(1 + n);
    portier::drivers::parse_hid_pos_report(report);
    check(records.feed(report));
  }
  HidPosAssembler stream(kMaxFrame);
  for (rest = in; rest.size() >= portier::drivers::kHidPosReportSize;
       rest.remove_prefix(portier::drivers::kHidPosReportSize)) {
    check(stream.feed(rest.substr(0, portier::drivers::kHidPosReportSize)));
  }
}

void fuzz_keyboard(KeyboardLayout layout, std::string_view in) {
  KeyboardWedgeDecoder decoder(layout, kMaxFrame);
  const auto* p = reinterpret_cast<const unsigned char*>(in.data());
  for (std::size_t i = 0; i + 5 <= in.size(); i += 5) {
    const auto type = static_cast<std::uint16_t>(p[i]);
    const auto code = static_cast<std::uint16_t>(p[i + 1] | (p[i + 2] << 8));
    const auto value = static_cast<std::int16_t>(p[i + 3] | (p[i + 4] << 8));
    WedgeItem item = decoder.feed(type, code, value);
    if (item.kind == WedgeItem::Kind::frame &&
        (item.text.empty() || item.text.size() > kMaxFrame)) {
      std::abort();
    }
    if (item.kind == WedgeItem::Kind::fault && (item.code.empty() || item.reason.empty())) {
      std::abort();
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  if ((data[0] & 1) == 0) {
    fuzz_hid_pos(rest);
  } else {
    static constexpr KeyboardLayout kLayouts[] = {KeyboardLayout::us, KeyboardLayout::de,
                                                  KeyboardLayout::fr, KeyboardLayout::us};
    fuzz_keyboard(kLayouts[(data[0] >> 1) & 3], rest);
  }
  return 0;
}
