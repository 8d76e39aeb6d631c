// The fleet's signed acknowledgement (proto/portier/v1/fleet.proto,
// SignedAcknowledgement), used by both sides: the fleet signs with
// AckSigner, the terminal checks with AckVerifier (ack_verifier.h). Each
// range it names carries the chain digest of the envelope at its last
// sequence (AckedRange), so it acknowledges those envelopes, not whatever
// bears their sequence numbers. The
// signature is over kAckLabel || Acknowledgement bytes, by the fleet's
// command-signing key: the label (with its NUL) keeps an acknowledgement's
// signature from ever being taken for a command's by the same key, or the
// other way round.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/crypto/bytes.h"
#include "common/crypto/signer.h"
#include "common/crypto/x509.h"
#include "common/result.h"

namespace portier::link {

inline constexpr std::string_view kAckLabel{"portier/v1 ack\0", 15};

// Sequences first..last, both included.
struct SequenceRange {
  std::uint64_t first = 0, last = 0;
  bool operator==(const SequenceRange&) const = default;
};

// The size of an envelope's chain digest (SHA-256 or SM3).
inline constexpr std::size_t kAckDigestBytes = 32;

// Envelopes first..last as an acknowledgement names them: with the chain
// digest of envelope `last`'s body (raw bytes, kAckDigestBytes).
struct AckedRange {
  std::uint64_t first = 0, last = 0;
  std::string last_digest;
  bool operator==(const AckedRange&) const = default;
};

// `sequences` (any order, repeats allowed; 0 ignored) as ascending,
// non-overlapping, non-adjacent ranges.
std::vector<SequenceRange> to_ranges(std::vector<std::uint64_t> sequences);

// `ranges`, each with the digest `digest_of` gives for its last sequence;
// a range it has none for (nullopt) is left out: it cannot be acknowledged.
std::vector<AckedRange> with_digests(
    std::span<const SequenceRange> ranges,
    const std::function<std::optional<std::string>(std::uint64_t)>& digest_of);

// The bytes an acknowledgement's signature is over.
crypto::Bytes ack_signing_input(std::string_view acknowledgement_bytes);

// The fleet's side: signs acknowledgements with its command key. Thread-safe.
class AckSigner {
 public:
  // `chain`: the signer's certificate first, then intermediates up to, not
  // including, the trust anchor. invalid_argument when it is empty or its
  // first certificate is not for the signer's key.
  static Result<AckSigner> create(std::shared_ptr<const crypto::Signer> signer,
                                  std::span<const crypto::Certificate> chain);

  // A serialized SignedAcknowledgement saying the fleet stored `stored` of
  // `terminal_id`'s envelopes (ascending, each with its last envelope's
  // digest; signed as given: the terminal refuses what is not so).
  Result<std::string> sign(const std::string& terminal_id, std::span<const AckedRange> stored,
                           std::chrono::system_clock::time_point now) const;

 private:
  AckSigner(std::shared_ptr<const crypto::Signer> signer, std::vector<std::string> chain_der)
      : signer_(std::move(signer)), chain_der_(std::move(chain_der)) {}
  std::shared_ptr<const crypto::Signer> signer_;
  std::vector<std::string> chain_der_;
};

}  // namespace portier::link
