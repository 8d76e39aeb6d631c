// Everything a user can feed in gets a clear error and never crashes the
// daemon: config files (corpus under tests/data/config/bad), policy files at
// start, raw bytes on the API socket, and out-of-range API calls.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <filesystem>

#include "daemon_fixture.h"

namespace portier::test {
namespace {

std::string first_line_expectation(const std::string& path) {
  auto text = read_file(path);
  auto nl = text.find('\n');
  auto line = text.substr(0, nl);
  const std::string tag = "# expect: ";
  return line.rfind(tag, 0) == 0 ? line.substr(tag.size()) : "";
}

// Every bad config is refused by --check-config with a located reason.
TEST(ConfigCorpusTest, EveryBadConfigIsRefusedWithItsReason) {
  int n = 0;
  for (auto& e : std::filesystem::directory_iterator(test_data("config/bad"))) {
    ++n;
    auto path = e.path().string();
    auto expect = first_line_expectation(path);
    ASSERT_FALSE(expect.empty()) << path << " lacks '# expect: ...' on its first line";
    auto r = run({bin("portierd"), "--check-config", "--config", path});
    EXPECT_EQ(r.exit_code, 1) << path;
    EXPECT_NE(r.err.find(expect), std::string::npos) << path << ": " << r.err;
    EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << "one line: " << r.err;
  }
  EXPECT_GE(n, 15);
}

TEST(ConfigCorpusTest, ShippedExamplesPassCheckConfig) {
  TempDir dir;
  // The example config points at /etc; check it against the example policy.
  auto cfg = read_file(std::string(PORTIER_SOURCE_DIR) + "/systemd/examples/portierd.toml");
  auto at = cfg.find("/etc/portier/policy.toml");
  ASSERT_NE(at, std::string::npos);
  cfg.replace(at, 24, dir.file("policy.toml"));
  write_file(dir.file("portierd.toml"), cfg);
  copy_file(std::string(PORTIER_SOURCE_DIR) + "/systemd/examples/policy.toml",
            dir.file("policy.toml"), 0644);
  auto r = run({bin("portierd"), "--check-config", "--config", dir.file("portierd.toml")});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("configuration OK"), std::string::npos) << r.out;
}

TEST(ConfigCorpusTest, MissingConfigFileIsAClearError) {
  auto r = run({bin("portierd"), "--check-config", "--config", "/nonexistent/portierd.toml"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("/nonexistent/portierd.toml"), std::string::npos) << r.err;
}

TEST(DaemonArgsTest, UsageErrorsExitTwo) {
  EXPECT_EQ(run({bin("portierd")}).exit_code, 2);
  EXPECT_EQ(run({bin("portierd"), "--bogus"}).exit_code, 2);
  EXPECT_EQ(run({bin("portierd"), "--config"}).exit_code, 2);
}

TEST(BadPolicyAtStartTest, DaemonRefusesToStartAndSaysWhere) {
  TempDir dir;
  DaemonOptions o;
  o.policy = "version = 1\n\n[[rule]]\napp = \"*\"\nops = [\"clame\"]\n";
  Daemon d(dir, o);
  EXPECT_FALSE(d.start());
  EXPECT_NE(d.log().find("policy.toml:5"), std::string::npos) << d.log();
  EXPECT_NE(d.log().find("clame"), std::string::npos) << d.log();
  auto r = run({bin("portierd"), "--check-config", "--config", d.config_path()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("policy.toml:5"), std::string::npos) << r.err;
}

class ApiAbuseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    DaemonOptions o;
    o.policy = "version = 1\n" + runner_app() + runner_rule("*", "[\"*\"]");
    o.extra_config = "[[scanner]]\nid = \"sim0\"\ntype = \"simulated\"\ninterval_ms = 1000\n";
    daemon_ = std::make_unique<Daemon>(dir_, o);
    ASSERT_TRUE(daemon_->start()) << daemon_->log();
  }
  TempDir dir_;
  std::unique_ptr<Daemon> daemon_;
};

TEST_F(ApiAbuseTest, RawGarbageOnTheSocketDoesNotHurtOthers) {
  for (int round = 0; round < 20; ++round) {
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, daemon_->socket().c_str(), sizeof(addr.sun_path) - 1);
    ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    std::string junk(4096, '\0');
    std::uint32_t x = 77u + static_cast<std::uint32_t>(round);
    for (auto& c : junk) {
      x = x * 1664525u + 1013904223u;
      c = static_cast<char>(x >> 24);
    }
    if (round % 2) junk = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + junk;  // valid preface, junk frames
    (void)!write(fd, junk.data(), junk.size());
    close(fd);
  }
  EXPECT_TRUE(daemon_->alive());
  auto h = daemon_->health();
  EXPECT_EQ(h.state(), v1::Health::OK);
}

TEST_F(ApiAbuseTest, OutOfRangeCallsGetClearErrors) {
  auto stub = daemon_->connect();
  {
    grpc::ClientContext ctx;
    v1::ClaimRequest r;
    r.set_device_id("nope");
    r.set_seconds(5);
    v1::ClaimResponse resp;
    auto st = stub->Claim(&ctx, r, &resp);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::NOT_FOUND);
    EXPECT_NE(st.error_message().find("portierctl devices"), std::string::npos);
  }
  {
    grpc::ClientContext ctx;
    v1::SubscribeRequest r;
    r.set_device_id(std::string(10000, 'x'));
    auto reader = stub->Subscribe(&ctx, r);
    v1::PeripheralEvent ev;
    EXPECT_FALSE(reader->Read(&ev));
    auto st = reader->Finish();
    // Over the config's id rules: refused before use, never echoed or audited.
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_LT(st.error_message().size(), 200u) << "echoed ids are bounded";
  }
  {
    grpc::ClientContext ctx;
    v1::SendRequest r;
    r.set_device_id("sim0");
    r.set_data(std::string(5000, 'a'));
    v1::SendResponse resp;
    EXPECT_EQ(stub->Send(&ctx, r, &resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  }
  {
    grpc::ClientContext ctx;
    v1::SendRequest r;
    r.set_device_id("sim0");
    r.set_data(std::string(200000, 'a'));  // over the 64 KiB message limit
    v1::SendResponse resp;
    EXPECT_EQ(stub->Send(&ctx, r, &resp).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  }
  {
    grpc::ClientContext ctx;
    v1::ExplainRequest r;
    r.set_op("destroy");
    r.set_device_id("sim0");
    v1::ExplainResponse resp;
    EXPECT_EQ(stub->ExplainPolicy(&ctx, r, &resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  }
  {
    grpc::ClientContext ctx;
    v1::RenewRequest r;
    r.set_lease_id("\xff\x00garbage");
    r.set_seconds(5);
    v1::ClaimResponse resp;
    // Not UTF-8 in a proto3 string: gRPC itself refuses to parse the request.
    EXPECT_FALSE(stub->Renew(&ctx, r, &resp).ok());
  }
  {
    grpc::ClientContext ctx;
    v1::TailAuditRequest r;
    r.set_count(10001);
    auto reader = stub->TailAudit(&ctx, r);
    v1::TailAuditResponse rec;
    EXPECT_FALSE(reader->Read(&rec));
    auto st = reader->Finish();
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(st.error_message().find("over 10000"), std::string::npos) << st.error_message();
  }
  EXPECT_TRUE(daemon_->alive());
}

}  // namespace
}  // namespace portier::test
