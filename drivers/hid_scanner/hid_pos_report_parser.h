// Parses the input reports of a HID POS barcode scanner and assembles
// multi-report scans into one frame. Pure: no I/O, no threads, no logging,
// and deliberately free of portier/result.h and std::expected so that the
// libFuzzer build (clang) compiles it.
//
// The report implemented here is the "Scanned Data Report" of the USB-IF
// "HID Point of Sale Usage Tables" 1.02 (pos1_02.pdf; also chapter "Barcode
// Scanner Page" of the HID Usage Tables 1.3+): usage page 0x8C (Bar Code
// Scanner), application collection usage 0x02 Bar Code Scanner (0x01 is Bar
// Code Badge Reader), logical collection usage 0x12 Scanned Data Report,
// holding Symbology Identifier 1..3 (0xFB..0xFD), Decoded Data (0xFE) and
// Decode Data Continued (0xFF). The byte layout is the one Honeywell, Zebra
// and Datalogic scanners send in "HID POS" mode, as read from /dev/hidrawN
// (hidraw delivers one report per read, report id first):
//
//   byte  0       report id (0x02)
//   byte  1       n: number of decoded data bytes in this report, 0..56
//   bytes 2..4    Symbology Identifier 1..3: the AIM id "]Cm" (ISO/IEC
//                 15424), or 00 00 00 when the scanner sends none
//   bytes 5..60   Decoded Data: n bytes used, the rest is padding
//   bytes 61..62  vendor bytes (Honeywell code id), ignored
//   byte  63      bit 0: Decode Data Continued (more reports of this scan
//                 follow); bits 1..7 are padding, ignored
//
// A scan longer than 56 bytes spans reports that all carry the continued bit
// but the last; each repeats the AIM id. When the payload is an exact
// multiple of 56, scanners end it with a report of n = 0 and the bit clear:
// that report is valid only to end a scan in progress.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace portier::drivers {

inline constexpr std::size_t kHidPosReportSize = 64;
inline constexpr std::size_t kHidPosMaxData = 56;
inline constexpr std::uint8_t kHidPosScannedDataReportId = 0x02;

// One report, checked but not yet assembled.
struct HidPosReport {
  bool ok = false;
  std::string reason;  // when !ok: what is wrong, for a person (never payload)
  std::string aim;     // "]Q1", or "" when the identifier bytes are zero
  std::string data;    // the n decoded data bytes
  bool more = false;   // Decode Data Continued
};

// Checks one report: size 64, report id `report_id`, n <= 56, identifier
// bytes zero or "]" + letter + letter/digit. A report of n = 0 parses (it
// may end a scan); whether it is acceptable is the assembler's decision.
HidPosReport parse_hid_pos_report(std::string_view report,
                                  std::uint8_t report_id = kHidPosScannedDataReportId);

// What feeding one report produced.
struct HidPosItem {
  enum class Kind { none, scan, fault };
  Kind kind = Kind::none;  // none: a continued scan needs more reports
  std::string aim;         // scan: AIM id or ""
  std::string data;        // scan: the payload of all its reports
  std::string code;        // fault: "malformed_report" or "frame_too_long"
  std::string reason;      // fault: for a person; never carries payload
};

// Assembles reports into scans. One per device; not thread-safe.
//
// Faults: a malformed report yields one "malformed_report" fault and drops
// the scan in progress; when its continued bit is readable and set, the
// rest of that scan is skipped up to its last report, so a broken scan never
// comes out as a shorter one. A report of another report id is a fault too,
// but leaves a scan in progress alone (it belongs to another report). A scan
// whose payload exceeds max_frame yields one "frame_too_long" fault and is
// skipped up to its last report.
class HidPosAssembler {
 public:
  explicit HidPosAssembler(std::size_t max_frame,
                           std::uint8_t report_id = kHidPosScannedDataReportId);

  HidPosItem feed(std::string_view report);

  // Forgets a scan in progress, e.g. after the device was reconnected.
  void reset();

 private:
  enum class State { idle, collecting, skipping };

  std::size_t max_frame_;
  std::uint8_t report_id_;
  State state_ = State::idle;
  std::string aim_;
  std::string data_;
};

}  // namespace portier::drivers
