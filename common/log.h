// Daemon log lines on stderr; under systemd (JOURNAL_STREAM set) each line
// carries its syslog priority prefix so journald files it right. Never log
// payloads, keys, PINs or card numbers.
#pragma once

#include <string>

namespace portier {

enum class LogLevel { debug = 7, info = 6, warning = 4, error = 3 };

void set_log_level(LogLevel level);
void log_line(LogLevel level, const std::string& message);
inline void log_info(const std::string& m) { log_line(LogLevel::info, m); }
inline void log_warning(const std::string& m) { log_line(LogLevel::warning, m); }
inline void log_error(const std::string& m) { log_line(LogLevel::error, m); }
inline void log_debug(const std::string& m) { log_line(LogLevel::debug, m); }

}  // namespace portier
