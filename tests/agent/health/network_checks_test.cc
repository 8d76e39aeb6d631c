#include "agent/health/network_checks.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent/health/temp_tree.h"

namespace portier::health {
namespace {

using Status = CheckResult::Status;
using testing::TempTree;
std::atomic<bool> no_cancel{false};

Ipv6Scope scope(const char* text) {
  in6_addr a{};
  EXPECT_EQ(inet_pton(AF_INET6, text, &a), 1) << text;
  return classify_ipv6(a);
}

// REQ-7 (network), REQ-17 (own IPv6 address)
TEST(Ipv6Classification, GlobalOnlyForGlobalUnicast) {
  EXPECT_EQ(scope("2001:4860:4860::8888"), Ipv6Scope::global);
  EXPECT_EQ(scope("2a01:4f8::1"), Ipv6Scope::global);
  EXPECT_EQ(scope("3fff:ffff::1"), Ipv6Scope::global);
  EXPECT_EQ(scope("fe80::1"), Ipv6Scope::link_local);
  EXPECT_EQ(scope("febf::1"), Ipv6Scope::link_local);
  EXPECT_EQ(scope("fc00::1"), Ipv6Scope::unique_local);
  EXPECT_EQ(scope("fd12:3456::1"), Ipv6Scope::unique_local);
  EXPECT_EQ(scope("::1"), Ipv6Scope::loopback);
  EXPECT_EQ(scope("::"), Ipv6Scope::unspecified);
  EXPECT_EQ(scope("ff02::1"), Ipv6Scope::multicast);
  EXPECT_EQ(scope("::ffff:192.0.2.1"), Ipv6Scope::ipv4_mapped);
  EXPECT_EQ(scope("2001:db8::1"), Ipv6Scope::documentation);
  EXPECT_EQ(scope("fec0::1"), Ipv6Scope::other);
  EXPECT_TRUE(is_global_ipv6("2001:4860:4860::8888"));
  EXPECT_TRUE(is_global_ipv6("2a01:4f8::1%eth0"));
  EXPECT_FALSE(is_global_ipv6("fe80::1%eth0"));
  EXPECT_FALSE(is_global_ipv6("192.0.2.1"));
  EXPECT_FALSE(is_global_ipv6("not an address"));
}

// REQ-7 (network)
TEST(InterfacesUpCheck, LoIgnoredAndRequiredInterfacesNamed) {
  TempTree t;
  InterfacesOptions o;
  o.sys_root = t.root();
  t.write("class/net/lo/operstate", "unknown\n");
  t.write("class/net/eth0/operstate", "down\n");
  auto r = InterfacesUpCheck(o).run(no_cancel);
  EXPECT_EQ(r.status, Status::fail);
  EXPECT_NE(r.reason.find("eth0"), std::string::npos);
  t.write("class/net/wlan0/operstate", "up\n");
  r = InterfacesUpCheck(o).run(no_cancel);
  EXPECT_EQ(r.status, Status::ok) << r.reason;
  EXPECT_EQ(r.values["up"], "wlan0");
  o.required = {"eth0", "wwan0"};
  r = InterfacesUpCheck(o).run(no_cancel);
  EXPECT_EQ(r.status, Status::fail);
  EXPECT_NE(r.reason.find("eth0 (down)"), std::string::npos) << r.reason;
  EXPECT_NE(r.reason.find("wwan0 (absent)"), std::string::npos);
}

AddressesOptions with(std::vector<InterfaceAddress> a) {
  AddressesOptions o;
  o.source = [a] { return a; };
  return o;
}

// REQ-7 (network), REQ-17 (own IPv6 address: warn when absent)
TEST(AddressesCheck, WarnsWithoutOwnGlobalIpv6) {
  auto r = AddressesCheck(with({{"eth0", AF_INET, "192.168.1.20"},
                                {"eth0", AF_INET6, "fe80::1"},
                                {"eth0", AF_INET6, "fd00::20"}}))
               .run(no_cancel);
  EXPECT_EQ(r.status, Status::warn);
  EXPECT_NE(r.reason.find("global IPv6"), std::string::npos);
  r = AddressesCheck(with({{"eth0", AF_INET, "192.168.1.20"}, {"eth0", AF_INET6, "2a01:4f8::20"}}))
          .run(no_cancel);
  EXPECT_EQ(r.status, Status::ok);
  EXPECT_EQ(r.values["global_ipv6"], "eth0=2a01:4f8::20");
  r = AddressesCheck(with({})).run(no_cancel);
  EXPECT_EQ(r.status, Status::fail);
}

// REQ-7 (network): the real getifaddrs runs and does not crash.
TEST(AddressesCheck, RealSystemRuns) {
  auto r = AddressesCheck().run(no_cancel);
  EXPECT_FALSE(r.reason.empty());
}

// REQ-7 (network)
TEST(DefaultRouteCheck, ReadsIpv4AndIpv6Tables) {
  TempTree t;
  DefaultRouteOptions o{t.root()};
  const std::string v4_header =
      "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n";
  const std::string v6_lo_reject =
      "00000000000000000000000000000000 00 00000000000000000000000000000000 00 "
      "00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo\n";
  t.write("net/route",
          v4_header + "eth0\t0001A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n");
  t.write("net/ipv6_route", v6_lo_reject);
  auto r = DefaultRouteCheck(o).run(no_cancel);
  EXPECT_EQ(r.status, Status::fail);
  EXPECT_NE(r.reason.find("no default route"), std::string::npos);
  t.write("net/route",
          v4_header + "eth0\t00000000\t0101A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n");
  r = DefaultRouteCheck(o).run(no_cancel);
  EXPECT_EQ(r.status, Status::ok);
  EXPECT_EQ(r.values["ipv4_default"], "192.168.1.1 dev eth0");
  t.write("net/route", v4_header);
  t.write("net/ipv6_route",
          v6_lo_reject +
              "00000000000000000000000000000000 00 00000000000000000000000000000000 00 "
              "fe800000000000000000000000000001 00000400 00000001 00000000 00450003     eth0\n");
  r = DefaultRouteCheck(o).run(no_cancel);
  EXPECT_EQ(r.status, Status::ok) << r.reason;
  EXPECT_EQ(r.values["ipv6_default"], "fe80::1 dev eth0");
}

// REQ-7 (network): management endpoint reachability
TEST(ManagementReachabilityCheck, NotConfiguredReachableAndRefused) {
  EXPECT_EQ(ManagementReachabilityCheck().run(no_cancel).reason, "not configured");
  int s = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(listen(s, 4), 0);
  socklen_t len = sizeof a;
  getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  auto port = std::to_string(ntohs(a.sin_port));
  ManagementEndpointOptions o{"127.0.0.1", port, std::chrono::milliseconds(2000)};
  auto r = ManagementReachabilityCheck(o).run(no_cancel);
  EXPECT_EQ(r.status, Status::ok) << r.reason;
  close(s);  // now nothing listens on the port
  r = ManagementReachabilityCheck(o).run(no_cancel);
  EXPECT_EQ(r.status, Status::fail);
  EXPECT_NE(r.reason.find("127.0.0.1:" + port), std::string::npos);
}

}  // namespace
}  // namespace portier::health
