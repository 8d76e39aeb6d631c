#include "agent/health/network_checks.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <net/route.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <sstream>

#include "common/file_read.h"

namespace portier::health {
namespace {

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r')) s.pop_back();
  return s;
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ",") + s;
  return out;
}

}  // namespace

Ipv6Scope classify_ipv6(const in6_addr& a) {
  const unsigned char* b = a.s6_addr;
  static const unsigned char zero[16] = {};
  if (std::memcmp(b, zero, 16) == 0) return Ipv6Scope::unspecified;
  if (std::memcmp(b, zero, 15) == 0 && b[15] == 1) return Ipv6Scope::loopback;
  if (std::memcmp(b, zero, 10) == 0 && b[10] == 0xff && b[11] == 0xff)
    return Ipv6Scope::ipv4_mapped;
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) return Ipv6Scope::link_local;
  if ((b[0] & 0xfe) == 0xfc) return Ipv6Scope::unique_local;
  if (b[0] == 0xff) return Ipv6Scope::multicast;
  if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8) return Ipv6Scope::documentation;
  if ((b[0] & 0xe0) == 0x20) return Ipv6Scope::global;
  return Ipv6Scope::other;
}

bool is_global_ipv6(const std::string& text) {
  in6_addr a{};
  auto s = text.substr(0, text.find('%'));
  if (inet_pton(AF_INET6, s.c_str(), &a) != 1) return false;
  return classify_ipv6(a) == Ipv6Scope::global;
}

const char* to_string(Ipv6Scope s) {
  switch (s) {
    case Ipv6Scope::unspecified:
      return "unspecified";
    case Ipv6Scope::loopback:
      return "loopback";
    case Ipv6Scope::ipv4_mapped:
      return "ipv4-mapped";
    case Ipv6Scope::link_local:
      return "link-local";
    case Ipv6Scope::unique_local:
      return "unique-local";
    case Ipv6Scope::multicast:
      return "multicast";
    case Ipv6Scope::documentation:
      return "documentation";
    case Ipv6Scope::global:
      return "global";
    case Ipv6Scope::other:
      return "other";
  }
  return "?";
}

CheckResult InterfacesUpCheck::run(const std::atomic<bool>&) {
  auto dir = o_.sys_root + "/class/net";
  DIR* d = opendir(dir.c_str());
  if (!d) return CheckResult::fail("cannot list " + dir + ": " + std::strerror(errno));
  std::map<std::string, std::string> state;
  while (dirent* de = readdir(d)) {
    std::string name = de->d_name;
    if (name == "." || name == ".." || name == "lo") continue;
    std::string s;
    state[name] = read_small_file(dir + "/" + name + "/operstate", s) == 0 ? trim(s) : "unknown";
  }
  closedir(d);
  CheckResult r;
  std::vector<std::string> up, down;
  for (const auto& [name, s] : state) {
    r.values[name] = s;
    (s == "up" ? up : down).push_back(name);
  }
  r.values["up"] = join(up);
  if (!o_.required.empty()) {
    std::vector<std::string> missing;
    for (const auto& name : o_.required) {
      auto it = state.find(name);
      if (it == state.end())
        missing.push_back(name + " (absent)");
      else if (it->second != "up")
        missing.push_back(name + " (" + it->second + ")");
    }
    if (!missing.empty())
      return {CheckResult::Status::fail,
              "required interface not up: " + join(missing) + ": check the cable or the link",
              r.values};
    r.reason = "required interfaces up: " + join(o_.required);
    return r;
  }
  if (up.empty())
    return {CheckResult::Status::fail,
            state.empty()
                ? "no network interface besides lo"
                : "no network interface is up (" + join(down) + "): check the cable or the link",
            r.values};
  r.reason = "up: " + join(up);
  return r;
}

std::vector<InterfaceAddress> system_addresses() {
  std::vector<InterfaceAddress> out;
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return out;
  for (ifaddrs* i = list; i; i = i->ifa_next) {
    if (!i->ifa_addr || (i->ifa_flags & IFF_LOOPBACK)) continue;
    int fam = i->ifa_addr->sa_family;
    char buf[INET6_ADDRSTRLEN] = {};
    if (fam == AF_INET)
      inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr, buf, sizeof buf);
    else if (fam == AF_INET6)
      inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(i->ifa_addr)->sin6_addr, buf,
                sizeof buf);
    else
      continue;
    out.push_back({i->ifa_name, fam, buf});
  }
  freeifaddrs(list);
  return out;
}

AddressesCheck::AddressesCheck(AddressesOptions o) : o_(std::move(o)) {
  if (!o_.source) o_.source = system_addresses;
}

CheckResult AddressesCheck::run(const std::atomic<bool>&) {
  auto addrs = o_.source();
  std::vector<std::string> v4, v6, global;
  for (const auto& a : addrs) {
    auto text = a.interface + "=" + a.address;
    if (a.family == AF_INET) {
      v4.push_back(text);
    } else if (a.family == AF_INET6) {
      v6.push_back(text);
      if (is_global_ipv6(a.address)) global.push_back(text);
    }
  }
  CheckResult r;
  r.values = {{"ipv4", join(v4)}, {"ipv6", join(v6)}, {"global_ipv6", join(global)}};
  if (v4.empty() && v6.empty()) {
    r.status = CheckResult::Status::fail;
    r.reason =
        "no IP address on any interface besides lo: check DHCP/SLAAC or the static configuration";
  } else if (global.empty() && o_.require_global_ipv6) {
    r.status = CheckResult::Status::warn;
    r.reason =
        "the terminal has no global IPv6 address of its own (only link-local, unique-local or "
        "none), "
        "which the terminal standard asks for: enable IPv6 on the network or the interface";
  } else {
    r.reason =
        std::to_string(v4.size()) + " IPv4 and " + std::to_string(v6.size()) + " IPv6 addresses";
  }
  return r;
}

CheckResult DefaultRouteCheck::run(const std::atomic<bool>&) {
  CheckResult r;
  std::string text;
  std::vector<std::string> found;
  if (read_small_file(o_.proc_root + "/net/route", text) == 0) {
    std::istringstream in(text);
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      std::istringstream ls(line);
      std::string iface, dest, gw, flags, refcnt, use, metric, mask;
      if (!(ls >> iface >> dest >> gw >> flags >> refcnt >> use >> metric >> mask)) continue;
      unsigned long fl = std::strtoul(flags.c_str(), nullptr, 16);
      if (dest != "00000000" || mask != "00000000" || !(fl & RTF_UP)) continue;
      in_addr a{};
      a.s_addr = static_cast<uint32_t>(std::strtoul(gw.c_str(), nullptr, 16));
      char buf[INET_ADDRSTRLEN] = {};
      inet_ntop(AF_INET, &a, buf, sizeof buf);
      r.values["ipv4_default"] = std::string(buf) + " dev " + iface;
      found.push_back("IPv4 via " + std::string(buf) + " dev " + iface);
      break;
    }
  }
  if (read_small_file(o_.proc_root + "/net/ipv6_route", text) == 0) {
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
      std::istringstream ls(line);
      std::string dest, plen, src, splen, nexthop, metric, refcnt, use, flags, iface;
      if (!(ls >> dest >> plen >> src >> splen >> nexthop >> metric >> refcnt >> use >> flags >>
            iface))
        continue;
      unsigned long fl = std::strtoul(flags.c_str(), nullptr, 16);
      if (dest != std::string(32, '0') || plen != "00" || iface == "lo" || !(fl & RTF_UP) ||
          (fl & RTF_REJECT))
        continue;
      in6_addr a{};
      for (int i = 0; i < 16 && nexthop.size() == 32; ++i)
        a.s6_addr[i] =
            static_cast<unsigned char>(std::stoul(nexthop.substr(2 * i, 2), nullptr, 16));
      char buf[INET6_ADDRSTRLEN] = {};
      inet_ntop(AF_INET6, &a, buf, sizeof buf);
      r.values["ipv6_default"] = std::string(buf) + " dev " + iface;
      found.push_back("IPv6 via " + std::string(buf) + " dev " + iface);
      break;
    }
  }
  if (found.empty()) {
    r.status = CheckResult::Status::fail;
    r.reason =
        "no default route (IPv4 or IPv6): the management plane is unreachable; check the gateway "
        "configuration";
  } else {
    r.reason = join(found);
  }
  return r;
}

CheckResult ManagementReachabilityCheck::run(const std::atomic<bool>& cancel) {
  if (o_.host.empty()) return CheckResult::ok("not configured");
  auto target = o_.host + ":" + o_.port;
  CheckResult r;
  r.values["endpoint"] = target;
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_family = AF_UNSPEC;
  addrinfo* res = nullptr;
  int gai = getaddrinfo(o_.host.c_str(), o_.port.c_str(), &hints, &res);
  if (gai != 0) {
    r.status = CheckResult::Status::fail;
    r.reason = "cannot resolve the management endpoint " + target + ": " + gai_strerror(gai) +
               ": check DNS";
    return r;
  }
  std::string last_error = "no address";
  auto start = std::chrono::steady_clock::now();
  auto deadline = start + o_.connect_timeout;
  bool ok = false;
  for (addrinfo* ai = res; ai && !ok && !cancel; ai = ai->ai_next) {
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      last_error = std::strerror(errno);
      continue;
    }
    int rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
    if (rc == 0) {
      ok = true;
    } else if (errno != EINPROGRESS) {
      last_error = std::strerror(errno);
    } else {
      while (!cancel) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
          last_error = "timed out after " + std::to_string(o_.connect_timeout.count()) + " ms";
          break;
        }
        pollfd p{fd, POLLOUT, 0};
        int pr = poll(&p, 1, static_cast<int>(std::min<long long>(left.count(), 100)));
        if (pr < 0 && errno == EINTR) continue;
        if (pr < 0) {
          last_error = std::strerror(errno);
          break;
        }
        if (pr == 0) continue;
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err == 0)
          ok = true;
        else
          last_error = std::strerror(err);
        break;
      }
    }
    close(fd);
  }
  freeaddrinfo(res);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                  start);
  r.values["connect_ms"] = std::to_string(ms.count());
  if (ok) {
    r.reason = "management endpoint " + target + " reachable";
  } else {
    r.status = CheckResult::Status::fail;
    r.reason = "cannot reach the management endpoint " + target + ": " + last_error +
               ": check the network, the firewall and the endpoint";
  }
  return r;
}

}  // namespace portier::health
