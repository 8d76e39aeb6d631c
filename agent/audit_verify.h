// The audit trail's hash chain: every line starts {"seq":N,"prev":"<hex>",
// where seq grows by one per record and prev is the lowercase hex SHA-256 of
// the previous line's bytes (without the newline); the first record ever has
// prev = 64 zeros. Helpers shared by the writer (audit_log) and the checker
// behind `portierctl audit verify`.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace portier::agent {

inline constexpr std::string_view kGenesisDigest =
    "0000000000000000000000000000000000000000000000000000000000000000";

// Lowercase hex SHA-256 (common/crypto/).
std::string sha256_hex(std::string_view data);

// JSON string escaping (quotes, backslash, control characters; UTF-8 passes).
std::string json_escape(std::string_view s);

// `s` with every byte that is not part of well-formed UTF-8 replaced by the
// text \xNN (a backslash, 'x', two hex digits), so that it fits a proto
// string field; well-formed UTF-8 passes. json_escape(s) equals the JSON
// escaping of this text.
std::string utf8_or_hex(std::string_view s);

// One chained line taken apart; views into the line.
struct ChainedLine {
  std::uint64_t seq = 0;
  std::string_view prev;
  std::uint64_t carried_from = 0;  // 0: not a carried record
  std::string_view body;           // after the seq/prev (and carried_from) fields: "time":...}
  std::string_view event;          // "" when the body has none
};
// nullopt when `line` does not start with {"seq":N,"prev":"<64 hex>", or does
// not end with '}'.
std::optional<ChainedLine> parse_chained_line(std::string_view line);
// The raw (still escaped) value of a string field of `line`, "" if absent.
std::string string_field(std::string_view line, std::string_view key);

struct AuditVerifyResult {
  bool ok = false;
  std::uint64_t records = 0;  // records read (before the first problem, when !ok)
  std::uint64_t first_seq = 0, last_seq = 0;
  std::string head;     // digest of the last good line ("" when none)
  std::string problem;  // the first problem, naming FILE:LINE and seq, when !ok

  // "OK: N records, seq A..B, head <digest>" or "FAIL: <problem>".
  std::string summary() const;
  std::string json() const;
};

// Checks the chain across `files` in the order given, oldest first
// (audit.jsonl.3 audit.jsonl.2 audit.jsonl.1 audit.jsonl), and stops at the
// first problem: a line that is not a record, a changed record (the next
// line holds another digest of it), missing records (seq jumps), an inserted
// or reordered record (seq does not grow), or a gap the daemon recorded
// itself (audit_reopened, audit_records_lost). The last record can only be
// proven against a digest kept elsewhere (compare `head`).
// `on_record`, when given, sees every good record: its seq, the digest of
// its line, and where it is (FILE:LINE).
using AuditRecordFn =
    std::function<void(std::uint64_t seq, const std::string& digest, const std::string& where)>;
AuditVerifyResult verify_audit_files(const std::vector<std::string>& files,
                                     const AuditRecordFn& on_record = nullptr);

}  // namespace portier::agent
