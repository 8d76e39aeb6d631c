#pragma once

namespace portier::gateway {
inline constexpr const char* kVersion = "0.1.0";
}
