// Bounds on what the policy reader accepts.
#pragma once

#include <cstddef>

namespace portier::policy {

// A real policy is a few kilobytes; anything this big is a mistake or an attack.
inline constexpr std::size_t kMaxPolicyBytes = 1024 * 1024;

}  // namespace portier::policy
