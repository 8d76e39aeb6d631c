// The terminal's side of the envelope chain (issue 10): payloads from the
// agent's sources are queued, sealed into the next links of the chain,
// signed, and committed to the outbox in runs (one transaction, one fsync
// per run). Only committed envelopes are ever sent.
//
// Threads: one writer seals every run (in order: the chain is sealed by one
// thread only) and commits the runs in order. A signature covers only the
// body, so once a run is sealed its signatures are independent: they are
// spread over the writer and a small pool of signing threads (at most
// `signing_threads`, started only when a run has more than one signature
// to make and gone again after `signing_idle` without work), and the
// writer seals and hands out run k+1 before it commits run k, so the
// commit of one run overlaps the signing of the next. A signer that is not
// concurrent() (a PKCS#11 session) is only ever called by the writer.
//
// Signing: `each` signs every envelope; `batch` signs the last of each run,
// which covers the run through the chain (SM2's single signatures are slow
// in OpenSSL 3.0), and every envelope above telemetry priority on its own
// (the outbox drops the oldest telemetry first, so no kept envelope ever
// loses the signature that covers it). When the outbox refuses a run (a full disk, an I/O
// error) nothing of it is lost: the sealer goes back to the outbox's chain
// state, the payloads stay queued, the error is reported once through
// `on_state`, and the run is tried again with a growing delay.
//
// Records the outbox drops to make room are reported in a DropNotice
// envelope (security priority, always signed on its own: the fleet bridges
// a gap only with a signature of the notice itself).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "agent/envelope/envelope_chain.h"
#include "agent/outbox/outbox.h"
#include "common/crypto/signer.h"
#include "common/result.h"

namespace portier::management {

enum class Signing { each, batch };

// The online CPUs, at most 4 (at least 1).
std::size_t default_signing_threads();

struct UplinkOptions {
  Signing signing = Signing::each;
  std::size_t max_run = 256;        // envelopes per transaction at most
  std::size_t max_queued = 100000;  // payloads waiting for the outbox at most
  std::chrono::milliseconds retry_min{100}, retry_max{10000};
  // Threads that sign at once, the writer included (1: the writer alone).
  // Ignored (1) for a signer that is not concurrent().
  std::size_t signing_threads = default_signing_threads();
  // A signing thread without work for this long ends (started again when
  // there is work): an idle terminal keeps no idle threads.
  std::chrono::milliseconds signing_idle{5000};
  std::function<std::chrono::system_clock::time_point()> clock = [] {
    return std::chrono::system_clock::now();
  };
};

struct UplinkStats {
  std::uint64_t sealed = 0;         // committed to the outbox
  std::uint64_t dropped = 0;        // given up by the outbox to make room (recorded there)
  std::uint64_t refused = 0;        // not queued: the queue was full (counted, reported)
  std::uint64_t queued = 0;         // waiting now
  std::size_t signing_threads = 0;  // running now, besides the writer
  std::string failure;              // the outbox's last error, "" while it works
};

class Uplink {
 public:
  // `outbox` and `signer` must outlive the Uplink. The sealer continues the
  // outbox's chain state.
  Uplink(outbox::Outbox& outbox, envelope::EnvelopeSealer sealer, const crypto::Signer& signer,
         std::string key_id, UplinkOptions options);
  ~Uplink();
  Uplink(const Uplink&) = delete;
  Uplink& operator=(const Uplink&) = delete;

  // Called (from the writer thread) after each committed run.
  void on_stored(std::function<void()> fn);
  // Called (from the writer thread) when the outbox starts failing
  // (`failure` says why) and again with "" once it works again.
  void on_state(std::function<void(const std::string& failure)> fn);

  void start();
  // Commits what is queued (for at most `drain`), then stops the thread.
  void stop(std::chrono::milliseconds drain = std::chrono::seconds(2));

  // Queues a payload; false when the queue is full (the refusal is counted
  // and the caller should report it).
  bool submit(v1::PayloadType type, std::string payload, outbox::Priority priority);
  // The same, but false (nothing queued) while held: for a payload signed
  // inside by the uplink's key (an audit checkpoint), which must not be
  // sealed past a rotation's cutover under the next key.
  bool submit_unless_held(v1::PayloadType type, std::string payload, outbox::Priority priority);
  bool held() const;
  // Waits until everything submitted before the call is committed (or the
  // deadline passes): true when it is.
  bool flush(std::chrono::milliseconds timeout);

  UplinkStats stats() const;
  std::uint64_t session_epoch() const { return epoch_; }

  // A key rotation's cutover: waits (at most `timeout`) until everything
  // submitted so far is sealed, signed and committed, then seals nothing
  // more until release(); submit() still queues. The chain state returned is where the
  // next envelope goes: the first sequence the new key will sign.
  // unavailable when the writer did not come to rest in time (not held).
  // Before start(): held at once (the writer starts held).
  Result<envelope::ChainState> hold(std::chrono::milliseconds timeout);
  // Ends a hold: with `signer` (kept alive here) and its key id from now on
  // (the rotation succeeded), or with the key of before (nullptr).
  void release(std::shared_ptr<const crypto::Signer> signer = nullptr, std::string key_id = {});

 private:
  // submit() and submit_unless_held(): false when refused (held, with
  // `unless_held`; or the queue full, counted).
  bool queue(v1::PayloadType type, std::string payload, outbox::Priority priority,
             bool unless_held);
  struct Pending {
    v1::PayloadType type;
    std::string payload;
    outbox::Priority priority;
    std::chrono::system_clock::time_point time;
  };
  // A sealed run on its way to the outbox: signed (and serialized) by
  // tasks over ranges of its records, then committed by the writer.
  struct Run {
    std::deque<Pending> payloads;  // given back to the queue when it fails
    envelope::ChainState before, after;
    bool drop_notice = false;
    std::vector<envelope::EnvelopeSealer::Sealed> sealed;
    std::vector<bool> sign;  // which of them get their own signature
    std::vector<outbox::Record> records;
    std::size_t tasks_left = 0;  // guarded by mu_
    std::optional<Error> error;  // the first failure (guarded by mu_)
  };
  struct Task {
    Run* run;
    std::size_t begin, end;
  };
  struct Helper {
    std::thread thread;
    bool done = false;  // guarded by mu_: ended, join it
  };
  void run();
  // Seals `payloads` (the sealer goes on past them) and hands its signing
  // out; a sealing error is kept in the run (nothing sealed is then kept).
  std::unique_ptr<Run> seal(std::deque<Pending> payloads, bool drop_notice);
  // Signs and serializes [begin, end) of a run (any thread).
  void sign_range(Run& run, std::size_t begin, std::size_t end);
  // The writer: signs tasks (its runs' first) until `run` is signed.
  void finish_signing(Run& run);
  // Signs the first queued task's range (mu_ held through `lock` on entry
  // and on return, released while signing).
  void run_one_task(std::unique_lock<std::mutex>& lock);
  // Stores a signed run; the sealer goes back to run.before on an error.
  Result<void> store(Run& run);
  // seal + finish_signing + store, for a run alone (a drop notice).
  Result<void> commit(std::deque<Pending> payloads, bool drop_notice);
  // What the outbox dropped, told to the fleet in a signed DropNotice (so it
  // can follow the chain across the gap), then forgotten.
  Result<void> report_drops();
  // Signing threads: started (up to the options' number) when there are
  // tasks for them; each ends after signing_idle without one.
  void want_helpers_locked();
  void helper();
  void stop_helpers();

  outbox::Outbox& outbox_;
  envelope::EnvelopeSealer sealer_;
  // The key that signs; replaced only while held (release()), when no run
  // is being signed.
  const crypto::Signer* signer_;
  std::shared_ptr<const crypto::Signer> owned_signer_;
  std::string key_id_;
  UplinkOptions options_;
  std::uint64_t epoch_ = 0;

  mutable std::mutex mu_;
  std::condition_variable cv_, done_cv_;
  std::deque<Pending> queue_;
  std::size_t running_ = 0;      // taken from the queue, being committed
  std::size_t concurrency_ = 1;  // signing threads, the writer included
  std::deque<Task> tasks_;
  std::condition_variable work_cv_, signed_cv_;
  std::vector<std::unique_ptr<Helper>> helpers_;
  std::size_t live_helpers_ = 0;
  bool helpers_stop_ = false;
  std::uint64_t submitted_ = 0, committed_ = 0;  // tickets
  bool stopping_ = false, draining_ = false;
  bool held_ = false;  // hold(): nothing submitted after it is sealed
  // Payloads taken from the queue into runs (the same count as submitted_
  // once everything is taken), and submitted_ at the hold.
  std::uint64_t taken_ = 0, hold_at_ = 0;
  bool blocked_locked() const { return held_ && taken_ >= hold_at_; }
  bool busy_ = true;  // the writer has runs sealed and not yet stored
  std::chrono::steady_clock::time_point drain_deadline_;
  UplinkStats stats_;
  std::function<void()> on_stored_;
  std::function<void(const std::string&)> on_state_;
  std::thread thread_;
};

}  // namespace portier::management
