// The terminal's side of the signed audit checkpoints (issue 10, item 7):
// follows the trail's head, signs a checkpoint of it with the device key at
// intervals and at shutdown (only when the head moved), keeps each one in
// <state_dir>/management/audit-checkpoints.jsonl and hands it to the uplink
// for the fleet. At start it holds the trail against the last checkpoint: a
// trail that ends before it, or whose record there changed, is reported.
//
// Key rotation: hand_over() signs the last checkpoint's head again with the
// new key before the old key is destroyed (DeviceIdentity::
// before_key_change), and signs with the new key from then on. Whatever the
// moment portierd is killed, the last checkpoint at the next start verifies
// with the key then current, or with the pending key of a rotation not
// finished (check_trail's `handover`), so a rotation is no tamper alarm. No
// retired key is kept anywhere: a file naming one would let whoever wrote
// it vouch for a rewritten trail.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "agent/audit_checkpoint.h"
#include "common/crypto/signer.h"

namespace portier::management {

class AuditCheckpointer {
 public:
  AuditCheckpointer(std::string path, std::string terminal_id, std::uint64_t epoch,
                    const crypto::Signer& signer, std::string key_id);

  // The trail's newest lines (its tail, oldest first) against the last
  // checkpoint of the file; an error says what does not match. Ok when
  // there is no checkpoint yet or its record is older than the tail.
  // `handover`: the pending key of a rotation not finished (portierd was
  // killed after hand_over() and before the certificate was installed). A
  // last checkpoint that only it verifies is accepted once, and its head is
  // signed again with the key in use (at `time_ms`).
  Result<void> check_trail(const std::vector<std::string>& tail,
                           const std::optional<crypto::PublicKey>& handover = std::nullopt,
                           std::int64_t time_ms = 0);
  // A rotation: the last checkpoint's head signed again by `signer` (when
  // there is one it does not verify already), then every checkpoint signed
  // by it; in that order, with no checkpoint of the old key in between.
  Result<void> hand_over(std::shared_ptr<const crypto::Signer> signer, std::string key_id,
                         std::int64_t time_ms);
  // A record reached the trail (thread-safe).
  void observe(std::uint64_t seq, const std::string& line);
  // A new checkpoint of the head, kept in the file; nullopt when the head
  // has not moved since the last one.
  Result<std::optional<agent::AuditCheckpoint>> checkpoint(std::int64_t time_ms);

 private:
  std::string path_, terminal_id_;
  std::uint64_t epoch_;
  const crypto::Signer* signer_;                 // guarded by file_mu_
  std::shared_ptr<const crypto::Signer> owned_;  // a key handed over to
  std::string key_id_;                           // guarded by file_mu_
  std::mutex file_mu_;                           // signing and appending a checkpoint
  std::mutex mu_;
  std::uint64_t head_seq_ = 0, signed_seq_ = 0;
  std::string head_digest_;
};

}  // namespace portier::management
