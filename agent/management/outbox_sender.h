// Sends the outbox over the link and deletes what the fleet acknowledges
// (issue 10): the oldest first, in runs (one message carries up to
// `run_envelopes` envelopes or about `run_bytes`, whichever comes first; a
// larger envelope goes alone), at most `window` messages in flight that
// nothing has been acknowledged of yet; everything not acknowledged is sent
// again after a reconnect (the fleet keeps each envelope once, by its
// sequence).
//
// With `probe_first`, a connection starts with its oldest run alone: more
// goes only once the fleet has acknowledged something on it (or after
// `ack_timeout`, so that a fleet that holds the probe past a gap cannot
// stall the link). The probe goes again after `probe_retry`, doubling, with
// nothing newer before it. A broker drops what it has no subscriber for
// (a fleet that has not subscribed yet: the first start of a fleet, its
// broker and a terminal together); without the probe the terminal's next
// run reached the fleet before the dropped ones came again at the
// acknowledgement timeout ("gap", then "reordered" at the fleet).
//
// A record leaves the outbox only on a signed acknowledgement that the
// AckVerifier accepts (signed by a fleet key chained to the terminal's
// trust anchors, for this terminal): a forged, unsigned, wrongly signed,
// other terminal's or untrusted one changes nothing; it is counted
// (SenderStats::acks_refused) and logged at most once a minute. Even a
// genuine one deletes a range of records only when the outbox's record at
// the range's last sequence has the digest the fleet names for it: one for
// the same sequences on another chain (before the outbox was restored from
// a backup, another fork) deletes nothing of it (counted,
// ack_ranges_other_chain); the records go again and the fleet answers for
// what it holds of them.
// Acknowledgements are verified and applied on the sender's own thread,
// never on the link's; at most kMaxQueuedAcks wait (more are dropped and
// counted: a flood cannot grow the queue, and a genuine one lost so is
// answered again when the records are resent).
//
// A broker can replay the fleet's genuine acknowledgements as often as it
// likes, so their cost is bounded before any signature is checked (in this
// order, each counted):
//   - one that names nothing sent and still held (`outstanding_`: sent,
//     not yet deleted or acknowledged) is stale: nothing to delete, so its
//     signature is never checked (acks_stale);
//   - one signed well before the newest that verified is refused unverified
//     (acks_old; AckVerifier's "old");
//   - the very bytes of one refused for its signature or chain before are
//     refused unchecked (ack_repeats_refused; AckVerifier's "Forgeries");
//   - at most `ack_checks` signatures are checked per `ack_check_interval`;
//     the rest wait, queued, for the next interval (acks_deferred).
// The newest verified time is kept across restarts when `acks` names a
// newest_file (AckVerifier): the sender's loop writes it when due.
// Nothing is deleted without a verified signature.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "agent/link/ack_verifier.h"
#include "agent/link/link.h"
#include "agent/link/sequence_set.h"
#include "agent/outbox/outbox.h"

namespace portier::management {

struct SenderOptions {
  // Messages sent that nothing has been acknowledged of yet, at most (one
  // whose envelopes are partly acknowledged waits for a signature further
  // on, at the fleet, and does not count).
  std::size_t window = 64;
  std::size_t run_envelopes = 256;            // envelopes per message, at most
  std::size_t run_bytes = 64 * 1024;          // envelope bytes per message, about
  std::chrono::milliseconds idle_poll{1000};  // looks at the outbox at least this often
  // Nothing acknowledged for this long while envelopes are in flight: they
  // are sent again (a broker that accepted them with nobody to deliver to,
  // a fleet that held one past a gap).
  std::chrono::milliseconds ack_timeout{10000};
  // Acknowledgement signatures checked per interval, at most (the fleet
  // sends one per message received: far fewer than this).
  std::size_t ack_checks = 256;
  std::chrono::milliseconds ack_check_interval{1000};
  // Each connection starts with one run until the fleet acknowledges (see
  // above); the probe goes again after probe_retry, doubling.
  bool probe_first = false;
  std::chrono::milliseconds probe_retry{250};
};

struct SenderStats {
  std::uint64_t sent = 0, acknowledged = 0, resent = 0;  // envelopes
  std::uint64_t messages = 0;                            // runs sent
  std::uint64_t acks_verified = 0;                       // genuine acknowledgements
  std::uint64_t acks_refused = 0;   // forged, unsigned, wrongly signed, another terminal's, ...
  std::uint64_t acks_dropped = 0;   // arrived while kMaxQueuedAcks waited
  std::uint64_t acks_stale = 0;     // named nothing still held: not verified, nothing deleted
  std::uint64_t acks_old = 0;       // signed before the newest verified one: not verified
  std::uint64_t acks_deferred = 0;  // times one waited for the next interval's checks
  std::uint64_t ack_signature_checks = 0;  // signatures checked (AckVerifier)
  std::uint64_t ack_repeats_refused = 0;   // of acks_refused: refused before, not checked again
  // Ranges of verified acknowledgements whose digest is not the outbox's
  // record's at their last sequence (another chain): nothing deleted of them.
  std::uint64_t ack_ranges_other_chain = 0;
  std::string last_ack_refusal;  // why the last one was refused
  std::size_t in_flight = 0;     // messages
  bool connected = false;
  std::string last_disconnect;
};

class OutboxSender final : public link::LinkHandler {
 public:
  static constexpr std::size_t kMaxQueuedAcks = 1024;

  // `acks`: how acknowledgements are verified (this terminal's id and its
  // trust anchors). `on_command` gets the fleet's commands as received
  // (unverified), on the link's thread: it must only queue them.
  OutboxSender(outbox::Outbox& outbox, link::Link& link, link::AckVerifierOptions acks,
               std::function<void(std::string)> on_command, SenderOptions options);
  ~OutboxSender() override;

  void start();
  void stop();
  // Something new is in the outbox.
  void wake();
  SenderStats stats() const;

  void on_connected() override;
  void on_disconnected(const std::string& reason) override;
  void on_acknowledgement(std::string bytes) override;
  void on_command(std::string bytes) override;

 private:
  // A message in flight: its envelopes' sequences, which are acknowledged.
  struct Run {
    std::vector<std::uint64_t> sequences;
    std::vector<bool> acknowledged;
    std::size_t left = 0;
  };

  void run();
  // Verifies the queued acknowledgements (lock released meanwhile) and
  // marks what they name.
  void take_acks(std::unique_lock<std::mutex>& lock);
  // Marks what the verified `ranges` name that is sent, still held and of
  // the same chain (the outbox's record at a range's last sequence has its
  // digest; read with the lock released).
  void apply_ack(std::unique_lock<std::mutex>& lock, const std::vector<link::AckedRange>& ranges);
  void acknowledge(std::uint64_t sequence);
  // Whether the claimed ranges name anything sent and still held.
  bool names_outstanding(const std::vector<link::AckedRange>& ranges) const;
  // One more signature check allowed in this interval (and counts it).
  bool take_check_budget();
  // Sends what the window allows; false on a send error (the link is down).
  bool pump(std::unique_lock<std::mutex>& lock);
  void restart_cursor();
  // Ends the probe once the fleet answered or its time is up; sends it
  // again when due.
  void check_probe();

  outbox::Outbox& outbox_;
  link::Link& link_;
  link::AckVerifier verifier_;
  std::function<void(std::string)> on_command_;
  SenderOptions options_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false, woken_ = false, connected_ = false;
  std::uint64_t next_ = 0;                  // the next sequence to send
  std::uint64_t generation_ = 0;            // +1 at every connection (resets the cursor)
  std::map<std::uint64_t, Run> in_flight_;  // by first sequence
  std::size_t unacknowledged_runs_ = 0;     // of in_flight_, those with nothing acknowledged
  std::set<std::uint64_t> ever_sent_;       // this connection's, to count resends
  std::set<std::uint64_t> acks_;            // acknowledged, not yet deleted
  // Sent and held: not acknowledged, not deleted (the sender's thread's).
  link::SequenceSet outstanding_;
  std::chrono::steady_clock::time_point checks_since_{};  // this interval's start
  std::size_t checks_used_ = 0;                           // signatures checked in it
  std::deque<std::string> raw_acks_;                      // as received, not verified yet
  std::chrono::steady_clock::time_point last_progress_;   // an ack, or the first send
  // The probe of this connection (probe_first): until an acknowledgement
  // or probe_end_, one run in flight, sent again at probe_at_.
  bool probing_ = false;
  std::uint64_t acks_before_probe_ = 0;  // stats_.acks_verified at the connection
  std::chrono::steady_clock::time_point probe_at_{}, probe_end_{};
  std::chrono::milliseconds probe_delay_{};
  std::chrono::steady_clock::time_point last_refusal_log_{};
  std::uint64_t refused_unlogged_ = 0;
  SenderStats stats_;
  std::thread thread_;
};

}  // namespace portier::management
