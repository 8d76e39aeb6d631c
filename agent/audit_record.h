// An AuditEntry (common/audit_sink.h) as the typed record of
// proto/portier/v1/audit.proto, and that record as the trail's JSON line:
// its proto3 JSON mapping, with 64-bit integers as JSON numbers, time with
// milliseconds, and the chain fields (seq, prev, carried_from) left to the
// writer, which puts them first.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "common/audit_sink.h"
#include "portier/v1/audit.pb.h"

namespace portier::agent {

// The record of `entry` at `time`: every string field cut at `max_field`
// bytes (at a UTF-8 boundary, marked "…[cut N bytes]"), then bytes that are
// not UTF-8 written as the text \xNN. No seq/prev: the writer's.
v1::AuditRecord to_record(const AuditEntry& entry, std::size_t max_field,
                          std::chrono::system_clock::time_point time);

// The record's JSON mapping without the opening brace, as the line holds it
// after the chain fields: "time":...}. Fields in field-number order, absent
// when unset; `time` and `event` always. The chain fields are not written.
std::string record_body(const v1::AuditRecord& record);

// A line of the trail (any version) read back into the record; nullopt when
// it is not JSON of it. Unknown keys are skipped.
std::optional<v1::AuditRecord> parse_record(std::string_view line);

// Cuts `s` to at most `max` bytes at a UTF-8 character boundary and says so.
std::string cap_field(std::string_view s, std::size_t max);

}  // namespace portier::agent
