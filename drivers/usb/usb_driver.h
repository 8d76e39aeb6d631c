// Driver for the terminal's USB devices and ports: lists every USB device
// (not interfaces) found in sysfs, follows hotplug through kernel uevents,
// switches devices, interfaces and root-hub defaults on and off through
// sysfs `authorized` (REQ-1), watches pinned devices for removal and
// substitution (REQ-3, REQ-4), refuses unknown devices when asked (REQ-30),
// and runs control/bulk transfers through libusb-1.0 on claimed devices.
//
// Threads and callbacks (what the gateway must know):
//  - start() reports every present device (device_added, then device_state
//    when it is not authorized, then any alarm) on the caller's thread,
//    before it returns.
//  - Afterwards every callback comes from the driver's own thread, one at a
//    time, never while the driver holds its own lock: hotplug, and the
//    device_state that follows an authorize/deauthorize done by act().
//    Callbacks must not block for long: meanwhile no uevent is read, and the
//    kernel drops uevents when the socket buffer is full (the driver then
//    rescans sysfs, see below).
//  - stop() joins the thread, then calls device_removed() for every device
//    on the caller's thread (no alarms: stopping is not a removal).
//  - act(), write(), self_test() may be called from any thread, concurrently
//    with the driver thread; not concurrently with start() or stop().
//
// Devices: class "usb", driver "usb", capabilities {"events"} (alarms are
// events). Id: the pin's id when the identity matches a pin, else
// "<id_prefix>-<sysfs name>". Attributes: vendor, product (ids, "0c2e"),
// bcd_device, device_class ("00"), manufacturer, product_name, serial,
// interface_classes ("03,07"), identity (usb_identity.h), port (sysfs name,
// "1-1.2"), busnum, devnum, authorized ("1"/"0"); hubs also hub = "1" and,
// where the kernel has it (root hubs), authorized_default; pinned = "1" on a
// pinned device; descriptor_error = reason when sysfs `descriptors` is
// unreadable or malformed (interface_classes then comes from the interface
// directories present at that moment).
// A device that is not authorized is reported as DeviceState::disconnected
// (reason says so) right after device_added; authorizing it makes it ready.
//
// Actions (DeviceInfo::actions, ActionRequest.params):
//  - "authorize", "deauthorize" (op "authorize", no claim): write the
//    device's `authorized`; with param interface = "1.0" that interface's
//    instead. Result values: authorized = "1"/"0" (and interface).
//  - "authorize_default" (op "authorize", no claim), on devices that have
//    `authorized_default` (root hubs): param value = "1"/"0".
//  - "control_transfer" (op "write", claim), not on root hubs: params
//    request_type, request, value, index (decimal or 0x hex), length (IN
//    only: bytes to read, at most 4096); `data` is the OUT payload (at most
//    4096 bytes). Direction from bit 7 of request_type. Result: data (IN),
//    values transferred.
//  - "bulk_transfer" (op "write", claim), not on hubs: params endpoint
//    ("0x81" IN, "0x02" OUT), interface (optional: claimed for the
//    transfer), length (IN: at most 1 MiB); `data` the OUT payload (at most
//    1 MiB). Result as above.
//  Transfers (usb_transfer.h, through a UsbBackend: libusb-1.0) open the
//  device by busnum/devnum read from sysfs at that moment, check its
//  vendor/product (a different device there gets nothing), claim the
//  interface when asked, never detach a kernel driver, and close it
//  afterwards. Timeout: request.timeout (1 ms .. 60 s). libusb
//  errors -> Errc::unavailable with libusb_error_name.
//  Errors: not_found (unknown id), failed_precondition (action not offered
//  for this device, driver not started, transfer to a deauthorized device),
//  invalid_argument (params), permission_denied/io (sysfs write).
//
// Pins (REQ-3/REQ-4): a device whose identity matches a pin that is not
// already present gets the pin's id, and its port is remembered. A pinned
// device removed -> AlarmData "device_removed" on its id, then
// device_removed. A device appearing on the port where an absent pinned
// device was last seen (or was configured), with another identity ->
// device_added, then AlarmData "device_substituted" on the newcomer's id
// (details pinned_id, expected_identity, actual_identity, port, vendor,
// product, serial, action); deauthorized first when block_unknown. A second
// device with the identity of a pinned device that is present -> AlarmData
// "device_duplicate" on the newcomer. With block_unknown, a device that is
// neither pinned, allowed, a hub (allow_hubs) nor a root hub is deauthorized
// before it is reported and raises AlarmData "device_refused" with its
// identity, ids, strings and port (REQ-30). Alarms are always sent on a
// device id the sink knows (after device_added, before device_removed).
//
// Uevents: add -> read sysfs, report; remove -> report; change, bind,
// unbind, move, online, offline -> refresh (authorized; a different devnum
// means a re-enumerated device: removed and added again); usb_interface
// events refresh the parent's interface list. Other subsystems are ignored.
// With "netlink", messages not sent by the kernel (port id != 0, not group
// 1, udev's "libudev" format) are ignored, as are malformed ones; see
// counters(). When the kernel reports lost uevents (ENOBUFS) the driver
// rescans sysfs and reports the differences.
//
// The driver never logs; everything reaches only the sink.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "driver.h"
#include "usb/sysfs_usb_tree.h"
#include "usb/usb_backend.h"
#include "usb/usb_config.h"

namespace portier::drivers::usb {

class UsbDriver final : public Driver {
 public:
  // `usb`: how transfers reach devices (when null, start() loads libusb and
  // uses libusb_backend(); tests pass a double, see usb_backend.h).
  explicit UsbDriver(UsbConfig config, std::unique_ptr<UsbBackend> usb = nullptr);
  ~UsbDriver() override;  // stops if running
  UsbDriver(const UsbDriver&) = delete;
  UsbDriver& operator=(const UsbDriver&) = delete;

  // Checks a config without touching sysfs; usable by config loaders.
  static Result<void> validate(const UsbConfig& config);

  std::string_view name() const override { return "usb"; }
  // Errors: invalid_argument (config), failed_precondition (already
  // started), unavailable/io (uevent socket, eventfd, thread, unreadable
  // <sysfs_root>/bus/usb/devices), not_found (libusb-1.0.so.0 cannot be
  // loaded). A missing <sysfs_root>/bus/usb/devices is not an error: no USB.
  Result<void> start(DriverSink& sink) override;
  // Returns promptly; idempotent.
  void stop() override;
  // USB devices take data only through the transfer actions:
  // not_found (unknown id) or failed_precondition.
  Result<std::size_t> write(const std::string& device_id, std::string_view data) override;
  Result<ActionResult> act(const ActionRequest& request) override;
  // One result per pin: present (seen and its sysfs node is there),
  // responding (sysfs readable and authorized = 1), identity_ok (the
  // identity recomputed now matches the pin; false when absent).
  std::vector<SelfTestResult> self_test() override;

  // What the uevent reader did, for diagnostics and tests.
  struct Counters {
    std::uint64_t handled = 0;   // valid kernel uevents of subsystem usb
    std::uint64_t ignored = 0;   // valid, but another subsystem or kind
    std::uint64_t rejected = 0;  // not from the kernel, malformed, truncated
    std::uint64_t rescans = 0;   // full sysfs rescans after lost uevents
    std::string last_rejection;  // reason of the latest rejection
  };
  Counters counters() const;

 private:
  struct Entry {
    SysfsUsbDevice dev;
    std::string id;
    std::string identity;  // "" when it could not be computed
    std::string identity_error;
    std::string interface_classes;
    std::string descriptor_error;
    int pin = -1;  // index into pins_ when pinned
    std::optional<DeviceState> reported;
  };
  struct PinState {
    UsbConfig::Pin pin;
    std::string last_port;     // where it was last seen (or configured)
    std::string present_port;  // where it is now; "" when absent
  };
  class Reports;

  Result<void> open_uevent_socket();
  void run();
  void read_uevents();
  void handle_datagram(std::string_view bytes);

  // All *_locked run with mu_ held and queue callbacks into `out`.
  void add_locked(const std::string& name, Reports& out);
  void remove_locked(const std::string& name, Reports& out);
  void refresh_locked(const std::string& name, Reports& out);
  void rescan_locked(Reports& out);
  void locate_pins_locked(const std::vector<std::string>& new_ports);
  Entry make_entry(SysfsUsbDevice dev) const;
  DeviceInfo info_of(const Entry& e) const;
  void report_state_locked(Entry& e, Reports& out);
  std::string deauthorize_locked(Entry& e);
  bool known_locked(const Entry& e) const;
  void flush(Reports& out);

  Result<ActionResult> act_authorize(const ActionRequest& r, const std::string& port, bool on);
  Result<ActionResult> act_authorize_default(const ActionRequest& r, const std::string& port);
  Result<ActionResult> act_transfer(const ActionRequest& r, const std::string& port,
                                    const std::string& vendor, const std::string& product);
  void request_refresh(const std::string& port);

  const UsbConfig config_;
  const SysfsUsbTree tree_;

  DriverSink* sink_ = nullptr;
  std::thread thread_;
  int stop_fd_ = -1;    // eventfd: stop() was called
  int wake_fd_ = -1;    // eventfd: refresh_queue_ has work
  int uevent_fd_ = -1;  // netlink or unix datagram socket
  bool netlink_ = false;
  bool socket_bound_ = false;  // we created config_.uevent_source: unlink it
  std::atomic<bool> started_{false};

  mutable std::mutex mu_;                 // guards everything below
  std::map<std::string, Entry> by_port_;  // sysfs name -> device
  std::vector<PinState> pins_;
  std::vector<std::string> refresh_queue_;
  Counters counters_;

  std::unique_ptr<UsbBackend> usb_;
  std::string usb_init_error_;
};

}  // namespace portier::drivers::usb
