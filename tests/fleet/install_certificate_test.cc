// `portier-fleet send T install-certificate --from-result ID / --csr FILE`
// for a terminal whose key is in a PKCS#11 token (REQ-33, REQ-36): the
// fleet certifies only the CSR the terminal itself sent in the newest
// result of a rotate-key command the fleet sent it, stored once the
// terminal's signed chain covered it, and only when that result says the
// new key is a token's (the next key then takes over at its first
// signature, no cutover). Here the terminal is simulated: real keys, real
// signed envelopes through the real receiver into the real store, the real
// binary, the real enrolment CA and registry.
#include <gtest/gtest.h>

#include "agent/management/token_rotation_output.h"
#include "common/crypto/digest.h"
#include "fleet_cli_support.h"
#include "fleet_test_support.h"
#include "portier/v1/command.pb.h"
#include "support/test_pki.h"
#include "tools/fleet/enrolment/sqlite_enrolment_registry.h"
#include "tools/fleet/receiver.h"
#include "tools/fleet/sqlite_fleet_store.h"

namespace portier::fleet {
namespace {

using testing::CliRun;
using testing::kT0;
using testing::SimTerminal;
using testing::slurp;

constexpr const char* kSerial = "SN-ROT-1";

class InstallCertificate : public ::testing::Test {
 protected:
  void SetUp() override {
    auto p = portier::test::TestPki::create(dir.path());
    ASSERT_TRUE(p) << p.error().message();
    pki.emplace(std::move(*p));
    auto s = pki->issue({.name = "fleet-commands", .usage = crypto::CertUsage::command_signing});
    ASSERT_TRUE(s) << s.error().message();
    signing.emplace(std::move(*s));
    auto added =
        cli({"add-terminal", t.id, "--public-key", dir.write(t.id + ".pem", t.public_pem())});
    ASSERT_EQ(added.code, 0) << added.err;
    // Enrolled under kSerial with the key it signs with.
    auto device = pki->issue({.name = t.id, .usage = crypto::CertUsage::device});
    ASSERT_TRUE(device) << device.error().message();
    auto reg = SqliteEnrolmentRegistry::open(registry);
    ASSERT_TRUE(reg) << reg.error().message();
    ASSERT_TRUE((*reg)->expect(kSerial, crypto::byte_view(std::string("secret-of-SN-ROT-1"))));
    ASSERT_TRUE((*reg)->bind(kSerial, t.id, t.public_pem(), *device->cert.der()));
    auto opened = SqliteFleetStore::open(db);
    ASSERT_TRUE(opened) << opened.error().message();
    store = std::move(*opened);
    rx.emplace(*store);
  }

  CliRun cli(std::vector<std::string> args) {
    args.insert(args.begin(), {"--db", db});
    return testing::run_fleet_cli(std::move(args), dir.path());
  }
  CliRun send(const std::string& action, std::vector<std::string> extra) {
    return cli(testing::send_argv(t.id, action, signing->key_path, signing->chain_path, spool,
                                  std::move(extra)));
  }
  // install-certificate with the enrolment CA and registry.
  CliRun install(const std::string& id, std::vector<std::string> extra) {
    extra.insert(extra.end(),
                 {"--id", id, "--enrol-ca-cert", pki->intermediate_path(), "--enrol-ca-key",
                  dir.path() + "/intermediate.key", "--enrol-registry", registry});
    return send("install-certificate", extra);
  }
  bool queued(const std::string& id) {
    return std::filesystem::exists(spool + "/" + t.id + "/" + id + ".cmd");
  }
  v1::Command command(const std::string& id) {
    v1::SignedCommand sc;
    v1::Command c;
    EXPECT_TRUE(sc.ParseFromString(slurp(spool + "/" + t.id + "/" + id + ".cmd")));
    EXPECT_TRUE(c.ParseFromString(sc.command()));
    return c;
  }
  // The digest a result names: SHA-256 of the queued command as signed.
  std::string digest_of(const std::string& id) {
    v1::SignedCommand sc;
    EXPECT_TRUE(sc.ParseFromString(slurp(spool + "/" + t.id + "/" + id + ".cmd")));
    auto d = crypto::digest(crypto::DigestAlgo::sha256, sc.command());
    EXPECT_TRUE(d);
    return std::string(d->begin(), d->end());
  }
  // The fleet sends rotate-key `id`.
  void send_rotate(const std::string& id) {
    auto r = send("rotate-key", {"--id", id});
    ASSERT_EQ(r.code, 0) << r.err;
  }
  // The terminal answers command `id` (digest `digest`), its envelope
  // signed or not; returns what the receiver made of it.
  Result<Receipt> answer(const std::string& id, const std::string& digest,
                         const std::string& output, bool sign = true) {
    v1::CommandResult r;
    r.set_command_id(id);
    r.set_command_digest(digest);
    r.set_status(v1::CommandResult::OK);
    r.set_output(output);
    return rx->receive(
        t.id, "envelope",
        testing::bytes(t.seal(v1::PAYLOAD_COMMAND_RESULT, r.SerializeAsString(), sign)), kT0);
  }
  // A new key made "in the token" and the output the terminal sends.
  struct TokenKey {
    crypto::PrivateKey key;
    std::string csr_pem;
    std::string output;
  };
  TokenKey token_key(const std::string& serial = kSerial) {
    auto key = crypto::PrivateKey::generate(crypto::KeyType::ecdsa_p256);
    EXPECT_TRUE(key);
    auto csr = crypto::CertificateRequest::create(*key, {t.id, serial, ""});
    EXPECT_TRUE(csr);
    auto pem = *csr->to_pem();
    return {std::move(*key), pem,
            management::token_rotation_output("key made in the PKCS#11 token (CSR below)", pem)};
  }
  std::string pem_of(const crypto::PrivateKey& k) { return *k.public_key()->to_pem(); }
  std::optional<TerminalKey> next_key() {
    auto keys = store->keys(t.id);
    EXPECT_TRUE(keys) << keys.error().message();
    for (auto& k : *keys) {
      if (k.from_sequence == 0) return k;
    }
    return std::nullopt;
  }
  std::string registry_key() {
    auto reg = SqliteEnrolmentRegistry::open(registry);
    auto rec = (*reg)->find(kSerial);
    EXPECT_TRUE(rec && *rec);
    return (*rec)->public_key_pem;
  }

  testing::TempDir dir;
  std::string db = dir.path() + "/fleet.db";
  std::string registry = dir.path() + "/enrolment.db";
  std::string spool = dir.path() + "/spool";
  SimTerminal t{"ATM-0001", crypto::KeyType::ecdsa_p256};
  std::optional<portier::test::TestPki> pki;
  std::optional<portier::test::IssuedLeaf> signing;
  std::unique_ptr<SqliteFleetStore> store;
  std::optional<Receiver> rx;
};

// An attacker's CSR with the terminal's name and serial (it proves nothing
// but the attacker's own key) is refused with no result and with one; of
// two rotate-key results only the newest is certified, the older refused
// as superseded; the newest gets a certificate and becomes the next key
// with no cutover; once certified, and once in use, it is not again.
TEST_F(InstallCertificate,
       OnlyTheCsrOfTheTerminalsNewestVerifiedRotateKeyResultIsCertified_REQ33_REQ36) {
  auto attacker = token_key();
  const auto attacker_csr = dir.write("attacker.csr", attacker.csr_pem);
  const std::string first_pem = registry_key();

  // No rotate-key result at all.
  auto r = install("c-none", {"--csr", attacker_csr});
  EXPECT_EQ(r.code, 4) << r.err;
  EXPECT_NE(r.err.find("no result of a rotate-key command this fleet sent"), std::string::npos)
      << r.err;
  EXPECT_FALSE(queued("c-none"));

  send_rotate("c-rot1");
  auto one = token_key();
  ASSERT_TRUE(answer("c-rot1", digest_of("c-rot1"), one.output));
  r = install("c-attack", {"--csr", attacker_csr});
  EXPECT_EQ(r.code, 3) << r.err;
  EXPECT_NE(r.err.find("is not the key the terminal made in its newest rotate-key result "
                       "(command c-rot1"),
            std::string::npos)
      << r.err;
  EXPECT_FALSE(queued("c-attack"));
  r = install("c-nope", {"--from-result", "c-nope"});
  EXPECT_EQ(r.code, 3) << r.err;
  EXPECT_NE(r.err.find("no stored result of a rotate-key command c-nope"), std::string::npos)
      << r.err;

  // A second rotation: the first one's CSR is superseded.
  send_rotate("c-rot2");
  auto two = token_key();
  ASSERT_TRUE(answer("c-rot2", digest_of("c-rot2"), two.output));
  r = install("c-old", {"--csr", dir.write("one.txt", one.output)});
  EXPECT_EQ(r.code, 3) << r.err;
  EXPECT_NE(r.err.find("superseded by command c-rot2"), std::string::npos) << r.err;
  r = install("c-old2", {"--from-result", "c-rot1"});
  EXPECT_EQ(r.code, 3) << r.err;
  EXPECT_NE(r.err.find("rotate-key command c-rot1, sequence 1 is superseded by command c-rot2"),
            std::string::npos)
      << r.err;
  EXPECT_FALSE(queued("c-old") || queued("c-old2"));
  EXPECT_FALSE(next_key());
  EXPECT_EQ(registry_key(), first_pem);

  // The newest: certified, the store told of the next key with no cutover.
  r = install("c-install", {"--from-result", "c-rot2", "--csr", dir.write("two.txt", two.output)});
  ASSERT_EQ(r.code, 0) << r.err;
  auto ic = command("c-install").install_certificate();
  auto issued = crypto::Certificate::from_der(crypto::byte_view(ic.certificate()));
  ASSERT_TRUE(issued) << issued.error().message();
  EXPECT_EQ(issued->subject_cn(), t.id);
  EXPECT_EQ(*issued->public_key()->to_pem(), pem_of(two.key));
  auto next = next_key();
  ASSERT_TRUE(next);
  EXPECT_EQ(next->public_key_pem, pem_of(two.key));
  EXPECT_EQ(next->cutover, 0u);
  EXPECT_EQ(registry_key(), pem_of(two.key));

  // Again: certified already; then in use (it signed): installed.
  r = install("c-again", {"--from-result", "c-rot2"});
  EXPECT_EQ(r.code, 3) << r.err;
  EXPECT_NE(r.err.find("already certified as its next key"), std::string::npos) << r.err;
  t.key = std::move(two.key);
  ASSERT_TRUE(rx->receive(t.id, "envelope", testing::bytes(t.health(1)), kT0));
  ASSERT_EQ(store->terminal(t.id)->public_key_pem, t.public_pem());
  r = install("c-again2", {"--from-result", "c-rot2"});
  EXPECT_EQ(r.code, 3) << r.err;
  EXPECT_NE(r.err.find("is already its key: installed"), std::string::npos) << r.err;
  EXPECT_FALSE(queued("c-again") || queued("c-again2"));
}

// What does not count: a result the chain does not cover (an unsigned
// candidate: anyone can send one), until the terminal's signed envelope
// covers it; a result, signed and covered, for a command this fleet never
// sent, or naming a sent command's id with another command's digest.
TEST_F(InstallCertificate, AResultNotVerifiedOrNotOfACommandThisFleetSentDoesNotCount_REQ36) {
  send_rotate("c-rot");
  auto key = token_key();
  const auto csr_file = dir.write("rotation.txt", key.output);
  // For a command never sent, and for c-rot's id with a digest of another.
  ASSERT_TRUE(answer("c-unsent", std::string(32, 'x'), key.output));
  ASSERT_TRUE(answer("c-rot", digest_of("c-rot").replace(0, 1, "!"), key.output));
  auto r = install("c-1", {"--csr", csr_file});
  EXPECT_EQ(r.code, 4) << r.err;
  EXPECT_NE(r.err.find("no result of a rotate-key command this fleet sent"), std::string::npos)
      << r.err;

  // The right one, unsigned: a candidate only.
  auto held = answer("c-rot", digest_of("c-rot"), key.output, false);
  ASSERT_TRUE(held) << held.error().message();
  ASSERT_EQ(store->chain_state(t.id)->pending_summary.count, 1u);
  r = install("c-2", {"--csr", csr_file});
  EXPECT_EQ(r.code, 4) << r.err;
  EXPECT_FALSE(queued("c-1") || queued("c-2"));
  EXPECT_FALSE(next_key());

  // The terminal's next signed envelope covers it: now it counts.
  ASSERT_TRUE(rx->receive(t.id, "envelope", testing::bytes(t.health(1)), kT0));
  ASSERT_EQ(store->chain_state(t.id)->pending_summary.count, 0u);
  r = install("c-3", {"--csr", csr_file});
  ASSERT_EQ(r.code, 0) << r.err;
  ASSERT_TRUE(next_key());
  EXPECT_EQ(next_key()->public_key_pem, pem_of(key.key));
}

// A terminal whose key is a file: its rotate-key result does not say the
// new key is a token's (here one with a CSR in the old format, as a
// terminal of before, or a file key's Renew result), and a certificate with
// no cutover would let a thief of the old file key sign on. Refused,
// nothing issued or recorded; a token rotation superseded by such a
// result is refused too.
TEST_F(InstallCertificate, AFileKeyTerminalIsRefusedACertificateWithNoCutover_REQ33) {
  send_rotate("c-token");
  auto token = token_key();
  ASSERT_TRUE(answer("c-token", digest_of("c-token"), token.output));
  send_rotate("c-file");
  auto file = token_key();
  const std::string untagged = "key 1234 made; key 5678 stays in use (CSR below)\n" + file.csr_pem;
  ASSERT_TRUE(answer("c-file", digest_of("c-file"), untagged));
  const std::string first_pem = registry_key();

  auto r = install("c-1", {"--csr", dir.write("file.txt", untagged)});
  EXPECT_EQ(r.code, 3) << r.err;
  EXPECT_NE(r.err.find("(command c-file, sequence 2) is not of a new key in a PKCS#11 token: a "
                       "key in a file rotates through Renew"),
            std::string::npos)
      << r.err;
  r = install("c-2", {"--from-result", "c-file"});
  EXPECT_EQ(r.code, 3) << r.err;
  EXPECT_NE(r.err.find("rotates through Renew"), std::string::npos) << r.err;
  r = install("c-3", {"--csr", dir.write("token.txt", token.output)});
  EXPECT_EQ(r.code, 3) << r.err;
  EXPECT_NE(r.err.find("rotates through Renew"), std::string::npos) << r.err;
  r = install("c-4", {"--from-result", "c-token"});
  EXPECT_EQ(r.code, 3) << r.err;
  EXPECT_NE(r.err.find("superseded by command c-file"), std::string::npos) << r.err;
  for (const char* id : {"c-1", "c-2", "c-3", "c-4"}) EXPECT_FALSE(queued(id)) << id;
  EXPECT_FALSE(next_key());
  EXPECT_EQ(registry_key(), first_pem);

  // A token rotation again (the newest): certified.
  send_rotate("c-token2");
  auto again = token_key();
  ASSERT_TRUE(answer("c-token2", digest_of("c-token2"), again.output));
  r = install("c-5", {"--from-result", "c-token2"});
  ASSERT_EQ(r.code, 0) << r.err;
  ASSERT_TRUE(next_key());
  EXPECT_EQ(next_key()->public_key_pem, pem_of(again.key));
}

// The terminal's own CSR, for a serial the registry does not hold (it
// cannot be certified for this terminal): refused, naming the serial.
TEST_F(InstallCertificate, ACsrForASerialNeverEnrolledIsRefused_REQ33) {
  send_rotate("c-rot");
  auto key = token_key("SN-NOBODY");
  ASSERT_TRUE(answer("c-rot", digest_of("c-rot"), key.output));
  auto r = install("c-1", {"--from-result", "c-rot"});
  EXPECT_EQ(r.code, 4) << r.err;
  EXPECT_NE(r.err.find("SN-NOBODY"), std::string::npos) << r.err;
  EXPECT_FALSE(queued("c-1"));
  EXPECT_FALSE(next_key());
}

}  // namespace
}  // namespace portier::fleet
