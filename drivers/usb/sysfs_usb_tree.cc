#include "usb/sysfs_usb_tree.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <system_error>
#include <utility>

#include "common/file_read.h"
#include "usb/usb_descriptor_parser.h"

namespace portier::drivers::usb {
namespace {

constexpr std::size_t kMaxAttribute = 4096;

std::string errno_text(int e) { return std::error_code(e, std::generic_category()).message(); }

bool digits(std::string_view s) {
  return !s.empty() && s.size() <= 9 &&
         std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// "1-1.2.4": bus-port(.port)*
bool port_path(std::string_view s) {
  const std::size_t dash = s.find('-');
  if (dash == std::string_view::npos || !digits(s.substr(0, dash))) return false;
  std::string_view rest = s.substr(dash + 1);
  for (;;) {
    const std::size_t dot = rest.find('.');
    if (!digits(rest.substr(0, dot))) return false;
    if (dot == std::string_view::npos) return true;
    rest = rest.substr(dot + 1);
  }
}

// Reads a whole file of at most `max` bytes. 0 or an errno value.
int read_whole(const std::string& path, std::size_t max, std::string& out) {
  return read_small_file(path, out, ReadOptions{max, /*follow_symlinks=*/false});
}

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r')) s.pop_back();
  return s;
}

int depth(const std::string& name) {
  if (name.rfind("usb", 0) == 0) return 0;
  return 1 + static_cast<int>(std::count(name.begin(), name.end(), '.'));
}

}  // namespace

SysfsUsbTree::SysfsUsbTree(std::string sysfs_root) : root_(std::move(sysfs_root)) {}

bool SysfsUsbTree::is_device_name(std::string_view n) {
  if (n.rfind("usb", 0) == 0) return digits(n.substr(3));
  return port_path(n);
}

bool SysfsUsbTree::is_interface_suffix(std::string_view s) {
  const std::size_t dot = s.find('.');
  return dot != std::string_view::npos && digits(s.substr(0, dot)) && digits(s.substr(dot + 1));
}

bool SysfsUsbTree::is_interface_name(std::string_view n) {
  const std::size_t colon = n.find(':');
  if (colon == std::string_view::npos) return false;
  return port_path(n.substr(0, colon)) && is_interface_suffix(n.substr(colon + 1));
}

std::string SysfsUsbTree::devices_dir() const { return root_ + "/bus/usb/devices"; }

Result<std::vector<std::string>> SysfsUsbTree::list_devices() const {
  const std::string dir = devices_dir();
  DIR* d = ::opendir(dir.c_str());
  if (!d) {
    const int e = errno;
    return fail(e == ENOENT ? Errc::not_found : Errc::io, "usb sysfs", dir, errno_text(e));
  }
  std::vector<std::string> names;
  while (dirent* ent = ::readdir(d)) {
    if (is_device_name(ent->d_name)) names.emplace_back(ent->d_name);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end(), [](const std::string& a, const std::string& b) {
    const int da = depth(a), db = depth(b);
    return da != db ? da < db : a < b;
  });
  return names;
}

Result<std::string> SysfsUsbTree::read_attribute(const std::string& name,
                                                 const std::string& attr) const {
  if (!is_device_name(name)) {
    return fail(Errc::invalid_argument, "usb sysfs", "device \"" + name + "\"",
                "not a USB device name");
  }
  const std::string path = devices_dir() + "/" + name + "/" + attr;
  std::string v;
  if (const int e = read_whole(path, kMaxAttribute, v); e != 0) {
    return fail(e == ENOENT ? Errc::not_found : Errc::io, "usb sysfs", path, errno_text(e));
  }
  return trimmed(std::move(v));
}

Result<SysfsUsbDevice> SysfsUsbTree::read_device(const std::string& name) const {
  if (!is_device_name(name)) {
    return fail(Errc::invalid_argument, "usb sysfs", "device \"" + name + "\"",
                "not a USB device name");
  }
  SysfsUsbDevice dev;
  dev.name = name;
  dev.path = devices_dir() + "/" + name;
  dev.root_hub = name.rfind("usb", 0) == 0;
  struct stat st {};
  if (::stat(dev.path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return fail(Errc::not_found, "usb sysfs", dev.path, "no such device");
  }

  struct Field {
    const char* file;
    std::string* out;
    bool required;
  };
  const Field fields[] = {
      {"idVendor", &dev.vendor, true},
      {"idProduct", &dev.product, true},
      {"bcdDevice", &dev.bcd_device, true},
      {"bDeviceClass", &dev.device_class, true},
      {"bDeviceSubClass", &dev.device_subclass, false},
      {"bDeviceProtocol", &dev.device_protocol, false},
      {"manufacturer", &dev.manufacturer, false},
      {"product", &dev.product_name, false},
      {"serial", &dev.serial, false},
      {"authorized", &dev.authorized, true},
      {"busnum", &dev.busnum, false},
      {"devnum", &dev.devnum, false},
  };
  for (const Field& f : fields) {
    const std::string path = dev.path + "/" + f.file;
    std::string v;
    const int e = read_whole(path, kMaxAttribute, v);
    if (e == 0) {
      *f.out = trimmed(std::move(v));
    } else if (f.required || e != ENOENT) {
      return fail(e == ENOENT ? Errc::not_found : Errc::io, "usb sysfs", path, errno_text(e));
    }
  }
  {
    std::string v;
    const int e = read_whole(dev.path + "/authorized_default", kMaxAttribute, v);
    if (e == 0) {
      dev.has_authorized_default = true;
      dev.authorized_default = trimmed(std::move(v));
    }
  }
  if (const int e = read_whole(dev.path + "/descriptors", kMaxDescriptorBlob + 1, dev.descriptors);
      e != 0) {
    dev.descriptors.clear();
    dev.descriptors_error = "cannot read descriptors: " + errno_text(e);
  }

  if (DIR* d = ::opendir(dev.path.c_str())) {
    while (dirent* ent = ::readdir(d)) {
      const std::string_view n = ent->d_name;
      if (!is_interface_name(n)) continue;
      SysfsUsbInterface i;
      i.name = std::string(n);
      i.config_and_number = i.name.substr(i.name.find(':') + 1);
      std::string v;
      if (read_whole(dev.path + "/" + i.name + "/bInterfaceClass", kMaxAttribute, v) == 0) {
        i.interface_class = trimmed(std::move(v));
      }
      if (read_whole(dev.path + "/" + i.name + "/authorized", kMaxAttribute, v) == 0) {
        i.authorized = trimmed(std::move(v));
      }
      dev.interfaces.push_back(std::move(i));
    }
    ::closedir(d);
  }
  std::sort(dev.interfaces.begin(), dev.interfaces.end(),
            [](const auto& a, const auto& b) { return a.name < b.name; });
  return dev;
}

Result<void> SysfsUsbTree::write_file(const std::string& path, std::string_view value,
                                      const std::string& what) const {
  // No O_CREAT: a missing attribute means the kernel does not offer it.
  const int fd = ::open(path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    const int e = errno;
    return fail(e == ENOENT                   ? Errc::not_found
                : (e == EACCES || e == EPERM) ? Errc::permission_denied
                                              : Errc::io,
                "usb sysfs", what, "cannot open " + path + ": " + errno_text(e));
  }
  ssize_t n;
  do {
    n = ::write(fd, value.data(), value.size());
  } while (n < 0 && errno == EINTR);
  const int e = n < 0 ? errno : 0;
  ::close(fd);
  if (n < 0) {
    return fail((e == EACCES || e == EPERM) ? Errc::permission_denied : Errc::io, "usb sysfs", what,
                "cannot write " + path + ": " + errno_text(e));
  }
  if (static_cast<std::size_t>(n) != value.size()) {
    return fail(Errc::io, "usb sysfs", what, "short write to " + path);
  }
  return {};
}

Result<void> SysfsUsbTree::write_authorized(const std::string& name, bool on) const {
  if (!is_device_name(name)) {
    return fail(Errc::invalid_argument, "usb sysfs", "device \"" + name + "\"",
                "not a USB device name");
  }
  return write_file(devices_dir() + "/" + name + "/authorized", on ? "1" : "0",
                    std::string(on ? "authorize " : "deauthorize ") + name);
}

Result<void> SysfsUsbTree::write_interface_authorized(const std::string& name,
                                                      const std::string& suffix, bool on) const {
  if (!is_device_name(name)) {
    return fail(Errc::invalid_argument, "usb sysfs", "device \"" + name + "\"",
                "not a USB device name");
  }
  if (!is_interface_suffix(suffix)) {
    return fail(Errc::invalid_argument, "usb sysfs", "interface \"" + suffix + "\"",
                "expected <configuration>.<interface>, e.g. 1.0");
  }
  const std::string dir = devices_dir() + "/" + name;
  std::string found;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* ent = ::readdir(d)) {
      const std::string_view n = ent->d_name;
      if (is_interface_name(n) && n.substr(n.find(':') + 1) == suffix) found = std::string(n);
    }
    ::closedir(d);
  } else {
    return fail(Errc::not_found, "usb sysfs", dir, errno_text(errno));
  }
  const std::string what =
      std::string(on ? "authorize " : "deauthorize ") + name + " interface " + suffix;
  if (found.empty()) {
    return fail(Errc::not_found, "usb sysfs", what,
                "no such interface (a deauthorized device has none)");
  }
  return write_file(dir + "/" + found + "/authorized", on ? "1" : "0", what);
}

Result<void> SysfsUsbTree::write_authorized_default(const std::string& name, bool on) const {
  if (!is_device_name(name)) {
    return fail(Errc::invalid_argument, "usb sysfs", "device \"" + name + "\"",
                "not a USB device name");
  }
  return write_file(devices_dir() + "/" + name + "/authorized_default", on ? "1" : "0",
                    "authorized_default of " + name);
}

}  // namespace portier::drivers::usb
