// The terminal's side of the envelope chain (issue 10): payloads from the
// agent's sources are queued, sealed into the next links of the chain,
// signed, and committed to the outbox in runs (one transaction, one fsync
// per run), on one writer thread. Only committed envelopes are ever sent.
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
#include <mutex>
#include <string>
#include <thread>

#include "agent/envelope/envelope_chain.h"
#include "agent/outbox/outbox.h"
#include "common/crypto/signer.h"
#include "common/result.h"

namespace portier::management {

enum class Signing { each, batch };

struct UplinkOptions {
  Signing signing = Signing::each;
  std::size_t max_run = 256;        // envelopes per transaction at most
  std::size_t max_queued = 100000;  // payloads waiting for the outbox at most
  std::chrono::milliseconds retry_min{100}, retry_max{10000};
  std::function<std::chrono::system_clock::time_point()> clock = [] {
    return std::chrono::system_clock::now();
  };
};

struct UplinkStats {
  std::uint64_t sealed = 0;   // committed to the outbox
  std::uint64_t dropped = 0;  // given up by the outbox to make room (recorded there)
  std::uint64_t refused = 0;  // not queued: the queue was full (counted, reported)
  std::uint64_t queued = 0;   // waiting now
  std::string failure;        // the outbox's last error, "" while it works
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
  // Waits until everything submitted before the call is committed (or the
  // deadline passes): true when it is.
  bool flush(std::chrono::milliseconds timeout);

  UplinkStats stats() const;
  std::uint64_t session_epoch() const { return epoch_; }

 private:
  struct Pending {
    v1::PayloadType type;
    std::string payload;
    outbox::Priority priority;
    std::chrono::system_clock::time_point time;
  };
  void run();
  // Seals, signs and commits `run`; on an error the sealer is back where the
  // outbox is. `drop_notice`: signed whatever the mode, stored in the
  // outbox's headroom.
  Result<void> commit(const std::deque<Pending>& run, bool drop_notice = false);
  // What the outbox dropped, told to the fleet in a signed DropNotice (so it
  // can follow the chain across the gap), then forgotten.
  Result<void> report_drops();

  outbox::Outbox& outbox_;
  envelope::EnvelopeSealer sealer_;
  const crypto::Signer& signer_;
  std::string key_id_;
  UplinkOptions options_;
  std::uint64_t epoch_ = 0;

  mutable std::mutex mu_;
  std::condition_variable cv_, done_cv_;
  std::deque<Pending> queue_;
  std::size_t running_ = 0;                      // taken from the queue, being committed
  std::uint64_t submitted_ = 0, committed_ = 0;  // tickets
  bool stopping_ = false, draining_ = false;
  std::chrono::steady_clock::time_point drain_deadline_;
  UplinkStats stats_;
  std::function<void()> on_stored_;
  std::function<void(const std::string&)> on_state_;
  std::thread thread_;
};

}  // namespace portier::management
