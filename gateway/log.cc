#include "log.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>

namespace portier::gateway {
namespace {

std::atomic<int> g_level{static_cast<int>(LogLevel::info)};
const bool g_journal = std::getenv("JOURNAL_STREAM") != nullptr;

const char* name_of(LogLevel l) {
  switch (l) {
    case LogLevel::debug:
      return "debug";
    case LogLevel::info:
      return "info";
    case LogLevel::warning:
      return "warning";
    case LogLevel::error:
      return "error";
  }
  return "info";
}

}  // namespace

void set_log_level(LogLevel level) { g_level = static_cast<int>(level); }

void log_line(LogLevel level, const std::string& message) {
  if (static_cast<int>(level) > g_level) return;
  if (g_journal) {
    std::fprintf(stderr, "<%d>%s\n", static_cast<int>(level), message.c_str());
  } else {
    std::fprintf(stderr, "portierd %s: %s\n", name_of(level), message.c_str());
  }
}

}  // namespace portier::gateway
