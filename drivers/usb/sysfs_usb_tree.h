// Reads and writes the USB part of sysfs under a root ("/sys", or a fixture
// tree in tests): <root>/bus/usb/devices/ holds one entry per device
// ("usb1" root hub, "1-1", "1-1.2") and per interface ("1-1:1.0"); a
// device's interfaces are also subdirectories of the device's directory.
//
// Names are checked against the kernel's grammar before they become paths,
// so nothing from a uevent or a request can reach outside the tree. No
// state, no threads: safe to use from any thread.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace portier::drivers::usb {

struct SysfsUsbInterface {
  std::string name;               // "1-1:1.0"
  std::string config_and_number;  // "1.0" (after the ':')
  std::string interface_class;    // bInterfaceClass, "03"
  std::string authorized;         // "1", "0", "" when the file is absent
};

struct SysfsUsbDevice {
  std::string name;  // "1-1", "usb1"
  std::string path;  // <root>/bus/usb/devices/<name>
  bool root_hub = false;
  std::string vendor;   // idVendor, "0c2e"
  std::string product;  // idProduct
  std::string bcd_device;
  std::string device_class;  // bDeviceClass, "00", "09" for hubs
  std::string device_subclass;
  std::string device_protocol;
  std::string manufacturer;  // strings: "" when the file is absent
  std::string product_name;  // sysfs "product"
  std::string serial;
  std::string authorized;          // "1" / "0"
  std::string authorized_default;  // root hubs only; "" when absent
  bool has_authorized_default = false;
  std::string busnum;
  std::string devnum;
  std::string descriptors;                    // raw bytes of `descriptors`
  std::string descriptors_error;              // when `descriptors` could not be read
  std::vector<SysfsUsbInterface> interfaces;  // sorted by name

  bool hub() const { return device_class == "09"; }
};

class SysfsUsbTree {
 public:
  explicit SysfsUsbTree(std::string sysfs_root);

  // "usb1" or "1-1", "1-1.2.4": the kernel's usb_device names.
  static bool is_device_name(std::string_view name);
  // "1-1:1.0", "1-0:1.0" (root hub usb1's interface).
  static bool is_interface_name(std::string_view name);
  // "1.0": configuration value and interface number.
  static bool is_interface_suffix(std::string_view s);

  std::string devices_dir() const;  // <root>/bus/usb/devices

  // Device names (no interfaces), root hubs first, then parents before their
  // children. not_found when the directory does not exist (no USB here).
  Result<std::vector<std::string>> list_devices() const;
  // not_found when the device is gone; io when a required attribute
  // (idVendor, idProduct, authorized, ...) cannot be read.
  Result<SysfsUsbDevice> read_device(const std::string& name) const;
  // Reads one attribute of a device (trimmed of the trailing newline).
  Result<std::string> read_attribute(const std::string& name, const std::string& attr) const;

  // Writes "1" or "0" to the device's `authorized` (the kernel binds or
  // unbinds its drivers; 0 on a hub disconnects everything behind it).
  Result<void> write_authorized(const std::string& name, bool on) const;
  // The same for one interface: `suffix` "1.0" names <name>'s interface
  // "<prefix>:1.0".
  Result<void> write_interface_authorized(const std::string& name, const std::string& suffix,
                                          bool on) const;
  // Writes "0" or "1" to a root hub's `authorized_default`: whether devices
  // plugged in later are authorized by the kernel.
  Result<void> write_authorized_default(const std::string& name, bool on) const;

 private:
  Result<void> write_file(const std::string& path, std::string_view value,
                          const std::string& what) const;
  std::string root_;
};

}  // namespace portier::drivers::usb
