#include "policy_store.h"

namespace portier::gateway {

PolicyStore::PolicyStore(std::string path) : path_(std::move(path)) { status_.path = path_; }

Result<void> PolicyStore::reload() {
  auto loaded = policy::Policy::load_file(path_);
  std::lock_guard lock(mu_);
  if (!loaded) {
    status_.last_error = loaded.error().message();
    status_.last_error_at = std::chrono::system_clock::now();
    return std::unexpected(loaded.error());
  }
  snap_.policy = *loaded;
  snap_.generation += 1;
  status_.generation = snap_.generation;
  status_.loaded_at = std::chrono::system_clock::now();
  status_.rules = snap_.policy->rule_count();
  status_.apps = snap_.policy->app_count();
  status_.last_error.clear();
  return {};
}

PolicySnapshot PolicyStore::current() const {
  std::lock_guard lock(mu_);
  return snap_;
}

PolicyStatusInfo PolicyStore::status() const {
  std::lock_guard lock(mu_);
  return status_;
}

}  // namespace portier::gateway
