// Secrets the terminal reads from files it alone may read: the PKCS#11 PIN
// and the enrolment secret. Refused, before a byte is read, unless the file
// is a regular file (no symlink) owned by portierd's user with no group or
// other permission bits; the message says which rule failed.
#pragma once

#include <cstddef>
#include <string>

#include "common/result.h"

namespace portier::identity {

// The file's content with trailing newlines and spaces removed; `what` names
// it in errors ("PKCS#11 PIN file"). An empty file is refused.
Result<std::string> read_private_file(const std::string& path, const std::string& what,
                                      std::size_t max = 4096);

}  // namespace portier::identity
