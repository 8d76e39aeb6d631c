// The fleet's signed acknowledgement (proto/portier/v1/fleet.proto,
// SignedAcknowledgement), used by both sides: the fleet signs with
// AckSigner, the terminal checks with AckVerifier (ack_verifier.h). The
// signature is over kAckLabel || Acknowledgement bytes, by the fleet's
// command-signing key: the label (with its NUL) keeps an acknowledgement's
// signature from ever being taken for a command's by the same key, or the
// other way round.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
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

// `sequences` (any order, repeats allowed; 0 ignored) as ascending,
// non-overlapping, non-adjacent ranges.
std::vector<SequenceRange> to_ranges(std::vector<std::uint64_t> sequences);

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
  // `terminal_id`'s envelopes.
  Result<std::string> sign(const std::string& terminal_id, std::span<const SequenceRange> stored,
                           std::chrono::system_clock::time_point now) const;

 private:
  AckSigner(std::shared_ptr<const crypto::Signer> signer, std::vector<std::string> chain_der)
      : signer_(std::move(signer)), chain_der_(std::move(chain_der)) {}
  std::shared_ptr<const crypto::Signer> signer_;
  std::vector<std::string> chain_der_;
};

}  // namespace portier::link
