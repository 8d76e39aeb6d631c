// The management feature end to end inside one process: identity and
// outbox under the state directory, a birth per start with a growing
// session epoch, the audit trail (a real AuditLog file) shipped once per
// record across a restart, and one chain the fleet's verifier accepts
// across sessions. The link is the in-process double (fake_link.h); the
// real links have their own tests against Mosquitto and portier-fleet.
#include "agent/management/management_feature.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "agent/audit_checkpoint.h"
#include "agent/audit_log.h"
#include "agent/commands/command_signing.h"
#include "agent/envelope/envelope_chain.h"
#include "agent/identity/device_key.h"
#include "agent/management/fake_link.h"
#include "common/audit_events.h"
#include "portier/v1/telemetry.pb.h"
#include "support/test_pki.h"

namespace portier::management {
namespace {

using namespace std::chrono_literals;

class RecordingHealth final : public agent::TerminalHealth {
 public:
  void set_terminal_health(policy::Health, std::vector<std::string>) override {}
  void set_component_health(const std::string& c, policy::Health s, std::string r) override {
    std::lock_guard lock(mu);
    states.push_back(c + ":" + (s == policy::Health::ok ? "ok" : "degraded") + ":" + r);
  }
  std::mutex mu;
  std::vector<std::string> states;
};

class ManagementFeatureTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char t[] = "/tmp/portier-mgmt-XXXXXX";
    dir_ = mkdtemp(t);
    auto log = agent::AuditLog::open(dir_ + "/audit.jsonl");
    ASSERT_TRUE(log) << log.error().message();
    audit_ = std::move(*log);
    config_.server = "ssl://fleet.invalid:8883";
    config_.fleet = "bank";
    config_.ca_file = config_.cert_file = "/dev/null";
    auto pki = portier::test::TestPki::create(dir_);
    ASSERT_TRUE(pki) << pki.error().message();
    pki_ = std::make_unique<portier::test::TestPki>(std::move(*pki));
    config_.command_trust_anchors = {pki_->ca_path()};
    acker_ = test::make_acker(*pki_);
    ASSERT_TRUE(acker_);
  }
  void TearDown() override {
    feature_.reset();
    audit_.reset();
    std::filesystem::remove_all(dir_);
  }
  // Starts the feature with a fresh double as its link (connected).
  void start() {
    feature_.reset();
    link_ = nullptr;
    feature_ = std::make_unique<ManagementFeature>(
        config_,
        [this](const ManagementConfig&,
               const LinkContext& c) -> Result<std::unique_ptr<link::Link>> {
          auto l = std::make_unique<test::FakeLink>();
          l->acker = acker_;
          link_ = l.get();
          will_ = c.offline_notice;
          return l;
        });
    agent::FeatureContext ctx;
    ctx.audit = audit_.get();
    ctx.state_dir = dir_;
    ctx.health = &health_;
    auto ok = feature_->start(ctx);
    ASSERT_TRUE(ok) << ok.error().message();
    link_->connect();
  }
  std::string feature_pub_pem() {
    auto key =
        identity::load_or_create_key(dir_ + "/management/device.key", crypto::KeyType::ecdsa_p256);
    EXPECT_TRUE(key);
    return *key->public_key()->to_pem();
  }

  std::string dir_;
  std::unique_ptr<portier::test::TestPki> pki_;
  std::shared_ptr<const link::AckSigner> acker_;
  std::unique_ptr<agent::AuditLog> audit_;
  RecordingHealth health_;
  ManagementConfig config_;
  std::unique_ptr<ManagementFeature> feature_;
  test::FakeLink* link_ = nullptr;
  std::string will_;
};

TEST_F(ManagementFeatureTest, EachStartIsANewSessionOfOneChainAndEveryAuditRecordGoesOnce_REQ29) {
  // What the fleet would keep: each envelope once, by its sequence (an
  // envelope not acknowledged before a stop is sent again after the start).
  std::map<std::uint64_t, v1::Envelope> fleet;
  auto take = [&] {
    for (auto& m : link_->sent()) {
      v1::Envelope env;
      v1::EnvelopeBody body;
      ASSERT_TRUE(env.ParseFromString(m.bytes));
      ASSERT_TRUE(body.ParseFromString(env.body()));
      fleet.emplace(body.sequence(), env);
      link_->ack(m.id);
    }
  };
  auto records_with = [&](const std::string& text) {
    int n = 0;
    for (auto& [_, env] : fleet) {
      v1::EnvelopeBody b;
      b.ParseFromString(env.body());
      if (b.payload_type() != v1::PAYLOAD_AUDIT) continue;
      v1::AuditBatch batch;
      batch.ParseFromString(b.payload());
      for (auto& r : batch.records()) n += r.find(text) != std::string::npos;
    }
    return n;
  };
  auto births = [&] {
    std::vector<std::uint64_t> epochs;
    for (auto& [_, env] : fleet) {
      v1::EnvelopeBody b;
      b.ParseFromString(env.body());
      v1::Birth birth;
      if (b.payload_type() == v1::PAYLOAD_BIRTH && birth.ParseFromString(b.payload())) {
        epochs.push_back(birth.session_epoch());
        EXPECT_EQ(b.session_epoch(), birth.session_epoch());
      }
    }
    return epochs;
  };
  auto until = [&](auto done) {
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (!done() && std::chrono::steady_clock::now() < deadline) {
      take();
      link_->wait_sent(link_->sent().size() + 1, 20ms);
    }
    take();
    return done();
  };

  start();
  const auto terminal = feature_->terminal_id();
  ASSERT_EQ(terminal.rfind("T-", 0), 0u);
  for (int i = 0; i < 5; ++i) {
    audit_->record(audit::policy_loaded("p.toml", "test " + std::to_string(i)));
  }
  ASSERT_TRUE(audit_->flush());
  ASSERT_TRUE(until([&] { return records_with("\"test 4\"") == 1; }));
  EXPECT_EQ(births(), (std::vector<std::uint64_t>{1}));

  // Restart, with a record written while the feature was down.
  feature_->stop();
  audit_->record(audit::policy_loaded("p.toml", "while the feature was down"));
  ASSERT_TRUE(audit_->flush());
  start();
  EXPECT_EQ(feature_->terminal_id(), terminal);
  ASSERT_TRUE(until([&] { return records_with("while the feature was down") == 1; }));
  EXPECT_EQ(births(), (std::vector<std::uint64_t>{1, 2}));
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(records_with("\"test " + std::to_string(i) + "\""), 1) << "record " << i;
  }

  // The fleet's verifier accepts every envelope of both sessions, in order.
  auto pub = crypto::PublicKey::from_pem(feature_pub_pem());
  ASSERT_TRUE(pub);
  envelope::ChainVerifier v(terminal, *pub, {});
  for (auto& [seq, e] : fleet) {
    auto ok = v.accept(e);
    ASSERT_TRUE(ok) << "sequence " << seq << ": " << ok.error().message();
  }
  EXPECT_EQ(v.state().next_sequence, fleet.rbegin()->first + 1);
  EXPECT_EQ(fleet.begin()->first, 1u);
  EXPECT_EQ(fleet.size(), fleet.rbegin()->first) << "no sequence is missing";
}

TEST_F(ManagementFeatureTest, ACheckpointIsSignedAtStopAndATruncatedTrailIsReportedAtStart_REQ29) {
  start();
  for (int i = 0; i < 3; ++i) audit_->record(audit::policy_loaded("p.toml", std::to_string(i)));
  ASSERT_TRUE(audit_->flush());
  // Let the records reach the uplink, then stop: the head is checkpointed.
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (feature_->uplink_stats().sealed < 2 && std::chrono::steady_clock::now() < deadline) {
    link_->wait_sent(1000000, 20ms);
  }
  feature_->stop();
  const std::string cp_path = dir_ + "/management/audit-checkpoints.jsonl";
  auto cps = agent::read_checkpoints(cp_path);
  ASSERT_TRUE(cps) << cps.error().message();
  ASSERT_FALSE(cps->empty());
  EXPECT_EQ(cps->back().terminal_id, feature_->terminal_id());
  // Offline, as `portierctl audit verify --checkpoints` does.
  auto pub = crypto::PublicKey::from_pem(feature_pub_pem());
  ASSERT_TRUE(pub);
  auto ok = agent::verify_with_checkpoints({dir_ + "/audit.jsonl"}, *cps, *pub);
  EXPECT_TRUE(ok.ok) << ok.problem;

  // Someone cuts the trail short while portierd is down.
  audit_.reset();
  {
    std::ifstream in(dir_ + "/audit.jsonl");
    std::string first;
    std::getline(in, first);
    std::ofstream out(dir_ + "/audit.jsonl", std::ios::trunc);
    out << first << "\n";
  }
  auto log = agent::AuditLog::open(dir_ + "/audit.jsonl");
  ASSERT_TRUE(log);
  audit_ = std::move(*log);
  start();
  ASSERT_TRUE(audit_->flush());
  bool reported = false;
  for (auto& l : audit_->tail(100)) {
    reported |= l.find("\"event\":\"audit_tampered\"") != std::string::npos &&
                l.find("truncated or deleted") != std::string::npos;
  }
  EXPECT_TRUE(reported) << "no audit_tampered record";
  std::lock_guard lock(health_.mu);
  bool degraded = false;
  for (auto& s : health_.states) degraded |= s.rfind("audit trail:degraded", 0) == 0;
  EXPECT_TRUE(degraded);
}

TEST_F(ManagementFeatureTest,
       ASignedCommandRunsOnceAMisdirectedOneIsRefusedGarbageOnlyAudited_REQ36) {
  start();
  auto signer_leaf =
      pki_->issue({.name = "fleet-commands", .usage = crypto::CertUsage::command_signing});
  ASSERT_TRUE(signer_leaf) << signer_leaf.error().message();
  auto key_signer = crypto::KeySigner::from(signer_leaf->key);
  ASSERT_TRUE(key_signer);
  std::vector<crypto::Certificate> chain{signer_leaf->cert};
  chain.insert(chain.end(), signer_leaf->chain.begin(), signer_leaf->chain.end());
  auto make = [&](const std::string& id, const std::string& target) {
    v1::Command c;
    c.set_command_id(id);
    c.set_target_terminal(target);
    c.set_nonce(std::string(16, static_cast<char>('a' + id.size())) + id);
    const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    c.mutable_not_before()->set_seconds(now - 10);
    c.mutable_expires()->set_seconds(now + 600);
    c.mutable_ping()->set_text("hello " + id);
    auto sc = commands::sign_command(c, *key_signer, chain);
    EXPECT_TRUE(sc) << sc.error().message();
    return sc->SerializeAsString();
  };
  const auto good = make("c-1", feature_->terminal_id());
  link_->deliver(good);
  link_->deliver(good);  // replayed by the broker
  link_->deliver(make("c-2", "T-someone-else"));
  link_->deliver("garbage");
  std::vector<v1::CommandResult> results;
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  std::set<std::uint64_t> seen;
  while (results.size() < 3 && std::chrono::steady_clock::now() < deadline) {
    for (auto& m : link_->sent()) {
      if (!seen.insert(m.id).second) continue;
      link_->ack(m.id);
      if (m.kind != "result") continue;
      v1::Envelope env;
      v1::EnvelopeBody body;
      ASSERT_TRUE(env.ParseFromString(m.bytes) && body.ParseFromString(env.body()));
      ASSERT_EQ(body.payload_type(), v1::PAYLOAD_COMMAND_RESULT);
      results.emplace_back().ParseFromString(body.payload());
    }
    link_->wait_sent(link_->sent().size() + 1, 20ms);
  }
  ASSERT_EQ(results.size(), 3u);
  EXPECT_EQ(results[0].status(), v1::CommandResult::OK);
  EXPECT_EQ(results[0].output(), "hello c-1");
  EXPECT_EQ(results[1].status(), v1::CommandResult::OK);
  EXPECT_TRUE(results[1].repeated_command()) << "a replay gets the first result, nothing runs";
  EXPECT_EQ(results[2].status(), v1::CommandResult::REFUSED);
  EXPECT_NE(results[2].message().find("T-someone-else"), std::string::npos) << results[2].message();
  // The garbage: anyone could have sent it, so it is not answered (a flood
  // would fill the outbox); it is audited, with its source and reason.
  feature_->stop();
  ASSERT_TRUE(audit_->flush());
  bool audited = false;
  for (auto& l : audit_->tail(100)) {
    audited |= l.find("\"event\":\"command\"") != std::string::npos &&
               l.find("malformed") != std::string::npos;
  }
  EXPECT_TRUE(audited) << "the garbage's refusal is not in the trail";
}

TEST_F(ManagementFeatureTest, TheLastWillIsTheSignedOfflineNoticeOfThisSession_REQ19) {
  start();
  v1::Offline o;
  ASSERT_TRUE(o.ParseFromString(will_));
  EXPECT_EQ(o.terminal_id(), feature_->terminal_id());
  EXPECT_EQ(o.session_epoch(), 1u);
  EXPECT_FALSE(o.signature().empty());
}

TEST_F(ManagementFeatureTest, AStateDirectoryOthersCanReadIsRefused) {
  ASSERT_EQ(::mkdir((dir_ + "/management").c_str(), 0755), 0);
  feature_ = std::make_unique<ManagementFeature>(config_, [](auto&, auto&) {
    return Result<std::unique_ptr<link::Link>>(std::make_unique<test::FakeLink>());
  });
  agent::FeatureContext ctx;
  ctx.state_dir = dir_;
  auto ok = feature_->start(ctx);
  ASSERT_FALSE(ok);
  EXPECT_NE(ok.error().message().find("0700"), std::string::npos) << ok.error().message();
}

// Enrolment configured and the fleet's Enrolment service not answering (a
// closed port): the feature runs, seals and keeps what it has to say in the
// outbox, never makes a link, and says why (issue 10, item 1).
TEST_F(ManagementFeatureTest, BeforeEnrolmentTheLinkStaysDownAndTheOutboxFills_REQ33) {
  config_.cert_file.clear();
  config_.ca_file = pki_->ca_path();
  config_.enrolment_server = "127.0.0.1:1";  // nothing listens there
  config_.enrolment_secret_file = dir_ + "/enrolment.secret";
  config_.serial = "SN-UNIT-1";
  config_.enrolment_retry_max_s = 1;
  ASSERT_TRUE(portier::test::write_pki_file(config_.enrolment_secret_file,
                                            "a-secret-of-enough-bytes", 0600));
  int links_made = 0;
  feature_ = std::make_unique<ManagementFeature>(
      config_, [&](const ManagementConfig&, const LinkContext&) {
        ++links_made;
        return Result<std::unique_ptr<link::Link>>(std::make_unique<test::FakeLink>());
      });
  agent::FeatureContext ctx;
  ctx.audit = audit_.get();
  ctx.state_dir = dir_;
  ctx.health = &health_;
  auto ok = feature_->start(ctx);
  ASSERT_TRUE(ok) << ok.error().message();
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (std::chrono::steady_clock::now() < deadline &&
         (feature_->uplink_stats().sealed == 0 ||
          // The first attempt's answer, not only the state before it.
          feature_->enrolment_state().find("127.0.0.1:1") == std::string::npos)) {
    std::this_thread::sleep_for(20ms);  // polling the feature's own threads
  }
  EXPECT_GT(feature_->uplink_stats().sealed, 0u);  // the birth at least, committed
  EXPECT_NE(feature_->enrolment_state().find("127.0.0.1:1"), std::string::npos)
      << feature_->enrolment_state();
  EXPECT_EQ(links_made, 0);
  {
    std::lock_guard lock(health_.mu);
    bool said = false;
    for (auto& st : health_.states) {
      said = said || st.rfind("management enrolment:degraded:", 0) == 0;
    }
    EXPECT_TRUE(said);
  }
  feature_->stop();
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/management/device.crt"));
}

}  // namespace
}  // namespace portier::management
