// Shared by the command tests: a temp dir, a throwaway PKI with a fleet
// command key, an audit sink that keeps what it is given, and handlers that
// count what they are asked to run.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "agent/commands/command_executor.h"
#include "agent/commands/command_signing.h"
#include "common/audit_sink.h"
#include "common/crypto/random.h"
#include "common/crypto/signer.h"
#include "support/test_pki.h"

namespace portier::commands::test {

struct Dir {
  Dir() {
    char t[] = "/tmp/portier-commands-XXXXXX";
    path = mkdtemp(t);
  }
  ~Dir() { std::filesystem::remove_all(path); }
  std::string path;
};

// Keeps every entry; the JSON of each kind is tested with the audit log.
class KeptAudit : public AuditSink {
 public:
  void record(const AuditEntry& e) override {
    std::lock_guard lock(mu_);
    entries_.push_back(e);
  }
  std::vector<std::string> tail(std::size_t) override { return {}; }
  int follow(std::function<void(const std::string&)>) override { return 0; }
  void unfollow(int) override {}
  std::vector<AuditEntry> entries() {
    std::lock_guard lock(mu_);
    return entries_;
  }

 private:
  std::mutex mu_;
  std::vector<AuditEntry> entries_;
};

// Counts each action it runs; a policy whose text holds "broken" is refused
// as the daemon's reload path would refuse it.
class CountingHandlers : public CommandHandlers {
 public:
  Result<std::string> ping(const v1::Ping& p) override {
    count("ping");
    return CommandHandlers::ping(p);
  }
  Result<std::string> run_health_checks(const v1::RunHealthChecks&) override {
    count("run_health_checks");
    return std::string("OK");
  }
  Result<std::string> set_telemetry_intervals(const v1::SetTelemetryIntervals& r) override {
    count("set_telemetry_intervals");
    return "health " + std::to_string(r.health_seconds());
  }
  Result<std::string> replace_policy(const v1::ReplacePolicy& r) override {
    count("replace_policy");
    if (r.policy_toml().find("broken") != std::string::npos) {
      return fail(Errc::invalid_argument, "policy", "policy.toml:1:1", "broken rule");
    }
    installed_policy = r.policy_toml();
    return "installed version " + std::to_string(r.version());
  }
  Result<std::string> usb_authorization(const v1::UsbAuthorization& r) override {
    count("usb_authorization");
    return std::string(r.authorize() ? "authorized " : "blocked ") + r.device_id();
  }
  Result<std::string> rotate_device_key(const v1::RotateDeviceKey&) override {
    count("rotate_device_key");
    return std::string("-----BEGIN CERTIFICATE REQUEST-----");
  }
  Result<std::string> fetch_audit_range(const v1::FetchAuditRange& r) override {
    count("fetch_audit_range");
    return std::to_string(r.last() - r.first() + 1) + " records";
  }
  Result<std::string> install_certificate(const v1::InstallCertificate&) override {
    count("install_certificate");
    return std::string("installed");
  }

  int runs() {
    std::lock_guard lock(mu_);
    int n = 0;
    for (auto& [k, v] : calls_) n += v;
    return n;
  }
  int runs(const std::string& action) {
    std::lock_guard lock(mu_);
    return calls_[action];
  }
  std::string installed_policy;

 private:
  void count(const std::string& action) {
    std::lock_guard lock(mu_);
    ++calls_[action];
  }
  std::mutex mu_;
  std::map<std::string, int> calls_;
};

inline std::string random_nonce(std::size_t n = 16) {
  auto b = crypto::random_bytes(n);
  EXPECT_TRUE(b);
  return std::string(b->begin(), b->end());
}

inline google::protobuf::Timestamp timestamp(std::chrono::system_clock::time_point t) {
  google::protobuf::Timestamp ts;
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  ts.set_seconds(ns / 1000000000);
  ts.set_nanos(static_cast<int>(ns % 1000000000));
  return ts;
}

// The fleet's side: a command key with its chain, signing commands.
struct Fleet {
  crypto::KeySigner signer;
  std::vector<crypto::Certificate> chain;  // the signer's certificate first

  static Fleet from(const portier::test::IssuedLeaf& leaf) {
    auto s = crypto::KeySigner::from(leaf.key);
    EXPECT_TRUE(s) << s.error().message();
    Fleet f{std::move(*s), {leaf.cert}};
    for (auto& c : leaf.chain) f.chain.push_back(c);
    return f;
  }
  std::string sign(const v1::Command& c) const {
    auto sc = sign_command(c, signer, chain);
    EXPECT_TRUE(sc) << sc.error().message();
    return sc ? sc->SerializeAsString() : std::string();
  }
};

}  // namespace portier::commands::test
