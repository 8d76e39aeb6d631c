#include "agent/identity/hardware_serial.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <string_view>

#include "common/file_read.h"

namespace portier::identity {
namespace {

Result<std::string> check(std::string s, const std::string& from) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.erase(0, 1);
  static constexpr std::array<std::string_view, 7> kPlaceholders = {
      "To Be Filled By O.E.M.", "Default string", "System Serial Number", "0", "None",
      "Not Specified",          "0123456789"};
  if (s.empty()) return fail(Errc::not_found, from, "hardware serial", "empty");
  if (std::find(kPlaceholders.begin(), kPlaceholders.end(), s) != kPlaceholders.end()) {
    return fail(Errc::failed_precondition, from, "hardware serial",
                "\"" + s + "\" is a firmware placeholder, not a serial: set [management] serial");
  }
  if (s.size() > 64) return fail(Errc::invalid_argument, from, "hardware serial", "over 64 bytes");
  for (char c : s) {
    const bool ok = std::isalnum(static_cast<unsigned char>(c)) ||
                    std::string_view(" '()+,-./:=?").find(c) != std::string_view::npos;
    if (!ok) {
      return fail(Errc::invalid_argument, from, "hardware serial",
                  "holds a character outside letters, digits, spaces and '()+,-./:=?");
    }
  }
  return s;
}

}  // namespace

Result<std::string> hardware_serial(const std::string& configured, const std::string& root) {
  if (!configured.empty()) return check(configured, "config");
  const std::string path =
      (root.empty() || root == "/" ? std::string() : root) + "/sys/class/dmi/id/product_serial";
  std::string text;
  if (const int e = read_small_file(path, text, {4096, false}); e != 0) {
    return fail_errno(e == ENOENT ? Errc::not_found : Errc::io, path,
                      "hardware serial: cannot read (set [management] serial)", e);
  }
  return check(std::move(text), path);
}

}  // namespace portier::identity
