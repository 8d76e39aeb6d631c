// portier-fleet, the binary, run as an operator would (posix_spawn): it
// registers terminals and refuses what it must, shows what the receiver
// stored in text and --json (parsed here), and verify-chain catches a row
// changed in the database behind the receiver's back, naming its sequence.
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>
#include <sqlite3.h>

#include "fleet_cli_support.h"
#include "fleet_test_support.h"
#include "portier/v1/command.pb.h"
#include "support/test_pki.h"
#include "tools/fleet/receiver.h"
#include "tools/fleet/sqlite_fleet_store.h"

namespace portier::fleet {
namespace {

using testing::kT0;
using testing::SimTerminal;

using testing::CliRun;
using testing::slurp;

class FleetCli : public ::testing::Test {
 protected:
  CliRun cli(std::vector<std::string> args, bool with_db = true) {
    if (with_db) args.insert(args.begin(), {"--db", db});
    return testing::run_fleet_cli(std::move(args), dir.path());
  }
  // Parses --json output (one object); fails the test when it is not JSON.
  google::protobuf::Struct json(const CliRun& r) {
    google::protobuf::Struct s;
    EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(r.out, &s).ok()) << r.out;
    return s;
  }
  void add(const SimTerminal& t) {
    auto r = cli({"add-terminal", t.id, "--public-key", dir.write(t.id + ".pem", t.public_pem())});
    ASSERT_EQ(r.code, 0) << r.err;
  }
  void receive(Receiver& rx, const SimTerminal& t, const std::string& bytes,
               const std::string& kind = "envelope") {
    auto r = rx.receive(t.id, kind, bytes, kT0);
    ASSERT_TRUE(r) << r.error().message();
  }
  // Runs one statement on the database, as someone with the file would.
  void sql(const std::string& statement, const std::string& blob = {}) {
    sqlite3* h = nullptr;
    ASSERT_EQ(sqlite3_open(db.c_str(), &h), SQLITE_OK);
    sqlite3_stmt* s = nullptr;
    ASSERT_EQ(sqlite3_prepare_v2(h, statement.c_str(), -1, &s, nullptr), SQLITE_OK)
        << sqlite3_errmsg(h);
    if (!blob.empty()) sqlite3_bind_blob(s, 1, blob.data(), static_cast<int>(blob.size()), nullptr);
    EXPECT_EQ(sqlite3_step(s), SQLITE_DONE) << sqlite3_errmsg(h);
    EXPECT_EQ(sqlite3_changes(h), 1) << statement;
    sqlite3_finalize(s);
    sqlite3_close(h);
  }

  testing::TempDir dir;
  std::string db = dir.path() + "/fleet.db";
};

TEST_F(FleetCli, RegistersATerminalAndRefusesDuplicatesAndBadKeys) {
  SimTerminal t("ATM-0001", crypto::KeyType::sm2);
  EXPECT_EQ(cli({"terminals"}).code, 4);  // no database yet
  add(t);
  struct stat st {};
  ASSERT_EQ(::stat(db.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto dup = cli({"add-terminal", t.id, "--public-key", dir.path() + "/ATM-0001.pem"});
  EXPECT_EQ(dup.code, 5);
  EXPECT_NE(dup.err.find("already registered"), std::string::npos) << dup.err;
  // A private key, garbage, a missing file: refused, nothing registered.
  auto priv =
      cli({"add-terminal", "ATM-0002", "--public-key", dir.write("priv.pem", *t.key.to_pem())});
  EXPECT_EQ(priv.code, 3) << priv.err;
  EXPECT_NE(priv.err.find("not a usable public key"), std::string::npos) << priv.err;
  EXPECT_EQ(cli({"add-terminal", "ATM-0002", "--public-key", dir.write("junk.pem", "junk")}).code,
            3);
  EXPECT_EQ(cli({"add-terminal", "ATM-0002", "--public-key", dir.path() + "/none"}).code, 3);
  auto bad_id = cli({"add-terminal", "ATM/#", "--public-key", dir.path() + "/ATM-0001.pem"});
  EXPECT_EQ(bad_id.code, 3);
  EXPECT_NE(bad_id.err.find("MQTT"), std::string::npos) << bad_id.err;
  EXPECT_EQ(cli({"add-terminal", "ATM-0002"}).code, 2);
  EXPECT_EQ(cli({"frobnicate"}).code, 2);
  EXPECT_EQ(cli({"terminals", "--bogus"}).code, 2);
  EXPECT_EQ(cli({"terminals"}, false).code, 2);  // no --db
  auto help = cli({"--help"}, false);
  EXPECT_EQ(help.code, 0);
  EXPECT_NE(help.out.find("exit codes"), std::string::npos);
  auto list = json(cli({"terminals", "--json"}));
  ASSERT_EQ(list.fields().at("terminals").list_value().values_size(), 1);
  auto& only = list.fields().at("terminals").list_value().values(0).struct_value().fields();
  EXPECT_EQ(only.at("id").string_value(), "ATM-0001");
  EXPECT_EQ(only.at("key_algorithm").string_value(), "sm2");
  EXPECT_EQ(only.at("state").string_value(), "never seen");
}

TEST_F(FleetCli, ReadCommandsShowWhatTheReceiverStored) {
  SimTerminal t("ATM-0001", crypto::KeyType::ecdsa_p256);
  add(t);
  auto store = SqliteFleetStore::open(db);
  ASSERT_TRUE(store);
  Receiver rx(**store);
  v1::Birth birth;
  birth.set_portierd_version("1.2.3");
  receive(rx, t, testing::bytes(t.seal(v1::PAYLOAD_BIRTH, birth.SerializeAsString())));
  receive(rx, t, testing::bytes(t.health(1)));
  v1::Inventory inv;
  inv.add_devices()->set_id("cardreader0");
  receive(rx, t, testing::bytes(t.seal(v1::PAYLOAD_INVENTORY, inv.SerializeAsString())));
  receive(rx, t, testing::bytes(t.audit(1, {R"({"event":"a"})", R"({"event":"b"})"})));
  receive(rx, t, testing::bytes(t.audit(3, {R"({"event":"c"})"})));
  auto tampered = t.health(2);
  v1::EnvelopeBody body;
  ASSERT_TRUE(body.ParseFromString(tampered.envelope.body()));
  body.set_payload("changed in flight");
  body.SerializeToString(tampered.envelope.mutable_body());
  EXPECT_FALSE(rx.receive(t.id, "envelope", testing::bytes(tampered), kT0));

  auto show = cli({"show", t.id, "--json"});
  ASSERT_EQ(show.code, 0) << show.err;
  auto s = json(show);
  auto& f = s.fields();
  EXPECT_EQ(f.at("terminal").struct_value().fields().at("state").string_value(), "online");
  EXPECT_EQ(f.at("last_sequence").number_value(), 5);
  EXPECT_EQ(f.at("counts").struct_value().fields().at("audit_records").number_value(), 3);
  EXPECT_EQ(f.at("birth").struct_value().fields().at("portierd_version").string_value(), "1.2.3");
  EXPECT_EQ(f.at("health")
                .struct_value()
                .fields()
                .at("health")
                .struct_value()
                .fields()
                .at("state")
                .string_value(),
            "OK");
  EXPECT_EQ(f.at("inventory")
                .struct_value()
                .fields()
                .at("devices")
                .list_value()
                .values(0)
                .struct_value()
                .fields()
                .at("id")
                .string_value(),
            "cardreader0");
  ASSERT_EQ(f.at("incidents").list_value().values_size(), 1);
  EXPECT_EQ(
      f.at("incidents").list_value().values(0).struct_value().fields().at("kind").string_value(),
      "tampered");
  auto text = cli({"show", t.id});
  EXPECT_EQ(text.code, 0);
  EXPECT_NE(text.out.find("online"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("cardreader0"), std::string::npos) << text.out;

  auto audit = json(cli({"audit", t.id, "--from", "2", "--json"}));
  auto& records = audit.fields().at("records").list_value();
  ASSERT_EQ(records.values_size(), 2);
  EXPECT_EQ(records.values(0).struct_value().fields().at("record").number_value(), 2);
  EXPECT_EQ(records.values(1).struct_value().fields().at("line").string_value(),
            R"({"event":"c"})");
  EXPECT_NE(cli({"audit", t.id}).out.find(R"(1	{"event":"a"})"), std::string::npos);

  auto inc = json(cli({"incidents", "--json"}));
  ASSERT_EQ(inc.fields().at("incidents").list_value().values_size(), 1);
  EXPECT_NE(cli({"incidents", t.id}).out.find("tampered"), std::string::npos);
  EXPECT_EQ(cli({"show", "ATM-4040"}).code, 4);
  EXPECT_EQ(cli({"audit", "ATM-4040"}).code, 4);
  EXPECT_EQ(cli({"incidents", "ATM-4040"}).code, 4);
}

TEST_F(FleetCli, VerifyChainNamesTheFirstRowChangedInTheDatabase_REQ29) {
  SimTerminal t("ATM-0001", crypto::KeyType::ed25519);
  add(t);
  std::vector<envelope::EnvelopeSealer::Sealed> sent;
  {
    auto store = SqliteFleetStore::open(db);
    ASSERT_TRUE(store);
    Receiver rx(**store);
    for (int i = 1; i <= 3; ++i) sent.push_back(t.audit(static_cast<std::uint64_t>(i), {"r"}));
    // 4 and 5 unsigned, covered by a batch: re-verified through it.
    sent.push_back(t.health(4, false));
    sent.push_back(t.health(5, false));
    for (auto& s : sent) receive(rx, t, testing::bytes(s));
    receive(rx, t, t.batch(4, 5, sent.back().digest), "batch");
  }
  auto ok = cli({"verify-chain", t.id});
  EXPECT_EQ(ok.code, 0) << ok.out << ok.err;
  EXPECT_NE(ok.out.find("ok, 5 envelope(s) verified"), std::string::npos) << ok.out;

  auto expect_broken_at = [&](std::uint64_t seq, const std::string& why) {
    auto r = cli({"verify-chain", t.id});
    EXPECT_EQ(r.code, 1) << r.out;
    EXPECT_NE(r.out.find("BROKEN at sequence " + std::to_string(seq)), std::string::npos) << r.out;
    EXPECT_NE(r.out.find(why), std::string::npos) << r.out;
    auto j = json(cli({"verify-chain", t.id, "--json"}));
    EXPECT_FALSE(j.fields().at("ok").bool_value());
    EXPECT_EQ(j.fields().at("first_bad_sequence").number_value(), static_cast<double>(seq));
  };
  // The body of 2 changed, its digest column left: the digests disagree.
  auto changed = sent[1];
  v1::EnvelopeBody b;
  ASSERT_TRUE(b.ParseFromString(changed.envelope.body()));
  b.set_payload("rewritten");
  b.SerializeToString(changed.envelope.mutable_body());
  sql("UPDATE envelopes SET envelope = ? WHERE seq = 2", testing::bytes(changed));
  expect_broken_at(2, "digest");
  // The digest column rewritten to match: the signature still tells.
  auto digest = crypto::digest(crypto::DigestAlgo::sha256, changed.envelope.body());
  sql("UPDATE envelopes SET digest = ? WHERE seq = 2", std::string(digest->begin(), digest->end()));
  expect_broken_at(2, "bad signature");
  sql("UPDATE envelopes SET envelope = ? WHERE seq = 2", testing::bytes(sent[1]));
  sql("UPDATE envelopes SET digest = ? WHERE seq = 2",
      std::string(sent[1].digest.begin(), sent[1].digest.end()));
  EXPECT_EQ(cli({"verify-chain", t.id}).code, 0);
  // An unsigned link inside the batch, changed with its digest: the chain breaks.
  auto five = sent[4];
  ASSERT_TRUE(b.ParseFromString(five.envelope.body()));
  b.set_payload("rewritten");
  b.SerializeToString(five.envelope.mutable_body());
  auto d5 = crypto::digest(crypto::DigestAlgo::sha256, five.envelope.body());
  sql("UPDATE envelopes SET envelope = ? WHERE seq = 5", testing::bytes(five));
  sql("UPDATE envelopes SET digest = ? WHERE seq = 5", std::string(d5->begin(), d5->end()));
  expect_broken_at(5, "head digest");
  sql("UPDATE envelopes SET envelope = ? WHERE seq = 5", testing::bytes(sent[4]));
  sql("UPDATE envelopes SET digest = ? WHERE seq = 5",
      std::string(sent[4].digest.begin(), sent[4].digest.end()));
  // An audit row changed: named by the envelope that carried it.
  sql("UPDATE audit SET line = 'forged' WHERE record = 3");
  expect_broken_at(3, "audit record 3");
  sql("UPDATE audit SET line = 'r' WHERE record = 3");
  EXPECT_EQ(cli({"verify-chain", t.id}).code, 0);
  // A row deleted: the gap is named.
  sql("DELETE FROM envelopes WHERE seq = 2");
  expect_broken_at(2, "missing");
}

// `send TERMINAL install-certificate`: the certificate (and its chain) of
// --cert goes into a signed InstallCertificate command in the spool. A
// certificate for another terminal or another key is refused and nothing
// is queued. (A rotate-key result's CSR: install_certificate_test.cc.)
TEST_F(FleetCli, SendInstallCertificateQueuesTheSignedCertificate_REQ36) {
  SimTerminal t("ATM-0001", crypto::KeyType::ecdsa_p256);
  auto pki = portier::test::TestPki::create(dir.path());
  ASSERT_TRUE(pki) << pki.error().message();
  auto signing =
      pki->issue({.name = "fleet-commands", .usage = crypto::CertUsage::command_signing});
  // A certificate for the terminal's name but a stranger's key (kept aside:
  // the next leaf of that name writes the same files).
  auto impostor = pki->issue({.name = t.id, .usage = crypto::CertUsage::device});
  ASSERT_TRUE(impostor);
  const std::string impostor_pem = dir.write("impostor.pem", slurp(impostor->chain_path));
  auto device = pki->issue({.name = t.id, .usage = crypto::CertUsage::device});
  auto other = pki->issue({.name = "ATM-0002", .usage = crypto::CertUsage::device});
  ASSERT_TRUE(signing && device && other);
  // The fleet knows the terminal by the device certificate's key.
  auto added = cli({"add-terminal", t.id, "--public-key",
                    dir.write(t.id + ".pem", *device->key.public_key()->to_pem())});
  ASSERT_EQ(added.code, 0) << added.err;
  const std::string spool = dir.path() + "/spool";
  auto send = [&](std::vector<std::string> extra) {
    return cli(testing::send_argv(t.id, "install-certificate", signing->key_path,
                                  signing->chain_path, spool, std::move(extra)));
  };
  auto queued = [&](const std::string& id) {
    v1::SignedCommand sc;
    v1::Command c;
    EXPECT_TRUE(sc.ParseFromString(slurp(spool + "/" + t.id + "/" + id + ".cmd")));
    EXPECT_TRUE(c.ParseFromString(sc.command()));
    return c;
  };

  auto r = send({"--cert", device->chain_path, "--id", "c-cert"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "c-cert\n");
  v1::Command c = queued("c-cert");
  EXPECT_EQ(c.target_terminal(), t.id);
  ASSERT_TRUE(c.has_install_certificate());
  const auto leaf_der = *device->cert.der();
  EXPECT_EQ(c.install_certificate().certificate(), std::string(leaf_der.begin(), leaf_der.end()));
  ASSERT_EQ(c.install_certificate().chain_size(), 1);
  const auto mid_der = *pki->intermediate().der();
  EXPECT_EQ(c.install_certificate().chain(0), std::string(mid_der.begin(), mid_der.end()));

  // A stranger's key under the terminal's name: refused, nothing queued.
  r = send({"--cert", impostor_pem, "--id", "c-impostor"});
  EXPECT_EQ(r.code, 3);
  EXPECT_NE(r.err.find("neither terminal ATM-0001's key nor its certified next key"),
            std::string::npos)
      << r.err;
  EXPECT_FALSE(std::filesystem::exists(spool + "/" + t.id + "/c-impostor.cmd"));

  // Another terminal's certificate, no certificate, both options, no option.
  r = send({"--cert", other->chain_path, "--id", "c-other"});
  EXPECT_EQ(r.code, 3);
  EXPECT_NE(r.err.find("\"ATM-0002\", not terminal ATM-0001"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(spool + "/" + t.id + "/c-other.cmd"));
  r = send({"--cert", dir.write("empty.pem", "not a certificate\n")});
  EXPECT_EQ(r.code, 3) << r.err;
  r = send({"--cert", device->chain_path, "--csr", device->chain_path});
  EXPECT_EQ(r.code, 2) << r.err;
  r = send({});
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("--cert FILE"), std::string::npos) << r.err;

  r = send({"--cert", device->chain_path, "--from-result", "c-cert"});
  EXPECT_EQ(r.code, 2) << r.err;
}

}  // namespace
}  // namespace portier::fleet
