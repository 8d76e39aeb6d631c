#include "agent/envelope/envelope_chain.h"

#include <algorithm>
#include <optional>
#include <set>
#include <utility>

#include "common/crypto/sign.h"
#include "common/crypto/signer.h"
#include "common/hex.h"

namespace portier::envelope {
namespace {

constexpr const char* kWhere = "envelope";
constexpr std::size_t kDigestSize = 32;  // SHA-256 and SM3

crypto::Bytes start_digest() { return crypto::Bytes(kDigestSize, 0); }

void put_be64(crypto::Bytes& out, std::uint64_t v) {
  for (int i = 7; i >= 0; --i) out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}

// What a batch signature signs: the run and its head, bound to the terminal
// and to this purpose (a signature over a bare digest could be replayed as
// another run's).
crypto::Bytes batch_message(const std::string& terminal_id, std::uint64_t first, std::uint64_t last,
                            crypto::ByteView head) {
  static constexpr std::string_view kLabel = "portier/v1 envelope batch";
  crypto::Bytes m(kLabel.begin(), kLabel.end());
  m.push_back(0);
  m.insert(m.end(), terminal_id.begin(), terminal_id.end());
  m.push_back(0);
  put_be64(m, first);
  put_be64(m, last);
  m.insert(m.end(), head.begin(), head.end());
  return m;
}

// What a single envelope's signature signs: its body, bound to this purpose.
crypto::Bytes signed_message(std::string_view body) {
  static constexpr std::string_view kLabel = "portier/v1 envelope";
  crypto::Bytes m(kLabel.begin(), kLabel.end());
  m.push_back(0);
  m.insert(m.end(), body.begin(), body.end());
  return m;
}

Result<v1::Signature> make_signature(const crypto::Signer& signer, const std::string& id,
                                     crypto::ByteView message) {
  auto value = signer.sign(message);
  if (!value) return std::unexpected(value.error());
  v1::Signature s;
  s.set_key_id(id);
  s.set_algorithm(signature_algorithm(signer.type()));
  s.set_value(value->data(), value->size());
  return s;
}

Result<v1::Signature> make_signature(const crypto::PrivateKey& key, crypto::ByteView message) {
  auto signer = crypto::KeySigner::from(key);
  if (!signer) return std::unexpected(signer.error());
  auto id = key_id(signer->public_key());
  if (!id) return std::unexpected(id.error());
  return make_signature(*signer, *id, message);
}

}  // namespace

crypto::DigestAlgo chain_digest(crypto::KeyType key) {
  return key == crypto::KeyType::sm2 ? crypto::DigestAlgo::sm3 : crypto::DigestAlgo::sha256;
}

v1::SignatureAlgorithm signature_algorithm(crypto::KeyType key) {
  switch (key) {
    case crypto::KeyType::ecdsa_p256:
      return v1::ECDSA_P256_SHA256;
    case crypto::KeyType::ed25519:
      return v1::ED25519;
    case crypto::KeyType::sm2:
      return v1::SM2_SM3;
  }
  return v1::SIGNATURE_ALGORITHM_UNSPECIFIED;
}

Result<std::string> key_id(const crypto::PublicKey& key) {
  auto raw = key.raw();
  if (!raw) return std::unexpected(raw.error());
  auto d = crypto::digest(crypto::DigestAlgo::sha256, crypto::ByteView(*raw));
  if (!d) return std::unexpected(d.error());
  return to_hex(d->data(), d->size());
}

EnvelopeSealer::EnvelopeSealer(std::string terminal_id, crypto::KeyType key_type, ChainState state)
    : terminal_id_(std::move(terminal_id)),
      algo_(chain_digest(key_type)),
      state_(std::move(state)) {
  if (state_.prev_digest.empty()) state_.prev_digest = start_digest();
}

void EnvelopeSealer::reset(ChainState state) {
  state_ = std::move(state);
  if (state_.prev_digest.empty()) state_.prev_digest = start_digest();
}

Result<EnvelopeSealer::Sealed> EnvelopeSealer::seal(v1::PayloadType type, std::string payload,
                                                    std::chrono::system_clock::time_point time) {
  v1::EnvelopeBody body;
  body.set_terminal_id(terminal_id_);
  body.set_session_epoch(state_.session_epoch);
  body.set_sequence(state_.next_sequence);
  const auto ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(time.time_since_epoch()).count();
  body.mutable_time()->set_seconds(ns / 1000000000);
  body.mutable_time()->set_nanos(static_cast<int>(ns % 1000000000));
  body.set_prev_digest(state_.prev_digest.data(), state_.prev_digest.size());
  body.set_payload_type(type);
  body.set_payload(std::move(payload));
  Sealed s;
  s.prev_digest = state_.prev_digest;
  if (!body.SerializeToString(s.envelope.mutable_body())) {
    return fail(Errc::internal, kWhere, "seal", "the body could not be serialized");
  }
  auto d = crypto::digest(algo_, s.envelope.body());
  if (!d) return std::unexpected(d.error());
  s.sequence = state_.next_sequence;
  s.digest = *d;
  state_.prev_digest = std::move(*d);
  ++state_.next_sequence;
  return s;
}

Result<void> sign_envelope(v1::Envelope& envelope, const crypto::PrivateKey& key) {
  auto sig = make_signature(key, signed_message(envelope.body()));
  if (!sig) return std::unexpected(sig.error());
  *envelope.mutable_signature() = std::move(*sig);
  return {};
}

Result<void> sign_envelope(v1::Envelope& envelope, const crypto::Signer& signer,
                           const std::string& key_id) {
  auto sig = make_signature(signer, key_id, signed_message(envelope.body()));
  if (!sig) return std::unexpected(sig.error());
  *envelope.mutable_signature() = std::move(*sig);
  return {};
}

Result<v1::BatchSignature> sign_batch(const std::string& terminal_id, std::uint64_t first,
                                      std::uint64_t last, const crypto::Bytes& head_digest,
                                      const crypto::PrivateKey& key) {
  if (first == 0 || last < first) {
    return fail(Errc::invalid_argument, kWhere, "batch", "the run must be 1 <= first <= last");
  }
  auto sig = make_signature(key, batch_message(terminal_id, first, last, head_digest));
  if (!sig) return std::unexpected(sig.error());
  v1::BatchSignature b;
  b.set_terminal_id(terminal_id);
  b.set_first_sequence(first);
  b.set_last_sequence(last);
  b.set_head_digest(head_digest.data(), head_digest.size());
  *b.mutable_signature() = std::move(*sig);
  return b;
}

ChainVerifier::ChainVerifier(std::string terminal_id, crypto::PublicKey key, ChainState state,
                             Options options)
    : terminal_id_(std::move(terminal_id)),
      key_(std::move(key)),
      algo_(chain_digest(key_.type())),
      state_(std::move(state)),
      options_(options) {
  if (state_.prev_digest.empty()) state_.prev_digest = start_digest();
  if (auto id = key_id(key_)) key_id_ = *id;
}

bool signed_by(const crypto::PublicKey& key, const v1::Envelope& envelope) {
  const auto& sig = envelope.signature();
  return envelope.has_signature() && sig.algorithm() == signature_algorithm(key.type()) &&
         crypto::verify(key, signed_message(envelope.body()), crypto::byte_view(sig.value()))
             .has_value();
}

bool signed_by(const crypto::PublicKey& key, const v1::BatchSignature& batch) {
  const auto& sig = batch.signature();
  if (!batch.has_signature() || sig.algorithm() != signature_algorithm(key.type())) return false;
  auto message = batch_message(batch.terminal_id(), batch.first_sequence(), batch.last_sequence(),
                               crypto::byte_view(batch.head_digest()));
  return crypto::verify(key, message, crypto::byte_view(sig.value())).has_value();
}

ChainVerifier::Candidate ChainVerifier::from_index(PendingLink& l) {
  Candidate c;
  c.body.set_sequence(l.sequence);
  c.body.set_prev_digest(l.prev);
  c.prev = std::move(l.prev);
  c.size = l.size;
  c.loaded = false;
  c.stored = true;
  c.arrival = l.arrival;
  return c;
}

Result<void> ChainVerifier::check_signature(const v1::Signature& sig, crypto::ByteView message) {
  if (sig.key_id() != key_id_) {
    return fail(Errc::permission_denied, kWhere, "signature",
                "signed by key " + sig.key_id() + ", not the terminal's key " + key_id_);
  }
  if (sig.algorithm() != signature_algorithm(key_.type())) {
    return fail(
        Errc::permission_denied, kWhere, "signature",
        "algorithm " + v1::SignatureAlgorithm_Name(sig.algorithm()) + " is not the terminal key's");
  }
  return crypto::verify(key_, message, crypto::byte_view(sig.value()));
}

std::size_t ChainVerifier::pending_count() const { return count_; }

std::uint64_t ChainVerifier::expected_sequence() const {
  std::uint64_t last = pending_.empty() ? 0 : pending_.rbegin()->first;
  if (partial_) last = std::max(last, stored_last());
  return last == 0 ? state_.next_sequence : std::max(state_.next_sequence, last + 1);
}

std::vector<ChainVerifier::Link> ChainVerifier::take_superseded() {
  return std::exchange(superseded_, {});
}

Result<std::vector<ChainVerifier::Link>> ChainVerifier::cover(std::uint64_t sequence,
                                                              const std::string& digest) {
  std::vector<Link> run;
  std::string want = digest;
  for (std::uint64_t s = sequence; s >= state_.next_sequence && s > 0; --s) {
    auto at = pending_.find(s);
    if (at == pending_.end()) break;
    auto c = at->second.find(want);
    if (c == at->second.end()) break;
    if (auto ok = load(s, want, c->second); !ok) {
      // Lost or altered in the store: it goes (its terminal sends it again).
      remove_candidate(s, want);
      prune_unchained();
      return std::unexpected(ok.error());
    }
    run.push_back(Link{c->second.body, c->second.envelope, want});
    want = c->second.prev;
    if (s == state_.next_sequence) {
      if (want != std::string(state_.prev_digest.begin(), state_.prev_digest.end())) break;
      std::reverse(run.begin(), run.end());
      state_.session_epoch = run.back().body.session_epoch();
      state_.next_sequence = sequence + 1;
      state_.prev_digest.assign(digest.begin(), digest.end());
      // Any other candidate of a covered sequence is not on the signed chain.
      for (auto& link : run) {
        for (auto& [d, other] : pending_[link.body.sequence()]) {
          if (d != link.digest) superseded_.push_back(Link{other.body, other.envelope, d});
        }
      }
      for (auto it = pending_.begin(); it != pending_.upper_bound(sequence); ++it) {
        for (auto& [d, c] : it->second) gone(it->first, d, c);
      }
      pending_.erase(pending_.begin(), pending_.upper_bound(sequence));
      prune_unchained();
      return run;
    }
  }
  return fail(Errc::not_found, kWhere, "sequence " + std::to_string(sequence),
              "its chain does not reach the last covered envelope");
}

namespace {
std::vector<v1::EnvelopeBody> bodies(std::vector<ChainVerifier::Link> links) {
  std::vector<v1::EnvelopeBody> out;
  out.reserve(links.size());
  for (auto& l : links) out.push_back(std::move(l.body));
  return out;
}
}  // namespace

Result<std::vector<v1::EnvelopeBody>> ChainVerifier::accept(const v1::Envelope& envelope) {
  auto links = accept_links(envelope);
  if (!links) return std::unexpected(links.error());
  return bodies(std::move(*links));
}

Result<std::vector<v1::EnvelopeBody>> ChainVerifier::accept_batch(const v1::BatchSignature& batch) {
  auto links = accept_batch_links(batch);
  if (!links) return std::unexpected(links.error());
  return bodies(std::move(*links));
}

Result<std::vector<ChainVerifier::Link>> ChainVerifier::accept_links(const v1::Envelope& envelope) {
  v1::EnvelopeBody body;
  if (!body.ParseFromString(envelope.body())) {
    return fail(Errc::invalid_argument, kWhere, "body", "not a portier.v1.EnvelopeBody");
  }
  const std::uint64_t seq = body.sequence();
  const std::string at = "sequence " + std::to_string(seq);
  if (body.terminal_id() != terminal_id_) {
    return fail(Errc::permission_denied, kWhere, at, "from another terminal");
  }
  if (seq < state_.next_sequence) {
    return fail(Errc::failed_precondition, kWhere, at,
                "already received (a replay or a duplicate)");
  }
  const std::uint64_t expected = expected_sequence();
  if (seq > expected) {
    return fail(Errc::failed_precondition, kWhere, at,
                "expected " + std::to_string(expected) + ": " + std::to_string(seq - expected) +
                    " envelope(s) missing");
  }
  // Its previous digest must be that of the last covered link or of a
  // candidate just before it.
  const std::string prev = body.prev_digest();
  bool chains = false;
  if (seq == state_.next_sequence) {
    chains = crypto::byte_view(prev).size() == state_.prev_digest.size() &&
             crypto::constant_time_equal(crypto::byte_view(prev), state_.prev_digest);
  } else {
    auto parent = find(seq - 1, prev);
    if (!parent) return std::unexpected(parent.error());
    chains = *parent != nullptr;
  }
  if (!chains) {
    return fail(Errc::permission_denied, kWhere, at,
                "its previous digest is not the digest of the envelope before it (inserted, "
                "reordered or altered)");
  }
  if (body.session_epoch() < state_.session_epoch) {
    return fail(Errc::permission_denied, kWhere, at,
                "session epoch " + std::to_string(body.session_epoch()) + " went back from " +
                    std::to_string(state_.session_epoch));
  }
  auto d = crypto::digest(algo_, envelope.body());
  if (!d) return std::unexpected(d.error());
  const std::string digest(d->begin(), d->end());
  auto same = find(seq, digest);
  if (!same) return std::unexpected(same.error());
  const bool held = *same != nullptr;
  if (held && !envelope.has_signature()) {
    return fail(Errc::failed_precondition, kWhere, at,
                "already received (a replay or a duplicate)");
  }
  if (envelope.has_signature()) {
    if (auto ok = check_signature(envelope.signature(), signed_message(envelope.body())); !ok) {
      return fail(Errc::permission_denied, kWhere, at, "bad signature: " + ok.error().message());
    }
  }
  std::string as_received = envelope.SerializeAsString();
  if (!envelope.has_signature() && !make_room(seq, prev, as_received.size())) {
    return fail(Errc::resource_exhausted, kWhere, at,
                std::to_string(pending_count()) + " envelopes of " +
                    std::to_string(pending_bytes_) +
                    " bytes already wait for a signature, and none can make room for this one (" +
                    std::to_string(as_received.size()) + " bytes); sign them first");
  }
  if (envelope.has_signature()) PORTIER_TRY(materialize());  // a signature covers
  if (held) {
    // The same body again, now with its signature (its unsigned copy came
    // first, e.g. stripped on the way): the signed one covers.
    auto& candidate = pending_[seq][digest];
    const Candidate unsigned_copy = candidate;
    pending_bytes_ = pending_bytes_ - candidate.size + as_received.size();
    candidate.size = as_received.size();
    candidate.envelope = std::move(as_received);
    candidate.body = body;
    candidate.loaded = true;
    auto covered = cover(seq, digest);
    if (!covered) {
      if (auto at = pending_.find(seq); at != pending_.end()) {
        if (auto c = at->second.find(digest); c != at->second.end()) {
          pending_bytes_ = pending_bytes_ - c->second.size + unsigned_copy.size;
          c->second = unsigned_copy;
        }
      }
    }
    return covered;
  }
  add_candidate(seq, digest, Candidate{std::move(body), prev, std::move(as_received)});
  if (!envelope.has_signature()) return std::vector<Link>{};
  // A signed link covers every link before it, through the chain.
  auto covered = cover(seq, digest);
  if (!covered) remove_candidate(seq, digest);
  return covered;
}

void ChainVerifier::add_candidate(std::uint64_t seq, const std::string& digest, Candidate c) {
  if (seq > state_.next_sequence) {
    if (auto parent = pending_.find(seq - 1); parent != pending_.end()) {
      if (auto p = parent->second.find(c.prev); p != parent->second.end()) ++p->second.children;
    }
  }
  c.arrival = arrivals_++;
  c.size = c.envelope.size();
  pending_bytes_ += c.size;
  ++count_;
  pending_[seq][digest] = std::move(c);
}

void ChainVerifier::gone(std::uint64_t seq, const std::string& digest, const Candidate& c) {
  pending_bytes_ -= std::min(pending_bytes_, c.size);
  count_ -= std::min<std::size_t>(count_, 1);
  if (!c.stored) return;
  removed_stored_.emplace_back(seq, digest);
  if (partial_) {
    removed_keys_.emplace(seq, digest);
    if (seq == stored_last_) stored_last_stale_ = true;
  }
}

void ChainVerifier::drop_stored(const PendingLink& l) {
  pending_bytes_ -= std::min(pending_bytes_, l.size);
  count_ -= std::min<std::size_t>(count_, 1);
  removed_stored_.emplace_back(l.sequence, l.digest);
  removed_keys_.emplace(l.sequence, l.digest);
  if (l.sequence == stored_last_) stored_last_stale_ = true;
}

std::uint64_t ChainVerifier::stored_last() const {
  if (stored_last_stale_ && index_) {
    // The highest stored sequence that did not go in this verifier.
    if (auto rows = index_->newest(removed_keys_.size() + 1)) {
      stored_last_ = 0;
      for (auto& l : *rows) {
        if (!removed_keys_.count({l.sequence, l.digest})) {
          stored_last_ = l.sequence;
          break;
        }
      }
      stored_last_stale_ = false;
    }
  }
  return stored_last_;
}

Result<ChainVerifier::Candidate*> ChainVerifier::find(std::uint64_t seq,
                                                      const std::string& digest) {
  if (auto at = pending_.find(seq); at != pending_.end()) {
    if (auto c = at->second.find(digest); c != at->second.end()) return &c->second;
  }
  if (!partial_ || seq < state_.next_sequence || removed_keys_.count({seq, digest})) {
    return nullptr;
  }
  auto l = index_->find(seq, digest);
  if (!l) return std::unexpected(l.error());
  if (!*l) return nullptr;
  Candidate c;
  c.body.set_sequence(seq);
  c.body.set_prev_digest((*l)->prev);
  c.prev = (*l)->prev;
  c.size = (*l)->size;
  c.loaded = false;
  c.stored = true;
  c.arrival = (*l)->arrival;
  return &(pending_[seq][digest] = std::move(c));
}

std::optional<ChainVerifier::PendingLink> ChainVerifier::oldest_stored_leaf(
    std::uint64_t seq, const std::string& prev) {
  constexpr std::size_t kPage = 16;
  std::optional<std::uint64_t> after;
  for (;;) {
    auto page = index_->oldest_leaves(after, kPage);
    if (!page) return std::nullopt;  // the store failed: nothing evicted
    for (auto& l : *page) {
      after = l.arrival;
      if (removed_keys_.count({l.sequence, l.digest})) continue;
      if (l.sequence + 1 == seq && l.digest == prev) continue;  // its own parent
      bool has_child = false;                                   // a new candidate chains to it
      if (auto next = pending_.find(l.sequence + 1); next != pending_.end()) {
        for (auto& [d, c] : next->second) has_child = has_child || c.prev == l.digest;
      }
      if (auto at = pending_.find(l.sequence); at != pending_.end()) {
        if (auto c = at->second.find(l.digest); c != at->second.end() && c->second.children > 0) {
          has_child = true;
        }
      }
      if (!has_child) return std::move(l);
    }
    if (page->size() < kPage) return std::nullopt;
  }
}

void ChainVerifier::remove_candidate(std::uint64_t seq, const std::string& digest) {
  auto at = pending_.find(seq);
  if (at == pending_.end()) return;
  auto c = at->second.find(digest);
  if (c == at->second.end()) return;
  if (auto parent = pending_.find(seq - 1); seq > 0 && parent != pending_.end()) {
    if (auto p = parent->second.find(c->second.prev);
        p != parent->second.end() && p->second.children > 0) {
      --p->second.children;
    }
  }
  gone(seq, digest, c->second);
  at->second.erase(c);
  if (at->second.empty()) pending_.erase(at);
}

bool ChainVerifier::make_room(std::uint64_t seq, const std::string& prev, std::size_t bytes) {
  if (bytes > options_.max_pending_bytes) return false;
  while (pending_count() + 1 > options_.max_pending ||
         pending_bytes_ + bytes > options_.max_pending_bytes) {
    // The oldest leaf: evicting it leaves every other candidate chained.
    std::optional<std::pair<std::uint64_t, std::string>> victim;
    std::uint64_t oldest = UINT64_MAX;
    for (auto& [s, candidates] : pending_) {
      for (auto& [d, c] : candidates) {
        if (c.children > 0 || c.arrival >= oldest || (s + 1 == seq && d == prev)) continue;
        if (partial_ && c.stored) continue;  // the index knows its children
        oldest = c.arrival;
        victim.emplace(s, d);
      }
    }
    if (partial_) {
      auto stored = oldest_stored_leaf(seq, prev);
      if (stored && stored->arrival < oldest) {
        ++evicted_;
        auto at = pending_.find(stored->sequence);
        if (at != pending_.end() && at->second.count(stored->digest)) {
          remove_candidate(stored->sequence, stored->digest);
        } else {
          drop_stored(*stored);
        }
        continue;
      }
    }
    if (!victim) return false;
    remove_candidate(victim->first, victim->second);
    ++evicted_;
  }
  return true;
}

void ChainVerifier::prune_unchained() {
  std::set<std::string> chained = {
      std::string(state_.prev_digest.begin(), state_.prev_digest.end())};
  std::uint64_t want = state_.next_sequence;
  for (auto it = pending_.begin(); it != pending_.end();) {
    std::set<std::string> next;
    for (auto c = it->second.begin(); c != it->second.end();) {
      if (it->first == want && chained.count(c->second.prev)) {
        next.insert(c->first);
        ++c;
        continue;
      }
      superseded_.push_back(Link{c->second.body, c->second.envelope, c->first});
      gone(it->first, c->first, c->second);
      c = it->second.erase(c);
    }
    if (it->first == want) ++want;
    chained = std::move(next);
    it = it->second.empty() ? pending_.erase(it) : std::next(it);
  }
  count_children();  // those of the candidates that went
}

Result<void> ChainVerifier::check_envelope(const v1::Envelope& envelope) {
  v1::EnvelopeBody body;
  if (!body.ParseFromString(envelope.body())) {
    return fail(Errc::invalid_argument, kWhere, "body", "not a portier.v1.EnvelopeBody");
  }
  const std::string at = "sequence " + std::to_string(body.sequence());
  if (body.terminal_id() != terminal_id_) {
    return fail(Errc::permission_denied, kWhere, at, "from another terminal");
  }
  if (!envelope.has_signature()) return {};
  if (auto ok = check_signature(envelope.signature(), signed_message(envelope.body())); !ok) {
    return fail(Errc::permission_denied, kWhere, at, "bad signature: " + ok.error().message());
  }
  return {};
}

Result<void> ChainVerifier::check_batch(const v1::BatchSignature& batch) {
  const std::string at = "batch " + std::to_string(batch.first_sequence()) + ".." +
                         std::to_string(batch.last_sequence());
  if (batch.terminal_id() != terminal_id_) {
    return fail(Errc::permission_denied, kWhere, at, "for another terminal");
  }
  if (batch.first_sequence() == 0 || batch.last_sequence() < batch.first_sequence()) {
    return fail(Errc::invalid_argument, kWhere, at, "not a run");
  }
  auto message = batch_message(terminal_id_, batch.first_sequence(), batch.last_sequence(),
                               crypto::byte_view(batch.head_digest()));
  if (auto ok = check_signature(batch.signature(), message); !ok) {
    return fail(Errc::permission_denied, kWhere, at, "bad signature: " + ok.error().message());
  }
  return {};
}

Result<std::vector<ChainVerifier::Link>> ChainVerifier::accept_batch_links(
    const v1::BatchSignature& batch) {
  const std::string at = "batch " + std::to_string(batch.first_sequence()) + ".." +
                         std::to_string(batch.last_sequence());
  if (batch.terminal_id() != terminal_id_) {
    return fail(Errc::permission_denied, kWhere, at, "for another terminal");
  }
  if (batch.first_sequence() == 0 || batch.last_sequence() < batch.first_sequence()) {
    return fail(Errc::invalid_argument, kWhere, at, "not a run");
  }
  if (batch.first_sequence() != state_.next_sequence) {
    return fail(Errc::failed_precondition, kWhere, at,
                "the next envelope to cover is " + std::to_string(state_.next_sequence));
  }
  auto head = find(batch.last_sequence(), batch.head_digest());
  if (!head) return std::unexpected(head.error());
  if (*head == nullptr) {
    return fail(Errc::permission_denied, kWhere, at,
                "its head digest is not the digest of an envelope received");
  }
  PORTIER_TRY(check_batch(batch));
  PORTIER_TRY(materialize());
  // The head's digest covers every body before it through the chain.
  return cover(batch.last_sequence(), batch.head_digest());
}

Result<std::vector<v1::DropNotice::Dropped>> ChainVerifier::bridge(const v1::Envelope& notice) {
  v1::EnvelopeBody body;
  if (!notice.has_signature() || !body.ParseFromString(notice.body()) ||
      body.payload_type() != v1::PAYLOAD_DROP) {
    return fail(Errc::invalid_argument, kWhere, "drop notice",
                "not a signed envelope of a portier.v1.DropNotice");
  }
  const std::string at = "drop notice at sequence " + std::to_string(body.sequence());
  if (body.terminal_id() != terminal_id_) {
    return fail(Errc::permission_denied, kWhere, at, "from another terminal");
  }
  if (auto ok = check_signature(notice.signature(), signed_message(notice.body())); !ok) {
    return fail(Errc::permission_denied, kWhere, at, "bad signature: " + ok.error().message());
  }
  v1::DropNotice drop;
  if (!drop.ParseFromString(body.payload()) || drop.dropped().empty()) {
    return fail(Errc::invalid_argument, kWhere, at, "its payload lists no dropped envelope");
  }
  // Listed in increasing order, all before the notice itself.
  for (int i = 0; i < drop.dropped_size(); ++i) {
    const auto s = drop.dropped(i).sequence();
    if (s == 0 || s >= body.sequence() || (i > 0 && s <= drop.dropped(i - 1).sequence())) {
      return fail(Errc::permission_denied, kWhere, at,
                  "lists sequence " + std::to_string(s) + " out of order or not before the notice");
    }
  }
  // The run to bridge now: the listed envelopes from the next sequence on
  // (those before it were bridged by an earlier call), as far as they are
  // contiguous; a later run is bridged once the chain has reached it.
  auto d = drop.dropped().begin();
  while (d != drop.dropped().end() && d->sequence() < state_.next_sequence) ++d;
  if (d == drop.dropped().end() || d->sequence() != state_.next_sequence) {
    return fail(
        Errc::failed_precondition, kWhere, at,
        "lists no dropped envelope at " + std::to_string(state_.next_sequence) + ", the next one");
  }
  PORTIER_TRY(materialize());
  if (!pending_.empty() && pending_.begin()->first < d->sequence()) {
    return fail(Errc::failed_precondition, kWhere, at,
                std::to_string(pending_count()) +
                    " envelope(s) before the drop still wait for a signature");
  }
  std::vector<v1::DropNotice::Dropped> run;
  std::string prev(state_.prev_digest.begin(), state_.prev_digest.end());
  std::uint64_t seq = state_.next_sequence;
  for (; d != drop.dropped().end() && d->sequence() == seq; ++d, ++seq) {
    if (d->prev_digest() != prev || d->digest().size() != kDigestSize) {
      return fail(
          Errc::permission_denied, kWhere, at,
          "the dropped envelope " + std::to_string(seq) + " does not chain to the one before it");
    }
    prev = d->digest();
    run.push_back(*d);
  }
  if (body.session_epoch() < state_.session_epoch) {
    return fail(Errc::permission_denied, kWhere, at, "its session epoch went back");
  }
  for (auto it = pending_.begin(); it != pending_.lower_bound(seq); ++it) {
    for (auto& [d, c] : it->second) {
      superseded_.push_back(Link{c.body, c.envelope, d});
      gone(it->first, d, c);
    }
  }
  pending_.erase(pending_.begin(), pending_.lower_bound(seq));
  state_.next_sequence = seq;
  state_.prev_digest.assign(prev.begin(), prev.end());
  prune_unchained();
  return run;
}

std::vector<ChainVerifier::PendingLink> ChainVerifier::pending_links() const {
  std::vector<PendingLink> out;
  for (auto& [seq, candidates] : pending_) {
    for (auto& [digest, c] : candidates) {
      out.push_back(PendingLink{seq, digest, c.prev, c.arrival, c.size, c.envelope});
    }
  }
  std::sort(out.begin(), out.end(),
            [](const PendingLink& a, const PendingLink& b) { return a.arrival < b.arrival; });
  return out;
}

std::vector<std::string> ChainVerifier::pending_envelopes() const {
  std::vector<std::string> out;
  for (auto& l : pending_links()) out.push_back(std::move(l.envelope));
  out.resize(std::max(out.size(), count_));  // (restore_index) those only in the index
  return out;
}

Result<void> ChainVerifier::restore_links(std::vector<PendingLink> links, EnvelopeLoader load) {
  load_ = std::move(load);
  for (auto& l : links) {
    // Only the index is taken: the envelope is read and checked when a
    // signature covers it (load()). A row of a sequence the chain passed
    // (a candidate its commit did not remove) goes with the next change.
    if (l.sequence < state_.next_sequence || l.digest.size() != kDigestSize ||
        l.prev.size() != kDigestSize) {
      removed_stored_.emplace_back(l.sequence, std::move(l.digest));
      continue;
    }
    Candidate c = from_index(l);
    if (pending_[l.sequence].try_emplace(std::move(l.digest), std::move(c)).second) {
      arrivals_ = std::max(arrivals_, l.arrival + 1);
      pending_bytes_ += l.size;
      ++count_;
    }
  }
  // A store holds only what a verifier accepted, so every candidate chains,
  // unless rows were lost: orphans cannot be covered and go.
  if (!count_children()) prune_unchained();
  return {};
}

void ChainVerifier::restore_index(CandidateIndex& index, const PendingSummary& summary) {
  index_ = &index;
  partial_ = true;
  load_ = [&index](std::uint64_t seq, const std::string& digest) {
    return index.envelope(seq, digest);
  };
  count_ += summary.count;
  pending_bytes_ += summary.bytes;
  stored_last_ = summary.last_sequence;
  if (summary.count > 0) arrivals_ = std::max(arrivals_, summary.last_arrival + 1);
}

Result<void> ChainVerifier::materialize() {
  if (!partial_) return {};
  auto all = index_->all();
  if (!all) return std::unexpected(all.error());
  for (auto& l : *all) {
    const std::pair<std::uint64_t, std::string> key{l.sequence, l.digest};
    if (removed_keys_.count(key)) continue;  // went in this verifier
    auto at = pending_.find(l.sequence);
    if (at != pending_.end() && at->second.count(l.digest)) continue;  // in memory already
    if (l.sequence < state_.next_sequence || l.digest.size() != kDigestSize ||
        l.prev.size() != kDigestSize) {
      drop_stored(l);  // passed (or not a candidate's): its row goes
      continue;
    }
    pending_[l.sequence].emplace(std::move(l.digest), from_index(l));
  }
  partial_ = false;
  // Everything is in memory now: the totals from it, not the summary.
  count_ = 0;
  pending_bytes_ = 0;
  for (auto& [seq, candidates] : pending_) {
    for (auto& [digest, c] : candidates) {
      ++count_;
      pending_bytes_ += c.size;
    }
  }
  if (!count_children()) prune_unchained();
  return {};
}

Result<void> ChainVerifier::rekey(crypto::PublicKey key) {
  auto id = key_id(key);
  if (!id) return std::unexpected(id.error());
  const auto algo = chain_digest(key.type());
  if (algo != algo_) {
    PORTIER_TRY(materialize());
    for (auto& [seq, candidates] : pending_) {
      for (auto& [digest, c] : candidates) gone(seq, digest, c);
    }
    pending_.clear();
  }
  key_ = std::move(key);
  key_id_ = std::move(*id);
  algo_ = algo;
  return {};
}

bool ChainVerifier::count_children() {
  bool chained = true;
  const std::string head(state_.prev_digest.begin(), state_.prev_digest.end());
  for (auto it = pending_.begin(); it != pending_.end(); ++it) {
    for (auto& [digest, c] : it->second) c.children = 0;
    if (it->first == state_.next_sequence) {
      for (auto& [digest, c] : it->second) chained = chained && c.prev == head;
      continue;
    }
    auto parent = it == pending_.begin() ? pending_.end() : std::prev(it);
    if (parent == pending_.end() || parent->first + 1 != it->first) {
      chained = false;
      continue;
    }
    for (auto& [digest, c] : it->second) {
      if (auto p = parent->second.find(c.prev); p != parent->second.end()) {
        ++p->second.children;
      } else {
        chained = false;
      }
    }
  }
  return chained;
}

ChainVerifier::Changes ChainVerifier::take_changes() {
  Changes out;
  out.removed = std::exchange(removed_stored_, {});
  for (auto& [seq, candidates] : pending_) {
    for (auto& [digest, c] : candidates) {
      if (c.stored) continue;
      out.added.push_back(PendingLink{seq, digest, c.prev, c.arrival, c.size, c.envelope});
      c.stored = true;
    }
  }
  return out;
}

Result<void> ChainVerifier::load(std::uint64_t seq, const std::string& digest, Candidate& c) {
  if (c.loaded) return {};
  const std::string at = "stored candidate " + std::to_string(seq);
  if (!load_) return fail(Errc::internal, kWhere, at, "restored without a way to read it");
  auto bytes = load_(seq, digest);
  if (!bytes && bytes.error().code == Errc::not_found) {
    return fail(Errc::internal, kWhere, at,
                "its envelope is not in the store (the store lost or altered it)");
  }
  if (!bytes) return std::unexpected(bytes.error().with_context(at));
  v1::Envelope e;
  v1::EnvelopeBody body;
  if (!e.ParseFromString(*bytes) || e.has_signature() || !body.ParseFromString(e.body())) {
    return fail(Errc::internal, kWhere, at, "not an unsigned portier.v1.Envelope (altered)");
  }
  auto d = crypto::digest(algo_, e.body());
  if (!d) return std::unexpected(d.error());
  if (std::string(d->begin(), d->end()) != digest || body.sequence() != seq ||
      body.prev_digest() != c.prev || body.terminal_id() != terminal_id_) {
    return fail(Errc::internal, kWhere, at,
                "its envelope is not the one its digest names (the store lost or altered it)");
  }
  c.body = std::move(body);
  c.envelope = std::move(*bytes);
  c.loaded = true;
  return {};
}

Result<void> ChainVerifier::restore_pending(const std::vector<std::string>& envelopes) {
  // Taken in sequence order (a candidate needs its parent), aged in the
  // order given.
  struct Item {
    std::uint64_t seq;
    std::size_t age;
    v1::Envelope envelope;
  };
  std::vector<Item> items;
  items.reserve(envelopes.size());
  for (std::size_t i = 0; i < envelopes.size(); ++i) {
    v1::Envelope e;
    v1::EnvelopeBody body;
    if (!e.ParseFromString(envelopes[i]) || e.has_signature() || !body.ParseFromString(e.body())) {
      return fail(Errc::invalid_argument, kWhere, "pending envelope " + std::to_string(i),
                  "not an unsigned portier.v1.Envelope");
    }
    items.push_back(Item{body.sequence(), i, std::move(e)});
  }
  std::stable_sort(items.begin(), items.end(),
                   [](const Item& a, const Item& b) { return a.seq < b.seq; });
  const std::uint64_t base = arrivals_;
  for (auto& item : items) {
    arrivals_ = base + item.age;  // add_candidate() ages it so
    auto ok = accept_links(item.envelope);
    if (!ok) return std::unexpected(ok.error().with_context("restore"));
  }
  arrivals_ = base + envelopes.size();
  return {};
}

}  // namespace portier::envelope
