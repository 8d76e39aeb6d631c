// libFuzzer target for the USB descriptor parser
// (drivers/usb/usb_descriptor_parser). Seeds: tests/fuzz/corpus/usb_descriptor/.
// Invariants: no crash or over-read, a rejection has a reason and an offset
// within the input (or the size limit), an accepted blob starts with a
// device descriptor and its configurations fit.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "usb/usb_descriptor_parser.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace portier::drivers::usb;
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const UsbDescriptorParseResult r = parse_usb_descriptors(in);
  if (!r.ok) {
    if (r.reason.empty()) std::abort();
    if (r.error_offset > size && r.error_offset != kMaxDescriptorBlob) std::abort();
    return 0;
  }
  if (size < 18 || data[0] != 18 || data[1] != 1) std::abort();
  std::size_t total = 18;
  for (const auto& c : r.descriptors.configurations) total += c.total_length;
  if (total != size) std::abort();
  (void)interface_classes(r.descriptors);
  return 0;
}
