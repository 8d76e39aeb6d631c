// The terminal's gate for the fleet's commands, with real certificates from
// a throwaway PKI (tests/support/test_pki.h) and a real SQLite store: a good
// command runs once; a replay gets the first result and runs nothing, also
// after a restart; every forged, misdirected, stale or reused command is
// refused with its reason, audited, runs nothing and consumes no nonce.
// Each test runs with ECDSA P-256, Ed25519 and SM2 command keys.
#include "agent/commands/command_verifier.h"

#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <thread>

#include "command_test_util.h"

namespace portier::commands {
namespace {

using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;
using test::CountingHandlers;
using test::Fleet;
using test::KeptAudit;
using test::random_nonce;
using test::timestamp;
using Pki = portier::test::TestPki;
using portier::test::Flaw;
using portier::test::LeafSpec;

constexpr const char* kTerminal = "atm-0042";

class CommandVerifierTest : public ::testing::TestWithParam<crypto::KeyType> {
 protected:
  void SetUp() override {
    auto pki = Pki::create(dir_.path, GetParam());
    ASSERT_TRUE(pki) << pki.error().message();
    pki_.emplace(std::move(*pki));
    now_ = pki_->made_at();
    fleet_.emplace(issue({"fleet-commands", crypto::CertUsage::command_signing}));
    open();
  }

  Fleet issue(const LeafSpec& spec) {
    auto leaf = pki_->issue(spec);
    EXPECT_TRUE(leaf) << leaf.error().message();
    return Fleet::from(*leaf);
  }

  // Opens (again, as a restarted daemon would) the store and the verifier.
  void open() {
    verifier_.reset();
    executor_.reset();
    store_.reset();
    auto s = CommandStore::open(store_path_);
    ASSERT_TRUE(s) << s.error().message();
    store_ = std::move(*s);
    executor_ = std::make_unique<CommandExecutor>(handlers_, *store_);
    VerifierOptions o;
    o.terminal_id = kTerminal;
    o.trust_anchors = {pki_->root()};
    o.clock = [this] { return now_; };
    o.monotonic = [this] { return mono_; };
    o.max_nonces = max_nonces_;
    verifier_ = std::make_unique<CommandVerifier>(o, *store_, *executor_, audit_);
  }

  v1::Command command(const std::string& id) {
    v1::Command c;
    c.set_command_id(id);
    c.set_target_terminal(kTerminal);
    c.set_nonce(random_nonce());
    *c.mutable_not_before() = timestamp(now_ - minutes(1));
    *c.mutable_expires() = timestamp(now_ + hours(1));
    c.mutable_ping()->set_text("hello " + id);
    return c;
  }

  v1::CommandResult handle(const std::string& bytes) { return verifier_->handle(bytes, "mqtt"); }

  // `bytes` is refused for a reason holding `reason`: audited with it,
  // nothing run, `nonce` (when given) still unused. Each in an interval of
  // its own: the first refusal of an interval is always audited alone.
  void expect_refused(const std::string& bytes, const std::string& reason,
                      const std::string& command_id, const std::string& nonce = {}) {
    mono_ += std::chrono::minutes(1);
    const int runs = handlers_.runs();
    const auto audited = audit_.entries().size();
    auto r = handle(bytes);
    EXPECT_EQ(r.status(), v1::CommandResult::REFUSED) << r.DebugString();
    EXPECT_NE(r.message().find(reason), std::string::npos) << r.message();
    EXPECT_EQ(r.command_id(), command_id);
    EXPECT_FALSE(r.repeated_command());
    EXPECT_EQ(handlers_.runs(), runs) << "a refused command ran";
    auto entries = audit_.entries();
    ASSERT_EQ(entries.size(), audited + 1);
    const auto& e = entries.back();
    EXPECT_EQ(e.event, AuditEvent::command);
    EXPECT_EQ(e.decision, AuditDecision::deny);
    EXPECT_EQ(e.reason, r.message());
    EXPECT_EQ(e.command_id, command_id);
    EXPECT_EQ(e.source, "mqtt");
    if (!nonce.empty()) {
      auto used = store_->nonce_used(nonce);
      ASSERT_TRUE(used) << used.error().message();
      EXPECT_FALSE(*used) << "a refused command consumed its nonce";
    }
  }

  // The refused command's nonce still works: a good command with it runs.
  void expect_nonce_still_accepted(const std::string& nonce) {
    auto c = command("after-refusal-" + std::to_string(++fresh_));
    c.set_nonce(nonce);
    auto r = handle(fleet_->sign(c));
    EXPECT_EQ(r.status(), v1::CommandResult::OK) << r.message();
  }

  test::Dir dir_;
  std::string store_path_ = dir_.path + "/commands.db";
  std::optional<Pki> pki_;
  std::optional<Fleet> fleet_;
  std::chrono::system_clock::time_point now_;
  std::chrono::steady_clock::time_point mono_{std::chrono::hours(1)};
  std::size_t max_nonces_ = 100000;
  CountingHandlers handlers_;
  KeptAudit audit_;
  std::unique_ptr<CommandStore> store_;
  std::unique_ptr<CommandExecutor> executor_;
  std::unique_ptr<CommandVerifier> verifier_;
  int fresh_ = 0;
};

TEST_P(CommandVerifierTest, GoodCommandRunsOnceAndAnswersOk_REQ36) {
  auto c = command("c-1");
  const std::string bytes = fleet_->sign(c);
  auto r = verifier_->handle(bytes, "grpc");
  EXPECT_EQ(r.status(), v1::CommandResult::OK) << r.message();
  EXPECT_EQ(r.command_id(), "c-1");
  EXPECT_EQ(r.output(), "hello c-1");
  EXPECT_FALSE(r.repeated_command());
  v1::SignedCommand sc;
  ASSERT_TRUE(sc.ParseFromString(bytes));
  auto digest = command_digest(sc.command());
  ASSERT_TRUE(digest);
  EXPECT_EQ(r.command_digest(), std::string(digest->begin(), digest->end()));
  EXPECT_EQ(handlers_.runs("ping"), 1);
  auto used = store_->nonce_used(c.nonce());
  ASSERT_TRUE(used);
  EXPECT_TRUE(*used);
  auto entries = audit_.entries();
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].event, AuditEvent::command);
  EXPECT_EQ(entries[0].decision, AuditDecision::allow);
  EXPECT_EQ(entries[0].op, "ping");
  EXPECT_EQ(entries[0].command_id, "c-1");
  EXPECT_EQ(entries[0].source, "grpc");
  EXPECT_EQ(entries[0].reason, "OK");
}

TEST_P(CommandVerifierTest, ReplayedCommandGetsItsFirstResultAndRunsNothing_REQ23) {
  const std::string bytes = fleet_->sign(command("c-1"));
  auto first = handle(bytes);
  ASSERT_EQ(first.status(), v1::CommandResult::OK) << first.message();
  for (int i = 0; i < 3; ++i) {
    auto again = handle(bytes);
    EXPECT_EQ(again.status(), v1::CommandResult::OK);
    EXPECT_TRUE(again.repeated_command());
    EXPECT_EQ(again.output(), first.output());
    EXPECT_EQ(again.command_digest(), first.command_digest());
  }
  EXPECT_EQ(handlers_.runs(), 1);
  // The first repeat is audited as a duplicate on its own (REQ-28), the
  // others of its interval counted into one record.
  auto entries = audit_.entries();
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[1].decision, AuditDecision::deny);
  EXPECT_NE(entries[1].reason.find("duplicate"), std::string::npos) << entries[1].reason;
  verifier_->report_refusals(true);
  entries = audit_.entries();
  ASSERT_EQ(entries.size(), 3u);
  EXPECT_EQ(entries[2].count, 2u);
  EXPECT_EQ(entries[2].command_id, "c-1");
  EXPECT_NE(entries[2].reason.find("duplicate"), std::string::npos) << entries[2].reason;
}

// A hostile broker replays a command the fleet signed 1,000 times: it runs
// once; its first result goes back with the run and again at most once a
// minute (answer().report), never once per replay, so the outbox does not
// grow with them; each copy is audited, the first of each minute on its
// own and the rest counted (REQ-28: duplicates).
TEST_P(CommandVerifierTest,
       AThousandReplaysOfAGenuineCommandRunItOnceAndAreAnsweredOnceAMinute_REQ28) {
  const std::string bytes = fleet_->sign(command("c-1"));
  int reported = 0, repeated = 0;
  for (int i = 0; i < 1000; ++i) {
    if (i == 600) mono_ += seconds(61);  // the replays span two minutes
    auto a = verifier_->answer(bytes, "mqtt");
    ASSERT_EQ(a.result.status(), v1::CommandResult::OK) << a.result.message();
    EXPECT_EQ(a.result.output(), "hello c-1") << "a repeat returns the first result";
    reported += a.report;
    repeated += a.result.repeated_command();
  }
  EXPECT_EQ(handlers_.runs(), 1);
  EXPECT_EQ(repeated, 999);
  EXPECT_EQ(reported, 3) << "the run, then one repeat in each of the two minutes";
  mono_ += minutes(1);
  EXPECT_FALSE(verifier_->report_refusals().has_value()) << "every count reported";
  auto entries = audit_.entries();
  EXPECT_LE(entries.size(), 5u) << "the run, and per minute one alone and one count";
  std::uint64_t copies = 0;
  int ran = 0;
  for (auto& e : entries) {
    EXPECT_EQ(e.command_id, "c-1");
    EXPECT_EQ(e.source, "mqtt");
    if (e.decision == AuditDecision::allow) {
      ++ran;
    } else {
      EXPECT_NE(e.reason.find("duplicate"), std::string::npos) << e.reason;
      copies += e.count.value_or(1);
    }
  }
  EXPECT_EQ(ran, 1);
  EXPECT_EQ(copies, 999u) << "every replay counted";
}

// The fleet signed a command for another terminal; the broker replays it
// here: refused and answered (the fleet must learn why), but once a minute,
// not once per replay.
TEST_P(CommandVerifierTest, ReplaysOfAGenuineRefusedCommandAreAnsweredOnceAMinute_REQ28) {
  auto c = command("c-other");
  c.set_target_terminal("atm-0043");
  const std::string bytes = fleet_->sign(c);
  int reported = 0;
  for (int i = 0; i < 100; ++i) {
    auto a = verifier_->answer(bytes, "mqtt");
    EXPECT_EQ(a.result.status(), v1::CommandResult::REFUSED);
    reported += a.report;
  }
  EXPECT_EQ(reported, 1);
  mono_ += seconds(61);
  EXPECT_TRUE(verifier_->answer(bytes, "mqtt").report);
  verifier_->report_refusals(true);
  std::uint64_t copies = 0;
  for (auto& e : audit_.entries()) copies += e.count.value_or(1);
  EXPECT_EQ(copies, 101u);
  EXPECT_LE(audit_.entries().size(), 3u);
  EXPECT_EQ(handlers_.runs(), 0);
}

// Finding of the attacker review: each distinct genuine command a broker
// holds (for another terminal, expired, ...) was answered once a minute,
// so a few hundred of them grew the outbox without bound. Over all
// commands at most `repeat_answers` answers go back per interval.
TEST_P(CommandVerifierTest, ManyDistinctGenuineRefusedCommandsAreAnsweredWithinABudget_REQ28) {
  std::vector<std::string> held;
  for (int i = 0; i < 200; ++i) {
    auto c = command("c-other-" + std::to_string(i));
    c.set_target_terminal("atm-0043");
    held.push_back(fleet_->sign(c));
  }
  int reported = 0;
  for (int round = 0; round < 3; ++round) {
    for (auto& bytes : held) reported += verifier_->answer(bytes, "mqtt").report;
  }
  EXPECT_EQ(reported, 32);
  mono_ += seconds(61);
  reported = 0;
  for (auto& bytes : held) reported += verifier_->answer(bytes, "mqtt").report;
  EXPECT_EQ(reported, 32);
  verifier_->report_refusals(true);
  std::uint64_t copies = 0;
  for (auto& e : audit_.entries()) copies += e.count.value_or(1);
  EXPECT_EQ(copies, 800u);
  EXPECT_EQ(handlers_.runs(), 0);
}

// A replay of a command this terminal verified and ran is answered with its
// first result from the store, its signature not checked again: whatever
// signature the copy carries, the body is the one the fleet signed.
TEST_P(CommandVerifierTest, AReplayOfAKnownCommandIsAnsweredWithoutVerifyingItAgain_REQ28) {
  const std::string bytes = fleet_->sign(command("c-1"));
  ASSERT_EQ(handle(bytes).status(), v1::CommandResult::OK);
  v1::SignedCommand sc;
  ASSERT_TRUE(sc.ParseFromString(bytes));
  sc.set_signature(std::string(sc.signature().size(), '\x01'));
  sc.clear_certificates();
  sc.add_certificates("not a certificate");
  auto again = handle(sc.SerializeAsString());
  EXPECT_EQ(again.status(), v1::CommandResult::OK) << again.message();
  EXPECT_TRUE(again.repeated_command());
  EXPECT_EQ(again.output(), "hello c-1");
  EXPECT_EQ(handlers_.runs(), 1);
  // An unknown id with that signature is refused as before.
  auto other = command("c-2");
  v1::SignedCommand forged;
  ASSERT_TRUE(forged.ParseFromString(fleet_->sign(other)));
  forged.set_signature(std::string(forged.signature().size(), '\x01'));
  auto refused = handle(forged.SerializeAsString());
  EXPECT_EQ(refused.status(), v1::CommandResult::REFUSED);
  EXPECT_EQ(handlers_.runs(), 1);
}

TEST_P(CommandVerifierTest, ReplayAfterARestartGetsTheFirstResultAndRunsNothing_REQ23) {
  const std::string bytes = fleet_->sign(command("c-1"));
  auto first = handle(bytes);
  ASSERT_EQ(first.status(), v1::CommandResult::OK) << first.message();
  open();  // the daemon restarted
  auto again = handle(bytes);
  EXPECT_EQ(again.status(), v1::CommandResult::OK) << again.message();
  EXPECT_TRUE(again.repeated_command());
  EXPECT_EQ(again.output(), "hello c-1");
  EXPECT_EQ(handlers_.runs(), 1);
}

TEST_P(CommandVerifierTest, ReplayOfAFailedCommandGetsItsFailureAgain_REQ23) {
  auto c = command("p-1");
  c.mutable_replace_policy()->set_version(1);
  c.mutable_replace_policy()->set_policy_toml("broken");
  const std::string bytes = fleet_->sign(c);
  auto first = handle(bytes);
  EXPECT_EQ(first.status(), v1::CommandResult::FAILED);
  EXPECT_NE(first.message().find("broken rule"), std::string::npos) << first.message();
  auto again = handle(bytes);
  EXPECT_EQ(again.status(), v1::CommandResult::FAILED);
  EXPECT_TRUE(again.repeated_command());
  EXPECT_EQ(again.message(), first.message());
  EXPECT_EQ(handlers_.runs(), 1);
}

TEST_P(CommandVerifierTest, ConcurrentCopiesOfOneCommandRunItOnce_REQ23) {
  const std::string bytes = fleet_->sign(command("c-1"));
  std::vector<v1::CommandResult> results(8);
  std::vector<std::thread> threads;
  for (auto& r : results) threads.emplace_back([&] { r = handle(bytes); });
  for (auto& t : threads) t.join();
  int repeated = 0;
  for (auto& r : results) {
    EXPECT_EQ(r.status(), v1::CommandResult::OK) << r.message();
    repeated += r.repeated_command();
  }
  EXPECT_EQ(repeated, 7);
  EXPECT_EQ(handlers_.runs(), 1);
}

TEST_P(CommandVerifierTest, OneBitFlippedInTheSignatureIsRefused_REQ28) {
  auto c = command("c-1");
  v1::SignedCommand sc;
  ASSERT_TRUE(sc.ParseFromString(fleet_->sign(c)));
  // The last byte: inside the signature value (DER's s, or Ed25519's S).
  sc.mutable_signature()->back() ^= 0x01;
  expect_refused(sc.SerializeAsString(), "bad signature", "c-1", c.nonce());
  expect_nonce_still_accepted(c.nonce());
}

TEST_P(CommandVerifierTest, OneBitFlippedInTheCommandBytesIsRefused_REQ28) {
  auto c = command("c-1");
  v1::SignedCommand sc;
  ASSERT_TRUE(sc.ParseFromString(fleet_->sign(c)));
  // Inside the ping text: still a well-formed Command, another one.
  auto& bytes = *sc.mutable_command();
  const auto at = bytes.find("hello c-1");
  ASSERT_NE(at, std::string::npos);
  bytes[at] ^= 0x01;
  expect_refused(sc.SerializeAsString(), "bad signature", "c-1", c.nonce());
  expect_nonce_still_accepted(c.nonce());
}

TEST_P(CommandVerifierTest, AChainToAnUntrustedCaIsRefused_REQ25) {
  auto c = command("c-1");
  auto forged =
      issue({"fleet-commands-forged", crypto::CertUsage::command_signing, Flaw::untrusted_issuer});
  expect_refused(forged.sign(c), "untrusted chain", "c-1", c.nonce());
  expect_nonce_still_accepted(c.nonce());
}

TEST_P(CommandVerifierTest, AKeyOfAnotherPkiEntirelyIsRefused_REQ25) {
  test::Dir other_dir;
  auto other = Pki::create(other_dir.path, GetParam());
  ASSERT_TRUE(other);
  auto leaf = other->issue({"fleet-commands", crypto::CertUsage::command_signing});
  ASSERT_TRUE(leaf);
  auto c = command("c-1");
  expect_refused(Fleet::from(*leaf).sign(c), "untrusted chain", "c-1", c.nonce());
}

TEST_P(CommandVerifierTest, AnExpiredCommandSigningCertificateIsRefused_REQ25) {
  auto c = command("c-1");
  auto expired =
      issue({"fleet-commands-expired", crypto::CertUsage::command_signing, Flaw::expired});
  expect_refused(expired.sign(c), "untrusted chain", "c-1", c.nonce());
  auto r = handle(expired.sign(command("c-2")));
  EXPECT_NE(r.message().find("expired"), std::string::npos) << r.message();
}

TEST_P(CommandVerifierTest, ACertificateWithoutCommandSigningUsageIsRefused_REQ25) {
  auto c = command("c-1");
  auto tls = issue({"fleet-tls-client", crypto::CertUsage::tls_client});
  expect_refused(tls.sign(c), "untrusted chain", "c-1", c.nonce());
  auto device = issue({"atm-0043", crypto::CertUsage::device});
  expect_refused(device.sign(command("c-2")), "untrusted chain", "c-2");
  expect_nonce_still_accepted(c.nonce());
}

TEST_P(CommandVerifierTest, AnIntermediateThatIsNotACaIsRefused_REQ25) {
  auto c = command("c-1");
  auto f =
      issue({"fleet-commands-bad-issuer", crypto::CertUsage::command_signing, Flaw::issuer_not_ca});
  expect_refused(f.sign(c), "untrusted chain", "c-1", c.nonce());
}

TEST_P(CommandVerifierTest, ACommandForAnotherTerminalIsRefused_REQ36) {
  auto c = command("c-1");
  c.set_target_terminal("atm-0043");
  expect_refused(fleet_->sign(c), "for terminal 'atm-0043', not this one", "c-1", c.nonce());
  c.set_target_terminal("");
  c.set_command_id("c-2");
  expect_refused(fleet_->sign(c), "for terminal '', not this one", "c-2", c.nonce());
  c.set_target_terminal("+");
  c.set_command_id("c-3");
  expect_refused(fleet_->sign(c), "not this one", "c-3", c.nonce());
  expect_nonce_still_accepted(c.nonce());
}

TEST_P(CommandVerifierTest, AnExpiredWindowIsRefused_REQ23) {
  auto c = command("c-1");
  *c.mutable_not_before() = timestamp(now_ - hours(2));
  *c.mutable_expires() = timestamp(now_ - seconds(1));
  expect_refused(fleet_->sign(c), "expired at ", "c-1", c.nonce());
  // A good command whose expiry passes before it arrives.
  auto late = command("c-2");
  const std::string bytes = fleet_->sign(late);
  now_ += hours(1) + seconds(1);
  expect_refused(bytes, "expired at ", "c-2", late.nonce());
}

TEST_P(CommandVerifierTest, ANotYetValidWindowIsRefusedBeyondTheSkew_REQ23) {
  auto c = command("c-1");
  *c.mutable_not_before() = timestamp(now_ + seconds(61));
  *c.mutable_expires() = timestamp(now_ + hours(1));
  expect_refused(fleet_->sign(c), "not valid before ", "c-1", c.nonce());
  // Within the 60 s skew: accepted.
  auto near = command("c-2");
  *near.mutable_not_before() = timestamp(now_ + seconds(59));
  EXPECT_EQ(handle(fleet_->sign(near)).status(), v1::CommandResult::OK);
}

TEST_P(CommandVerifierTest, AWindowLongerThan24HoursIsRefused_REQ23) {
  auto c = command("c-1");
  *c.mutable_not_before() = timestamp(now_ - minutes(1));
  *c.mutable_expires() = timestamp(now_ - minutes(1) + hours(24) + seconds(1));
  expect_refused(fleet_->sign(c), "window too long", "c-1", c.nonce());
  auto day = command("c-2");
  *day.mutable_expires() = timestamp(now_ - minutes(1) + hours(24));
  EXPECT_EQ(handle(fleet_->sign(day)).status(), v1::CommandResult::OK);
}

TEST_P(CommandVerifierTest, MissingOrBackwardTimesAreRefused_REQ23) {
  auto c = command("c-1");
  c.clear_expires();
  expect_refused(fleet_->sign(c), "no expiry", "c-1", c.nonce());
  c = command("c-2");
  c.clear_not_before();
  expect_refused(fleet_->sign(c), "no not_before", "c-2", c.nonce());
  c = command("c-3");
  *c.mutable_expires() = timestamp(now_ - minutes(2));
  expect_refused(fleet_->sign(c), "is not after not_before", "c-3", c.nonce());
  c = command("c-4");
  c.mutable_expires()->set_seconds(std::int64_t{1} << 50);
  expect_refused(fleet_->sign(c), "not a valid time", "c-4", c.nonce());
}

TEST_P(CommandVerifierTest, AReusedNonceWithANewCommandIdIsRefused_REQ23) {
  auto c = command("c-1");
  ASSERT_EQ(handle(fleet_->sign(c)).status(), v1::CommandResult::OK);
  auto reuse = command("c-2");
  reuse.set_nonce(c.nonce());
  expect_refused(fleet_->sign(reuse), "nonce already used", "c-2");
  EXPECT_EQ(handlers_.runs(), 1);
  // Also after a restart: nonces are kept durably.
  open();
  reuse.set_command_id("c-3");
  expect_refused(fleet_->sign(reuse), "nonce already used", "c-3");
}

TEST_P(CommandVerifierTest, AReusedCommandIdWithADifferentBodyIsRefused_REQ23) {
  auto c = command("c-1");
  ASSERT_EQ(handle(fleet_->sign(c)).status(), v1::CommandResult::OK);
  auto other = command("c-1");
  other.mutable_ping()->set_text("something else");
  expect_refused(fleet_->sign(other), "command id reused with a different body", "c-1",
                 other.nonce());
  EXPECT_EQ(handlers_.runs(), 1);
}

TEST_P(CommandVerifierTest, GarbageIsRefusedWithAnEmptyCommandId_REQ28) {
  expect_refused(random_nonce(200), "malformed", "");
  expect_refused(std::string("\xff\xff\xff\xff\x0f", 5), "malformed", "");
  expect_refused("", "malformed: no certificates", "");
  // A SignedCommand whose command bytes are no Command.
  v1::SignedCommand sc;
  sc.set_command(std::string("\x0a\xff\x01", 3));
  sc.set_signature("x");
  sc.add_certificates("x");
  expect_refused(sc.SerializeAsString(), "malformed: the signed bytes are not a Command", "");
}

TEST_P(CommandVerifierTest, AnOversizeMessageIsRefusedUnread_REQ28) {
  auto c = command("c-1");
  c.mutable_ping()->set_text(std::string(1 << 20, 'a'));
  expect_refused(fleet_->sign(c), "more than the 1048576 a command may have", "", c.nonce());
}

TEST_P(CommandVerifierTest, CertificatesMissingMalformedOrTooManyAreRefused_REQ28) {
  auto c = command("c-1");
  v1::SignedCommand sc;
  ASSERT_TRUE(sc.ParseFromString(fleet_->sign(c)));
  auto none = sc;
  none.clear_certificates();
  expect_refused(none.SerializeAsString(), "malformed: no certificates", "c-1", c.nonce());
  auto many = sc;
  while (many.certificates_size() < 5) many.add_certificates(sc.certificates(0));
  expect_refused(many.SerializeAsString(), "5 certificates, more than the 4", "c-1", c.nonce());
  auto junk = sc;
  junk.set_certificates(0, "not DER");
  expect_refused(junk.SerializeAsString(), "untrusted chain: certificate 0 is malformed", "c-1",
                 c.nonce());
  auto unsigned_ = sc;
  unsigned_.clear_signature();
  expect_refused(unsigned_.SerializeAsString(), "bad signature: there is none", "c-1", c.nonce());
  expect_nonce_still_accepted(c.nonce());
}

TEST_P(CommandVerifierTest, AShortNonceOrNoCommandIdIsRefused_REQ23) {
  auto c = command("c-1");
  c.set_nonce(random_nonce(15));
  expect_refused(fleet_->sign(c), "a nonce of 15 bytes", "c-1");
  c = command("");
  expect_refused(fleet_->sign(c), "the command id must have 1 to 128 bytes", "", c.nonce());
  c = command("c-2");
  c.clear_action();
  expect_refused(fleet_->sign(c), "no action", "c-2", c.nonce());
}

TEST_P(CommandVerifierTest, ReplacePolicyNeedsAVersionAboveTheInstalledOne_REQ30) {
  auto install = [&](const std::string& id, std::uint64_t version, const std::string& toml) {
    auto c = command(id);
    c.mutable_replace_policy()->set_version(version);
    c.mutable_replace_policy()->set_policy_toml(toml);
    return c;
  };
  auto v5 = install("p-1", 5, "[policy] v5");
  auto r = handle(fleet_->sign(v5));
  ASSERT_EQ(r.status(), v1::CommandResult::OK) << r.message();
  EXPECT_EQ(handlers_.installed_policy, "[policy] v5");
  auto v = store_->policy_version();
  ASSERT_TRUE(v);
  EXPECT_EQ(*v, 5u);

  auto equal = install("p-2", 5, "[policy] again");
  expect_refused(fleet_->sign(equal), "policy version 5 is not above the installed version 5",
                 "p-2", equal.nonce());
  auto lower = install("p-3", 4, "[policy] older");
  expect_refused(fleet_->sign(lower), "policy version 4 is not above the installed version 5",
                 "p-3", lower.nonce());
  EXPECT_EQ(handlers_.runs("replace_policy"), 1);
  EXPECT_EQ(handlers_.installed_policy, "[policy] v5");

  // A policy the reload path refuses: FAILED, the old one stays, and its
  // version is not consumed: the fleet can send a fixed one with it.
  auto broken = install("p-4", 6, "broken");
  r = handle(fleet_->sign(broken));
  EXPECT_EQ(r.status(), v1::CommandResult::FAILED);
  EXPECT_NE(r.message().find("broken rule"), std::string::npos) << r.message();
  EXPECT_EQ(handlers_.installed_policy, "[policy] v5");
  v = store_->policy_version();
  ASSERT_TRUE(v);
  EXPECT_EQ(*v, 5u);
  r = handle(fleet_->sign(install("p-5", 6, "[policy] v6")));
  EXPECT_EQ(r.status(), v1::CommandResult::OK) << r.message();

  // The installed version survives a restart.
  open();
  auto stale = install("p-6", 6, "[policy] v6 again");
  expect_refused(fleet_->sign(stale), "not above the installed version 6", "p-6");
}

TEST_P(CommandVerifierTest, FetchAuditRangeIsAtMost1000Records) {
  auto range = [&](const std::string& id, std::uint64_t first, std::uint64_t last) {
    auto c = command(id);
    c.mutable_fetch_audit_range()->set_first(first);
    c.mutable_fetch_audit_range()->set_last(last);
    return c;
  };
  auto r = handle(fleet_->sign(range("a-1", 1, 1000)));
  EXPECT_EQ(r.status(), v1::CommandResult::OK) << r.message();
  EXPECT_EQ(r.output(), "1000 records");
  auto big = range("a-2", 1, 1001);
  expect_refused(fleet_->sign(big), "holds more than 1000 records", "a-2", big.nonce());
  auto empty = range("a-3", 10, 9);
  expect_refused(fleet_->sign(empty), "is empty", "a-3", empty.nonce());
  auto zero = range("a-4", 0, 5);
  expect_refused(fleet_->sign(zero), "is empty", "a-4", zero.nonce());
  auto wrap = range("a-5", 2, UINT64_MAX);
  expect_refused(fleet_->sign(wrap), "holds more than 1000 records", "a-5", wrap.nonce());
  EXPECT_EQ(handlers_.runs(), 1);
}

TEST_P(CommandVerifierTest, EachActionReachesItsHandler) {
  int n = 0;
  auto run = [&](auto set) {
    auto c = command("x-" + std::to_string(++n));
    set(c);
    auto r = handle(fleet_->sign(c));
    EXPECT_EQ(r.status(), v1::CommandResult::OK) << r.message();
    return r.output();
  };
  run([](v1::Command& c) { c.mutable_run_health_checks(); });
  EXPECT_EQ(
      run([](v1::Command& c) { c.mutable_set_telemetry_intervals()->set_health_seconds(30); }),
      "health 30");
  EXPECT_EQ(run([](v1::Command& c) {
              c.mutable_usb_authorization()->set_device_id("usb-1-2");
              c.mutable_usb_authorization()->set_authorize(false);
            }),
            "blocked usb-1-2");
  run([](v1::Command& c) { c.mutable_rotate_device_key(); });
  run([](v1::Command& c) { c.mutable_install_certificate()->set_certificate("DER"); });
  for (const char* a : {"run_health_checks", "set_telemetry_intervals", "usb_authorization",
                        "rotate_device_key", "install_certificate"}) {
    EXPECT_EQ(handlers_.runs(a), 1) << a;
  }
}

TEST_P(CommandVerifierTest, AStartedCommandIsNotRunAgainAfterARestart) {
  // The daemon died after recording the start (nonce consumed, command
  // started) and before the result: simulated by recording the start as
  // the verifier does, then reopening.
  auto c = command("c-1");
  const std::string bytes = fleet_->sign(c);
  v1::SignedCommand sc;
  ASSERT_TRUE(sc.ParseFromString(bytes));
  auto digest = command_digest(sc.command());
  ASSERT_TRUE(digest);
  ASSERT_TRUE(store_->begin({"c-1", std::string(digest->begin(), digest->end()), "ping", c.nonce(),
                             now_ + hours(2), now_ + hours(48)}));
  open();
  auto reported = verifier_->interrupted_results();
  ASSERT_EQ(reported.size(), 1u);
  EXPECT_EQ(reported[0].command_id(), "c-1");
  EXPECT_EQ(reported[0].status(), v1::CommandResult::FAILED);
  EXPECT_EQ(reported[0].message(), kInterrupted);
  auto r = handle(bytes);
  EXPECT_EQ(r.status(), v1::CommandResult::FAILED);
  EXPECT_EQ(r.message(), kInterrupted);
  EXPECT_TRUE(r.repeated_command());
  EXPECT_EQ(handlers_.runs(), 0);
  // Reported once: the next start has nothing new to report.
  open();
  EXPECT_TRUE(verifier_->interrupted_results().empty());
  EXPECT_EQ(handle(bytes).message(), kInterrupted);
  EXPECT_EQ(handlers_.runs(), 0);
}

TEST_P(CommandVerifierTest, NoncesAreForgottenOnlyWhenTheirWindowRefusesThemAnyway_REQ23) {
  auto c = command("c-1");
  const std::string bytes = fleet_->sign(c);
  ASSERT_EQ(handle(bytes).status(), v1::CommandResult::OK);
  // Just before expiry + skew: still remembered.
  now_ += hours(1) + seconds(59);
  ASSERT_TRUE(store_->forget(now_));
  EXPECT_TRUE(*store_->nonce_used(c.nonce()));
  // After: forgotten, and a command carrying it is refused by its window.
  now_ += hours(2);
  ASSERT_TRUE(store_->forget(now_));
  EXPECT_FALSE(*store_->nonce_used(c.nonce()));
  auto reuse = command("c-2");
  reuse.set_nonce(c.nonce());
  *reuse.mutable_not_before() = c.not_before();
  *reuse.mutable_expires() = c.expires();
  expect_refused(fleet_->sign(reuse), "expired at ", "c-2");
  // The first command's result is still kept: a replay is answered, not run.
  auto again = handle(bytes);
  EXPECT_TRUE(again.repeated_command());
  EXPECT_EQ(handlers_.runs(), 1);
}

// The state directory's disk is full: the command cannot be recorded, so it
// does not run (it could not be kept from running twice), and it is refused
// with the reason; once there is room, the same signed command runs.
TEST_P(CommandVerifierTest, ACommandThatCannotBeRecordedDoesNotRun) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to mount a small tmpfs";
  const std::string state = dir_.path + "/state";
  ASSERT_EQ(::mkdir(state.c_str(), 0700), 0);
  if (::mount("tmpfs", state.c_str(), "tmpfs", 0, "size=512k,mode=0700") != 0) {
    GTEST_SKIP() << "cannot mount a tmpfs here: " << std::strerror(errno);
  }
  struct Unmount {
    std::string dir;
    ~Unmount() { ::umount2(dir.c_str(), MNT_DETACH); }
  } unmount{state};
  store_path_ = state + "/commands.db";
  open();
  ASSERT_EQ(handle(fleet_->sign(command("c-0"))).status(), v1::CommandResult::OK);
  {
    std::ofstream filler(state + "/filler", std::ios::binary);
    const std::string block(4096, 'f');
    while (filler.write(block.data(), block.size()) && filler.flush()) {
    }
  }
  auto c = command("c-1");
  const std::string bytes = fleet_->sign(c);
  expect_refused(bytes, "not run: ", "c-1");
  auto r = handle(bytes);
  EXPECT_NE(r.message().find("the disk is full"), std::string::npos) << r.message();
  EXPECT_EQ(handlers_.runs(), 1);
  ASSERT_EQ(::unlink((state + "/filler").c_str()), 0);
  r = handle(bytes);
  EXPECT_EQ(r.status(), v1::CommandResult::OK) << r.message();
  EXPECT_FALSE(r.repeated_command());
  EXPECT_EQ(handlers_.runs(), 2);
  verifier_.reset();
  executor_.reset();
  store_.reset();
}

TEST_P(CommandVerifierTest, TheStoreFileIsOwnerOnly) {
  struct stat st {};
  ASSERT_EQ(::stat((dir_.path + "/commands.db").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

// A hostile broker sends 10,000 commands nobody signed (garbage, unsigned,
// signed by an untrusted key): none is answered (nothing for the outbox),
// each kind is audited on its own once per interval and then in one
// record with its count, and every one is counted. A command the fleet
// signed and the terminal refuses (expired) in the middle of the flood is
// still answered and audited on its own.
TEST_P(CommandVerifierTest, AFloodOfUnauthenticatedCommandsIsAuditedInAggregateNotAnswered_REQ28) {
  auto forged =
      issue({"fleet-commands-forged", crypto::CertUsage::command_signing, Flaw::untrusted_issuer});
  v1::SignedCommand unsigned_;
  ASSERT_TRUE(unsigned_.ParseFromString(fleet_->sign(command("u-1"))));
  unsigned_.clear_signature();
  const std::vector<std::string> kinds = {random_nonce(100), unsigned_.SerializeAsString(),
                                          forged.sign(command("f-1"))};
  auto expired = command("e-1");
  *expired.mutable_not_before() = timestamp(now_ - hours(2));
  *expired.mutable_expires() = timestamp(now_ - hours(1));
  int answered = 0;
  for (int i = 0; i < 10000; ++i) {
    if (i == 5000) mono_ += seconds(61);  // the flood spans two intervals
    auto a = verifier_->answer(kinds[static_cast<std::size_t>(i) % kinds.size()], "mqtt");
    EXPECT_EQ(a.result.status(), v1::CommandResult::REFUSED);
    answered += a.report;
    if (i == 5000) {
      auto e = verifier_->answer(fleet_->sign(expired), "mqtt");
      EXPECT_TRUE(e.report) << "the fleet's own command is answered";
      EXPECT_NE(e.result.message().find("expired"), std::string::npos) << e.result.message();
    }
  }
  EXPECT_EQ(answered, 0);
  mono_ += minutes(1);
  EXPECT_FALSE(verifier_->report_refusals().has_value()) << "every count reported";
  auto entries = audit_.entries();
  EXPECT_LE(entries.size(), 3u * 2 * 2 + 1) << "kinds x intervals x (alone + count), + expired";
  std::uint64_t counted = 0;
  int expired_records = 0;
  for (auto& e : entries) {
    EXPECT_EQ(e.event, AuditEvent::command);
    EXPECT_EQ(e.source, "mqtt");
    counted += e.count.value_or(1);
    expired_records += e.command_id == "e-1";
  }
  EXPECT_EQ(counted, 10001u);
  EXPECT_EQ(expired_records, 1);
  EXPECT_EQ(handlers_.runs(), 0);
  // Dropped unread (the queue was full): counted too, reported at shutdown.
  verifier_->count_dropped("mqtt", 7);
  verifier_->report_refusals(true);
  auto last = audit_.entries().back();
  EXPECT_EQ(last.count, 7u);
  EXPECT_NE(last.reason.find("dropped unread"), std::string::npos) << last.reason;
}

// The wall clock is set 40 days forward (every nonce and result is past its
// time and forgotten), then back: the replay of a command that ran is
// refused, not run again.
TEST_P(CommandVerifierTest, AClockSetForwardThenBackLetsNoReplayThrough_REQ23) {
  auto c = command("c-1");
  const std::string bytes = fleet_->sign(c);
  ASSERT_EQ(handle(bytes).status(), v1::CommandResult::OK);
  const auto real = now_;
  now_ += hours(24 * 40);
  ASSERT_EQ(handle(fleet_->sign(command("c-far"))).status(), v1::CommandResult::OK);
  EXPECT_FALSE(*store_->nonce_used(c.nonce())) << "forgotten at the clock's word";
  now_ = real + minutes(5);
  const int runs = handlers_.runs();
  auto again = handle(bytes);
  EXPECT_EQ(again.status(), v1::CommandResult::REFUSED) << again.message();
  EXPECT_NE(again.message().find("nonce may have been forgotten"), std::string::npos)
      << again.message();
  EXPECT_EQ(handlers_.runs(), runs);
  // Also after a restart: the watermark is durable.
  open();
  EXPECT_EQ(handle(bytes).status(), v1::CommandResult::REFUSED);
  EXPECT_EQ(handlers_.runs(), runs);
  // A new command the fleet signs now that the clock is right again runs.
  auto ok = handle(fleet_->sign(command("c-2")));
  EXPECT_EQ(ok.status(), v1::CommandResult::OK) << ok.message();
}

// A clock stuck in the past never forgets by time: the store keeps at most
// max_nonces, and a command whose nonce went to make room is refused.
TEST_P(CommandVerifierTest, AClockStuckInThePastKeepsBoundedNoncesAndRefusesForgottenOnes_REQ23) {
  max_nonces_ = 3;
  open();
  std::vector<std::string> sent;
  for (int i = 0; i < 6; ++i) {
    auto c = command("c-" + std::to_string(i));
    *c.mutable_expires() = timestamp(now_ + hours(1) + minutes(i));
    sent.push_back(fleet_->sign(c));
    ASSERT_EQ(handle(sent.back()).status(), v1::CommandResult::OK);
  }
  ASSERT_TRUE(store_->forget(now_, 3));
  int kept = 0;
  for (int i = 0; i < 6; ++i) {
    v1::SignedCommand sc;
    v1::Command c;
    ASSERT_TRUE(sc.ParseFromString(sent[static_cast<std::size_t>(i)]));
    ASSERT_TRUE(c.ParseFromString(sc.command()));
    kept += *store_->nonce_used(c.nonce());
  }
  EXPECT_EQ(kept, 3);
  // The oldest: its result is still kept (a repeat answered), but a copy
  // under a new command id with its nonce is refused by the watermark.
  v1::SignedCommand sc;
  v1::Command oldest;
  ASSERT_TRUE(sc.ParseFromString(sent[0]));
  ASSERT_TRUE(oldest.ParseFromString(sc.command()));
  oldest.set_command_id("c-0-again");
  auto r = handle(fleet_->sign(oldest));
  EXPECT_EQ(r.status(), v1::CommandResult::REFUSED);
  EXPECT_NE(r.message().find("nonce may have been forgotten"), std::string::npos) << r.message();
  EXPECT_EQ(handlers_.runs(), 6);
}

std::string key_name(const ::testing::TestParamInfo<crypto::KeyType>& info) {
  std::string n(crypto::name(info.param));
  for (auto& ch : n) {
    if (ch == '-') ch = '_';
  }
  return n;
}

INSTANTIATE_TEST_SUITE_P(KeyTypes, CommandVerifierTest,
                         ::testing::Values(crypto::KeyType::ecdsa_p256, crypto::KeyType::ed25519,
                                           crypto::KeyType::sm2),
                         key_name);

}  // namespace
}  // namespace portier::commands
