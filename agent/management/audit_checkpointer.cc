#include "agent/management/audit_checkpointer.h"

#include <sys/stat.h>

namespace portier::management {

AuditCheckpointer::AuditCheckpointer(std::string path, std::string terminal_id, std::uint64_t epoch,
                                     const crypto::Signer& signer, std::string key_id)
    : path_(std::move(path)),
      terminal_id_(std::move(terminal_id)),
      epoch_(epoch),
      signer_(&signer),
      key_id_(std::move(key_id)) {}

Result<void> AuditCheckpointer::check_trail(const std::vector<std::string>& tail,
                                            const std::optional<crypto::PublicKey>& handover_key,
                                            std::int64_t time_ms) {
  std::lock_guard file_lock(file_mu_);
  struct stat st {};
  if (::stat(path_.c_str(), &st) != 0) return {};  // none signed yet
  auto cps = agent::read_checkpoints(path_);
  if (!cps) return std::unexpected(cps.error());
  if (cps->empty()) return {};
  const auto& last = cps->back();
  const auto current = signer_->public_key();
  // The checkpoints the trail must match: the last one, and for a handover
  // the current key's last one too.
  std::vector<const agent::AuditCheckpoint*> against{&last};
  bool handover = false;
  if (auto ok = agent::verify_checkpoint(last, current); !ok) {
    // A rotation cut short after its handover (hand_over()): the newest
    // checkpoints are the pending key's, and the first of them signs again
    // the head of the current key's last one. Anything else is no handover:
    // a checkpoint of the pending key alone vouches for nothing.
    std::size_t i = cps->size();
    if (handover_key) {
      while (i > 0 && agent::verify_checkpoint((*cps)[i - 1], *handover_key)) --i;
    }
    handover = handover_key && i > 0 && i < cps->size() &&
               agent::verify_checkpoint((*cps)[i - 1], current).has_value() &&
               (*cps)[i - 1].seq == (*cps)[i].seq && (*cps)[i - 1].head == (*cps)[i].head;
    if (!handover) {
      return fail(Errc::permission_denied, path_, "last checkpoint",
                  "does not verify with the device key" +
                      std::string(handover_key ? ", and is no handover to the pending key of a "
                                                 "rotation from a checkpoint of it"
                                               : "") +
                      ": " + ok.error().message());
    }
    against.push_back(&(*cps)[i - 1]);
  }
  std::uint64_t trail_last = 0;
  for (auto it = tail.rbegin(); it != tail.rend(); ++it) {
    if (auto c = agent::parse_chained_line(*it)) {
      trail_last = c->seq;
      break;
    }
  }
  {
    std::lock_guard lock(mu_);
    signed_seq_ = last.seq;
  }
  for (const auto* cp : against) {
    if (trail_last < cp->seq) {
      return fail(Errc::failed_precondition, "audit trail", "checkpoint",
                  "the trail ends at seq " + std::to_string(trail_last) +
                      ", but the checkpoint signed by this terminal covers seq " +
                      std::to_string(cp->seq) + ": records were truncated or deleted");
    }
    for (auto& line : tail) {
      auto c = agent::parse_chained_line(line);
      if (c && c->seq == cp->seq && agent::sha256_hex(line) != cp->head) {
        return fail(Errc::failed_precondition, "audit trail", "checkpoint",
                    "record seq " + std::to_string(cp->seq) +
                        " does not match the checkpoint this terminal signed of it: the trail "
                        "was changed");
      }
    }
  }
  if (handover) {
    // The same head, signed again by the key now in use: the next start
    // checks against it.
    agent::AuditCheckpoint c{terminal_id_, last.seq, last.head, time_ms, epoch_};
    PORTIER_TRY(agent::sign_checkpoint(c, *signer_, key_id_));
    PORTIER_TRY(agent::append_checkpoint(path_, c));
  }
  return {};
}

Result<void> AuditCheckpointer::hand_over(std::shared_ptr<const crypto::Signer> signer,
                                          std::string key_id, std::int64_t time_ms) {
  std::lock_guard file_lock(file_mu_);
  struct stat st {};
  if (::stat(path_.c_str(), &st) == 0) {
    auto cps = agent::read_checkpoints(path_);
    if (!cps) return std::unexpected(cps.error());
    if (!cps->empty() && !agent::verify_checkpoint(cps->back(), signer->public_key())) {
      const auto& last = cps->back();
      agent::AuditCheckpoint c{terminal_id_, last.seq, last.head, time_ms, epoch_};
      PORTIER_TRY(agent::sign_checkpoint(c, *signer, key_id));
      PORTIER_TRY(agent::append_checkpoint(path_, c));
    }
  }
  owned_ = std::move(signer);
  signer_ = owned_.get();
  key_id_ = std::move(key_id);
  return {};
}

void AuditCheckpointer::observe(std::uint64_t seq, const std::string& line) {
  std::lock_guard lock(mu_);
  if (seq <= head_seq_) return;
  head_seq_ = seq;
  head_digest_ = agent::sha256_hex(line);
}

Result<std::optional<agent::AuditCheckpoint>> AuditCheckpointer::checkpoint(std::int64_t time_ms) {
  agent::AuditCheckpoint c;
  {
    std::lock_guard lock(mu_);
    if (head_seq_ == 0 || head_seq_ <= signed_seq_) return std::nullopt;
    c = {terminal_id_, head_seq_, head_digest_, time_ms, epoch_};
  }
  {
    std::lock_guard file_lock(file_mu_);
    PORTIER_TRY(agent::sign_checkpoint(c, *signer_, key_id_));
    PORTIER_TRY(agent::append_checkpoint(path_, c));
  }
  std::lock_guard lock(mu_);
  signed_seq_ = std::max(signed_seq_, c.seq);
  return c;
}

}  // namespace portier::management
