#include "policy_store.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace portier::gateway {
namespace {

std::string octal_mode(mode_t mode) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(mode & 07777));
  return buf;
}

bool trusted_uid(uid_t uid) { return uid == 0 || uid == ::geteuid(); }

std::string trusted_uids() {
  return "must be root or portierd's user " + std::to_string(::geteuid());
}

std::unexpected<Error> refuse(const std::string& path, const std::string& why) {
  return fail(Errc::permission_denied, "policy " + path, "", why);
}

std::string parent_of(const std::string& path) {
  auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// Walks `dir` (absolute) up to "/"; `holds_file` is true for the first one,
// the directory the file is in.
Result<void> check_directories(const std::string& path, std::string dir) {
  for (bool holds_file = true;; holds_file = false) {
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0) return {};  // load_file reports what is missing
    const std::string which = "directory " + dir;
    if (!trusted_uid(st.st_uid)) {
      return refuse(path, which + " is owned by uid " + std::to_string(st.st_uid) + " (" +
                              trusted_uids() + "), who could replace the file; refused");
    }
    // In a sticky directory only an entry's owner may rename or remove it, so
    // a directory above ours may be shared (like /tmp); the one holding the
    // file may not, since anyone could plant its name there.
    const bool sticky = (st.st_mode & S_ISVTX) != 0;
    if ((st.st_mode & S_IWOTH) && (holds_file || !sticky)) {
      return refuse(path, which + " is writable by others (mode " + octal_mode(st.st_mode) +
                              (sticky ? "; the sticky bit is not enough for the file's own "
                                        "directory: anyone may plant the name or a link there"
                                      : "") +
                              "); refused (keep the policy in a directory only root may write, "
                              "such as /etc/portier)");
    }
    if ((st.st_mode & S_IWGRP) && st.st_gid != 0 && (holds_file || !sticky)) {
      return refuse(path, which + " is writable by group " + std::to_string(st.st_gid) + " (mode " +
                              octal_mode(st.st_mode) +
                              "), whose members could replace the file; refused (only root's "
                              "group may write it: chmod g-w " +
                              dir + ")");
    }
    if (dir == "/") return {};
    dir = parent_of(dir);
  }
}

}  // namespace

Result<void> check_policy_file_owner(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return {};  // load_file reports why it cannot open it
  if (!trusted_uid(st.st_uid)) {
    return refuse(path, "owned by uid " + std::to_string(st.st_uid) + " (" + trusted_uids() +
                            "); refused (fix with: chown root " + path + ")");
  }
  // The directories of the name as given (where a symlink could be swapped;
  // stat follows each one) and of the file it resolves to.
  std::string given = path;
  if (given.empty() || given[0] != '/') {
    char* cwd = ::getcwd(nullptr, 0);
    if (!cwd) return {};
    given = std::string(cwd) + "/" + given;
    std::free(cwd);
  }
  if (auto r = check_directories(path, parent_of(given)); !r) return r;
  char* real = ::realpath(path.c_str(), nullptr);
  if (!real) return {};
  const std::string resolved = parent_of(real);
  std::free(real);
  if (resolved == parent_of(given)) return {};
  return check_directories(path, resolved);
}

Result<std::shared_ptr<const policy::Policy>> load_policy_file(const std::string& path) {
  if (auto r = check_policy_file_owner(path); !r) return std::unexpected(std::move(r.error()));
  return policy::Policy::load_file(path);
}

PolicyStore::PolicyStore(std::string path) : path_(std::move(path)) { status_.path = path_; }

Result<void> PolicyStore::reload() {
  auto loaded = load_policy_file(path_);
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
