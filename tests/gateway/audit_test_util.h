// Shared by the audit log and audit verify tests: a temp dir, file reading,
// waiting on a condition with a deadline.
#pragma once

#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/audit_sink.h"

namespace portier::agent::test {

struct Dir {
  Dir() {
    char t[] = "/tmp/portier-audit-XXXXXX";
    path = mkdtemp(t);
  }
  ~Dir() { std::filesystem::remove_all(path); }
  std::string path;
};

inline std::string slurp(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

inline std::vector<std::string> file_lines(const std::string& p) {
  std::vector<std::string> out;
  std::ifstream f(p, std::ios::binary);
  for (std::string l; std::getline(f, l);) out.push_back(l);
  return out;
}

inline void write_lines(const std::string& p, const std::vector<std::string>& lines) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  for (auto& l : lines) f << l << '\n';
}

// Polls `pred` until it holds or `timeout` passes; returns its last value.
inline bool wait_until(const std::function<bool()>& pred,
                       std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return pred();
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

inline AuditEntry event(AuditEvent kind, const std::string& reason = {}) {
  AuditEntry e;
  e.event = kind;
  e.reason = reason;
  return e;
}

}  // namespace portier::agent::test
