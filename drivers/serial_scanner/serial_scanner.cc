#include "serial_scanner/serial_scanner.h"

#include <fcntl.h>
#include <poll.h>
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
constexpr auto kWriteTimeout = std::chrono::seconds(1);

std::optional<speed_t> baud_to_speed(int baud) {
  switch (baud) {
    case 50:
      return B50;
    case 75:
      return B75;
    case 110:
      return B110;
    case 134:
      return B134;
    case 150:
      return B150;
    case 200:
      return B200;
    case 300:
      return B300;
    case 600:
      return B600;
    case 1200:
      return B1200;
    case 1800:
      return B1800;
    case 2400:
      return B2400;
    case 4800:
      return B4800;
    case 9600:
      return B9600;
    case 19200:
      return B19200;
    case 38400:
      return B38400;
    case 57600:
      return B57600;
    case 115200:
      return B115200;
    case 230400:
      return B230400;
    case 460800:
      return B460800;
    case 500000:
      return B500000;
    case 576000:
      return B576000;
    case 921600:
      return B921600;
    case 1000000:
      return B1000000;
    case 1152000:
      return B1152000;
    case 1500000:
      return B1500000;
    case 2000000:
      return B2000000;
    case 2500000:
      return B2500000;
    case 3000000:
      return B3000000;
    case 3500000:
      return B3500000;
    case 4000000:
      return B4000000;
    default:
      return std::nullopt;
  }
}

std::string_view suffix_name(FrameSuffix s) {
  switch (s) {
    case FrameSuffix::cr:
      return "CR";
    case FrameSuffix::lf:
      return "LF";
    case FrameSuffix::crlf:
      return "CRLF";
  }
  return "?";
}

std::string_view encoding_name(TextEncoding e) {
  switch (e) {
    case TextEncoding::automatic:
      return "auto";
    case TextEncoding::utf8:
      return "utf-8";
    case TextEncoding::gb18030:
      return "gb18030";
  }
  return "?";
}

std::string errno_text(int e) { return std::error_code(e, std::generic_category()).message(); }

bool is_absent_errno(int e) {
  return e == ENOENT || e == ENXIO || e == ENODEV || e == EIO || e == ENOTDIR;
}

std::string where(const SerialScannerConfig& c) { return "serial_scanner " + c.id; }

}  // namespace

SerialScanner::SerialScanner(SerialScannerConfig config)
    : config_(std::move(config)),
      speed_(baud_to_speed(config_.baud).value_or(B9600)),
      framer_(config_.suffix, std::min(config_.max_frame, kMaxFrameLimit) + config_.prefix.size()),
      decoder_(DecoderOptions{config_.prefix, config_.aim, config_.encoding}) {}

SerialScanner::~SerialScanner() { stop(); }

Result<void> SerialScanner::validate(const SerialScannerConfig& c) {
  const std::string w = where(c);
  if (c.id.empty()) return fail(Errc::invalid_argument, w, "id", "must not be empty");
  if (c.path.empty()) return fail(Errc::invalid_argument, w, "path", "must not be empty");
  if (!baud_to_speed(c.baud)) {
    return fail(Errc::invalid_argument, w, "baud " + std::to_string(c.baud),
                "not a standard rate (e.g. 9600, 19200, 38400, 57600, 115200)");
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
  return {};
}

DeviceInfo SerialScanner::info() const {
  DeviceInfo d;
  d.id = config_.id;
  d.device_class = "scanner";
  d.driver = "serial_scanner";
  d.capabilities = {"events", "write"};
  d.attributes = {{"path", config_.path},
                  {"baud", std::to_string(config_.baud)},
                  {"suffix", std::string(suffix_name(config_.suffix))},
                  {"encoding", std::string(encoding_name(config_.encoding))}};
  return d;
}

Result<void> SerialScanner::start(DriverSink& sink) {
  if (started_) {
    return fail(Errc::failed_precondition, where(config_), "start", "already started");
  }
  if (auto ok = validate(config_); !ok) return ok;
  sink_ = &sink;
  reported_.reset();
  framer_.reset();
  sink.device_added(info());
  OpenOutcome o = open_device();
  if (o.fd >= 0) {
    std::lock_guard lock(fd_mu_);
    fd_ = o.fd;
  }
  report(o.fd >= 0 ? DeviceState::ready : o.state, o.reason);
  if (auto r = node_.start(node_loop(), where(config_)); !r) {
    close_node();
    sink.device_removed(config_.id);
    return r;
  }
  started_ = true;
  return {};
}

void SerialScanner::stop() {
  if (!started_) return;
  node_.stop();
  close_node();
  started_ = false;
  sink_->device_removed(config_.id);
}

void SerialScanner::close_node() {
  std::lock_guard lock(fd_mu_);
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

SerialScanner::OpenOutcome SerialScanner::open_device() const {
  OpenOutcome o;
  const int fd = ::open(config_.path.c_str(), O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    const int e = errno;
    o.state = is_absent_errno(e) ? DeviceState::disconnected : DeviceState::error;
    o.reason = "cannot open " + config_.path + ": " + errno_text(e);
    return o;
  }
  auto give_up = [&](std::string what) {
    const int e = errno;
    ::close(fd);
    o.state = is_absent_errno(e) ? DeviceState::disconnected : DeviceState::error;
    o.reason = what + " " + config_.path + ": " + errno_text(e);
    return o;
  };
  termios t{};
  if (::tcgetattr(fd, &t) != 0) return give_up("cannot read terminal settings of");
  // Raw 8N1: no line discipline processing at all (ICRNL/INLCR/IGNCR off, so
  // CR and LF arrive as sent; no echo, no signals, no flow control).
  ::cfmakeraw(&t);
  t.c_iflag &= ~static_cast<tcflag_t>(IXON | IXOFF | IXANY | INPCK | ISTRIP);
  t.c_iflag |= IGNBRK;
  t.c_cflag &= ~static_cast<tcflag_t>(CSIZE | CSTOPB | PARENB | CRTSCTS);
  t.c_cflag |= CS8 | CLOCAL | CREAD;
  t.c_cc[VMIN] = 1;
  t.c_cc[VTIME] = 0;
  if (::cfsetispeed(&t, speed_) != 0 || ::cfsetospeed(&t, speed_) != 0) {
    return give_up("cannot set baud rate of");
  }
  if (::tcsetattr(fd, TCSANOW, &t) != 0) return give_up("cannot configure");
  ::tcflush(fd, TCIOFLUSH);  // drop whatever arrived before raw mode
  o.fd = fd;
  return o;
}

void SerialScanner::report(DeviceState state, const std::string& reason) {
  if (reported_ == state) return;
  reported_ = state;
  sink_->device_state(config_.id, state, reason);
}

void SerialScanner::process(std::string_view bytes) {
  for (FramerItem& item : framer_.feed(bytes)) {
    if (auto* frame = std::get_if<std::string>(&item)) {
      sink_->device_event(config_.id, DeviceEvent{decoder_.decode(*frame)});
    } else {
      sink_->device_event(config_.id, DeviceEvent{std::move(std::get<FaultData>(item))});
    }
  }
}

void SerialScanner::disconnect(const std::string& reason) {
  {
    std::lock_guard lock(fd_mu_);
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  framer_.reset();  // a partial frame from before the unplug is not a frame
  report(DeviceState::disconnected, reason);
}

DeviceNodeLoop SerialScanner::node_loop() {
  DeviceNodeLoop loop;
  {
    std::lock_guard lock(fd_mu_);
    loop.fd = fd_;
  }
  loop.reopen_min_ms = config_.reopen_min_ms;
  loop.reopen_max_ms = config_.reopen_max_ms;
  loop.open = [this] {
    OpenOutcome o = open_device();
    if (o.fd < 0) {
      report(o.state, o.reason);
      return -1;
    }
    {
      std::lock_guard lock(fd_mu_);
      fd_ = o.fd;
    }
    framer_.reset();
    report(DeviceState::ready, "");
    return o.fd;
  };
  loop.read = [this](std::string& reason) {
    return read_node(
        fd_, [this](std::string_view bytes) { process(bytes); }, reason);
  };
  loop.lost = [this](const std::string& reason) { disconnect(reason); };
  return loop;
}

Result<std::size_t> SerialScanner::write(const std::string& device_id, std::string_view data) {
  if (device_id != config_.id) {
    return fail(Errc::not_found, where(config_), "write to " + device_id, "no such device");
  }
  int fd = -1;
  {
    std::lock_guard lock(fd_mu_);
    if (fd_ < 0) {
      return fail(Errc::unavailable, where(config_), "write",
                  started_ ? "device is disconnected" : "driver is not running");
    }
    // A private duplicate: the driver thread may close fd_ meanwhile.
    fd = ::fcntl(fd_, F_DUPFD_CLOEXEC, 0);
  }
  if (fd < 0) return fail(Errc::io, where(config_), "write", "dup: " + errno_text(errno));

  using clock = std::chrono::steady_clock;
  const auto deadline = clock::now() + kWriteTimeout;
  std::size_t done = 0;
  std::optional<Error> error;
  while (done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n > 0) {
      done += static_cast<std::size_t>(n);
      continue;
    }
    const int e = n < 0 ? errno : EAGAIN;
    if (e == EINTR) continue;
    if (e != EAGAIN && e != EWOULDBLOCK) {
      error = Error{is_absent_errno(e) ? Errc::unavailable : Errc::io, where(config_), "write",
                    errno_text(e)};
      break;
    }
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now()).count();
    if (left <= 0) break;
    pollfd p{fd, POLLOUT, 0};
    const int r = ::poll(&p, 1, static_cast<int>(left));
    if (r < 0 && errno != EINTR) {
      error = Error{Errc::io, where(config_), "write", "poll: " + errno_text(errno)};
      break;
    }
    if (r > 0 && (p.revents & (POLLHUP | POLLERR | POLLNVAL)) && !(p.revents & POLLOUT)) {
      error = Error{Errc::unavailable, where(config_), "write", "device hung up"};
      break;
    }
  }
  ::close(fd);
  if (done > 0 || data.empty()) return done;
  if (error) return std::unexpected(std::move(*error));
  return fail(Errc::unavailable, where(config_), "write", "device did not accept data within 1 s");
}

}  // namespace portier::drivers
