// libFuzzer target: the policy file parser and validator must give a policy
// or a located error for any bytes, never crash or hang.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "policy/policy.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto p = portier::policy::Policy::parse(text, "fuzz.toml");
  if (p) {
    portier::policy::Caller c{1000, 1000, 1, "/usr/bin/app", std::string(64, 'a'), "a.service"};
    portier::policy::DeviceRef d{"scanner0", "scanner", {{"vendor", "0c2e"}}};
    for (int op = 0; op < portier::policy::kOpCount; ++op) {
      (void)(*p)->decide(c, d, static_cast<portier::policy::Op>(op));
    }
  } else if (p.error().message().empty()) {
    __builtin_trap();  // every refusal must say why
  }
  return 0;
}
