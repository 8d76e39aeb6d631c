#include "agent/health/integrity_baseline.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include "agent/health/temp_tree.h"

namespace portier::health {
namespace {

using Status = CheckResult::Status;
using testing::TempTree;
std::atomic<bool> no_cancel{false};

struct Provisioned {
  TempTree t;
  std::string passwd = t.write("etc/passwd", "root:x:0:0:root:/root:/bin/bash\n");
  std::string shadow = t.write("etc/shadow", "root:*:19000:0:99999:7:::\n");
  std::string unit = t.write("lib/portierd.service", "[Service]\nExecStart=/usr/bin/portierd\n");
  BaselineOptions opts{t.path("state/baseline"), t.path("key"), Severity::critical};
  Provisioned() {
    t.mkdir("state");
    auto r = create_baseline({passwd, shadow, unit}, opts.baseline_file, opts.key_file);
    EXPECT_TRUE(r.has_value()) << (r ? "" : r.error().message());
  }
  CheckResult run() { return IntegrityBaselineCheck(opts).run(no_cancel); }
};

// REQ-7 (root), REQ-9 (integrity checks)
TEST(IntegrityBaseline, FreshBaselineVerifies) {
  Provisioned p;
  struct stat st {};
  ASSERT_EQ(stat(p.opts.key_file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(stat(p.opts.baseline_file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto r = p.run();
  EXPECT_EQ(r.status, Status::ok) << r.reason;
  EXPECT_EQ(r.values["files"], "3");
  EXPECT_EQ(IntegrityBaselineCheck(p.opts).severity(), Severity::critical);
}

// REQ-7 (root)
TEST(IntegrityBaseline, ModifiedFileFailsNamingIt) {
  Provisioned p;
  p.t.write("etc/passwd", "root:x:0:0:root:/root:/bin/bash\nevil:x:0:0::/:/bin/sh\n");
  auto r = p.run();
  EXPECT_EQ(r.status, Status::fail);
  EXPECT_NE(r.reason.find("changed since provisioning: " + p.passwd), std::string::npos)
      << r.reason;
  EXPECT_EQ(r.reason.find(p.shadow), std::string::npos);
}

// REQ-7 (root)
TEST(IntegrityBaseline, MissingFileFails) {
  Provisioned p;
  std::remove(p.unit.c_str());
  auto r = p.run();
  EXPECT_EQ(r.status, Status::fail);
  EXPECT_NE(r.reason.find("missing: " + p.unit), std::string::npos) << r.reason;
}

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

// REQ-7 (root), REQ-9: an attacker who edits the baseline to match their
// change is caught by the HMAC.
TEST(IntegrityBaseline, TamperedBaselineFailsIntegrity) {
  Provisioned p;
  auto data = slurp(p.opts.baseline_file);
  auto pos = data.find("sha256 ") + 7;
  data[pos] = data[pos] == 'a' ? 'b' : 'a';
  std::ofstream(p.opts.baseline_file, std::ios::binary | std::ios::trunc) << data;
  auto r = p.run();
  EXPECT_EQ(r.status, Status::fail);
  EXPECT_NE(r.reason.find("baseline integrity check failed"), std::string::npos) << r.reason;
  // Dropping the HMAC line, or truncating, fails the same way.
  std::ofstream(p.opts.baseline_file, std::ios::binary | std::ios::trunc)
      << data.substr(0, data.rfind("hmac"));
  EXPECT_NE(p.run().reason.find("integrity"), std::string::npos);
  std::ofstream(p.opts.baseline_file, std::ios::binary | std::ios::trunc) << "";
  EXPECT_NE(p.run().reason.find("integrity"), std::string::npos);
}

// REQ-9
TEST(IntegrityBaseline, WrongKeyFails) {
  Provisioned p;
  p.t.write("key", std::string(32, 'k'));
  chmod(p.opts.key_file.c_str(), 0600);
  auto r = p.run();
  EXPECT_EQ(r.status, Status::fail);
  EXPECT_NE(r.reason.find("integrity"), std::string::npos) << r.reason;
}

// REQ-9: a key readable by others is refused.
TEST(IntegrityBaseline, KeyReadableByOthersFails) {
  Provisioned p;
  chmod(p.opts.key_file.c_str(), 0644);
  auto r = p.run();
  EXPECT_EQ(r.status, Status::fail);
  EXPECT_NE(r.reason.find("0600"), std::string::npos) << r.reason;
}

TEST(IntegrityBaseline, NoBaselineFailsAndCreateRefusesUnreadableFile) {
  TempTree t;
  BaselineOptions o{t.path("baseline"), t.path("key"), Severity::critical};
  auto r = IntegrityBaselineCheck(o).run(no_cancel);
  EXPECT_EQ(r.status, Status::fail);
  EXPECT_NE(r.reason.find("no readable baseline"), std::string::npos);
  auto c = create_baseline({t.path("absent")}, o.baseline_file, o.key_file);
  ASSERT_FALSE(c.has_value());
  EXPECT_EQ(c.error().code, Errc::not_found);
}

TEST(Sha256File, KnownVector) {
  TempTree t;
  auto p = t.write("abc", "abc");
  EXPECT_EQ(*sha256_file(p), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

}  // namespace
}  // namespace portier::health
