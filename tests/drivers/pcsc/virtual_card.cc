#include "drivers/pcsc/virtual_card.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <utility>

namespace portier::drivers::pcsc_testing {
namespace {

// Reads exactly `n` bytes unless the peer hangs up or `stop_fd` fires.
bool read_exact(int fd, int stop_fd, std::string& out, std::size_t n) {
  out.assign(n, '\0');
  std::size_t done = 0;
  while (done < n) {
    pollfd p[2] = {{fd, POLLIN, 0}, {stop_fd, POLLIN, 0}};
    const int r = ::poll(p, 2, -1);
    if (r < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    if (p[1].revents != 0) return false;
    // vpcd sends the length and the body with two send()s and without
    // TCP_NODELAY: Nagle holds the body back until the length is ACKed,
    // and a delayed ACK takes 40 ms. ACK at once (the flag does not stick,
    // so before every read) or each APDU costs ~44 ms.
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
    const ssize_t got = ::read(fd, out.data() + done, n - done);
    if (got > 0) {
      done += static_cast<std::size_t>(got);
      continue;
    }
    if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    return false;
  }
  return true;
}

bool write_all(int fd, const std::string& data) {
  std::size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL);
    if (n > 0) {
      done += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    return false;
  }
  return true;
}

bool send_message(int fd, const std::string& body) {
  std::string frame;
  frame.push_back(static_cast<char>((body.size() >> 8) & 0xFF));
  frame.push_back(static_cast<char>(body.size() & 0xFF));
  frame += body;
  return write_all(fd, frame);
}

}  // namespace

VirtualCard::VirtualCard(int port, std::string atr, std::string uid)
    : port_(port), atr_(std::move(atr)), uid_(std::move(uid)) {}

VirtualCard::~VirtualCard() { remove(); }

std::string VirtualCard::insert() {
  if (thread_.joinable()) return "card already inserted";
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) return std::string("socket: ") + std::strerror(errno);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<std::uint16_t>(port_));
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    const int e = errno;
    ::close(fd_);
    fd_ = -1;
    return "connect to vpcd port " + std::to_string(port_) + ": " + std::strerror(e);
  }
  const int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  stop_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  {
    std::lock_guard lock(mu_);
    hung_up_ = false;
    stuck_ = false;
  }
  thread_ = std::thread([this] { serve(); });
  return "";
}

void VirtualCard::remove() {
  if (!thread_.joinable()) return;
  const std::uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(stop_fd_, &one, sizeof one);
  thread_.join();
  ::close(stop_fd_);
  stop_fd_ = -1;
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

std::size_t VirtualCard::apdus() const {
  std::lock_guard lock(mu_);
  return apdus_;
}

std::size_t VirtualCard::resets() const {
  std::lock_guard lock(mu_);
  return resets_;
}

bool VirtualCard::wait_stuck(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return stuck_; });
}

bool VirtualCard::wait_hung_up(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return hung_up_; });
}

void VirtualCard::note(bool stuck, bool hung_up) {
  {
    std::lock_guard lock(mu_);
    stuck_ = stuck_ || stuck;
    hung_up_ = hung_up_ || hung_up;
  }
  cv_.notify_all();
}

std::string VirtualCard::answer(const std::string& apdu, bool& hang_up, bool& stuck) {
  const auto b = [&](std::size_t i) { return static_cast<unsigned char>(apdu[i]); };
  if (apdu.size() >= 4 && apdu.compare(0, 4, kStuckApdu) == 0) {
    stuck = true;
    return {};
  }
  if (apdu.size() >= 4 && apdu.compare(0, 4, kHangUpApdu) == 0) {
    hang_up = true;
    return {};
  }
  if (apdu == std::string("\xFF\xCA\x00\x00\x00", 5)) {
    return uid_.empty() ? std::string("\x6A\x81", 2) : uid_ + std::string("\x90\x00", 2);
  }
  if (apdu.size() >= 4 && b(0) == 0x00 && b(1) == 0xA4) return std::string("\x90\x00", 2);
  if (apdu.size() > 5 && b(0) == 0x80 && b(1) == 0xCA) {
    // Echo the data field: short (Lc in byte 4) or extended (00 Lc1 Lc2).
    std::size_t offset = 5;
    std::size_t lc = b(4);
    if (lc == 0 && apdu.size() > 7) {
      lc = (static_cast<std::size_t>(b(5)) << 8) | b(6);
      offset = 7;
    }
    if (offset + lc <= apdu.size()) return apdu.substr(offset, lc) + std::string("\x90\x00", 2);
  }
  return std::string("\x6D\x00", 2);
}

void VirtualCard::serve() {
  for (;;) {
    std::string header;
    std::string body;
    if (!read_exact(fd_, stop_fd_, header, 2)) break;
    const std::size_t len = (static_cast<std::size_t>(static_cast<unsigned char>(header[0])) << 8) |
                            static_cast<unsigned char>(header[1]);
    if (!read_exact(fd_, stop_fd_, body, len)) break;
    if (len == 1) {
      const unsigned code = static_cast<unsigned char>(body[0]);
      if (code == 2) {
        std::lock_guard lock(mu_);
        ++resets_;
      }
      if (code == 4 && !send_message(fd_, atr_)) break;
      continue;
    }
    {
      std::lock_guard lock(mu_);
      ++apdus_;
    }
    bool hang_up = false;
    bool stuck = false;
    const std::string reply = answer(body, hang_up, stuck);
    if (stuck) {
      note(true, false);
      continue;  // never answered; vpcd sends nothing more meanwhile
    }
    if (hang_up) break;
    if (!send_message(fd_, reply)) break;
  }
  // Hanging up is what pulls the card out (also when remove() asked).
  ::shutdown(fd_, SHUT_RDWR);
  note(false, true);
}

}  // namespace portier::drivers::pcsc_testing
