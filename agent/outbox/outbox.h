// The durable outbox of the management link (issue 10): every envelope is
// committed to SQLite (WAL, synchronous=FULL) before it is sent and deleted
// only when the fleet acknowledged it, together with the chain state that
// sealed it, so a crash, a power cut or a broker outage neither loses a
// record nor reuses a sequence number.
//
// Bounded by bytes and age. Room is made by dropping the oldest records of
// the lowest priority first; security records (audit, health changes,
// command results) go only when nothing else is left. Every drop is counted
// per priority and kept for the fleet (take_drops). When even that cannot
// make room, or the disk is full, put() fails with a clear error and
// nothing already stored is lost. A reserve file (<path>.reserve, 256 KiB)
// is given up when a full disk would stop an acknowledgement from deleting
// (SQLite must write to delete), so the outbox can always drain; it is
// taken back at the next put().
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "agent/envelope/envelope_chain.h"
#include "common/result.h"
#include "common/sqlite/database.h"

namespace portier::outbox {

enum class Priority { telemetry = 0, inventory = 1, security = 2 };

struct OutboxOptions {
  std::string path;                     // the database file (created 0600)
  std::uint64_t max_bytes = 64u << 20;  // envelope bytes kept at most
  std::chrono::seconds max_age{30 * 24 * 3600};
};

struct Record {
  std::uint64_t sequence = 0;
  Priority priority = Priority::telemetry;
  std::chrono::system_clock::time_point created;
  std::string envelope;     // a serialized portier.v1.Envelope
  std::string digest;       // its body's chain digest (EnvelopeSealer::Sealed::digest)
  std::string prev_digest;  // the previous body's digest (what the body chains to)
  // A drop notice: stored within a headroom of max_bytes / 8 above the
  // bound without dropping anything for it (else each notice would make
  // room by dropping a record, which the next notice reports, and so on).
  bool headroom = false;
};

// A record the outbox gave up, with what the fleet needs to follow the chain
// across the gap.
struct Dropped {
  std::uint64_t sequence = 0;
  Priority priority = Priority::telemetry;
  std::string digest;
  std::string prev_digest;
};

enum class PutOutcome { stored, dropped };  // dropped: only recorded in take_drops()

struct OutboxStats {
  std::uint64_t records = 0, bytes = 0;
  std::uint64_t oldest_sequence = 0;  // 0 when empty
};

// Thread-safe: one lock around the database connection.
class Outbox {
 public:
  static Result<std::unique_ptr<Outbox>> open(OutboxOptions options);
  ~Outbox();
  Outbox(const Outbox&) = delete;
  Outbox& operator=(const Outbox&) = delete;

  // The chain state the last put() left (where a restarted sealer goes on);
  // the default state when nothing was ever put.
  Result<envelope::ChainState> chain_state();
  // Stores `record` and the sealer's state after it in one transaction,
  // making room first. When no room can be made for it (everything left
  // ranks above it) the record itself is dropped: recorded, never silent.
  // An error (disk full, I/O) changes nothing: the caller's sealer must go
  // back to chain_state().
  Result<PutOutcome> put(const Record& record, const envelope::ChainState& after,
                         std::chrono::system_clock::time_point now);
  // put() of a run of consecutive records in one transaction (one fsync):
  // all stored or dropped as put() would, or none on an error.
  Result<std::vector<PutOutcome>> put_batch(std::span<const Record> records,
                                            const envelope::ChainState& after,
                                            std::chrono::system_clock::time_point now);
  // The oldest records, at most `limit`, in sequence order.
  Result<std::vector<Record>> oldest(std::size_t limit);
  // Those from sequence `first` on (the sender pages through the backlog).
  Result<std::vector<Record>> from(std::uint64_t first, std::size_t limit);
  // The fleet has it: delete. Unknown sequences are not an error (acked twice).
  Result<void> ack(std::uint64_t sequence);
  // ack() of several in one transaction.
  Result<void> ack_all(std::span<const std::uint64_t> sequences);
  // What was dropped, oldest first, at most `limit`; forgotten once the
  // caller confirms it sent them (forget_drops up to the last sequence).
  Result<std::vector<Dropped>> drops(std::size_t limit);
  Result<void> forget_drops(std::uint64_t up_to_sequence);
  Result<OutboxStats> stats();
  // Small durable counters of the outbox's owner (e.g. the last audit
  // record committed); 0 when never set.
  Result<std::uint64_t> counter(const std::string& key);
  Result<void> set_counter(const std::string& key, std::uint64_t value);
  // Closes the database connection when no call used it for `idle` (a
  // from() that finds nothing is no use): its page cache, schema and WAL
  // index go (the heap they held is free for malloc_trim); the next call
  // opens it again. True when it closed.
  bool release_idle(std::chrono::milliseconds idle);

 private:
  explicit Outbox(OutboxOptions options) : options_(std::move(options)) {}
  // Opens and configures the connection (WAL, synchronous=FULL).
  Result<void> connect();
  // Every call's first step (mu_ held): the connection, opened again if
  // release_idle closed it.
  Result<void> use();
  // false: no room can be made for `incoming` bytes of `priority`.
  // `bytes`: the bytes held, kept up to date as records go.
  // Drops the records past max_age (below security), oldest first.
  Result<void> sweep_aged(std::chrono::system_clock::time_point now, std::uint64_t& bytes);
  Result<bool> make_room(std::uint64_t incoming, Priority priority,
                         std::chrono::system_clock::time_point now, std::uint64_t& bytes);
  // Moves a record to the drop list; its size.
  Result<std::uint64_t> drop(std::uint64_t sequence);
  // Runs `sql` (one ? for `key`; RETURNING size or nothing); the sizes returned.
  Result<std::uint64_t> delete_returning_size(const char* sql, std::uint64_t key,
                                              sqlite::Purpose what);
  // put()'s work inside its transaction: true stored, false dropped.
  Result<bool> write(const Record& record, std::chrono::system_clock::time_point now,
                     std::uint64_t& bytes);
  Result<void> write_chain_state(const envelope::ChainState& after);
  // Creates the schema or brings an older file's up to date.
  Result<void> migrate();
  // Runs a deleting statement; on a full disk gives up the reserve once and
  // tries again.
  Result<std::uint64_t> delete_with_reserve(const char* sql, std::uint64_t key,
                                            sqlite::Purpose what);
  void keep_reserve();

  OutboxOptions options_;
  std::mutex mu_;
  sqlite::Database db_;  // closed while released
  std::chrono::steady_clock::time_point last_use_;
  // Released by release_idle, holding no record above released_newest_
  // (from() past it answers alone).
  bool released_ = false;
  std::uint64_t released_newest_ = 0;
  std::uint64_t bytes_ = 0;  // envelope bytes held (committed)
};

}  // namespace portier::outbox
