#include "usb/usb_driver.h"

#include <fcntl.h>
#include <linux/netlink.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <system_error>
#include <utility>

#include "usb/uevent_parser.h"
#include "usb/usb_descriptor_parser.h"
#include "usb/usb_identity.h"
#include "usb/usb_transfer.h"

namespace portier::drivers::usb {

// Callbacks collected under mu_ and made after it is released.
class UsbDriver::Reports {
 public:
  void added(DeviceInfo info) {
    calls_.push_back([info = std::move(info)](DriverSink& s) { s.device_added(info); });
  }
  void removed(std::string id) {
    calls_.push_back([id = std::move(id)](DriverSink& s) { s.device_removed(id); });
  }
  void state(std::string id, DeviceState st, std::string reason) {
    calls_.push_back([id = std::move(id), st, reason = std::move(reason)](DriverSink& s) {
      s.device_state(id, st, reason);
    });
  }
  void alarm(std::string id, AlarmData a) {
    calls_.push_back([id = std::move(id), a = std::move(a)](DriverSink& s) {
      s.device_event(id, DeviceEvent{a});
    });
  }
  void run(DriverSink& sink) {
    for (auto& c : calls_) c(sink);
    calls_.clear();
  }

 private:
  std::vector<std::function<void(DriverSink&)>> calls_;
};

namespace {

constexpr const char* kWhere = "usb";
constexpr int kDatagramsPerWakeup = 64;  // then poll again so stop() stays prompt
constexpr int kSocketBuffer = 1 << 20;
constexpr const char* kDeauthorizedReason =
    "not authorized (sysfs authorized = 0): the kernel keeps its interfaces unbound";

std::string errno_text(int e) { return std::error_code(e, std::generic_category()).message(); }

int depth(const std::string& port) {
  if (port.rfind("usb", 0) == 0) return 0;
  return 1 + static_cast<int>(std::count(port.begin(), port.end(), '.'));
}

bool id_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-' || c == '.';
}

void add_device_details(AlarmData& a, const SysfsUsbDevice& d, const std::string& identity) {
  a.details["identity"] = identity;
  a.details["port"] = d.name;
  a.details["vendor"] = d.vendor;
  a.details["product"] = d.product;
  a.details["serial"] = d.serial;
  a.details["manufacturer"] = d.manufacturer;
  a.details["product_name"] = d.product_name;
}

std::string describe(const SysfsUsbDevice& d) {
  std::string s = d.vendor + ":" + d.product;
  if (!d.product_name.empty()) s += " \"" + escape_for_message(d.product_name, 64) + "\"";
  return s;
}

}  // namespace

UsbDriver::UsbDriver(UsbConfig config, std::unique_ptr<UsbBackend> usb)
    : config_(std::move(config)), tree_(config_.sysfs_root), usb_(std::move(usb)) {}

UsbDriver::~UsbDriver() { stop(); }

Result<void> UsbDriver::validate(const UsbConfig& c) {
  if (c.sysfs_root.empty()) return fail(Errc::invalid_argument, kWhere, "sysfs_root", "is empty");
  if (c.uevent_source != "netlink") {
    if (c.uevent_source.empty() || c.uevent_source.front() != '/') {
      return fail(Errc::invalid_argument, kWhere, "uevent_source \"" + c.uevent_source + "\"",
                  "must be \"netlink\" or an absolute socket path (tests)");
    }
    if (c.uevent_source.size() >= sizeof(sockaddr_un{}.sun_path)) {
      return fail(Errc::invalid_argument, kWhere, "uevent_source", "socket path is too long");
    }
  }
  if (c.id_prefix.empty() || !std::all_of(c.id_prefix.begin(), c.id_prefix.end(), [](char ch) {
        return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '-';
      })) {
    return fail(Errc::invalid_argument, kWhere, "id_prefix \"" + c.id_prefix + "\"",
                "must be non-empty [a-z0-9_-]");
  }
  std::set<std::string> ids;
  for (const auto& p : c.pinned) {
    const std::string what = "pinned device \"" + p.id + "\"";
    if (p.id.empty() || !std::all_of(p.id.begin(), p.id.end(), id_char)) {
      return fail(Errc::invalid_argument, kWhere, what, "id must be non-empty [A-Za-z0-9_.-]");
    }
    if (p.id.rfind(c.id_prefix + "-", 0) == 0) {
      return fail(Errc::invalid_argument, kWhere, what,
                  "ids starting with \"" + c.id_prefix + "-\" are those of unpinned devices");
    }
    if (!ids.insert(p.id).second) return fail(Errc::invalid_argument, kWhere, what, "duplicate id");
    if (!is_identity(p.identity)) {
      return fail(Errc::invalid_argument, kWhere, what,
                  "identity must be 64 lowercase hex digits (SHA-256, see portierctl devices)");
    }
    if (!p.port.empty() && !SysfsUsbTree::is_device_name(p.port)) {
      return fail(Errc::invalid_argument, kWhere, what,
                  "port \"" + p.port + "\" is not a USB port name like 1-1 or 1-1.2");
    }
  }
  for (const auto& a : c.allowed) {
    if (!is_identity(a)) {
      return fail(Errc::invalid_argument, kWhere, "allowed identity \"" + a + "\"",
                  "must be 64 lowercase hex digits");
    }
  }
  return {};
}

// ---------------------------------------------------------------------------
// Lifecycle

Result<void> UsbDriver::open_uevent_socket() {
  if (config_.uevent_source == "netlink") {
    netlink_ = true;
    const int fd =
        ::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_KOBJECT_UEVENT);
    if (fd < 0) return fail(Errc::unavailable, kWhere, "uevent netlink socket", errno_text(errno));
    if (::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &kSocketBuffer, sizeof kSocketBuffer) != 0) {
      ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &kSocketBuffer, sizeof kSocketBuffer);
    }
    sockaddr_nl sa{};
    sa.nl_family = AF_NETLINK;
    sa.nl_pid = 0;     // let the kernel pick our port id
    sa.nl_groups = 1;  // the kernel's uevents; udev's group 2 is not joined
    if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
      const int e = errno;
      ::close(fd);
      return fail(Errc::unavailable, kWhere, "bind uevent netlink socket", errno_text(e));
    }
    uevent_fd_ = fd;
    return {};
  }
  netlink_ = false;
  const std::string& path = config_.uevent_source;
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return fail(Errc::failed_precondition, kWhere, "uevent_source " + path,
                  "exists and is not a socket");
    }
    ::unlink(path.c_str());  // stale socket of an earlier run
  }
  const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return fail(Errc::io, kWhere, "uevent socket", errno_text(errno));
  ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &kSocketBuffer, sizeof kSocketBuffer);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  path.copy(sa.sun_path, sizeof sa.sun_path - 1);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    const int e = errno;
    ::close(fd);
    return fail(Errc::io, kWhere, "bind uevent socket " + path, errno_text(e));
  }
  socket_bound_ = true;
  ::chmod(path.c_str(), 0600);
  uevent_fd_ = fd;
  return {};
}

Result<void> UsbDriver::start(DriverSink& sink) {
  if (started_) return fail(Errc::failed_precondition, kWhere, "start", "already started");
  if (auto ok = validate(config_); !ok) return ok;
  if (!usb_) {  // libusb is loaded here, by the first driver that starts (libusb_api.h)
    auto backend = libusb_backend();
    if (!backend) return std::unexpected(backend.error());
    usb_ = std::move(*backend);
  }
  auto close_all = [this] {
    for (int* fd : {&stop_fd_, &wake_fd_, &uevent_fd_}) {
      if (*fd >= 0) ::close(*fd);
      *fd = -1;
    }
    if (socket_bound_) ::unlink(config_.uevent_source.c_str());
    socket_bound_ = false;
  };
  if (auto listed = tree_.list_devices(); !listed && listed.error().code != Errc::not_found) {
    return std::unexpected(listed.error());
  }
  stop_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (stop_fd_ < 0 || wake_fd_ < 0) {
    const int e = errno;
    close_all();
    return fail(Errc::io, kWhere, "eventfd", errno_text(e));
  }
  // Listen before enumerating, so that nothing plugged in between is missed
  // (an "add" for a device already listed is just a refresh).
  if (auto ok = open_uevent_socket(); !ok) {
    close_all();
    return ok;
  }
  sink_ = &sink;
  Reports out;
  {
    std::lock_guard lock(mu_);
    by_port_.clear();
    refresh_queue_.clear();
    counters_ = {};
    pins_.clear();
    for (const auto& p : config_.pinned) pins_.push_back(PinState{p, p.port, ""});
    rescan_locked(out);
  }
  flush(out);
  try {
    thread_ = std::thread([this] { run(); });
  } catch (const std::system_error& e) {
    close_all();
    Reports gone;
    {
      std::lock_guard lock(mu_);
      for (auto& [port, entry] : by_port_) gone.removed(entry.id);
      by_port_.clear();
    }
    flush(gone);
    return fail(Errc::internal, kWhere, "driver thread", e.what());
  }
  started_ = true;
  return {};
}

void UsbDriver::stop() {
  if (!started_) return;
  const std::uint64_t one = 1;
  while (::write(stop_fd_, &one, sizeof one) < 0 && errno == EINTR) {
  }
  if (thread_.joinable()) thread_.join();
  for (int* fd : {&stop_fd_, &wake_fd_, &uevent_fd_}) {
    if (*fd >= 0) ::close(*fd);
    *fd = -1;
  }
  if (socket_bound_) ::unlink(config_.uevent_source.c_str());
  socket_bound_ = false;
  Reports out;
  {
    std::lock_guard lock(mu_);
    std::vector<const Entry*> order;
    for (auto& [port, e] : by_port_) order.push_back(&e);
    // Children before the hubs they hang off, like the kernel.
    std::stable_sort(order.begin(), order.end(), [](const Entry* a, const Entry* b) {
      return depth(a->dev.name) > depth(b->dev.name);
    });
    for (const Entry* e : order) out.removed(e->id);
    by_port_.clear();
    for (auto& p : pins_) p.present_port.clear();
    refresh_queue_.clear();
  }
  started_ = false;
  flush(out);
}

void UsbDriver::flush(Reports& out) { out.run(*sink_); }

UsbDriver::Counters UsbDriver::counters() const {
  std::lock_guard lock(mu_);
  return counters_;
}

// ---------------------------------------------------------------------------
// Device table

UsbDriver::Entry UsbDriver::make_entry(SysfsUsbDevice dev) const {
  Entry e;
  std::vector<std::uint8_t> classes;
  if (!dev.descriptors_error.empty()) {
    e.descriptor_error = dev.descriptors_error;
  } else {
    UsbDescriptorParseResult parsed = parse_usb_descriptors(dev.descriptors);
    if (parsed.ok) {
      classes = interface_classes(parsed.descriptors);
    } else {
      e.descriptor_error = parsed.reason;
    }
  }
  if (!e.descriptor_error.empty()) {
    // Fall back to the interfaces the kernel created (none while the device
    // is deauthorized or before its configuration is set).
    for (const auto& i : dev.interfaces) {
      if (auto v = parse_usb_number("0x" + i.interface_class, 0xff)) {
        classes.push_back(static_cast<std::uint8_t>(*v));
      }
    }
  }
  e.interface_classes = format_interface_classes(classes);
  UsbIdentityInput in{dev.vendor,          dev.product,         dev.bcd_device,   dev.device_class,
                      dev.device_subclass, dev.device_protocol, dev.manufacturer, dev.product_name,
                      dev.serial,          e.interface_classes};
  if (auto id = usb_identity(in)) {
    e.identity = std::move(*id);
  } else {
    e.identity_error = id.error().message();
  }
  e.dev = std::move(dev);
  return e;
}

DeviceInfo UsbDriver::info_of(const Entry& e) const {
  const SysfsUsbDevice& d = e.dev;
  DeviceInfo info;
  info.id = e.id;
  info.device_class = "usb";
  info.driver = "usb";
  info.capabilities = {"events"};
  info.attributes = {{"vendor", d.vendor},
                     {"product", d.product},
                     {"bcd_device", d.bcd_device},
                     {"device_class", d.device_class},
                     {"manufacturer", d.manufacturer},
                     {"product_name", d.product_name},
                     {"serial", d.serial},
                     {"interface_classes", e.interface_classes},
                     {"identity", e.identity},
                     {"port", d.name},
                     {"busnum", d.busnum},
                     {"devnum", d.devnum},
                     {"authorized", d.authorized}};
  if (d.hub()) info.attributes["hub"] = "1";
  if (d.has_authorized_default) info.attributes["authorized_default"] = d.authorized_default;
  if (e.pin >= 0) info.attributes["pinned"] = "1";
  if (!e.descriptor_error.empty()) info.attributes["descriptor_error"] = e.descriptor_error;
  if (!e.identity_error.empty()) info.attributes["identity_error"] = e.identity_error;
  info.actions = {{"authorize", "authorize", false}, {"deauthorize", "authorize", false}};
  if (d.has_authorized_default) info.actions.push_back({"authorize_default", "authorize", false});
  if (!d.root_hub) info.actions.push_back({"control_transfer", "write", true});
  if (!d.hub()) info.actions.push_back({"bulk_transfer", "write", true});
  return info;
}

bool UsbDriver::known_locked(const Entry& e) const {
  if (e.pin >= 0 || e.dev.root_hub || (e.dev.hub() && config_.allow_hubs)) return true;
  return !e.identity.empty() && std::find(config_.allowed.begin(), config_.allowed.end(),
                                          e.identity) != config_.allowed.end();
}

std::string UsbDriver::deauthorize_locked(Entry& e) {
  if (e.dev.root_hub) return "none (root hubs are never deauthorized automatically)";
  if (auto ok = tree_.write_authorized(e.dev.name, false); !ok) {
    return "deauthorize failed: " + ok.error().message();
  }
  e.dev.authorized = "0";
  return "deauthorized";
}

void UsbDriver::report_state_locked(Entry& e, Reports& out) {
  const DeviceState want = e.dev.authorized == "1" ? DeviceState::ready : DeviceState::disconnected;
  if (e.reported == want) return;
  // device_added implies ready: only a change from that is reported.
  const bool first = !e.reported.has_value();
  e.reported = want;
  if (first && want == DeviceState::ready) return;
  out.state(e.id, want, want == DeviceState::ready ? "" : kDeauthorizedReason);
}

void UsbDriver::add_locked(const std::string& port, Reports& out) {
  if (by_port_.count(port)) {
    refresh_locked(port, out);
    return;
  }
  auto dev = tree_.read_device(port);
  if (!dev) return;  // gone already; its remove uevent follows
  Entry e = make_entry(std::move(*dev));

  int match = -1, duplicate = -1, substituted = -1;
  if (!e.identity.empty()) {
    for (std::size_t i = 0; i < pins_.size(); ++i) {
      if (pins_[i].pin.identity != e.identity) continue;
      if (pins_[i].present_port.empty()) {
        match = static_cast<int>(i);
        break;
      }
      if (duplicate < 0) duplicate = static_cast<int>(i);
    }
  }
  if (match >= 0) {
    duplicate = -1;
    e.pin = match;
    e.id = pins_[match].pin.id;
    pins_[match].present_port = port;
    pins_[match].last_port = port;
  } else {
    e.id = config_.id_prefix + "-" + port;
    if (duplicate < 0) {
      for (std::size_t i = 0; i < pins_.size(); ++i) {
        if (pins_[i].present_port.empty() && pins_[i].last_port == port) {
          substituted = static_cast<int>(i);
          break;
        }
      }
    }
  }

  std::optional<AlarmData> alarm;
  if (substituted >= 0) {
    const PinState& p = pins_[substituted];
    AlarmData a;
    a.code = "device_substituted";
    a.message = "port " + port + " of pinned device " + p.pin.id + " holds another device (" +
                describe(e.dev) + ")";
    add_device_details(a, e.dev, e.identity);
    a.details["pinned_id"] = p.pin.id;
    a.details["expected_identity"] = p.pin.identity;
    a.details["actual_identity"] = e.identity;
    a.details["action"] = config_.block_unknown ? deauthorize_locked(e) : "none";
    alarm = std::move(a);
  } else if (duplicate >= 0) {
    const PinState& p = pins_[duplicate];
    AlarmData a;
    a.code = "device_duplicate";
    a.message = "a second device with the identity of pinned device " + p.pin.id +
                " (present on port " + p.present_port + ") appeared on port " + port;
    add_device_details(a, e.dev, e.identity);
    a.details["pinned_id"] = p.pin.id;
    a.details["pinned_port"] = p.present_port;
    a.details["action"] = config_.block_unknown ? deauthorize_locked(e) : "none";
    alarm = std::move(a);
  } else if (match < 0 && config_.block_unknown && !known_locked(e)) {
    AlarmData a;
    a.code = "device_refused";
    a.message = "unknown USB device " + describe(e.dev) + " on port " + port +
                " is neither pinned nor allowed";
    add_device_details(a, e.dev, e.identity);
    a.details["action"] = deauthorize_locked(e);
    alarm = std::move(a);
  }

  auto [it, inserted] = by_port_.emplace(port, std::move(e));
  Entry& entry = it->second;
  out.added(info_of(entry));
  report_state_locked(entry, out);
  if (alarm) out.alarm(entry.id, std::move(*alarm));
}

void UsbDriver::remove_locked(const std::string& port, Reports& out) {
  auto it = by_port_.find(port);
  if (it == by_port_.end()) return;
  Entry e = std::move(it->second);
  by_port_.erase(it);
  if (e.pin >= 0) {
    PinState& p = pins_[e.pin];
    p.present_port.clear();
    p.last_port = port;
    AlarmData a;
    a.code = "device_removed";
    a.message =
        "pinned device " + p.pin.id + " (" + describe(e.dev) + ") was removed from port " + port;
    add_device_details(a, e.dev, e.identity);
    a.details["pinned_id"] = p.pin.id;
    out.alarm(e.id, std::move(a));
  }
  out.removed(e.id);
}

void UsbDriver::refresh_locked(const std::string& port, Reports& out) {
  auto it = by_port_.find(port);
  if (it == by_port_.end()) {
    add_locked(port, out);
    return;
  }
  auto dev = tree_.read_device(port);
  if (!dev) return;  // gone: the remove uevent (or a rescan) handles it
  Entry& e = it->second;
  if (dev->busnum != e.dev.busnum || dev->devnum != e.dev.devnum || dev->vendor != e.dev.vendor ||
      dev->product != e.dev.product || dev->serial != e.dev.serial) {
    // Another enumeration on this port (a remove was missed): start over.
    remove_locked(port, out);
    add_locked(port, out);
    return;
  }
  // The identity stays as computed when the device was added.
  e.dev = std::move(*dev);
  report_state_locked(e, out);
}

void UsbDriver::rescan_locked(Reports& out) {
  std::vector<std::string> ports;
  if (auto listed = tree_.list_devices()) ports = std::move(*listed);
  const std::set<std::string> now(ports.begin(), ports.end());
  std::vector<std::string> gone;
  for (const auto& [port, e] : by_port_) {
    if (!now.count(port)) gone.push_back(port);
  }
  std::stable_sort(gone.begin(), gone.end(),
                   [](const std::string& a, const std::string& b) { return depth(a) > depth(b); });
  for (const auto& port : gone) remove_locked(port, out);
  std::vector<std::string> fresh;
  for (const auto& port : ports) {
    if (!by_port_.count(port)) fresh.push_back(port);
  }
  locate_pins_locked(fresh);
  for (const auto& port : ports) add_locked(port, out);  // refreshes known ones
}

void UsbDriver::locate_pins_locked(const std::vector<std::string>& new_ports) {
  // Before reporting a batch (start, rescan), find where absent pinned
  // devices are now: a pinned reader that moved while we were not looking is
  // not "substituted" on its old port just because that port sorts first.
  std::vector<bool> claimed(pins_.size(), false);
  for (const auto& port : new_ports) {
    auto dev = tree_.read_device(port);
    if (!dev) continue;
    const Entry e = make_entry(std::move(*dev));
    if (e.identity.empty()) continue;
    for (std::size_t i = 0; i < pins_.size(); ++i) {
      if (!claimed[i] && pins_[i].present_port.empty() && pins_[i].pin.identity == e.identity) {
        claimed[i] = true;
        pins_[i].last_port = port;
        break;
      }
    }
  }
}

// ---------------------------------------------------------------------------
// Driver thread

void UsbDriver::run() {
  for (;;) {
    pollfd fds[3] = {{stop_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}, {uevent_fd_, POLLIN, 0}};
    const int n = ::poll(fds, 3, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;  // cannot happen with valid descriptors; stop() still works
    }
    if (fds[0].revents != 0) return;
    if (fds[1].revents != 0) {
      std::uint64_t v;
      while (::read(wake_fd_, &v, sizeof v) < 0 && errno == EINTR) {
      }
      Reports out;
      {
        std::lock_guard lock(mu_);
        std::vector<std::string> ports;
        ports.swap(refresh_queue_);
        for (const auto& p : ports) {
          if (by_port_.count(p)) refresh_locked(p, out);
        }
      }
      flush(out);
    }
    if (fds[2].revents != 0) read_uevents();
  }
}

void UsbDriver::read_uevents() {
  std::string buf(kMaxUeventSize + 1, '\0');
  for (int i = 0; i < kDatagramsPerWakeup; ++i) {
    sockaddr_storage from{};
    iovec iov{buf.data(), buf.size()};
    msghdr msg{};
    msg.msg_name = &from;
    msg.msg_namelen = sizeof from;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    const ssize_t n = ::recvmsg(uevent_fd_, &msg, MSG_DONTWAIT);
    if (n < 0) {
      const int e = errno;
      if (e == EINTR) continue;
      if (e == EAGAIN || e == EWOULDBLOCK) return;
      if (e == ENOBUFS) {
        // The kernel dropped uevents: sysfs is the truth.
        Reports out;
        {
          std::lock_guard lock(mu_);
          ++counters_.rescans;
          rescan_locked(out);
        }
        flush(out);
        continue;
      }
      std::lock_guard lock(mu_);
      ++counters_.rejected;
      counters_.last_rejection = "receive failed: " + errno_text(e);
      return;
    }
    std::string reject;
    if (msg.msg_flags & MSG_TRUNC) {
      reject = "datagram larger than " + std::to_string(kMaxUeventSize) + " bytes";
    } else if (netlink_) {
      const auto* nl = reinterpret_cast<const sockaddr_nl*>(&from);
      if (msg.msg_namelen < sizeof(sockaddr_nl) || nl->nl_family != AF_NETLINK) {
        reject = "no netlink sender address";
      } else if (auto c = check_uevent_sender(*nl); !c.ok) {
        reject = c.reason;
      }
    }
    if (!reject.empty()) {
      std::lock_guard lock(mu_);
      ++counters_.rejected;
      counters_.last_rejection = reject;
      continue;
    }
    handle_datagram(std::string_view(buf.data(), static_cast<std::size_t>(n)));
  }
}

void UsbDriver::handle_datagram(std::string_view bytes) {
  UeventParseResult p = parse_uevent(bytes);
  Reports out;
  {
    std::lock_guard lock(mu_);
    if (!p.ok) {
      ++counters_.rejected;
      counters_.last_rejection = p.reason;
      return;
    }
    const Uevent& ev = p.event;
    const std::string base(devpath_basename(ev.devpath));
    const bool iface = ev.devtype == "usb_interface" ||
                       (ev.devtype.empty() && SysfsUsbTree::is_interface_name(base));
    const bool device =
        ev.devtype == "usb_device" || (ev.devtype.empty() && SysfsUsbTree::is_device_name(base));
    if (ev.subsystem != "usb") {
      ++counters_.ignored;
      return;
    }
    if (iface && SysfsUsbTree::is_interface_name(base)) {
      // The parent's directory holds the interface ("usb1" for "1-0:1.0").
      const std::string_view dir = std::string_view(ev.devpath)
                                       .substr(0, ev.devpath.size() - base.size() -
                                                      (ev.devpath.size() > base.size() ? 1 : 0));
      const std::string parent(devpath_basename(dir));
      ++counters_.handled;
      if (by_port_.count(parent)) refresh_locked(parent, out);
    } else if (device && SysfsUsbTree::is_device_name(base)) {
      ++counters_.handled;
      if (ev.action == "add") {
        add_locked(base, out);
      } else if (ev.action == "remove") {
        remove_locked(base, out);
      } else {
        refresh_locked(base, out);
      }
    } else {
      ++counters_.ignored;
      return;
    }
  }
  flush(out);
}

// ---------------------------------------------------------------------------
// Requests from other threads

Result<std::size_t> UsbDriver::write(const std::string& device_id, std::string_view) {
  {
    std::lock_guard lock(mu_);
    const bool known = std::any_of(by_port_.begin(), by_port_.end(),
                                   [&](const auto& kv) { return kv.second.id == device_id; });
    if (!known) return fail(Errc::not_found, kWhere, "write to " + device_id, "no such device");
  }
  return fail(Errc::failed_precondition, kWhere, "write to " + device_id,
              "USB devices take data only through the control_transfer and bulk_transfer actions");
}

void UsbDriver::request_refresh(const std::string& port) {
  {
    std::lock_guard lock(mu_);
    refresh_queue_.push_back(port);
  }
  const std::uint64_t one = 1;
  while (::write(wake_fd_, &one, sizeof one) < 0 && errno == EINTR) {
  }
}

Result<ActionResult> UsbDriver::act(const ActionRequest& r) {
  const std::string what = r.action + " on " + r.device_id;
  if (!started_) return fail(Errc::failed_precondition, kWhere, what, "driver is not running");
  std::string port, vendor, product, authorized;
  DeviceInfo info;
  {
    std::lock_guard lock(mu_);
    auto it = std::find_if(by_port_.begin(), by_port_.end(),
                           [&](const auto& kv) { return kv.second.id == r.device_id; });
    if (it == by_port_.end()) return fail(Errc::not_found, kWhere, what, "no such device");
    port = it->first;
    vendor = it->second.dev.vendor;
    product = it->second.dev.product;
    authorized = it->second.dev.authorized;
    info = info_of(it->second);
  }
  if (std::none_of(info.actions.begin(), info.actions.end(),
                   [&](const ActionSpec& a) { return a.name == r.action; })) {
    return fail(Errc::failed_precondition, kWhere, what, "this device offers no such action");
  }
  auto only_params = [&](std::initializer_list<const char*> allowed) -> Result<void> {
    for (const auto& [k, v] : r.params) {
      if (std::none_of(allowed.begin(), allowed.end(), [&](const char* a) { return k == a; })) {
        return fail(Errc::invalid_argument, kWhere, what, "unknown parameter \"" + k + "\"");
      }
    }
    return {};
  };
  if (r.action == "authorize" || r.action == "deauthorize") {
    if (auto ok = only_params({"interface"}); !ok) return std::unexpected(ok.error());
    return act_authorize(r, port, r.action == "authorize");
  }
  if (r.action == "authorize_default") {
    if (auto ok = only_params({"value"}); !ok) return std::unexpected(ok.error());
    return act_authorize_default(r, port);
  }
  if (r.action == "control_transfer") {
    if (auto ok = only_params({"request_type", "request", "value", "index", "length"}); !ok) {
      return std::unexpected(ok.error());
    }
  } else {
    if (auto ok = only_params({"endpoint", "interface", "length"}); !ok) {
      return std::unexpected(ok.error());
    }
  }
  if (authorized != "1") {
    return fail(Errc::failed_precondition, kWhere, what,
                "the device is deauthorized; authorize it first");
  }
  return act_transfer(r, port, vendor, product);
}

Result<ActionResult> UsbDriver::act_authorize(const ActionRequest& r, const std::string& port,
                                              bool on) {
  ActionResult res;
  const char* v = on ? "1" : "0";
  if (auto it = r.params.find("interface"); it != r.params.end()) {
    if (!SysfsUsbTree::is_interface_suffix(it->second)) {
      return fail(Errc::invalid_argument, kWhere, r.action + " on " + r.device_id,
                  "interface \"" + it->second + "\" is not <configuration>.<interface>, e.g. 1.0");
    }
    if (auto ok = tree_.write_interface_authorized(port, it->second, on); !ok) {
      return std::unexpected(ok.error());
    }
    res.values = {{"interface", it->second}, {"authorized", v}};
  } else {
    if (auto ok = tree_.write_authorized(port, on); !ok) return std::unexpected(ok.error());
    res.values = {{"authorized", v}};
  }
  request_refresh(port);
  return res;
}

Result<ActionResult> UsbDriver::act_authorize_default(const ActionRequest& r,
                                                      const std::string& port) {
  auto it = r.params.find("value");
  if (it == r.params.end() || (it->second != "0" && it->second != "1")) {
    return fail(Errc::invalid_argument, kWhere, r.action + " on " + r.device_id,
                "parameter value must be \"0\" or \"1\"");
  }
  if (auto ok = tree_.write_authorized_default(port, it->second == "1"); !ok) {
    return std::unexpected(ok.error());
  }
  request_refresh(port);
  ActionResult res;
  res.values = {{"authorized_default", it->second}};
  return res;
}

Result<ActionResult> UsbDriver::act_transfer(const ActionRequest& r, const std::string& port,
                                             const std::string& vendor,
                                             const std::string& product) {
  const std::string what = r.action + " on " + r.device_id;
  auto t = parse_usb_transfer(r, what);
  if (!t) return std::unexpected(t.error());
  auto busnum_s = tree_.read_attribute(port, "busnum");
  if (!busnum_s) return fail(Errc::unavailable, kWhere, what, busnum_s.error().message());
  auto devnum_s = tree_.read_attribute(port, "devnum");
  if (!devnum_s) return fail(Errc::unavailable, kWhere, what, devnum_s.error().message());
  const auto busnum = parse_usb_number(*busnum_s, 255);
  const auto devnum = parse_usb_number(*devnum_s, 255);
  const auto vid = parse_usb_number("0x" + vendor, 0xffff);
  const auto pid = parse_usb_number("0x" + product, 0xffff);
  if (!busnum || !devnum || !vid || !pid) {
    return fail(Errc::unavailable, kWhere, what,
                "sysfs busnum/devnum/ids \"" + escape_for_message(*busnum_s) + "\"/\"" +
                    escape_for_message(*devnum_s) + "\"/" + escape_for_message(vendor) + ":" +
                    escape_for_message(product) + " are not numbers");
  }
  return run_usb_transfer(*usb_, static_cast<int>(*busnum), static_cast<int>(*devnum),
                          static_cast<std::uint16_t>(*vid), static_cast<std::uint16_t>(*pid), *t,
                          what);
}

// ---------------------------------------------------------------------------
// Self-test

std::vector<SelfTestResult> UsbDriver::self_test() {
  std::vector<SelfTestResult> results;
  std::lock_guard lock(mu_);
  for (const PinState& p : pins_) {
    SelfTestResult t;
    t.device_id = p.pin.id;
    if (p.present_port.empty()) {
      t.identity_ok = false;
      t.detail = "not connected";
      if (!p.last_port.empty()) {
        t.detail += " (expected on port " + p.last_port + ")";
        if (auto it = by_port_.find(p.last_port); it != by_port_.end()) {
          t.detail += "; that port holds another device, " + describe(it->second.dev) +
                      ", identity " + it->second.identity;
        }
      }
      results.push_back(std::move(t));
      continue;
    }
    auto dev = tree_.read_device(p.present_port);
    if (!dev) {
      t.identity_ok = false;
      t.detail = "its sysfs node is gone or unreadable: " + dev.error().message();
      results.push_back(std::move(t));
      continue;
    }
    t.present = true;
    t.responding = dev->authorized == "1";
    const Entry fresh = make_entry(std::move(*dev));
    t.identity_ok = fresh.identity == p.pin.identity;
    std::vector<std::string> notes;
    if (!t.responding) {
      notes.push_back("deauthorized (sysfs authorized = " + fresh.dev.authorized + ")");
    }
    if (!t.identity_ok) {
      notes.push_back("identity is now " +
                      (fresh.identity.empty() ? fresh.identity_error : fresh.identity) +
                      ", pinned " + p.pin.identity);
    }
    t.detail = "on port " + p.present_port;
    for (const auto& n : notes) t.detail += "; " + n;
    results.push_back(std::move(t));
  }
  return results;
}

}  // namespace portier::drivers::usb
