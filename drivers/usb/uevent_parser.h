// Pure parser of kernel uevent datagrams as sent on NETLINK_KOBJECT_UEVENT
// (multicast group 1): "ACTION@DEVPATH\0KEY=VALUE\0KEY=VALUE\0...".
//
// No I/O, no exceptions for bad input, no portier/result.h: the libFuzzer
// target builds this file alone with clang (C++20). Every rejection says why,
// with the byte offset where it applies; payload bytes quoted in a reason are
// cut to 32 characters and escaped.
#pragma once

#include <linux/netlink.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

namespace portier::drivers::usb {

// Larger datagrams are rejected (the kernel's own limit is 2048 bytes of
// environment plus the header; 16 KiB leaves room and bounds the work).
inline constexpr std::size_t kMaxUeventSize = 16384;
// The kernel sends at most 64 variables (UEVENT_NUM_ENVP).
inline constexpr std::size_t kMaxUeventFields = 64;

struct Uevent {
  std::string action;     // add, remove, change, move, online, offline, bind, unbind
  std::string devpath;    // "/devices/pci0000:00/0000:00:14.0/usb1/1-1"
  std::string subsystem;  // "usb", "tty", ...
  std::string devtype;    // "usb_device", "usb_interface"; "" when absent
  std::uint64_t seqnum = 0;
  std::map<std::string, std::string> env;  // every KEY=VALUE, the ones above included
};

struct UeventParseResult {
  bool ok = false;
  std::string reason;  // when !ok: why the datagram was rejected
  Uevent event;        // when ok
};

// Accepts only the kernel's format. Rejects: empty or oversized datagrams,
// udev's "libudev\0" monitor messages (user space, not the kernel), a header
// that is not ACTION@DEVPATH with a known action and an absolute DEVPATH
// without empty, "." or ".." components, fields that are not KEY=VALUE with
// KEY of [A-Za-z0-9_], empty fields, duplicate keys, more than 64 fields, a
// missing ACTION, DEVPATH, SUBSYSTEM or SEQNUM, ACTION/DEVPATH that differ
// from the header, a SEQNUM that is not a decimal number. The last field may
// or may not end with a NUL.
UeventParseResult parse_uevent(std::string_view datagram);

struct UeventSenderCheck {
  bool ok = false;
  std::string reason;  // when !ok
};

// A uevent received on a NETLINK_KOBJECT_UEVENT socket comes from the kernel
// only when the sender's port id is 0 and it was multicast to group 1 (the
// kernel's; udev re-broadcasts on group 2, and a privileged process can send
// to group 1 but never with port id 0).
UeventSenderCheck check_uevent_sender(std::uint32_t nl_pid, std::uint32_t nl_groups);
inline UeventSenderCheck check_uevent_sender(const sockaddr_nl& from) {
  return check_uevent_sender(from.nl_pid, from.nl_groups);
}

// "1-1.2" for "/devices/.../usb1/1-1/1-1.2"; "" for "" or a trailing '/'.
std::string_view devpath_basename(std::string_view devpath);

// Printable, bounded form of untrusted bytes for error messages.
std::string escape_for_message(std::string_view bytes, std::size_t max_chars = 32);

}  // namespace portier::drivers::usb
