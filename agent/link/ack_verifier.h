// The terminal's gate for the fleet's acknowledgements (issue 10): an
// envelope leaves the outbox only on a SignedAcknowledgement (see
// ack_signing.h) that verifies, so a broker (or anyone who can publish on
// down/ack) cannot make the terminal delete what the fleet never stored.
//
// Checks, in this order (the first that fails refuses it, with Error::what
// naming the kind of refusal and Error::why the detail):
//   "malformed"       not a SignedAcknowledgement holding an Acknowledgement,
//                     more than max_bytes, no or too many certificates, a
//                     certificate that does not parse, ranges not ascending
//                     (first <= last, each after the one before, none at 0),
//                     more than max_ranges, no valid time;
//   "other terminal"  for another terminal id;
//   "old"             signed more than `reorder` before the newest one that
//                     verified (see "Replays");
//   "unsigned"        no signature;
//   "untrusted chain" certificates[0] for command signing (keyUsage
//                     digitalSignature, EKU codeSigning) through the others
//                     to a trust anchor, valid now: crypto::verify_chain, as
//                     commands::CommandVerifier checks a command's chain;
//   "bad signature"   not certificates[0]'s key over kAckLabel || bytes.
// The first three read only what the acknowledgement claims (inspect()): a
// refusal needs no proof, so they cost no signature check. A chain that
// validated is remembered (by its exact certificate bytes, for at most 10
// minutes and never past a certificate's notAfter), so a run of
// acknowledgements costs one signature check each.
//
// Replays. An old genuine acknowledgement names sequences the fleet stored;
// since a sequence is never reused, the outbox has deleted them or deletes
// them now, and nothing else can go. Still, a broker could replay one
// forever: the caller first asks inspect() what it claims and skips the
// signature when it names nothing still held (OutboxSender counts it
// stale), and one signed more than `reorder` before the newest verified
// one is refused unverified ("old": several fleet workers may sign out of
// step by a little, never by more). The newest time is taken at most
// `max_ahead` past this terminal's clock, so a fleet clock set far ahead
// and corrected cannot make the fleet's next acknowledgements "old" for
// longer than that.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "agent/link/ack_signing.h"
#include "common/crypto/keys.h"
#include "common/crypto/x509.h"
#include "common/result.h"

namespace portier::link {

struct AckVerifierOptions {
  std::string terminal_id;
  // The certificates a fleet key must chain to (the terminal's
  // command_trust_anchors).
  std::vector<crypto::Certificate> trust_anchors;
  std::function<std::chrono::system_clock::time_point()> clock = [] {
    return std::chrono::system_clock::now();
  };
  std::size_t max_bytes = 64 * 1024;
  std::size_t max_certificates = 4;
  std::size_t max_ranges = 8192;
  std::chrono::milliseconds reorder{5000};
  std::chrono::seconds max_ahead{300};
};

// What an acknowledgement says, nothing of it verified.
struct AckClaim {
  std::vector<SequenceRange> ranges;
  std::chrono::system_clock::time_point time;  // when the fleet says it signed it
};

class AckVerifier {
 public:
  explicit AckVerifier(AckVerifierOptions options) : options_(std::move(options)) {}

  // What `bytes` claims, after the checks that need no signature
  // ("malformed", "other terminal", "old"): cheap, trusts nothing, changes
  // nothing. Thread-safe.
  Result<AckClaim> inspect(std::string_view bytes) const;
  // The ranges a genuine acknowledgement for this terminal names; an error
  // (see above) for anything else. Never fails otherwise, on any input.
  // Thread-safe.
  Result<std::vector<SequenceRange>> verify(std::string_view bytes);

  // How many chain validations were done (the cache's misses).
  std::size_t chain_checks() const;
  // How many signatures were checked (each costs a public-key operation).
  std::size_t signature_checks() const;

 private:
  struct Trusted {
    std::string certificates;  // the DER certificates, each length-prefixed
    crypto::PublicKey key;
    std::chrono::system_clock::time_point from, until;
  };
  AckVerifierOptions options_;
  mutable std::mutex mu_;
  std::vector<Trusted> trusted_;  // a few at most, newest last
  std::size_t chain_checks_ = 0;
  std::size_t signature_checks_ = 0;
  // The newest time of a verified acknowledgement (capped at max_ahead past
  // the clock then); the epoch before the first.
  std::chrono::system_clock::time_point newest_{};
};

}  // namespace portier::link
