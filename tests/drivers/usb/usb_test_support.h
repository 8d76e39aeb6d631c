// Test support for the USB driver: a sink that records alarms too, a fixture
// sysfs tree in a temp dir, descriptor blobs, and a uevent injector.
//
// The kernel USB stack is not reachable on a test machine (often there is no
// /sys/bus/usb at all): the driver reads a fixture tree that mimics
// /sys/bus/usb/devices (symlinks into /sys/devices/...), and reads "kernel"
// uevents from a unix datagram socket the test writes to.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "driver.h"

namespace portier::drivers::usb::testing {

namespace fs = std::filesystem;
constexpr auto kDeadline = std::chrono::seconds(10);

struct Alarm {
  std::string device_id;
  AlarmData data;
};

struct Recorded {
  std::vector<DeviceInfo> added;
  std::vector<std::string> removed;
  std::vector<std::tuple<std::string, DeviceState, std::string>> states;
  std::vector<Alarm> alarms;
  std::vector<std::string> log;  // "added id", "removed id", "state id ready", "alarm id code"

  const DeviceInfo* last_added(const std::string& id) const {
    for (auto it = added.rbegin(); it != added.rend(); ++it) {
      if (it->id == id) return &*it;
    }
    return nullptr;
  }
  std::size_t count_log(const std::string& line) const {
    return static_cast<std::size_t>(std::count(log.begin(), log.end(), line));
  }
};

class UsbSink : public DriverSink {
 public:
  void device_added(const DeviceInfo& info) override {
    update([&](Recorded& r) {
      r.added.push_back(info);
      r.log.push_back("added " + info.id);
    });
  }
  void device_removed(const std::string& id) override {
    update([&](Recorded& r) {
      r.removed.push_back(id);
      r.log.push_back("removed " + id);
    });
  }
  void device_state(const std::string& id, DeviceState s, const std::string& reason) override {
    update([&](Recorded& r) {
      r.states.emplace_back(id, s, reason);
      r.log.push_back("state " + id +
                      (s == DeviceState::ready          ? " ready"
                       : s == DeviceState::disconnected ? " disconnected"
                                                        : " error"));
    });
  }
  void device_event(const std::string& id, DeviceEvent ev) override {
    update([&](Recorded& r) {
      if (auto* a = std::get_if<AlarmData>(&ev.payload)) {
        r.log.push_back("alarm " + id + " " + a->code);
        r.alarms.push_back({id, *a});
      } else {
        r.log.push_back("other-event " + id);
      }
    });
  }

  template <class Pred>
  bool wait(Pred pred, std::chrono::milliseconds timeout = kDeadline) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return pred(rec_); });
  }
  bool wait_log(const std::string& line, std::size_t n = 1) {
    return wait([&](const Recorded& r) { return r.count_log(line) >= n; });
  }
  Recorded snapshot() const {
    std::lock_guard lock(mu_);
    return rec_;
  }

 private:
  template <class F>
  void update(F f) {
    {
      std::lock_guard lock(mu_);
      f(rec_);
    }
    cv_.notify_all();
  }
  mutable std::mutex mu_;
  std::condition_variable cv_;
  Recorded rec_;
};

// Polls `pred` until it holds or the deadline passes (for state the sink
// does not see, like the driver's counters).
template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout = kDeadline) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

struct FixtureDevice {
  std::string name = "1-1";
  std::string vendor = "0c2e";
  std::string product = "0b61";
  std::string bcd_device = "0100";
  std::string device_class = "00";
  std::string device_subclass = "00";
  std::string device_protocol = "00";
  std::string manufacturer = "Honeywell";
  std::string product_name = "Hand-held scanner";
  std::string serial = "18263B0042";
  std::vector<std::uint8_t> interfaces = {0x03};  // bInterfaceClass of 1.0, 1.1, ...
  std::string busnum = "1";
  std::string devnum = "5";
  std::string authorized = "1";
  bool authorized_default = false;  // root hubs: write authorized_default = 1
  bool write_descriptors = true;
  bool has_descriptors_override = false;
  std::string descriptors_override;
};

inline std::uint16_t hex16(const std::string& s) {
  return static_cast<std::uint16_t>(std::stoul(s, nullptr, 16));
}

// Device descriptor + one configuration with one interface per class (HID
// interfaces with a HID descriptor), each with an interrupt/bulk IN endpoint.
inline std::string descriptors_for(const FixtureDevice& d) {
  std::string b;
  auto u8 = [&](unsigned v) { b.push_back(static_cast<char>(v & 0xff)); };
  auto u16 = [&](unsigned v) {
    u8(v);
    u8(v >> 8);
  };
  u8(18), u8(1), u16(0x0200), u8(hex16(d.device_class)), u8(hex16(d.device_subclass)),
      u8(hex16(d.device_protocol)), u8(64), u16(hex16(d.vendor)), u16(hex16(d.product)),
      u16(hex16(d.bcd_device)), u8(1), u8(2), u8(3), u8(1);
  std::string cfg;
  auto c8 = [&](unsigned v) { cfg.push_back(static_cast<char>(v & 0xff)); };
  for (std::size_t i = 0; i < d.interfaces.size(); ++i) {
    const unsigned cls = d.interfaces[i];
    c8(9), c8(4), c8(static_cast<unsigned>(i)), c8(0), c8(1), c8(cls), c8(cls == 3 ? 1 : 0),
        c8(cls == 3 ? 1 : 0), c8(0);
    if (cls == 3) c8(9), c8(0x21), c8(0x11), c8(0x01), c8(0), c8(1), c8(0x22), c8(63), c8(0);
    c8(7), c8(5), c8(0x81 + static_cast<unsigned>(i)), c8(cls == 3 ? 3 : 2), c8(64), c8(0),
        c8(cls == 3 ? 10 : 0);
  }
  const unsigned total = 9 + static_cast<unsigned>(cfg.size());
  u8(9), u8(2), u16(total), u8(static_cast<unsigned>(d.interfaces.size())), u8(1), u8(0), u8(0x80),
      u8(50);
  return b + cfg;
}

// A sysfs tree: <root>/devices/pci0000:00/0000:00:14.0/usbN/... and
// <root>/bus/usb/devices/<name> symlinks, as the kernel lays it out.
class FixtureTree {
 public:
  FixtureTree() {
    std::string tmpl = (fs::temp_directory_path() / "portier-usb-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) {
      ADD_FAILURE() << "mkdtemp: " << std::strerror(errno);
      return;
    }
    dir_ = tmpl;
    fs::create_directories(sysfs() / "bus/usb/devices");
    fs::create_directories(sysfs() / "devices/pci0000:00/0000:00:14.0");
  }
  ~FixtureTree() {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  FixtureTree(const FixtureTree&) = delete;
  FixtureTree& operator=(const FixtureTree&) = delete;

  fs::path dir() const { return dir_; }
  fs::path sysfs() const { return dir_ / "sys"; }
  std::string socket_path() const { return (dir_ / "uevent.sock").string(); }

  static FixtureDevice root_hub(int bus = 1) {
    FixtureDevice d;
    d.name = "usb" + std::to_string(bus);
    d.vendor = "1d6b";
    d.product = "0002";
    d.bcd_device = "0601";
    d.device_class = "09";
    d.device_protocol = "01";
    d.manufacturer = "Linux 6.1.0 xhci-hcd";
    d.product_name = "xHCI Host Controller";
    d.serial = "0000:00:14.0";
    d.interfaces = {0x09};
    d.busnum = std::to_string(bus);
    d.devnum = "1";
    d.authorized_default = true;
    return d;
  }
  static FixtureDevice scanner(const std::string& name = "1-1") {
    FixtureDevice d;
    d.name = name;
    d.interfaces = {0x03, 0x0a};
    return d;
  }
  static FixtureDevice card_reader(const std::string& name = "1-2") {
    FixtureDevice d;
    d.name = name;
    d.vendor = "072f";
    d.product = "2200";
    d.bcd_device = "0214";
    d.manufacturer = "ACS";
    d.product_name = "ACR122U PICC Interface";
    d.serial = "";
    d.interfaces = {0x0b};
    d.devnum = "6";
    return d;
  }

  // "/devices/pci0000:00/0000:00:14.0/usb1/1-1/1-1.2" (a uevent's DEVPATH).
  static std::string devpath(const std::string& name) {
    const std::string base = "/devices/pci0000:00/0000:00:14.0";
    if (name.rfind("usb", 0) == 0) return base + "/" + name;
    const std::string bus = name.substr(0, name.find('-'));
    std::string path = base + "/usb" + bus;
    // Each ancestor port: "1-1", "1-1.2", ...
    const std::string ports = name.substr(name.find('-') + 1);
    std::string cur = bus + "-";
    std::size_t pos = 0;
    for (;;) {
      const std::size_t dot = ports.find('.', pos);
      cur += ports.substr(pos, dot == std::string::npos ? std::string::npos : dot - pos);
      path += "/" + cur;
      if (dot == std::string::npos) break;
      cur += ".";
      pos = dot + 1;
    }
    return path;
  }
  static std::string interface_name(const std::string& device, std::size_t i) {
    const std::string prefix = device.rfind("usb", 0) == 0 ? device.substr(3) + "-0" : device;
    return prefix + ":1." + std::to_string(i);
  }

  fs::path device_dir(const std::string& name) const { return sysfs() / devpath(name).substr(1); }

  void add(const FixtureDevice& d) {
    const fs::path p = device_dir(d.name);
    fs::create_directories(p);
    write(p / "idVendor", d.vendor + "\n");
    write(p / "idProduct", d.product + "\n");
    write(p / "bcdDevice", d.bcd_device + "\n");
    write(p / "bDeviceClass", d.device_class + "\n");
    write(p / "bDeviceSubClass", d.device_subclass + "\n");
    write(p / "bDeviceProtocol", d.device_protocol + "\n");
    if (!d.manufacturer.empty()) write(p / "manufacturer", d.manufacturer + "\n");
    if (!d.product_name.empty()) write(p / "product", d.product_name + "\n");
    if (!d.serial.empty()) write(p / "serial", d.serial + "\n");
    write(p / "authorized", d.authorized + "\n");
    write(p / "busnum", d.busnum + "\n");
    write(p / "devnum", d.devnum + "\n");
    if (d.authorized_default) write(p / "authorized_default", "1\n");
    if (d.has_descriptors_override) {
      write(p / "descriptors", d.descriptors_override);
    } else if (d.write_descriptors) {
      write(p / "descriptors", descriptors_for(d));
    }
    for (std::size_t i = 0; i < d.interfaces.size(); ++i) {
      const std::string iname = interface_name(d.name, i);
      const fs::path ip = p / iname;
      fs::create_directories(ip);
      char cls[8];
      std::snprintf(cls, sizeof cls, "%02x\n", d.interfaces[i]);
      write(ip / "bInterfaceClass", cls);
      write(ip / "authorized", "1\n");
      link(iname, ip);
    }
    link(d.name, p);
  }

  void remove(const std::string& name) {
    const fs::path p = device_dir(name);
    for (const auto& ent : fs::directory_iterator(p)) {
      const std::string n = ent.path().filename().string();
      if (n.find(':') != std::string::npos) fs::remove(sysfs() / "bus/usb/devices" / n);
    }
    fs::remove(sysfs() / "bus/usb/devices" / name);
    fs::remove_all(p);
  }

  std::string read(const std::string& name, const std::string& file) const {
    std::ifstream in(device_dir(name) / file, std::ios::binary);
    std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    while (!s.empty() && s.back() == '\n') s.pop_back();
    return s;
  }
  void set(const std::string& name, const std::string& file, const std::string& value) {
    write(device_dir(name) / file, value + "\n");
  }

 private:
  static void write(const fs::path& p, const std::string& data) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out << data;
  }
  void link(const std::string& name, const fs::path& target) {
    const fs::path l = sysfs() / "bus/usb/devices" / name;
    std::error_code ec;
    fs::remove(l, ec);
    fs::create_directory_symlink(fs::relative(target, l.parent_path()), l);
  }

  fs::path dir_;
};

// "add@/devices/...\0ACTION=add\0DEVPATH=...\0SUBSYSTEM=usb\0SEQNUM=n\0..."
inline std::string make_uevent(const std::string& action, const std::string& devpath,
                               std::map<std::string, std::string> extra = {},
                               const std::string& subsystem = "usb", std::uint64_t seqnum = 4242) {
  std::string s = action + "@" + devpath;
  s.push_back('\0');
  auto field = [&](const std::string& k, const std::string& v) {
    s += k + "=" + v;
    s.push_back('\0');
  };
  field("ACTION", action);
  field("DEVPATH", devpath);
  field("SUBSYSTEM", subsystem);
  for (const auto& [k, v] : extra) field(k, v);
  field("SEQNUM", std::to_string(seqnum));
  return s;
}

inline std::string device_uevent(const std::string& action, const std::string& name,
                                 const std::string& busnum = "1", const std::string& devnum = "9") {
  return make_uevent(
      action, FixtureTree::devpath(name),
      {{"DEVTYPE", "usb_device"},
       {"BUSNUM", std::string(3 - std::min<std::size_t>(3, busnum.size()), '0') + busnum},
       {"DEVNUM", std::string(3 - std::min<std::size_t>(3, devnum.size()), '0') + devnum}});
}

// Sends datagrams to the driver's test socket, as the kernel would.
class UeventInjector {
 public:
  explicit UeventInjector(std::string path) : path_(std::move(path)) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  }
  ~UeventInjector() {
    if (fd_ >= 0) ::close(fd_);
  }
  UeventInjector(const UeventInjector&) = delete;
  UeventInjector& operator=(const UeventInjector&) = delete;

  ::testing::AssertionResult send(const std::string& datagram) {
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    path_.copy(sa.sun_path, sizeof sa.sun_path - 1);
    const ssize_t n = ::sendto(fd_, datagram.data(), datagram.size(), 0,
                               reinterpret_cast<sockaddr*>(&sa), sizeof sa);
    if (n != static_cast<ssize_t>(datagram.size())) {
      return ::testing::AssertionFailure() << "sendto " << path_ << ": " << std::strerror(errno);
    }
    return ::testing::AssertionSuccess();
  }

 private:
  std::string path_;
  int fd_ = -1;
};

}  // namespace portier::drivers::usb::testing
