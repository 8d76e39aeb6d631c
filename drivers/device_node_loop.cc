#include "device_node_loop.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <system_error>

namespace portier::drivers {

NodeRead read_node(int fd, const std::function<void(std::string_view)>& on_bytes,
                   std::string& reason) {
  constexpr int kReadsPerWakeup = 16;
  char buf[4096];
  NodeRead outcome = NodeRead::no_data;
  for (int i = 0; i < kReadsPerWakeup; ++i) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) {
      outcome = NodeRead::data;
      on_bytes(std::string_view(buf, static_cast<std::size_t>(n)));
      continue;
    }
    if (n == 0) {
      reason = "device hung up (end of file)";
      return NodeRead::gone;
    }
    const int e = errno;
    if (e == EINTR) continue;
    if (e == EAGAIN || e == EWOULDBLOCK) break;
    reason = "read failed: " + std::error_code(e, std::generic_category()).message();
    return NodeRead::gone;
  }
  return outcome;
}

bool wait_for_stop(int stop_fd, int timeout_ms) {
  using clock = std::chrono::steady_clock;
  const auto deadline = clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now()).count();
    pollfd p{stop_fd, POLLIN, 0};
    const int n = ::poll(&p, 1, static_cast<int>(std::max<long long>(left, 0)));
    if (n > 0) return true;
    if (n == 0) return false;
    if (errno != EINTR) return false;
  }
}

void run_device_node_loop(const DeviceNodeLoop& l) {
  using clock = std::chrono::steady_clock;
  int backoff_ms = l.reopen_min_ms;
  const auto stable_after = std::chrono::milliseconds(l.reopen_max_ms);
  auto connected_since = clock::now();
  int fd = l.fd;
  auto grow = [&] { backoff_ms = std::min(backoff_ms * 2, l.reopen_max_ms); };
  auto lost = [&](const std::string& reason) {
    l.lost(reason);
    fd = -1;
    if (clock::now() - connected_since >= stable_after) {
      backoff_ms = l.reopen_min_ms;
    } else {
      grow();
    }
  };
  for (;;) {
    if (fd < 0) {
      if (wait_for_stop(l.stop_fd, backoff_ms)) return;
      fd = l.open();
      if (fd >= 0) {
        connected_since = clock::now();
      } else {
        grow();
      }
      continue;
    }
    pollfd fds[2] = {{fd, POLLIN, 0}, {l.stop_fd, POLLIN, 0}};
    const int n = ::poll(fds, 2, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      lost("poll failed: " + std::error_code(errno, std::generic_category()).message());
      continue;
    }
    if (fds[1].revents != 0) return;
    const short ev = fds[0].revents;
    std::string reason;
    NodeRead r = NodeRead::no_data;
    if (ev & POLLIN) r = l.read(reason);
    if (r == NodeRead::gone) {
      lost(reason);
    } else if ((ev & (POLLHUP | POLLERR | POLLNVAL)) && r != NodeRead::data) {
      lost((ev & POLLHUP) ? "device hung up" : "device error");
    }
  }
}

Result<void> DeviceNodeThread::start(DeviceNodeLoop loop, const std::string& where) {
  if (thread_.joinable()) return fail(Errc::failed_precondition, where, "start", "already running");
  stop_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (stop_fd_ < 0) {
    return fail(Errc::io, where, "eventfd",
                std::error_code(errno, std::generic_category()).message());
  }
  loop.stop_fd = stop_fd_;
  try {
    thread_ = std::thread([loop = std::move(loop)] { run_device_node_loop(loop); });
  } catch (const std::system_error& e) {
    ::close(stop_fd_);
    stop_fd_ = -1;
    return fail(Errc::internal, where, "driver thread", e.what());
  }
  return {};
}

void DeviceNodeThread::stop() {
  if (stop_fd_ < 0) return;
  const std::uint64_t one = 1;
  while (::write(stop_fd_, &one, sizeof one) < 0 && errno == EINTR) {
  }
  if (thread_.joinable()) thread_.join();
  ::close(stop_fd_);
  stop_fd_ = -1;
}

}  // namespace portier::drivers
