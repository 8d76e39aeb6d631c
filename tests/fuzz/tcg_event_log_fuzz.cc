// libFuzzer target for the TCG firmware event log parser
// (agent/attest/tcg_event_log). Seeds: tests/fuzz/corpus/tcg_event_log/.
// Invariants: no crash or over-read, a rejection has a reason and an offset
// inside the input, an accepted log respects the bounds.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "agent/attest/tcg_event_log.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace portier::attest;
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const TcgParseResult r = parse_tcg_event_log(in);
  if (!r.ok) {
    if (r.reason.empty() || r.error_offset > size || !r.log.events.empty()) std::abort();
    return 0;
  }
  if (r.log.events.size() > kMaxTcgEvents || r.log.algorithms.empty()) std::abort();
  for (const auto& ev : r.log.events) {
    if (ev.pcr > kMaxPcrIndex || ev.offset >= size || ev.data.size() > size) std::abort();
    if (ev.digests.size() > r.log.algorithms.size()) std::abort();
    for (const auto& d : ev.digests) {
      bool declared = false;
      for (const auto& a : r.log.algorithms) {
        if (a.alg_id == d.alg_id && a.digest_size == d.bytes.size()) declared = true;
      }
      if (!declared) std::abort();
    }
  }
  return 0;
}
