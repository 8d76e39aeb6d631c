// PC/SC result codes (SCARD_*) as Portier errors with reasons a person can
// act on. `long` is pcsc-lite's LONG on Linux.
#pragma once

#include <string>

#include "common/result.h"

namespace portier::drivers {

// "SCARD_E_NO_SMARTCARD", or "0x8010000C" for a code without a name here.
std::string pcsc_code_name(long rv);
Errc pcsc_errc(long rv);
// e.g. "no card in the reader (SCARD_E_NO_SMARTCARD)".
std::string pcsc_reason(long rv);
Error pcsc_error(long rv, std::string where, std::string what);

}  // namespace portier::drivers
