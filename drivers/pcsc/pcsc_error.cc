#include "pcsc/pcsc_error.h"

#include <winscard.h>

#include <cstdio>
#include <type_traits>
#include <utility>

namespace portier::drivers {

static_assert(std::is_same_v<LONG, long>, "pcsc_error.h assumes LONG is long");

std::string pcsc_code_name(long rv) {
  switch (rv) {
#define PORTIER_PCSC_CODE(c) \
  case c:                    \
    return #c;
    PORTIER_PCSC_CODE(SCARD_S_SUCCESS)
    PORTIER_PCSC_CODE(SCARD_F_INTERNAL_ERROR)
    PORTIER_PCSC_CODE(SCARD_E_CANCELLED)
    PORTIER_PCSC_CODE(SCARD_E_INVALID_HANDLE)
    PORTIER_PCSC_CODE(SCARD_E_INVALID_PARAMETER)
    PORTIER_PCSC_CODE(SCARD_E_NO_MEMORY)
    PORTIER_PCSC_CODE(SCARD_F_WAITED_TOO_LONG)
    PORTIER_PCSC_CODE(SCARD_E_INSUFFICIENT_BUFFER)
    PORTIER_PCSC_CODE(SCARD_E_UNKNOWN_READER)
    PORTIER_PCSC_CODE(SCARD_E_TIMEOUT)
    PORTIER_PCSC_CODE(SCARD_E_SHARING_VIOLATION)
    PORTIER_PCSC_CODE(SCARD_E_NO_SMARTCARD)
    PORTIER_PCSC_CODE(SCARD_E_UNKNOWN_CARD)
    PORTIER_PCSC_CODE(SCARD_E_PROTO_MISMATCH)
    PORTIER_PCSC_CODE(SCARD_E_NOT_READY)
    PORTIER_PCSC_CODE(SCARD_E_INVALID_VALUE)
    PORTIER_PCSC_CODE(SCARD_E_SYSTEM_CANCELLED)
    PORTIER_PCSC_CODE(SCARD_F_COMM_ERROR)
    PORTIER_PCSC_CODE(SCARD_F_UNKNOWN_ERROR)
    PORTIER_PCSC_CODE(SCARD_E_INVALID_ATR)
    PORTIER_PCSC_CODE(SCARD_E_NOT_TRANSACTED)
    PORTIER_PCSC_CODE(SCARD_E_READER_UNAVAILABLE)
    PORTIER_PCSC_CODE(SCARD_E_PCI_TOO_SMALL)
    PORTIER_PCSC_CODE(SCARD_E_READER_UNSUPPORTED)
    PORTIER_PCSC_CODE(SCARD_E_CARD_UNSUPPORTED)
    PORTIER_PCSC_CODE(SCARD_E_NO_SERVICE)
    PORTIER_PCSC_CODE(SCARD_E_SERVICE_STOPPED)
    PORTIER_PCSC_CODE(SCARD_E_UNSUPPORTED_FEATURE)
    PORTIER_PCSC_CODE(SCARD_E_NO_READERS_AVAILABLE)
    PORTIER_PCSC_CODE(SCARD_E_COMM_DATA_LOST)
    PORTIER_PCSC_CODE(SCARD_E_SERVER_TOO_BUSY)
    PORTIER_PCSC_CODE(SCARD_W_UNSUPPORTED_CARD)
    PORTIER_PCSC_CODE(SCARD_W_UNRESPONSIVE_CARD)
    PORTIER_PCSC_CODE(SCARD_W_UNPOWERED_CARD)
    PORTIER_PCSC_CODE(SCARD_W_RESET_CARD)
    PORTIER_PCSC_CODE(SCARD_W_REMOVED_CARD)
    PORTIER_PCSC_CODE(SCARD_W_SECURITY_VIOLATION)
#undef PORTIER_PCSC_CODE
    default:
      break;
  }
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08lX", static_cast<unsigned long>(rv) & 0xFFFFFFFFul);
  return buf;
}

Errc pcsc_errc(long rv) {
  switch (rv) {
    case SCARD_E_INVALID_PARAMETER:
    case SCARD_E_INVALID_VALUE:
    case SCARD_E_INSUFFICIENT_BUFFER:
    case SCARD_E_PCI_TOO_SMALL:
      return Errc::invalid_argument;
    case SCARD_E_PROTO_MISMATCH:
    case SCARD_E_UNSUPPORTED_FEATURE:
    case SCARD_E_READER_UNSUPPORTED:
    case SCARD_E_CARD_UNSUPPORTED:
    case SCARD_W_UNSUPPORTED_CARD:
      return Errc::failed_precondition;
    case SCARD_E_NO_MEMORY:
    case SCARD_E_SERVER_TOO_BUSY:
      return Errc::resource_exhausted;
    case SCARD_W_SECURITY_VIOLATION:
      return Errc::permission_denied;
    case SCARD_F_INTERNAL_ERROR:
    case SCARD_E_INVALID_HANDLE:
      return Errc::internal;
    case SCARD_F_UNKNOWN_ERROR:
      return Errc::io;
    default:
      return Errc::unavailable;
  }
}

std::string pcsc_reason(long rv) {
  const char* text = nullptr;
  switch (rv) {
    case SCARD_E_NO_SMARTCARD:
      text = "no card in the reader";
      break;
    case SCARD_W_REMOVED_CARD:
      text = "the card was removed";
      break;
    case SCARD_E_UNKNOWN_READER:
    case SCARD_E_READER_UNAVAILABLE:
    case SCARD_E_NO_READERS_AVAILABLE:
      text = "the reader was removed or is not available";
      break;
    case SCARD_E_NO_SERVICE:
    case SCARD_E_SERVICE_STOPPED:
      text = "the PC/SC service (pcscd) is not running";
      break;
    case SCARD_F_COMM_ERROR:
      text = "lost the connection to the PC/SC service (pcscd)";
      break;
    case SCARD_E_NOT_TRANSACTED:
    case SCARD_E_COMM_DATA_LOST:
      text = "the exchange with the card failed (card or reader removed, or not answering)";
      break;
    case SCARD_W_UNRESPONSIVE_CARD:
    case SCARD_W_UNPOWERED_CARD:
    case SCARD_E_INVALID_ATR:
      text = "the card does not answer";
      break;
    case SCARD_E_SHARING_VIOLATION:
      text = "another program holds the card exclusively";
      break;
    case SCARD_W_RESET_CARD:
      text = "another program reset the card";
      break;
    case SCARD_E_PROTO_MISMATCH:
      text = "the card and reader have no protocol (T=0, T=1) in common";
      break;
    case SCARD_E_TIMEOUT:
      text = "timed out";
      break;
    case SCARD_E_CANCELLED:
    case SCARD_E_SYSTEM_CANCELLED:
      text = "cancelled";
      break;
    case SCARD_E_INSUFFICIENT_BUFFER:
      text = "the response is longer than the largest response APDU";
      break;
    case SCARD_E_NO_MEMORY:
      text = "out of memory";
      break;
    case SCARD_E_SERVER_TOO_BUSY:
      text = "the PC/SC service (pcscd) is too busy";
      break;
    default:
      text = "PC/SC call failed";
      break;
  }
  return std::string(text) + " (" + pcsc_code_name(rv) + ")";
}

Error pcsc_error(long rv, std::string where, std::string what) {
  return Error{pcsc_errc(rv), std::move(where), std::move(what), pcsc_reason(rv)};
}

}  // namespace portier::drivers
