// A FleetStore that hands every call to another store: the base of the
// tests' decorators, which override only the calls they count or hook.
#pragma once

#include "tools/fleet/fleet_store.h"

namespace portier::fleet::testing {

class ForwardingStore : public FleetStore {
 public:
  explicit ForwardingStore(FleetStore& s) : s_(s) {}

  Result<void> add_terminal(const Terminal& t) override { return s_.add_terminal(t); }
  Result<Terminal> terminal(const std::string& id) override { return s_.terminal(id); }
  Result<std::vector<Terminal>> terminals() override { return s_.terminals(); }
  Result<bool> mark_offline(const std::string& id, std::uint64_t epoch, TimePoint now) override {
    return s_.mark_offline(id, epoch, now);
  }
  Result<void> set_next_key(const std::string& id, const std::string& pem,
                            std::uint64_t cutover) override {
    return s_.set_next_key(id, pem, cutover);
  }
  Result<std::vector<TerminalKey>> keys(const std::string& id) override { return s_.keys(id); }
  Result<ChainRecord> chain(const std::string& id) override { return s_.chain(id); }
  Result<ChainRecord> chain_state(const std::string& id) override { return s_.chain_state(id); }
  Result<std::optional<PendingLink>> pending_find(const std::string& id, std::uint64_t sequence,
                                                  const std::string& digest) override {
    return s_.pending_find(id, sequence, digest);
  }
  Result<std::vector<PendingLink>> pending_index(const std::string& id) override {
    return s_.pending_index(id);
  }
  Result<std::vector<PendingLink>> pending_oldest_leaves(const std::string& id,
                                                         std::optional<std::uint64_t> after,
                                                         std::size_t limit) override {
    return s_.pending_oldest_leaves(id, after, limit);
  }
  Result<std::vector<PendingLink>> pending_newest(const std::string& id,
                                                  std::size_t limit) override {
    return s_.pending_newest(id, limit);
  }
  Result<std::string> pending_envelope(const std::string& id, std::uint64_t sequence,
                                       const std::string& digest) override {
    return s_.pending_envelope(id, sequence, digest);
  }
  Result<std::string> parked_envelope(const std::string& id, const std::string& key) override {
    return s_.parked_envelope(id, key);
  }
  Result<void> commit(const Commit& c) override { return s_.commit(c); }
  Result<void> add_incident(const Incident& i) override { return s_.add_incident(i); }
  Result<void> tally_incidents(const std::vector<Incident>& i, const IncidentTally& t) override {
    return s_.tally_incidents(i, t);
  }
  Result<std::optional<StoredEnvelope>> envelope(const std::string& id,
                                                 std::uint64_t sequence) override {
    return s_.envelope(id, sequence);
  }
  Result<std::vector<StoredEnvelope>> envelopes(const std::string& id, std::uint64_t from,
                                                std::size_t limit) override {
    return s_.envelopes(id, from, limit);
  }
  Result<std::vector<ChainProof>> proofs(const std::string& id) override { return s_.proofs(id); }
  Result<std::optional<Telemetry>> latest(const std::string& id, int type) override {
    return s_.latest(id, type);
  }
  Result<std::vector<AuditEntry>> audit(const std::string& id, std::uint64_t from,
                                        std::size_t limit) override {
    return s_.audit(id, from, limit);
  }
  Result<std::vector<CommandResultEntry>> results(const std::string& id,
                                                  std::size_t limit) override {
    return s_.results(id, limit);
  }
  Result<void> add_sent_command(const SentCommand& c) override { return s_.add_sent_command(c); }
  Result<std::vector<SentCommandResult>> sent_results(const std::string& id,
                                                      const std::string& action,
                                                      std::size_t limit) override {
    return s_.sent_results(id, action, limit);
  }
  Result<std::vector<Incident>> incidents(const std::string& id, std::size_t limit) override {
    return s_.incidents(id, limit);
  }
  Result<TerminalCounts> counts(const std::string& id) override { return s_.counts(id); }

 protected:
  FleetStore& s_;
};

}  // namespace portier::fleet::testing
