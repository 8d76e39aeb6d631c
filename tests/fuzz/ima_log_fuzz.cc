// libFuzzer target for the IMA ASCII log parser (agent/attest/ima_log).
// Seeds: tests/fuzz/corpus/ima_log/. Invariants: no crash, a rejection has a
// reason starting with its line number, accepted entries are well formed.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "agent/attest/ima_log.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace portier::attest;
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const ImaParseResult r = parse_ima_log(in);
  if (!r.ok) {
    if (r.reason.rfind("line " + std::to_string(r.error_line) + ": ", 0) != 0 ||
        r.error_line == 0 || !r.entries.empty()) {
      std::abort();
    }
    return 0;
  }
  for (const auto& e : r.entries) {
    if (e.pcr > 23 || e.template_hash.size() != 20 || e.filename.empty() || e.line == 0 ||
        e.filedata_hash.empty() || e.filedata_hash.size() > 64 || e.template_name.empty()) {
      std::abort();
    }
  }
  return 0;
}
