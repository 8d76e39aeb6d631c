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
//                     a range without its last envelope's digest (32
//                     bytes), more than max_ranges, no valid time;
//   "other terminal"  for another terminal id;
//   "old"             signed more than `reorder` before the newest one that
//                     verified (see "Replays");
//   "bad signature", "untrusted chain"
//                     the very bytes of one refused so before (see
//                     "Forgeries"): not checked again;
//   "unsigned"        no signature;
//   "untrusted chain" certificates[0] for command signing (keyUsage
//                     digitalSignature, EKU codeSigning) through the others
//                     to a trust anchor, valid now: crypto::verify_chain, as
//                     commands::CommandVerifier checks a command's chain;
//   "bad signature"   not certificates[0]'s key over kAckLabel || bytes.
// The first four read only what the acknowledgement claims (inspect()): a
// refusal needs no proof, so they cost no signature check. A chain that
// validated is remembered (by its exact certificate bytes, for at most 10
// minutes and never past a certificate's notAfter), so a run of
// acknowledgements costs one signature check each.
//
// What a verified acknowledgement names is envelopes by sequence and by the
// chain digest of each range's last one: the caller deletes a range only
// when its own record there has that digest (OutboxSender).
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
// longer than that. It is kept in `newest_file` (when given) across
// restarts: written when it moved and `persist_every` has passed since the
// last write (persist_due(), called from the caller's loop), at once when
// it jumped more than `persist_at_once`, and when the verifier goes; so
// after a restart only an acknowledgement signed in the last few seconds
// before it can be taken again (and only for the records it names that
// are still held with its digests).
//
// Forgeries. The digests of the last `remembered_refusals` acknowledgements
// refused for their signature or chain are kept: the same bytes again are
// refused by inspect(), unchecked, so a flood of one forgery costs one
// signature check (or chain validation), not one each.
#pragma once

#include <chrono>
#include <cstddef>
#include <deque>
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
  // Where the newest verified time is kept across restarts (written whole,
  // atomically, 0600); empty: memory only.
  std::string newest_file{};
  std::chrono::milliseconds persist_every{5000};
  std::chrono::seconds persist_at_once{60};
  // Refused acknowledgements remembered by digest (see "Forgeries").
  std::size_t remembered_refusals = 64;
};

// What an acknowledgement says, nothing of it verified.
struct AckClaim {
  std::vector<AckedRange> ranges;
  std::chrono::system_clock::time_point time;  // when the fleet says it signed it
};

class AckVerifier {
 public:
  // Reads newest_file when given: a missing file is a first start; one
  // that does not hold a time is logged and taken as none.
  explicit AckVerifier(AckVerifierOptions options);
  // Writes the newest time when it moved since the last write.
  ~AckVerifier();
  AckVerifier(const AckVerifier&) = delete;
  AckVerifier& operator=(const AckVerifier&) = delete;

  // What `bytes` claims, after the checks that need no signature
  // ("malformed", "other terminal", "old"): cheap, trusts nothing, changes
  // nothing (a refusal remembered is counted). Thread-safe.
  Result<AckClaim> inspect(std::string_view bytes) const;
  // The ranges a genuine acknowledgement for this terminal names, each
  // with its last envelope's digest; an error (see above) for anything
  // else. Never fails otherwise, on any input. Thread-safe.
  Result<std::vector<AckedRange>> verify(std::string_view bytes);

  // Writes the newest time to newest_file when it moved and persist_every
  // has passed since the last write (a failed write is logged, tried again
  // at the next). Cheap when there is nothing to write. Thread-safe.
  void persist_due();
  // The newest time of a verified acknowledgement (loaded or seen).
  std::chrono::system_clock::time_point newest() const;

  // How many chain validations were done (the cache's misses).
  std::size_t chain_checks() const;
  // How many signatures were checked (each costs a public-key operation).
  std::size_t signature_checks() const;
  // How many were refused as the bytes of one refused before.
  std::size_t repeats_refused() const;

 private:
  struct Trusted {
    std::string certificates;  // the DER certificates, each length-prefixed
    crypto::PublicKey key;
    std::chrono::system_clock::time_point from, until;
  };
  AckVerifierOptions options_;
  mutable std::mutex mu_;
  std::vector<Trusted> trusted_;  // a few at most, newest last
  struct Refused {
    std::string digest;  // SHA-256 of the bytes
    const char* kind;
  };
  // Remembers `bytes` as refused for `kind`.
  void remember_refusal(std::string_view bytes, const char* kind);
  // The kind `bytes` was refused for before, if it was.
  const char* refused_before(std::string_view bytes) const;
  // Writes newest_ (persist_mu_ held, mu_ not).
  void persist();

  std::size_t chain_checks_ = 0;
  std::size_t signature_checks_ = 0;
  mutable std::size_t repeats_refused_ = 0;
  std::deque<Refused> refused_;  // newest last, at most remembered_refusals
  // The newest time of a verified acknowledgement (capped at max_ahead past
  // the clock then); the epoch before the first.
  std::chrono::system_clock::time_point newest_{};
  // What newest_file holds, and when it was written.
  std::chrono::system_clock::time_point persisted_{};
  std::chrono::steady_clock::time_point persisted_at_{};
  std::mutex persist_mu_;  // one write at a time, in order
};

}  // namespace portier::link
