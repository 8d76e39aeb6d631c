// Runs portier-fleet, the binary, as an operator would (posix_spawn), for
// the tests of its command line: its exit code, stdout and stderr.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/wait.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

extern char** environ;

namespace portier::fleet::testing {

struct CliRun {
  int code = -1;
  std::string out, err;
};

inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// `portier-fleet send TERMINAL ACTION` signed with a command key and
// certificate chain, queued in `spool`, then `extra`.
inline std::vector<std::string> send_argv(const std::string& terminal, const std::string& action,
                                          const std::string& signing_key,
                                          const std::string& signing_cert, const std::string& spool,
                                          std::vector<std::string> extra = {}) {
  std::vector<std::string> args{"send",          terminal,    action,
                                "--signing-key", signing_key, "--signing-cert",
                                signing_cert,    "--spool",   spool};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

// portier-fleet `args`, its output kept in files of `dir`.
inline CliRun run_fleet_cli(std::vector<std::string> args, const std::string& dir) {
  const std::string bin = std::string(PORTIER_BIN_DIR) + "/portier-fleet";
  std::vector<char*> argv{const_cast<char*>(bin.c_str())};
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const std::string out = dir + "/out", err = dir + "/err";
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  pid_t pid = 0;
  CliRun r;
  const int rc = posix_spawn(&pid, bin.c_str(), &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) {
    ADD_FAILURE() << "cannot run " << bin;
    return r;
  }
  int status = 0;
  waitpid(pid, &status, 0);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = slurp(out);
  r.err = slurp(err);
  return r;
}

}  // namespace portier::fleet::testing
