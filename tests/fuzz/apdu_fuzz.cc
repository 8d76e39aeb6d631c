// libFuzzer target for the command-APDU parser (drivers/pcsc/apdu.h): any
// byte string is either refused with a reason or parsed into fields whose
// lengths add up to exactly the input; the status-word helpers never read
// out of bounds. Seed corpus: tests/fuzz/corpus/apdu/.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "drivers/pcsc/apdu.h"

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

std::size_t le_bytes(const portier::drivers::CommandApdu& a) {
  if (a.iso_case == 2) return a.extended ? 3 : 1;
  if (a.iso_case == 4) return a.extended ? 2 : 1;
  return 0;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace portier::drivers;
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const ApduCheck c = parse_command_apdu(in);
  if (!c.ok) {
    check(!c.reason.empty());
    check(c.reason.size() < 512);
  } else {
    const CommandApdu& a = c.command;
    check(size >= 4 && size <= kMaxCommandApdu);
    check(a.iso_case >= 1 && a.iso_case <= 4);
    check(static_cast<unsigned char>(in[0]) == a.cla && static_cast<unsigned char>(in[1]) == a.ins);
    const std::size_t lc_bytes = a.nc == 0 ? 0 : (a.extended ? 3 : 1);
    const std::size_t expected = 4 + lc_bytes + a.nc + le_bytes(a);
    check(expected == size);
    check((a.iso_case == 3 || a.iso_case == 4) == (a.nc > 0));
    check((a.iso_case == 2 || a.iso_case == 4) == (a.ne > 0));
    check(a.nc <= 65535 && a.ne <= 65536);
    if (a.nc > 0) check(a.data_offset + a.nc <= size);
  }
  if (auto sw = status_word(in)) {
    check(size >= 2);
    check(status_word_hex(*sw).size() == 4);
    check(!status_word_meaning(*sw).empty());
    (void)status_word_success(*sw);
  } else {
    check(size < 2);
  }
  return 0;
}
