// libFuzzer target for the kernel uevent parser (drivers/usb/uevent_parser).
// Seeds: tests/fuzz/corpus/uevent/. Invariants: no crash, a rejection has a
// reason, an accepted event has the required fields and they agree.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "usb/uevent_parser.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace portier::drivers::usb;
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const UeventParseResult r = parse_uevent(in);
  if (!r.ok) {
    if (r.reason.empty()) std::abort();
    return 0;
  }
  const Uevent& e = r.event;
  if (e.action.empty() || e.devpath.empty() || e.devpath[0] != '/' || e.subsystem.empty()) {
    std::abort();
  }
  if (e.env.at("ACTION") != e.action || e.env.at("DEVPATH") != e.devpath ||
      e.env.at("SUBSYSTEM") != e.subsystem) {
    std::abort();
  }
  if (e.devpath.find("/../") != std::string_view::npos || e.env.size() > kMaxUeventFields) {
    std::abort();
  }
  (void)devpath_basename(e.devpath);
  (void)check_uevent_sender(static_cast<std::uint32_t>(size), static_cast<std::uint32_t>(size));
  return 0;
}
