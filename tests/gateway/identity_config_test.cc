// The [identity] and [limits] tables of portierd's config.
#include <gtest/gtest.h>

#include "daemon/daemon_config.h"

namespace portier::daemon {
namespace {

TEST(IdentityConfig, DefaultsAndValues) {
  auto d = parse_config("", "t.toml");
  ASSERT_TRUE(d) << d.error().message();
  EXPECT_EQ(d->identity.max_exe_bytes, 1ull << 30);
  EXPECT_EQ(d->identity.hash_timeout_ms, 3000);
  EXPECT_TRUE(d->identity.peer_pidfd);
  EXPECT_EQ(d->limits.streams_per_undeclared_uid, 4);

  auto c = parse_config(
      "[identity]\nmax_exe_bytes = 2097152\nhash_timeout_ms = 500\nresolver_threads = 2\n"
      "resolving_per_uid = 1\nwaiting_per_uid = 8\npeer_pidfd = false\n"
      "[limits]\nconnections_per_app = 4\nconnections_declared = 40\n"
      "connections_per_undeclared_uid = 1\nconnections_undeclared = 2\nstreams_per_app = 3\n"
      "streams_declared = 30\nstreams_per_undeclared_uid = 0\nstreams_undeclared = 0\n",
      "t.toml");
  ASSERT_TRUE(c) << c.error().message();
  EXPECT_EQ(c->identity.max_exe_bytes, 2097152u);
  EXPECT_EQ(c->identity.hash_timeout_ms, 500);
  EXPECT_EQ(c->identity.resolver_threads, 2);
  EXPECT_EQ(c->identity.resolving_per_uid, 1);
  EXPECT_EQ(c->identity.waiting_per_uid, 8);
  EXPECT_FALSE(c->identity.peer_pidfd);
  EXPECT_EQ(c->limits.connections_per_app, 4);
  EXPECT_EQ(c->limits.connections_declared, 40);
  EXPECT_EQ(c->limits.connections_per_undeclared_uid, 1);
  EXPECT_EQ(c->limits.connections_undeclared, 2);
  EXPECT_EQ(c->limits.streams_per_app, 3);
  EXPECT_EQ(c->limits.streams_declared, 30);
  EXPECT_EQ(c->limits.streams_per_undeclared_uid, 0);
  EXPECT_EQ(c->limits.streams_undeclared, 0);
}

TEST(IdentityConfig, ErrorsNameFileLineAndColumn) {
  struct Case {
    const char* text;
    const char* error;
  };
  for (auto c :
       {Case{"[identity]\nhash_timeout_ms = 5\n",
             "t.toml:2:19: identity.hash_timeout_ms: must be 100..600000"},
        Case{"[identity]\nmax_exe_byte = 5\n", "max_exe_byte"},
        Case{"[limits]\nstreams_per_app = 1000\n",
             "t.toml:2:19: limits.streams_per_app: must be 1..256"},
        Case{"limits = 3\n", "limits: must be a [limits] table"},
        Case{"[identity]\npeer_pidfd = \"no\"\n", "identity.peer_pidfd: must be true or false"}}) {
    auto r = parse_config(c.text, "t.toml");
    ASSERT_FALSE(r) << c.text;
    EXPECT_NE(r.error().message().find(c.error), std::string::npos) << r.error().message();
  }
}

}  // namespace
}  // namespace portier::daemon
