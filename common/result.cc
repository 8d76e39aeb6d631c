#include "common/result.h"

#include <cstring>

namespace portier {

std::unexpected<Error> fail_errno(Errc code, std::string where, std::string what, int err) {
  return fail(code, std::move(where), std::move(what), std::strerror(err));
}

}  // namespace portier
