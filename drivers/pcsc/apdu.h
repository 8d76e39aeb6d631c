// Command APDUs (ISO/IEC 7816-3 §12.1, 7816-4 §5.1) as an app hands them to
// a reader: checked before they reach any card. Pure functions, no I/O, no
// dependency on the rest of Portier, so the fuzz target and any compiler can
// build them.
//
// The four cases, short (S) and extended (E) length:
//   1     CLA INS P1 P2
//   2S    header Le                     (Le 00 means 256)
//   3S    header Lc(1..FF) data
//   4S    header Lc(1..FF) data Le
//   2E    header 00 Le1 Le2             (Le 0000 means 65536)
//   3E    header 00 Lc1 Lc2 data        (Lc 0001..FFFF)
//   4E    header 00 Lc1 Lc2 data Le1 Le2
// so a command is at most 4 + 3 + 65535 + 2 = 65,544 bytes. INS values 6X
// and 9X are invalid (they are T=0 procedure bytes). CLA FF is not ISO but
// the PC/SC part 3 class of commands for the reader itself (GET DATA of a
// contactless UID, MIFARE key loading); it is parsed like any other.
//
// Reasons never quote the APDU's bytes, only lengths: they end up in audit
// records and logs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace portier::drivers {

inline constexpr std::size_t kMaxCommandApdu = 4 + 3 + 65535 + 2;  // 65,544
inline constexpr std::size_t kMaxResponseApdu = 65536 + 2;         // Ne max + SW1 SW2
inline constexpr std::uint8_t kReaderCommandClass = 0xFF;

struct CommandApdu {
  std::uint8_t cla = 0;
  std::uint8_t ins = 0;
  std::uint8_t p1 = 0;
  std::uint8_t p2 = 0;
  int iso_case = 1;       // 1..4
  bool extended = false;  // extended length fields (cases 2E, 3E, 4E)
  std::size_t data_offset = 0;
  std::size_t nc = 0;  // command data bytes (Lc)
  std::size_t ne = 0;  // response data bytes asked for; 0 when no Le field
  bool reader_command() const { return cla == kReaderCommandClass; }
};

// Either a well-formed command or why it is not one.
struct ApduCheck {
  bool ok = false;
  std::string reason;  // set when !ok; lengths only, never bytes
  CommandApdu command;
};

ApduCheck parse_command_apdu(std::string_view bytes);

// The status word (SW1 SW2) that ends a response APDU; nullopt when the
// response is shorter than two bytes.
std::optional<std::uint16_t> status_word(std::string_view response);
// "9000", "6A82": four upper-case hex digits.
std::string status_word_hex(std::uint16_t sw);
// 9000 and 61XX (more data available): the command was processed.
bool status_word_success(std::uint16_t sw);
// The ISO 7816-4 meaning of a status word's group, for people ("wrong
// length", "file or application not found", ...).
std::string_view status_word_meaning(std::uint16_t sw);

}  // namespace portier::drivers
