// A key rotation whose answer is lost (review finding M4): the fleet's real
// Enrolment service records the rotation (its store then refuses the old
// key from the cutover on as a retired key's) but the terminal never gets
// the answer (its call's deadline passes while the fleet is still busy
// after recording; or the fleet stops). The management feature (file key,
// the in-process link double) must keep its uplink held at the cutover,
// never sign the cutover or anything after it with the old key, ask again
// in the background, across a restart of portierd and of the fleet, and
// finish the rotation when the fleet answers: the fleet's store then holds
// every envelope once, in order, none refused. The fleet's refusal (it
// recorded nothing) ends the rotation: the pending key is destroyed and
// the old key goes on.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "agent/audit_log.h"
#include "agent/commands/command_signing.h"
#include "agent/envelope/envelope_chain.h"
#include "agent/identity/certificate_store.h"
#include "agent/identity/pending_rotation.h"
#include "agent/management/fake_link.h"
#include "agent/management/management_feature.h"
#include "common/audit_events.h"
#include "portier/v1/telemetry.pb.h"
#include "support/test_pki.h"
#include "tools/fleet/enrolment/enrolment_server.h"
#include "tools/fleet/enrolment/enrolment_service.h"
#include "tools/fleet/enrolment/fleet_ca.h"
#include "tools/fleet/enrolment/issued_key_record.h"
#include "tools/fleet/enrolment/sqlite_enrolment_registry.h"
#include "tools/fleet/receiver.h"
#include "tools/fleet/sqlite_fleet_store.h"

namespace portier::management {
namespace {

using namespace std::chrono_literals;

constexpr const char* kSerial = "SN-M4-1001";
constexpr const char* kSecret = "one-time-secret-of-SN-M4-1001";

// The feature's link: a double the test keeps after the feature dropped it
// (a rotation starts a new link; what the old one sent stays readable).
// `started` says when the feature started it (connected only then, so that
// the sender hears of the connection).
class BorrowedLink final : public link::Link {
 public:
  BorrowedLink(test::FakeLink& l, std::shared_ptr<std::atomic<bool>> started)
      : l_(l), started_(std::move(started)) {}
  Result<void> start(link::LinkHandler& h) override {
    auto r = l_.start(h);
    if (r) *started_ = true;
    return r;
  }
  void stop() override { l_.stop(); }
  Result<void> send(const link::Outgoing& m) override { return l_.send(m); }
  bool connected() const override { return l_.connected(); }

 private:
  test::FakeLink& l_;
  std::shared_ptr<std::atomic<bool>> started_;
};

template <typename F>
bool eventually(F done, std::chrono::seconds limit = 60s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(20ms);  // polling the feature's threads
  }
  return true;
}

class RotationAnswerLostTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char t[] = "/tmp/portier-m4-XXXXXX";
    dir_ = mkdtemp(t);
    auto pki = portier::test::TestPki::create(dir_);
    ASSERT_TRUE(pki) << pki.error().message();
    pki_ = std::make_unique<portier::test::TestPki>(std::move(*pki));
    auto server = pki_->issue({.name = "fleet-server", .usage = crypto::CertUsage::tls_server});
    ASSERT_TRUE(server) << server.error().message();
    server_cert_ = std::make_unique<portier::test::IssuedLeaf>(std::move(*server));
    auto ca = fleet::FleetCa::load(pki_->intermediate_path(), dir_ + "/intermediate.key");
    ASSERT_TRUE(ca) << ca.error().message();
    ca_ = std::make_unique<fleet::FleetCa>(std::move(*ca));
    auto store = fleet::SqliteFleetStore::open(dir_ + "/fleet.db");
    ASSERT_TRUE(store) << store.error().message();
    store_ = std::move(*store);
    auto log = agent::AuditLog::open(dir_ + "/audit.jsonl");
    ASSERT_TRUE(log) << log.error().message();
    audit_ = std::move(*log);
    acker_ = test::make_acker(*pki_);
    ASSERT_TRUE(acker_);

    config_.server = "ssl://fleet.invalid:8883";
    config_.fleet = "bank";
    config_.ca_file = pki_->ca_path();
    config_.command_trust_anchors = {pki_->ca_path()};
    config_.enrolment_secret_file = dir_ + "/enrolment.secret";
    ASSERT_TRUE(portier::test::write_pki_file(config_.enrolment_secret_file, kSecret, 0600));
    config_.serial = kSerial;
    config_.enrolment_retry_max_s = 2;
    // A short deadline: an answer that takes longer is lost.
    config_.enrolment_timeout_ms = 3000;
    start_fleet(true);
  }
  void TearDown() override {
    open_latch();
    feature_.reset();
    stop_fleet();
    audit_.reset();
    std::filesystem::remove_all(dir_);
  }

  // The fleet's Enrolment service over its registry file (opened again:
  // what it recorded before a restart is all it knows), recording every
  // issued key in the fleet's store as portier-fleet serve does; on the
  // same port as before when restarted.
  void start_fleet(bool first = false) {
    auto reg = fleet::SqliteEnrolmentRegistry::open(dir_ + "/enrolment.db");
    ASSERT_TRUE(reg) << reg.error().message();
    registry_ = std::move(*reg);
    if (first) {
      ASSERT_TRUE(registry_->expect(kSerial, crypto::byte_view(std::string(kSecret))));
    }
    service_ = std::make_unique<fleet::EnrolmentService>(*ca_, *registry_);
    service_->on_issued([this](const fleet::IssuedKey& k) -> Result<void> {
      auto recorded = fleet::record_issued(*store_, k);
      if (k.kind == fleet::IssuedKey::Kind::rotated) {
        // Recorded; the answer waits until the terminal gave up on it.
        std::unique_lock lock(latch_mu_);
        ++rotations_recorded_;
        latch_cv_.wait_for(lock, 120s, [this] { return !latched_; });
      }
      return recorded;
    });
    auto server = fleet::EnrolmentServer::start(
        *service_, {"127.0.0.1:" + std::to_string(port_), server_cert_->chain_path,
                    server_cert_->key_path, pki_->ca_path()});
    ASSERT_TRUE(server) << server.error().message();
    server_ = std::move(*server);
    port_ = server_->port();
    config_.enrolment_server = "127.0.0.1:" + std::to_string(port_);
  }
  void stop_fleet() {
    if (server_) server_->stop();
    server_.reset();
    service_.reset();
    registry_.reset();
  }
  void open_latch() {
    {
      std::lock_guard lock(latch_mu_);
      latched_ = false;
    }
    latch_cv_.notify_all();
  }
  int rotations_recorded() {
    std::lock_guard lock(latch_mu_);
    return rotations_recorded_;
  }

  void start_feature() {
    feature_ = std::make_unique<ManagementFeature>(
        config_,
        [this](const ManagementConfig&, const LinkContext&) -> Result<std::unique_ptr<link::Link>> {
          auto l = std::make_unique<test::FakeLink>();
          l->acker = acker_;
          auto started = std::make_shared<std::atomic<bool>>(false);
          auto borrowed = std::make_unique<BorrowedLink>(*l, started);
          std::lock_guard lock(link_mu_);
          links_.push_back(std::move(l));
          started_.push_back(std::move(started));
          return std::unique_ptr<link::Link>(std::move(borrowed));
        });
    agent::FeatureContext ctx;
    ctx.audit = audit_.get();
    ctx.state_dir = dir_;
    auto ok = feature_->start(ctx);
    ASSERT_TRUE(ok) << ok.error().message();
  }

  // Takes what every link sent (the newest connected), acknowledging it:
  // what the fleet would receive, each sequence once.
  void take() {
    std::lock_guard lock(link_mu_);
    if (!links_.empty() && *started_.back() && !links_.back()->connected()) {
      links_.back()->connect();
    }
    for (auto& l : links_) {
      for (auto& m : l->sent()) {
        sent_.emplace(m.id, m.bytes);
        if (acked_.insert({l.get(), m.id}).second) l->ack(m.id);
      }
    }
  }
  // Takes what was sent until `done`.
  template <typename F>
  bool until(F done, std::chrono::seconds limit = 60s) {
    return eventually(
        [&] {
          take();
          return done();
        },
        limit);
  }

  std::string command(
      const std::string& id, const std::function<void(v1::Command&)>& body = [](v1::Command& c) {
        c.mutable_rotate_device_key();
      }) {
    auto leaf =
        pki_->issue({.name = "fleet-commands", .usage = crypto::CertUsage::command_signing});
    EXPECT_TRUE(leaf);
    auto key_signer = crypto::KeySigner::from(leaf->key);
    std::vector<crypto::Certificate> chain{leaf->cert};
    chain.insert(chain.end(), leaf->chain.begin(), leaf->chain.end());
    v1::Command c;
    c.set_command_id(id);
    c.set_target_terminal(feature_->terminal_id());
    c.set_nonce("nonce-of-" + id + "-0123456789");
    const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    c.mutable_not_before()->set_seconds(now - 10);
    c.mutable_expires()->set_seconds(now + 600);
    body(c);
    auto sc = commands::sign_command(c, *key_signer, chain);
    EXPECT_TRUE(sc) << sc.error().message();
    return sc->SerializeAsString();
  }
  void deliver(const std::string& bytes) {
    std::lock_guard lock(link_mu_);
    links_.back()->deliver(bytes);
  }

  bool sent_with(const std::string& text) {
    for (auto& [seq, bytes] : sent_) {
      if (bytes.find(text) != std::string::npos) return true;
    }
    return false;
  }

  std::optional<v1::CommandResult> result_of(const std::string& id) {
    for (auto& [seq, bytes] : sent_) {
      v1::Envelope env;
      v1::EnvelopeBody body;
      v1::CommandResult r;
      if (env.ParseFromString(bytes) && body.ParseFromString(env.body()) &&
          body.payload_type() == v1::PAYLOAD_COMMAND_RESULT && r.ParseFromString(body.payload()) &&
          r.command_id() == id) {
        return r;
      }
    }
    return std::nullopt;
  }

  std::string installed_key_id() {
    auto c = identity::CertificateStore(dir_ + "/management/device.crt").load();
    if (!c || !*c) return "";
    auto pub = (*c)->cert.public_key();
    if (!pub) return "";
    auto kid = envelope::key_id(*pub);
    return kid ? *kid : "";
  }

  void record_audit(const std::string& tag, int n) {
    for (int i = 0; i < n; ++i) {
      audit_->record(audit::policy_loaded("p.toml", tag + " " + std::to_string(i)));
    }
    ASSERT_TRUE(audit_->flush());
  }

  // The audit records (each line names its own record number) carried by
  // the envelopes in `rows`, with how often each was stored.
  static std::map<std::string, int> audit_lines(const std::vector<fleet::StoredEnvelope>& rows) {
    std::map<std::string, int> out;
    for (auto& r : rows) {
      v1::Envelope env;
      v1::EnvelopeBody body;
      if (!env.ParseFromString(r.envelope) || !body.ParseFromString(env.body())) continue;
      if (body.payload_type() != v1::PAYLOAD_AUDIT) continue;
      v1::AuditBatch batch;
      batch.ParseFromString(body.payload());
      for (auto& line : batch.records()) ++out[line];
    }
    return out;
  }

  // Every envelope sent, in sequence order, to the fleet's receiver (the
  // store the Enrolment service told of the enrolment and the rotation):
  // none refused, the chain to the last one, each stored once in order.
  void expect_fleet_takes_all(std::uint64_t cutover, const std::string& old_kid,
                              const std::string& new_kid) {
    const std::string tid = feature_->terminal_id();
    fleet::Receiver receiver(*store_);
    std::uint64_t expected = 1;
    for (auto& [seq, bytes] : sent_) {
      EXPECT_EQ(seq, expected++) << "every sequence sent, none missing";
      v1::Envelope env;
      ASSERT_TRUE(env.ParseFromString(bytes));
      if (env.has_signature() && !new_kid.empty()) {
        // The old key signs nothing from the cutover on.
        EXPECT_EQ(env.signature().key_id(), seq < cutover ? old_kid : new_kid) << seq;
      }
      auto got = receiver.receive(tid, "envelope", bytes, std::chrono::system_clock::now());
      EXPECT_TRUE(got) << seq << ": " << got.error().message();
    }
    auto counts = store_->counts(tid);
    ASSERT_TRUE(counts);
    EXPECT_EQ(counts->last_sequence, sent_.rbegin()->first) << "the chain reached the end";
    auto incidents = store_->incidents(tid, 1000);
    ASSERT_TRUE(incidents);
    for (auto& i : *incidents) {
      ADD_FAILURE() << "incident " << i.kind << " at " << i.sequence << ": " << i.detail;
    }
    auto rows = store_->envelopes(tid, 0, 100000);
    ASSERT_TRUE(rows);
    ASSERT_EQ(rows->size(), sent_.size());
    for (std::size_t i = 0; i < rows->size(); ++i) EXPECT_EQ((*rows)[i].sequence, i + 1);
    for (auto& [line, n] : audit_lines(*rows)) EXPECT_EQ(n, 1) << line << " stored once";
  }

  // The cutover the fleet recorded for the terminal's next key (0: none).
  std::uint64_t recorded_cutover() {
    auto keys = store_->keys(feature_->terminal_id());
    if (!keys) return 0;
    for (auto& k : *keys) {
      if (k.cutover != 0) return k.cutover;
    }
    return 0;
  }

  std::string dir_;
  std::unique_ptr<portier::test::TestPki> pki_;
  std::unique_ptr<portier::test::IssuedLeaf> server_cert_;
  std::unique_ptr<fleet::FleetCa> ca_;
  std::unique_ptr<fleet::SqliteFleetStore> store_;
  std::unique_ptr<fleet::SqliteEnrolmentRegistry> registry_;
  std::unique_ptr<fleet::EnrolmentService> service_;
  std::unique_ptr<fleet::EnrolmentServer> server_;
  int port_ = 0;
  std::mutex latch_mu_;
  std::condition_variable latch_cv_;
  bool latched_ = false;
  int rotations_recorded_ = 0;
  std::unique_ptr<agent::AuditLog> audit_;
  std::shared_ptr<const link::AckSigner> acker_;
  ManagementConfig config_;
  std::unique_ptr<ManagementFeature> feature_;
  std::mutex link_mu_;
  std::vector<std::unique_ptr<test::FakeLink>> links_;
  std::vector<std::shared_ptr<std::atomic<bool>>> started_;  // by links_
  std::map<std::uint64_t, std::string> sent_;                // what the fleet got, by sequence
  // Acknowledged, per link: a link started again (a rotation restarts it) is
  // sent the unacknowledged oldest run first and waits for its answer.
  std::set<std::pair<const test::FakeLink*, std::uint64_t>> acked_;
};

// Regression (M4): three lost answers used to release the uplink with the
// old key, which then signed from the cutover on while the fleet had
// recorded the rotation: everything from there was refused as a retired
// key's until the operator rotated again.
TEST_F(RotationAnswerLostTest,
       ARotationWhoseAnswerIsLostNeverSignsPastTheCutoverWithTheOldKey_REQ33) {
  start_feature();
  ASSERT_TRUE(until([&] { return feature_->enrolment_state().empty() && !sent_.empty(); }))
      << feature_->enrolment_state();
  record_audit("before", 5);
  ASSERT_TRUE(until([&] { return sent_with("before 4"); }));
  const std::string old_kid = installed_key_id();
  ASSERT_FALSE(old_kid.empty());

  ASSERT_TRUE(registry_->allow_rotation(feature_->terminal_id()));
  {
    std::lock_guard lock(latch_mu_);
    latched_ = true;  // the fleet records the rotation, its answer comes too late
  }
  deliver(command("c-rotate"));
  ASSERT_TRUE(eventually([&] { return !feature_->rotation_state().empty(); }))
      << "the rotation is pending";
  EXPECT_EQ(rotations_recorded(), 1);
  const std::uint64_t cutover = recorded_cutover();
  ASSERT_GT(cutover, 1u) << "the fleet recorded the rotation with its cutover";
  EXPECT_NE(feature_->rotation_state().find("uplink held at sequence " + std::to_string(cutover)),
            std::string::npos)
      << feature_->rotation_state();
  EXPECT_TRUE(std::filesystem::exists(dir_ + "/management/rotation.pending"));
  EXPECT_TRUE(std::filesystem::exists(dir_ + "/management/device.key.pending"));

  // The fleet goes away after recording: no answer to the next attempts
  // either (portierd gave up after three and went on with the old key).
  open_latch();
  stop_fleet();
  record_audit("while pending", 5);
  // An InstallCertificate meanwhile (the current key's certificate again)
  // must not end the hold either.
  auto current = identity::CertificateStore(dir_ + "/management/device.crt").load();
  ASSERT_TRUE(current && *current);
  deliver(command("c-install", [&](v1::Command& c) {
    auto der = *(*current)->cert.der();
    c.mutable_install_certificate()->set_certificate(std::string(der.begin(), der.end()));
    for (const auto& x : (*current)->chain) {
      auto d = *x.der();
      c.mutable_install_certificate()->add_chain(std::string(d.begin(), d.end()));
    }
  }));
  ASSERT_TRUE(eventually([&] {
    return feature_->rotation_state().find("asked 5 times") != std::string::npos;
  })) << feature_->rotation_state();
  // Records made meanwhile wait: nothing at or after the cutover leaves.
  take();
  EXPECT_LT(sent_.rbegin()->first, cutover);
  EXPECT_FALSE(sent_with("while pending"));
  EXPECT_EQ(installed_key_id(), old_kid);

  // The fleet is back: the next attempt gets the certificate it recorded.
  start_fleet();
  ASSERT_TRUE(until([&] { return feature_->rotation_state().empty(); }))
      << feature_->rotation_state();
  const std::string new_kid = installed_key_id();
  EXPECT_NE(new_kid, old_kid);
  EXPECT_EQ(rotations_recorded(), 1) << "recorded once, answered again";
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/management/rotation.pending"));
  record_audit("after", 5);
  ASSERT_TRUE(until([&] {
    return result_of("c-rotate").has_value() && sent_with("while pending 4") &&
           sent_with("after 4");
  }));
  ASSERT_TRUE(until([&] { return result_of("c-install").has_value(); }));
  EXPECT_NE(result_of("c-install")->status(), v1::CommandResult::OK);
  EXPECT_NE(result_of("c-install")->message().find("a key rotation over Renew is pending"),
            std::string::npos)
      << result_of("c-install")->message();
  auto result = result_of("c-rotate");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status(), v1::CommandResult::OK) << result->message();
  EXPECT_NE(result->output().find("pending: the fleet did not answer; uplink held at sequence " +
                                  std::to_string(cutover)),
            std::string::npos)
      << result->output();
  expect_fleet_takes_all(cutover, old_kid, new_kid);
}

// The same across a restart of portierd while pending (the state a SIGKILL
// leaves: only the files) and of the fleet (only its SQLite files): the
// restarted terminal holds at the cutover from its start, and finishes the
// rotation once the fleet is back.
TEST_F(RotationAnswerLostTest, APendingRotationSurvivesARestartOfTheTerminalAndOfTheFleet_REQ33) {
  start_feature();
  ASSERT_TRUE(until([&] { return feature_->enrolment_state().empty() && !sent_.empty(); }))
      << feature_->enrolment_state();
  record_audit("before", 3);
  ASSERT_TRUE(until([&] { return sent_with("before 2"); }));
  const std::string old_kid = installed_key_id();
  ASSERT_TRUE(registry_->allow_rotation(feature_->terminal_id()));
  {
    std::lock_guard lock(latch_mu_);
    latched_ = true;
  }
  deliver(command("c-rotate"));
  ASSERT_TRUE(eventually([&] { return !feature_->rotation_state().empty(); }));
  const std::uint64_t cutover = recorded_cutover();
  ASSERT_GT(cutover, 1u);
  // The fleet goes away (after recording), then the terminal.
  open_latch();
  stop_fleet();
  record_audit("while pending", 3);
  feature_.reset();

  // portierd starts again, the fleet still away: held from the start.
  start_feature();
  ASSERT_TRUE(eventually([&] {
    return feature_->rotation_state().find("uplink held at sequence " + std::to_string(cutover)) !=
           std::string::npos;
  })) << feature_->rotation_state();
  record_audit("after the restart", 3);
  // The link is up and sends what is below the cutover; nothing from it.
  ASSERT_TRUE(eventually([&] { return feature_->uplink_stats().queued > 0; }));
  take();
  EXPECT_LT(sent_.rbegin()->first, cutover);
  EXPECT_EQ(installed_key_id(), old_kid);

  // The fleet is back (its registry read from its file): the rotation ends.
  start_fleet();
  ASSERT_TRUE(until([&] { return feature_->rotation_state().empty(); }, 90s))
      << feature_->rotation_state();
  const std::string new_kid = installed_key_id();
  EXPECT_NE(new_kid, old_kid);
  EXPECT_EQ(rotations_recorded(), 1);
  ASSERT_TRUE(until([&] {
    return sent_with("while pending 2") && sent_with("after the restart 2");
  })) << "while pending: "
      << sent_with("while pending 2")
      << ", after the restart: " << sent_with("after the restart 2");
  expect_fleet_takes_all(cutover, old_kid, new_kid);
}

// A record whose pending key is gone cannot be finished (asked with a new
// key, a fleet that recorded the first would refuse, and that refusal
// would wrongly let the old key go on): held, said so, nothing asked.
TEST_F(RotationAnswerLostTest, APendingRotationWhosePendingKeyIsGoneStaysHeldAndSaysSo_REQ33) {
  start_feature();
  ASSERT_TRUE(until([&] { return feature_->enrolment_state().empty() && !sent_.empty(); }))
      << feature_->enrolment_state();
  ASSERT_TRUE(registry_->allow_rotation(feature_->terminal_id()));
  {
    std::lock_guard lock(latch_mu_);
    latched_ = true;
  }
  deliver(command("c-rotate"));
  ASSERT_TRUE(eventually([&] { return !feature_->rotation_state().empty(); }));
  const std::uint64_t cutover = recorded_cutover();
  open_latch();
  stop_fleet();
  feature_.reset();
  std::filesystem::remove(dir_ + "/management/device.key.pending");
  start_fleet();
  start_feature();
  ASSERT_TRUE(eventually([&] {
    return feature_->rotation_state().find("cannot be finished") != std::string::npos;
  })) << feature_->rotation_state();
  record_audit("held", 3);
  ASSERT_TRUE(eventually([&] { return feature_->uplink_stats().queued > 0; }));
  take();
  EXPECT_LT(sent_.rbegin()->first, cutover);
  EXPECT_TRUE(std::filesystem::exists(dir_ + "/management/rotation.pending"));
  EXPECT_EQ(rotations_recorded(), 1) << "not asked again with another key";
}

// The fleet's refusal is definitive (it recorded nothing): the pending key
// and the record go, and the old key goes on from where it was held.
TEST_F(RotationAnswerLostTest, ARotationTheFleetRefusesLeavesTheOldKeySigningOn_REQ33) {
  start_feature();
  ASSERT_TRUE(until([&] { return feature_->enrolment_state().empty() && !sent_.empty(); }))
      << feature_->enrolment_state();
  const std::string old_kid = installed_key_id();
  // No rotation allowed by the operator: refused and recorded as such.
  deliver(command("c-rotate"));
  ASSERT_TRUE(until([&] { return result_of("c-rotate").has_value(); }));
  auto result = result_of("c-rotate");
  EXPECT_NE(result->status(), v1::CommandResult::OK);
  EXPECT_NE(result->message().find("refused by the fleet (nothing recorded"), std::string::npos)
      << result->message();
  EXPECT_EQ(feature_->rotation_state(), "");
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/management/rotation.pending"));
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/management/device.key.pending"));
  EXPECT_EQ(recorded_cutover(), 0u);
  record_audit("after", 3);
  ASSERT_TRUE(until([&] { return sent_with("after 2"); }));
  EXPECT_EQ(installed_key_id(), old_kid);
  expect_fleet_takes_all(std::numeric_limits<std::uint64_t>::max(), old_kid, old_kid);
}

// Regression: when the record of a rotation the fleet refused could not be
// removed, the daemon dropped the pending key and went on with the old key,
// the record left behind; the next start found it and held the uplink for
// ever at a cutover the chain had already passed. Now the hold (and the
// pending key) stays until the record is gone, the state says why, and the
// next attempt removes it without asking the fleet again.
TEST_F(RotationAnswerLostTest, ARefusedRotationWhoseRecordCannotBeRemovedStaysHeldUntilItIs_REQ33) {
  start_feature();
  ASSERT_TRUE(until([&] { return feature_->enrolment_state().empty() && !sent_.empty(); }))
      << feature_->enrolment_state();
  const std::string old_kid = installed_key_id();
  const std::string record = dir_ + "/management/rotation.pending";
  // The fleet away: pending, asked again. No rotation allowed: once back,
  // the fleet refuses it (nothing recorded).
  stop_fleet();
  deliver(command("c-rotate"));
  ASSERT_TRUE(eventually([&] {
    return feature_->rotation_state().find("asked 2 times") != std::string::npos;
  })) << feature_->rotation_state();
  auto rec = identity::load_pending_rotation(record);
  ASSERT_TRUE(rec && *rec);
  const std::uint64_t cutover = (*rec)->cutover;
  // The record cannot be removed (unlink fails on a directory, even as root).
  ASSERT_TRUE(std::filesystem::remove(record));
  std::filesystem::create_directory(record);
  start_fleet();
  ASSERT_TRUE(eventually([&] {
    return feature_->rotation_state().find("cannot be removed") != std::string::npos;
  })) << feature_->rotation_state();
  EXPECT_NE(feature_->rotation_state().find("refused by the fleet (nothing recorded"),
            std::string::npos)
      << feature_->rotation_state();
  EXPECT_NE(feature_->rotation_state().find("uplink held at sequence " + std::to_string(cutover)),
            std::string::npos)
      << feature_->rotation_state();
  record_audit("held", 3);
  ASSERT_TRUE(eventually([&] { return feature_->uplink_stats().queued > 0; }));
  take();
  EXPECT_LT(sent_.rbegin()->first, cutover) << "the old key went on with the record left";
  EXPECT_FALSE(sent_with("held 2"));
  EXPECT_TRUE(std::filesystem::exists(dir_ + "/management/device.key.pending"))
      << "the pending key goes only after its record";
  // Asked no more: the fleet recorded nothing, only the removal is retried.
  auto refusals = registry_->refusals(kSerial);
  ASSERT_TRUE(refusals);
  const auto refused_once = refusals->size();
  EXPECT_GE(refused_once, 1u);
  const auto asked = [&] {
    const auto s = feature_->rotation_state();
    const auto at = s.find("tried ");
    return at == std::string::npos ? 0 : std::stoi(s.substr(at + 6));
  };
  const int asked_then = asked();
  ASSERT_TRUE(eventually([&] { return asked() >= asked_then + 2; })) << feature_->rotation_state();
  EXPECT_EQ(registry_->refusals(kSerial)->size(), refused_once);
  EXPECT_NE(feature_->rotation_state().find("cannot be removed"), std::string::npos);

  // The record can go now: the next attempt removes it, then the old key
  // goes on from the cutover.
  std::filesystem::remove(record);
  ASSERT_TRUE(until([&] { return feature_->rotation_state().empty(); }))
      << feature_->rotation_state();
  EXPECT_FALSE(std::filesystem::exists(record));
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/management/device.key.pending"));
  ASSERT_TRUE(until([&] { return sent_with("held 2"); }));
  EXPECT_EQ(installed_key_id(), old_kid);

  // A restart finds nothing to hold.
  feature_.reset();
  start_feature();
  EXPECT_EQ(feature_->rotation_state(), "");
  record_audit("after the restart", 3);
  ASSERT_TRUE(until([&] { return sent_with("after the restart 2"); }));
  expect_fleet_takes_all(std::numeric_limits<std::uint64_t>::max(), old_kid, old_kid);
}

// Regression: renewal waits while a rotation is pending, and the rotation's
// retry (Renew) needs the old certificate over mutual TLS. Once it expired
// during the hold the handshake failed (unavailable) for ever, and the old
// key's Enroll was refused by the fleet that recorded the rotation: held
// for good. Now the retry enrols the pending key, which the fleet knows as
// the device's, and the rotation ends with the certificate it issues.
TEST_F(RotationAnswerLostTest,
       ARotationHeldPastTheOldCertificatesExpiryFinishesByEnrollingThePendingKey_REQ33) {
  // The fleet issues certificates that expire 30 s after they are issued.
  stop_fleet();
  auto short_lived = fleet::FleetCa::load(pki_->intermediate_path(), dir_ + "/intermediate.key", "",
                                          fleet::FleetCaOptions{.device_lifetime = 30s});
  ASSERT_TRUE(short_lived) << short_lived.error().message();
  ca_ = std::make_unique<fleet::FleetCa>(std::move(*short_lived));
  start_fleet();
  config_.renew_at_percent = 100;  // no renewal before the expiry
  start_feature();
  ASSERT_TRUE(until([&] { return feature_->enrolment_state().empty() && !sent_.empty(); }))
      << feature_->enrolment_state();
  record_audit("before", 3);
  ASSERT_TRUE(until([&] { return sent_with("before 2"); }));
  const std::string old_kid = installed_key_id();
  auto old_cert = identity::CertificateStore(dir_ + "/management/device.crt").load();
  ASSERT_TRUE(old_cert && *old_cert);
  const auto expiry = (*old_cert)->cert.not_after();

  ASSERT_TRUE(registry_->allow_rotation(feature_->terminal_id()));
  {
    std::lock_guard lock(latch_mu_);
    latched_ = true;  // recorded, the answer lost
  }
  deliver(command("c-rotate"));
  ASSERT_TRUE(eventually([&] { return !feature_->rotation_state().empty(); }));
  const std::uint64_t cutover = recorded_cutover();
  ASSERT_GT(cutover, 1u);
  ASSERT_LT(std::chrono::system_clock::now(), expiry) << "the machine was too slow to test this";
  open_latch();
  stop_fleet();
  record_audit("while pending", 3);
  // The old certificate expires during the hold; the terminal asks again
  // meanwhile (the fleet away).
  ASSERT_TRUE(eventually([&] { return std::chrono::system_clock::now() > expiry; }));
  const auto asked = [&] {
    const auto st = feature_->rotation_state();
    const auto at = st.find("asked ");
    return at == std::string::npos ? 0 : std::stoi(st.substr(at + 6));
  };
  const int asked_at_expiry = asked();
  ASSERT_TRUE(eventually([&] { return asked() > asked_at_expiry; })) << feature_->rotation_state();
  take();
  EXPECT_LT(sent_.rbegin()->first, cutover);
  EXPECT_EQ(installed_key_id(), old_kid);

  // The fleet is back (issuing for a year again): it knows the pending key
  // as the device's and answers its Enroll.
  stop_fleet();
  auto ca = fleet::FleetCa::load(pki_->intermediate_path(), dir_ + "/intermediate.key");
  ASSERT_TRUE(ca) << ca.error().message();
  ca_ = std::make_unique<fleet::FleetCa>(std::move(*ca));
  start_fleet();
  ASSERT_TRUE(until([&] { return feature_->rotation_state().empty(); }))
      << feature_->rotation_state();
  const std::string new_kid = installed_key_id();
  EXPECT_NE(new_kid, old_kid);
  EXPECT_EQ(rotations_recorded(), 1) << "recorded once, answered again";
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/management/rotation.pending"));
  auto refusals = registry_->refusals(kSerial);
  ASSERT_TRUE(refusals);
  for (auto& r : *refusals) ADD_FAILURE() << "the fleet refused: " << r.reason;
  auto now_cert = identity::CertificateStore(dir_ + "/management/device.crt").load();
  ASSERT_TRUE(now_cert && *now_cert);
  EXPECT_GT((*now_cert)->cert.not_after(), std::chrono::system_clock::now());
  record_audit("after", 3);
  ASSERT_TRUE(until([&] { return sent_with("while pending 2") && sent_with("after 2"); }));
  expect_fleet_takes_all(cutover, old_kid, new_kid);
}

// Regression: the record was only read when enrolment is configured. An
// operator who removed enrolment_server while a rotation was pending got a
// daemon whose old key signed the cutover and on, which a fleet that
// recorded the rotation refuses as a retired key's. Now the feature does
// not start, and says which file and what to do.
TEST_F(RotationAnswerLostTest,
       APendingRotationWithEnrolmentRemovedFromTheConfigRefusesToStart_REQ33) {
  start_feature();
  ASSERT_TRUE(until([&] { return feature_->enrolment_state().empty() && !sent_.empty(); }))
      << feature_->enrolment_state();
  ASSERT_TRUE(registry_->allow_rotation(feature_->terminal_id()));
  {
    std::lock_guard lock(latch_mu_);
    latched_ = true;
  }
  deliver(command("c-rotate"));
  ASSERT_TRUE(eventually([&] { return !feature_->rotation_state().empty(); }));
  const std::uint64_t cutover = recorded_cutover();
  ASSERT_GT(cutover, 1u);
  open_latch();
  stop_fleet();
  take();
  const auto sent_before = sent_.size();
  feature_.reset();

  // The operator takes enrolment out of the config; the certificate and the
  // key are where a hand-provisioned terminal has them.
  config_.enrolment_server.clear();
  const std::string record = dir_ + "/management/rotation.pending";
  ASSERT_TRUE(std::filesystem::exists(record));
  feature_ = std::make_unique<ManagementFeature>(
      config_,
      [this](const ManagementConfig&, const LinkContext&) -> Result<std::unique_ptr<link::Link>> {
        auto l = std::make_unique<test::FakeLink>();
        l->acker = acker_;
        auto started = std::make_shared<std::atomic<bool>>(false);
        auto borrowed = std::make_unique<BorrowedLink>(*l, started);
        std::lock_guard lock(link_mu_);
        links_.push_back(std::move(l));
        started_.push_back(std::move(started));
        return std::unique_ptr<link::Link>(std::move(borrowed));
      });
  agent::FeatureContext ctx;
  ctx.audit = audit_.get();
  ctx.state_dir = dir_;
  record_audit("without enrolment", 3);
  auto ok = feature_->start(ctx);
  ASSERT_FALSE(ok) << "the old key would sign from sequence " << cutover;
  const std::string why = ok.error().message();
  EXPECT_NE(why.find(record), std::string::npos) << why;
  EXPECT_NE(why.find("from sequence " + std::to_string(cutover) + " is pending"), std::string::npos)
      << why;
  EXPECT_NE(why.find("set [management] enrolment_server"), std::string::npos) << why;
  EXPECT_TRUE(std::filesystem::exists(record)) << "the record is kept";
  take();
  EXPECT_EQ(sent_.size(), sent_before) << "nothing signed, nothing sent";
  EXPECT_FALSE(sent_with("without enrolment"));

  // A record that does not read is no "none" either.
  feature_.reset();
  ASSERT_TRUE(portier::test::write_pki_file(record, "cutover x\n", 0600));
  feature_ = std::make_unique<ManagementFeature>(
      config_,
      [](const ManagementConfig&, const LinkContext&) -> Result<std::unique_ptr<link::Link>> {
        return std::make_unique<test::FakeLink>();
      });
  ok = feature_->start(ctx);
  ASSERT_FALSE(ok);
  EXPECT_NE(ok.error().message().find("does not read"), std::string::npos) << ok.error().message();
}

}  // namespace
}  // namespace portier::management
