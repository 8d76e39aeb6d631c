// Who called, as the kernel said (gateway/peer_identity.h resolves it):
// what policy matches apps on and what audit records name.
#pragma once

#include <cstdint>
#include <string>

namespace portier {

struct Caller {
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
  std::int32_t pid = 0;
  std::string exe;     // absolute path of the running executable ("" when it may not count)
  std::string sha256;  // lowercase hex digest of that executable's contents
  std::string unit;    // systemd system unit, "" when none
};

}  // namespace portier
