// The fleet's store in one SQLite file (WAL, synchronous FULL, foreign
// keys, created 0600, schema versioned with PRAGMA user_version). Safe to
// share: between threads through one object (calls are serialized), and
// between processes or objects on the same file (each commit is one
// IMMEDIATE transaction that checks the chain's version).
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "common/sqlite/database.h"
#include "tools/fleet/fleet_store.h"

namespace portier::fleet {

class SqliteFleetStore final : public FleetStore {
 public:
  // Creates the file and its schema when missing; refuses a file whose
  // schema is newer than this build's (failed_precondition).
  static Result<std::unique_ptr<SqliteFleetStore>> open(const std::string& path);
  ~SqliteFleetStore() override;
  SqliteFleetStore(const SqliteFleetStore&) = delete;
  SqliteFleetStore& operator=(const SqliteFleetStore&) = delete;

  Result<void> add_terminal(const Terminal& terminal) override;
  Result<Terminal> terminal(const std::string& id) override;
  Result<std::vector<Terminal>> terminals() override;
  Result<bool> mark_offline(const std::string& id, std::uint64_t epoch, TimePoint now) override;
  Result<void> set_next_key(const std::string& id, const std::string& public_key_pem,
                            std::uint64_t cutover) override;
  Result<std::vector<TerminalKey>> keys(const std::string& id) override;
  Result<ChainRecord> chain(const std::string& id) override;
  Result<std::string> pending_envelope(const std::string& id, std::uint64_t sequence,
                                       const std::string& digest) override;
  Result<std::string> parked_envelope(const std::string& id, const std::string& key) override;
  Result<ChainRecord> chain_state(const std::string& id) override;
  Result<std::optional<PendingLink>> pending_find(const std::string& id, std::uint64_t sequence,
                                                  const std::string& digest) override;
  Result<std::vector<PendingLink>> pending_index(const std::string& id) override;
  Result<std::vector<PendingLink>> pending_oldest_leaves(const std::string& id,
                                                         std::optional<std::uint64_t> after,
                                                         std::size_t limit) override;
  Result<std::vector<PendingLink>> pending_newest(const std::string& id,
                                                  std::size_t limit) override;
  Result<void> commit(const Commit& commit) override;
  Result<void> add_incident(const Incident& incident) override;
  Result<void> tally_incidents(const std::vector<Incident>& incidents,
                               const IncidentTally& tally) override;
  Result<std::optional<StoredEnvelope>> envelope(const std::string& id,
                                                 std::uint64_t sequence) override;
  Result<std::vector<StoredEnvelope>> envelopes(const std::string& id, std::uint64_t from,
                                                std::size_t limit) override;
  Result<std::vector<ChainProof>> proofs(const std::string& id) override;
  Result<std::optional<Telemetry>> latest(const std::string& id, int payload_type) override;
  Result<std::vector<AuditEntry>> audit(const std::string& id, std::uint64_t from_record,
                                        std::size_t limit) override;
  Result<void> add_sent_command(const SentCommand& command) override;
  Result<std::vector<SentCommandResult>> sent_results(const std::string& id,
                                                      const std::string& action,
                                                      std::size_t limit) override;
  Result<std::vector<CommandResultEntry>> results(const std::string& id,
                                                  std::size_t limit) override;
  Result<std::vector<Incident>> incidents(const std::string& id, std::size_t limit) override;
  Result<TerminalCounts> counts(const std::string& id) override;

 private:
  SqliteFleetStore(std::string path, sqlite::Database db)
      : path_(std::move(path)), db_(std::move(db)) {}
  Result<void> write(const Commit& c);  // inside commit()'s transaction
  Result<void> write_chain(const Commit& c);
  // In one read transaction of its own; the candidates' index too when
  // `index`.
  Result<ChainRecord> read_chain(const std::string& id, bool index);
  Result<std::vector<PendingLink>> read_pending(const char* sql, const std::string& id,
                                                std::int64_t a, std::int64_t b);
  Result<void> insert_incident(const Incident& incident);
  Result<void> tally_incident(const Incident& incident, const IncidentTally& tally);

  std::string path_;
  sqlite::Database db_;
  std::mutex mu_;
};

}  // namespace portier::fleet
