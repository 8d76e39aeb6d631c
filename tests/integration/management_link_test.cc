// The management link end to end (issue 10): a real portierd with a
// [management] table, a real Mosquitto (MQTT link) or portier-fleet's own
// gRPC endpoint (gRPC link), and a real `portier-fleet serve` storing into
// SQLite. One parametrised suite for both links. Certificates come from a
// throwaway PKI made by the test (tests/support/test_pki).
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <set>
#include <thread>

#include "agent/envelope/envelope_chain.h"
#include "agent/link/ack_signing.h"
#include "common/crypto/sign.h"
#include "common/mqtt/mqtt_client.h"
#include "daemon_fixture.h"
#include "fleet_serve_argv.h"
#include "portier/v1/fleet.grpc.pb.h"
#include "portier/v1/fleet.pb.h"
#include "support/mosquitto_broker.h"
#include "support/test_pki.h"
#include "tools/fleet/sqlite_fleet_store.h"

namespace portier::test {
namespace {

using namespace std::chrono_literals;

constexpr const char* kTerminal = "T-0123456789abcdef0123456789abcdef";

bool eventually(const std::function<bool()>& done, std::chrono::seconds limit = 30s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(50ms);  // polling a database another process writes
  }
  return done();
}

class ManagementLinkTest : public ::testing::TestWithParam<std::string> {
 protected:
  bool mqtt() const { return GetParam() == "mqtt"; }

  void SetUp() override {
    std::filesystem::create_directories(dir_.file("pki"));
    auto pki = TestPki::create(dir_.file("pki"));
    ASSERT_TRUE(pki) << pki.error().message();
    pki_ = std::make_unique<TestPki>(std::move(*pki));
    auto server = pki_->issue({.name = "fleet-server", .usage = crypto::CertUsage::tls_server});
    auto device = pki_->issue({.name = kTerminal, .usage = crypto::CertUsage::device});
    auto client = pki_->issue({.name = "portier-fleet", .usage = crypto::CertUsage::tls_client});
    auto commands =
        pki_->issue({.name = "fleet-commands", .usage = crypto::CertUsage::command_signing});
    ASSERT_TRUE(server && device && client && commands);
    server_.emplace(*server);
    device_.emplace(*device);
    client_.emplace(*client);
    commands_.emplace(*commands);
    // The terminal's identity, as enrolment would have left it.
    const auto mdir = dir_.file("state/management");
    std::filesystem::create_directories(mdir);
    ::chmod(dir_.file("state").c_str(), 0700);
    ::chmod(mdir.c_str(), 0700);
    write_file(mdir + "/terminal_id", std::string(kTerminal) + "\n");
    write_file(mdir + "/device.key", read_file(device_->key_path), 0600);
    write_file(dir_.file("device.pub"), *device_->cert.public_key()->to_pem());
    db_ = dir_.file("fleet.db");
    auto reg = run({bin("portier-fleet"), "--db", db_, "add-terminal", kTerminal, "--public-key",
                    dir_.file("device.pub")});
    ASSERT_EQ(reg.exit_code, 0) << reg.err;
    if (mqtt()) {
      TestTls tls{dir_.file("pki"), pki_->ca_path(), "", server_->chain_path, server_->key_path};
      std::filesystem::create_directories(dir_.file("broker"));
      broker_ = std::make_unique<MosquittoBroker>(dir_.file("broker"), tls);
      ASSERT_TRUE(broker_->start());
    } else {
      grpc_port_ = free_port();
    }
    start_fleet();
  }

  void start_fleet(const std::vector<std::string>& extra = {}) {
    auto argv =
        fleet_serve_argv(bin("portier-fleet"), db_, pki_->ca_path(), dir_.file("spool"), *commands_,
                         mqtt() ? std::optional<std::string>(broker_->uri()) : std::nullopt,
                         *client_, *server_, grpc_port_);
    argv.insert(argv.end(), extra.begin(), extra.end());
    // Its log (stderr) kept for failure messages.
    argv.insert(argv.begin(), {"/bin/sh", "-c", "exec \"$@\" 2>>" + dir_.file("fleet.log"), "sh"});
    fleet_ = std::make_unique<Child>(argv);
  }
  std::string fleet_log() { return read_file(dir_.file("fleet.log")); }
  // The fleet subscribed at the broker (its session exists from then on),
  // or its endpoint accepts connections.
  bool fleet_ready() {
    return eventually([&] {
      return mqtt() ? fleet_log().find("mqtt: connected") != std::string::npos
                    : port_accepts(grpc_port_);
    });
  }
  void stop_fleet() {
    if (!fleet_) return;
    fleet_->signal(SIGTERM);
    fleet_->wait_exit(10s);
    fleet_.reset();
  }

  DaemonOptions daemon_options() {
    DaemonOptions o;
    o.policy = "version = 1\n" + runner_app();
    o.extra_config =
        std::string("[management]\n") + "link = \"" + GetParam() + "\"\n" + "server = \"" +
        (mqtt() ? broker_->uri() : "localhost:" + std::to_string(grpc_port_)) + "\"\n" +
        "fleet = \"bank\"\n" + "ca_file = \"" + pki_->ca_path() + "\"\n" + "cert_file = \"" +
        device_->chain_path + "\"\n" + "command_trust_anchors = [\"" + pki_->ca_path() + "\"]\n" +
        "checkpoint_interval_s = 5\n";
    return o;
  }

  std::unique_ptr<fleet::FleetStore> store() {
    auto s = fleet::SqliteFleetStore::open(db_);
    EXPECT_TRUE(s) << s.error().message();
    return std::move(*s);
  }
  // The audit record numbers the fleet holds, in order.
  std::vector<std::uint64_t> fleet_audit() {
    auto s = store();
    auto a = s->audit(kTerminal, 0, 1000000);
    std::vector<std::uint64_t> out;
    if (a) {
      for (auto& e : *a) out.push_back(e.record);
    }
    return out;
  }
  // The terminal's own trail: its record numbers.
  std::vector<std::uint64_t> trail(const Daemon& d) {
    std::vector<std::uint64_t> out;
    std::istringstream in(d.audit());
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("{\"seq\":", 0) == 0) out.push_back(std::stoull(line.substr(7)));
    }
    return out;
  }
  std::string send(const std::string& action, std::vector<std::string> extra = {}) {
    std::vector<std::string> argv{bin("portier-fleet"),
                                  "--db",
                                  db_,
                                  "send",
                                  kTerminal,
                                  action,
                                  "--signing-key",
                                  commands_->key_path,
                                  "--signing-cert",
                                  commands_->chain_path,
                                  "--spool",
                                  dir_.file("spool")};
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto r = run(argv);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out.substr(0, r.out.find('\n'));
  }
  std::optional<fleet::CommandResultEntry> result_of(const std::string& id) {
    auto r = store()->results(kTerminal, 1000);
    if (!r) return std::nullopt;
    for (auto& e : *r) {
      if (e.command_id == id) return e;
    }
    return std::nullopt;
  }
  // The records the terminal's outbox holds (read-only, beside the running
  // portierd: SQLite WAL lets a reader in); -1 when it cannot be read.
  long outbox_records() {
    sqlite3* db = nullptr;
    long n = -1;
    const auto path = dir_.file("state/management/outbox.db");
    if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
      sqlite3_busy_timeout(db, 2000);
      sqlite3_stmt* st = nullptr;
      if (sqlite3_prepare_v2(db, "SELECT count(*) FROM records", -1, &st, nullptr) == SQLITE_OK &&
          sqlite3_step(st) == SQLITE_ROW) {
        n = sqlite3_column_int64(st, 0);
      }
      sqlite3_finalize(st);
    }
    sqlite3_close(db);
    return n;
  }
  void expect_chain_verifies() {
    auto v = run({bin("portier-fleet"), "--db", db_, "verify-chain", kTerminal});
    EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
  }

  TempDir dir_;
  std::unique_ptr<TestPki> pki_;
  std::optional<IssuedLeaf> server_, device_, client_, commands_;
  std::string db_;
  std::unique_ptr<MosquittoBroker> broker_;
  int grpc_port_ = 0;
  std::unique_ptr<Child> fleet_;
};

TEST_P(ManagementLinkTest, TheTerminalReportsAndTheFleetCommands_REQ19_REQ29_REQ36) {
  ASSERT_TRUE(fleet_ready()) << fleet_log();
  Daemon d(dir_, daemon_options());
  ASSERT_TRUE(d.start()) << d.log();
  ASSERT_TRUE(eventually([&] {
    auto t = store()->terminal(kTerminal);
    return t && !t->last_birth.empty() && t->online;
  })) << d.log();
  // A signed command, answered with a signed result.
  const auto id = send("ping", {"--text", "hello"});
  ASSERT_TRUE(eventually([&] { return result_of(id).has_value(); })) << d.log();
  auto r = result_of(id);
  EXPECT_EQ(r->status, 1) << r->message;  // OK
  // Every audit record of the terminal reaches the fleet once, in order.
  ASSERT_TRUE(eventually([&] { return fleet_audit() == trail(d); }))
      << fleet_audit().size() << " of " << trail(d).size();
  // The fleet's signed acknowledgements reach the terminal over this link
  // and verify: its outbox empties (it would only grow otherwise).
  EXPECT_TRUE(eventually([&] { return outbox_records() == 0; })) << outbox_records();
  EXPECT_EQ(d.stop(), 0);
  expect_chain_verifies();
  auto incidents = store()->incidents(kTerminal, 100);
  ASSERT_TRUE(incidents);
  EXPECT_TRUE(incidents->empty()) << incidents->front().kind << ": " << incidents->front().detail;

  // Offline, the trail against the checkpoints the terminal signed (the
  // last one at its stop): it verifies; cut short, it is caught.
  const auto trail_file = dir_.file("state/audit.jsonl");
  const auto cps = dir_.file("state/management/audit-checkpoints.jsonl");
  auto ok = run({bin("portierctl"), "audit", "verify", trail_file, "--checkpoints", cps, "--cert",
                 device_->cert_path});
  EXPECT_EQ(ok.exit_code, 0) << ok.out << ok.err;
  EXPECT_NE(ok.out.find("signed checkpoints match"), std::string::npos) << ok.out;
  auto text = read_file(trail_file);
  write_file(trail_file, text.substr(0, text.find('\n') + 1));
  auto cut = run({bin("portierctl"), "audit", "verify", trail_file, "--checkpoints", cps, "--cert",
                  device_->cert_path});
  EXPECT_EQ(cut.exit_code, 1) << cut.out << cut.err;
  EXPECT_NE(cut.out.find("were truncated or deleted"), std::string::npos) << cut.out;
}

TEST_P(ManagementLinkTest, AnOutageLosesNothingAndDuplicatesNothing_REQ29) {
  Daemon d(dir_, daemon_options());
  ASSERT_TRUE(d.start()) << d.log();
  ASSERT_TRUE(eventually([&] { return !fleet_audit().empty(); })) << d.log();
  // The broker (MQTT) or the fleet's endpoint (gRPC) goes away for a while.
  if (mqtt()) {
    broker_->stop();
  } else {
    stop_fleet();
  }
  for (int i = 0; i < 5; ++i) {
    auto c = run({bin("portierctl"), "--socket", d.socket(), "send", "terminal", "--text", "x"});
    EXPECT_NE(c.exit_code, 0);
  }
  ASSERT_TRUE(d.audit_has("\"decision\":\"deny\"")) << d.audit();
  if (mqtt()) {
    ASSERT_TRUE(broker_->start());
  } else {
    start_fleet();
  }
  ASSERT_TRUE(eventually([&] { return fleet_audit() == trail(d); }, 60s))
      << fleet_audit().size() << " of " << trail(d).size() << "\n"
      << d.log();
  EXPECT_EQ(d.stop(), 0);
  expect_chain_verifies();
}

TEST_P(ManagementLinkTest, TwentySigkillsInABurstLoseAndDuplicateNothing_REQ29) {
  for (int i = 0; i < 20; ++i) {
    Daemon d(dir_, daemon_options());
    ASSERT_TRUE(d.start()) << "start " << i << ": " << d.log();
    run({bin("portierctl"), "--socket", d.socket(), "send", "terminal", "--text", "x"});
    // Killed at once, or after a short while: anywhere in its work.
    if (i % 3) std::this_thread::sleep_for(std::chrono::milliseconds(20 * (i % 7)));
    d.signal(SIGKILL);
  }
  Daemon d(dir_, daemon_options());
  ASSERT_TRUE(d.start()) << d.log();
  ASSERT_TRUE(eventually([&] { return fleet_audit() == trail(d); }, 90s))
      << fleet_audit().size() << " of " << trail(d).size() << "\n"
      << d.log() << "\nfleet:\n"
      << fleet_log();
  auto t = store()->terminal(kTerminal);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->session_epoch, 21u);
  EXPECT_EQ(d.stop(), 0);
  expect_chain_verifies();
  auto incidents = store()->incidents(kTerminal, 100);
  ASSERT_TRUE(incidents);
  for (auto& i : *incidents) ADD_FAILURE() << i.kind << " at " << i.sequence << ": " << i.detail;
}

// A hostile publisher on the broker (past its TLS checks: it holds a
// certificate of the fleet's CA, and the test broker has no ACL) answers
// every run the terminal sends with forged acknowledgements of everything
// while the fleet is away: the old unsigned text, an unsigned
// SignedAcknowledgement, one signed by a key of another CA, one with the
// fleet's certificates and another key's signature, and one genuinely
// signed by the fleet's command key for another terminal. The terminal
// refuses them all and keeps its records: once the fleet is back, every
// audit record is stored once, in order, and the chain verifies. The fleet
// comes back under a new MQTT session, so what the broker kept for its old
// one cannot make up for a record the terminal deleted: only the
// terminal's own resends (after its ack timeout) bring them.
TEST_P(ManagementLinkTest, ForgedAcknowledgementsOnTheBrokerDeleteNothing_REQ29) {
  if (!mqtt()) GTEST_SKIP() << "a broker is MQTT's; the gRPC stream is the fleet's own";
  ASSERT_TRUE(fleet_ready()) << fleet_log();
  stop_fleet();

  auto signer_of = [](const IssuedLeaf& leaf) {
    auto s = crypto::KeySigner::from(leaf.key);
    std::vector<crypto::Certificate> chain{leaf.cert};
    chain.insert(chain.end(), leaf.chain.begin(), leaf.chain.end());
    auto a = link::AckSigner::create(std::make_shared<crypto::KeySigner>(std::move(*s)), chain);
    EXPECT_TRUE(a) << a.error().message();
    return std::move(*a);
  };
  const auto fleet_key = signer_of(*commands_);
  std::filesystem::create_directories(dir_.file("other-pki"));
  auto other_pki = TestPki::create(dir_.file("other-pki"));
  ASSERT_TRUE(other_pki);
  auto other_leaf =
      other_pki->issue({.name = "fleet-commands", .usage = crypto::CertUsage::command_signing});
  ASSERT_TRUE(other_leaf);
  const auto other_key = signer_of(*other_leaf);
  auto stranger = crypto::PrivateKey::generate(crypto::KeyType::ecdsa_p256);
  ASSERT_TRUE(stranger);
  // Everything, under a digest of nothing the terminal holds.
  const std::vector<link::AckedRange> everything{{1, 1000000000, std::string(32, '\x5a')}};
  auto forgeries = [&] {
    const auto now = std::chrono::system_clock::now();
    std::vector<std::string> out{"1,2,3,4,5,6,7,8,9,10"};
    v1::SignedAcknowledgement s;
    s.ParseFromString(*fleet_key.sign(kTerminal, everything, now));
    s.clear_signature();
    out.push_back(s.SerializeAsString());
    auto sig = crypto::sign(*stranger, link::ack_signing_input(s.acknowledgement()));
    s.set_signature(std::string(sig->begin(), sig->end()));
    out.push_back(s.SerializeAsString());
    out.push_back(*other_key.sign(kTerminal, everything, now));
    out.push_back(*fleet_key.sign("T-ffffffffffffffffffffffffffffffff", everything, now));
    return out;
  };

  std::atomic<int> answered{0};
  std::unique_ptr<mqtt::MqttClient> hostile;
  mqtt::ClientOptions o;
  o.server_uri = broker_->uri();
  o.client_id = "hostile";
  o.tls = {pki_->ca_path(), client_->chain_path, client_->key_path};
  o.max_incoming_payload = 1 << 20;
  mqtt::ClientCallbacks cb;
  const std::string ack_topic = "portier/v1/bank/" + std::string(kTerminal) + "/down/ack";
  cb.message = [&](const std::string&, std::string) {
    for (auto& f : forgeries()) (void)hostile->publish(ack_topic, f, false, [](Result<void>) {});
    ++answered;
  };
  auto c = mqtt::MqttClient::create(o, cb);
  ASSERT_TRUE(c) << c.error().message();
  hostile = std::move(*c);
  hostile->subscribe("portier/v1/bank/+/up/run", 1);
  hostile->start();
  ASSERT_TRUE(eventually([&] { return hostile->connected(); }));

  Daemon d(dir_, daemon_options());
  ASSERT_TRUE(d.start()) << d.log();
  for (int i = 0; i < 5; ++i) {
    run({bin("portierctl"), "--socket", d.socket(), "send", "terminal", "--text", "x"});
  }
  ASSERT_TRUE(d.audit_has("\"decision\":\"deny\"")) << d.audit();
  ASSERT_TRUE(eventually([&] { return answered >= 3; })) << d.log();
  // The terminal saw them and refused them (logged once, not per message).
  ASSERT_TRUE(eventually([&] {
    return d.log().find("acknowledgement(s) refused") != std::string::npos;
  })) << d.log();
  hostile->stop();

  start_fleet({"--client-id", "portier-fleet-bank-new-session"});
  ASSERT_TRUE(eventually([&] { return fleet_audit() == trail(d); }, 60s))
      << fleet_audit().size() << " of " << trail(d).size() << "\n"
      << d.log() << "\nfleet:\n"
      << fleet_log();
  EXPECT_EQ(d.stop(), 0);
  expect_chain_verifies();
  auto incidents = store()->incidents(kTerminal, 100);
  ASSERT_TRUE(incidents);
  for (auto& i : *incidents) ADD_FAILURE() << i.kind << " at " << i.sequence << ": " << i.detail;
}

// The fleet's side of each link (the broker, or portier-fleet's endpoint)
// speaks TLS 1.2 or newer with client certificates only: a TLS 1.1 client
// and a client without a certificate are refused, the same client with its
// certificate over TLS 1.2 is not (so the refusals are about version and
// certificate). The openssl CLI is the client.
TEST_P(ManagementLinkTest, OldTlsAndClientsWithoutACertificateAreRefused_REQ20) {
  ASSERT_TRUE(fleet_ready()) << fleet_log();
  const auto port = std::to_string(mqtt() ? broker_->port() : grpc_port_);
  auto s_client = [&](const std::string& args) {
    return run({"/bin/sh", "-c",
                "openssl s_client -connect 127.0.0.1:" + port + " -CAfile " + pki_->ca_path() +
                    " " + args + " </dev/null"});
  };
  const std::string cert = " -cert " + device_->chain_path + " -key " + device_->key_path;
  // s_client prints "New, TLSv1.2, Cipher is ..." once a session is up.
  auto session = [](const ProcessResult& r) {
    return r.out.find("New, TLSv1.") != std::string::npos;
  };
  auto tls11 = s_client("-tls1_1" + cert);
  EXPECT_FALSE(session(tls11)) << tls11.out << tls11.err;
  // A client of the link's own kind, once without a certificate, once with.
  auto connects = [&](bool with_cert) -> bool {
    if (mqtt()) {
      std::vector<std::string> argv{"/usr/bin/mosquitto_pub",
                                    "-h",
                                    "127.0.0.1",
                                    "-p",
                                    port,
                                    "--cafile",
                                    pki_->ca_path(),
                                    "-m",
                                    "x",
                                    "-q",
                                    "1",
                                    "-t",
                                    "portier/v1/bank/" + std::string(kTerminal) + "/up/x"};
      if (with_cert) {
        argv.insert(argv.end(), {"--cert", device_->chain_path, "--key", device_->key_path});
      }
      auto r = run(argv);
      if (with_cert && r.exit_code != 0) ADD_FAILURE() << r.out << r.err;
      return r.exit_code == 0;
    }
    grpc::SslCredentialsOptions o;
    o.pem_root_certs = read_file(pki_->ca_path());
    if (with_cert) {
      o.pem_cert_chain = read_file(device_->chain_path);
      o.pem_private_key = read_file(device_->key_path);
    }
    auto stub =
        v1::Fleet::NewStub(grpc::CreateChannel("localhost:" + port, grpc::SslCredentials(o)));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 10s);
    auto stream = stub->Connect(&ctx);
    stream->WaitForInitialMetadata();
    const bool up = ctx.GetServerInitialMetadata().count("portier-fleet") > 0;
    ctx.TryCancel();
    (void)stream->Finish();
    return up;
  };
  EXPECT_FALSE(connects(false)) << "a client without a certificate was let in";
  EXPECT_TRUE(connects(true));
  auto good = s_client("-tls1_2" + cert);
  EXPECT_TRUE(session(good)) << good.out << good.err;
}

// The birth carries the policy in force: the fleet shows the SHA-256 of the
// policy file portierd runs (as the openssl CLI computes it), and, after a
// signed ReplacePolicy, the new file's digest and its version (a new birth
// of the same session goes up once the replacement is recorded).
TEST_P(ManagementLinkTest, TheFleetShowsThePolicyPortierdRunsAndTheOneTheFleetInstalled_REQ30) {
  ASSERT_TRUE(fleet_ready()) << fleet_log();
  Daemon d(dir_, daemon_options());
  ASSERT_TRUE(d.start()) << d.log();
  auto sha256_of = [&](const std::string& path) {
    auto r = run({"/bin/sh", "-c", "exec openssl dgst -sha256 -r \"$0\"", path});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out.substr(0, 64);
  };
  auto shown = [&] {
    return run({bin("portier-fleet"), "--db", db_, "show", kTerminal, "--json"}).out;
  };
  auto shows = [&](const std::string& sha, std::uint64_t version) {
    return shown().find("\"policy\":{\"sha256\":\"" + sha +
                        "\",\"version\":" + std::to_string(version) + ",") != std::string::npos;
  };
  const auto first = sha256_of(d.policy_path());
  ASSERT_EQ(first.size(), 64u);
  ASSERT_TRUE(eventually([&] { return shows(first, 0); })) << shown() << d.log();

  const auto next_file = dir_.file("next-policy.toml");
  write_file(next_file, "version = 1\n" + runner_app() + "\n# installed by the fleet\n");
  const auto next = sha256_of(next_file);
  ASSERT_NE(next, first);
  const auto id = send("replace-policy", {"--policy", next_file, "--version", "7"});
  ASSERT_TRUE(eventually([&] { return result_of(id).has_value(); })) << d.log();
  EXPECT_EQ(result_of(id)->status, 1) << result_of(id)->message;  // OK
  EXPECT_EQ(sha256_of(d.policy_path()), next) << "portierd runs the file the fleet sent";
  ASSERT_TRUE(eventually([&] { return shows(next, 7); })) << shown() << d.log();
  auto text = run({bin("portier-fleet"), "--db", db_, "show", kTerminal});
  EXPECT_NE(text.out.find("policy         sha256 " + next + ", version 7"), std::string::npos)
      << text.out;
  EXPECT_EQ(d.stop(), 0);
  expect_chain_verifies();
}

INSTANTIATE_TEST_SUITE_P(Links, ManagementLinkTest, ::testing::Values("mqtt", "grpc"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace portier::test
