// The audit log: JSON lines that survive a restart, escaping of hostile
// strings, followers, rotation; the hash chain (REQ-29), the trail failing
// closed and recovering by itself, deleted files, floods (REQ-28).
#include "agent/audit_log.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <mutex>

#include "audit_test_util.h"
#include "common/audit_events.h"

namespace portier::agent {
namespace {

using namespace std::chrono_literals;
using test::Dir;
using test::event;
using test::file_lines;
using test::slurp;
using test::wait_until;

AuditEntry deny(const Caller& c) {
  return audit::decision(&c, "kiosk-ui", "scanner0", "claim", false,
                         {3, 12, "/etc/portier/policy.toml"}, "rule 3");
}

// Every line of the trail (oldest file first).
std::vector<std::string> trail(const std::string& path, int keep) {
  std::vector<std::string> out;
  for (int i = keep; i >= 1; --i) {
    for (auto& l : file_lines(path + "." + std::to_string(i))) out.push_back(l);
  }
  for (auto& l : file_lines(path)) out.push_back(l);
  return out;
}

std::vector<std::string> trail_files(const std::string& path, int keep) {
  std::vector<std::string> out;
  for (int i = keep; i >= 1; --i) {
    auto f = path + "." + std::to_string(i);
    if (std::filesystem::exists(f)) out.push_back(f);
  }
  out.push_back(path);
  return out;
}

TEST(AuditLogTest, WritesOneJsonObjectPerLineAndKeepsItAcrossRestart) {
  Dir d;
  auto path = d.path + "/audit.jsonl";
  Caller c{1001, 1001, 42, "/opt/kiosk \"ui\"\n", "ab", "kiosk.service"};
  {
    auto log = AuditLog::open(path);
    ASSERT_TRUE(log);
    (*log)->record(deny(c));
    ASSERT_TRUE((*log)->flush());
  }
  auto text = slurp(path);
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1);
  EXPECT_EQ(text.rfind("{\"seq\":1,\"prev\":\"" + std::string(kGenesisDigest) + "\",\"time\":", 0),
            0u)
      << text;
  EXPECT_NE(text.find("\"exe\":\"/opt/kiosk \\\"ui\\\"\\n\""), std::string::npos) << text;
  EXPECT_NE(text.find("\"decision\":\"deny\",\"rule\":3,\"line\":12"), std::string::npos);
  auto again = AuditLog::open(path);
  ASSERT_TRUE(again);
  auto tail = (*again)->tail(10);
  ASSERT_EQ(tail.size(), 1u);
  EXPECT_EQ(tail[0] + "\n", text);
}

TEST(AuditLogTest, ControlCharactersAreEscaped) {
  EXPECT_EQ(json_escape(std::string("a\x01\x7f\"\\", 5)), "a\\u0001\\u007f\\\"\\\\");
}

TEST(AuditLogTest, FollowersSeeNewRecordsOnceWritten) {
  Dir d;
  std::mutex mu;
  std::vector<std::string> seen;
  auto log = AuditLog::open(d.path + "/a.jsonl");
  ASSERT_TRUE(log);
  int id = (*log)->follow([&](const std::string& l) {
    std::lock_guard lock(mu);
    seen.push_back(l);
  });
  Caller c;
  (*log)->record(deny(c));
  ASSERT_TRUE((*log)->flush());
  (*log)->unfollow(id);
  (*log)->record(deny(c));
  ASSERT_TRUE((*log)->flush());
  std::lock_guard lock(mu);
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0], file_lines(d.path + "/a.jsonl").at(0));
}

TEST(AuditLogTest, RecordDurableReturnsOnceTheRecordIsOnDisk_REQ29) {
  Dir d;
  auto path = d.path + "/a.jsonl";
  auto log = AuditLog::open(path);
  ASSERT_TRUE(log);
  // (Before events were typed this recorded a made-up "claim_granted".)
  auto r = (*log)->record_durable(
      audit::decision(nullptr, "", "scanner0", "claim", true, {}, "lease 10s"), 5s);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_NE(slurp(path).find("\"event\":\"decision\""), std::string::npos);
  EXPECT_NE(slurp(path).find("\"decision\":\"allow\",\"rule\":0,\"line\":0,"), std::string::npos);
  EXPECT_EQ((*log)->failure(), "");
}

TEST(AuditLogTest, RotatesAtTheSizeLimit) {
  Dir d;
  auto path = d.path + "/a.jsonl";
  AuditLogOptions o;
  o.max_bytes = 4096;
  auto log = AuditLog::open(path, o);
  ASSERT_TRUE(log);
  for (int i = 0; i < 100; ++i) {
    (*log)->record(event(AuditEvent::lease_released, "record " + std::to_string(i)));
    ASSERT_TRUE((*log)->flush());
  }
  EXPECT_TRUE(std::filesystem::exists(path + ".1"));
  EXPECT_LE(std::filesystem::file_size(path), 4096u + 1024u);
}

// REQ-29: seq grows by one and prev is the SHA-256 of the previous line,
// across rotation and a restart; the first record ever has prev = 64 zeros.
TEST(AuditLogTest, ChainContinuesAcrossRotationAndRestart_REQ29) {
  Dir d;
  auto path = d.path + "/audit.jsonl";
  AuditLogOptions o;
  o.max_bytes = 4096;
  o.keep_files = 100;
  for (int run = 0; run < 2; ++run) {
    auto log = AuditLog::open(path, o);
    ASSERT_TRUE(log);
    (*log)->record(event(AuditEvent::policy_loaded, "run " + std::to_string(run)));
    for (int i = 0; i < 60; ++i) {
      (*log)->record(event(
          AuditEvent::lease_released,
          "run " + std::to_string(run) + " record " + std::to_string(i) + std::string(100, 'x')));
    }
    ASSERT_TRUE((*log)->flush());
  }
  auto lines = trail(path, o.keep_files);
  ASSERT_GT(lines.size(), 122u);
  EXPECT_TRUE(std::filesystem::exists(path + ".3"));
  std::string prev(kGenesisDigest);
  for (std::size_t i = 0; i < lines.size(); ++i) {
    auto c = parse_chained_line(lines[i]);
    ASSERT_TRUE(c) << lines[i];
    EXPECT_EQ(c->seq, i + 1);
    EXPECT_EQ(c->prev, prev) << "line " << i;
    prev = sha256_hex(lines[i]);
  }
  // Every record of both runs is there, once (carried copies aside).
  std::size_t released = 0;
  for (auto& l : lines) released += l.find("\"event\":\"lease_released\"") != std::string::npos;
  EXPECT_EQ(released, 120u);
  auto v = verify_audit_files(trail_files(path, o.keep_files));
  EXPECT_TRUE(v.ok) << v.problem;
  EXPECT_EQ(v.records, lines.size());
  EXPECT_EQ(v.first_seq, 1u);
  EXPECT_EQ(v.head, prev);
}

// REQ-29: keep_files old files, and the policy and health in force at the
// head of each of them.
TEST(AuditLogTest, RotationKeepsKFilesAndCarriesPolicyAndHealth_REQ29) {
  Dir d;
  auto path = d.path + "/audit.jsonl";
  AuditLogOptions o;
  o.max_bytes = 4096;
  o.keep_files = 3;
  auto log = AuditLog::open(path, o);
  ASSERT_TRUE(log);
  (*log)->record(event(AuditEvent::policy_loaded, "generation 1 at start"));
  (*log)->record(event(AuditEvent::health_changed, "OK -> DEGRADED"));
  for (int i = 0; i < 200; ++i) {
    (*log)->record(
        event(AuditEvent::lease_released, "record " + std::to_string(i) + std::string(200, 'y')));
  }
  ASSERT_TRUE((*log)->flush());
  for (int i = 1; i <= 3; ++i) EXPECT_TRUE(std::filesystem::exists(path + "." + std::to_string(i)));
  EXPECT_FALSE(std::filesystem::exists(path + ".4"));
  for (auto& f : trail_files(path, 3)) {
    auto lines = file_lines(f);
    ASSERT_GE(lines.size(), 3u) << f;
    EXPECT_NE(lines[0].find("\"carried_from\":1,"), std::string::npos) << f << ": " << lines[0];
    EXPECT_NE(lines[0].find("\"event\":\"policy_loaded\""), std::string::npos) << lines[0];
    EXPECT_NE(lines[0].find("generation 1 at start"), std::string::npos) << lines[0];
    EXPECT_NE(lines[1].find("\"carried_from\":2,"), std::string::npos) << f << ": " << lines[1];
    EXPECT_NE(lines[1].find("\"event\":\"health_changed\""), std::string::npos) << lines[1];
  }
  auto v = verify_audit_files(trail_files(path, 3));
  EXPECT_TRUE(v.ok) << v.problem;
  // A restart finds the carried records again and keeps carrying them.
  log->reset();
  log = AuditLog::open(path, o);
  ASSERT_TRUE(log);
  for (int i = 0; i < 60; ++i) {
    (*log)->record(
        event(AuditEvent::lease_released, "again " + std::to_string(i) + std::string(200, 'z')));
  }
  ASSERT_TRUE((*log)->flush());
  EXPECT_NE(file_lines(path).at(0).find("\"carried_from\":1,"), std::string::npos);
  v = verify_audit_files(trail_files(path, 3));
  EXPECT_TRUE(v.ok) << v.problem;
}

// REQ-28: a deleted or replaced audit file is reopened and the gap recorded
// first, with the last seq written to the old file.
TEST(AuditLogTest, DeletedOrReplacedFileIsReopenedWithTheGapRecorded_REQ28) {
  Dir d;
  auto path = d.path + "/audit.jsonl";
  auto log = AuditLog::open(path);
  ASSERT_TRUE(log);
  (*log)->record(event(AuditEvent::policy_loaded, "generation 1"));
  (*log)->record(event(AuditEvent::lease_released, "one"));
  ASSERT_TRUE((*log)->flush());
  ASSERT_EQ(::unlink(path.c_str()), 0);
  (*log)->record(event(AuditEvent::lease_released, "two"));
  ASSERT_TRUE((*log)->flush());
  auto lines = file_lines(path);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_NE(lines[0].find("{\"seq\":3,"), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find("\"event\":\"audit_reopened\",\"last_seq\":2,"), std::string::npos)
      << lines[0];
  EXPECT_NE(lines[0].find("was deleted"), std::string::npos) << lines[0];
  EXPECT_NE(lines[1].find("\"carried_from\":1,"), std::string::npos) << lines[1];
  EXPECT_NE(lines[2].find("\"reason\":\"two\""), std::string::npos) << lines[2];
  auto v = verify_audit_files({path});
  EXPECT_FALSE(v.ok);
  EXPECT_NE(v.problem.find(path + ":1 (seq 3): the daemon recorded a gap: audit_reopened"),
            std::string::npos)
      << v.problem;

  // Replaced by another file (rename over it): reopened too.
  auto other = d.path + "/other";
  test::write_lines(other, {});
  ASSERT_EQ(::rename(other.c_str(), path.c_str()), 0);
  (*log)->record(event(AuditEvent::lease_released, "three"));
  ASSERT_TRUE((*log)->flush());
  lines = file_lines(path);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_NE(lines[0].find("\"event\":\"audit_reopened\",\"last_seq\":5,"), std::string::npos)
      << lines[0];
  EXPECT_NE(lines[0].find("was replaced by another file"), std::string::npos) << lines[0];
}

// REQ-28: a file that cannot be reopened fails closed: record_durable fails
// with the reason, failure() and on_state say so; records are kept (bounded
// in bytes, the rest counted) and written once it works again, by itself.
TEST(AuditLogTest, UnopenableFileFailsClosedAndRecoversByItself_REQ28) {
  Dir d;
  auto path = d.path + "/audit.jsonl";
  AuditLogOptions o;
  o.retry_min = 5ms;
  o.retry_max = 20ms;
  o.max_pending_bytes = 4096;
  std::mutex mu;
  std::vector<std::string> states;
  auto log = AuditLog::open(path, o);
  ASSERT_TRUE(log);
  (*log)->on_state([&](const std::string& s) {
    std::lock_guard lock(mu);
    states.push_back(s);
  });
  (*log)->record(event(AuditEvent::policy_loaded, "generation 1"));
  ASSERT_TRUE((*log)->flush());
  ASSERT_EQ(::unlink(path.c_str()), 0);
  ASSERT_EQ(::mkdir(path.c_str(), 0700), 0);  // the path can no longer be opened for writing
  auto r = (*log)->record_durable(event(AuditEvent::decision, "kept 0"), 5s);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::unavailable);
  EXPECT_EQ(r.error().message(), "audit: " + path + ": cannot open: Is a directory");
  EXPECT_EQ((*log)->failure(), "audit log " + path + ": cannot open: Is a directory");
  ASSERT_TRUE(wait_until([&] {
    std::lock_guard lock(mu);
    return !states.empty();
  }));
  // While failing, record_durable fails at once; records are kept up to 4 KiB.
  auto again = (*log)->record_durable(event(AuditEvent::decision, "kept 1"), 5s);
  EXPECT_FALSE(again);
  for (int i = 0; i < 40; ++i)
    (*log)->record(event(AuditEvent::lease_released, std::string(200, 'k')));
  ASSERT_EQ(::rmdir(path.c_str()), 0);
  ASSERT_TRUE(wait_until([&] { return (*log)->failure().empty(); }));
  ASSERT_TRUE((*log)->flush());
  ASSERT_TRUE(wait_until([&] {  // on_state runs just after failure() changes
    std::lock_guard lock(mu);
    return states.back().empty();
  }));
  {
    std::lock_guard lock(mu);
    ASSERT_GE(states.size(), 2u);
    EXPECT_NE(states.front().find("cannot open: Is a directory"), std::string::npos);
    EXPECT_EQ(states.back(), "");
  }
  auto text = slurp(path);
  auto lines = file_lines(path);
  ASSERT_GE(lines.size(), 4u);
  EXPECT_NE(lines[0].find("\"event\":\"audit_reopened\",\"last_seq\":1,"), std::string::npos);
  EXPECT_NE(lines[1].find("\"carried_from\":1,"), std::string::npos) << lines[1];
  EXPECT_NE(text.find("\"reason\":\"kept 0\""), std::string::npos);
  EXPECT_NE(text.find("\"reason\":\"kept 1\""), std::string::npos);
  auto lost = text.find("\"event\":\"audit_records_lost\",\"count\":");
  ASSERT_NE(lost, std::string::npos) << text;
  std::size_t kept = 0;
  for (auto& l : lines) kept += l.find(std::string(200, 'k')) != std::string::npos;
  EXPECT_GT(kept, 5u);
  EXPECT_LT(kept, 40u);
  auto count = std::stoul(text.substr(lost + 37));
  EXPECT_EQ(kept + count, 40u) << text.substr(lost, 100);
  // The marker stands where the records went missing: after the kept ones.
  EXPECT_NE(lines.back().find("audit_records_lost"), std::string::npos);
}

// After on_state(nullptr) returns, the old function never runs again (the
// daemon drops its callback before the hub it points to).
TEST(AuditLogTest, ReplacedStateCallbackIsNeverCalledAgain) {
  Dir d;
  auto path = d.path + "/audit.jsonl";
  AuditLogOptions o;
  o.retry_min = 5ms;
  o.retry_max = 20ms;
  std::atomic<int> calls{0};
  auto log = AuditLog::open(path, o);
  ASSERT_TRUE(log);
  (*log)->on_state([&](const std::string&) { ++calls; });
  ASSERT_EQ(::unlink(path.c_str()), 0);
  ASSERT_EQ(::mkdir(path.c_str(), 0700), 0);
  (*log)->record(event(AuditEvent::lease_released, "one"));
  ASSERT_TRUE(wait_until([&] { return calls == 1; }));
  (*log)->on_state(nullptr);
  ASSERT_EQ(::rmdir(path.c_str()), 0);
  ASSERT_TRUE(wait_until([&] { return (*log)->failure().empty(); }));
  ASSERT_TRUE((*log)->flush());
  EXPECT_EQ(calls, 1);
}

// REQ-28: the disk fills up (a 64 KiB tmpfs): record_durable fails with the
// reason, failure()/on_state report it; once space is freed the trail
// recovers by itself and every record kept meanwhile is on disk.
TEST(AuditLogTest, DiskFullFailsClosedAndRecoversWithNothingLost_REQ28) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to mount a small tmpfs that can fill up";
  Dir d;
  auto mnt = d.path + "/small";
  ASSERT_EQ(::mkdir(mnt.c_str(), 0700), 0);
  if (::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=64k") != 0) {
    GTEST_SKIP() << "cannot mount a tmpfs here: " << std::strerror(errno);
  }
  struct Unmount {
    std::string dir;
    ~Unmount() { ::umount2(dir.c_str(), MNT_DETACH); }
  } unmount{mnt};
  auto path = mnt + "/audit.jsonl";
  AuditLogOptions o;
  o.retry_min = 5ms;
  o.retry_max = 50ms;
  std::mutex mu;
  std::vector<std::string> states;
  auto log = AuditLog::open(path, o);
  ASSERT_TRUE(log);
  (*log)->on_state([&](const std::string& s) {
    std::lock_guard lock(mu);
    states.push_back(s);
  });
  (*log)->record(event(AuditEvent::policy_loaded, "generation 1"));
  ASSERT_TRUE((*log)->flush());

  auto filler = mnt + "/filler";
  int fd = ::open(filler.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0);
  std::string block(4096, 'f');
  while (::write(fd, block.data(), block.size()) > 0) {
  }
  ASSERT_EQ(errno, ENOSPC);
  ::close(fd);

  // The file's last page may still hold a record or two.
  Result<void> r;
  int written = 0;
  for (; written < 64; ++written) {
    r = (*log)->record_durable(
        event(AuditEvent::decision, "durable " + std::to_string(written) + std::string(400, 'd')),
        5s);
    if (!r) break;
  }
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::unavailable);
  EXPECT_EQ(r.error().message(), "audit: " + path + ": write failed: No space left on device");
  EXPECT_EQ((*log)->failure(), "audit log " + path + ": write failed: No space left on device");
  ASSERT_TRUE(wait_until([&] {
    std::lock_guard lock(mu);
    return !states.empty();
  }));
  EXPECT_FALSE((*log)->flush(50ms));
  for (int i = 0; i < 20; ++i)
    (*log)->record(event(AuditEvent::lease_released, "kept " + std::to_string(i)));

  ASSERT_EQ(::unlink(filler.c_str()), 0);
  ASSERT_TRUE(wait_until([&] { return (*log)->failure().empty(); }));
  ASSERT_TRUE((*log)->flush());
  ASSERT_TRUE(wait_until([&] {  // on_state runs just after failure() changes
    std::lock_guard lock(mu);
    return states.back().empty();
  }));
  {
    std::lock_guard lock(mu);
    EXPECT_EQ(states.front(), "audit log " + path + ": write failed: No space left on device");
    EXPECT_EQ(states.back(), "");
  }
  auto text = slurp(path);
  for (int i = 0; i <= written; ++i) {
    EXPECT_NE(text.find("\"reason\":\"durable " + std::to_string(i) + "d"), std::string::npos) << i;
  }
  for (int i = 0; i < 20; ++i) {
    EXPECT_NE(text.find("\"reason\":\"kept " + std::to_string(i) + "\""), std::string::npos) << i;
  }
  EXPECT_EQ(text.find("audit_records_lost"), std::string::npos);
  EXPECT_EQ(text.back(), '\n');
  auto v = verify_audit_files({path});
  EXPECT_TRUE(v.ok) << v.problem;
  EXPECT_EQ(v.records, static_cast<std::uint64_t>(1 + written + 1 + 20));
}

// REQ-28/REQ-29: 60 claims with 130,000-byte device ids from one uid cannot
// flush the policy out of the kept files; every line stays small; the
// suppressed denials are counted in one record.
TEST(AuditLogTest, FloodFromOneUidKeepsPolicyAndBoundsLines_REQ28_REQ29) {
  Dir d;
  auto path = d.path + "/audit.jsonl";
  AuditLogOptions o;
  o.max_bytes = 8192;
  o.keep_files = 2;
  o.denials.report_every = 50ms;
  auto log = AuditLog::open(path, o);
  ASSERT_TRUE(log);
  (*log)->record(event(AuditEvent::policy_loaded, "generation 1 at start"));
  ASSERT_TRUE((*log)->flush());
  Caller attacker{4242, 4242, 99, std::string(130000, 'e'), "", ""};
  for (int i = 0; i < 60; ++i) {
    auto e = deny(attacker);
    e.device = std::string(130000, 'A' + i % 26);
    e.reason = std::string(130000, 'r');
    (*log)->record(e);
  }
  ASSERT_TRUE((*log)->flush());
  ASSERT_TRUE(wait_until([&] {
    return slurp(path).find("\"event\":\"denials_suppressed\",\"uid\":4242,\"count\":40,") !=
           std::string::npos;
  })) << slurp(path);
  auto files = trail_files(path, o.keep_files);
  std::size_t denials = 0;
  for (auto& f : files) {
    auto lines = file_lines(f);
    ASSERT_FALSE(lines.empty());
    EXPECT_NE(lines[0].find("\"event\":\"policy_loaded\""), std::string::npos) << f;
    EXPECT_NE(lines[0].find("generation 1 at start"), std::string::npos) << f;
    for (auto& l : lines) {
      EXPECT_LT(l.size(), 4096u);
      denials += l.find("\"decision\":\"deny\"") != std::string::npos;
      if (l.find("\"decision\":\"deny\"") != std::string::npos) {
        EXPECT_NE(l.find("…[cut 129488 bytes]"), std::string::npos) << l.substr(0, 200);
      }
    }
  }
  EXPECT_LE(denials, 20u);
  auto v = verify_audit_files(files);
  EXPECT_TRUE(v.ok) << v.problem;
}

TEST(AuditLogTest, StringFieldsAreCutAtAUtf8Boundary) {
  AuditEntry e = event(AuditEvent::alarm);
  std::string han;
  for (int i = 0; i < 300; ++i) han += "中";  // 3 bytes each: 900 bytes
  e.device = han;
  auto body = AuditLog::to_body(e, 512);
  // 170 characters (510 bytes) kept, 390 bytes cut.
  std::string kept;
  for (int i = 0; i < 170; ++i) kept += "中";
  EXPECT_NE(body.find("\"device\":\"" + kept + "…[cut 390 bytes]\""), std::string::npos) << body;
  e.device = std::string(512, 'a');
  EXPECT_NE(AuditLog::to_body(e, 512).find("\"device\":\"" + std::string(512, 'a') + "\""),
            std::string::npos);
}

// tail() holds at most tail_bytes of lines, also when seeded from a large file.
TEST(AuditLogTest, TailMemoryIsBoundedInBytes) {
  Dir d;
  auto path = d.path + "/audit.jsonl";
  AuditLogOptions o;
  o.tail_bytes = 8192;
  std::string last;
  {
    auto log = AuditLog::open(path, o);
    ASSERT_TRUE(log);
    for (int i = 0; i < 3000; ++i) {
      (*log)->record(event(AuditEvent::lease_released, std::to_string(i) + std::string(300, 't')));
    }
    ASSERT_TRUE((*log)->flush());
    auto tail = (*log)->tail(10000);
    std::size_t bytes = 0;
    for (auto& l : tail) bytes += l.size();
    EXPECT_LE(bytes, 8192u);
    EXPECT_GE(bytes, 8192u - 500);
    ASSERT_FALSE(tail.empty());
    last = tail.back();
    EXPECT_EQ(last, file_lines(path).back());
  }
  EXPECT_GT(std::filesystem::file_size(path), 1000000u);
  auto log = AuditLog::open(path, o);
  ASSERT_TRUE(log);
  auto tail = (*log)->tail(10000);
  std::size_t bytes = 0;
  for (auto& l : tail) bytes += l.size();
  EXPECT_LE(bytes, 8192u);
  ASSERT_FALSE(tail.empty());
  EXPECT_EQ(tail.back(), last);
  EXPECT_EQ(tail.front().rfind("{\"seq\":", 0), 0u);
}

// REQ-29: a torn last line (a crash mid-write) is cut away at start and that
// is recorded; the chain goes on from the last complete line.
TEST(AuditLogTest, TornLastLineIsTruncatedAndRecorded_REQ29) {
  Dir d;
  auto path = d.path + "/audit.jsonl";
  {
    auto log = AuditLog::open(path);
    ASSERT_TRUE(log);
    (*log)->record(event(AuditEvent::policy_loaded, "generation 1"));
    (*log)->record(event(AuditEvent::lease_released, "one"));
    ASSERT_TRUE((*log)->flush());
  }
  const std::string torn = "{\"seq\":3,\"prev\":\"00";
  {
    std::ofstream f(path, std::ios::app | std::ios::binary);
    f << torn;
  }
  auto log = AuditLog::open(path);
  ASSERT_TRUE(log);
  (*log)->record(event(AuditEvent::lease_released, "two"));
  ASSERT_TRUE((*log)->flush());
  auto lines = file_lines(path);
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_NE(lines[2].find("{\"seq\":3,"), std::string::npos) << lines[2];
  EXPECT_NE(lines[2].find("\"event\":\"audit_truncated\",\"bytes\":" + std::to_string(torn.size()) +
                          ",\"last_seq\":2,"),
            std::string::npos)
      << lines[2];
  EXPECT_NE(lines[3].find("{\"seq\":4,"), std::string::npos) << lines[3];
  auto v = verify_audit_files({path});
  EXPECT_TRUE(v.ok) << v.problem;
  EXPECT_EQ(v.records, 4u);
}

// A file of the old format (no chain) is rotated away; the new chain starts.
TEST(AuditLogTest, UnchainedFileIsRotatedAway_REQ29) {
  Dir d;
  auto path = d.path + "/audit.jsonl";
  test::write_lines(path, {"{\"time\":\"2026-01-01T00:00:00.000Z\",\"event\":\"policy_loaded\"}"});
  auto log = AuditLog::open(path);
  ASSERT_TRUE(log);
  (*log)->record(event(AuditEvent::lease_released, "one"));
  ASSERT_TRUE((*log)->flush());
  EXPECT_EQ(file_lines(path + ".1").size(), 1u);
  auto lines = file_lines(path);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].rfind("{\"seq\":1,\"prev\":\"" + std::string(kGenesisDigest) + "\",", 0), 0u);
}

// A second writer on the same trail (a second portierd on the same state
// dir) is refused before it touches the file: it would cut the first one's
// lines and fork the chain.
TEST(AuditLogTest, SecondWriterOnTheSameTrailIsRefused) {
  Dir d;
  auto path = d.path + "/audit.jsonl";
  auto first = AuditLog::open(path);
  ASSERT_TRUE(first);
  auto second = AuditLog::open(path);
  ASSERT_FALSE(second);
  EXPECT_NE(second.error().message().find("another process"), std::string::npos)
      << second.error().message();
  first->reset();
  EXPECT_TRUE(AuditLog::open(path)) << "the lock goes with the first writer";
}

// REQ-28: a declared app whose allowed actions fail at will (a malformed
// APDU fails in the driver) is rate-limited like a denier: it cannot rotate
// everyone's records away. Allows and lease ends are never limited.
TEST(AuditLogTest, FailedActionsAreRateLimitedPerUid_REQ28) {
  Dir d;
  auto path = d.path + "/audit.jsonl";
  AuditLogOptions o;
  o.denials.report_every = 50ms;
  auto log = AuditLog::open(path, o);
  ASSERT_TRUE(log);
  Caller app{4343, 4343, 77, "/opt/pay", "", ""};
  for (int i = 0; i < 60; ++i) {
    (*log)->record(audit::action_failed(&app, "", "rdr0", "transmit", "transmit: malformed APDU"));
  }
  for (int i = 0; i < 30; ++i) {
    (*log)->record(audit::lease_released(&app, "", "rdr0", ""));
  }
  ASSERT_TRUE((*log)->flush());
  ASSERT_TRUE(wait_until([&] {
    return slurp(path).find("\"event\":\"denials_suppressed\",\"uid\":4343,\"count\":40,") !=
           std::string::npos;
  })) << slurp(path);
  auto text = slurp(path);
  std::size_t failed = 0, released = 0;
  for (auto p = text.find("action_failed"); p != std::string::npos;
       p = text.find("action_failed", p + 1)) {
    ++failed;
  }
  for (auto p = text.find("lease_released"); p != std::string::npos;
       p = text.find("lease_released", p + 1)) {
    ++released;
  }
  EXPECT_EQ(failed, 20u);
  EXPECT_EQ(released, 30u);
}

}  // namespace
}  // namespace portier::agent
