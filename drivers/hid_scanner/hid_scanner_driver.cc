#include "hid_scanner/hid_scanner_driver.h"

#include <fcntl.h>
#include <linux/hidraw.h>
#include <linux/input.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <system_error>
#include <utility>

namespace portier::drivers {
namespace {

constexpr std::size_t kMaxFrameLimit = 1 << 20;
constexpr std::size_t kInputEventSize = sizeof(struct input_event);

std::string errno_text(int e) { return std::error_code(e, std::generic_category()).message(); }

bool is_absent_errno(int e) {
  return e == ENOENT || e == ENXIO || e == ENODEV || e == EIO || e == ENOTDIR;
}

std::string where(const HidScannerConfig& c) { return "hid_scanner " + c.id; }

std::optional<TextEncoding> encoding_from_name(std::string_view name) {
  if (name == "auto") return TextEncoding::automatic;
  if (name == "utf-8") return TextEncoding::utf8;
  if (name == "gb18030") return TextEncoding::gb18030;
  return std::nullopt;
}

std::string hex4(std::uint16_t v) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string s(4, '0');
  for (int i = 3; i >= 0; --i, v = static_cast<std::uint16_t>(v >> 4)) s[i] = kDigits[v & 0xf];
  return s;
}

struct UsbIdentity {
  std::uint16_t vendor = 0;
  std::uint16_t product = 0;
};

// The USB ids of a hidraw or evdev node; nullopt (errno set) when the node
// does not answer the ioctl, i.e. is not such a device.
std::optional<UsbIdentity> read_identity(int fd, bool keyboard) {
  if (keyboard) {
    input_id id{};
    if (::ioctl(fd, EVIOCGID, &id) != 0) return std::nullopt;
    return UsbIdentity{id.vendor, id.product};
  }
  hidraw_devinfo info{};
  if (::ioctl(fd, HIDIOCGRAWINFO, &info) != 0) return std::nullopt;
  return UsbIdentity{static_cast<std::uint16_t>(info.vendor),
                     static_cast<std::uint16_t>(info.product)};
}

// Empty when the identity matches what the config pins (or nothing is
// pinned); otherwise why not.
std::string identity_mismatch(const HidScannerConfig& c, const UsbIdentity& id) {
  const bool vendor_bad = c.vendor && *c.vendor != id.vendor;
  const bool product_bad = c.product && *c.product != id.product;
  if (!vendor_bad && !product_bad) return {};
  std::string pinned = "vendor " + hex4(c.vendor.value_or(0));
  if (c.product) pinned += " product " + hex4(*c.product);
  return "identity mismatch: pinned " + pinned + ", device is " + hex4(id.vendor) + ":" +
         hex4(id.product);
}

bool pinned(const HidScannerConfig& c) { return c.vendor.has_value() || c.product.has_value(); }

}  // namespace

HidScannerDriver::HidScannerDriver(HidScannerConfig config)
    : config_(std::move(config)),
      keyboard_(config_.mode == "keyboard"),
      assembler_(std::min(config_.max_frame, kMaxFrameLimit)),
      keys_(keyboard_layout_from_name(config_.layout).value_or(KeyboardLayout::us),
            std::min(config_.max_frame, kMaxFrameLimit)),
      // Keyboard mode types UTF-8 by construction (the layout tables).
      decoder_with_aim_(DecoderOptions{
          "", true,
          keyboard_ ? TextEncoding::utf8
                    : encoding_from_name(config_.encoding).value_or(TextEncoding::automatic)}),
      decoder_plain_(DecoderOptions{
          "", false,
          keyboard_ ? TextEncoding::utf8
                    : encoding_from_name(config_.encoding).value_or(TextEncoding::automatic)}) {}

HidScannerDriver::~HidScannerDriver() { stop(); }

Result<void> HidScannerDriver::validate(const HidScannerConfig& c) {
  const std::string w = where(c);
  if (c.id.empty()) return fail(Errc::invalid_argument, w, "id", "must not be empty");
  if (c.path.empty()) return fail(Errc::invalid_argument, w, "path", "must not be empty");
  if (c.mode != "hidpos" && c.mode != "keyboard") {
    return fail(Errc::invalid_argument, w, "mode \"" + c.mode + "\"",
                "must be \"hidpos\" or \"keyboard\"");
  }
  if (!keyboard_layout_from_name(c.layout)) {
    return fail(Errc::invalid_argument, w, "layout \"" + c.layout + "\"",
                "must be \"us\", \"de\" or \"fr\"");
  }
  if (!encoding_from_name(c.encoding)) {
    return fail(Errc::invalid_argument, w, "encoding \"" + c.encoding + "\"",
                "must be \"auto\", \"utf-8\" or \"gb18030\"");
  }
  if (c.mode == "keyboard" && c.encoding == "gb18030") {
    return fail(Errc::invalid_argument, w, "encoding \"gb18030\"",
                "a keyboard-wedge scanner types characters of its layout, never GB 18030 bytes; "
                "use mode = \"hidpos\" for GB 18030 codes");
  }
  if (c.max_frame == 0 || c.max_frame > kMaxFrameLimit) {
    return fail(Errc::invalid_argument, w, "max_frame " + std::to_string(c.max_frame),
                "must be between 1 and " + std::to_string(kMaxFrameLimit));
  }
  if (c.reopen_min_ms <= 0 || c.reopen_max_ms < c.reopen_min_ms) {
    return fail(Errc::invalid_argument, w,
                "reopen_min_ms " + std::to_string(c.reopen_min_ms) + ", reopen_max_ms " +
                    std::to_string(c.reopen_max_ms),
                "need 0 < reopen_min_ms <= reopen_max_ms");
  }
  if (c.product && !c.vendor) {
    return fail(Errc::invalid_argument, w, "product", "pinning a product needs a vendor");
  }
  return {};
}

DeviceInfo HidScannerDriver::info() const {
  DeviceInfo d;
  d.id = config_.id;
  d.device_class = "scanner";
  d.driver = "hid_scanner";
  d.capabilities = {"events"};
  d.attributes = {{"path", config_.path},
                  {"mode", config_.mode},
                  {"encoding", keyboard_ ? std::string("utf-8") : config_.encoding},
                  {"aim", config_.aim ? "true" : "false"}};
  if (keyboard_) {
    d.attributes["layout"] = config_.layout;
    d.attributes["grab"] = config_.grab ? "true" : "false";
  }
  if (config_.vendor) d.attributes["vendor"] = hex4(*config_.vendor);
  if (config_.product) d.attributes["product"] = hex4(*config_.product);
  return d;
}

Result<void> HidScannerDriver::start(DriverSink& sink) {
  if (started_) {
    return fail(Errc::failed_precondition, where(config_), "start", "already started");
  }
  if (auto ok = validate(config_); !ok) return ok;
  sink_ = &sink;
  reported_.reset();
  assembler_.reset();
  keys_.reset();
  pending_.clear();
  sink.device_added(info());
  OpenOutcome o = open_device();
  fd_ = o.fd;
  packets_ = o.packets;
  report(o.fd >= 0 ? DeviceState::ready : o.state, o.reason);
  if (auto r = node_.start(node_loop(), where(config_)); !r) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    sink.device_removed(config_.id);
    return r;
  }
  started_ = true;
  return {};
}

void HidScannerDriver::stop() {
  if (!started_) return;
  node_.stop();
  if (fd_ >= 0) ::close(fd_);  // also releases the EVIOCGRAB grab
  fd_ = -1;
  started_ = false;
  sink_->device_removed(config_.id);
}

Result<std::size_t> HidScannerDriver::write(const std::string& device_id, std::string_view) {
  if (device_id != config_.id) {
    return fail(Errc::not_found, where(config_), "write to " + device_id, "no such device");
  }
  return fail(Errc::failed_precondition, where(config_), "write",
              "HID scanners are input-only here (capabilities: events)");
}

HidScannerDriver::OpenOutcome HidScannerDriver::open_device() const {
  OpenOutcome o;
  const int fd = ::open(config_.path.c_str(), O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    const int e = errno;
    o.state = is_absent_errno(e) ? DeviceState::disconnected : DeviceState::error;
    o.reason = "cannot open " + config_.path + ": " + errno_text(e);
    return o;
  }
  auto give_up = [&](DeviceState state, std::string reason) {
    ::close(fd);
    o.state = state;
    o.reason = std::move(reason);
    return o;
  };
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int e = errno;
    return give_up(DeviceState::error, "cannot stat " + config_.path + ": " + errno_text(e));
  }
  const bool device = S_ISCHR(st.st_mode);
  if (!device && !S_ISFIFO(st.st_mode) && !S_ISREG(st.st_mode)) {
    return give_up(DeviceState::error,
                   config_.path + " is neither a device node nor a FIFO or file");
  }
  if (device) {
    // The node must be what the mode reads; the same ioctl yields the ids.
    auto id = read_identity(fd, keyboard_);
    if (!id) {
      const int e = errno;
      return give_up(DeviceState::error,
                     config_.path + " is not " +
                         (keyboard_ ? "an evdev input device" : "a hidraw device") + ": " +
                         errno_text(e));
    }
    if (std::string why = identity_mismatch(config_, *id); !why.empty()) {
      return give_up(DeviceState::error, config_.path + ": " + why);
    }
  } else if (pinned(config_)) {
    return give_up(DeviceState::error,
                   "cannot verify the pinned identity of " + config_.path + ": not a device node");
  }
  if (keyboard_ && config_.grab) {
    if (::ioctl(fd, EVIOCGRAB, 1) != 0) {
      const int e = errno;
      return give_up(DeviceState::error,
                     "cannot grab " + config_.path + ": " + errno_text(e) +
                         " (without an exclusive grab the scanned keystrokes would also reach "
                         "other apps; grab = false only for test FIFOs)");
    }
  }
  o.fd = fd;
  o.packets = device && !keyboard_;
  return o;
}

void HidScannerDriver::report(DeviceState state, const std::string& reason) {
  if (reported_ == state) return;
  reported_ = state;
  sink_->device_state(config_.id, state, reason);
}

void HidScannerDriver::emit_scan(const std::string& aim, const std::string& data, bool aim_known) {
  ScanData scan;
  if (keyboard_) {
    // The AIM id, when the scanner sends one, was typed before the data.
    scan = config_.aim ? decoder_with_aim_.decode(data) : decoder_plain_.decode(data);
  } else if (config_.aim && aim_known && !aim.empty()) {
    // hidpos carries the AIM id out of band; the payload itself is never
    // searched for one, so data starting with "]" stays intact.
    scan = decoder_with_aim_.decode(aim + data);
  } else {
    scan = decoder_plain_.decode(data);
  }
  sink_->device_event(config_.id, DeviceEvent{std::move(scan)});
}

void HidScannerDriver::process_unit(std::string_view unit) {
  if (keyboard_) {
    input_event ev{};
    std::memcpy(&ev, unit.data(), std::min(unit.size(), sizeof ev));
    WedgeItem item = keys_.feed(ev.type, ev.code, ev.value);
    if (item.kind == WedgeItem::Kind::frame) {
      emit_scan({}, item.text, false);
    } else if (item.kind == WedgeItem::Kind::fault) {
      sink_->device_event(config_.id,
                          DeviceEvent{FaultData{std::move(item.code), std::move(item.reason)}});
    }
    return;
  }
  HidPosItem item = assembler_.feed(unit);
  if (item.kind == HidPosItem::Kind::scan) {
    emit_scan(item.aim, item.data, true);
  } else if (item.kind == HidPosItem::Kind::fault) {
    sink_->device_event(config_.id,
                        DeviceEvent{FaultData{std::move(item.code), std::move(item.reason)}});
  }
}

void HidScannerDriver::process_stream(std::string_view bytes) {
  const std::size_t unit = keyboard_ ? kInputEventSize : kHidPosReportSize;
  if (!pending_.empty()) {
    const std::size_t take = std::min(unit - pending_.size(), bytes.size());
    pending_.append(bytes.substr(0, take));
    bytes.remove_prefix(take);
    if (pending_.size() < unit) return;
    process_unit(pending_);
    pending_.clear();
  }
  while (bytes.size() >= unit) {
    process_unit(bytes.substr(0, unit));
    bytes.remove_prefix(unit);
  }
  pending_.assign(bytes);
}

void HidScannerDriver::disconnect(const std::string& reason) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  // A partial scan from before the unplug is not a scan.
  assembler_.reset();
  keys_.reset();
  pending_.clear();
  report(DeviceState::disconnected, reason);
}

DeviceNodeLoop HidScannerDriver::node_loop() {
  DeviceNodeLoop loop;
  loop.fd = fd_;
  loop.reopen_min_ms = config_.reopen_min_ms;
  loop.reopen_max_ms = config_.reopen_max_ms;
  loop.open = [this] {
    OpenOutcome o = open_device();
    if (o.fd < 0) {
      report(o.state, o.reason);
      return -1;
    }
    fd_ = o.fd;
    packets_ = o.packets;
    assembler_.reset();
    keys_.reset();
    pending_.clear();
    report(DeviceState::ready, "");
    return o.fd;
  };
  loop.read = [this](std::string& reason) {
    return read_node(
        fd_,
        [this](std::string_view bytes) {
          if (packets_) {
            process_unit(bytes);  // hidraw: exactly one report per read
          } else {
            process_stream(bytes);
          }
        },
        reason);
  };
  loop.lost = [this](const std::string& reason) { disconnect(reason); };
  return loop;
}

std::vector<SelfTestResult> HidScannerDriver::self_test() {
  SelfTestResult r;
  r.device_id = config_.id;
  const int fd = ::open(config_.path.c_str(), O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    r.detail = "cannot open " + config_.path + ": " + errno_text(errno);
    return {r};
  }
  r.present = true;
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    r.detail = "cannot stat " + config_.path + ": " + errno_text(errno);
  } else if (S_ISCHR(st.st_mode)) {
    if (auto id = read_identity(fd, keyboard_)) {
      r.responding = true;
      const std::string why = identity_mismatch(config_, *id);
      r.identity_ok = why.empty();
      r.detail = why.empty() ? std::string(keyboard_ ? "evdev" : "hidraw") + " device " +
                                   hex4(id->vendor) + ":" + hex4(id->product)
                             : why;
    } else {
      r.detail = config_.path + " does not answer " +
                 (keyboard_ ? "EVIOCGID (not an evdev device)" : "HIDIOCGRAWINFO (not hidraw)") +
                 ": " + errno_text(errno);
      r.identity_ok = !pinned(config_);
    }
  } else if (S_ISFIFO(st.st_mode) || S_ISREG(st.st_mode)) {
    r.responding = true;  // opened for reading: a test stream
    r.identity_ok = !pinned(config_);
    r.detail = r.identity_ok
                   ? "readable test " + std::string(S_ISFIFO(st.st_mode) ? "FIFO" : "file")
                   : "cannot verify the pinned identity of a FIFO or file";
  } else {
    r.detail = config_.path + " is neither a device node nor a FIFO or file";
  }
  ::close(fd);
  return {r};
}

}  // namespace portier::drivers
