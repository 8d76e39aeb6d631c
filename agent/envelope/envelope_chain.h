// The signed, hash-chained envelopes of issue 10 (proto/portier/v1/
// envelope.proto): the terminal seals each payload into the next link of its
// chain (EnvelopeSealer) and signs it alone or a run of them at once
// (BatchSignature over the run's last digest); the fleet checks every link
// in order (ChainVerifier): no gap, no reordering, no insertion, every body
// covered by a valid signature of the terminal's key.
//
// Digests: SM3 for an SM2 key, SHA-256 otherwise, over the body bytes as
// sent. The first envelope of a terminal has 32 zero bytes as its previous
// digest; the chain continues across restarts (the sealer's state is
// persisted by its owner, the outbox).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>

#include "common/crypto/bytes.h"
#include "common/crypto/digest.h"
#include "common/crypto/keys.h"
#include "common/result.h"
#include "portier/v1/envelope.pb.h"

namespace portier::envelope {

crypto::DigestAlgo chain_digest(crypto::KeyType key);
v1::SignatureAlgorithm signature_algorithm(crypto::KeyType key);
// SHA-256 of the raw public key, lowercase hex: Signature.key_id.
Result<std::string> key_id(const crypto::PublicKey& key);

// Where a chain stands: what the next envelope gets.
struct ChainState {
  std::uint64_t session_epoch = 0;
  std::uint64_t next_sequence = 1;
  crypto::Bytes prev_digest;  // empty: the chain starts (32 zero bytes)
};

class EnvelopeSealer {
 public:
  EnvelopeSealer(std::string terminal_id, crypto::KeyType key_type, ChainState state);

  // The next link: body sealed, digest taken, no signature yet.
  struct Sealed {
    v1::Envelope envelope;
    std::uint64_t sequence = 0;
    crypto::Bytes digest;  // of envelope.body
  };
  Result<Sealed> seal(v1::PayloadType type, std::string payload,
                      std::chrono::system_clock::time_point time);
  const ChainState& state() const { return state_; }

 private:
  std::string terminal_id_;
  crypto::DigestAlgo algo_;
  ChainState state_;
};

// Signs one envelope's body.
Result<void> sign_envelope(v1::Envelope& envelope, const crypto::PrivateKey& key);
// Signs a run [first, last] through the digest of its last body.
Result<v1::BatchSignature> sign_batch(const std::string& terminal_id, std::uint64_t first,
                                      std::uint64_t last, const crypto::Bytes& head_digest,
                                      const crypto::PrivateKey& key);

// The fleet's side: links must come in order; a link with its own signature
// is verified at once, one without waits (bounded) for a BatchSignature that
// covers it. Errors name the sequence and what is wrong; a rejected link
// leaves the state as it was.
class ChainVerifier {
 public:
  struct Options {
    std::size_t max_unsigned = 4096;  // links waiting for a batch signature
  };
  ChainVerifier(std::string terminal_id, crypto::PublicKey key, ChainState state, Options options);
  ChainVerifier(std::string terminal_id, crypto::PublicKey key, ChainState state)
      : ChainVerifier(std::move(terminal_id), std::move(key), std::move(state), Options{}) {}

  // The body of an accepted link, parsed.
  Result<v1::EnvelopeBody> accept(const v1::Envelope& envelope);
  // Marks the run as signed; permission_denied when the signature, the head
  // or the run does not match what was accepted.
  Result<void> accept_batch(const v1::BatchSignature& batch);

  const ChainState& state() const { return state_; }
  // Sequence numbers accepted but not yet covered by any signature.
  std::size_t unsigned_count() const { return unsigned_.size(); }

 private:
  Result<void> check_signature(const v1::Signature& sig, crypto::ByteView digest_input);

  std::string terminal_id_;
  crypto::PublicKey key_;
  std::string key_id_;
  crypto::DigestAlgo algo_;
  ChainState state_;
  Options options_;
  std::map<std::uint64_t, crypto::Bytes> unsigned_;  // sequence -> digest of its body
};

}  // namespace portier::envelope
