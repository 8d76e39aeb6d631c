#include "daemon/daemon_control.h"

#include <fstream>
#include <mutex>

#include "agent/audit_verify.h"
#include "common/file_read.h"
#include "common/file_write.h"
#include "daemon/policy_watch.h"
#include "policy/policy_parser.h"

namespace portier::daemon {
namespace {
std::mutex policy_mu;  // one replacement at a time
}

void HubDaemonControl::run_health_checks() {
  if (health_run_) health_run_();
}

Result<void> HubDaemonControl::replace_policy(const std::string& toml) {
  std::lock_guard lock(policy_mu);
  // Checked before the file is touched: a policy that does not parse never
  // replaces one that does.
  if (auto parsed = policy::parse_policy_text(toml, "the fleet's policy"); !parsed) {
    return std::unexpected(parsed.error());
  }
  const std::string path = policy_.path();
  auto old = read_small_file(path, ReadOptions{.max = 4u << 20});
  PORTIER_TRY(replace_file(path, toml, 0644));
  if (auto ok = reload_policy(policy_, hub_, audit_, "fleet command"); !ok) {
    // The old file back, so a restart does not meet the refused one.
    if (old) (void)replace_file(path, *old, 0644);
    return ok;
  }
  std::lock_guard digest_lock(digest_mu_);
  digest_ = agent::sha256_hex(toml);
  digest_generation_ = policy_.status().generation;
  return {};
}

std::string HubDaemonControl::policy_sha256() {
  std::lock_guard lock(digest_mu_);
  const auto before = policy_.status();
  if (before.generation == digest_generation_) return digest_;
  // The file on disk failed to load after the policy in force did.
  if (!before.last_error.empty()) return "";
  auto text = read_small_file(policy_.path(), ReadOptions{.max = 4u << 20});
  if (!text) return "";
  const auto after = policy_.status();
  if (after.generation != before.generation || !after.last_error.empty()) return "";
  digest_ = agent::sha256_hex(*text);
  digest_generation_ = before.generation;
  return digest_;
}

Result<std::string> HubDaemonControl::device_action(const std::string& device_id,
                                                    const std::string& action) {
  auto r = hub_.act_for_fleet(device_id, action);
  if (!r) return std::unexpected(r.error());
  std::string out;
  for (auto& [k, v] : r->values) out += (out.empty() ? "" : " ") + k + "=" + v;
  return out;
}

Result<std::vector<std::string>> HubDaemonControl::audit_range(std::uint64_t first,
                                                               std::uint64_t last) {
  std::vector<std::string> files;
  for (int i = keep_files_; i >= 1; --i) files.push_back(audit_path_ + "." + std::to_string(i));
  files.push_back(audit_path_);
  std::vector<std::string> out;
  for (auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    std::string line;
    while (in && std::getline(in, line)) {
      if (in.eof()) break;  // a line still being written
      auto c = agent::parse_chained_line(line);
      if (c && c->seq >= first && c->seq <= last) out.push_back(line);
    }
  }
  if (out.empty()) {
    return fail_msg(Errc::not_found, "the trail holds none of records " + std::to_string(first) +
                                         ".." + std::to_string(last));
  }
  return out;
}

}  // namespace portier::daemon
