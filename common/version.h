// The version of this build of Portier (portierd, portierctl, portier-fleet).
#pragma once

namespace portier {
inline constexpr const char* kVersion = "0.1.0";
}
