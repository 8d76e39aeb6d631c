#include "tools/fleet/receiver.h"

#include <algorithm>
#include <cstdio>
#include <functional>
#include <map>
#include <optional>
#include <set>

#include "agent/audit_checkpoint.h"
#include "agent/envelope/offline_notice.h"
#include "common/hex.h"
#include "portier/v1/command.pb.h"
#include "portier/v1/envelope.pb.h"
#include "portier/v1/telemetry.pb.h"

namespace portier::fleet {
namespace {

using envelope::ChainVerifier;

constexpr const char* kWhere = "fleet receiver";

const std::set<std::string> kEnvelopeKinds = {"envelope",  "birth",     "health",
                                              "inventory", "decisions", "audit",
                                              "result",    "drop",      "checkpoint"};

Incident incident(const std::string& id, TimePoint now, std::string kind, std::uint64_t sequence,
                  std::string detail) {
  return Incident{0, id, now, std::move(kind), sequence, std::move(detail)};
}

// The body's time; one outside 1970..5138 (which no clock of ours makes,
// and which would overflow the clock's range) is kept as the epoch.
TimePoint to_time(const google::protobuf::Timestamp& t) {
  if (t.seconds() < 0 || t.seconds() > 100'000'000'000 || t.nanos() < 0 ||
      t.nanos() > 999'999'999) {
    return TimePoint{};
  }
  return TimePoint{} + std::chrono::duration_cast<TimePoint::duration>(
                           std::chrono::seconds(t.seconds()) + std::chrono::nanoseconds(t.nanos()));
}

bool contains(const Error& e, std::string_view text) {
  return e.message().find(text) != std::string::npos;
}

// The store failed (or moved under us), not the message: no incident, and
// the message is not acknowledged (it comes again).
bool is_store_error(const Error& e) {
  return e.code == Errc::aborted || e.code == Errc::unavailable || e.code == Errc::io ||
         e.code == Errc::internal;
}

// How a registered terminal's floodable incidents (anyone on the broker can
// cause them at will: forged, altered, replayed, junk) are tallied: like
// those of unknown ids (one row per kind and interval, with its count), but
// always in a row of its own: registered ids are the operator's, not a
// flooder's, so their number bounds the rows.
IncidentTally own_rows(IncidentTally t) {
  t.max_terminals = SIZE_MAX;
  return t;
}

// A terminal as the receiver needs it.
struct Known {
  Terminal terminal;
  crypto::PublicKey key;
  std::string key_id;
  // The rotated key the enrolment service certified, not used yet
  // (fleet_store.h: TerminalKey), and the first sequence the terminal signs
  // with it (0: not declared).
  std::optional<crypto::PublicKey> next_key;
  std::string next_key_id;
  std::uint64_t cutover = 0;
  // Keys a rotation replaced (or replaces at the cutover): each signs
  // nothing from `until` on.
  struct Retired {
    std::string key_id;
    std::uint64_t until = 0;
    std::optional<crypto::PublicKey> key;
  };
  std::vector<Retired> retired;
};

constexpr const char* kRetiredKey = "signed by a retired key";

// A signature naming a key that a rotation retired before `sequence`.
// Made by that key (`made_by`), it is a "retired key": whoever signs with
// it now is not the terminal (the old key is in other hands). Not made by
// it, it is a forger naming the id: a bad signature, nothing learnt of the
// old key.
std::optional<Error> retired_signature(
    const Known& k, const v1::Signature& sig, std::uint64_t sequence,
    const std::function<bool(const crypto::PublicKey&)>& made_by) {
  for (const auto& r : k.retired) {
    if (sig.key_id() != r.key_id || sequence < r.until) continue;
    const std::string at = "terminal " + k.terminal.id + " sequence " + std::to_string(sequence);
    const std::string key = "key " + r.key_id.substr(0, 16) +
                            "... (replaced by a key rotation at "
                            "sequence " +
                            std::to_string(r.until) + ")";
    if (r.key && !made_by(*r.key)) {
      return Error{Errc::permission_denied, kWhere, at,
                   "bad signature: it names " + key + ", which did not make it"};
    }
    return Error{Errc::permission_denied, kWhere, at,
                 std::string(kRetiredKey) + ": " + key +
                     " signs nothing from there on; whoever holds it now is not the terminal"};
  }
  return std::nullopt;
}

// What kind of incident a refusal of the verifier is. A signature that
// names the terminal's key and algorithm but does not verify means the
// signed bytes were altered; one by another key is a bad signature.
std::string classify(const Error& e, const v1::Signature* signature, const Known& k) {
  if (e.code == Errc::invalid_argument) return "malformed";
  if (contains(e, kRetiredKey)) return "retired key";
  if (e.code == Errc::resource_exhausted) return "overflow";
  if (contains(e, "bad signature")) {
    const bool terminals_key =
        signature && signature->key_id() == k.key_id &&
        signature->algorithm() == envelope::signature_algorithm(k.key.type());
    return terminals_key ? "tampered" : "bad signature";
  }
  return "tampered";
}

// One attempt at a receive: a verifier started from the chain as loaded,
// and the commit it builds.
class Attempt {
 public:
  Attempt(const Known& k, ChainRecord chain, const Receiver::Options& o, TimePoint now)
      : k_(k),
        now_(now),
        verifier_options_(pending_room(chain, o)),
        v(k.terminal.id, past_cutover(k, chain.state) ? *k.next_key : k.key, chain.state,
          verifier_options_),
        tally_(own_rows(o.tally)) {
    c.terminal_id = k.terminal.id;
    // The chain reached the cutover (the old key's last envelope came in an
    // earlier commit): the next key takes over with this one.
    if (past_cutover(k, chain.state)) c.next_key_from = k.cutover;
    c.expected_version = chain.version;
    loaded_state_ = chain.state;
    parked = std::move(chain.parked);
    parked_batches = std::move(chain.parked_batches);
    for (auto& p : parked) parked_loaded_.insert(p.key);
    summary_ = chain.pending_summary;
  }

  // The candidates stay in the store: the verifier asks it for those a
  // message needs, reads all of them only for what covers or bridges, and
  // reads (and checks) an envelope only when a signature covers it
  // (ChainVerifier::restore_links and restore_index say why that is safe).
  Result<void> init() {
    index_.store = store;
    index_.id = k_.terminal.id;
    v.restore_index(index_, summary_);
    return {};
  }

  // accept_links(), bridging a gap when the envelope is a signed drop
  // notice that explains it.
  Result<std::vector<ChainVerifier::Link>> accept(const v1::Envelope& env,
                                                  const v1::EnvelopeBody& body) {
    if (env.has_signature()) {
      if (auto e = retired(env, body.sequence())) return std::unexpected(*e);
    }
    auto r = v.accept_links(env);
    if (!r) {
      if (auto switched = accept_with_next_key(env, body)) return std::move(*switched);
    }
    if (r || body.sequence() <= v.expected_sequence() || !env.has_signature() ||
        body.payload_type() != v1::PAYLOAD_DROP) {
      return r;
    }
    auto dropped = v.bridge(env);
    if (!dropped) {
      if (dropped.error().code == Errc::permission_denied) return std::unexpected(dropped.error());
      return r;
    }
    v1::DropNotice notice;
    (void)notice.ParseFromString(body.payload());
    const auto first = dropped->front().sequence(), last = dropped->back().sequence();
    c.proofs.push_back(ChainProof{ChainProof::Kind::drop, first, env.SerializeAsString()});
    c.incidents.push_back(
        incident(k_.terminal.id, now_, "dropped by terminal", first,
                 std::to_string(dropped->size()) + " envelope(s) " + std::to_string(first) + ".." +
                     std::to_string(last) + " dropped unsent by the terminal's outbox (" +
                     printable(notice.reason(), 128) + "); the signed drop notice at sequence " +
                     std::to_string(body.sequence()) + " bridges the gap"));
    return v.accept_links(env);
  }

  // A batch signature, refused when a retired key made it over sequences
  // it no longer signs.
  Result<std::vector<ChainVerifier::Link>> accept_batch(const v1::BatchSignature& batch) {
    if (auto e = retired(batch)) return std::unexpected(*e);
    auto r = v.accept_batch_links(batch);
    if (!r) {
      if (auto switched = accept_batch_with_next_key(batch)) return std::move(*switched);
    }
    return r;
  }

  // The refusal of a message whose signature names a retired key past its
  // end (nullopt: not one).
  std::optional<Error> retired(const v1::Envelope& env, std::uint64_t sequence) const {
    return retired_signature(k_, env.signature(), sequence, [&](const crypto::PublicKey& key) {
      return envelope::signed_by(key, env);
    });
  }
  std::optional<Error> retired(const v1::BatchSignature& b) const {
    return retired_signature(
        k_, b.signature(), b.last_sequence(),
        [&](const crypto::PublicKey& key) { return envelope::signed_by(key, b); });
  }

  // The key that signs the chain at `sequence` (the next key from its takeover).
  const crypto::PublicKey& key_at(std::uint64_t sequence) const {
    return c.next_key_from != 0 && sequence >= c.next_key_from ? *k_.next_key : k_.key;
  }

  // The links that lost to the signed chain and the candidates evicted to
  // make room: anyone on the way can insert links, so they are counted,
  // not one row each.
  void tally_discarded() {
    for (auto& l : v.take_superseded()) {
      c.tallied.push_back(
          incident(k_.terminal.id, now_, "inserted", l.body.sequence(),
                   "an envelope that is not on the terminal's signed chain was discarded"));
    }
    if (const auto evicted = v.take_evicted(); evicted > 0) {
      auto i = incident(k_.terminal.id, now_, "evicted", 0,
                        "unsigned envelopes waiting for a signature were evicted, oldest first, "
                        "to make room for newer ones (a genuine one is sent again)");
      i.count = evicted;
      c.tallied.push_back(std::move(i));
    }
  }

  // A rotation that declared its cutover (fleet_store.h: TerminalKey): once
  // the old key covered everything before it, the next key takes over, and
  // the candidates waiting for a signature (at the cutover or after) wait
  // for one of the next key.
  void cut_over_when_reached() {
    if (!k_.next_key || k_.cutover == 0 || c.next_key_from != 0 ||
        v.state().next_sequence < k_.cutover) {
      return;
    }
    tally_discarded();  // what the old verifier discarded, before it goes
    // Unsigned candidates only: they wait under any key (a genuine one that
    // would not verify is sent again by its terminal).
    if (!v.rekey(*k_.next_key)) {
      v = ChainVerifier(k_.terminal.id, *k_.next_key, v.state(), verifier_options_);
      rows_unknown_ = true;  // the store's candidates: all of them go
    }
    c.next_key_from = k_.cutover;
  }

  // The terminal's next key taking over, for a rotation that declared no
  // cutover (a key in a PKCS#11 token, certified from its rotate-key CSR):
  // its first signature, of one envelope or of a batch, must start exactly
  // where the old key's signed chain ends, and from then on this attempt,
  // and every later one, verifies with the new key only. Unsigned
  // candidates there are no obstacle: the terminal holds its uplink at a
  // signed run to switch, so they are someone's injection, and the signed
  // link supersedes them (a broker must not block the takeover with one).
  std::optional<Result<std::vector<ChainVerifier::Link>>> accept_with_next_key(
      const v1::Envelope& env, const v1::EnvelopeBody& body) {
    if (!env.has_signature() || !takes_over(env.signature(), body.sequence())) return std::nullopt;
    ChainVerifier next = v;  // with what the store must write so far
    if (!next.rekey(*k_.next_key)) return std::nullopt;
    auto r = next.accept_links(env);
    if (!r) return std::nullopt;
    v = std::move(next);
    c.next_key_from = body.sequence();
    return r;
  }
  std::optional<Result<std::vector<ChainVerifier::Link>>> accept_batch_with_next_key(
      const v1::BatchSignature& batch) {
    if (!takes_over(batch.signature(), batch.first_sequence())) return std::nullopt;
    ChainVerifier next = v;
    if (!next.rekey(*k_.next_key)) return std::nullopt;
    auto r = next.accept_batch_links(batch);
    if (!r) return std::nullopt;
    v = std::move(next);
    c.next_key_from = batch.first_sequence();
    return r;
  }
  bool takes_over(const v1::Signature& sig, std::uint64_t first) const {
    return k_.next_key && k_.cutover == 0 && c.next_key_from == 0 &&
           sig.key_id() == k_.next_key_id && first == v.state().next_sequence;
  }

  // The covered links into the commit, with their payloads.
  void take(std::vector<ChainVerifier::Link> links) {
    for (auto& l : links) {
      v1::Envelope env;
      (void)env.ParseFromString(l.envelope);
      const auto seq = l.body.sequence();
      const auto time = to_time(l.body.time());
      c.envelopes.push_back(StoredEnvelope{k_.terminal.id, seq, l.body.session_epoch(), l.digest,
                                           l.body.payload_type(), time, now_, env.historical(),
                                           l.envelope});
      c.session_epoch = std::max(c.session_epoch, l.body.session_epoch());
      stored.push_back(seq);
      decode(l.body, time);
    }
    cut_over_when_reached();
  }

  // Envelopes held past a gap and batches that came before their
  // envelopes, tried again now that the chain moved. Only the envelopes
  // the chain can take now are read (at most the sequence it expects, or a
  // signed drop notice, which may bridge); those it passed go unread, the
  // others stay as they are.
  void replay_parked() {
    bool progress = true;
    while (progress && (!parked.empty() || !parked_batches.empty())) {
      progress = replay_batches();
      std::vector<ParkedEnvelope> ready;
      std::vector<ParkedEnvelope> later;
      for (auto& p : parked) {
        if (p.sequence < v.state().next_sequence) continue;  // passed: a duplicate
        (p.sequence <= v.expected_sequence() || p.bridge ? ready : later).push_back(std::move(p));
      }
      parked = std::move(later);
      std::stable_sort(ready.begin(), ready.end(),
                       [](const auto& a, const auto& b) { return a.sequence < b.sequence; });
      for (auto& p : ready) {
        const auto seq = p.sequence;
        auto bytes = parked_bytes(p);
        if (!bytes) {
          if (is_store_error(bytes.error())) parked.push_back(std::move(p));  // later
          continue;
        }
        v1::Envelope env;
        v1::EnvelopeBody body;
        if (!env.ParseFromString(*bytes) || !body.ParseFromString(env.body()) ||
            body.sequence() != seq) {
          continue;  // not what was held (the store lost or altered it): dropped
        }
        const auto before = v.state().next_sequence;
        auto r = accept(env, body);
        if (r) {
          c.incidents.push_back(incident(k_.terminal.id, now_, "reordered", seq,
                                         "arrived before sequence " + std::to_string(before) +
                                             "; verified and taken once the chain reached it"));
          take(std::move(*r));
          progress = true;
        } else if ((r.error().code == Errc::failed_precondition && seq > v.expected_sequence()) ||
                   is_store_error(r.error())) {
          parked.push_back(std::move(p));  // still past a gap (or the store failed: later)
        } else if (seq >= v.state().next_sequence && !contains(r.error(), "already received")) {
          // Held unverified, and now refused: someone else's envelope
          // (anyone can send those: tallied).
          const v1::Signature* sig = env.has_signature() ? &env.signature() : nullptr;
          c.tallied.push_back(incident(k_.terminal.id, now_, classify(r.error(), sig, k_), seq,
                                       r.error().message()));
        }
      }
    }
  }

  // The envelope held past a gap: in memory, else read from the store.
  Result<std::string> parked_bytes(ParkedEnvelope& p) {
    if (p.envelope.empty()) {
      auto bytes = store->parked_envelope(k_.terminal.id, p.key);
      if (!bytes) return std::unexpected(bytes.error());
      p.envelope = std::move(*bytes);
    }
    return p.envelope;
  }

  // The index of the parked envelope furthest ahead.
  std::pair<std::uint64_t, std::size_t> furthest_parked() const {
    std::pair<std::uint64_t, std::size_t> best{0, 0};
    for (std::size_t i = 0; i < parked.size(); ++i) {
      if (parked[i].sequence >= best.first) best = {parked[i].sequence, i};
    }
    return best;
  }

  // Bytes of the envelopes the chain holds unverified or uncovered.
  std::size_t held_bytes() const {
    std::size_t n = v.pending_bytes();
    for (auto& e : parked) n += e.size;
    for (auto& e : parked_batches) n += e.size();
    return n;
  }

  // The chain after this attempt, and the links that lost to the signed chain.
  void finish() {
    tally_discarded();
    c.tally = tally_;
    c.chain.state = v.state();
    // The candidates that came and went: one row each, not the whole set.
    auto changes = v.take_changes();
    c.pending_added = std::move(changes.added);
    c.pending_removed = std::move(changes.removed);
    if (rows_unknown_) {
      // A verifier that knows nothing of the store's rows took over: they
      // all go (read once, at a key rotation the store failed during).
      if (auto rows = store->pending_index(k_.terminal.id)) {
        for (auto& l : *rows) c.pending_removed.emplace_back(l.sequence, l.digest);
      }
    }
    c.chain.pending_summary.count = v.pending_count();
    c.chain.pending_summary.bytes = v.pending_bytes();
    // The same for the envelopes held past a gap.
    std::set<std::string> now_parked;
    for (auto& p : parked) {
      if (!parked_loaded_.count(p.key)) c.parked_added.push_back(p);
      now_parked.insert(p.key);
    }
    for (auto& key : parked_loaded_) {
      if (!now_parked.count(key)) c.parked_removed.push_back(key);
    }
    c.batches_changed = batches_dirty;
    if (c.batches_changed) c.chain.parked_batches = parked_batches;
    const auto& st = c.chain.state;
    c.chain_changed = c.batches_changed || !c.pending_added.empty() || !c.pending_removed.empty() ||
                      !c.parked_added.empty() || !c.parked_removed.empty() ||
                      c.next_key_from != 0 || st.next_sequence != loaded_state_.next_sequence ||
                      st.session_epoch != loaded_state_.session_epoch ||
                      st.prev_digest != loaded_state_.prev_digest;
    if (!c.envelopes.empty()) c.seen = now_;
  }

  const Known& k_;
  TimePoint now_;
  ChainVerifier::Options verifier_options_;  // also the next key's verifier's
  ChainVerifier v;
  Commit c;
  FleetStore* store = nullptr;              // to hold checkpoints against what was received before
  std::vector<ParkedEnvelope> parked;       // past a gap, unverified
  std::vector<std::string> parked_batches;  // verified, waiting for their envelopes
  bool batches_dirty = false;
  std::vector<std::uint64_t> stored;

 private:
  // True when a held batch covered its run.
  bool replay_batches() {
    std::vector<std::pair<std::uint64_t, v1::BatchSignature>> order;
    for (auto& p : parked_batches) {
      v1::BatchSignature b;
      if (b.ParseFromString(p)) order.emplace_back(b.last_sequence(), std::move(b));
    }
    std::sort(order.begin(), order.end(),
              [](const auto& x, const auto& y) { return x.first < y.first; });
    parked_batches.clear();
    bool progress = false;
    for (auto& [last, b] : order) {
      if (last < v.state().next_sequence) continue;  // covered otherwise meanwhile
      if (auto e = retired(b)) {
        // Held before the rotation named its cutover: the old key's past it.
        c.incidents.push_back(
            incident(k_.terminal.id, now_, classify(*e, &b.signature(), k_), last, e->message()));
        continue;
      }
      auto r = v.accept_batch_links(b);
      if (!r) {
        parked_batches.push_back(b.SerializeAsString());  // its signature is the terminal's
        continue;
      }
      c.proofs.push_back(ChainProof{ChainProof::Kind::batch, last, b.SerializeAsString()});
      take(std::move(*r));
      progress = true;
    }
    if (parked_batches.size() != order.size()) batches_dirty = true;  // some taken or dropped
    return progress;
  }

  // A signed checkpoint of the terminal's audit trail: it must verify with
  // the terminal's key, extend the last one held, and match the audit
  // record the fleet holds at its number (else the trail was rewritten).
  void check_checkpoint(const v1::EnvelopeBody& body, TimePoint time) {
    const auto seq = body.sequence();
    const auto& id = k_.terminal.id;
    v1::AuditCheckpoint cp;
    if (!cp.ParseFromString(body.payload())) {
      c.incidents.push_back(
          incident(id, now_, "malformed", seq, "the payload is not a portier.v1.AuditCheckpoint"));
      return;
    }
    agent::AuditCheckpoint ac{cp.terminal_id(),   cp.seq(),    cp.head(),     cp.time_ms(),
                              cp.session_epoch(), cp.key_id(), cp.signature()};
    if (cp.terminal_id() != id || !agent::verify_checkpoint(ac, key_at(seq))) {
      c.incidents.push_back(incident(id, now_, "bad checkpoint", seq,
                                     "an audit checkpoint that is not this terminal's"));
      return;
    }
    std::optional<v1::AuditCheckpoint> prev;
    for (auto& t : c.telemetry) {
      v1::AuditCheckpoint p;
      if (t.payload_type == v1::PAYLOAD_AUDIT_CHECKPOINT && p.ParseFromString(t.payload)) prev = p;
    }
    if (!prev && store) {
      if (auto last = store->latest(id, v1::PAYLOAD_AUDIT_CHECKPOINT); last && *last) {
        v1::AuditCheckpoint p;
        if (p.ParseFromString((*last)->payload)) prev = p;
      }
    }
    if (prev &&
        (cp.seq() < prev->seq() || (cp.seq() == prev->seq() && cp.head() != prev->head()))) {
      c.incidents.push_back(incident(id, now_, "checkpoint regressed", seq,
                                     "audit checkpoint of record " + std::to_string(cp.seq()) +
                                         " does not extend the last one (record " +
                                         std::to_string(prev->seq()) +
                                         "): the terminal's trail was cut or rewritten"));
    }
    std::optional<std::string> line;
    for (auto& a : c.audit) {
      if (a.record == cp.seq()) line = a.line;
    }
    if (!line && store) {
      if (auto held = store->audit(id, cp.seq(), 1);
          held && !held->empty() && held->front().record == cp.seq()) {
        line = held->front().line;
      }
    }
    if (line && agent::sha256_hex(*line) != cp.head()) {
      c.incidents.push_back(incident(id, now_, "checkpoint mismatch", seq,
                                     "audit record " + std::to_string(cp.seq()) +
                                         " as received does not match the terminal's signed "
                                         "checkpoint of it"));
    }
    c.telemetry.push_back(Telemetry{id, seq, v1::PAYLOAD_AUDIT_CHECKPOINT, time, body.payload()});
  }

  void decode(const v1::EnvelopeBody& body, TimePoint time) {
    const auto seq = body.sequence();
    const auto type = body.payload_type();
    auto malformed = [&](const char* what) {
      c.incidents.push_back(incident(k_.terminal.id, now_, "malformed", seq,
                                     std::string("the payload is not a ") + what +
                                         " (the signed envelope is stored as received)"));
    };
    auto telemetry = [&](google::protobuf::Message&& m, const char* what) {
      if (!m.ParseFromString(body.payload())) return malformed(what);
      c.telemetry.push_back(Telemetry{k_.terminal.id, seq, type, time, body.payload()});
    };
    switch (type) {
      case v1::PAYLOAD_BIRTH:
        telemetry(v1::Birth{}, "portier.v1.Birth");
        if (!c.telemetry.empty() && c.telemetry.back().sequence == seq) c.birth = body.payload();
        break;
      case v1::PAYLOAD_HEALTH:
        telemetry(v1::HealthReport{}, "portier.v1.HealthReport");
        break;
      case v1::PAYLOAD_INVENTORY:
        telemetry(v1::Inventory{}, "portier.v1.Inventory");
        break;
      case v1::PAYLOAD_DECISION_SUMMARY:
        telemetry(v1::DecisionSummary{}, "portier.v1.DecisionSummary");
        break;
      case v1::PAYLOAD_DROP:
        telemetry(v1::DropNotice{}, "portier.v1.DropNotice");
        break;
      case v1::PAYLOAD_AUDIT: {
        v1::AuditBatch batch;
        if (!batch.ParseFromString(body.payload())) return malformed("portier.v1.AuditBatch");
        for (int i = 0; i < batch.records_size(); ++i) {
          // Each record by its own number (a batch may have holes), else
          // its place in the batch.
          std::uint64_t n = batch.first_record() + static_cast<std::uint64_t>(i);
          if (auto c2 = agent::parse_chained_line(batch.records(i))) n = c2->seq;
          c.audit.push_back(AuditEntry{k_.terminal.id, n, seq, batch.records(i)});
        }
        break;
      }
      case v1::PAYLOAD_AUDIT_CHECKPOINT:
        check_checkpoint(body, time);
        break;
      case v1::PAYLOAD_COMMAND_RESULT: {
        v1::CommandResult r;
        if (!r.ParseFromString(body.payload())) return malformed("portier.v1.CommandResult");
        c.results.push_back(CommandResultEntry{k_.terminal.id, seq, r.command_id(), r.status(),
                                               r.message(), time, body.payload()});
        break;
      }
      default:
        c.incidents.push_back(incident(k_.terminal.id, now_, "malformed", seq,
                                       "payload type " + std::to_string(type) +
                                           " is unknown (the signed envelope is stored)"));
    }
  }

  // Whether the chain as loaded has reached the declared cutover of the
  // next key (everything before it covered by the old key).
  static bool past_cutover(const Known& k, const envelope::ChainState& state) {
    return k.next_key && k.cutover != 0 && state.next_sequence >= k.cutover;
  }

  // The candidates get the room the envelopes held past a gap leave.
  static ChainVerifier::Options pending_room(const ChainRecord& chain, const Receiver::Options& o) {
    std::size_t held = 0;
    for (auto& e : chain.parked) held += e.size;
    for (auto& e : chain.parked_batches) held += e.size();
    return ChainVerifier::Options{
        o.max_pending, o.max_held_bytes > held ? o.max_held_bytes - held : std::size_t{0}};
  }

  // The store's candidates, as ChainVerifier asks for them.
  struct StoreIndex final : ChainVerifier::CandidateIndex {
    FleetStore* store = nullptr;
    std::string id;
    Result<std::optional<ChainVerifier::PendingLink>> find(std::uint64_t seq,
                                                           const std::string& digest) override {
      return store->pending_find(id, seq, digest);
    }
    Result<std::vector<ChainVerifier::PendingLink>> oldest_leaves(
        std::optional<std::uint64_t> after, std::size_t limit) override {
      return store->pending_oldest_leaves(id, after, limit);
    }
    Result<std::vector<ChainVerifier::PendingLink>> newest(std::size_t limit) override {
      return store->pending_newest(id, limit);
    }
    Result<std::vector<ChainVerifier::PendingLink>> all() override {
      return store->pending_index(id);
    }
    Result<std::string> envelope(std::uint64_t seq, const std::string& digest) override {
      return store->pending_envelope(id, seq, digest);
    }
  };
  StoreIndex index_;
  ChainVerifier::PendingSummary summary_;
  bool rows_unknown_ = false;  // v was replaced by one restored from nothing
  // What was loaded, to write only what changed.
  envelope::ChainState loaded_state_;
  std::set<std::string> parked_loaded_;  // keys
  IncidentTally tally_;
};

}  // namespace

std::vector<std::uint64_t> acknowledgeable(const Receipt& receipt, std::uint64_t sequence,
                                           bool stored_already) {
  if (receipt.outcome == Receipt::Outcome::stored) return receipt.stored;
  if (receipt.outcome == Receipt::Outcome::duplicate && stored_already) return {sequence};
  return {};
}

bool Receiver::holds(const std::string& terminal_id, std::uint64_t sequence) {
  auto e = store_.envelope(terminal_id, sequence);
  return e && e->has_value();
}

std::optional<std::string> Receiver::stored_digest(const std::string& terminal_id,
                                                   std::uint64_t sequence) {
  auto e = store_.envelope(terminal_id, sequence);
  if (!e || !e->has_value()) return std::nullopt;
  return std::move((*e)->digest);
}

std::string_view name(Receipt::Outcome outcome) {
  switch (outcome) {
    case Receipt::Outcome::stored:
      return "stored";
    case Receipt::Outcome::held:
      return "held";
    case Receipt::Outcome::duplicate:
      return "duplicate";
    case Receipt::Outcome::offline:
      return "offline";
    case Receipt::Outcome::stale:
      return "stale";
  }
  return "unknown";
}

namespace {

// The terminal; not_found when it is not registered.
Result<Known> known(FleetStore& store, const std::string& id) {
  auto t = store.terminal(id);
  if (!t) return std::unexpected(t.error());
  auto key = crypto::PublicKey::from_pem(t->public_key_pem);
  if (!key) return std::unexpected(key.error().with_context("terminal " + id + ": stored key"));
  auto kid = envelope::key_id(*key);
  if (!kid) return std::unexpected(kid.error());
  Known k{std::move(*t), std::move(*key), std::move(*kid), std::nullopt, {}, 0, {}};
  auto keys = store.keys(id);
  if (!keys) return std::unexpected(keys.error());
  // The history comes by from_sequence (the next key last): each key is
  // retired where the one after it took over.
  std::optional<Known::Retired> previous;
  for (const auto& nk : *keys) {
    auto key = crypto::PublicKey::from_pem(nk.public_key_pem);
    if (!key) return std::unexpected(key.error().with_context("terminal " + id + ": key history"));
    auto key_id = envelope::key_id(*key);
    if (!key_id) return std::unexpected(key_id.error());
    const std::uint64_t from = nk.from_sequence != 0 ? nk.from_sequence : nk.cutover;
    if (previous && from != 0) k.retired.push_back({previous->key_id, from, previous->key});
    if (nk.from_sequence != 0) {
      previous = Known::Retired{*key_id, 0, *key};
      continue;
    }
    // The next key: the key in use now retires at its cutover.
    if (nk.cutover != 0 && (!previous || previous->key_id != k.key_id)) {
      k.retired.push_back({k.key_id, nk.cutover, k.key});
    }
    k.next_key = std::move(*key);
    k.next_key_id = std::move(*key_id);
    k.cutover = nk.cutover;
  }
  return k;
}

// The error a refusal returns (its incident says the same).
std::unexpected<Error> refusal(const Incident& i, Errc code) {
  return fail(code, kWhere,
              "terminal " + printable(i.terminal_id, 128) +
                  (i.sequence ? " sequence " + std::to_string(i.sequence) : std::string()),
              i.kind + ": " + i.detail);
}

Errc code_of(const std::string& kind) {
  if (kind == "malformed") return Errc::invalid_argument;
  if (kind == "overflow") return Errc::resource_exhausted;
  return Errc::permission_denied;
}

// A message parsed and checked for what needs no chain.
struct Parsed {
  enum class Kind { envelope, batch, offline };
  Kind kind = Kind::envelope;
  bool ok = false;
  v1::Envelope env;
  v1::EnvelopeBody body;
  v1::BatchSignature batch;
  v1::Offline off;
};

}  // namespace

// One receive of a group: what it does to the attempt, and its answer.
class Receiver::Step {
 public:
  Step(Receiver& r, Attempt& a, const Known& k, TimePoint now) : r_(r), a_(a), k_(k), now_(now) {}

  Result<Receipt> envelope(const Parsed& p, std::string_view bytes) {
    const auto& id = k_.terminal.id;
    const std::uint64_t seq = p.body.sequence();
    // A new unsigned candidate must fit the room: the verifier evicts the
    // oldest candidates it can for it (ChainVerifier::Options), else refuses.
    const auto before = a_.stored.size();
    if (p.env.has_signature()) {
      if (auto e = a_.retired(p.env, seq)) {
        const auto kind = classify(*e, &p.env.signature(), k_);
        return refuse(incident(id, now_, kind, seq, e->message()), code_of(kind));
      }
    }
    auto r = a_.accept(p.env, p.body);
    if (r) {
      a_.take(std::move(*r));
      a_.replay_parked();
      return receipt(before, Receipt::Outcome::held);
    }
    const Error& e = r.error();
    if (is_store_error(e)) return std::unexpected(e);
    if (seq < a_.v.state().next_sequence) {
      auto d = crypto::digest(envelope::chain_digest(k_.key.type()), p.env.body());
      if (!d) return std::unexpected(d.error());
      auto stored = stored_digest(seq);
      if (!stored) return std::unexpected(stored.error());
      if (*stored && **stored == std::string(d->begin(), d->end())) {
        return Receipt{Receipt::Outcome::duplicate, {}};  // a resend after a lost ack
      }
      return refuse(incident(id, now_, "duplicate conflicting", seq,
                             *stored ? "sequence " + std::to_string(seq) +
                                           " is stored with another digest (a replay of an "
                                           "altered or forged envelope)"
                                     : "sequence " + std::to_string(seq) +
                                           " was reported dropped by the terminal"),
                    Errc::failed_precondition);
    }
    if (e.code == Errc::failed_precondition && contains(e, "already received")) {
      return Receipt{Receipt::Outcome::duplicate, {}};  // held already, same digest
    }
    if (e.code == Errc::failed_precondition && seq > a_.v.expected_sequence()) {
      return park(p, bytes, e, before);
    }
    const auto kind = classify(e, p.env.has_signature() ? &p.env.signature() : nullptr, k_);
    return refuse(incident(id, now_, kind, seq, e.message()), code_of(kind));
  }

  Result<Receipt> batch(const Parsed& p, std::string_view bytes) {
    const auto& id = k_.terminal.id;
    const std::uint64_t last = p.batch.last_sequence();
    const auto before = a_.stored.size();
    if (auto e = a_.retired(p.batch)) {
      const auto kind = classify(*e, &p.batch.signature(), k_);
      return refuse(incident(id, now_, kind, last, e->message()), code_of(kind));
    }
    auto r = a_.accept_batch(p.batch);
    if (r) {
      a_.c.proofs.push_back(ChainProof{ChainProof::Kind::batch, last, p.batch.SerializeAsString()});
      a_.take(std::move(*r));
      a_.replay_parked();
      return receipt(before, Receipt::Outcome::stored);
    }
    const Error& e = r.error();
    if (is_store_error(e)) return std::unexpected(e);
    if (last != 0 && last < a_.v.state().next_sequence) {
      auto stored = stored_digest(last);
      if (!stored) return std::unexpected(stored.error());
      if (*stored && **stored == p.batch.head_digest()) {
        return Receipt{Receipt::Outcome::duplicate, {}};
      }
      return refuse(
          incident(id, now_, "duplicate conflicting", last,
                   "a batch over envelopes already covered, with another head: " + e.message()),
          Errc::failed_precondition);
    }
    if (auto genuine = a_.v.check_batch(p.batch); !genuine) {
      const auto kind = classify(genuine.error(), &p.batch.signature(), k_);
      return refuse(incident(id, now_, kind, last, genuine.error().message()), code_of(kind));
    }
    // The terminal's own signature, before (some of) its envelopes: held
    // until they are here (another receiver may be storing them now).
    const std::string as_received(bytes);
    auto& held = a_.parked_batches;
    if (std::find(held.begin(), held.end(), as_received) != held.end()) {
      return Receipt{Receipt::Outcome::duplicate, {}};
    }
    if (a_.parked.size() + held.size() >= r_.options_.max_parked) {
      return refuse(incident(id, now_, "overflow", last,
                             "too many messages already wait past a gap: " + e.message()),
                    Errc::resource_exhausted);
    }
    held.push_back(as_received);
    a_.batches_dirty = true;
    a_.replay_parked();
    return receipt(before, Receipt::Outcome::held);
  }

 private:
  // An envelope past a gap: held until the missing envelopes arrive. A
  // signature it carries is checked now (a forgery is refused at once); an
  // unsigned one is verified when the chain reaches it.
  Result<Receipt> park(const Parsed& p, std::string_view bytes, const Error& gap,
                       std::size_t before) {
    const auto& id = k_.terminal.id;
    const std::uint64_t seq = p.body.sequence();
    const auto& o = r_.options_;
    if (auto genuine = a_.v.check_envelope(p.env); !genuine) {
      const auto kind = classify(genuine.error(), &p.env.signature(), k_);
      return refuse(incident(id, now_, kind, seq, genuine.error().message()), code_of(kind));
    }
    // Known by the SHA-256 of its bytes: the others are not read again.
    auto key = crypto::digest(crypto::DigestAlgo::sha256, crypto::byte_view(bytes));
    if (!key) return std::unexpected(key.error());
    ParkedEnvelope held{std::string(key->begin(), key->end()), seq,
                        p.env.has_signature() && p.body.payload_type() == v1::PAYLOAD_DROP,
                        bytes.size(), std::string(bytes)};
    auto& parked = a_.parked;
    const bool known_already =
        std::any_of(parked.begin(), parked.end(), [&](const auto& e) { return e.key == held.key; });
    auto full = [&] {
      return parked.size() + a_.parked_batches.size() >= o.max_parked ||
             a_.held_bytes() + bytes.size() > o.max_held_bytes;
    };
    // When the room is full, the envelope furthest ahead makes way for one
    // nearer the gap (junk parked far ahead cannot block healing; a genuine
    // envelope that makes way is sent again by its terminal).
    while (!known_already && !parked.empty() && full()) {
      auto furthest = a_.furthest_parked();
      if (furthest.first <= seq) break;
      parked.erase(parked.begin() + static_cast<std::ptrdiff_t>(furthest.second));
    }
    if (!known_already && full()) {
      return refuse(incident(id, now_, "overflow", seq,
                             std::to_string(parked.size()) +
                                 " envelopes already wait past a gap: " + gap.message()),
                    Errc::resource_exhausted);
    }
    if (!known_already) {
      parked.push_back(std::move(held));
      // A gap the terminal's own signature proves is an incident of its
      // own, with its range; one shown by an unsigned envelope (anyone can
      // send those, for any sequence) is tallied.
      auto i = incident(id, now_, "gap", seq, gap.message() + "; held until they arrive");
      (p.env.has_signature() ? a_.c.incidents : a_.c.tallied).push_back(std::move(i));
    }
    a_.replay_parked();  // a bridge may have moved the chain
    if (std::find(a_.stored.begin() + static_cast<std::ptrdiff_t>(before), a_.stored.end(), seq) !=
        a_.stored.end()) {
      return receipt(before, Receipt::Outcome::stored);
    }
    return fail(Errc::failed_precondition, kWhere, "terminal " + id,
                "gap: " + gap.message() + "; held until they arrive");
  }

  // What this step stored; `none` when nothing.
  Receipt receipt(std::size_t before, Receipt::Outcome none) {
    std::vector<std::uint64_t> stored(a_.stored.begin() + static_cast<std::ptrdiff_t>(before),
                                      a_.stored.end());
    return Receipt{stored.empty() ? none : Receipt::Outcome::stored, std::move(stored)};
  }

  // The digest stored for `seq`: by this group so far, else in the store.
  Result<std::optional<std::string>> stored_digest(std::uint64_t seq) {
    for (auto& e : a_.c.envelopes) {
      if (e.sequence == seq) return std::optional<std::string>(e.digest);
    }
    auto row = r_.store_.envelope(k_.terminal.id, seq);
    if (!row) return std::unexpected(row.error());
    if (!*row) return std::optional<std::string>{};
    return std::optional<std::string>((*row)->digest);
  }

  // The incident goes with the group's commit, tallied: a refused message
  // is one anyone on the way can send (forged, altered, replayed, junk), as
  // often as they like.
  std::unexpected<Error> refuse(Incident i, Errc code) {
    auto e = refusal(i, code);
    a_.c.tallied.push_back(std::move(i));
    return e;
  }

  Receiver& r_;
  Attempt& a_;
  const Known& k_;
  TimePoint now_;
};

Result<Receipt> Receiver::receive(const std::string& terminal_id, const std::string& kind,
                                  std::string_view bytes, TimePoint now) {
  auto r = receive_many(terminal_id, {Message{kind, std::string(bytes)}}, now);
  return std::move(r.front());
}

std::vector<Result<Receipt>> Receiver::receive_many(const std::string& id,
                                                    const std::vector<Message>& messages,
                                                    TimePoint now) {
  const std::size_t n = messages.size();
  std::vector<Result<Receipt>> results(n);
  std::vector<Parsed> parsed(n);
  std::vector<Incident> early;  // refusals that need no chain
  auto reject = [&](std::size_t i, Incident inc, Errc code) {
    results[i] = refusal(inc, code);
    early.push_back(std::move(inc));
  };
  for (std::size_t i = 0; i < n; ++i) {
    const auto& m = messages[i];
    auto& p = parsed[i];
    const auto size = static_cast<int>(m.bytes.size());
    if (m.bytes.size() > options_.max_message_bytes) {
      reject(i,
             incident(id, now, "malformed", 0,
                      "a message of " + std::to_string(m.bytes.size()) + " bytes (at most " +
                          std::to_string(options_.max_message_bytes) + ")"),
             Errc::invalid_argument);
    } else if (m.kind == "batch") {
      p.kind = Parsed::Kind::batch;
      if (!p.batch.ParseFromArray(m.bytes.data(), size)) {
        reject(i, incident(id, now, "malformed", 0, "not a portier.v1.BatchSignature"),
               Errc::invalid_argument);
      } else if (p.batch.terminal_id() != id) {
        reject(i,
               incident(id, now, "wrong terminal", p.batch.last_sequence(),
                        "the batch signature names terminal '" +
                            printable(p.batch.terminal_id(), 128) + "'"),
               Errc::permission_denied);
      } else {
        p.ok = true;
      }
    } else if (m.kind == "offline") {
      p.kind = Parsed::Kind::offline;
      if (!p.off.ParseFromArray(m.bytes.data(), size)) {
        reject(i, incident(id, now, "malformed", 0, "not a portier.v1.Offline"),
               Errc::invalid_argument);
      } else if (p.off.terminal_id() != id) {
        reject(i,
               incident(id, now, "wrong terminal", 0,
                        "the offline message names terminal '" +
                            printable(p.off.terminal_id(), 128) + "'"),
               Errc::permission_denied);
      } else {
        p.ok = true;
      }
    } else if (kEnvelopeKinds.count(m.kind)) {
      if (!p.env.ParseFromArray(m.bytes.data(), size) || !p.body.ParseFromString(p.env.body())) {
        reject(i, incident(id, now, "malformed", 0, "not a portier.v1.Envelope"),
               Errc::invalid_argument);
      } else if (p.body.terminal_id() != id) {
        reject(i,
               incident(id, now, "wrong terminal", p.body.sequence(),
                        "the envelope's body names terminal '" +
                            printable(p.body.terminal_id(), 128) + "'"),
               Errc::permission_denied);
      } else {
        p.ok = true;
      }
    } else {
      reject(i,
             incident(id, now, "malformed", 0,
                      "unknown message kind '" + printable(m.kind, 128) + "'"),
             Errc::invalid_argument);
    }
  }
  const bool any = std::any_of(parsed.begin(), parsed.end(), [](auto& p) { return p.ok; });
  std::optional<Known> k;
  bool unknown = false;  // nobody registered the id: its incidents are tallied
  if (any || !early.empty()) {
    auto found = known(store_, id);
    unknown = !found && found.error().code == Errc::not_found;
    if (found) {
      k = std::move(*found);
    } else {
      for (std::size_t i = 0; i < n; ++i) {
        if (!parsed[i].ok) continue;
        parsed[i].ok = false;
        if (unknown) {
          reject(
              i,
              incident(id, now, "unknown terminal", 0, "a message from a terminal not registered"),
              Errc::not_found);
        } else {
          results[i] = std::unexpected(found.error());
        }
      }
    }
  }
  // Refusals anyone can cause at will: tallied (a registered terminal's in
  // rows of its own).
  (void)store_.tally_incidents(early, unknown ? options_.tally : own_rows(options_.tally));

  // Envelopes and batches: in order, against the chain, one commit.
  std::vector<std::size_t> chained;
  for (std::size_t i = 0; i < n; ++i) {
    if (parsed[i].ok && parsed[i].kind != Parsed::Kind::offline) chained.push_back(i);
  }
  if (!chained.empty()) {
    bool done = false;
    for (int attempt = 0; attempt < options_.max_attempts && !done; ++attempt) {
      // Again after a lost race: a rotation moves the chain's version too.
      if (attempt > 0) {
        if (auto again = known(store_, id)) k = std::move(*again);
      }
      auto chain = store_.chain_state(id);
      if (!chain) {
        for (auto i : chained) results[i] = std::unexpected(chain.error());
        done = true;
        break;
      }
      Attempt a(*k, std::move(*chain), options_, now);
      a.store = &store_;
      if (auto ok = a.init(); !ok) {
        for (auto i : chained) results[i] = std::unexpected(ok.error());
        done = true;
        break;
      }
      Step step(*this, a, *k, now);
      std::vector<Result<Receipt>> out;
      for (auto i : chained) {
        out.push_back(parsed[i].kind == Parsed::Kind::batch
                          ? step.batch(parsed[i], messages[i].bytes)
                          : step.envelope(parsed[i], messages[i].bytes));
      }
      a.finish();
      if (auto ok = store_.commit(a.c); !ok) {
        if (ok.error().code == Errc::aborted) continue;  // another receiver moved the chain
        for (auto i : chained) results[i] = std::unexpected(ok.error());
        done = true;
        break;
      }
      for (std::size_t j = 0; j < chained.size(); ++j) results[chained[j]] = std::move(out[j]);
      done = true;
    }
    if (!done) {
      for (auto i : chained) {
        results[i] = fail(Errc::aborted, kWhere, "terminal " + id,
                          "the chain kept changing under " + std::to_string(options_.max_attempts) +
                              " attempts; try again");
      }
    }
  }

  // Offline notices last: a terminal's goodbye follows what it sent.
  for (std::size_t i = 0; i < n; ++i) {
    if (!parsed[i].ok || parsed[i].kind != Parsed::Kind::offline) continue;
    const auto& off = parsed[i].off;
    std::optional<Incident> refused;
    // The terminal's key, or around a rotation the next one (its new
    // session's will before the chain reached the cutover) or the retired
    // one (the goodbye of the session the rotation happened in, or an older
    // one: never a session the fleet has not seen).
    const crypto::PublicKey* off_key = off.key_id() == k->key_id ? &k->key : nullptr;
    if (!off_key && k->next_key && off.key_id() == k->next_key_id) off_key = &*k->next_key;
    for (const auto& r : k->retired) {
      if (!off_key && r.key && off.key_id() == r.key_id &&
          off.session_epoch() <= k->terminal.session_epoch) {
        off_key = &*r.key;
      }
    }
    if (!off_key) {
      refused = incident(id, now, "bad signature", 0,
                         "an offline message signed by key " + printable(off.key_id(), 128) +
                             ", not the terminal's key " + k->key_id);
    } else if (auto ok = envelope::verify_offline(off, id, *off_key); !ok) {
      refused =
          incident(id, now, "tampered", 0,
                   "an offline message whose signature does not verify: " + ok.error().message());
    }
    if (refused) {
      (void)store_.tally_incidents({*refused}, own_rows(options_.tally));
      results[i] = refusal(*refused, Errc::permission_denied);
      continue;
    }
    auto marked = store_.mark_offline(id, off.session_epoch(), now);
    if (!marked) {
      results[i] = std::unexpected(marked.error());
    } else {
      results[i] = Receipt{*marked ? Receipt::Outcome::offline : Receipt::Outcome::stale, {}};
    }
  }
  return results;
}

Receiver::Intake Receiver::receive_message(const std::string& terminal_id, const std::string& kind,
                                           std::string_view bytes, TimePoint now) {
  Intake out;
  std::vector<Message> messages;
  if (kind == "run") {
    v1::EnvelopeRun run;
    std::optional<Incident> bad;
    if (bytes.size() > options_.max_message_bytes) {
      bad = incident(terminal_id, now, "malformed", 0,
                     "a run of " + std::to_string(bytes.size()) + " bytes (at most " +
                         std::to_string(options_.max_message_bytes) + ")");
    } else if (!run.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
      bad = incident(terminal_id, now, "malformed", 0, "not a portier.v1.EnvelopeRun");
    } else if (static_cast<std::size_t>(run.envelopes_size()) > options_.max_run) {
      bad = incident(terminal_id, now, "malformed", 0,
                     "a run of " + std::to_string(run.envelopes_size()) + " envelopes (at most " +
                         std::to_string(options_.max_run) + ")");
    }
    if (bad) {
      // Anyone on the broker can publish junk on any terminal's up/run:
      // tallied, one row per terminal, kind and interval (not one per message).
      (void)store_.tally_incidents({*bad}, options_.tally);
      out.refused.push_back(refusal(*bad, Errc::invalid_argument).error());
      return out;
    }
    messages.reserve(static_cast<std::size_t>(run.envelopes_size()));
    for (auto& e : *run.mutable_envelopes()) messages.push_back(Message{"envelope", std::move(e)});
  } else {
    messages.push_back(Message{kind, std::string(bytes)});
  }
  auto results = receive_many(terminal_id, messages, now);
  for (std::size_t i = 0; i < results.size(); ++i) {
    auto& r = results[i];
    if (!r) {
      out.refused.push_back(std::move(r.error()));
      continue;
    }
    std::uint64_t seq = 0;
    if (r->outcome == Receipt::Outcome::duplicate && messages[i].kind != "batch") {
      v1::Envelope env;
      v1::EnvelopeBody body;
      if (env.ParseFromString(messages[i].bytes) && body.ParseFromString(env.body())) {
        seq = body.sequence();
      }
    }
    for (auto a : acknowledgeable(*r, seq, seq > 0 && holds(terminal_id, seq))) {
      out.acknowledge.push_back(a);
    }
  }
  std::sort(out.acknowledge.begin(), out.acknowledge.end());
  out.acknowledge.erase(std::unique(out.acknowledge.begin(), out.acknowledge.end()),
                        out.acknowledge.end());
  return out;
}

}  // namespace portier::fleet
