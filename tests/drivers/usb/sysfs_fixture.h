// A fixture sysfs tree for the USB driver, its descriptor blobs, and
// "kernel" uevents sent over a unix datagram socket. The kernel USB stack is
// not reachable on a test machine (often there is no /sys/bus/usb at all):
// the driver reads this tree, which mimics /sys/bus/usb/devices (symlinks
// into /sys/devices/...), and reads uevents from the socket. Free of gtest:
// the USB tests and hotplug_bench share it.
#pragma once

#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace portier::drivers::usb::testing {

namespace fs = std::filesystem;

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
  // In a temp dir of its own, removed with the tree.
  FixtureTree() : owned_(true) {
    std::string tmpl = (fs::temp_directory_path() / "portier-usb-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) {
      throw std::runtime_error(std::string("mkdtemp: ") + std::strerror(errno));
    }
    dir_ = tmpl;
    init();
  }
  // In `dir` (the caller's; left in place).
  explicit FixtureTree(fs::path dir) : dir_(std::move(dir)) { init(); }
  ~FixtureTree() {
    std::error_code ec;
    if (owned_) fs::remove_all(dir_, ec);
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

  void init() {
    fs::create_directories(sysfs() / "bus/usb/devices");
    fs::create_directories(sysfs() / "devices/pci0000:00/0000:00:14.0");
  }

  fs::path dir_;
  bool owned_ = false;
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
                                 const std::string& busnum = "1", const std::string& devnum = "9",
                                 std::uint64_t seqnum = 4242) {
  return make_uevent(
      action, FixtureTree::devpath(name),
      {{"DEVTYPE", "usb_device"},
       {"BUSNUM", std::string(3 - std::min<std::size_t>(3, busnum.size()), '0') + busnum},
       {"DEVNUM", std::string(3 - std::min<std::size_t>(3, devnum.size()), '0') + devnum}},
      "usb", seqnum);
}

// An unbound datagram socket that sends to `path`, as the kernel would.
class UeventSender {
 public:
  explicit UeventSender(std::string path) : path_(std::move(path)) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  }
  ~UeventSender() {
    if (fd_ >= 0) ::close(fd_);
  }
  UeventSender(const UeventSender&) = delete;
  UeventSender& operator=(const UeventSender&) = delete;

  // "" when sent, else why not.
  std::string send(const std::string& datagram) const {
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    path_.copy(sa.sun_path, sizeof sa.sun_path - 1);
    const ssize_t n = ::sendto(fd_, datagram.data(), datagram.size(), 0,
                               reinterpret_cast<sockaddr*>(&sa), sizeof sa);
    if (n == static_cast<ssize_t>(datagram.size())) return {};
    return "sendto " + path_ + ": " + std::strerror(errno);
  }

 private:
  std::string path_;
  int fd_ = -1;
};

}  // namespace portier::drivers::usb::testing
