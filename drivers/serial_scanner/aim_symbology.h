// Maps the code character of an AIM symbology identifier (ISO/IEC 15424,
// "]Cm": flag ']', code character C, modifier m) to a symbology name.
#pragma once

#include <optional>
#include <string_view>

namespace portier::drivers {

// Name of the symbology for AIM code character `code` (case-sensitive:
// 'E' is EAN/UPC, 'e' is GS1 DataBar), or nullopt when the code is unknown.
std::optional<std::string_view> aim_symbology(char code);

}  // namespace portier::drivers
