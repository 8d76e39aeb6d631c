#include "usb/uevent_parser.h"

#include <charconv>
#include <cstdio>

namespace portier::drivers::usb {
namespace {

constexpr std::string_view kUdevMagic("libudev\0", 8);
constexpr std::size_t kMaxDevpath = 4096;

bool known_action(std::string_view a) {
  for (std::string_view k :
       {"add", "remove", "change", "move", "online", "offline", "bind", "unbind"}) {
    if (a == k) return true;
  }
  return false;
}

bool key_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

// "" when fine, else why not.
std::string check_devpath(std::string_view p) {
  if (p.empty()) return "empty DEVPATH";
  if (p.size() > kMaxDevpath) return "DEVPATH longer than 4096 bytes";
  if (p.front() != '/') return "DEVPATH \"" + escape_for_message(p) + "\" is not absolute";
  for (char c : p) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      return "DEVPATH \"" + escape_for_message(p) + "\" contains control characters";
    }
  }
  std::size_t pos = 1;
  while (pos <= p.size()) {
    std::size_t end = p.find('/', pos);
    if (end == std::string_view::npos) end = p.size();
    const std::string_view comp = p.substr(pos, end - pos);
    if (comp.empty() || comp == "." || comp == "..") {
      return "DEVPATH \"" + escape_for_message(p) + "\" has an empty, \".\" or \"..\" component";
    }
    pos = end + 1;
  }
  return {};
}

UeventParseResult reject(std::string why) {
  UeventParseResult r;
  r.reason = std::move(why);
  return r;
}

}  // namespace

std::string escape_for_message(std::string_view bytes, std::size_t max_chars) {
  std::string out;
  const bool cut = bytes.size() > max_chars;
  if (cut) bytes = bytes.substr(0, max_chars);
  for (char c : bytes) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (u >= 0x20 && u < 0x7f) {
      out += c;
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", u);
      out += buf;
    }
  }
  if (cut) out += "...";
  return out;
}

std::string_view devpath_basename(std::string_view devpath) {
  const std::size_t slash = devpath.rfind('/');
  return slash == std::string_view::npos ? devpath : devpath.substr(slash + 1);
}

UeventParseResult parse_uevent(std::string_view d) {
  if (d.empty()) return reject("empty message");
  if (d.size() > kMaxUeventSize) {
    return reject("message of " + std::to_string(d.size()) + " bytes exceeds the limit of " +
                  std::to_string(kMaxUeventSize));
  }
  if (d.substr(0, kUdevMagic.size()) == kUdevMagic) {
    return reject(
        "udev monitor message (\"libudev\" header): from user space, not from the kernel");
  }

  const std::size_t header_end = d.find('\0');
  const std::string_view header = d.substr(0, header_end);
  const std::size_t at = header.find('@');
  if (at == std::string_view::npos) {
    return reject("header \"" + escape_for_message(header) + "\" is not ACTION@DEVPATH");
  }
  const std::string_view action = header.substr(0, at);
  const std::string_view devpath = header.substr(at + 1);
  if (!known_action(action)) {
    return reject("unknown action \"" + escape_for_message(action) + "\" in the header");
  }
  if (std::string why = check_devpath(devpath); !why.empty()) {
    return reject("header: " + why);
  }
  if (header_end == std::string_view::npos || header_end + 1 >= d.size()) {
    return reject("no KEY=VALUE fields after the header");
  }

  UeventParseResult r;
  Uevent& ev = r.event;
  std::size_t pos = header_end + 1;
  std::size_t fields = 0;
  while (pos < d.size()) {
    std::size_t end = d.find('\0', pos);
    if (end == std::string_view::npos) end = d.size();
    const std::string_view field = d.substr(pos, end - pos);
    const std::string at_offset = " at offset " + std::to_string(pos);
    if (field.empty()) return reject("empty field" + at_offset);
    if (++fields > kMaxUeventFields) {
      return reject("more than " + std::to_string(kMaxUeventFields) + " fields");
    }
    const std::size_t eq = field.find('=');
    if (eq == std::string_view::npos || eq == 0) {
      return reject("field" + at_offset + " is not KEY=VALUE: \"" + escape_for_message(field) +
                    "\"");
    }
    const std::string_view key = field.substr(0, eq);
    for (char c : key) {
      if (!key_char(c)) {
        return reject("key \"" + escape_for_message(key) + "\"" + at_offset +
                      " has characters other than A-Z, a-z, 0-9 and _");
      }
    }
    if (!ev.env.emplace(std::string(key), std::string(field.substr(eq + 1))).second) {
      return reject("duplicate key " + std::string(key) + at_offset);
    }
    pos = end + 1;
  }

  auto get = [&](const char* k) -> const std::string* {
    auto it = ev.env.find(k);
    return it == ev.env.end() ? nullptr : &it->second;
  };
  for (const char* k : {"ACTION", "DEVPATH", "SUBSYSTEM", "SEQNUM"}) {
    if (!get(k)) return reject(std::string("missing ") + k);
  }
  if (*get("ACTION") != action) {
    return reject("ACTION=" + escape_for_message(*get("ACTION")) + " differs from the header's " +
                  std::string(action));
  }
  if (*get("DEVPATH") != devpath) {
    return reject("DEVPATH=" + escape_for_message(*get("DEVPATH")) + " differs from the header's " +
                  escape_for_message(devpath));
  }
  if (get("SUBSYSTEM")->empty()) return reject("empty SUBSYSTEM");
  const std::string& seq = *get("SEQNUM");
  const char* first = seq.data();
  const char* last = seq.data() + seq.size();
  auto [ptr, ec] = std::from_chars(first, last, ev.seqnum);
  if (seq.empty() || ec != std::errc() || ptr != last) {
    return reject("SEQNUM \"" + escape_for_message(seq) + "\" is not a decimal number");
  }
  ev.action = std::string(action);
  ev.devpath = std::string(devpath);
  ev.subsystem = *get("SUBSYSTEM");
  if (const std::string* t = get("DEVTYPE")) ev.devtype = *t;
  r.ok = true;
  return r;
}

UeventSenderCheck check_uevent_sender(std::uint32_t nl_pid, std::uint32_t nl_groups) {
  UeventSenderCheck c;
  if (nl_pid != 0) {
    c.reason = "sent by user-space port " + std::to_string(nl_pid) + ", not by the kernel (port 0)";
    return c;
  }
  if (nl_groups != 1) {
    c.reason = "sent to netlink group mask " + std::to_string(nl_groups) +
               ", not to the kernel's uevent group 1";
    return c;
  }
  c.ok = true;
  return c;
}

}  // namespace portier::drivers::usb
