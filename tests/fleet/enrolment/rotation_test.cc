// Key rotation end to end (REQ-16: keys generated, used and destroyed;
// REQ-33: one key per device at any time, bound by the fleet; REQ-36: the
// terminal checks the certificate before the new key goes live): the
// terminal makes a pending key and its CSR (RotateDeviceKey), the fleet
// issues a certificate for it, the terminal installs it (InstallCertificate)
// and only then retires and destroys the old key. With file keys and with
// keys in a real SoftHSM2 token.
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <mutex>
#include <thread>

#include "agent/identity/issued_certificate.h"
#include "agent/identity/signer_csr.h"
#include "agent/identity/softhsm_token.h"
#include "common/file_read.h"
#include "enrolment/enrolment_fixture.h"
#include "tools/fleet/enrolment/issued_key_record.h"
#include "tools/fleet/sqlite_fleet_store.h"

namespace portier::test {
namespace {

namespace fs = std::filesystem;

class RotationTest : public EnrolmentFixture {
 protected:
  // The fleet's answer to the CSR of a RotateDeviceKey result.
  v1::EnrollResponse fleet_rotate(const std::string& csr_pem) {
    auto csr = crypto::CertificateRequest::from_pem(csr_pem);
    EXPECT_TRUE(csr);
    auto der = csr->der();
    auto r = service_->rotate("SN-1001", *der, 1);
    EXPECT_TRUE(r) << (r ? "" : r.error().message());
    return r ? *r : v1::EnrollResponse{};
  }
  static crypto::Bytes bytes(const std::string& s) { return crypto::Bytes(s.begin(), s.end()); }
  static std::vector<crypto::Bytes> chain(const v1::EnrollResponse& r) {
    std::vector<crypto::Bytes> out;
    for (const auto& c : r.chain()) out.push_back(bytes(c));
    return out;
  }
  static std::string raw(const crypto::PublicKey& k) {
    auto r = k.raw();
    return r ? std::string(r->begin(), r->end()) : "";
  }
};

TEST_F(RotationTest, AFileKeyIsRotatedAndTheOldOneDestroyed_REQ16_REQ33) {
  auto t = terminal("t1");
  ASSERT_TRUE(client(t).enroll(*t.identity));
  const auto old_signer = t.identity->signer();
  const std::string old_pub = raw(old_signer->public_key());
  std::atomic<int> changed{0};
  t.identity->on_key_changed([&] { ++changed; });

  auto csr_pem = t.identity->begin_rotation();
  ASSERT_TRUE(csr_pem) << csr_pem.error().message();
  auto csr = crypto::CertificateRequest::from_pem(*csr_pem);
  ASSERT_TRUE(csr);
  EXPECT_TRUE(csr->verify_self_signature());
  EXPECT_EQ(csr->subject().common_name, t.terminal_id);
  EXPECT_EQ(csr->subject().serial_number, "SN-1001");
  const std::string new_pub = raw(*csr->public_key());
  EXPECT_NE(new_pub, old_pub);
  // Until the certificate is there, the old key signs on; a repeated
  // command asks for the same pending key.
  EXPECT_EQ(raw(t.identity->signer()->public_key()), old_pub);
  auto again = t.identity->begin_rotation();
  ASSERT_TRUE(again);
  EXPECT_EQ(raw(*crypto::CertificateRequest::from_pem(*again)->public_key()), new_pub);
  EXPECT_TRUE(fs::exists(t.dir + "/device.key.pending"));

  auto answer = fleet_rotate(*csr_pem);
  ASSERT_TRUE(t.identity->install_certificate(bytes(answer.certificate()), chain(answer)));
  EXPECT_EQ(changed.load(), 1);
  EXPECT_EQ(raw(t.identity->signer()->public_key()), new_pub);
  EXPECT_FALSE(fs::exists(t.dir + "/device.key.pending"));
  auto installed = identity::CertificateStore(t.cert_path()).load();
  ASSERT_TRUE(installed && *installed);
  EXPECT_EQ(raw(*(*installed)->cert.public_key()), new_pub);
  // The old key is gone from the disk: the key file holds the new one.
  auto on_disk = identity::load_or_create_key(t.dir + "/device.key", crypto::KeyType::ecdsa_p256);
  ASSERT_TRUE(on_disk);
  EXPECT_EQ(raw(*on_disk->public_key()), new_pub);
  // The fleet binds the serial to the new key: renewal with it works, and
  // the old certificate can no longer be installed.
  auto renewed = client(t).renew(*t.identity);
  EXPECT_TRUE(renewed) << renewed.error().message();
  auto rec = registry_->find("SN-1001");
  ASSERT_TRUE(rec && *rec);
  EXPECT_EQ((*rec)->public_key_pem, *t.identity->signer()->public_key().to_pem());
}

TEST_F(RotationTest, ACertificateForNeitherKeyOrFromAnotherCaLeavesTheKeysAsTheyWere_REQ36) {
  auto t = terminal("t1");
  ASSERT_TRUE(client(t).enroll(*t.identity));
  const auto first_cert = t.identity->certificate()->cert;
  const std::string old_pub = raw(t.identity->signer()->public_key());
  auto csr_pem = t.identity->begin_rotation();
  ASSERT_TRUE(csr_pem);

  // A certificate for a key the terminal does not have.
  auto other = pki_->issue({.name = t.terminal_id, .serial_number = "SN-1001"});
  ASSERT_TRUE(other);
  auto r = t.identity->install_certificate(*other->cert.der(), {*pki_->intermediate().der()});
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("for neither the current device key nor the pending one"),
            std::string::npos)
      << r.error().message();

  // A certificate for the pending key, but from another CA.
  char other_dir[] = "/tmp/portier-rotation-other-XXXXXX";
  ASSERT_NE(mkdtemp(other_dir), nullptr);
  auto other_pki = TestPki::create(other_dir);
  ASSERT_TRUE(other_pki);
  auto csr = crypto::CertificateRequest::from_pem(*csr_pem);
  crypto::IssueOptions o;
  o.subject = {t.terminal_id, "SN-1001", ""};
  o.not_before = std::chrono::system_clock::now() - std::chrono::hours(1);
  o.not_after = std::chrono::system_clock::now() + std::chrono::hours(24);
  auto foreign = crypto::issue_certificate(*csr->public_key(), o, &other_pki->intermediate(),
                                           other_pki->intermediate_key());
  ASSERT_TRUE(foreign);
  auto f = t.identity->install_certificate(*foreign->der(), {*other_pki->intermediate().der()});
  ASSERT_FALSE(f);
  EXPECT_NE(f.error().message().find("untrusted issuer"), std::string::npos) << f.error().message();
  fs::remove_all(other_dir);

  // Nothing changed: the old key signs, its certificate is installed, the
  // pending key waits.
  EXPECT_EQ(raw(t.identity->signer()->public_key()), old_pub);
  auto installed = identity::CertificateStore(t.cert_path()).load();
  ASSERT_TRUE(installed && *installed);
  EXPECT_EQ((*installed)->cert.sha256_fingerprint(), first_cert.sha256_fingerprint());
  EXPECT_TRUE(fs::exists(t.dir + "/device.key.pending"));
}

// A crash after the new certificate was written and before the keys were
// swapped: the next start finishes the rotation.
TEST_F(RotationTest, ARotationInterruptedAfterTheCertificateIsFinishedAtTheNextStart_REQ16) {
  auto t = terminal("t1");
  ASSERT_TRUE(client(t).enroll(*t.identity));
  auto csr_pem = t.identity->begin_rotation();
  ASSERT_TRUE(csr_pem);
  const std::string new_pub = raw(*crypto::CertificateRequest::from_pem(*csr_pem)->public_key());
  auto answer = fleet_rotate(*csr_pem);
  auto checked = identity::check_issued_certificate(
      crypto::byte_view(answer.certificate()), chain(answer),
      {*crypto::CertificateRequest::from_pem(*csr_pem)->public_key(), t.terminal_id, "SN-1001",
       std::vector<crypto::Certificate>{pki_->root()}, std::chrono::system_clock::now()});
  ASSERT_TRUE(checked) << checked.error().message();
  ASSERT_TRUE(identity::CertificateStore(t.cert_path()).install(checked->cert, checked->chain));
  t.identity.reset();  // the "crash"

  auto reopened = identity::DeviceIdentity::open(
      {t.terminal_id, "SN-1001", {pki_->root()}},
      std::make_unique<identity::FileKeyStore>(t.dir + "/device.key", crypto::KeyType::ecdsa_p256),
      identity::CertificateStore(t.cert_path()));
  ASSERT_TRUE(reopened) << reopened.error().message();
  EXPECT_EQ(raw((*reopened)->signer()->public_key()), new_pub);
  EXPECT_FALSE(fs::exists(t.dir + "/device.key.pending"));
}

// A certificate file that is not for the device key (put there by hand,
// or left from another key) is not taken as the terminal's certificate.
TEST_F(RotationTest, AnInstalledCertificateForAnotherKeyIsIgnoredAtStart_REQ36) {
  auto t = terminal("t1");
  auto other = pki_->issue({.name = t.terminal_id, .serial_number = "SN-1001"});
  ASSERT_TRUE(other);
  ASSERT_TRUE(identity::CertificateStore(t.cert_path()).install(other->cert, other->chain));
  t.identity.reset();
  auto reopened = identity::DeviceIdentity::open(
      {t.terminal_id, "SN-1001", {pki_->root()}},
      std::make_unique<identity::FileKeyStore>(t.dir + "/device.key", crypto::KeyType::ecdsa_p256),
      identity::CertificateStore(t.cert_path()));
  ASSERT_TRUE(reopened);
  EXPECT_FALSE((*reopened)->certificate());
  // With no pending key, nothing is promoted.
  EXPECT_FALSE(fs::exists(t.dir + "/device.key.pending"));
  identity::FileKeyStore keys(t.dir + "/device.key", crypto::KeyType::ecdsa_p256);
  auto promoted = keys.promote();
  ASSERT_FALSE(promoted);
  EXPECT_NE(promoted.error().message().find("no pending key"), std::string::npos);
}

TEST_F(RotationTest, ASoftHsmKeyIsRotatedAndTheOldOneDestroyedInTheToken_REQ16_REQ33) {
  SoftHsmToken token;
  const std::string e = token.init(dir_);
  ASSERT_TRUE(e.empty()) << e;
  const auto opts = token.options("portier-device");
  auto t = terminal("t1", "SN-1001", kSecret, std::make_unique<identity::Pkcs11KeyStore>(opts));
  ASSERT_TRUE(t.identity);
  auto enrolled = client(t).enroll(*t.identity);
  ASSERT_TRUE(enrolled) << enrolled.error().message();
  const auto old_signer = t.identity->signer();
  const std::string old_pub = raw(old_signer->public_key());
  // A token's key renews by Enroll (gRPC takes no TLS key from a token);
  // a certificate this fresh is not replaced yet: said plainly.
  auto renew = client(t).renew(*t.identity);
  ASSERT_FALSE(renew);
  EXPECT_NE(renew.error().message().find("not renewed yet"), std::string::npos)
      << renew.error().message();

  auto csr_pem = t.identity->begin_rotation();
  ASSERT_TRUE(csr_pem) << csr_pem.error().message();
  const std::string new_pub = raw(*crypto::CertificateRequest::from_pem(*csr_pem)->public_key());
  auto answer = fleet_rotate(*csr_pem);
  auto installed = t.identity->install_certificate(bytes(answer.certificate()), chain(answer));
  ASSERT_TRUE(installed) << installed.error().message();
  EXPECT_EQ(raw(t.identity->signer()->public_key()), new_pub);
  auto sig = t.identity->signer()->sign(crypto::byte_view("after rotation"));
  ASSERT_TRUE(sig);
  EXPECT_TRUE(crypto::verify(t.identity->signer()->public_key(),
                             crypto::byte_view("after rotation"), *sig));

  // In the token: the label names the new key, no pending key is left, and
  // the old key's objects are gone (its handle signs no more).
  auto current = identity::Pkcs11Signer::open_existing(opts);
  ASSERT_TRUE(current) << current.error().message();
  EXPECT_EQ(raw((*current)->public_key()), new_pub);
  auto pending_opts = opts;
  pending_opts.key_label += ".pending";
  auto pending = identity::Pkcs11Signer::open_existing(pending_opts);
  ASSERT_FALSE(pending);
  EXPECT_EQ(pending.error().code, Errc::not_found);
  EXPECT_FALSE(old_signer->sign(crypto::byte_view("old key")));
}

// The terminal's own rotation (what portierd does on RotateDeviceKey): a
// new key's CSR sent with Renew over the old key's mutual TLS. Accepted
// once, and only after the operator asked for it; the fleet's other stores
// hear of the new key before the terminal gets its certificate; the old
// certificate and key renew nothing afterwards.
TEST_F(RotationTest, RenewWithANewKeyRotatesOnceWhenTheOperatorAskedForIt_REQ16_REQ33) {
  std::vector<fleet::IssuedKey> issued;
  service_->on_issued([&](const fleet::IssuedKey& k) -> Result<void> {
    issued.push_back(k);
    return {};
  });
  auto t = terminal("t1");
  ASSERT_TRUE(client(t).enroll(*t.identity));
  ASSERT_EQ(issued.size(), 1u);
  EXPECT_EQ(issued[0].kind, fleet::IssuedKey::Kind::enrolled);
  const std::string old_pem = *t.identity->signer()->public_key().to_pem();
  const std::string old_chain = *t.identity->certificate()->cert.to_pem() +
                                *t.identity->certificate()->chain.front().to_pem();
  auto old_key = read_small_file(t.dir + "/device.key");
  ASSERT_TRUE(old_key);

  // Not asked for: refused and recorded, the keys stay as they were.
  auto refused = client(t).rotate(*t.identity, 7);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, Errc::permission_denied);
  EXPECT_NE(refused.error().message().find("operator's rotation"), std::string::npos)
      << refused.error().message();
  EXPECT_EQ(*t.identity->signer()->public_key().to_pem(), old_pem);
  EXPECT_EQ(issued.size(), 1u);

  ASSERT_TRUE(registry_->allow_rotation(t.terminal_id));
  auto rotated = client(t).rotate(*t.identity, 7);
  ASSERT_TRUE(rotated) << rotated.error().message();
  const std::string new_pem = *t.identity->signer()->public_key().to_pem();
  EXPECT_NE(new_pem, old_pem);
  EXPECT_FALSE(fs::exists(t.dir + "/device.key.pending"));
  ASSERT_EQ(issued.size(), 2u);
  EXPECT_EQ(issued[1].kind, fleet::IssuedKey::Kind::rotated);
  EXPECT_EQ(issued[1].public_key_pem, new_pem);
  EXPECT_EQ(issued[1].previous_key_pem, old_pem);
  auto rec = registry_->find("SN-1001");
  ASSERT_TRUE(rec && *rec);
  EXPECT_EQ((*rec)->public_key_pem, new_pem);
  EXPECT_FALSE((*rec)->rotation_allowed);

  // Once: a second new key is refused again.
  auto again = client(t).rotate(*t.identity, 7);
  ASSERT_FALSE(again);
  EXPECT_NE(again.error().message().find("operator's rotation"), std::string::npos);
  EXPECT_EQ(*t.identity->signer()->public_key().to_pem(), new_pem);

  // The old certificate and key (a thief's copy) renew nothing now.
  auto ca = read_small_file(pki_->ca_path());
  ASSERT_TRUE(ca);
  grpc::SslCredentialsOptions ssl{*ca, *old_key, old_chain};
  auto stub = v1::Enrolment::NewStub(grpc::CreateChannel(address(), grpc::SslCredentials(ssl)));
  auto old_signer = crypto::KeySigner::from(*crypto::PrivateKey::from_pem(*old_key));
  auto csr = identity::make_csr(*old_signer, {t.terminal_id, "SN-1001", ""});
  ASSERT_TRUE(csr);
  v1::RenewCertificateRequest req;
  auto der = csr->der();
  req.set_csr(der->data(), der->size());
  v1::EnrollResponse resp;
  grpc::ClientContext ctx;
  auto st = stub->Renew(&ctx, req, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_NE(st.error_message().find("not the enrolled key"), std::string::npos)
      << st.error_message();
}

// The fleet's store must hear of a key before the terminal may use it: when
// it cannot, the terminal gets no certificate and the registry keeps the
// old key (the terminal's next attempt can still succeed).
TEST_F(RotationTest, ARotationTheFleetCannotRecordIssuesNothing_REQ33) {
  auto t = terminal("t1");
  ASSERT_TRUE(client(t).enroll(*t.identity));
  const std::string old_pem = *t.identity->signer()->public_key().to_pem();
  service_->on_issued([](const fleet::IssuedKey&) -> Result<void> {
    return fail_msg(Errc::unavailable, "the fleet store is away");
  });
  ASSERT_TRUE(registry_->allow_rotation(t.terminal_id));
  auto r = client(t).rotate(*t.identity, 7);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("the fleet store is away"), std::string::npos)
      << r.error().message();
  EXPECT_EQ(*t.identity->signer()->public_key().to_pem(), old_pem);
  auto rec = registry_->find("SN-1001");
  ASSERT_TRUE(rec && *rec);
  EXPECT_EQ((*rec)->public_key_pem, old_pem);
  EXPECT_TRUE((*rec)->rotation_allowed);
  service_->on_issued(nullptr);
  auto retried = client(t).rotate(*t.identity, 7);
  EXPECT_TRUE(retried) << retried.error().message();
  EXPECT_NE(*t.identity->signer()->public_key().to_pem(), old_pem);
}

// Finding of the attacker review: the store refusing a rotation because
// the chain already passed its cutover is evidence that someone else signs
// with the old key. Undoing it must not leave the operator's allowance
// open: the thief (who holds the old key, also its TLS key) would Renew
// next with a key of its own and a cutover past its envelopes.
TEST_F(RotationTest, ARotationRefusedAsOvertakenClosesTheAllowance_REQ33) {
  auto t = terminal("t1");
  ASSERT_TRUE(client(t).enroll(*t.identity));
  const std::string old_pem = *t.identity->signer()->public_key().to_pem();
  service_->on_issued([](const fleet::IssuedKey& k) -> Result<void> {
    if (k.kind != fleet::IssuedKey::Kind::rotated) return {};
    return fail_msg(Errc::failed_precondition,
                    "the chain already holds envelopes 7..9 of the old key past cutover 7");
  });
  ASSERT_TRUE(registry_->allow_rotation(t.terminal_id));
  auto r = client(t).rotate(*t.identity, 7);
  ASSERT_FALSE(r);
  EXPECT_EQ(*t.identity->signer()->public_key().to_pem(), old_pem);
  auto rec = registry_->find("SN-1001");
  ASSERT_TRUE(rec && *rec);
  EXPECT_EQ((*rec)->public_key_pem, old_pem);
  EXPECT_FALSE((*rec)->rotation_allowed);
  // The thief's Renew with a key of its own and a later cutover: refused.
  service_->on_issued(nullptr);
  auto thief = client(t).rotate(*t.identity, 10);
  ASSERT_FALSE(thief);
  EXPECT_NE(thief.error().message().find("operator's rotation"), std::string::npos)
      << thief.error().message();
  EXPECT_EQ((*registry_->find("SN-1001"))->public_key_pem, old_pem);
  // The operator, having looked, allows it again.
  ASSERT_TRUE(registry_->allow_rotation(t.terminal_id));
  EXPECT_TRUE(client(t).rotate(*t.identity, 10));
}

// A registry whose find() lets no caller through until `parties` callers
// have read (or a deadline passed): every Renew then passes its checks on
// the same record before any of them writes, the window two racing Renews
// (a thief of the old key and the terminal) had before the key change was
// a compare-and-swap.
class BarrierRegistry final : public fleet::EnrolmentRegistry {
 public:
  BarrierRegistry(fleet::EnrolmentRegistry& r, int parties) : r_(r), parties_(parties) {}
  Result<void> expect(const std::string& serial, crypto::ByteView secret) override {
    return r_.expect(serial, secret);
  }
  // Run once, right after the first find(): a change made by someone else
  // between a request's checks and its write.
  std::function<void()> after_find;

  Result<std::optional<fleet::EnrolmentRecord>> find(const std::string& serial) override {
    auto rec = r_.find(serial);
    if (auto hook = std::exchange(after_find, nullptr)) hook();
    std::unique_lock lock(mu_);
    if (++arrived_ >= parties_) cv_.notify_all();
    cv_.wait_for(lock, std::chrono::seconds(10), [&] { return arrived_ >= parties_; });
    return rec;
  }
  Result<void> bind(const std::string& serial, const std::string& terminal_id,
                    const std::string& pem, crypto::ByteView cert) override {
    return r_.bind(serial, terminal_id, pem, cert);
  }
  Result<void> update(const std::string& serial, const std::string& pem,
                      crypto::ByteView cert) override {
    return r_.update(serial, pem, cert);
  }
  Result<void> replace_key(const std::string& serial, const std::string& expected,
                           const std::string& pem, crypto::ByteView cert, KeyChange change,
                           std::int64_t at) override {
    return r_.replace_key(serial, expected, pem, cert, change, at);
  }
  Result<void> settle_rotation(const std::string& serial, const std::string& pem) override {
    return r_.settle_rotation(serial, pem);
  }
  Result<void> allow_rotation(const std::string& terminal_id) override {
    return r_.allow_rotation(terminal_id);
  }
  Result<void> record_refusal(const fleet::EnrolmentRefusal& refusal) override {
    return r_.record_refusal(refusal);
  }
  Result<std::vector<fleet::EnrolmentRefusal>> refusals(const std::string& serial) override {
    return r_.refusals(serial);
  }

 private:
  fleet::EnrolmentRegistry& r_;
  const int parties_;
  std::mutex mu_;
  std::condition_variable cv_;
  int arrived_ = 0;
};

// Two Renews with a new key each, at once, for one terminal: the terminal
// and a thief holding a copy of its old key and certificate. Both pass the
// registry's checks before either writes; exactly one gets a certificate
// and moves the key, the other is refused and recorded.
TEST_F(RotationTest, TwoRotationsAtOnceMoveTheKeyOnceAndTheOtherIsRefused_REQ33) {
  auto t = terminal("t1");
  ASSERT_TRUE(client(t).enroll(*t.identity));
  // The thief: the same files (key, certificate, terminal id).
  const std::string thief_dir = dir_ + "/thief";
  fs::create_directories(thief_dir);
  for (const char* f : {"device.key", "device.crt", "terminal_id", "enrolment.secret"}) {
    fs::copy_file(t.dir + "/" + f, thief_dir + "/" + f);
  }
  auto thief_id =
      identity::DeviceIdentity::open({t.terminal_id, "SN-1001", {pki_->root()}},
                                     std::make_unique<identity::FileKeyStore>(
                                         thief_dir + "/device.key", crypto::KeyType::ecdsa_p256),
                                     identity::CertificateStore(thief_dir + "/device.crt"));
  ASSERT_TRUE(thief_id) << thief_id.error().message();
  Terminal thief{thief_dir, t.terminal_id, thief_dir + "/enrolment.secret", std::move(*thief_id)};
  const std::string old_pem = *t.identity->signer()->public_key().to_pem();

  BarrierRegistry barrier(*registry_, 2);
  fleet::EnrolmentService racing(*ca_, barrier);
  std::vector<fleet::IssuedKey> told;
  std::mutex told_mu;
  racing.on_issued([&](const fleet::IssuedKey& k) -> Result<void> {
    std::lock_guard lock(told_mu);
    told.push_back(k);
    return {};
  });
  start_server(racing);
  ASSERT_TRUE(registry_->allow_rotation(t.terminal_id));
  const auto refusals_before = registry_->refusals("SN-1001")->size();

  Result<void> results[2] = {Result<void>{}, Result<void>{}};
  Terminal* who[2] = {&t, &thief};
  std::vector<std::thread> threads;
  for (int i = 0; i < 2; ++i) {
    threads.emplace_back([&, i] { results[i] = client(*who[i]).rotate(*who[i]->identity, 9); });
  }
  for (auto& th : threads) th.join();

  const int winners = (results[0] ? 1 : 0) + (results[1] ? 1 : 0);
  ASSERT_EQ(winners, 1) << (results[0] ? "" : results[0].error().message()) << " / "
                        << (results[1] ? "" : results[1].error().message());
  const int w = results[0] ? 0 : 1;
  const auto& lost = results[1 - w].error();
  EXPECT_EQ(lost.code, Errc::permission_denied) << lost.message();
  EXPECT_NE(lost.message().find("changed or used its key first"), std::string::npos)
      << lost.message();
  // The loser still has its old key and no certificate for its new one.
  EXPECT_EQ(*who[1 - w]->identity->signer()->public_key().to_pem(), old_pem);
  // The registry holds the winner's new key, the fleet heard of it alone.
  const std::string new_pem = *who[w]->identity->signer()->public_key().to_pem();
  EXPECT_NE(new_pem, old_pem);
  auto rec = registry_->find("SN-1001");
  ASSERT_TRUE(rec && *rec);
  EXPECT_EQ((*rec)->public_key_pem, new_pem);
  EXPECT_FALSE((*rec)->rotation_allowed);
  ASSERT_EQ(told.size(), 1u);
  EXPECT_EQ(told[0].kind, fleet::IssuedKey::Kind::rotated);
  EXPECT_EQ(told[0].public_key_pem, new_pem);
  EXPECT_EQ(told[0].cutover, 9u);
  auto refusals = registry_->refusals("SN-1001");
  ASSERT_TRUE(refusals);
  EXPECT_EQ(refusals->size(), refusals_before + 1);
}

// A rotation must name its cutover (the fleet refuses the old key from
// there on): one without is refused and moves nothing.
// Finding of the attacker review: Enroll's certificate for the same key
// wrote the registry without a compare-and-swap. A thief with the old key
// and the enrolment secret, enrolling while a rotation moved the key, put
// the old key back (and got a fresh certificate for it).
TEST_F(RotationTest, AnEnrolOfTheOldKeyRacingARotationDoesNotPutTheOldKeyBack_REQ33) {
  auto t = terminal("t1");
  ASSERT_TRUE(client(t).enroll(*t.identity));
  const std::string old_pem = *t.identity->signer()->public_key().to_pem();
  auto next = crypto::PrivateKey::generate(crypto::KeyType::ecdsa_p256);
  ASSERT_TRUE(next);
  const std::string new_pem = *next->public_key()->to_pem();
  BarrierRegistry hooked(*registry_, 1);
  // Between the Enroll's checks and its write: the terminal's rotation.
  hooked.after_find = [&] {
    ASSERT_TRUE(registry_->allow_rotation(t.terminal_id));
    ASSERT_TRUE(registry_->replace_key("SN-1001", old_pem, new_pem, crypto::Bytes{1},
                                       fleet::EnrolmentRegistry::KeyChange::rotation, 1));
  };
  fleet::EnrolmentService racing(*ca_, hooked);
  // Past a tenth of the certificate's lifetime: Enroll issues a fresh one.
  racing.set_clock([] { return std::chrono::system_clock::now() + std::chrono::hours(24 * 100); });
  start_server(racing);
  auto r = client(t).enroll(*t.identity);
  EXPECT_FALSE(r);
  auto rec = registry_->find("SN-1001");
  ASSERT_TRUE(rec && *rec);
  EXPECT_EQ((*rec)->public_key_pem, new_pem);
}

TEST_F(RotationTest, ARotationWithoutItsCutoverIsRefused_REQ33) {
  auto t = terminal("t1");
  ASSERT_TRUE(client(t).enroll(*t.identity));
  const std::string old_pem = *t.identity->signer()->public_key().to_pem();
  ASSERT_TRUE(registry_->allow_rotation(t.terminal_id));
  // What an older terminal sends: Renew with a new key's CSR, no cutover.
  auto pending = t.identity->begin_rotation();
  ASSERT_TRUE(pending);
  auto csr = crypto::CertificateRequest::from_pem(*pending);
  ASSERT_TRUE(csr);
  v1::RenewCertificateRequest req;
  auto der = csr->der();
  req.set_csr(der->data(), der->size());
  auto r = service_->renew(*t.identity->certificate()->cert.to_pem(), req);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::invalid_argument);
  EXPECT_NE(r.error().message().find("cutover"), std::string::npos) << r.error().message();
  auto rec = registry_->find("SN-1001");
  ASSERT_TRUE(rec && *rec);
  EXPECT_EQ((*rec)->public_key_pem, old_pem);
  EXPECT_TRUE((*rec)->rotation_allowed);
}

// A rotated terminal whose certificate expired (off for longer than a
// lifetime) enrols again with its new key, before that key signed anything
// the fleet received: the fleet's store knows it as the certified next key
// and takes it (it refused it before: "registered with another key").
// Another key still is not taken.
TEST_F(RotationTest, ARotatedTerminalEnrolsAgainWithItsNewKey_REQ33) {
  auto store = fleet::SqliteFleetStore::open(dir_ + "/fleet.db");
  ASSERT_TRUE(store) << store.error().message();
  service_->on_issued([&](const fleet::IssuedKey& k) { return fleet::record_issued(**store, k); });
  auto t = terminal("t1");
  ASSERT_TRUE(client(t).enroll(*t.identity));
  const std::string old_pem = *t.identity->signer()->public_key().to_pem();
  ASSERT_EQ((*store)->terminal(t.terminal_id)->public_key_pem, old_pem);
  ASSERT_TRUE(registry_->allow_rotation(t.terminal_id));
  ASSERT_TRUE(client(t).rotate(*t.identity, 1));
  const std::string new_pem = *t.identity->signer()->public_key().to_pem();
  auto keys = (*store)->keys(t.terminal_id);
  ASSERT_TRUE(keys);
  ASSERT_EQ(keys->size(), 1u);
  EXPECT_EQ(keys->front().public_key_pem, new_pem);
  EXPECT_EQ(keys->front().cutover, 1u);

  // Its certificate is gone (expired): it enrols again, with the new key.
  fs::remove(t.cert_path());
  auto reopened = identity::DeviceIdentity::open(
      {t.terminal_id, "SN-1001", {pki_->root()}},
      std::make_unique<identity::FileKeyStore>(t.dir + "/device.key", crypto::KeyType::ecdsa_p256),
      identity::CertificateStore(t.cert_path()));
  ASSERT_TRUE(reopened);
  t.identity = std::move(*reopened);
  ASSERT_FALSE(t.identity->certificate());
  auto again = client(t).enroll(*t.identity);
  ASSERT_TRUE(again) << again.error().message();
  EXPECT_EQ(*t.identity->certificate()->cert.public_key()->to_pem(), new_pem);

  // The store still refuses a key it never certified under that id.
  auto other = *crypto::PrivateKey::generate(crypto::KeyType::ecdsa_p256);
  auto refused = fleet::record_issued(**store, {fleet::IssuedKey::Kind::enrolled,
                                                t.terminal_id,
                                                "SN-1001",
                                                *other.public_key()->to_pem(),
                                                {},
                                                0});
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, Errc::already_exists);
}

// The fleet took a rotation but its answer was lost: the terminal asks
// again with the same pending key (it must not sign with the old key past
// the cutover the fleet now holds) and gets the certificate issued then;
// nothing changes twice. The old key asking for a key of its own is still
// refused.
TEST_F(RotationTest, ARotationWhoseAnswerWasLostIsAnsweredAgain_REQ33) {
  std::vector<fleet::IssuedKey> told;
  service_->on_issued([&](const fleet::IssuedKey& k) -> Result<void> {
    told.push_back(k);
    return {};
  });
  auto t = terminal("t1");
  ASSERT_TRUE(client(t).enroll(*t.identity));
  const std::string old_cert_pem = *t.identity->certificate()->cert.to_pem();
  ASSERT_TRUE(registry_->allow_rotation(t.terminal_id));
  auto pending = t.identity->begin_rotation();
  ASSERT_TRUE(pending);
  auto csr = crypto::CertificateRequest::from_pem(*pending);
  ASSERT_TRUE(csr);
  v1::RenewCertificateRequest req;
  auto der = csr->der();
  req.set_csr(der->data(), der->size());
  req.set_cutover_sequence(12);
  auto lost = service_->renew(old_cert_pem, req);  // the answer never reaches the terminal
  ASSERT_TRUE(lost) << lost.error().message();
  ASSERT_EQ(told.size(), 2u);

  auto retried = client(t).rotate(*t.identity, 12);
  ASSERT_TRUE(retried) << retried.error().message();
  EXPECT_EQ(*t.identity->signer()->public_key().to_pem(), *csr->public_key()->to_pem());
  EXPECT_EQ(told.size(), 2u);  // told once
  auto rec = registry_->find("SN-1001");
  ASSERT_TRUE(rec && *rec);
  EXPECT_EQ((*rec)->public_key_pem, *csr->public_key()->to_pem());

  // A thief with the old certificate and a key of its own: refused.
  auto thief_key = *crypto::PrivateKey::generate(crypto::KeyType::ecdsa_p256);
  auto thief_signer = crypto::KeySigner::from(thief_key);
  ASSERT_TRUE(thief_signer);
  auto thief_csr = identity::make_csr(*thief_signer, {t.terminal_id, "SN-1001", ""});
  ASSERT_TRUE(thief_csr);
  v1::RenewCertificateRequest thief_req;
  auto thief_der = thief_csr->der();
  thief_req.set_csr(thief_der->data(), thief_der->size());
  thief_req.set_cutover_sequence(13);
  auto refused = service_->renew(old_cert_pem, thief_req);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, Errc::permission_denied);
  EXPECT_EQ(told.size(), 2u);
}

// Review finding M4: a terminal whose rotation answer was lost keeps its
// uplink held and asks again, possibly after the fleet restarted: what the
// fleet recorded is in its registry file, and the retry with the same
// pending key gets the certificate issued then.
TEST_F(RotationTest, ARotationAskedAgainAfterTheFleetRestartedGetsTheCertificateItRecorded_REQ33) {
  auto t = terminal("t1");
  ASSERT_TRUE(client(t).enroll(*t.identity));
  const std::string old_cert_pem = *t.identity->certificate()->cert.to_pem();
  ASSERT_TRUE(registry_->allow_rotation(t.terminal_id));
  auto pending = t.identity->begin_rotation();
  ASSERT_TRUE(pending);
  auto csr = crypto::CertificateRequest::from_pem(*pending);
  ASSERT_TRUE(csr);
  v1::RenewCertificateRequest req;
  auto der = csr->der();
  req.set_csr(der->data(), der->size());
  req.set_cutover_sequence(9);
  auto lost = service_->renew(old_cert_pem, req);  // the answer never reaches the terminal
  ASSERT_TRUE(lost) << lost.error().message();

  // The fleet restarts: only its files remain.
  server_->stop();
  server_.reset();
  service_.reset();
  registry_.reset();
  auto reg = fleet::SqliteEnrolmentRegistry::open(dir_ + "/enrolment.db");
  ASSERT_TRUE(reg) << reg.error().message();
  registry_ = std::move(*reg);
  service_ = std::make_unique<fleet::EnrolmentService>(*ca_, *registry_);
  start_server(*service_);

  auto again = client(t).rotate_once(*t.identity, 9);
  ASSERT_EQ(again.outcome, identity::RotationOutcome::rotated)
      << (again.error ? again.error->message() : "");
  EXPECT_FALSE(again.error);
  EXPECT_EQ(*t.identity->certificate()->cert.der(),
            crypto::Bytes(lost->certificate().begin(), lost->certificate().end()))
      << "the certificate recorded then";
  EXPECT_EQ(*t.identity->signer()->public_key().to_pem(), *csr->public_key()->to_pem());
}

// The terminal goes on with its old key only when the fleet says it
// recorded nothing (its refusals); whatever may come after the fleet
// recorded the rotation (no answer, the fleet away, an error of its store)
// leaves the outcome unknown: the terminal keeps holding and asks again.
TEST_F(RotationTest, TheFleetsAnswersTellNothingRecordedFromPerhapsRecorded_REQ33) {
  auto t = terminal("t1");
  ASSERT_TRUE(client(t).enroll(*t.identity));
  const std::string old_pem = *t.identity->signer()->public_key().to_pem();
  using identity::RotationOutcome;

  // Not allowed by the operator: refused, nothing recorded.
  auto a = client(t).rotate_once(*t.identity, 5);
  EXPECT_EQ(a.outcome, RotationOutcome::not_recorded) << (a.error ? a.error->message() : "");
  EXPECT_EQ((*registry_->find("SN-1001"))->public_key_pem, old_pem);

  // The fleet's store fails after the registry moved (undone): unknown.
  ASSERT_TRUE(registry_->allow_rotation(t.terminal_id));
  service_->on_issued([](const fleet::IssuedKey&) -> Result<void> {
    return fail_msg(Errc::io, "the fleet store's disk failed");
  });
  a = client(t).rotate_once(*t.identity, 5);
  EXPECT_EQ(a.outcome, RotationOutcome::unknown) << (a.error ? a.error->message() : "");
  service_->on_issued(nullptr);

  // The fleet away: unknown.
  const int port = server_->port();
  server_->stop();
  a = client(t).rotate_once(*t.identity, 5);
  EXPECT_EQ(a.outcome, RotationOutcome::unknown);
  EXPECT_EQ(*t.identity->signer()->public_key().to_pem(), old_pem);
  auto server = fleet::EnrolmentServer::start(
      *service_, {"127.0.0.1:" + std::to_string(port), server_cert_->chain_path,
                  server_cert_->key_path, pki_->ca_path()});
  ASSERT_TRUE(server) << server.error().message();
  server_ = std::move(*server);

  // Back: asked again with the same pending key, rotated.
  a = client(t).rotate_once(*t.identity, 5);
  EXPECT_EQ(a.outcome, RotationOutcome::rotated) << (a.error ? a.error->message() : "");
  EXPECT_NE(*t.identity->signer()->public_key().to_pem(), old_pem);
}

// A registry whose undo of a rotation fails (its disk went away between
// the two writes).
class UndoFailingRegistry final : public fleet::EnrolmentRegistry {
 public:
  explicit UndoFailingRegistry(fleet::EnrolmentRegistry& r) : r_(r) {}
  Result<void> expect(const std::string& s, crypto::ByteView secret) override {
    return r_.expect(s, secret);
  }
  Result<std::optional<fleet::EnrolmentRecord>> find(const std::string& s) override {
    return r_.find(s);
  }
  Result<void> bind(const std::string& s, const std::string& t, const std::string& k,
                    crypto::ByteView c) override {
    return r_.bind(s, t, k, c);
  }
  Result<void> update(const std::string& s, const std::string& k, crypto::ByteView c) override {
    return r_.update(s, k, c);
  }
  Result<void> replace_key(const std::string& s, const std::string& e, const std::string& k,
                           crypto::ByteView c, KeyChange change, std::int64_t at) override {
    if (change == KeyChange::undo || change == KeyChange::undo_closed) {
      return fail_msg(Errc::io, "the registry's disk went away");
    }
    return r_.replace_key(s, e, k, c, change, at);
  }
  Result<void> settle_rotation(const std::string& s, const std::string& k) override {
    return r_.settle_rotation(s, k);
  }
  Result<void> allow_rotation(const std::string& t) override { return r_.allow_rotation(t); }
  Result<void> record_refusal(const fleet::EnrolmentRefusal& r) override {
    return r_.record_refusal(r);
  }
  Result<std::vector<fleet::EnrolmentRefusal>> refusals(const std::string& s) override {
    return r_.refusals(s);
  }

 private:
  fleet::EnrolmentRegistry& r_;
};

// The fleet's store refuses the rotation (overtaken) and the registry
// cannot be put back: the registry holds the new key, so the answer must
// not be a refusal (the terminal would drop its pending key and go on
// with the old one): unavailable, the terminal keeps holding.
TEST_F(RotationTest, ARotationThatCannotBeUndoneIsNoRefusal_REQ33) {
  auto t = terminal("t1");
  ASSERT_TRUE(client(t).enroll(*t.identity));
  const std::string old_cert_pem = *t.identity->certificate()->cert.to_pem();
  UndoFailingRegistry failing(*registry_);
  fleet::EnrolmentService service(*ca_, failing);
  service.on_issued([](const fleet::IssuedKey& k) -> Result<void> {
    if (k.kind != fleet::IssuedKey::Kind::rotated) return {};
    return fail_msg(Errc::failed_precondition, "the chain passed the cutover under the old key");
  });
  ASSERT_TRUE(registry_->allow_rotation(t.terminal_id));
  auto pending = t.identity->begin_rotation();
  ASSERT_TRUE(pending);
  auto csr = crypto::CertificateRequest::from_pem(*pending);
  ASSERT_TRUE(csr);
  v1::RenewCertificateRequest req;
  auto der = csr->der();
  req.set_csr(der->data(), der->size());
  req.set_cutover_sequence(3);
  auto r = service.renew(old_cert_pem, req);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::unavailable) << r.error().message();
  EXPECT_EQ((*registry_->find("SN-1001"))->public_key_pem, *csr->public_key()->to_pem());
}

}  // namespace
}  // namespace portier::test
