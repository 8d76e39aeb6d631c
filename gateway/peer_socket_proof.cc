#include "peer_socket_proof.h"

#include <dirent.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace portier::gateway {
namespace {

struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

Result<ino_t> unix_peer_inode(int fd) {
  struct stat st {};
  if (fstat(fd, &st) != 0) return fail(Errc::io, "peer", "socket", std::strerror(errno));
  Fd nl{::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG)};
  if (nl.fd < 0) {
    return fail(Errc::unavailable, "peer", "sock_diag",
                std::string("netlink socket: ") + std::strerror(errno));
  }
  struct {
    nlmsghdr h;
    unix_diag_req r;
  } req{};
  req.h.nlmsg_len = sizeof(req);
  req.h.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  req.h.nlmsg_flags = NLM_F_REQUEST;
  req.r.sdiag_family = AF_UNIX;
  req.r.udiag_states = ~0u;
  req.r.udiag_ino = static_cast<__u32>(st.st_ino);
  req.r.udiag_show = UDIAG_SHOW_PEER;
  req.r.udiag_cookie[0] = req.r.udiag_cookie[1] = ~0u;  // no cookie: look up by inode
  if (::send(nl.fd, &req, sizeof(req), 0) < 0) {
    return fail(Errc::unavailable, "peer", "sock_diag", std::strerror(errno));
  }
  alignas(nlmsghdr) char buf[8192];
  ssize_t n = ::recv(nl.fd, buf, sizeof(buf), 0);
  if (n < 0) return fail(Errc::unavailable, "peer", "sock_diag", std::strerror(errno));
  auto* h = reinterpret_cast<nlmsghdr*>(buf);
  int len = static_cast<int>(n);
  for (; NLMSG_OK(h, static_cast<unsigned>(len)); h = NLMSG_NEXT(h, len)) {
    if (h->nlmsg_type == NLMSG_ERROR) {
      auto* e = static_cast<nlmsgerr*>(NLMSG_DATA(h));
      return fail(Errc::unavailable, "peer", "sock_diag", std::strerror(-e->error));
    }
    if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY) continue;
    auto* m = static_cast<unix_diag_msg*>(NLMSG_DATA(h));
    if (m->udiag_ino != req.r.udiag_ino) continue;
    int alen = static_cast<int>(h->nlmsg_len - NLMSG_LENGTH(sizeof(*m)));
    for (auto* a = reinterpret_cast<rtattr*>(m + 1); RTA_OK(a, alen); a = RTA_NEXT(a, alen)) {
      if (a->rta_type == UNIX_DIAG_PEER && RTA_PAYLOAD(a) >= sizeof(__u32)) {
        __u32 peer;
        std::memcpy(&peer, RTA_DATA(a), sizeof(peer));
        if (peer == 0) break;
        return static_cast<ino_t>(peer);
      }
    }
    return fail(Errc::unavailable, "peer", "sock_diag", "the connection has no peer (closed)");
  }
  return fail(Errc::unavailable, "peer", "sock_diag", "no answer for the socket");
}

Result<void> process_holds_socket(pid_t pid, ino_t ino) {
  const std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  DIR* d = opendir(dir.c_str());
  if (!d) return fail(Errc::permission_denied, "peer", dir, std::strerror(errno));
  const std::string want = "socket:[" + std::to_string(ino) + "]";
  char target[64];
  bool found = false;
  int dfd = dirfd(d);
  // Bounded: a process with a million descriptors must not hold a resolver
  // thread for seconds; past the bound it gets no identity.
  constexpr int kMaxScanned = 65536;
  int scanned = 0;
  bool too_many = false;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    if (++scanned > kMaxScanned) {
      too_many = true;
      break;
    }
    ssize_t n = readlinkat(dfd, e->d_name, target, sizeof(target) - 1);
    if (n <= 0) continue;
    if (static_cast<std::size_t>(n) == want.size() &&
        want.compare(0, want.size(), target, n) == 0) {
      found = true;
      break;
    }
  }
  closedir(d);
  if (too_many) {
    return fail(Errc::permission_denied, "peer", "pid " + std::to_string(pid),
                "has more than " + std::to_string(kMaxScanned) +
                    " open descriptors; cannot prove it holds the connection");
  }
  if (!found) {
    return fail(Errc::permission_denied, "peer", "pid " + std::to_string(pid),
                "does not hold the connection it is said to have made (the connecting process "
                "exited and its pid now names another process)");
  }
  return {};
}

}  // namespace portier::gateway
