// The terminal's identity for the management link (issue 10, item 1): a
// unique terminal id and the device key, in files under the state
// directory. The key file is the terminal's secret: created 0600 by
// portierd's user and refused when anyone else could read or replace it
// (group or other permission bits, another owner, a symlink). The key in a
// PKCS#11 token instead: pkcs11_signer.h; both behind key_store.h.
#pragma once

#include <string>

#include "common/crypto/keys.h"
#include "common/result.h"

namespace portier::identity {

// The key at `path`: loaded when the file exists (and must be of `type`),
// else generated and written with O_EXCL, 0600, and fsync'd with its
// directory.
Result<crypto::PrivateKey> load_or_create_key(const std::string& path, crypto::KeyType type);

// The terminal id kept at `path` ("T-" + 32 hex digits of randomness, made
// once, 0644): the same for the life of the state directory.
Result<std::string> load_or_create_terminal_id(const std::string& path);

}  // namespace portier::identity
