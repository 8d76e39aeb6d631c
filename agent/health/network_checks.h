// Network checks (REQ-7 "network", REQ-17 "own IPv6 address"): interfaces up,
// addresses and a global IPv6 address, default route, reachability of the
// management endpoint.
#pragma once

#include <netinet/in.h>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "agent/health/health_check.h"

namespace portier::health {

enum class Ipv6Scope {
  unspecified,    // ::
  loopback,       // ::1
  ipv4_mapped,    // ::ffff:0:0/96
  link_local,     // fe80::/10
  unique_local,   // fc00::/7
  multicast,      // ff00::/8
  documentation,  // 2001:db8::/32
  global,         // 2000::/3 (the global unicast space), except the above
  other,          // reserved or deprecated (site-local fec0::/10, ...)
};
Ipv6Scope classify_ipv6(const in6_addr& a);
// False for text that is not an IPv6 address.
bool is_global_ipv6(const std::string& text);
const char* to_string(Ipv6Scope s);

struct InterfacesOptions {
  std::string sys_root = "/sys";
  std::vector<std::string> required;  // empty: at least one non-lo interface up
};
class InterfacesUpCheck : public Check {
 public:
  explicit InterfacesUpCheck(InterfacesOptions o = {}) : o_(std::move(o)) {}
  std::string id() const override { return "net_interfaces"; }
  CheckResult run(const std::atomic<bool>& cancel) override;

 private:
  InterfacesOptions o_;
};

struct InterfaceAddress {
  std::string interface;
  int family = 0;       // AF_INET / AF_INET6
  std::string address;  // text form
};
// getifaddrs(3), without lo.
std::vector<InterfaceAddress> system_addresses();

struct AddressesOptions {
  // The address source; tests inject one. Default: system_addresses().
  std::function<std::vector<InterfaceAddress>()> source;
  bool require_global_ipv6 = true;  // warn when absent
};
class AddressesCheck : public Check {
 public:
  explicit AddressesCheck(AddressesOptions o = {});
  std::string id() const override { return "net_addresses"; }
  CheckResult run(const std::atomic<bool>& cancel) override;

 private:
  AddressesOptions o_;
};

struct DefaultRouteOptions {
  std::string proc_root = "/proc";
};
class DefaultRouteCheck : public Check {
 public:
  explicit DefaultRouteCheck(DefaultRouteOptions o = {}) : o_(std::move(o)) {}
  std::string id() const override { return "net_default_route"; }
  CheckResult run(const std::atomic<bool>& cancel) override;

 private:
  DefaultRouteOptions o_;
};

struct ManagementEndpointOptions {
  std::string host;  // empty: not configured (ok)
  std::string port;  // service or number
  std::chrono::milliseconds connect_timeout{3000};
};
class ManagementReachabilityCheck : public Check {
 public:
  explicit ManagementReachabilityCheck(ManagementEndpointOptions o = {}) : o_(std::move(o)) {}
  std::string id() const override { return "net_management"; }
  CheckResult run(const std::atomic<bool>& cancel) override;

 private:
  ManagementEndpointOptions o_;
};

}  // namespace portier::health
