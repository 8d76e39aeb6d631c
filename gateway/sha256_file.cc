#include "sha256_file.h"

#include "common/hex.h"

namespace portier::gateway {

Result<std::string> sha256_of_fd(int fd) { return sha256_of_fd(fd, HashLimits{}); }

Result<std::string> sha256_of_fd(int fd, const HashLimits& limits) {
  auto digest = crypto::digest_fd(crypto::DigestAlgo::sha256, fd, limits);
  if (!digest) return std::unexpected(digest.error());
  return to_hex(digest->data(), digest->size());
}

}  // namespace portier::gateway
