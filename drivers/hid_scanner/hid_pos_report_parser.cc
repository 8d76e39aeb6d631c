#include "hid_scanner/hid_pos_report_parser.h"

#include <utility>

namespace portier::drivers {
namespace {

constexpr std::size_t kLengthByte = 1;
constexpr std::size_t kAimOffset = 2;
constexpr std::size_t kAimSize = 3;
constexpr std::size_t kDataOffset = 5;
constexpr std::size_t kFlagsByte = 63;
constexpr unsigned char kContinuedBit = 0x01;

static_assert(kDataOffset + kHidPosMaxData + 2 + 1 == kHidPosReportSize);

bool is_alpha(unsigned char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); }
bool is_alnum(unsigned char c) { return is_alpha(c) || (c >= '0' && c <= '9'); }

unsigned char byte_at(std::string_view s, std::size_t i) {
  return static_cast<unsigned char>(s[i]);
}

std::string hex_byte(unsigned v) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string s = "0x";
  s += kDigits[(v >> 4) & 0xf];
  s += kDigits[v & 0xf];
  return s;
}

HidPosItem fault(std::string code, std::string reason) {
  HidPosItem item;
  item.kind = HidPosItem::Kind::fault;
  item.code = std::move(code);
  item.reason = std::move(reason);
  return item;
}

}  // namespace

HidPosReport parse_hid_pos_report(std::string_view report, std::uint8_t report_id) {
  HidPosReport r;
  if (report.empty()) {
    r.reason = "empty report";
    return r;
  }
  if (byte_at(report, 0) != report_id) {
    r.reason = "report id " + hex_byte(byte_at(report, 0)) + ", expected " + hex_byte(report_id) +
               " (Scanned Data Report)";
    return r;
  }
  if (report.size() != kHidPosReportSize) {
    r.reason = "report is " + std::to_string(report.size()) + " bytes, a Scanned Data Report has " +
               std::to_string(kHidPosReportSize);
    return r;
  }
  const std::size_t n = byte_at(report, kLengthByte);
  if (n > kHidPosMaxData) {
    r.reason = "length byte " + std::to_string(n) + " runs past the " +
               std::to_string(kHidPosMaxData) + " data bytes of a report";
    return r;
  }
  const unsigned char a0 = byte_at(report, kAimOffset);
  const unsigned char a1 = byte_at(report, kAimOffset + 1);
  const unsigned char a2 = byte_at(report, kAimOffset + 2);
  if (a0 == ']' && is_alpha(a1) && is_alnum(a2)) {
    r.aim = std::string(report.substr(kAimOffset, kAimSize));
  } else if (a0 != 0 || a1 != 0 || a2 != 0) {
    r.reason = "symbology identifier bytes are neither zero nor an AIM id";
    return r;
  }
  r.data = std::string(report.substr(kDataOffset, n));
  r.more = (byte_at(report, kFlagsByte) & kContinuedBit) != 0;
  r.ok = true;
  return r;
}

HidPosAssembler::HidPosAssembler(std::size_t max_frame, std::uint8_t report_id)
    : max_frame_(max_frame), report_id_(report_id) {}

void HidPosAssembler::reset() {
  state_ = State::idle;
  aim_.clear();
  data_.clear();
}

HidPosItem HidPosAssembler::feed(std::string_view report) {
  // Another report of the device (not part of any scan): reported, but a
  // scan in progress goes on.
  if (!report.empty() && byte_at(report, 0) != report_id_) {
    return fault("malformed_report", parse_hid_pos_report(report, report_id_).reason);
  }
  const bool was_busy = state_ == State::collecting;
  // Ends the scan in progress; `more` says whether the reports that follow
  // still belong to it and must be skipped.
  auto drop = [&](bool more) {
    aim_.clear();
    data_.clear();
    state_ = more ? State::skipping : State::idle;
  };
  auto dropped_note = [&] {
    return was_busy ? std::string("; the scan in progress was dropped") : std::string();
  };

  HidPosReport p = parse_hid_pos_report(report, report_id_);
  if (!p.ok) {
    const bool more =
        report.size() == kHidPosReportSize && (byte_at(report, kFlagsByte) & kContinuedBit);
    drop(more);
    return fault("malformed_report", p.reason + dropped_note());
  }

  switch (state_) {
    case State::skipping:
      if (!p.more) state_ = State::idle;
      return {};
    case State::idle:
      if (p.data.empty()) {
        drop(p.more);
        return fault("malformed_report", "zero-length report outside a multi-report scan");
      }
      aim_ = p.aim;
      data_.clear();
      break;
    case State::collecting:
      if (p.aim != aim_) {
        drop(p.more);
        return fault("malformed_report",
                     "symbology identifier changed within a multi-report scan" + dropped_note());
      }
      if (p.data.empty() && p.more) {
        drop(true);
        return fault("malformed_report",
                     "zero-length report with Decode Data Continued set" + dropped_note());
      }
      break;
  }

  if (data_.size() + p.data.size() > max_frame_) {
    drop(p.more);
    return fault("frame_too_long",
                 "scan longer than " + std::to_string(max_frame_) + " bytes was discarded");
  }
  data_ += p.data;
  if (p.more) {
    state_ = State::collecting;
    return {};
  }
  HidPosItem item;
  item.kind = HidPosItem::Kind::scan;
  item.aim = std::move(aim_);
  item.data = std::move(data_);
  reset();
  return item;
}

}  // namespace portier::drivers
