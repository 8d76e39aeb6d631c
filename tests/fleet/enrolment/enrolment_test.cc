// Enrolment end to end, the terminal's client against the fleet's real gRPC
// Enrolment service over TLS on a free port (REQ-33: one device, one key,
// activation only after an online authentication bound to the serial;
// REQ-36: the terminal verifies what the fleet answers). Each refusal says
// why, is recorded by the fleet, and leaves nothing installed.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <thread>

#include "agent/identity/enrolment_proof.h"
#include "agent/identity/issued_certificate.h"
#include "agent/identity/signer_csr.h"
#include "common/file_read.h"
#include "enrolment/enrolment_fixture.h"
#include "portier/v1/fleet.grpc.pb.h"

namespace portier::test {
namespace {

namespace fs = std::filesystem;

class EnrolmentTest : public EnrolmentFixture {
 protected:
  // A raw client of the fleet's service (server-authenticated TLS, or with
  // the client certificate and key given).
  std::unique_ptr<v1::Enrolment::Stub> stub(const std::string& chain_pem = {},
                                            const std::string& key_pem = {}) {
    auto ca = read_small_file(pki_->ca_path());
    EXPECT_TRUE(ca);
    grpc::SslCredentialsOptions ssl{ca ? *ca : "", key_pem, chain_pem};
    return v1::Enrolment::NewStub(grpc::CreateChannel(address(), grpc::SslCredentials(ssl)));
  }

  // A well-formed request of `t` (proof over the CSR with `secret`).
  v1::EnrollRequest request(const Terminal& t, const crypto::CertificateRequest& csr,
                            const std::string& secret = kSecret,
                            const std::string& serial = "SN-1001") {
    auto der = csr.der();
    EXPECT_TRUE(der);
    v1::EnrollRequest r;
    r.set_terminal_id(t.terminal_id);
    r.set_serial(serial);
    r.set_csr(der->data(), der->size());
    auto proof = identity::enrolment_proof(crypto::byte_view(secret), t.terminal_id, serial, *der);
    EXPECT_TRUE(proof);
    r.set_proof(proof->data(), proof->size());
    return r;
  }

  grpc::Status call(const v1::EnrollRequest& r, v1::EnrollResponse* out = nullptr) {
    v1::EnrollResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    auto st = stub()->Enroll(&ctx, r, &resp);
    if (out) *out = resp;
    return st;
  }

  std::vector<std::string> refusal_reasons(const std::string& serial = "SN-1001") {
    std::vector<std::string> out;
    auto r = registry_->refusals(serial);
    EXPECT_TRUE(r);
    if (r) {
      for (auto& x : *r) out.push_back(x.reason);
    }
    return out;
  }

  static bool contains(const std::vector<std::string>& v, const std::string& s) {
    for (auto& x : v) {
      if (x.find(s) != std::string::npos) return true;
    }
    return false;
  }
};

TEST_F(EnrolmentTest, EnrolmentInstallsACertificateThatVerifies_REQ33) {
  auto t = terminal("t1");
  ASSERT_FALSE(t.identity->certificate());
  auto ok = client(t).enroll(*t.identity);
  ASSERT_TRUE(ok) << ok.error().message();
  auto installed = t.identity->certificate();
  ASSERT_TRUE(installed);
  EXPECT_EQ(installed->cert.subject_cn(), t.terminal_id);
  EXPECT_EQ(installed->cert.subject_serial(), "SN-1001");
  const std::vector<crypto::Certificate> anchors = {pki_->root()};
  EXPECT_TRUE(crypto::verify_chain(installed->cert, installed->chain, anchors,
                                   std::chrono::system_clock::now(), crypto::CertUsage::device));
  auto pub = installed->cert.public_key();
  ASSERT_TRUE(pub);
  EXPECT_TRUE(identity::same_key(*pub, t.identity->signer()->public_key()));
  struct stat st {};
  ASSERT_EQ(::stat(t.cert_path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0644u);
  // The file read back is what was installed (a new start finds it).
  auto again = identity::CertificateStore(t.cert_path()).load();
  ASSERT_TRUE(again && *again);
  EXPECT_EQ((*again)->cert.sha256_fingerprint(), installed->cert.sha256_fingerprint());
  EXPECT_EQ((*again)->chain.size(), 1u);  // the fleet CA (the PKI's intermediate)

  // The same device asking again (it lost the answer) gets the same
  // certificate: nothing new is bound.
  ASSERT_TRUE(client(t).enroll(*t.identity));
  EXPECT_EQ(t.identity->certificate()->cert.sha256_fingerprint(),
            installed->cert.sha256_fingerprint());
  EXPECT_TRUE(refusal_reasons().empty());
}

TEST_F(EnrolmentTest, EveryKeyTypeEnrols_REQ33) {
  for (auto type : {crypto::KeyType::ed25519, crypto::KeyType::sm2}) {
    SCOPED_TRACE(std::string(crypto::name(type)));
    const std::string serial = "SN-" + std::string(crypto::name(type));
    ASSERT_TRUE(registry_->expect(serial, crypto::byte_view(kSecret)));
    const std::string name(crypto::name(type));
    auto t = terminal(name, serial, kSecret,
                      std::make_unique<identity::FileKeyStore>(dir_ + "/" + name + ".key", type));
    auto ok = client(t).enroll(*t.identity);
    ASSERT_TRUE(ok) << ok.error().message();
    auto installed = t.identity->certificate();
    ASSERT_TRUE(installed);
    EXPECT_EQ(installed->cert.public_key()->type(), type);
    EXPECT_EQ(installed->cert.subject_serial(), serial);
  }
}

TEST_F(EnrolmentTest, AWrongProofIsRefusedAndNothingInstalled_REQ33) {
  auto t = terminal("t1", "SN-1001", "another-secret-of-16-bytes-or-more");
  auto r = client(t).enroll(*t.identity);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::permission_denied);
  EXPECT_NE(r.error().message().find(
                "the proof does not match serial \"SN-1001\"'s enrolment secret: refused"),
            std::string::npos)
      << r.error().message();
  EXPECT_FALSE(t.identity->certificate());
  EXPECT_FALSE(fs::exists(t.cert_path()));
  EXPECT_TRUE(contains(refusal_reasons(), "the proof does not match"));
  // The serial is still free for the real device.
  auto rec = registry_->find("SN-1001");
  ASSERT_TRUE(rec && *rec);
  EXPECT_TRUE((*rec)->public_key_pem.empty());
}

TEST_F(EnrolmentTest, AnUnknownSerialIsRefused_REQ33) {
  auto t = terminal("t1", "SN-9999");
  auto r = client(t).enroll(*t.identity);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::permission_denied);
  EXPECT_NE(r.error().message().find("serial \"SN-9999\" is not expected by this fleet"),
            std::string::npos)
      << r.error().message();
  EXPECT_FALSE(fs::exists(t.cert_path()));
  EXPECT_TRUE(contains(refusal_reasons("SN-9999"), "is not expected"));
}

// One device, one key: a second key for an enrolled serial (a clone with
// the secret, or the same terminal after its key was replaced) is refused
// and recorded; the first key stays the one.
TEST_F(EnrolmentTest, ASerialEnrolledWithAnotherKeyIsRefusedAndRecorded_REQ33) {
  auto first = terminal("first");
  ASSERT_TRUE(client(first).enroll(*first.identity));
  auto bound = registry_->find("SN-1001");
  ASSERT_TRUE(bound && *bound);

  auto clone = terminal("clone");
  auto r = client(clone).enroll(*clone.identity);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::permission_denied);
  EXPECT_NE(r.error().message().find("serial \"SN-1001\" is already enrolled with another key"),
            std::string::npos)
      << r.error().message();
  EXPECT_NE(r.error().message().find("one device, one key"), std::string::npos);
  EXPECT_FALSE(fs::exists(clone.cert_path()));

  // The same terminal id with a new key (its key file replaced).
  fs::remove(first.dir + "/device.key");
  fs::remove(first.cert_path());
  auto reopened =
      identity::DeviceIdentity::open({first.terminal_id, "SN-1001", {pki_->root()}},
                                     std::make_unique<identity::FileKeyStore>(
                                         first.dir + "/device.key", crypto::KeyType::ecdsa_p256),
                                     identity::CertificateStore(first.cert_path()));
  ASSERT_TRUE(reopened);
  auto r2 = client(first).enroll(**reopened);
  ASSERT_FALSE(r2);
  EXPECT_NE(r2.error().message().find("already enrolled with another key"), std::string::npos);

  auto after = registry_->find("SN-1001");
  ASSERT_TRUE(after && *after);
  EXPECT_EQ((*after)->public_key_pem, (*bound)->public_key_pem);
  EXPECT_EQ((*after)->terminal_id, first.terminal_id);
  auto reasons = refusal_reasons();
  EXPECT_EQ(reasons.size(), 2u);
  EXPECT_TRUE(contains(reasons, "(terminal \"" + first.terminal_id + "\")"));
}

// Clones racing: several terminals with the same serial and secret but
// their own keys enrol at once; exactly one key is bound.
TEST_F(EnrolmentTest, ClonesEnrollingAtOnceBindExactlyOneKey_REQ33) {
  std::vector<Terminal> clones;
  for (int i = 0; i < 4; ++i) clones.push_back(terminal("clone" + std::to_string(i)));
  std::vector<int> ok(clones.size(), 0);
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < clones.size(); ++i) {
    threads.emplace_back([&, i] { ok[i] = client(clones[i]).enroll(*clones[i].identity) ? 1 : 0; });
  }
  for (auto& th : threads) th.join();
  int winners = 0;
  std::size_t winner = 0;
  for (std::size_t i = 0; i < ok.size(); ++i) {
    if (ok[i]) {
      ++winners;
      winner = i;
    }
  }
  ASSERT_EQ(winners, 1);
  auto rec = registry_->find("SN-1001");
  ASSERT_TRUE(rec && *rec);
  EXPECT_EQ((*rec)->public_key_pem, *clones[winner].identity->signer()->public_key().to_pem());
  EXPECT_EQ((*rec)->terminal_id, clones[winner].terminal_id);
  for (std::size_t i = 0; i < clones.size(); ++i) {
    EXPECT_EQ(fs::exists(clones[i].cert_path()), i == winner);
  }
  EXPECT_EQ(refusal_reasons().size(), clones.size() - 1);
}

TEST_F(EnrolmentTest, ACsrForAnotherTerminalIsRefused_REQ33) {
  auto t = terminal("t1");
  auto csr = identity::make_csr(*t.identity->signer(),
                                {"T-00000000000000000000000000000000", "SN-1001", ""});
  ASSERT_TRUE(csr);
  auto st = call(request(t, *csr));
  EXPECT_EQ(st.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_NE(st.error_message().find("the CSR's subject (CN \"T-00000000000000000000000000000000\""),
            std::string::npos)
      << st.error_message();
  // The same with another serial in the CSR.
  auto csr2 = identity::make_csr(*t.identity->signer(), {t.terminal_id, "SN-2002", ""});
  ASSERT_TRUE(csr2);
  auto st2 = call(request(t, *csr2));
  EXPECT_EQ(st2.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_NE(st2.error_message().find("serialNumber \"SN-2002\""), std::string::npos);
  EXPECT_EQ(refusal_reasons().size(), 2u);
  auto rec = registry_->find("SN-1001");
  ASSERT_TRUE(rec && *rec);
  EXPECT_TRUE((*rec)->public_key_pem.empty());
}

TEST_F(EnrolmentTest, ACsrNotSignedByItsKeyIsRefused_REQ33) {
  auto t = terminal("t1");
  auto csr = t.identity->current_csr();
  ASSERT_TRUE(csr);
  auto der = csr->der();
  ASSERT_TRUE(der);
  // Another key's public key would need a new encoding; flipping a byte
  // inside the signature keeps the DER valid and breaks the self-signature.
  (*der)[der->size() - 5] ^= 0x01;
  auto tampered = crypto::CertificateRequest::from_der(*der);
  ASSERT_TRUE(tampered) << tampered.error().message();
  auto st = call(request(t, *tampered));  // the proof is right for these bytes
  EXPECT_EQ(st.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_NE(st.error_message().find("the CSR is not signed by the key it carries"),
            std::string::npos)
      << st.error_message();
  // A terminal id with control characters (a forged log line) is refused
  // before it reaches a log or the registry.
  v1::EnrollRequest forged = request(t, *csr);
  forged.set_terminal_id("T-1\nportierd info: enrolled");
  auto st3 = call(forged);
  EXPECT_EQ(st3.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st3.error_message().find("printable ASCII"), std::string::npos);
  auto refusals = registry_->refusals("SN-1001");
  ASSERT_TRUE(refusals);
  ASSERT_FALSE(refusals->empty());
  EXPECT_EQ(refusals->back().terminal_id, "T-1?portierd info: enrolled");
  // Garbage is a clear error too.
  v1::EnrollRequest junk = request(t, *csr);
  junk.set_csr("not a CSR");
  auto st2 = call(junk);
  EXPECT_EQ(st2.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st2.error_message().find("the CSR does not parse"), std::string::npos);
}

// A fleet endpoint that answers whatever it was told to: what a hostile or
// broken backend (or someone in its place with a trusted TLS certificate)
// could send.
class HostileEnrolment final : public v1::Enrolment::Service {
 public:
  v1::EnrollResponse answer;
  grpc::Status Enroll(grpc::ServerContext*, const v1::EnrollRequest*,
                      v1::EnrollResponse* r) override {
    *r = answer;
    return grpc::Status::OK;
  }
};

TEST_F(EnrolmentTest, TheTerminalRefusesAnAnswerForAnotherKeySerialOrCa_REQ36) {
  auto t = terminal("t1");
  const auto now = std::chrono::system_clock::now();
  auto own = t.identity->signer()->public_key();
  auto issue = [&](const crypto::PublicKey& key, const std::string& cn, const std::string& serial,
                   const crypto::Certificate& issuer, const crypto::PrivateKey& issuer_key,
                   crypto::CertUsage usage = crypto::CertUsage::device) {
    crypto::IssueOptions o;
    o.subject = {cn, serial, ""};
    o.usage = usage;
    o.not_before = now - std::chrono::hours(1);
    o.not_after = now + std::chrono::hours(24);
    auto c = crypto::issue_certificate(key, o, &issuer, issuer_key);
    EXPECT_TRUE(c);
    return *c->der();
  };
  auto other_key = crypto::PrivateKey::generate(crypto::KeyType::ecdsa_p256);
  ASSERT_TRUE(other_key);
  char other_dir[] = "/tmp/portier-enrol-other-XXXXXX";
  ASSERT_NE(mkdtemp(other_dir), nullptr);
  auto other_pki = TestPki::create(other_dir);
  ASSERT_TRUE(other_pki);
  const auto& ca = pki_->intermediate();
  const auto& ca_key = pki_->intermediate_key();
  auto ca_der = ca.der();
  ASSERT_TRUE(ca_der);

  struct Case {
    std::string name;
    crypto::Bytes cert;
    std::string reason;
  };
  std::vector<Case> cases = {
      {"another key", issue(*other_key->public_key(), t.terminal_id, "SN-1001", ca, ca_key),
       "it is for another key than this terminal's device key"},
      {"another serial", issue(own, t.terminal_id, "SN-2002", ca, ca_key),
       "its subject serialNumber \"SN-2002\" is not this terminal's serial"},
      {"another terminal", issue(own, "T-someone-else", "SN-1001", ca, ca_key),
       "its subject CN \"T-someone-else\" is not this terminal"},
      {"another CA",
       issue(own, t.terminal_id, "SN-1001", other_pki->intermediate(),
             other_pki->intermediate_key()),
       "untrusted issuer"},
      {"another usage",
       issue(own, t.terminal_id, "SN-1001", ca, ca_key, crypto::CertUsage::tls_server), "refused"},
  };
  HostileEnrolment hostile;
  start_server(hostile);
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    hostile.answer.Clear();
    hostile.answer.set_certificate(c.cert.data(), c.cert.size());
    hostile.answer.add_chain(ca_der->data(), ca_der->size());
    if (c.name == "another CA") {
      auto od = other_pki->intermediate().der();
      hostile.answer.set_chain(0, od->data(), od->size());
    }
    auto r = client(t).enroll(*t.identity);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Errc::permission_denied) << r.error().message();
    EXPECT_NE(r.error().message().find(c.reason), std::string::npos) << r.error().message();
    EXPECT_NE(r.error().message().find("Enroll answer from"), std::string::npos);
    EXPECT_FALSE(t.identity->certificate());
    EXPECT_FALSE(fs::exists(t.cert_path()));
  }
  hostile.answer.Clear();
  hostile.answer.set_certificate("junk");
  auto junk = client(t).enroll(*t.identity);
  ASSERT_FALSE(junk);
  EXPECT_FALSE(fs::exists(t.cert_path()));
  fs::remove_all(other_dir);
}

TEST_F(EnrolmentTest, TheTerminalTrustsOnlyTheConfiguredFleetCaForTls_REQ36) {
  // A server whose TLS certificate another CA issued: the terminal does not
  // send its request at all.
  char other_dir[] = "/tmp/portier-enrol-other-XXXXXX";
  ASSERT_NE(mkdtemp(other_dir), nullptr);
  auto other = TestPki::create(other_dir);
  ASSERT_TRUE(other);
  auto cert = other->issue({.name = "impostor", .usage = crypto::CertUsage::tls_server});
  ASSERT_TRUE(cert);
  server_->stop();
  auto server = fleet::EnrolmentServer::start(
      *service_, {"127.0.0.1:0", cert->chain_path, cert->key_path, pki_->ca_path()});
  ASSERT_TRUE(server);
  server_ = std::move(*server);
  auto t = terminal("t1");
  auto r = client(t).enroll(*t.identity);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::unavailable) << r.error().message();
  auto rec = registry_->find("SN-1001");
  ASSERT_TRUE(rec && *rec);
  EXPECT_TRUE((*rec)->public_key_pem.empty());  // the request never arrived
  fs::remove_all(other_dir);
}

TEST_F(EnrolmentTest, RenewalWithTheCurrentCertificate_REQ33) {
  auto t = terminal("t1");
  ASSERT_TRUE(client(t).enroll(*t.identity));
  const auto first = t.identity->certificate()->cert;
  // The fleet's clock has moved on: a later certificate for the same key.
  service_->set_clock([] { return std::chrono::system_clock::now() + std::chrono::minutes(2); });
  auto r = client(t).renew(*t.identity);
  ASSERT_TRUE(r) << r.error().message();
  const auto renewed = t.identity->certificate()->cert;
  EXPECT_NE(renewed.serial_hex(), first.serial_hex());
  EXPECT_GT(renewed.not_after(), first.not_after());
  auto pub = renewed.public_key();
  ASSERT_TRUE(pub);
  EXPECT_TRUE(identity::same_key(*pub, t.identity->signer()->public_key()));
  auto rec = registry_->find("SN-1001");
  ASSERT_TRUE(rec && *rec);
  auto der = renewed.der();
  EXPECT_EQ((*rec)->certificate, *der);
  EXPECT_GT(identity::renewal_due_at(renewed), std::chrono::system_clock::now());
}

TEST_F(EnrolmentTest, RenewalHappensWhenTwoThirdsOfTheLifetimeHavePassed) {
  auto short_ca = fleet::FleetCa::load(pki_->intermediate_path(), dir_ + "/intermediate.key", {},
                                       {std::chrono::hours(3)});
  ASSERT_TRUE(short_ca);
  fleet::EnrolmentService service(*short_ca, *registry_);
  start_server(service);
  auto t = terminal("t1");
  ASSERT_TRUE(client(t).enroll(*t.identity));
  const auto first = t.identity->certificate()->cert;
  const auto now = std::chrono::system_clock::now();
  auto not_yet = client(t).renew_if_due(*t.identity, now);
  ASSERT_TRUE(not_yet) << not_yet.error().message();
  EXPECT_FALSE(*not_yet);
  EXPECT_EQ(t.identity->certificate()->cert.serial_hex(), first.serial_hex());
  auto due = client(t).renew_if_due(*t.identity, identity::renewal_due_at(first));
  ASSERT_TRUE(due) << due.error().message();
  EXPECT_TRUE(*due);
  EXPECT_NE(t.identity->certificate()->cert.serial_hex(), first.serial_hex());
  server_->stop();
  server_.reset();
}

TEST_F(EnrolmentTest, RenewalWithoutAClientCertificateIsRefused_REQ33) {
  auto t = terminal("t1");
  ASSERT_TRUE(client(t).enroll(*t.identity));
  auto csr = t.identity->current_csr();
  ASSERT_TRUE(csr);
  v1::RenewCertificateRequest req;
  auto der = csr->der();
  req.set_csr(der->data(), der->size());
  v1::EnrollResponse resp;
  {
    grpc::ClientContext ctx;
    auto st = stub()->Renew(&ctx, req, &resp);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::PERMISSION_DENIED);
    EXPECT_NE(st.error_message().find("Renew needs the terminal's device certificate"),
              std::string::npos)
        << st.error_message();
  }
  // A device certificate of the same CA, for this terminal and serial, but
  // another key (not the enrolled one): refused too.
  auto impostor = pki_->issue(
      {.name = "impostor", .usage = crypto::CertUsage::device, .serial_number = "SN-1001"});
  ASSERT_TRUE(impostor);
  auto chain_pem = read_small_file(impostor->chain_path);
  auto key_pem = read_small_file(impostor->key_path);
  ASSERT_TRUE(chain_pem && key_pem);
  {
    grpc::ClientContext ctx;
    auto st = stub(*chain_pem, *key_pem)->Renew(&ctx, req, &resp);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::PERMISSION_DENIED);
    EXPECT_NE(st.error_message().find("is not the enrolled key of terminal \"impostor\""),
              std::string::npos)
        << st.error_message();
  }
  // A device certificate the fleet's CA did not issue (the root above it
  // did, which the TLS layer accepts) is refused before that.
  auto tls_client = pki_->issue({.name = t.terminal_id,
                                 .usage = crypto::CertUsage::device,
                                 .serial_number = "SN-1001",
                                 .by_root = true});
  ASSERT_TRUE(tls_client);
  {
    auto c = read_small_file(tls_client->chain_path);
    auto k = read_small_file(tls_client->key_path);
    grpc::ClientContext ctx;
    auto st = stub(*c, *k)->Renew(&ctx, req, &resp);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::PERMISSION_DENIED);
    EXPECT_NE(st.error_message().find("not a device certificate of this fleet"), std::string::npos)
        << st.error_message();
  }
}

// A terminal off for longer than its certificate's lifetime can renew
// nothing over TLS: it enrols its same key again and gets a new
// certificate (the one held has expired); another key still cannot.
TEST_F(EnrolmentTest, AnExpiredCertificateIsIssuedAgainForTheSameKeyOnly_REQ33) {
  const auto now = std::chrono::system_clock::now();
  service_->set_clock([now] { return now - std::chrono::hours(24 * 370); });
  auto t = terminal("t1");
  auto stale = client(t).enroll(*t.identity);
  ASSERT_FALSE(stale);  // the terminal refuses a certificate that is not valid now
  EXPECT_NE(stale.error().message().find("certificate from the fleet"), std::string::npos)
      << stale.error().message();
  auto record = registry_->find("SN-1001");
  ASSERT_TRUE(record && *record);
  const auto expired = (*record)->certificate;
  ASSERT_FALSE(expired.empty());

  service_->set_clock([] { return std::chrono::system_clock::now(); });
  auto again = client(t).enroll(*t.identity);
  ASSERT_TRUE(again) << again.error().message();
  record = registry_->find("SN-1001");
  EXPECT_NE((*record)->certificate, expired);
  EXPECT_GT(t.identity->certificate()->cert.not_after(), now);

  auto clone = terminal("t2");
  auto refused = client(clone).enroll(*clone.identity);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message().find("one device, one key"), std::string::npos);
}

// A key thief's Renew with a key of its own: refused unless the operator
// asked for a rotation (rotation_test.cc has the asked-for one).
TEST_F(EnrolmentTest, RenewalForAnotherKeyIsRefused_REQ33) {
  auto t = terminal("t1");
  ASSERT_TRUE(client(t).enroll(*t.identity));
  auto other = crypto::PrivateKey::generate(crypto::KeyType::ecdsa_p256);
  auto signer = crypto::KeySigner::from(*other);
  auto csr = identity::make_csr(*signer, {t.terminal_id, "SN-1001", ""});
  ASSERT_TRUE(csr);
  auto installed = t.identity->certificate();
  auto leaf = installed->cert.to_pem();
  auto inter = installed->chain.front().to_pem();
  auto key = read_small_file(t.dir + "/device.key");
  ASSERT_TRUE(key);
  v1::RenewCertificateRequest req;
  auto der = csr->der();
  req.set_csr(der->data(), der->size());
  v1::EnrollResponse resp;
  grpc::ClientContext ctx;
  auto st = stub(*leaf + *inter, *key)->Renew(&ctx, req, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_NE(st.error_message().find("needs the operator's rotation"), std::string::npos)
      << st.error_message();
  auto refused = registry_->refusals("SN-1001");
  ASSERT_TRUE(refused);
  ASSERT_FALSE(refused->empty());
  EXPECT_NE(refused->back().reason.find("operator's rotation"), std::string::npos);
  auto record = registry_->find("SN-1001");
  ASSERT_TRUE(record && *record);
  EXPECT_EQ((*record)->public_key_pem, *installed->cert.public_key()->to_pem());
}

// The server speaks TLS 1.2 and 1.3 only: gRPC 1.51 offers no setting for
// the floor, and the openssl CLI shows what it is.
TEST_F(EnrolmentTest, ATls11ClientIsRefused) {
  const std::string base = "timeout 20 openssl s_client -connect " + address() + " -CAfile " +
                           pki_->ca_path() +
                           " -alpn h2 -cipher DEFAULT@SECLEVEL=0 </dev/null >/dev/null 2>&1";
  EXPECT_NE(std::system((base + " -tls1_1").c_str()), 0);
  EXPECT_NE(std::system((base + " -tls1").c_str()), 0);
  EXPECT_EQ(std::system((base + " -tls1_2").c_str()), 0);
}

}  // namespace
}  // namespace portier::test
