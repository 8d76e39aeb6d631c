// portierd's config parser: defaults, every key, located errors, and
// robustness against malformed input.
#include "daemon/daemon_config.h"

#include <gtest/gtest.h>

#include <random>

#include "parsed_config.h"

namespace portier::daemon {
namespace {

TEST(DaemonConfigTest, EmptyFileMeansDefaults) {
  auto c = parse_config("", "c.toml");
  ASSERT_TRUE(c) << c.error().message();
  EXPECT_EQ(c->socket, "/run/portier/portierd.sock");
  EXPECT_EQ(c->socket_mode, 0660u);
  EXPECT_EQ(c->state_dir, "/var/lib/portier");
  EXPECT_EQ(c->policy, "/etc/portier/policy.toml");
  EXPECT_EQ(c->audit_log, "/var/lib/portier/audit.jsonl");
  EXPECT_EQ(c->subscriber_queue, 256u);
  EXPECT_EQ(c->max_lease_seconds, 300u);
  EXPECT_TRUE(serial_scanners(*c).empty());
}

TEST(DaemonConfigTest, EveryKeyIsRead) {
  auto c = parse_config(R"(
socket = "/run/p/s.sock"
socket_mode = "0600"
socket_group = "apps"
state_dir = "/var/lib/p"
policy = "/etc/p/policy.toml"
audit_log = "/var/log/p/audit.jsonl"
audit_max_bytes = 100000
log_level = "debug"
subscriber_queue = 8
max_lease_seconds = 60
[[scanner]]
id = "scanner0"
type = "serial"
path = "/dev/ttyACM0"
baud = 115200
suffix = "CRLF"
prefix = "STX"
aim = false
encoding = "gb18030"
max_frame = 512
reopen_min_ms = 50
reopen_max_ms = 2000
[[scanner]]
id = "sim0"
type = "simulated"
interval_ms = 100
)",
                        "c.toml");
  ASSERT_TRUE(c) << c.error().message();
  EXPECT_EQ(c->socket_mode, 0600u);
  EXPECT_EQ(c->socket_group, "apps");
  EXPECT_EQ(c->audit_log, "/var/log/p/audit.jsonl");
  EXPECT_EQ(c->audit_max_bytes, 100000u);
  EXPECT_EQ(c->log_level, LogLevel::debug);
  ASSERT_EQ(serial_scanners(*c).size(), 1u);
  const auto s = serial_scanners(*c)[0];
  EXPECT_EQ(s.baud, 115200);
  EXPECT_EQ(s.suffix, drivers::FrameSuffix::crlf);
  EXPECT_EQ(s.prefix, "STX");
  EXPECT_FALSE(s.aim);
  EXPECT_EQ(s.encoding, drivers::TextEncoding::gb18030);
  EXPECT_EQ(s.max_frame, 512u);
  EXPECT_EQ(s.reopen_min_ms, 50);
  EXPECT_EQ(s.reopen_max_ms, 2000);
  ASSERT_EQ(simulated_scanners(*c).size(), 1u);
  EXPECT_EQ(simulated_scanners(*c)[0].interval_ms, 100);
}

TEST(DaemonConfigTest, DriverSessionKeys) {
  auto c = parse_config(R"(
[pcsc]
transaction_hold_ms = 250
[bluetooth]
pairing_agent = false
)",
                        "c.toml");
  ASSERT_TRUE(c) << c.error().message();
  ASSERT_TRUE(pcsc(*c));
  EXPECT_EQ(pcsc(*c)->transaction_hold_ms, 250);
  ASSERT_TRUE(bluetooth(*c));
  EXPECT_FALSE(bluetooth(*c)->pairing_agent);

  auto defaults = parse_config("[pcsc]\n[bluetooth]\n", "c.toml");
  ASSERT_TRUE(defaults) << defaults.error().message();
  EXPECT_EQ(pcsc(*defaults)->transaction_hold_ms, 1000);
  EXPECT_TRUE(bluetooth(*defaults)->pairing_agent);

  auto bad_hold = parse_config("[pcsc]\ntransaction_hold_ms = 60001\n", "c.toml");
  ASSERT_FALSE(bad_hold);
  EXPECT_NE(bad_hold.error().message().find("pcsc.transaction_hold_ms"), std::string::npos);
  auto bad_agent = parse_config("[bluetooth]\npairing_agent = \"yes\"\n", "c.toml");
  ASSERT_FALSE(bad_agent);
  EXPECT_NE(bad_agent.error().message().find("bluetooth.pairing_agent"), std::string::npos);
}

TEST(DaemonConfigTest, ErrorsNameFileLineAndKey) {
  auto c = parse_config("socket = \"/s\"\n\nmax_lease_seconds = 0\n", "p.toml");
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().message(), "p.toml:3:21: max_lease_seconds: must be 1..86400");
}

// REQ-29: how many rotated audit files are kept, and the health state the
// terminal takes while the audit trail cannot be written.
TEST(DaemonConfigTest, AuditKeepFilesAndFailureHealth) {
  auto defaults = parse_config("", "c.toml");
  ASSERT_TRUE(defaults) << defaults.error().message();
  EXPECT_EQ(defaults->audit_keep_files, 24);
  EXPECT_EQ(defaults->audit_failure_health, "degraded");

  auto c =
      parse_config("audit_keep_files = 1000\naudit_failure_health = \"compromised\"\n", "c.toml");
  ASSERT_TRUE(c) << c.error().message();
  EXPECT_EQ(c->audit_keep_files, 1000);
  EXPECT_EQ(c->audit_failure_health, "compromised");

  auto zero = parse_config("\naudit_keep_files = 0\n", "p.toml");
  ASSERT_FALSE(zero);
  EXPECT_EQ(zero.error().message(), "p.toml:2:20: audit_keep_files: must be 1..1000");
  auto many = parse_config("audit_keep_files = 1001\n", "p.toml");
  ASSERT_FALSE(many);
  EXPECT_EQ(many.error().message(), "p.toml:1:20: audit_keep_files: must be 1..1000");
  auto text = parse_config("audit_keep_files = \"24\"\n", "p.toml");
  ASSERT_FALSE(text);
  EXPECT_EQ(text.error().message(), "p.toml:1:20: audit_keep_files: must be an integer");
  auto health = parse_config("log_level = \"info\"\naudit_failure_health = \"ok\"\n", "p.toml");
  ASSERT_FALSE(health);
  EXPECT_EQ(health.error().message(),
            "p.toml:2:24: audit_failure_health: must be \"degraded\" or \"compromised\"");
  auto number = parse_config("audit_failure_health = 2\n", "p.toml");
  ASSERT_FALSE(number);
  EXPECT_EQ(number.error().message(), "p.toml:1:24: audit_failure_health: must be a string");
}

TEST(DaemonConfigTest, HealthMonitorKeys) {
  auto c = parse_config(R"(
[health]
monitor = true
checks = ["boot_integrity", "cpu_load"]
tpm_tcti = "swtpm:host=127.0.0.1,port=2321"
cpu_warn_per_core = 1.5
disk_path = "/var/lib/p"
setuid_paths = ["/opt/x"]
refuse_when_compromised = ["transmit"]
[health.interval_ms]
boot_integrity = 500
)",
                        "c.toml");
  ASSERT_TRUE(c) << c.error().message();
  const auto health = health_config(*c);
  EXPECT_TRUE(health.monitor);
  EXPECT_EQ(health.checks.size(), 2u);
  EXPECT_EQ(health.thresholds.at("cpu_warn_per_core"), 1.5);
  EXPECT_EQ(*health.disk_path, "/var/lib/p");
  EXPECT_EQ(health.setuid_paths->at(0), "/opt/x");
  EXPECT_FALSE(health.installed_binary.has_value());
  EXPECT_EQ(health.interval_ms.at("boot_integrity"), 500);
  ASSERT_EQ(c->refuse_when_compromised.size(), 1u);

  auto bad = parse_config("[health]\nmemory_warn_available_below = 3\n", "c.toml");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message().find("c.toml:2:"), std::string::npos) << bad.error().message();
  auto typo = parse_config("[health]\nmonitr = true\n", "c.toml");
  ASSERT_FALSE(typo);
  EXPECT_NE(typo.error().message().find("health.monitr: unknown key"), std::string::npos);
}

// Regression: an unknown key of portierd's config said only "unknown key";
// like the policy file's, it now names the known key it is nearest to.
TEST(DaemonConfigTest, UnknownKeyNamesTheNearestKnownKey) {
  struct Case {
    const char* text;
    const char* error;
  };
  for (auto c : {
           Case{"log_levle = \"info\"\n",
                "t.toml:1:13: log_levle: unknown key (did you mean 'log_level'?) (see README.md, "
                "Configuration)"},
           Case{"[[scanner]]\nid = \"s0\"\npath = \"/dev/ttyACM0\"\nbauds = 9600\n",
                "t.toml:4:9: scanner[1].bauds: unknown key (did you mean 'baud'?)"},
           Case{"[pcsc]\ntransacton_hold_ms = 5\n",
                "t.toml:2:22: pcsc.transacton_hold_ms: unknown key (did you mean "
                "'transaction_hold_ms'?)"},
           Case{"[health]\nmonitr = true\n",
                "t.toml:2:10: health.monitr: unknown key (did you mean 'monitor'?)"},
           Case{"[identity]\npeer_pidfds = true\n",
                "identity.peer_pidfds: unknown key (did you mean 'peer_pidfd'?)"},
       }) {
    auto r = parse_config(c.text, "t.toml");
    ASSERT_FALSE(r) << c.text;
    EXPECT_NE(r.error().message().find(c.error), std::string::npos)
        << "config:\n"
        << c.text << "error: " << r.error().message();
  }
  // Nothing near: no guess.
  auto far = parse_config("zzzzzzzz = 1\n", "t.toml");
  ASSERT_FALSE(far);
  EXPECT_EQ(far.error().message(),
            "t.toml:1:12: zzzzzzzz: unknown key (see README.md, Configuration)");
}

// Malformed input: random bytes and mutations of a good config never crash
// the parser; each gives a config or an error.
TEST(DaemonConfigTest, MalformedInputNeverCrashes) {
  const std::string good =
      "socket = \"/run/p.sock\"\nsubscriber_queue = 8\n[[scanner]]\nid = \"s\"\n"
      "path = \"/dev/ttyACM0\"\nsuffix = \"CR\"\n";
  std::mt19937 rng(20261122);
  int errors = 0;
  for (int i = 0; i < 3000; ++i) {
    std::string text = good;
    int edits = 1 + static_cast<int>(rng() % 6);
    for (int e = 0; e < edits; ++e) {
      std::size_t at = rng() % (text.size() + 1);
      switch (rng() % 3) {
        case 0:
          text.insert(at, 1, static_cast<char>(rng()));
          break;
        case 1:
          if (at < text.size()) text.erase(at, 1);
          break;
        default:
          if (at < text.size()) text[at] = static_cast<char>(rng());
      }
    }
    auto c = parse_config(text, "fuzz.toml");
    if (!c) {
      ++errors;
      EXPECT_FALSE(c.error().message().empty());
    }
  }
  for (int i = 0; i < 1000; ++i) {
    std::string junk(rng() % 256, '\0');
    for (auto& ch : junk) ch = static_cast<char>(rng());
    (void)parse_config(junk, "junk.toml");
  }
  EXPECT_GT(errors, 100);
}

}  // namespace
}  // namespace portier::daemon
