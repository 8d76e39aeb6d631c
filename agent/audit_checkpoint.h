// Signed checkpoints of the audit trail (issue 10, item 7). The hash chain
// alone proves only that the trail is consistent with itself: whoever can
// write the file can rewrite it from some record on, chain and all. A
// checkpoint is the terminal's signature, with its device key, over the
// trail's record count and head digest at a moment; kept in a file beside
// the trail (<state_dir>/management/audit-checkpoints.jsonl) and sent to the
// fleet. A rewritten trail no longer matches the checkpoints signed before
// the rewrite, and a trail shorter than its last checkpoint was truncated or
// deleted.
//
// File format: one JSON object per line,
//   {"terminal":"T-…","seq":N,"head":"<64 hex>","time_ms":T,"epoch":E,
//    "key_id":"<64 hex>","sig":"<hex>"}
// where sig signs "portier/v1 audit checkpoint\0" || terminal || "\0" ||
// seq (8 bytes BE) || head (32 bytes) || time_ms (8 bytes BE) || epoch (8
// bytes BE).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "agent/audit_verify.h"
#include "common/crypto/keys.h"
#include "common/crypto/signer.h"
#include "common/result.h"

namespace portier::agent {

struct AuditCheckpoint {
  std::string terminal_id;
  std::uint64_t seq = 0;  // the last record it covers
  std::string head;       // lowercase hex SHA-256 of that record's line
  std::int64_t time_ms = 0;
  std::uint64_t epoch = 0;  // the session of portierd that signed it
  std::string key_id;
  std::string signature;  // raw bytes
};

Result<void> sign_checkpoint(AuditCheckpoint& checkpoint, const crypto::Signer& signer,
                             const std::string& key_id);
// Ok: signed by `key`. permission_denied otherwise.
Result<void> verify_checkpoint(const AuditCheckpoint& checkpoint, const crypto::PublicKey& key);

std::string to_json_line(const AuditCheckpoint& checkpoint);
Result<AuditCheckpoint> parse_checkpoint_line(const std::string& line);
// Every checkpoint of a file, in order; an error names the line that is not one.
Result<std::vector<AuditCheckpoint>> read_checkpoints(const std::string& path);
// Appends one line and fsyncs (the file is created 0644).
Result<void> append_checkpoint(const std::string& path, const AuditCheckpoint& checkpoint);

// The chain of `files` (as verify_audit_files) and then every checkpoint:
// its signature with `key`, and the record it names must have the digest it
// holds. Fails naming the first checkpoint that does not hold: a bad
// signature, a rewritten record ("record seq N at FILE:LINE does not match
// the checkpoint signed at …"), or a trail that ends before a checkpoint
// (truncated or deleted). Checkpoints of records rotated out of `files`
// are skipped and counted.
struct CheckpointVerifyResult {
  AuditVerifyResult chain;
  std::size_t checkpoints = 0, matched = 0, skipped = 0;
  bool ok = false;
  std::string problem;
  std::string summary() const;
  std::string json() const;
};
CheckpointVerifyResult verify_with_checkpoints(const std::vector<std::string>& files,
                                               const std::vector<AuditCheckpoint>& checkpoints,
                                               const crypto::PublicKey& key);
// The same for a terminal whose device key was rotated: each checkpoint
// must verify with one of `keys` (the old keys' and the new one's).
CheckpointVerifyResult verify_with_checkpoints(const std::vector<std::string>& files,
                                               const std::vector<AuditCheckpoint>& checkpoints,
                                               const std::vector<crypto::PublicKey>& keys);

}  // namespace portier::agent
