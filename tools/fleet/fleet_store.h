// What the fleet keeps (issue 10, item 8): terminals, their chain state,
// the envelopes accepted with everything they carried, and the incidents.
// An interface so the receiver and the CLI never see a database: SQLite now
// (sqlite_fleet_store.h), PostgreSQL next; no SQL outside an implementation.
//
// Sharing: several receivers (threads or processes) may use one store. A
// receiver loads a terminal's chain (with its version), verifies, and
// commits everything the envelope covered together with the new chain
// state; the commit is refused (Errc::aborted) when the version moved in
// between, and the receiver starts over from a fresh load.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "agent/envelope/envelope_chain.h"
#include "common/result.h"

namespace portier::fleet {

using TimePoint = std::chrono::system_clock::time_point;

struct Terminal {
  std::string id;
  std::string public_key_pem;  // the key it signs with now
  std::string key_algorithm;   // "ecdsa-p256", "ed25519", "sm2"
  TimePoint registered;
  TimePoint first_seen, last_seen;  // epoch (0) when never seen
  std::string last_birth;           // a serialized portier.v1.Birth; empty: none yet
  std::uint64_t session_epoch = 0;  // the highest one accepted
  bool online = false;
};

// A key of a terminal's key history (key rotation, issue 10 item 1). The
// enrolment service certifies a rotated key for the terminal (set_next_key)
// with the rotation's cutover: the first sequence the terminal signs with
// the new key, and from which on it signs nothing with the old one. Until
// the chain reaches the cutover the old key verifies what comes before it;
// from the cutover on only the new key verifies anything (the receiver
// takes it over there: Commit::next_key_from), and whatever the old key
// signs at or after it (a thief of it) is refused and recorded as "retired
// key". A next key without a cutover (0: a rotation from before cutovers)
// takes over at the first envelope it signs that continues the chain.
struct TerminalKey {
  std::string public_key_pem;
  std::uint64_t from_sequence = 0;  // the first sequence it signed; 0: the next key, unused
  std::uint64_t cutover = 0;        // the next key's declared first sequence; 0: none
};

// An envelope received past a gap, not verified yet: a row of its own
// (anyone can send those, for any sequence). Its bytes are read when the
// chain reaches it.
struct ParkedEnvelope {
  std::string key;  // SHA-256 of the envelope as received
  std::uint64_t sequence = 0;
  bool bridge = false;  // a signed drop notice: tried whenever the chain moves
  std::size_t size = 0;
  std::string envelope;  // empty: not read
};

// A terminal's place in its chain, shared by every receiver.
struct ChainRecord {
  envelope::ChainState state;  // after the last covered envelope
  // Unsigned envelopes waiting for a signature (ChainVerifier's
  // candidates), oldest first: their index only, each one a row of its own;
  // an envelope is read with FleetStore::pending_envelope() when a
  // signature covers it (ChainVerifier::restore_links). A commit writes the
  // rows that changed (Commit::pending_added, pending_removed), never the
  // whole set, so a candidate costs one row written whatever the others.
  std::vector<envelope::ChainVerifier::PendingLink> pending;
  // The candidates' count, bytes, highest sequence and arrival (what
  // FleetStore::chain_state() reads instead of `pending`). A commit writes
  // the count and bytes given here.
  envelope::ChainVerifier::PendingSummary pending_summary;
  // Envelopes received past a gap, not verified yet: tried again, in
  // sequence order, when the chain reaches them (a reordering heals
  // itself). Their index, oldest first; an envelope is read with
  // FleetStore::parked_envelope(). A commit writes the rows that changed
  // (Commit::parked_added, parked_removed).
  std::vector<ParkedEnvelope> parked;
  // Batch signatures (verified) that arrived before the envelopes they
  // cover: applied when the chain has them.
  std::vector<std::string> parked_batches;
  std::uint64_t version = 0;  // 0: no chain yet (nothing ever accepted)
};

struct StoredEnvelope {
  std::string terminal_id;
  std::uint64_t sequence = 0;
  std::uint64_t session_epoch = 0;
  std::string digest;    // of the body (chain digest)
  int payload_type = 0;  // portier.v1.PayloadType
  TimePoint time;        // the body's
  TimePoint received;
  bool historical = false;
  std::string envelope;  // serialized portier.v1.Envelope, its body exactly as signed
};

// A payload of the telemetry kinds (birth, health, inventory, decision
// summary, drop notice), as the terminal serialized it.
struct Telemetry {
  std::string terminal_id;
  std::uint64_t sequence = 0;
  int payload_type = 0;
  TimePoint time;
  std::string payload;
};

struct AuditEntry {
  std::string terminal_id;
  std::uint64_t record = 0;    // the record number in the terminal's audit trail
  std::uint64_t sequence = 0;  // of the envelope that carried it
  std::string line;            // the JSON line
};

struct CommandResultEntry {
  std::string terminal_id;
  std::uint64_t sequence = 0;
  std::string command_id;
  int status = 0;  // portier.v1.CommandResult.Status
  std::string message;
  TimePoint time;
  std::string result;  // serialized portier.v1.CommandResult
};

// A command this fleet signed for a terminal (portier-fleet send), kept so
// that a result can be tied to what was sent: a result names its command's
// id and digest, not its action.
struct SentCommand {
  std::string terminal_id;
  std::string command_id;
  std::string digest;  // SHA-256 of SignedCommand.command, as signed
  std::string action;  // as send names it: "rotate-key", "install-certificate", ...
  TimePoint sent;
};

// A stored result (its envelope covered by the chain) of a sent command.
struct SentCommandResult {
  SentCommand command;
  CommandResultEntry result;
};

struct Incident {
  std::int64_t id = 0;  // assigned by the store
  std::string terminal_id;
  TimePoint time;
  // "malformed", "unknown terminal", "wrong terminal", "bad signature",
  // "tampered", "gap", "reordered", "inserted", "duplicate conflicting",
  // "dropped by terminal", "overflow", "retired key".
  std::string kind;
  std::uint64_t sequence = 0;  // 0: none
  std::string detail;
  // How many occurrences the row stands for: 1, or more for a tallied row
  // (FleetStore::tally_incidents).
  std::uint64_t count = 1;
};

// Incidents anyone on the way can cause at will (messages for terminal ids
// nobody registered, a registered terminal's forged, altered, replayed or
// junk messages, unsigned candidates evicted or discarded) are tallied, not
// written one row per message: one row per (terminal, kind, interval)
// whose count grows (its detail and sequence the first occurrence's), and
// at most `max_terminals` distinct terminal ids per kind and interval get a
// row of their own; the others are counted in the row of terminal id "*".
// A flood then costs a bounded number of rows per interval, whatever it
// sends.
struct IncidentTally {
  std::chrono::seconds interval{60};
  std::size_t max_terminals = 64;
};
inline constexpr const char* kOtherTerminals = "*";

// What a chain was proven with beyond single signatures, so verify-chain
// can replay it offline: a BatchSignature (at its last sequence) or a
// DropNotice envelope that bridged a gap (at the first dropped sequence).
struct ChainProof {
  enum class Kind { batch, drop };
  Kind kind = Kind::batch;
  std::uint64_t sequence = 0;
  std::string data;  // serialized BatchSignature or Envelope
};

// Everything one receive changes, committed in one transaction.
struct Commit {
  std::string terminal_id;
  std::uint64_t expected_version = 0;  // the ChainRecord's version loaded
  // The new chain (its version, pending and parked are ignored). When
  // `chain_changed` is false nothing of it moved: the version is only
  // checked, not moved, and nothing of the chain is written (a refused
  // message then costs its incidents only, and does not make another
  // receiver start over). `batches_changed` false: parked_batches are kept
  // as stored.
  ChainRecord chain;
  bool chain_changed = true;
  bool batches_changed = true;
  // Candidates that came (with their envelopes) or went since the load; a
  // candidate added again (same sequence and digest) replaces its row.
  std::vector<envelope::ChainVerifier::PendingLink> pending_added;
  std::vector<std::pair<std::uint64_t, std::string>> pending_removed;  // (sequence, digest)
  // The same for the envelopes held past a gap (by key).
  std::vector<ParkedEnvelope> parked_added;
  std::vector<std::string> parked_removed;
  std::vector<StoredEnvelope> envelopes;  // newly covered, in sequence order
  std::vector<Telemetry> telemetry;
  std::vector<AuditEntry> audit;  // a record number already held is kept as it was
  std::vector<CommandResultEntry> results;
  std::vector<ChainProof> proofs;
  std::vector<Incident> incidents;
  std::vector<Incident> tallied;  // counted as tally_incidents() does, with `tally`
  IncidentTally tally;
  // The terminal seen at `seen` (last_seen, first_seen, online); a birth
  // replaces last_birth; the session epoch only grows.
  std::optional<TimePoint> seen;
  std::string birth;
  std::uint64_t session_epoch = 0;
  // The terminal's next key signed this sequence, the first of its own: it
  // becomes the terminal's key (and the old one history).
  std::uint64_t next_key_from = 0;
};

struct TerminalCounts {
  std::uint64_t envelopes = 0, audit = 0, results = 0, incidents = 0;
  std::uint64_t last_sequence = 0;  // 0: none stored
};

class FleetStore {
 public:
  virtual ~FleetStore() = default;

  // already_exists when the id is taken.
  virtual Result<void> add_terminal(const Terminal& terminal) = 0;
  // not_found when unknown.
  virtual Result<Terminal> terminal(const std::string& id) = 0;
  virtual Result<std::vector<Terminal>> terminals() = 0;
  // Marks the terminal offline when `epoch` is its current session (or
  // newer); false: a stale will of an older session, nothing changed.
  virtual Result<bool> mark_offline(const std::string& id, std::uint64_t epoch, TimePoint now) = 0;

  // A rotated key the terminal will sign with from sequence `cutover` on
  // (0: not declared), replacing a next key never used; not_found when the
  // terminal is unknown; failed_precondition when the chain already holds
  // envelopes at or after the cutover (signed by the old key, which the
  // terminal says it stopped using there: someone else holds it).
  virtual Result<void> set_next_key(const std::string& id, const std::string& public_key_pem,
                                    std::uint64_t cutover) = 0;
  // The keys that took over from one another, by from_sequence (the first
  // one 1), then the next key when there is one; empty when the terminal
  // never changed its key (it is then Terminal::public_key_pem throughout).
  virtual Result<std::vector<TerminalKey>> keys(const std::string& id) = 0;

  // The chain of a terminal (version 0 and the starting state when none).
  virtual Result<ChainRecord> chain(const std::string& id) = 0;
  // The chain without its candidates' index (ChainRecord::pending empty,
  // pending_summary set): what a receiver loads, asking for candidates one
  // by one (ChainVerifier::restore_index) with the calls below.
  virtual Result<ChainRecord> chain_state(const std::string& id) = 0;
  // The candidates' index: one, all (oldest first), the leaves (no other
  // candidate chains to them) oldest first after an arrival, and the
  // highest sequences first.
  using PendingLink = envelope::ChainVerifier::PendingLink;
  virtual Result<std::optional<PendingLink>> pending_find(const std::string& id,
                                                          std::uint64_t sequence,
                                                          const std::string& digest) = 0;
  virtual Result<std::vector<PendingLink>> pending_index(const std::string& id) = 0;
  virtual Result<std::vector<PendingLink>> pending_oldest_leaves(const std::string& id,
                                                                 std::optional<std::uint64_t> after,
                                                                 std::size_t limit) = 0;
  virtual Result<std::vector<PendingLink>> pending_newest(const std::string& id,
                                                          std::size_t limit) = 0;
  // The envelope of a candidate of the chain (ChainRecord::pending);
  // not_found when it is not (or no longer) there.
  virtual Result<std::string> pending_envelope(const std::string& id, std::uint64_t sequence,
                                               const std::string& digest) = 0;
  // The envelope held past a gap under `key` (ChainRecord::parked);
  // not_found when it is not (or no longer) there.
  virtual Result<std::string> parked_envelope(const std::string& id, const std::string& key) = 0;
  // aborted: the version moved since it was loaded; nothing was written.
  virtual Result<void> commit(const Commit& commit) = 0;
  // An incident on its own (a rejection that changes nothing else).
  virtual Result<void> add_incident(const Incident& incident) = 0;
  // Incidents counted into the row of their (terminal, kind, interval of
  // their time) under `tally`, each adding its `count`; in one transaction,
  // so receivers sharing the store share the counts.
  virtual Result<void> tally_incidents(const std::vector<Incident>& incidents,
                                       const IncidentTally& tally) = 0;

  virtual Result<std::optional<StoredEnvelope>> envelope(const std::string& id,
                                                         std::uint64_t sequence) = 0;
  // In sequence order from `from`, at most `limit`.
  virtual Result<std::vector<StoredEnvelope>> envelopes(const std::string& id, std::uint64_t from,
                                                        std::size_t limit) = 0;
  virtual Result<std::vector<ChainProof>> proofs(const std::string& id) = 0;
  // The newest of a payload type.
  virtual Result<std::optional<Telemetry>> latest(const std::string& id, int payload_type) = 0;
  virtual Result<std::vector<AuditEntry>> audit(const std::string& id, std::uint64_t from_record,
                                                std::size_t limit) = 0;
  virtual Result<std::vector<CommandResultEntry>> results(const std::string& id,
                                                          std::size_t limit) = 0;
  // A command signed for a terminal; the same id and digest again changes
  // nothing (not_found when the terminal is unknown).
  virtual Result<void> add_sent_command(const SentCommand& command) = 0;
  // The stored results of the commands sent to `id` with `action`, joined
  // by command id (the caller compares the result's command digest with
  // the command's): OK results only, of each distinct result of a command
  // its first (its answers to replays come later and say the same), the
  // highest sequence first, at most `limit`. Only
  // results of envelopes the chain covered are stored: a candidate's or a
  // refused envelope's result is never among them.
  virtual Result<std::vector<SentCommandResult>> sent_results(const std::string& id,
                                                              const std::string& action,
                                                              std::size_t limit) = 0;
  // Newest last; every terminal's (known or not) when `id` is empty.
  virtual Result<std::vector<Incident>> incidents(const std::string& id, std::size_t limit) = 0;
  virtual Result<TerminalCounts> counts(const std::string& id) = 0;
};

}  // namespace portier::fleet
