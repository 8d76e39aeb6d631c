#include "audit_verify.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "common/crypto/digest.h"
#include "common/hex.h"

namespace portier::agent {
namespace {

bool parse_u64(std::string_view s, std::size_t& pos, std::uint64_t& out) {
  std::size_t start = pos;
  out = 0;
  while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
    if (pos - start >= 19) return false;  // keeps it below 2^64
    out = out * 10 + static_cast<std::uint64_t>(s[pos] - '0');
    ++pos;
  }
  return pos > start && !(s[start] == '0' && pos - start > 1);
}

bool eat(std::string_view s, std::size_t& pos, std::string_view lit) {
  if (s.substr(pos, lit.size()) != lit) return false;
  pos += lit.size();
  return true;
}

bool is_lower_hex(std::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

std::string where(const std::string& file, std::uint64_t line) {
  return file + ":" + std::to_string(line);
}

}  // namespace

std::string sha256_hex(std::string_view data) {
  // SHA-256 of bytes in memory cannot fail short of the library missing it;
  // an empty result breaks the chain check loudly rather than matching.
  auto md = crypto::digest(crypto::DigestAlgo::sha256, data);
  return md ? to_hex(md->data(), md->size()) : std::string();
}

namespace {

// Length of the well-formed UTF-8 sequence at s[i] (RFC 3629: no overlong
// forms, no surrogates, at most U+10FFFF), or 0.
std::size_t utf8_length(std::string_view s, std::size_t i) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const unsigned char c = b(0);
  std::size_t n = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 ? 2 : 0;
  if (c > 0xf4 || n == 0 || i + n > s.size()) return 0;
  for (std::size_t k = 1; k < n; ++k) {
    if ((b(k) & 0xc0) != 0x80) return 0;
  }
  if (c == 0xe0 && b(1) < 0xa0) return 0;  // overlong
  if (c == 0xed && b(1) > 0x9f) return 0;  // surrogate
  if (c == 0xf0 && b(1) < 0x90) return 0;  // overlong
  if (c == 0xf4 && b(1) > 0x8f) return 0;  // over U+10FFFF
  return n;
}

}  // namespace

std::string json_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  for (std::size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out += buf;
        } else if (c < 0x80) {
          out += static_cast<char>(c);
        } else if (auto n = utf8_length(s, i)) {
          out.append(s.substr(i, n));  // well-formed UTF-8 passes through
          i += n - 1;
        } else {
          // A byte that is not UTF-8 (a path may hold any): shown as the
          // text \xNN, so every line stays valid JSON.
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\\\x%02x", c);
          out += buf;
        }
    }
  }
  return out;
}

std::string utf8_or_hex(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      out += static_cast<char>(c);
    } else if (auto n = utf8_length(s, i)) {
      out.append(s.substr(i, n));
      i += n - 1;
    } else {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", c);
      out += buf;
    }
  }
  return out;
}

std::optional<ChainedLine> parse_chained_line(std::string_view line) {
  ChainedLine c;
  std::size_t pos = 0;
  if (!eat(line, pos, "{\"seq\":") || !parse_u64(line, pos, c.seq) || c.seq == 0) {
    return std::nullopt;
  }
  if (!eat(line, pos, ",\"prev\":\"") || line.size() < pos + 64) return std::nullopt;
  c.prev = line.substr(pos, 64);
  if (!is_lower_hex(c.prev)) return std::nullopt;
  pos += 64;
  if (!eat(line, pos, "\",")) return std::nullopt;
  if (eat(line, pos, "\"carried_from\":")) {
    if (!parse_u64(line, pos, c.carried_from) || !eat(line, pos, ",")) return std::nullopt;
  }
  if (line.size() < pos + 2 || line[pos] != '"' || line.back() != '}') return std::nullopt;
  c.body = line.substr(pos);
  // The event is the first "event" key: inside string values every quote is
  // escaped, so "event":" cannot appear there.
  auto at = c.body.find("\"event\":\"");
  if (at != std::string_view::npos) {
    auto from = at + 9;
    auto to = c.body.find('"', from);
    if (to != std::string_view::npos) c.event = c.body.substr(from, to - from);
  }
  return c;
}

std::string string_field(std::string_view line, std::string_view key) {
  std::string pat = "\"" + std::string(key) + "\":\"";
  auto at = line.find(pat);
  if (at == std::string_view::npos) return {};
  std::size_t from = at + pat.size(), i = from;
  while (i < line.size() && line[i] != '"') i += line[i] == '\\' ? 2 : 1;
  return std::string(line.substr(from, std::min(i, line.size()) - from));
}

std::string AuditVerifyResult::summary() const {
  if (!ok) return "FAIL: " + problem;
  if (records == 0) return "OK: 0 records";
  return "OK: " + std::to_string(records) + " records, seq " + std::to_string(first_seq) + ".." +
         std::to_string(last_seq) + ", head " + head;
}

std::string AuditVerifyResult::json() const {
  std::string j =
      std::string("{\"ok\":") + (ok ? "true" : "false") + ",\"records\":" + std::to_string(records);
  if (records) {
    j += ",\"first_seq\":" + std::to_string(first_seq) +
         ",\"last_seq\":" + std::to_string(last_seq) + ",\"head\":\"" + head + "\"";
  }
  if (!ok) j += ",\"problem\":\"" + json_escape(problem) + "\"";
  return j + "}";
}

AuditVerifyResult verify_audit_files(const std::vector<std::string>& files,
                                     const AuditRecordFn& on_record) {
  AuditVerifyResult r;
  std::string last_file;
  std::uint64_t last_line = 0;
  auto failed = [&](std::string why) {
    r.ok = false;
    r.problem = std::move(why);
    return r;
  };
  for (const auto& file : files) {
    std::ifstream in(file, std::ios::binary);
    if (!in) return failed(file + ": cannot read: " + std::strerror(errno));
    std::string text;
    std::uint64_t n = 0;
    while (std::getline(in, text)) {
      ++n;
      std::string here = where(file, n);
      if (in.eof()) {
        return failed(here + ": incomplete last line (no newline): a torn or still-written record");
      }
      auto c = parse_chained_line(text);
      if (!c) {
        return failed(here +
                      ": not an audit record (a record starts {\"seq\":N,\"prev\":\"<64 hex>\",)");
      }
      std::string s = "seq " + std::to_string(c->seq);
      if (r.records == 0) {
        r.first_seq = c->seq;
        if (c->seq == 1 && c->prev != kGenesisDigest) {
          return failed(here + " (" + s + "): the first record ever must have prev = 64 zeros");
        }
      } else if (c->seq <= r.last_seq) {
        return failed(here + " (" + s + ") is inserted or reordered: seq " +
                      std::to_string(c->seq) + " does not follow seq " +
                      std::to_string(r.last_seq) + " at " + where(last_file, last_line));
      } else if (c->seq > r.last_seq + 1) {
        auto from = r.last_seq + 1, to = c->seq - 1;
        return failed(from == to
                          ? "record seq " + std::to_string(from) + " is missing before " + here
                          : "records seq " + std::to_string(from) + ".." + std::to_string(to) +
                                " are missing before " + here);
      } else if (c->prev != r.head) {
        return failed(where(last_file, last_line) + " (seq " + std::to_string(r.last_seq) +
                      ") was changed: " + here + " holds a different digest of it");
      }
      if (c->event == "audit_reopened" || c->event == "audit_records_lost") {
        return failed(here + " (" + s + "): the daemon recorded a gap: " + std::string(c->event) +
                      ": " + string_field(text, "reason"));
      }
      ++r.records;
      r.last_seq = c->seq;
      r.head = sha256_hex(text);
      last_file = file;
      last_line = n;
      if (on_record) on_record(c->seq, r.head, here);
    }
    if (in.bad()) return failed(file + ": read error: " + std::strerror(errno));
  }
  r.ok = true;
  return r;
}

}  // namespace portier::agent
