// The audit trail as JSON lines (one object per decision or event), appended
// by a writer thread that fdatasync()s each batch, rotated at a size limit
// into <path>.1 .. <path>.K. Records carry identities and decisions, never
// payload data.
//
// Integrity: every line is hash-chained ({"seq":N,"prev":"<sha256 of the
// previous line>",...}, see audit_verify.h), across rotation and restarts.
// Fail closed: a failed write keeps the records (bounded in bytes), reports
// failure() / on_state, retries with backoff and recovers by itself; a
// deleted or replaced file is reopened and the gap recorded. Flood
// resistance: string fields are capped, denials rate-limited per uid, the
// policy and health state in force carried to the head of every new file.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "agent/audit_verify.h"
#include "agent/denial_limiter.h"
#include "common/audit_sink.h"
#include "common/result.h"

namespace portier::agent {

struct AuditLogOptions {
  std::size_t max_bytes = 16u << 20;          // rotate once the file holds this much
  int keep_files = 24;                        // <path>.1 (newest) .. <path>.K
  std::size_t max_pending_bytes = 8u << 20;   // records kept while writes fail
  std::size_t tail_bytes = 2u << 20;          // lines kept in memory for tail()
  std::size_t max_field_bytes = 512;          // each string field of a record
  DenialLimiter::Options denials;             // per caller uid
  std::chrono::milliseconds retry_min{100};   // first retry after a failed write
  std::chrono::milliseconds retry_max{2000};  // backoff doubles up to this
};

class AuditLog final : public AuditSink {
 public:
  // Opens (creates, mode 0640) `path`, recovers seq and the last digest from
  // its last complete line (or from <path>.1 when it is empty), truncates a
  // torn last line away (recorded as audit_truncated) and seeds tail() from
  // the file's tail.
  static Result<std::unique_ptr<AuditLog>> open(const std::string& path,
                                                AuditLogOptions options = {});
  ~AuditLog() override;

  void record(const AuditEntry& entry) override;
  Result<void> record_durable(const AuditEntry& entry, std::chrono::milliseconds timeout) override;
  std::string failure() const override;
  // Once it returns, the previous `fn` is not running and never runs again.
  void on_state(std::function<void(const std::string& failure)> fn) override;
  // The last `count` lines written, oldest first; waits (at most 500 ms, not
  // while the trail fails) for the records recorded before the call.
  std::vector<std::string> tail(std::size_t count) override;
  // `fn` gets each line once it is on disk, from the writer thread.
  int follow(std::function<void(const std::string&)> fn) override;
  void unfollow(int id) override;
  // Waits until everything recorded so far is on disk and handed to the
  // followers; false if that did not
  // happen within `timeout` (the trail fails).
  bool flush(std::chrono::milliseconds timeout = std::chrono::seconds(10));

  // The record's fields after seq/prev: "time":...,"event":...}, the JSON
  // mapping of its typed record (agent/audit_record.h) with every string
  // field capped at `max_field` bytes (cut at a UTF-8 boundary, marked
  // "…[cut N bytes]").
  static std::string to_body(const AuditEntry& entry, std::size_t max_field = 512);

 private:
  struct Queued {
    std::string body;
    std::string event;
    std::uint64_t ticket = 0;
  };
  // Writer-generated records written ahead of the queue.
  struct Note {
    std::string body;
    std::string event;
  };
  struct Carry {
    std::string body;  // the original record's body
    std::uint64_t seq = 0;
  };
  struct Outcome {
    std::size_t notes = 0, queued = 0;  // records of each kind now on disk
    std::vector<std::string> lines;     // those lines
    std::string error;                  // why the rest is not, "" = all written
  };

  AuditLog(std::string path, AuditLogOptions options);
  Result<void> recover();
  void seed_tail(int fd, std::uint64_t size, std::size_t budget);
  void run();
  // Writer thread, no lock: one attempt to write notes_, head_ and `batch`.
  Outcome write_batch(const std::vector<Queued>& batch);
  bool check_file(std::string& error);
  bool open_file(std::string& error);
  bool rotate(std::string& error);
  void start_new_file();
  std::uint64_t push_locked(std::string body, std::string event);  // 0: not kept
  void push_lost_marker_locked(std::size_t room);
  Note note(const AuditEntry& entry) const;  // a record of the writer's own
  Note suppressed_note(const std::string& key, std::uint64_t count) const;
  void remember_carry(const std::string& event, const std::string& body, std::uint64_t seq);

  const std::string path_;
  const AuditLogOptions options_;

  // Writer-thread state (also set up by open() before the thread starts).
  int fd_ = -1;
  dev_t dev_ = 0;
  ino_t ino_ = 0;
  std::uint64_t size_ = 0;  // bytes of whole records in the file
  bool junk_ = false;       // a failed write may have left bytes past size_
  bool force_rotate_ = false;
  bool reopening_ok_ = false;     // fd_ closed by our own rotation: no gap
  std::uint64_t seq_ = 0;         // last seq written
  std::string digest_;            // digest of the last line written
  std::deque<Note> notes_;        // audit_truncated, audit_reopened
  std::deque<std::string> head_;  // carried bodies for the head of the file
  std::optional<Carry> carry_policy_, carry_health_;

  mutable std::mutex mu_;
  std::condition_variable cv_;       // wakes the writer
  std::condition_variable done_cv_;  // records written or failure
  std::deque<Queued> queue_;
  std::size_t queued_bytes_ = 0;
  std::uint64_t next_ticket_ = 0, written_ticket_ = 0;
  std::uint64_t followed_ticket_ = 0;  // written and handed to the followers
  std::uint64_t lost_ = 0;             // records dropped since the last audit_records_lost
  std::size_t notes_left_ = 0;         // notes_ + head_ not yet written (for flush)
  std::string failure_, failure_why_;
  DenialLimiter limiter_;
  std::deque<std::string> recent_;  // tail(), bounded by tail_bytes
  std::size_t recent_bytes_ = 0;
  bool stopping_ = false;

  // Held while state_fn_ runs: once on_state() returns, the old function
  // neither runs nor will (the daemon drops its callback before its hub).
  std::mutex state_mu_;
  std::function<void(const std::string&)> state_fn_;

  std::mutex follow_mu_;  // held while followers are called
  std::map<int, std::function<void(const std::string&)>> followers_;
  int next_follower_ = 1;

  std::thread writer_;
};

}  // namespace portier::agent
