// The terminal's hardware serial, which enrolment binds its certificate to:
// the configured one, else the firmware's (DMI product serial, read from
// <root>/sys/class/dmi/id/product_serial; `root` is "/" but for tests).
// Refused when empty, a firmware placeholder ("To Be Filled By O.E.M.",
// "Default string", "System Serial Number", "0", "None"), or not made of the
// characters an X.520 PrintableString allows. The DMI file is readable by
// root only on most systems: where portierd runs as its own user, set the
// serial in the config (the service's setup can copy it there).
#pragma once

#include <string>

#include "common/result.h"

namespace portier::identity {

Result<std::string> hardware_serial(const std::string& configured, const std::string& root = "/");

}  // namespace portier::identity
