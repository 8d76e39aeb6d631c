#include "log.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>

namespace portier {
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

void log_line(LogLevel level, const std::string& raw) {
  if (static_cast<int>(level) > g_level) return;
  // Messages carry strings devices and apps chose (names, ids, reasons):
  // one line each, control characters escaped, so none can forge a line.
  std::string message;
  message.reserve(raw.size());
  for (unsigned char c : raw) {
    if (c < 0x20 || c == 0x7f) {
      static const char* hex = "0123456789abcdef";
      message += "\\x";
      message += hex[c >> 4];
      message += hex[c & 15];
    } else {
      message += static_cast<char>(c);
    }
  }
  if (g_journal) {
    std::fprintf(stderr, "<%d>%s\n", static_cast<int>(level), message.c_str());
  } else {
    std::fprintf(stderr, "portierd %s: %s\n", name_of(level), message.c_str());
  }
}

}  // namespace portier
