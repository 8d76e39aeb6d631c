// Parser of the TCG PC Client firmware event log
// (/sys/kernel/security/tpm0/binary_bios_measurements), TCG PC Client
// Platform Firmware Profile §10. Pure: no TPM, no crypto, no std::expected
// (the fuzz build uses clang 14), so it can be fuzzed on its own.
//
// Layout (little endian):
//   event 0  TCG_PCR_EVENT  (SHA1 format): pcr u32, type u32, digest[20],
//            size u32, data[size]. In a crypto-agile log its data is the
//            TCG_EfiSpecIdEvent "Spec ID Event03" naming the digest
//            algorithms and their sizes.
//   event 1… TCG_PCR_EVENT2: pcr u32, type u32, count u32,
//            count × {alg u16, digest[size(alg)]}, size u32, data[size].
// A log whose first event is not a Spec ID Event03 is read as a legacy
// SHA1-only log (every event in TCG_PCR_EVENT format).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace portier::attest {

// TPM_ALG_ID values used in logs and banks.
inline constexpr std::uint16_t kAlgSha1 = 0x0004;
inline constexpr std::uint16_t kAlgSha256 = 0x000B;
inline constexpr std::uint16_t kAlgSha384 = 0x000C;
inline constexpr std::uint16_t kAlgSha512 = 0x000D;
inline constexpr std::uint16_t kAlgSm3_256 = 0x0012;

// Event types (PC Client PFP §10.4.1) that the replay treats specially.
inline constexpr std::uint32_t kEvPostCode = 0x00000001;
inline constexpr std::uint32_t kEvNoAction = 0x00000003;
inline constexpr std::uint32_t kEvSeparator = 0x00000004;
inline constexpr std::uint32_t kEvAction = 0x00000005;
inline constexpr std::uint32_t kEvSCrtmVersion = 0x00000008;
inline constexpr std::uint32_t kEvEfiVariableDriverConfig = 0x80000001;

// Bounds: everything beyond these is reported as corruption.
inline constexpr std::size_t kMaxTcgEvents = 100000;
inline constexpr std::size_t kMaxTcgLogBytes = 64u << 20;  // 64 MiB
inline constexpr std::uint32_t kMaxTcgEventDataBytes = 16u << 20;
inline constexpr std::uint32_t kMaxSpecAlgorithms = 16;
inline constexpr std::uint32_t kMaxPcrIndex = 23;  // PC Client TPM: PCR 0..23

struct TcgAlgorithm {
  std::uint16_t alg_id = 0;
  std::uint16_t digest_size = 0;
};

struct TcgDigest {
  std::uint16_t alg_id = 0;
  std::vector<std::uint8_t> bytes;
};

struct TcgEvent {
  std::size_t offset = 0;  // byte offset of the event in the log
  std::uint32_t pcr = 0;
  std::uint32_t type = 0;
  std::vector<TcgDigest> digests;
  std::vector<std::uint8_t> data;
};

struct TcgEventLog {
  bool crypto_agile = false;  // false: legacy SHA1-only log
  std::uint32_t platform_class = 0;
  std::uint8_t spec_major = 0, spec_minor = 0, spec_errata = 0, uintn_size = 0;
  std::vector<TcgAlgorithm> algorithms;  // from the Spec ID event (sha1 only if legacy)
  std::vector<TcgEvent> events;          // all events after the header (Spec ID not included)
  // StartupLocality event (EV_NO_ACTION "StartupLocality\0" + u8), if present.
  bool has_startup_locality = false;
  std::uint8_t startup_locality = 0;
};

struct TcgParseResult {
  bool ok = false;
  std::string reason;  // person-readable, includes the byte offset
  std::size_t error_offset = 0;
  TcgEventLog log;
};

TcgParseResult parse_tcg_event_log(std::string_view bytes);

// Digest size of a TPM_ALG_ID known to the parser, 0 if unknown.
std::uint16_t tcg_alg_digest_size(std::uint16_t alg_id);
// "sha1", "sha256", … or "alg 0x…".
std::string tcg_alg_name(std::uint16_t alg_id);
// "EV_POST_CODE", … or "0x…".
std::string tcg_event_type_name(std::uint32_t type);

}  // namespace portier::attest
