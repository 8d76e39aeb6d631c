// Enrolment end to end (issue 10, item 1; REQ-33, REQ-36): a terminal that
// has only its serial and a one-time secret enrols with `portier-fleet
// serve --enrol`, comes up on its link (MQTT through a real Mosquitto, or
// gRPC to portier-fleet's endpoint: one parametrised suite) with the
// certificate it was given, renews it before it expires, and rotates its
// key when the fleet commands it; the fleet's verify-chain passes across
// every change. And the attacks: a second device claiming an enrolled
// serial with its own key, a wrong secret, a renewal with a key nobody
// asked for, and envelopes signed by the old key after a rotation.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <thread>

#include "agent/envelope/envelope_chain.h"
#include "agent/identity/device_key.h"
#include "agent/identity/signer_csr.h"
#include "agent/identity/softhsm_token.h"
#include "agent/management/token_rotation_output.h"
#include "answer_losing_relay.h"
#include "daemon_fixture.h"
#include "fleet_serve_argv.h"
#include "portier/v1/command.pb.h"
#include "portier/v1/telemetry.pb.h"
#include "support/mosquitto_broker.h"
#include "support/test_pki.h"
#include "tools/fleet/enrolment/enrolment_server.h"
#include "tools/fleet/enrolment/fleet_ca.h"
#include "tools/fleet/enrolment/sqlite_enrolment_registry.h"
#include "tools/fleet/receiver.h"
#include "tools/fleet/sqlite_fleet_store.h"

namespace portier::test {
namespace {

using namespace std::chrono_literals;

constexpr const char* kSerial = "SN-E2E-1001";
constexpr const char* kSecret = "one-time-secret-of-SN-E2E-1001";

bool eventually(const std::function<bool()>& done, std::chrono::seconds limit = 30s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(50ms);  // polling files and a database other processes write
  }
  return done();
}

// A terminal: its own state directory, serial and secret file.
struct TerminalDir {
  TempDir dir;
  std::string serial;
  std::string secret_file() const { return dir.file("enrolment.secret"); }
  std::string mdir() const { return dir.file("state/management"); }
  std::string terminal_id() const {
    auto t = read_file(mdir() + "/terminal_id");
    return t.substr(0, t.find('\n'));
  }
  std::string cert() const { return read_file(mdir() + "/device.crt"); }
};

// A hostile (or broken) Enrolment service: its answers carry the
// terminal's name and serial and chain to the fleet's CA, but certify a key
// of its own choosing, not the terminal's.
class ForeignKeyEnrolment final : public v1::Enrolment::Service {
 public:
  explicit ForeignKeyEnrolment(const fleet::FleetCa& ca) : ca_(ca) {}
  grpc::Status Enroll(grpc::ServerContext*, const v1::EnrollRequest* req,
                      v1::EnrollResponse* resp) override {
    auto other = crypto::PrivateKey::generate(crypto::KeyType::ecdsa_p256);
    auto signer = crypto::KeySigner::from(*other);
    auto csr = identity::make_csr(*signer, {req->terminal_id(), req->serial(), ""});
    if (!csr) return grpc::Status(grpc::StatusCode::INTERNAL, csr.error().message());
    auto cert =
        ca_.issue_device(*csr, req->terminal_id(), req->serial(), std::chrono::system_clock::now());
    if (!cert) return grpc::Status(grpc::StatusCode::INTERNAL, cert.error().message());
    auto der = cert->der();
    resp->set_certificate(der->data(), der->size());
    for (const auto& c : ca_.chain_der()) resp->add_chain(c.data(), c.size());
    ++answered;
    return grpc::Status::OK;
  }
  std::atomic<int> answered{0};

 private:
  const fleet::FleetCa& ca_;
};

class EnrolmentE2eTest : public ::testing::TestWithParam<std::string> {
 protected:
  bool mqtt() const { return GetParam() == "mqtt"; }

  void SetUp() override {
    std::filesystem::create_directories(dir_.file("pki"));
    auto pki = TestPki::create(dir_.file("pki"));
    ASSERT_TRUE(pki) << pki.error().message();
    pki_ = std::make_unique<TestPki>(std::move(*pki));
    auto server = pki_->issue({.name = "fleet-server", .usage = crypto::CertUsage::tls_server});
    auto client = pki_->issue({.name = "portier-fleet", .usage = crypto::CertUsage::tls_client});
    auto commands =
        pki_->issue({.name = "fleet-commands", .usage = crypto::CertUsage::command_signing});
    ASSERT_TRUE(server && client && commands);
    server_.emplace(*server);
    client_.emplace(*client);
    commands_.emplace(*commands);
    db_ = dir_.file("fleet.db");
    registry_ = dir_.file("enrolment.db");
    write_file(dir_.file("secret"), kSecret, 0600);
    auto e = run({bin("portier-fleet"), "expect", kSerial, "--secret-file", dir_.file("secret"),
                  "--enrol-registry", registry_});
    ASSERT_EQ(e.exit_code, 0) << e.err;
    if (mqtt()) {
      TestTls tls{dir_.file("pki"), pki_->ca_path(), "", server_->chain_path, server_->key_path};
      std::filesystem::create_directories(dir_.file("broker"));
      broker_ = std::make_unique<MosquittoBroker>(dir_.file("broker"), tls);
      ASSERT_TRUE(broker_->start());
    } else {
      grpc_port_ = free_port();
    }
    enrol_port_ = free_port();
  }
  void TearDown() override {
    if (fleet_) {
      fleet_->signal(SIGTERM);
      fleet_->wait_exit(10s);
    }
  }

  // `lifetime`: of the device certificates the fleet issues, in seconds.
  // portier-fleet serve with this test's link, without enrolment.
  std::vector<std::string> serve_argv() const {
    return fleet_serve_argv(bin("portier-fleet"), db_, pki_->ca_path(), dir_.file("spool"),
                            *commands_,
                            mqtt() ? std::optional<std::string>(broker_->uri()) : std::nullopt,
                            *client_, *server_, grpc_port_);
  }
  void start_fleet(int lifetime = 24 * 3600) {
    auto argv = serve_argv();
    argv.insert(argv.end(),
                {"--enrol", "127.0.0.1:" + std::to_string(enrol_port_), "--enrol-ca-cert",
                 pki_->intermediate_path(), "--enrol-ca-key", dir_.file("pki/intermediate.key"),
                 "--enrol-registry", registry_, "--enrol-cert", server_->chain_path, "--enrol-key",
                 server_->key_path, "--device-lifetime", std::to_string(lifetime)});
    argv.insert(argv.begin(), {"/bin/sh", "-c", "exec \"$@\" 2>>" + dir_.file("fleet.log"), "sh"});
    fleet_ = std::make_unique<Child>(argv);
    ASSERT_TRUE(eventually([&] {
      const bool link = mqtt() ? fleet_log().find("mqtt: connected") != std::string::npos
                               : port_accepts(grpc_port_);
      return link && port_accepts(enrol_port_);
    })) << fleet_log();
  }
  std::string fleet_log() { return read_file(dir_.file("fleet.log")); }

  // A terminal's state directory with its serial and secret (0600), as
  // staging leaves it: no key, no certificate, no terminal id yet.
  std::unique_ptr<TerminalDir> terminal(const std::string& serial, const std::string& secret) {
    auto t = std::make_unique<TerminalDir>();
    t->serial = serial;
    std::filesystem::create_directories(t->dir.file("state"));
    ::chmod(t->dir.file("state").c_str(), 0700);
    write_file(t->secret_file(), secret, 0600);
    return t;
  }
  DaemonOptions options(const TerminalDir& t, int renew_at_percent = 67) {
    DaemonOptions o;
    // The test reads the daemon's health (GetHealth on "terminal").
    o.policy = "version = 1\n" + runner_app() + runner_rule("terminal", "[\"read\"]");
    o.extra_config = std::string("[management]\n") + "link = \"" + GetParam() + "\"\n" +
                     "server = \"" +
                     (mqtt() ? broker_->uri() : "localhost:" + std::to_string(grpc_port_)) +
                     "\"\n" + "fleet = \"bank\"\n" + "ca_file = \"" + pki_->ca_path() + "\"\n" +
                     "enrolment_server = \"localhost:" + std::to_string(enrol_port_) + "\"\n" +
                     "enrolment_secret_file = \"" + t.secret_file() + "\"\n" + "serial = \"" +
                     t.serial + "\"\n" + "renew_at_percent = " + std::to_string(renew_at_percent) +
                     "\n" + "enrolment_retry_max_s = 2\n" + "command_trust_anchors = [\"" +
                     pki_->ca_path() + "\"]\n" + "checkpoint_interval_s = 5\n";
    return o;
  }

  std::unique_ptr<fleet::FleetStore> store() {
    auto s = fleet::SqliteFleetStore::open(db_);
    EXPECT_TRUE(s) << s.error().message();
    return s ? std::move(*s) : nullptr;
  }
  bool online(const std::string& id) {
    auto s = store();
    auto t = s ? s->terminal(id) : Result<fleet::Terminal>(std::unexpected(Error{}));
    return t && !t->last_birth.empty() && t->online;
  }
  std::string fleet_key(const std::string& id) {
    auto t = store()->terminal(id);
    return t ? t->public_key_pem : "";
  }
  std::string send(const std::string& terminal, const std::string& action,
                   std::vector<std::string> extra = {}) {
    auto r = send_run(terminal, action, std::move(extra));
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out.substr(0, r.out.find('\n'));
  }
  // portier-fleet send, as it ended.
  ProcessResult send_run(const std::string& terminal, const std::string& action,
                         std::vector<std::string> extra) {
    std::vector<std::string> argv{bin("portier-fleet"),
                                  "--db",
                                  db_,
                                  "send",
                                  terminal,
                                  action,
                                  "--signing-key",
                                  commands_->key_path,
                                  "--signing-cert",
                                  commands_->chain_path,
                                  "--spool",
                                  dir_.file("spool")};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return run(argv);
  }
  std::optional<fleet::CommandResultEntry> result_of(const std::string& terminal,
                                                     const std::string& id) {
    auto r = store()->results(terminal, 1000);
    if (!r) return std::nullopt;
    for (auto& e : *r) {
      if (e.command_id == id) return e;
    }
    return std::nullopt;
  }
  // A ping answered OK: the link works both ways.
  void expect_ping(const std::string& terminal, const Daemon& d) {
    const auto id = send(terminal, "ping", {"--text", "hello"});
    ASSERT_TRUE(eventually([&] { return result_of(terminal, id).has_value(); }, 60s))
        << d.log() << "\nfleet:\n"
        << fleet_log();
    EXPECT_EQ(result_of(terminal, id)->status, 1) << result_of(terminal, id)->message;
  }
  void expect_chain_verifies(const std::string& terminal) {
    auto v = run({bin("portier-fleet"), "--db", db_, "verify-chain", terminal});
    EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
  }
  void expect_no_incidents(const std::string& terminal) {
    auto incidents = store()->incidents(terminal, 100);
    ASSERT_TRUE(incidents);
    for (auto& i : *incidents) ADD_FAILURE() << i.kind << " at " << i.sequence << ": " << i.detail;
  }
  std::vector<fleet::EnrolmentRefusal> refusals(const std::string& serial) {
    auto reg = fleet::SqliteEnrolmentRegistry::open(registry_);
    EXPECT_TRUE(reg);
    auto r = (*reg)->refusals(serial);
    return r ? *r : std::vector<fleet::EnrolmentRefusal>{};
  }
  static std::string health_reasons(const Daemon& d) {
    std::string out;
    const auto health = d.health();
    for (auto& r : health.reasons()) out += r + "\n";
    return out;
  }

  TempDir dir_;
  std::unique_ptr<TestPki> pki_;
  std::optional<IssuedLeaf> server_, client_, commands_;
  std::string db_, registry_;
  std::unique_ptr<MosquittoBroker> broker_;
  int grpc_port_ = 0;
  int enrol_port_ = 0;
  std::unique_ptr<Child> fleet_;
};

TEST_P(EnrolmentE2eTest, ATerminalWithOnlyASerialAndASecretEnrolsAndReports_REQ33_REQ36) {
  auto t = terminal(kSerial, kSecret);
  // The fleet is not there yet: the terminal runs, keeps what it records,
  // and says why its link is down.
  Daemon d(t->dir, options(*t));
  ASSERT_TRUE(d.start()) << d.log();
  ASSERT_TRUE(eventually([&] {
    return health_reasons(d).find("not enrolled") != std::string::npos;
  })) << health_reasons(d)
      << d.log();
  EXPECT_FALSE(std::filesystem::exists(t->mdir() + "/device.crt"));

  start_fleet();
  const auto id = t->terminal_id();
  ASSERT_TRUE(eventually([&] { return online(id); }, 60s)) << d.log() << "\nfleet:\n"
                                                           << fleet_log();
  // The certificate it installed is for its own key, serial and terminal id,
  // and the fleet registered that key.
  auto certs = crypto::Certificate::all_from_pem(t->cert());
  ASSERT_TRUE(certs && !certs->empty());
  EXPECT_EQ(certs->front().subject_cn(), id);
  EXPECT_EQ(certs->front().subject_serial(), kSerial);
  auto key = identity::load_or_create_key(t->mdir() + "/device.key", crypto::KeyType::ecdsa_p256);
  ASSERT_TRUE(key);
  EXPECT_EQ(*key->public_key()->to_pem(), fleet_key(id));
  EXPECT_EQ(*certs->front().public_key()->to_pem(), fleet_key(id));
  ASSERT_TRUE(eventually([&] { return health_reasons(d).find("enrol") == std::string::npos; }))
      << health_reasons(d);
  expect_ping(id, d);
  // What it recorded before it was enrolled reached the fleet too: its
  // first audit record (the daemon's start) is there.
  ASSERT_TRUE(eventually([&] {
    auto a = store()->audit(id, 0, 1);
    return a && !a->empty() && a->front().record == 1;
  })) << d.log();
  EXPECT_EQ(d.stop(), 0);
  expect_chain_verifies(id);
  expect_no_incidents(id);
}

TEST_P(EnrolmentE2eTest, TheCertificateIsRenewedBeforeItExpiresAndTheLinkGoesOn_REQ33) {
  // Certificates live 60 s (plus the CA's 5 minutes of clock skew before
  // now); renewal at 86 % of that is about 10 s after each issue.
  start_fleet(60);
  auto t = terminal(kSerial, kSecret);
  Daemon d(t->dir, options(*t, 86));
  ASSERT_TRUE(d.start()) << d.log();
  const auto id = [&] {
    EXPECT_TRUE(eventually([&] { return std::filesystem::exists(t->mdir() + "/terminal_id"); }));
    return t->terminal_id();
  }();
  ASSERT_TRUE(eventually([&] { return online(id); }, 60s)) << d.log();
  const auto first = t->cert();
  const auto first_key = fleet_key(id);
  // A new certificate for the same key, and the link up again with it.
  ASSERT_TRUE(eventually([&] { return t->cert() != first; }, 60s)) << d.log();
  auto renewed = crypto::Certificate::all_from_pem(t->cert());
  auto original = crypto::Certificate::all_from_pem(first);
  ASSERT_TRUE(renewed && original);
  EXPECT_GT(renewed->front().not_after(), original->front().not_after());
  EXPECT_EQ(*renewed->front().public_key()->to_pem(), *original->front().public_key()->to_pem());
  // The file is in place before the line is logged.
  EXPECT_TRUE(eventually([&] { return d.log().find("certificate renewed") != std::string::npos; }))
      << d.log();
  expect_ping(id, d);
  EXPECT_EQ(fleet_key(id), first_key);
  EXPECT_EQ(d.stop(), 0);
  expect_chain_verifies(id);
  expect_no_incidents(id);
}

TEST_P(EnrolmentE2eTest, TheKeyIsRotatedOnCommandAndTheOldKeySignsNothingAfter_REQ16_REQ33) {
  start_fleet();
  auto t = terminal(kSerial, kSecret);
  Daemon d(t->dir, options(*t));
  ASSERT_TRUE(d.start()) << d.log();
  ASSERT_TRUE(eventually([&] { return std::filesystem::exists(t->mdir() + "/terminal_id"); }));
  const auto id = t->terminal_id();
  ASSERT_TRUE(eventually([&] { return online(id); }, 60s)) << d.log();
  expect_ping(id, d);
  auto old_key =
      identity::load_or_create_key(t->mdir() + "/device.key", crypto::KeyType::ecdsa_p256);
  ASSERT_TRUE(old_key);
  const auto old_pem = *old_key->public_key()->to_pem();
  ASSERT_EQ(fleet_key(id), old_pem);

  // Without the operator's rotation in the registry, the fleet refuses the
  // new key (a thief of the key could otherwise move the identity).
  const auto refused = send(id, "rotate-key");
  ASSERT_TRUE(eventually([&] { return result_of(id, refused).has_value(); }, 60s)) << d.log();
  EXPECT_EQ(result_of(id, refused)->status, 3) << result_of(id, refused)->message;  // FAILED
  EXPECT_NE(result_of(id, refused)->message.find("operator's rotation"), std::string::npos)
      << result_of(id, refused)->message;
  EXPECT_EQ(fleet_key(id), old_pem);

  const auto rotated = send(id, "rotate-key", {"--enrol-registry", registry_});
  ASSERT_TRUE(eventually([&] { return result_of(id, rotated).has_value(); }, 60s)) << d.log();
  EXPECT_EQ(result_of(id, rotated)->status, 1) << result_of(id, rotated)->message;
  // The fleet takes the new key with the terminal's next session.
  ASSERT_TRUE(eventually([&] { return !fleet_key(id).empty() && fleet_key(id) != old_pem; }, 60s))
      << d.log() << "\nfleet:\n"
      << fleet_log();
  auto new_key =
      identity::load_or_create_key(t->mdir() + "/device.key", crypto::KeyType::ecdsa_p256);
  ASSERT_TRUE(new_key);
  EXPECT_EQ(*new_key->public_key()->to_pem(), fleet_key(id));
  EXPECT_FALSE(std::filesystem::exists(t->mdir() + "/device.key.pending"));
  auto certs = crypto::Certificate::all_from_pem(t->cert());
  ASSERT_TRUE(certs);
  EXPECT_EQ(*certs->front().public_key()->to_pem(), fleet_key(id));
  expect_ping(id, d);
  // Regression: the core restarted on the new key checked the retired key's
  // last audit checkpoint with the new key and reported the trail tampered.
  EXPECT_FALSE(d.audit_has("\"event\":\"audit_tampered\"")) << d.log();
  EXPECT_EQ(d.log().find("does not verify with the device key"), std::string::npos) << d.log();
  EXPECT_EQ(d.stop(), 0);
  // A restart keeps the new key and its certificate: no enrolment again,
  // the link comes straight up with them.
  const auto cert_before = t->cert();
  {
    const auto epoch = store()->terminal(id)->session_epoch;
    Daemon again(t->dir, options(*t));
    ASSERT_TRUE(again.start()) << again.log();
    ASSERT_TRUE(eventually(
        [&] {
          auto term = store()->terminal(id);
          return term && term->online && term->session_epoch > epoch;
        },
        60s))
        << again.log() << "\nfleet:\n"
        << fleet_log();
    expect_ping(id, again);
    EXPECT_EQ(t->cert(), cert_before);
    EXPECT_EQ(fleet_key(id), *new_key->public_key()->to_pem());
    EXPECT_EQ(again.log().find("enrolled;"), std::string::npos) << again.log();
    EXPECT_FALSE(again.audit_has("\"event\":\"audit_tampered\"")) << again.log();
    EXPECT_EQ(again.stop(), 0);
  }
  expect_chain_verifies(id);
  expect_no_incidents(id);
  if (fleet_) {
    fleet_->signal(SIGTERM);
    fleet_->wait_exit(10s);
    fleet_.reset();
  }

  // Whoever kept the old key now signs the next envelope of the chain with
  // it: refused and recorded. The same envelope signed by the new key is
  // taken (so the refusal is about the key).
  auto s = store();
  auto chain = s->chain(id);
  ASSERT_TRUE(chain);
  auto forge = [&](const crypto::PrivateKey& key) {
    auto signer = crypto::KeySigner::from(key);
    EXPECT_TRUE(signer);
    envelope::EnvelopeSealer sealer(id, key.type(), chain->state);
    v1::HealthReport report;
    auto sealed = sealer.seal(v1::PAYLOAD_HEALTH, report.SerializeAsString(),
                              std::chrono::system_clock::now());
    EXPECT_TRUE(sealed);
    auto kid = envelope::key_id(*key.public_key());
    EXPECT_TRUE(envelope::sign_envelope(sealed->envelope, *signer, *kid));
    return sealed->envelope.SerializeAsString();
  };
  fleet::Receiver receiver(*s);
  auto by_old = receiver.receive(id, "health", forge(*old_key), std::chrono::system_clock::now());
  ASSERT_FALSE(by_old);
  EXPECT_EQ(by_old.error().code, Errc::permission_denied) << by_old.error().message();
  auto incidents = s->incidents(id, 10);
  ASSERT_TRUE(incidents && !incidents->empty());
  EXPECT_EQ(incidents->back().kind, "retired key") << incidents->back().detail;
  auto by_new = receiver.receive(id, "health", forge(*new_key), std::chrono::system_clock::now());
  EXPECT_TRUE(by_new) << by_new.error().message();
}

// Review finding M4 with the real daemon: the answers of the fleet's
// Enrolment service are lost (a relay drops them) while portierd rotates
// its key; it keeps its uplink held at the cutover, is killed (SIGKILL)
// while the rotation is pending, starts again held, and finishes the
// rotation once the answers come through: the fleet's chain verifies with
// no incident (nothing signed by the old key at or after the cutover).
TEST_P(EnrolmentE2eTest, ARotationPendingAtASigkillIsFinishedAfterTheRestart_REQ33) {
  start_fleet();
  AnswerLosingRelay relay(enrol_port_);
  ASSERT_NE(relay.port(), 0);
  auto t = terminal(kSerial, kSecret);
  auto o = options(*t);
  const std::string direct = "localhost:" + std::to_string(enrol_port_);
  o.extra_config.replace(o.extra_config.find(direct), direct.size(),
                         "localhost:" + std::to_string(relay.port()));
  auto d = std::make_unique<Daemon>(t->dir, o);
  ASSERT_TRUE(d->start()) << d->log();
  ASSERT_TRUE(eventually([&] { return std::filesystem::exists(t->mdir() + "/terminal_id"); }));
  const auto id = t->terminal_id();
  ASSERT_TRUE(eventually([&] { return online(id); }, 60s)) << d->log();
  expect_ping(id, *d);
  const std::string old_pem = fleet_key(id);

  relay.lose_answers(true);
  send(id, "rotate-key", {"--enrol-registry", registry_});
  ASSERT_TRUE(
      eventually([&] { return d->log().find("key rotation pending") != std::string::npos; }, 60s))
      << d->log();
  EXPECT_TRUE(std::filesystem::exists(t->mdir() + "/rotation.pending"));
  d->signal(SIGKILL);
  ASSERT_TRUE(eventually([&] { return !d->alive(); }));
  d.reset();

  // Started again: held at the cutover from the start, asking again.
  auto again = std::make_unique<Daemon>(t->dir, o);
  ASSERT_TRUE(again->start()) << again->log();
  ASSERT_TRUE(eventually(
      [&] { return again->log().find("pending since the last start") != std::string::npos; }, 60s))
      << again->log();
  EXPECT_EQ(fleet_key(id), old_pem);

  relay.lose_answers(false);
  ASSERT_TRUE(eventually([&] { return fleet_key(id) != old_pem; }, 90s))
      << again->log() << "\nfleet:\n"
      << fleet_log();
  EXPECT_FALSE(std::filesystem::exists(t->mdir() + "/rotation.pending"));
  auto new_key =
      identity::load_or_create_key(t->mdir() + "/device.key", crypto::KeyType::ecdsa_p256);
  ASSERT_TRUE(new_key);
  EXPECT_EQ(*new_key->public_key()->to_pem(), fleet_key(id));
  expect_ping(id, *again);
  EXPECT_EQ(again->stop(), 0);
  expect_chain_verifies(id);
  expect_no_incidents(id);
}

TEST_P(EnrolmentE2eTest, ASecondDeviceClaimingAnEnrolledSerialWithItsOwnKeyIsRefused_REQ33) {
  start_fleet();
  auto real = terminal(kSerial, kSecret);
  Daemon d(real->dir, options(*real));
  ASSERT_TRUE(d.start()) << d.log();
  ASSERT_TRUE(eventually([&] { return std::filesystem::exists(real->mdir() + "/terminal_id"); }));
  ASSERT_TRUE(eventually([&] { return online(real->terminal_id()); }, 60s)) << d.log();
  const auto real_key = fleet_key(real->terminal_id());

  // A clone: the same serial and secret (copied off the real terminal),
  // its own key and terminal id.
  auto clone = terminal(kSerial, kSecret);
  Daemon c(clone->dir, options(*clone));
  ASSERT_TRUE(c.start()) << c.log();
  ASSERT_TRUE(eventually([&] {
    return health_reasons(c).find("enrolment refused") != std::string::npos;
  })) << health_reasons(c)
      << c.log();
  EXPECT_NE(health_reasons(c).find("one device, one key"), std::string::npos) << health_reasons(c);
  // Its refusal is in its audit trail, and in the fleet's registry.
  EXPECT_TRUE(c.audit_has("enrolment refused")) << c.audit();
  ASSERT_TRUE(eventually([&] { return !refusals(kSerial).empty(); }));
  EXPECT_EQ(refusals(kSerial).front().terminal_id, clone->terminal_id());
  EXPECT_FALSE(std::filesystem::exists(clone->mdir() + "/device.crt"));
  EXPECT_FALSE(store()->terminal(clone->terminal_id()));
  // The real terminal keeps its key and its link.
  EXPECT_EQ(fleet_key(real->terminal_id()), real_key);
  expect_ping(real->terminal_id(), d);
  EXPECT_EQ(c.stop(), 0);
  EXPECT_EQ(d.stop(), 0);
}

TEST_P(EnrolmentE2eTest, AWrongSecretIsRefusedAndTheRightOneLaterEnrolsWithNothingLost_REQ33) {
  start_fleet();
  auto t = terminal(kSerial, "not-the-secret-of-this-serial");
  Daemon d(t->dir, options(*t));
  ASSERT_TRUE(d.start()) << d.log();
  ASSERT_TRUE(eventually([&] {
    return health_reasons(d).find("enrolment refused") != std::string::npos;
  })) << health_reasons(d)
      << d.log();
  EXPECT_NE(health_reasons(d).find("does not match"), std::string::npos) << health_reasons(d);
  EXPECT_TRUE(d.audit_has("enrolment refused")) << d.audit();
  const auto id = t->terminal_id();
  EXPECT_FALSE(store()->terminal(id));
  ASSERT_TRUE(eventually([&] { return !refusals(kSerial).empty(); }));
  // Some work while the link is down: recorded, kept in the outbox.
  for (int i = 0; i < 3; ++i) {
    run({bin("portierctl"), "--socket", d.socket(), "send", "terminal", "--text", "x"});
  }
  ASSERT_TRUE(d.audit_has("\"decision\":\"deny\"")) << d.audit();
  // The staging fixes the secret: the next attempt (with backoff) enrols.
  replace_file(t->secret_file(), kSecret, 0600);
  ASSERT_TRUE(eventually([&] { return online(id); }, 60s)) << d.log();
  ASSERT_TRUE(eventually([&] {
    auto a = store()->audit(id, 0, 100000);
    std::size_t denies = 0;
    if (a) {
      for (auto& e : *a) denies += e.line.find("\"decision\":\"deny\"") != std::string::npos;
    }
    return denies >= 3;
  })) << d.log();
  EXPECT_EQ(d.stop(), 0);
  expect_chain_verifies(id);
  expect_no_incidents(id);
}

// A secret file others may read (a hostile local app could have copied it)
// is refused before it is read, and nothing is sent: no refusal reaches the
// fleet's registry. Closed to others, it enrols.
TEST_P(EnrolmentE2eTest, ASecretFileOthersCanReadIsNeverUsed_REQ33) {
  start_fleet();
  auto t = terminal(kSerial, kSecret);
  ::chmod(t->secret_file().c_str(), 0644);
  Daemon d(t->dir, options(*t));
  ASSERT_TRUE(d.start()) << d.log();
  ASSERT_TRUE(eventually([&] {
    return health_reasons(d).find("enrolment secret") != std::string::npos;
  })) << health_reasons(d)
      << d.log();
  EXPECT_NE(health_reasons(d).find("not enrolled yet"), std::string::npos) << health_reasons(d);
  EXPECT_TRUE(refusals(kSerial).empty());
  const auto id = t->terminal_id();
  EXPECT_FALSE(store()->terminal(id));
  ::chmod(t->secret_file().c_str(), 0600);
  ASSERT_TRUE(eventually([&] { return online(id); }, 60s)) << d.log();
  EXPECT_EQ(d.stop(), 0);
}

// The fleet's answer is checked before anything is installed (REQ-36): a
// certificate for another key, however well it chains, is refused, the
// link stays down and the refusal is recorded.
TEST_P(EnrolmentE2eTest, AnAnswerForAnotherKeyIsNeverInstalled_REQ36) {
  auto ca = fleet::FleetCa::load(pki_->intermediate_path(), dir_.file("pki/intermediate.key"));
  ASSERT_TRUE(ca) << ca.error().message();
  ForeignKeyEnrolment hostile(*ca);
  auto server = fleet::EnrolmentServer::start(
      hostile, {"127.0.0.1:0", server_->chain_path, server_->key_path, pki_->ca_path()});
  ASSERT_TRUE(server) << server.error().message();
  enrol_port_ = (*server)->port();
  auto t = terminal(kSerial, kSecret);
  Daemon d(t->dir, options(*t));
  ASSERT_TRUE(d.start()) << d.log();
  ASSERT_TRUE(eventually([&] {
    return health_reasons(d).find("enrolment refused") != std::string::npos;
  })) << health_reasons(d)
      << d.log();
  EXPECT_NE(health_reasons(d).find("another key"), std::string::npos) << health_reasons(d);
  EXPECT_GE(hostile.answered.load(), 1);
  EXPECT_TRUE(d.audit_has("enrolment refused")) << d.audit();
  EXPECT_FALSE(std::filesystem::exists(t->mdir() + "/device.crt"));
  EXPECT_EQ(d.stop(), 0);
  (*server)->stop();
}

// A renewal the fleet cannot answer keeps the certificate in use and the
// link up; the health says so, and the next renewal that works clears it.
TEST_P(EnrolmentE2eTest, ARenewalThatFailsKeepsTheLinkAndSaysSo_REQ33) {
  start_fleet(60);
  auto t = terminal(kSerial, kSecret);
  Daemon d(t->dir, options(*t, 86));
  ASSERT_TRUE(d.start()) << d.log();
  ASSERT_TRUE(eventually([&] { return std::filesystem::exists(t->mdir() + "/terminal_id"); }));
  const auto id = t->terminal_id();
  ASSERT_TRUE(eventually([&] { return online(id); }, 60s)) << d.log();
  const auto first = t->cert();
  // The fleet again, without its Enrolment service.
  fleet_->signal(SIGTERM);
  fleet_->wait_exit(10s);
  fleet_.reset();
  fleet_ = std::make_unique<Child>(serve_argv());
  ASSERT_TRUE(eventually(
      [&] { return health_reasons(d).find("certificate renewal failed") != std::string::npos; },
      60s))
      << health_reasons(d) << d.log();
  EXPECT_EQ(t->cert(), first);
  expect_ping(id, d);
  // The Enrolment service is back: the next attempt renews.
  fleet_->signal(SIGTERM);
  fleet_->wait_exit(10s);
  fleet_.reset();
  start_fleet(60);
  ASSERT_TRUE(eventually([&] { return t->cert() != first; }, 60s)) << d.log();
  ASSERT_TRUE(eventually([&] {
    return health_reasons(d).find("renewal failed") == std::string::npos;
  })) << health_reasons(d);
  EXPECT_EQ(d.stop(), 0);
  expect_chain_verifies(id);
}

// The device key in a SoftHSM2 token (REQ-16): portierd makes it there,
// enrols it (the CSR signed in the token), comes up on its link with the
// TLS files it was given (a token's key cannot be Paho's or gRPC's), and
// rotates on command: RotateDeviceKey's result carries the new key's CSR,
// `portier-fleet send T install-certificate --from-result ID --csr FILE` has
// the fleet certify it (that result's CSR only, verified through the chain)
// and sends it back, and the terminal takes the new key; the old one is
// destroyed in the token, the fleet takes the new key at its first
// envelope and the chain verifies across.
TEST_P(EnrolmentE2eTest, ATokenKeyEnrolsAndRotatesThroughInstallCertificate_REQ16_REQ33) {
  start_fleet();
  auto t = terminal(kSerial, kSecret);
  SoftHsmToken token;
  ASSERT_EQ(token.init(t->dir.path()), "");  // SOFTHSM2_CONF, inherited by portierd
  // The terminal id is known before the first start, so that the link's TLS
  // certificate (CN = terminal id) can be provisioned with it.
  const std::string id = "T-0123456789abcdef0123456789abcdef";
  std::filesystem::create_directories(t->mdir());
  ::chmod(t->mdir().c_str(), 0700);
  write_file(t->mdir() + "/terminal_id", id + "\n");
  auto tls = pki_->issue({.name = id, .usage = crypto::CertUsage::tls_client});
  ASSERT_TRUE(tls) << tls.error().message();
  DaemonOptions o = options(*t);
  o.extra_config += "pkcs11_module = \"" + std::string(kSoftHsmModule) + "\"\n" +
                    "pkcs11_token = \"portier\"\n" + "pkcs11_pin_file = \"" + token.pin_file +
                    "\"\n" + "cert_file = \"" + tls->chain_path + "\"\n" + "tls_key_file = \"" +
                    tls->key_path + "\"\n";
  Daemon d(t->dir, o);
  ASSERT_TRUE(d.start()) << d.log();
  ASSERT_TRUE(eventually([&] { return online(id); }, 60s)) << d.log() << "\nfleet:\n"
                                                           << fleet_log();
  EXPECT_FALSE(std::filesystem::exists(t->mdir() + "/device.key"));
  const std::string old_pem = fleet_key(id);
  {
    auto key = identity::Pkcs11Signer::open_existing(token.options("portier-device"));
    ASSERT_TRUE(key) << key.error().message();
    EXPECT_EQ(*(*key)->public_key().to_pem(), old_pem);
    auto certs = crypto::Certificate::all_from_pem(t->cert());
    ASSERT_TRUE(certs && !certs->empty());
    EXPECT_EQ(*certs->front().public_key()->to_pem(), old_pem);
  }
  expect_ping(id, d);

  const auto rotate = send(id, "rotate-key");
  ASSERT_TRUE(eventually([&] { return result_of(id, rotate).has_value(); }, 60s)) << d.log();
  ASSERT_EQ(result_of(id, rotate)->status, 1) << result_of(id, rotate)->message;
  v1::CommandResult rotated;
  ASSERT_TRUE(rotated.ParseFromString(result_of(id, rotate)->result));
  // Its first line says the new key is the token's (signed through the
  // chain): the fleet certifies it with no cutover.
  ASSERT_TRUE(management::token_rotation_csr(rotated.output())) << rotated.output();
  EXPECT_EQ(fleet_key(id), old_pem);  // nothing changes before the certificate
  write_file(dir_.file("rotation.txt"), rotated.output());
  // A CSR of the terminal's name and serial for another key (an attacker's)
  // is refused, nothing sent.
  auto stranger = crypto::PrivateKey::generate(crypto::KeyType::ecdsa_p256);
  ASSERT_TRUE(stranger);
  auto stranger_csr = crypto::CertificateRequest::create(*stranger, {id, kSerial, ""});
  ASSERT_TRUE(stranger_csr);
  write_file(dir_.file("stranger.csr"), *stranger_csr->to_pem());
  const std::vector<std::string> ca{"--enrol-ca-cert",  pki_->intermediate_path(),
                                    "--enrol-ca-key",   dir_.file("pki/intermediate.key"),
                                    "--enrol-registry", registry_};
  std::vector<std::string> args{"--csr", dir_.file("stranger.csr")};
  args.insert(args.end(), ca.begin(), ca.end());
  const auto refused = send_run(id, "install-certificate", args);
  EXPECT_EQ(refused.exit_code, 3) << refused.err;
  EXPECT_NE(refused.err.find("is not the key the terminal made in its newest rotate-key result"),
            std::string::npos)
      << refused.err;
  // The terminal's own: by its result's command id, the CSR as a check.
  args = {"--from-result", rotate, "--csr", dir_.file("rotation.txt")};
  args.insert(args.end(), ca.begin(), ca.end());
  const auto install = send(id, "install-certificate", args);
  ASSERT_TRUE(eventually([&] { return result_of(id, install).has_value(); }, 60s)) << d.log();
  ASSERT_EQ(result_of(id, install)->status, 1) << result_of(id, install)->message;
  // The fleet takes the new key with the terminal's next session.
  ASSERT_TRUE(eventually([&] { return !fleet_key(id).empty() && fleet_key(id) != old_pem; }, 60s))
      << d.log() << "\nfleet:\n"
      << fleet_log();
  expect_ping(id, d);
  EXPECT_FALSE(d.audit_has("\"event\":\"audit_tampered\"")) << d.log();
  EXPECT_EQ(d.stop(), 0);
  {
    // In the token: the label names the new key; the old and the pending
    // labels are gone.
    auto key = identity::Pkcs11Signer::open_existing(token.options("portier-device"));
    ASSERT_TRUE(key) << key.error().message();
    EXPECT_EQ(*(*key)->public_key().to_pem(), fleet_key(id));
    for (const char* gone : {"portier-device.pending", "portier-device.retired"}) {
      auto k = identity::Pkcs11Signer::open_existing(token.options(gone));
      EXPECT_FALSE(k) << gone;
    }
    auto certs = crypto::Certificate::all_from_pem(t->cert());
    ASSERT_TRUE(certs && !certs->empty());
    EXPECT_EQ(*certs->front().public_key()->to_pem(), fleet_key(id));
  }
  expect_chain_verifies(id);
  expect_no_incidents(id);
}

INSTANTIATE_TEST_SUITE_P(Links, EnrolmentE2eTest, ::testing::Values("mqtt", "grpc"),
                         [](const ::testing::TestParamInfo<std::string>& i) { return i.param; });

}  // namespace
}  // namespace portier::test
