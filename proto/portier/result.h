// The one error type of Portier: every error says where, what and why.
#pragma once

#include <expected>
#include <string>
#include <utility>

namespace portier {

enum class Errc {
  invalid_argument,
  not_found,
  permission_denied,
  already_exists,
  unavailable,
  failed_precondition,
  resource_exhausted,
  io,
  internal,
};

struct Error {
  Errc code = Errc::internal;
  std::string where;  // context: file:line, component, device id
  std::string what;   // the object or operation that failed
  std::string why;    // the reason, phrased so a person can act on it

  std::string message() const {
    std::string m = where;
    if (!what.empty()) m += (m.empty() ? "" : ": ") + what;
    if (!why.empty()) m += (m.empty() ? "" : ": ") + why;
    return m;
  }
};

template <class T>
using Result = std::expected<T, Error>;

inline std::unexpected<Error> fail(Errc code, std::string where, std::string what,
                                   std::string why = {}) {
  return std::unexpected<Error>(Error{code, std::move(where), std::move(what), std::move(why)});
}

}  // namespace portier
