// Stream limits: per connection, per declared app, per undeclared uid, and
// separate pools so undeclared callers never starve declared apps.
#include "stream_quota.h"

#include <gtest/gtest.h>

#include <vector>

namespace portier::gateway {
namespace {

std::shared_ptr<Connection> conn(const std::string& principal, bool declared) {
  auto c = std::make_shared<Connection>();
  c->principal = principal;
  c->declared = declared;
  return c;
}

TEST(StreamQuota, UndeclaredCallersCannotStarveDeclaredApps) {
  StreamQuota q(StreamLimits{16, 3, 4, 2, 3});
  std::vector<std::unique_ptr<StreamQuota::Slot>> held;
  std::string why;
  // Undeclared uids fill their pool: 2 per uid, 3 in all.
  for (int uid = 0; uid < 5; ++uid) {
    for (int i = 0; i < 2; ++i) {
      why.clear();
      if (auto s = q.take(conn("uid:" + std::to_string(1000 + uid), false), &why)) {
        held.push_back(std::move(s));
      }
    }
  }
  EXPECT_EQ(q.open(), 3);
  EXPECT_NE(why.find("streams of undeclared callers are open"), std::string::npos) << why;
  // A declared app still gets its own.
  auto app = conn("app:payment", true);
  for (int i = 0; i < 3; ++i) {
    why.clear();
    auto s = q.take(app, &why);
    ASSERT_TRUE(s) << why;
    held.push_back(std::move(s));
  }
  why.clear();
  EXPECT_FALSE(q.take(app, &why));
  EXPECT_NE(why.find("app 'payment' already has 3 open streams"), std::string::npos) << why;
  held.clear();
  EXPECT_EQ(q.open(), 0);
  EXPECT_EQ(app->open_streams, 0);
}

TEST(StreamQuota, PerConnectionLimit) {
  StreamQuota q(StreamLimits{2, 64, 256, 4, 32});
  auto c = conn("app:teller", true);
  std::string why;
  auto a = q.take(c, &why);
  auto b = q.take(c, &why);
  ASSERT_TRUE(a && b);
  EXPECT_FALSE(q.take(c, &why));
  EXPECT_NE(why.find("this connection already has 2 open streams"), std::string::npos) << why;
  a.reset();
  why.clear();
  EXPECT_TRUE(q.take(c, &why)) << why;
}

}  // namespace
}  // namespace portier::gateway
