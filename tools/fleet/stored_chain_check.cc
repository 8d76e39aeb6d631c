#include "tools/fleet/stored_chain_check.h"

#include <map>

#include "portier/v1/telemetry.pb.h"

namespace portier::fleet {
namespace {

ChainReport broken(std::uint64_t verified, std::uint64_t sequence, std::string problem) {
  return ChainReport{false, verified, sequence, std::move(problem)};
}

}  // namespace

Result<ChainReport> check_stored_chain(FleetStore& store, const std::string& id) {
  auto t = store.terminal(id);
  if (!t) return std::unexpected(t.error());
  // The keys in the order they took over (a rotation), each from its first
  // sequence; the terminal's one key when it never changed.
  auto history = store.keys(id);
  if (!history) return std::unexpected(history.error());
  std::map<std::uint64_t, std::string> key_from;
  for (auto& k : *history) {
    if (k.from_sequence != 0) key_from[k.from_sequence] = k.public_key_pem;
  }
  if (key_from.empty()) key_from[1] = t->public_key_pem;
  auto key = crypto::PublicKey::from_pem(key_from.begin()->second);
  if (!key) return std::unexpected(key.error().with_context("terminal " + id + ": stored key"));
  key_from.erase(key_from.begin());
  auto proofs = store.proofs(id);
  if (!proofs) return std::unexpected(proofs.error());
  std::map<std::uint64_t, std::string> batches, drops;
  for (auto& p : *proofs)
    (p.kind == ChainProof::Kind::batch ? batches : drops)[p.sequence] = p.data;

  // Every candidate may wait until the last envelope: no bound but memory.
  envelope::ChainVerifier v(id, *key, {}, envelope::ChainVerifier::Options{SIZE_MAX});
  const auto algo = envelope::chain_digest(key->type());
  std::uint64_t verified = 0;
  std::uint64_t from = 1;
  for (;;) {
    auto page = store.envelopes(id, from, 512);
    if (!page) return std::unexpected(page.error());
    if (page->empty()) break;
    for (auto& row : *page) {
      const auto seq = row.sequence;
      from = seq + 1;
      // A gap in the rows is only allowed where a signed drop notice bridged it.
      while (seq > v.expected_sequence()) {
        auto d = drops.find(v.state().next_sequence);
        const auto missing = v.expected_sequence();
        if (d == drops.end() || v.pending_count() > 0) {
          return broken(
              verified, missing,
              "sequence " + std::to_string(missing) + " is missing and no drop notice explains it");
        }
        v1::Envelope notice;
        if (!notice.ParseFromString(d->second)) {
          return broken(verified, missing, "the stored drop notice is not an envelope");
        }
        if (auto ok = v.bridge(notice); !ok) return broken(verified, missing, ok.error().message());
      }
      v1::Envelope env;
      v1::EnvelopeBody body;
      if (!env.ParseFromString(row.envelope) || !body.ParseFromString(env.body())) {
        return broken(verified, seq, "the stored envelope does not parse");
      }
      if (body.sequence() != seq || body.terminal_id() != id) {
        return broken(verified, seq,
                      "the stored envelope is sequence " + std::to_string(body.sequence()) +
                          " of terminal '" + body.terminal_id() + "'");
      }
      auto digest = crypto::digest(algo, env.body());
      if (!digest) return std::unexpected(digest.error());
      if (std::string(digest->begin(), digest->end()) != row.digest) {
        return broken(verified, seq, "the stored digest is not the digest of the stored body");
      }
      if (static_cast<int>(body.payload_type()) != row.payload_type ||
          body.session_epoch() != row.session_epoch) {
        return broken(verified, seq, "the stored payload type or epoch differs from the body's");
      }
      if (auto next = key_from.find(seq); next != key_from.end()) {
        // The next key takes over here: nothing of the old key's may wait.
        if (v.pending_count() > 0 || seq != v.expected_sequence()) {
          return broken(verified, seq,
                        "the key changes at sequence " + std::to_string(seq) +
                            " but the chain before it is not covered by the old key");
        }
        auto k = crypto::PublicKey::from_pem(next->second);
        if (!k) return std::unexpected(k.error().with_context("terminal " + id + ": stored key"));
        v = envelope::ChainVerifier(id, *k, v.state(), envelope::ChainVerifier::Options{SIZE_MAX});
      }
      auto covered = v.accept_links(env);
      if (!covered) return broken(verified, seq, covered.error().message());
      verified += covered->size();
      if (auto b = batches.find(seq); b != batches.end()) {
        v1::BatchSignature batch;
        if (!batch.ParseFromString(b->second)) {
          return broken(verified, seq, "the stored batch signature does not parse");
        }
        auto run = v.accept_batch_links(batch);
        if (!run) return broken(verified, seq, run.error().message());
        verified += run->size();
      }
      // The audit records stored from this envelope must be its own.
      if (body.payload_type() == v1::PAYLOAD_AUDIT) {
        v1::AuditBatch records;
        if (records.ParseFromString(body.payload()) && records.records_size() > 0) {
          auto rows = store.audit(id, records.first_record(),
                                  static_cast<std::size_t>(records.records_size()));
          if (!rows) return std::unexpected(rows.error());
          for (auto& r : *rows) {
            const auto i = r.record - records.first_record();
            if (r.sequence == seq && (i >= static_cast<std::uint64_t>(records.records_size()) ||
                                      r.line != records.records(static_cast<int>(i)))) {
              return broken(verified, seq,
                            "audit record " + std::to_string(r.record) +
                                " differs from the one the envelope carried");
            }
          }
        }
      }
    }
  }
  if (v.pending_count() > 0) {
    const auto first = v.state().next_sequence;
    return broken(verified, first,
                  std::to_string(v.pending_count()) + " stored envelope(s) from sequence " +
                      std::to_string(first) + " are covered by no signature");
  }
  return ChainReport{true, verified, 0, {}};
}

}  // namespace portier::fleet
