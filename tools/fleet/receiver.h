// The fleet's entrance for everything a terminal sends (issue 10, item 8):
// a transport (MQTT, gRPC) hands each message here with the terminal id it
// authenticated (from the topic or the TLS identity), what kind of message
// it is, and its bytes, and acknowledges the message only when receive()
// returns a Receipt.
//
// Every envelope is verified against the terminal's key and chain
// (ChainVerifier) before anything of it is stored: the body must name the
// terminal the transport authenticated (REQ19), its signature (or a later
// one through the chain) must be the terminal's, and it must continue the
// chain with no gap, reordering or insertion. What a signature covered is
// stored exactly once, in sequence order, in one transaction with the new
// chain state. Every rejection is an incident in the store; those anyone
// on the way can cause at will (forged, altered, replayed, junk) are
// tallied: one row per terminal, kind and interval with its count
// (fleet_store.h), so a flood costs a bounded number of rows.
//
// Stateless between calls: the chain, its candidates and the envelopes held
// past a gap live in the store, so several receivers (threads, processes)
// can share one store; a receiver whose commit lost a race loads again and
// retries.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tools/fleet/fleet_store.h"

namespace portier::fleet {

struct Receipt {
  enum class Outcome {
    stored,     // the envelopes in `stored` are in the store
    held,       // an unsigned envelope waits in the store for its signature
    duplicate,  // already held or stored with the same digest (a resend): acknowledge
    offline,    // the terminal is marked offline
    stale,      // a will of an older session: nothing changed, acknowledge
  };
  Outcome outcome = Outcome::stored;
  std::vector<std::uint64_t> stored;  // sequences newly stored, in order
};

std::string_view name(Receipt::Outcome outcome);

// What a transport may acknowledge to the terminal for a message it handed
// to the receiver (the terminal deletes what is acknowledged): the envelopes
// the message got stored (it may cover earlier ones), or, for a duplicate,
// the message's own sequence when the store holds it. Never an envelope only
// held (unsigned, or past a gap): a forged one would otherwise make the
// terminal delete its genuine record.
std::vector<std::uint64_t> acknowledgeable(const Receipt& receipt, std::uint64_t sequence,
                                           bool stored_already);

class Receiver {
 public:
  struct Options {
    std::size_t max_message_bytes = 1u << 20;
    std::size_t max_pending = 4096;  // unsigned envelopes waiting per terminal
    std::size_t max_parked = 1024;   // envelopes held past a gap per terminal
    // Bytes of the envelopes held per terminal (waiting for a signature or
    // past a gap). A candidate is a row of its own (written once, deleted
    // once); those past a gap are rewritten together when they change.
    std::size_t max_held_bytes = 32u << 20;
    int max_attempts = 64;       // commits lost to another receiver before giving up
    std::size_t max_run = 4096;  // envelopes in one EnvelopeRun
    // Rejections anyone on the way can cause at will (messages for terminal
    // ids nobody registered; a registered terminal's forged, altered,
    // replayed or junk messages, unsigned envelopes past a gap, and the
    // candidates evicted or discarded) are tallied (fleet_store.h). A
    // registered terminal always gets rows of its own (max_terminals bounds
    // the ids nobody registered). What the terminal's signature proves (a
    // signed gap, a drop notice, a reordering healed, a bad checkpoint)
    // stays one row each. The counts live in the store, not here, so
    // receivers sharing it count together and none keeps state of its own.
    IncidentTally tally{};
  };
  explicit Receiver(FleetStore& store) : Receiver(store, Options{}) {}
  Receiver(FleetStore& store, Options options) : store_(store), options_(options) {}

  // kind: "batch" (a BatchSignature), "offline" (an Offline will or
  // goodbye), or an envelope: "envelope" or the topic's payload name
  // ("birth", "health", "inventory", "decisions", "audit", "result",
  // "drop"; the body's payload type is what counts).
  //
  // Errors (an incident is recorded for each rejection; do not acknowledge):
  //   invalid_argument     malformed, too large, unknown kind
  //   not_found            unknown terminal
  //   permission_denied    another terminal's message, bad signature,
  //                        tampered (altered, inserted, epoch back)
  //   failed_precondition  a gap (the envelope is held and stored once the
  //                        gap closes), a conflicting duplicate
  //   resource_exhausted   too many envelopes waiting for this terminal
  //   aborted, unavailable, io: the store; try again later
  Result<Receipt> receive(const std::string& terminal_id, const std::string& kind,
                          std::string_view bytes, TimePoint now);

  // Several messages of one terminal at once, in order: the same answers,
  // one per message, with everything they change in one transaction (one
  // fsync for the group: a transport that collects what arrived within a
  // few milliseconds acknowledges each message after this returns). Offline
  // notices in the group are applied after its envelopes.
  // Whether the store holds envelope `sequence` of the terminal (a
  // duplicate may be one only held, which must not be acknowledged).
  bool holds(const std::string& terminal_id, std::uint64_t sequence);
  // The chain digest of the body of envelope `sequence` as the store holds
  // it (what an acknowledgement names it by); nullopt when the store does
  // not hold it or cannot be read.
  std::optional<std::string> stored_digest(const std::string& terminal_id, std::uint64_t sequence);

  struct Message {
    std::string kind;
    std::string bytes;
  };
  std::vector<Result<Receipt>> receive_many(const std::string& terminal_id,
                                            const std::vector<Message>& messages, TimePoint now);

  // What a transport does with one message it received: kind "run" (a
  // serialized EnvelopeRun: each envelope as if it came alone, all in one
  // transaction through receive_many), or any kind receive() takes. The
  // answer names what the terminal may delete (acknowledgeable() of each
  // envelope, ascending) and why anything was refused.
  struct Intake {
    std::vector<std::uint64_t> acknowledge;
    std::vector<Error> refused;  // an incident is recorded for each, but the store's errors
  };
  Intake receive_message(const std::string& terminal_id, const std::string& kind,
                         std::string_view bytes, TimePoint now);

 private:
  class Step;
  FleetStore& store_;
  Options options_;
};

}  // namespace portier::fleet
