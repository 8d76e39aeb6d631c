#include "agent/attest/reference_values.h"

#include <fstream>
#include <sstream>

#include "agent/attest/tcg_event_log.h"

namespace portier::attest {
namespace {

std::uint16_t bank_from_name(std::string_view n) {
  if (n == "sha1") return kAlgSha1;
  if (n == "sha256") return kAlgSha256;
  if (n == "sha384") return kAlgSha384;
  if (n == "sha512") return kAlgSha512;
  return 0;
}

}  // namespace

Result<PcrValues> parse_reference_values(std::string_view text) {
  PcrValues out;
  std::size_t lineno = 0;
  while (!text.empty()) {
    ++lineno;
    const auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t'))
      line.remove_suffix(1);
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
    if (line.empty() || line.front() == '#') continue;
    auto bad = [&](std::string why) {
      return fail(Errc::invalid_argument, "attest/reference", "line " + std::to_string(lineno),
                  std::move(why) + " (expected '<bank>:<pcr>=<hex>')");
    };
    const auto colon = line.find(':');
    const auto eq = line.find('=');
    if (colon == std::string_view::npos || eq == std::string_view::npos || eq < colon) {
      return bad("malformed line");
    }
    const std::uint16_t bank = bank_from_name(line.substr(0, colon));
    if (bank == 0) return bad("unknown bank '" + std::string(line.substr(0, colon)) + "'");
    const std::string_view idx = line.substr(colon + 1, eq - colon - 1);
    if (idx.empty() || idx.size() > 2) return bad("bad PCR index");
    std::uint32_t pcr = 0;
    for (char c : idx) {
      if (c < '0' || c > '9') return bad("bad PCR index");
      pcr = pcr * 10 + static_cast<std::uint32_t>(c - '0');
    }
    if (pcr > kMaxPcrIndex) return bad("PCR index " + std::to_string(pcr) + " out of range 0..23");
    Bytes v;
    if (!from_hex(line.substr(eq + 1), v) || v.size() != tcg_alg_digest_size(bank)) {
      return bad("value is not " + std::to_string(tcg_alg_digest_size(bank)) + " bytes of hex");
    }
    if (out[bank].contains(pcr)) return bad("PCR " + std::to_string(pcr) + " given twice");
    out[bank][pcr] = std::move(v);
  }
  return out;
}

Result<PcrValues> load_reference_values(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return fail(Errc::not_found, "attest/reference", path, "cannot open the reference values");
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  auto r = parse_reference_values(ss.str());
  if (!r) r.error().where += " " + path;
  return r;
}

std::string format_reference_values(const PcrValues& v) {
  std::string out;
  for (const auto& [bank, pcrs] : v) {
    for (const auto& [idx, val] : pcrs) {
      out += tcg_alg_name(bank) + ":" + std::to_string(idx) + "=" + to_hex(val) + "\n";
    }
  }
  return out;
}

}  // namespace portier::attest
