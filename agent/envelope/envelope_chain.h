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
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "common/crypto/bytes.h"
#include "common/crypto/digest.h"
#include "common/crypto/keys.h"
#include "common/crypto/signer.h"
#include "common/result.h"
#include "portier/v1/envelope.pb.h"
#include "portier/v1/telemetry.pb.h"

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
    crypto::Bytes digest;       // of envelope.body
    crypto::Bytes prev_digest;  // what the body chains to
  };
  Result<Sealed> seal(v1::PayloadType type, std::string payload,
                      std::chrono::system_clock::time_point time);
  const ChainState& state() const { return state_; }
  // Back to `state` (the outbox refused what was sealed after it).
  void reset(ChainState state);

 private:
  std::string terminal_id_;
  crypto::DigestAlgo algo_;
  ChainState state_;
};

// Signs one envelope's body.
Result<void> sign_envelope(v1::Envelope& envelope, const crypto::PrivateKey& key);
// ... with a signer whose key_id() the caller computed once.
Result<void> sign_envelope(v1::Envelope& envelope, const crypto::Signer& signer,
                           const std::string& key_id);
// Signs a run [first, last] through the digest of its last body.
Result<v1::BatchSignature> sign_batch(const std::string& terminal_id, std::uint64_t first,
                                      std::uint64_t last, const crypto::Bytes& head_digest,
                                      const crypto::PrivateKey& key);

// Whether `key` made the envelope's own signature, or the batch signature
// (over its terminal, run and head): the signature alone, no chain (the
// fleet tells a retired key's real holder from a forger naming its id).
bool signed_by(const crypto::PublicKey& key, const v1::Envelope& envelope);
bool signed_by(const crypto::PublicKey& key, const v1::BatchSignature& batch);

// The fleet's side. A link with its own signature is verified at once; a
// link without one is only a candidate until a signature covers it: a later
// signed link, or a BatchSignature whose head is its digest or chains to it.
// Nothing uncovered is handed out, so a hostile broker that injects links
// (it sees every digest on the wire) gets none of them accepted: a
// signature resolves the chain backward from its own digest through the
// previous digests, and picks the genuine link among any candidates of a
// sequence. Links must arrive in order (a gap is an error naming it); a
// rejected link changes nothing.
//
// The candidates are bounded in number and bytes (a broker can inject as
// many as it likes, each costing work and room). Full, a new candidate
// takes the place of the oldest one that no other candidate chains to
// (never its own parent): injected links are evicted first in a flood,
// since the genuine ones are the newest when their signature follows, and
// a genuine link evicted is sent again by its terminal, which deletes only
// what was acknowledged. Candidates of sequences the signed chain passed,
// and those that no longer chain to it, are discarded (take_superseded).
class ChainVerifier {
 public:
  struct Options {
    std::size_t max_pending = 4096;            // candidate links waiting for a signature
    std::size_t max_pending_bytes = SIZE_MAX;  // their envelopes' bytes
  };
  ChainVerifier(std::string terminal_id, crypto::PublicKey key, ChainState state, Options options);
  ChainVerifier(std::string terminal_id, crypto::PublicKey key, ChainState state)
      : ChainVerifier(std::move(terminal_id), std::move(key), std::move(state), Options{}) {}

  // The bodies this link's arrival covered, in order (its own last when it
  // is signed); empty when it only waits for a signature.
  Result<std::vector<v1::EnvelopeBody>> accept(const v1::Envelope& envelope);
  // The bodies the batch covered, in order; permission_denied when the
  // signature, the head or the run does not match what was received.
  Result<std::vector<v1::EnvelopeBody>> accept_batch(const v1::BatchSignature& batch);

  // A covered link with what a store keeps of it: the envelope as it was
  // received (serialized; its body bytes exactly as signed) and its digest.
  struct Link {
    v1::EnvelopeBody body;
    std::string envelope;
    std::string digest;
  };
  // accept() and accept_batch() with each covered link's envelope and digest.
  Result<std::vector<Link>> accept_links(const v1::Envelope& envelope);
  Result<std::vector<Link>> accept_batch_links(const v1::BatchSignature& batch);
  // Whether the batch is the terminal's own signature over its run and head,
  // without the envelopes it covers (a batch that arrives before them can
  // be held once this passes); changes nothing.
  Result<void> check_batch(const v1::BatchSignature& batch);
  // The same for an envelope that cannot be taken yet (past a gap): its body
  // names the terminal and its signature, when it has one, is the
  // terminal's. Changes nothing.
  Result<void> check_envelope(const v1::Envelope& envelope);

  // Candidates of covered sequences that were not on the signed chain
  // (links someone else inserted), since the last call; they are gone.
  std::vector<Link> take_superseded();
  // How many candidates were evicted to make room, since the last call.
  std::uint64_t take_evicted() { return std::exchange(evicted_, 0); }

  // The gap a terminal's outbox left when it dropped envelopes unsent: its
  // DropNotice (PAYLOAD_DROP) lists them with their digests and previous
  // digests. Only an envelope with its own valid signature of the terminal's
  // key bridges (a batch cannot cover across a gap, and anyone on the way
  // could claim a drop). It bridges the run of listed envelopes that starts
  // at the next sequence and chains from the last covered link, as far as
  // the run is contiguous, when no candidate waits before it; the chain
  // then goes on after the run. Drops listed further on (the outbox kept
  // some envelopes between them) are bridged by calling again once the
  // chain has reached them. The notice itself is a link like any other
  // (accept it afterwards). Candidates inside a bridged run cannot be
  // genuine and are discarded. The links bridged, in order.
  Result<std::vector<v1::DropNotice::Dropped>> bridge(const v1::Envelope& notice);

  // The candidates, for a verifier that must not outlive one call (several
  // receivers share a store): each one's envelope as received, oldest
  // first. restore_pending() takes them back into a verifier started from
  // the same state, checking each again (an unsigned envelope only), in
  // sequence order, and keeps their age from the order given. (A candidate
  // restored by restore_links() or restore_index() and not read since is
  // an empty string: no store is read here.)
  std::vector<std::string> pending_envelopes() const;
  Result<void> restore_pending(const std::vector<std::string>& envelopes);

  // The same for a store that keeps each candidate as a row of its own and
  // writes only what changed (the fleet's): a candidate as its key
  // (sequence, digest), the digest it chains to, its age and size, and its
  // envelope as received.
  struct PendingLink {
    std::uint64_t sequence = 0;
    std::string digest;
    std::string prev;
    std::uint64_t arrival = 0;  // a larger one arrived later
    std::size_t size = 0;       // of the envelope
    std::string envelope;       // empty: not read (restored, never covered)
  };
  // Reads the envelope of the candidate (sequence, digest) from the store.
  using EnvelopeLoader =
      std::function<Result<std::string>(std::uint64_t sequence, const std::string& digest)>;
  // Each candidate with its envelope when this verifier has it in memory,
  // oldest first (after restore_index(), only those in memory).
  std::vector<PendingLink> pending_links() const;
  // Takes back candidates a verifier of this terminal accepted and a store
  // kept, without their envelopes and without checking them again: the
  // per-receive cost is the index, not re-reading, re-parsing and
  // re-hashing every candidate. Safe because nothing is handed out on the
  // index's word: when a signature covers a candidate, `load` reads its
  // envelope and the verifier checks it then (unsigned, this terminal's,
  // its sequence, its previous digest, and its body's digest the one the
  // signature's chain names), so a store that lost or altered a row can
  // only make that cover fail (the candidate is dropped, the terminal sends
  // it again), never get a body accepted that the signature does not
  // cover. Candidates that do not chain to the state (passed, orphaned) are
  // discarded as superseded. Their ages are kept; new ones are younger.
  Result<void> restore_links(std::vector<PendingLink> links, EnvelopeLoader load);
  // The same without taking the index at all: the verifier asks `index`
  // for what each message needs (the candidate a link chains to or
  // repeats, the oldest leaves when it must evict, the highest sequence),
  // so a receive that only adds or refuses an unsigned candidate costs a
  // few lookups whatever the number of candidates. Whatever needs them all
  // (a signature that covers, a batch, a bridge, pending_links()) reads
  // the whole index first (materialize()). Safe for the same reason as
  // restore_links(): the envelopes are checked when covered. `summary`
  // describes the stored candidates as of the same read as the state.
  struct PendingSummary {
    std::size_t count = 0;
    std::size_t bytes = 0;
    std::uint64_t last_sequence = 0;  // 0: none
    std::uint64_t last_arrival = 0;
  };
  class CandidateIndex {
   public:
    virtual ~CandidateIndex() = default;
    virtual Result<std::optional<PendingLink>> find(std::uint64_t sequence,
                                                    const std::string& digest) = 0;
    // Candidates no stored candidate chains to, oldest first, that arrived
    // after `after` (from the oldest when none), at most `limit`.
    virtual Result<std::vector<PendingLink>> oldest_leaves(std::optional<std::uint64_t> after,
                                                           std::size_t limit) = 0;
    // The highest sequences first, at most `limit`.
    virtual Result<std::vector<PendingLink>> newest(std::size_t limit) = 0;
    virtual Result<std::vector<PendingLink>> all() = 0;
    virtual Result<std::string> envelope(std::uint64_t sequence, const std::string& digest) = 0;
  };
  void restore_index(CandidateIndex& index, const PendingSummary& summary);
  // Takes every stored candidate in (a no-op unless restore_index()).
  Result<void> materialize();
  // The terminal's next key signs from here on (a key rotation). The
  // candidates stay, with what the store must write of them (unsigned,
  // they wait under any key), unless the chain's digest changes with the
  // key's type: then they go (the terminal sends them again).
  Result<void> rekey(crypto::PublicKey key);

  // Bytes of the candidates' envelopes.
  std::size_t pending_bytes() const { return pending_bytes_; }
  // What the store must write since restore_links() (or the last call): the
  // candidates that came (with their envelopes) and those restored that
  // went, by (sequence, digest). A candidate that went and came again is in
  // both. O(candidates) to find the new ones, nothing read or copied else.
  struct Changes {
    std::vector<PendingLink> added;
    std::vector<std::pair<std::uint64_t, std::string>> removed;
  };
  Changes take_changes();

  // The state after the last covered link.
  const ChainState& state() const { return state_; }
  // Candidate links waiting for a signature.
  std::size_t pending_count() const;
  // The sequence the next link that arrives must carry (after the last
  // candidate, else after the last covered link).
  std::uint64_t expected_sequence() const;

 private:
  struct Candidate {
    // Parsed; of one not loaded, only its sequence and previous digest.
    v1::EnvelopeBody body;
    std::string prev;      // its previous digest
    std::string envelope;  // as received; empty while not loaded
    std::size_t size = 0;  // of the envelope
    bool loaded = true;    // false: restored by restore_links(), not read yet
    bool stored = false;   // restored (or handed over by take_changes())
    std::uint64_t arrival = 0;
    std::size_t children = 0;  // candidates of the next sequence chaining to it
  };
  Result<void> check_signature(const v1::Signature& sig, crypto::ByteView message);
  // A candidate from a store's index row, its envelope not read (moves the
  // row's previous digest).
  static Candidate from_index(PendingLink& l);
  // Reads and checks a candidate restored without its envelope.
  Result<void> load(std::uint64_t seq, const std::string& digest, Candidate& c);
  // The candidates from state_ up to (`sequence`, `digest`), found backward
  // through the previous digests; not_found when the chain does not reach.
  Result<std::vector<Link>> cover(std::uint64_t sequence, const std::string& digest);
  void add_candidate(std::uint64_t seq, const std::string& digest, Candidate c);
  void remove_candidate(std::uint64_t seq, const std::string& digest);
  // A candidate leaves pending_ (its bytes, and its row when stored).
  void gone(std::uint64_t seq, const std::string& digest, const Candidate& c);
  // Each candidate's children again; false when one does not chain.
  bool count_children();
  // Room for a candidate of `bytes` whose parent is (`seq` - 1, `prev`):
  // evicts the oldest leaves; false when none can go.
  bool make_room(std::uint64_t seq, const std::string& prev, std::size_t bytes);
  // The candidate (seq, digest): in memory, else (restore_index()) from the
  // index, taken into memory unread; nullptr when there is none.
  Result<Candidate*> find(std::uint64_t seq, const std::string& digest);
  // The oldest stored leaf that may go for a candidate of (seq, prev).
  std::optional<PendingLink> oldest_stored_leaf(std::uint64_t seq, const std::string& prev);
  // A stored candidate never taken into memory goes.
  void drop_stored(const PendingLink& l);
  std::uint64_t stored_last() const;
  // Candidates that no longer chain to the covered head: superseded.
  void prune_unchained();

  std::string terminal_id_;
  crypto::PublicKey key_;
  std::string key_id_;
  crypto::DigestAlgo algo_;
  ChainState state_;  // after the last covered link
  Options options_;
  // sequence -> digest -> candidate, above state_.next_sequence - 1.
  std::map<std::uint64_t, std::map<std::string, Candidate>> pending_;
  std::vector<Link> superseded_;
  std::uint64_t arrivals_ = 0;  // the next candidate's arrival
  std::size_t pending_bytes_ = 0;
  std::uint64_t evicted_ = 0;
  EnvelopeLoader load_;  // restore_links()'s
  std::vector<std::pair<std::uint64_t, std::string>> removed_stored_;
  std::size_t count_ = 0;  // candidates, in memory or (partial_) only in the index
  // restore_index(): the index answers for the candidates not in memory.
  CandidateIndex* index_ = nullptr;
  bool partial_ = false;
  std::set<std::pair<std::uint64_t, std::string>> removed_keys_;  // stored ones gone
  mutable std::uint64_t stored_last_ = 0;  // highest stored sequence still there
  mutable bool stored_last_stale_ = false;
};

}  // namespace portier::envelope
