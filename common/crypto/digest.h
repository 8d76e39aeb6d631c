// Message digests: one-shot, streaming, and of a file descriptor with a size
// limit and a deadline (a caller's executable, a baseline file).
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "common/crypto/bytes.h"
#include "common/result.h"

namespace portier::crypto {

// sha256 and sm3 (GB/T 32905) for anything new; sha1, sha384 and sha512 only
// because TPM PCR banks and measurement logs use them.
enum class DigestAlgo { sha256, sm3, sha1, sha384, sha512 };

// "sha256", "sm3", "sha1", "sha384", "sha512".
std::string_view name(DigestAlgo algo);
// 32, 32, 20, 48, 64.
std::size_t digest_size(DigestAlgo algo);

Result<Bytes> digest(DigestAlgo algo, ByteView data);
inline Result<Bytes> digest(DigestAlgo algo, std::string_view data) {
  return digest(algo, byte_view(data));
}

// Streaming: create, update as often as needed, finish once. An update that
// fails is reported by finish().
class Digest {
 public:
  static Result<Digest> create(DigestAlgo algo);
  Digest(Digest&&) noexcept;
  Digest& operator=(Digest&&) noexcept;
  ~Digest();

  DigestAlgo algo() const { return algo_; }
  void update(ByteView data);
  void update(std::string_view data) { update(byte_view(data)); }
  // The digest of everything updated; afterwards the object takes no more
  // data (failed_precondition).
  Result<Bytes> finish();

  struct Impl;  // the platform's state (platform/openssl/)

 private:
  Digest(DigestAlgo algo, std::unique_ptr<Impl> impl);
  DigestAlgo algo_;
  std::unique_ptr<Impl> impl_;
};

// Bounds on hashing a file: refused (resource_exhausted, saying which limit)
// when it holds more than `max_bytes` or takes longer than `timeout`, so one
// caller's huge or slow file costs a bounded time.
struct HashLimits {
  std::uint64_t max_bytes = UINT64_MAX;
  std::chrono::milliseconds timeout = std::chrono::milliseconds::max();
  const std::atomic<bool>* cancel = nullptr;  // set: give up (unavailable), e.g. at shutdown
};

// Everything readable from `fd`, from offset 0 whatever its position (pread;
// read from the current position on a pipe or other unseekable file).
// Errors: io (read failed, message names "read"), resource_exhausted,
// unavailable (cancelled). `where` of an error is the algorithm's name.
Result<Bytes> digest_fd(DigestAlgo algo, int fd, const HashLimits& limits = {});
// The file at `path` (not_found when it does not exist).
Result<Bytes> digest_file(DigestAlgo algo, const std::string& path, const HashLimits& limits = {});

}  // namespace portier::crypto
