#include "agent/attest/ima_log.h"

namespace portier::attest {
namespace {

int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::size_t expected_hash_size(std::string_view alg) {
  if (alg == "sha1") return 20;
  if (alg == "sha256" || alg == "sm3" || alg == "sm3-256") return 32;
  if (alg == "sha384") return 48;
  if (alg == "sha512") return 64;
  if (alg == "md5") return 16;
  return 0;
}

// Next space-separated field; false if none.
bool next_field(std::string_view& line, std::string_view& field) {
  if (line.empty()) return false;
  const auto sp = line.find(' ');
  field = line.substr(0, sp);
  line = sp == std::string_view::npos ? std::string_view{} : line.substr(sp + 1);
  return !field.empty();
}

}  // namespace

bool ima_hex_decode(std::string_view hex, std::vector<std::uint8_t>& out) {
  if (hex.size() % 2 != 0) return false;
  out.clear();
  out.reserve(hex.size() / 2);
  for (std::size_t i = 0; i < hex.size(); i += 2) {
    const int hi = hexval(hex[i]), lo = hexval(hex[i + 1]);
    if (hi < 0 || lo < 0) return false;
    out.push_back(static_cast<std::uint8_t>(hi << 4 | lo));
  }
  return true;
}

ImaParseResult parse_ima_log(std::string_view text) {
  ImaParseResult res;
  std::size_t lineno = 0;
  auto fail = [&](std::string why) {
    res.ok = false;
    res.error_line = lineno;
    res.reason = "line " + std::to_string(lineno) + ": " + std::move(why);
    res.entries.clear();
    return res;
  };
  while (!text.empty()) {
    ++lineno;
    const auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    if (line.size() > kMaxImaLineBytes) {
      return fail("line longer than " + std::to_string(kMaxImaLineBytes) + " bytes");
    }
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;  // tolerate blank lines (e.g. a final newline)
    if (res.entries.size() >= kMaxImaEntries) {
      return fail("more than " + std::to_string(kMaxImaEntries) + " entries");
    }
    ImaEntry e;
    e.line = lineno;
    std::string_view f;
    if (!next_field(line, f)) return fail("missing PCR index");
    if (f.size() > 2) return fail("PCR index '" + std::string(f.substr(0, 16)) + "' out of range");
    e.pcr = 0;
    for (char c : f) {
      if (c < '0' || c > '9') return fail("PCR index '" + std::string(f) + "' is not a number");
      e.pcr = e.pcr * 10 + static_cast<std::uint32_t>(c - '0');
    }
    if (e.pcr > 23) return fail("PCR index " + std::to_string(e.pcr) + " out of range 0..23");
    if (!next_field(line, f)) return fail("missing template hash");
    if (f.size() != 40 || !ima_hex_decode(f, e.template_hash)) {
      return fail("template hash is not 40 hex digits (sha1)");
    }
    e.violation = true;
    for (auto b : e.template_hash) e.violation = e.violation && b == 0;
    if (!next_field(line, f)) return fail("missing template name");
    if (f.size() > 32) return fail("template name too long");
    e.template_name = std::string(f);
    if (!next_field(line, f)) return fail("missing filedata hash");
    if (e.template_name == "ima") {
      e.filedata_alg = "sha1";
      if (f.size() != 40 || !ima_hex_decode(f, e.filedata_hash)) {
        return fail("ima template: filedata hash is not 40 hex digits (sha1)");
      }
    } else {
      const auto colon = f.find(':');
      if (colon == std::string_view::npos || colon == 0) {
        return fail(e.template_name + " template: filedata hash is not '<alg>:<hex>'");
      }
      e.filedata_alg = std::string(f.substr(0, colon));
      if (!ima_hex_decode(f.substr(colon + 1), e.filedata_hash)) {
        return fail("filedata hash of " + e.filedata_alg + " is not hex");
      }
      const std::size_t want = expected_hash_size(e.filedata_alg);
      if (want != 0 && e.filedata_hash.size() != want) {
        return fail("filedata hash of " + e.filedata_alg + " has " +
                    std::to_string(e.filedata_hash.size()) + " bytes, expected " +
                    std::to_string(want));
      }
      if (want == 0 && (e.filedata_hash.empty() || e.filedata_hash.size() > 64)) {
        return fail("filedata hash of unknown algorithm '" + e.filedata_alg + "' has bad size");
      }
    }
    if (line.empty()) return fail("missing filename");
    e.filename = std::string(line);
    res.entries.push_back(std::move(e));
  }
  res.ok = true;
  return res;
}

}  // namespace portier::attest
