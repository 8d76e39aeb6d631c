// Configuration of the USB devices-and-ports driver (UsbDriver). Checked by
// UsbDriver::validate(); the daemon's TOML loader fills it.
#pragma once

#include <string>
#include <vector>

namespace portier::drivers::usb {

struct UsbConfig {
  // Where sysfs is mounted; the driver reads <sysfs_root>/bus/usb/devices.
  // Tests point it at a fixture tree.
  std::string sysfs_root = "/sys";
  // "netlink": kernel uevents on NETLINK_KOBJECT_UEVENT, group 1 (messages
  // from any other sender are ignored). Otherwise an absolute path where the
  // driver binds a unix datagram socket (mode 0600) and takes every datagram
  // as a kernel uevent: for tests only, there is no sender check.
  std::string uevent_source = "netlink";
  // Devices that are not pinned get the id "<id_prefix>-<sysfs name>",
  // e.g. "usb-1-1.2". [a-z0-9_] and '-', not empty.
  std::string id_prefix = "usb";

  // A device this terminal must have: when a device with `identity` (see
  // usb_identity.h) is present it is reported as `id`. Removing it, or
  // putting another device on its port, raises an alarm (REQ-3, REQ-4).
  struct Pin {
    std::string id;        // e.g. "scanner0"; must not start with "<id_prefix>-"
    std::string identity;  // 64 lowercase hex digits
    // The sysfs port name where it is expected ("1-1"); optional. The port
    // where it was last seen replaces it at run time. With a port, a
    // different device there is a substitution even if the pinned one was
    // never seen since start.
    std::string port;
  };
  std::vector<Pin> pinned;
  // Identities (64 lowercase hex digits) that are not pinned but allowed
  // when block_unknown is set (a keyboard for maintenance, ...).
  std::vector<std::string> allowed;
  // Deauthorize (sysfs authorized = 0) every device that is neither pinned,
  // nor allowed, nor a hub (see allow_hubs), nor a root hub, as soon as it
  // is seen, and raise "device_refused". Substitutes and duplicates of a
  // pinned device are deauthorized too.
  bool block_unknown = false;
  // Whether block_unknown lets hubs (bDeviceClass 09) through; the devices
  // behind a hub are checked on their own. Root hubs are never deauthorized
  // by block_unknown.
  bool allow_hubs = true;
};

}  // namespace portier::drivers::usb
