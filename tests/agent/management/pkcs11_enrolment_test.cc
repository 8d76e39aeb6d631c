// portierd's enrolment with the device key in a PKCS#11 token (issue 10,
// item 1; REQ-16: the key generated, used and destroyed inside the token;
// REQ-33: one device, one key, certified only after the fleet checked the
// serial's proof; REQ-36: what the fleet sends is checked before it is
// installed). The management feature with [management] pkcs11_* keys, a
// real SoftHSM2 token, and the fleet's real Enrolment service over gRPC
// with TLS: the key is made in the token at the first start, never leaves
// it, the CSR is signed there, the certificate installed; it is renewed
// before it expires; RotateDeviceKey makes a second key in the token and
// InstallCertificate (the fleet's certificate for it) makes it current and
// only then destroys the old one. The link is the in-process double.
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <p11-kit/pkcs11.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <set>
#include <thread>

#include "agent/audit_log.h"
#include "agent/commands/command_signing.h"
#include "agent/identity/certificate_store.h"
#include "agent/identity/softhsm_token.h"
#include "agent/management/fake_link.h"
#include "agent/management/management_feature.h"
#include "portier/v1/telemetry.pb.h"
#include "support/test_pki.h"
#include "tools/fleet/enrolment/enrolment_server.h"
#include "tools/fleet/enrolment/enrolment_service.h"
#include "tools/fleet/enrolment/fleet_ca.h"
#include "tools/fleet/enrolment/sqlite_enrolment_registry.h"

namespace portier::management {
namespace {

using namespace std::chrono_literals;

constexpr const char* kSerial = "SN-P11-1001";
constexpr const char* kSecret = "one-time-secret-of-SN-P11-1001";
constexpr const char* kLabel = "portier-device";

std::string raw(const crypto::PublicKey& k) {
  auto r = k.raw();
  return r ? std::string(r->begin(), r->end()) : "";
}

// What a program of its own finds in the token: the private key objects
// and, for the one labelled `label`, whether its value can be read.
struct TokenView {
  int private_keys = 0;
  bool found = false;
  CK_RV value_read = CKR_OK;  // C_GetAttributeValue(CKA_VALUE)
  CK_BBOOL sensitive = CK_FALSE, extractable = CK_TRUE, never_extractable = CK_FALSE;
};

TokenView look_into_token(const std::string& label) {
  TokenView v;
  void* h = dlopen(portier::test::kSoftHsmModule, RTLD_NOW | RTLD_LOCAL);
  if (h == nullptr) return v;
  auto get = reinterpret_cast<CK_C_GetFunctionList>(dlsym(h, "C_GetFunctionList"));
  CK_FUNCTION_LIST* f = nullptr;
  if (get == nullptr || get(&f) != CKR_OK) {
    dlclose(h);
    return v;
  }
  // Initialised already, or now for this look only.
  const bool init = f->C_Initialize(nullptr) == CKR_OK;
  CK_SLOT_ID slots[8];
  CK_ULONG n = 8;
  CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
  if (f->C_GetSlotList(CK_TRUE, slots, &n) == CKR_OK && n >= 1 &&
      f->C_OpenSession(slots[0], CKF_SERIAL_SESSION, nullptr, nullptr, &s) == CKR_OK) {
    const CK_RV login = f->C_Login(s, CKU_USER, (unsigned char*)"1234", 4);
    if (login == CKR_OK || login == CKR_USER_ALREADY_LOGGED_IN) {
      CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
      CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof cls}};
      CK_OBJECT_HANDLE keys[16];
      CK_ULONG found = 0;
      if (f->C_FindObjectsInit(s, t, 1) == CKR_OK) {
        f->C_FindObjects(s, keys, 16, &found);
        f->C_FindObjectsFinal(s);
      }
      v.private_keys = static_cast<int>(found);
      for (CK_ULONG i = 0; i < found; ++i) {
        char l[128] = {};
        CK_ATTRIBUTE la{CKA_LABEL, l, sizeof l - 1};
        if (f->C_GetAttributeValue(s, keys[i], &la, 1) != CKR_OK) continue;
        if (std::string(l, la.ulValueLen) != label) continue;
        v.found = true;
        std::uint8_t value[256];
        CK_ATTRIBUTE a{CKA_VALUE, value, sizeof value};
        v.value_read = f->C_GetAttributeValue(s, keys[i], &a, 1);
        CK_ATTRIBUTE flags[] = {
            {CKA_SENSITIVE, &v.sensitive, sizeof v.sensitive},
            {CKA_EXTRACTABLE, &v.extractable, sizeof v.extractable},
            {CKA_NEVER_EXTRACTABLE, &v.never_extractable, sizeof v.never_extractable}};
        f->C_GetAttributeValue(s, keys[i], flags, 3);
      }
    }
    f->C_CloseSession(s);
  }
  if (init) f->C_Finalize(nullptr);
  dlclose(h);
  return v;
}

// The feature's link: a double the test keeps alive after the feature
// dropped it (a rotation restarts the link; what the old one sent stays
// readable).
class BorrowedLink final : public link::Link {
 public:
  explicit BorrowedLink(test::FakeLink& l) : l_(l) {}
  Result<void> start(link::LinkHandler& h) override { return l_.start(h); }
  void stop() override { l_.stop(); }
  Result<void> send(const link::Outgoing& m) override { return l_.send(m); }
  bool connected() const override { return l_.connected(); }

 private:
  test::FakeLink& l_;
};

class Pkcs11EnrolmentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char t[] = "/tmp/portier-p11enrol-XXXXXX";
    dir_ = mkdtemp(t);
    ASSERT_EQ(token_.init(dir_), "");
    auto pki = portier::test::TestPki::create(dir_);
    ASSERT_TRUE(pki) << pki.error().message();
    pki_ = std::make_unique<portier::test::TestPki>(std::move(*pki));
    auto server = pki_->issue({.name = "fleet-server", .usage = crypto::CertUsage::tls_server});
    ASSERT_TRUE(server) << server.error().message();
    server_cert_ = std::make_unique<portier::test::IssuedLeaf>(std::move(*server));
    auto reg = fleet::SqliteEnrolmentRegistry::open(dir_ + "/enrolment.db");
    ASSERT_TRUE(reg) << reg.error().message();
    registry_ = std::move(*reg);
    ASSERT_TRUE(registry_->expect(kSerial, crypto::byte_view(std::string(kSecret))));
    auto log = agent::AuditLog::open(dir_ + "/audit.jsonl");
    ASSERT_TRUE(log) << log.error().message();
    audit_ = std::move(*log);
    acker_ = test::make_acker(*pki_);
    ASSERT_TRUE(acker_);

    config_.server = "ssl://fleet.invalid:8883";
    config_.fleet = "bank";
    config_.ca_file = pki_->ca_path();
    // The link's own TLS identity (the double reads nothing).
    config_.cert_file = config_.tls_key_file = "/dev/null";
    config_.command_trust_anchors = {pki_->ca_path()};
    config_.enrolment_secret_file = dir_ + "/enrolment.secret";
    ASSERT_TRUE(portier::test::write_pki_file(config_.enrolment_secret_file, kSecret, 0600));
    config_.serial = kSerial;
    config_.enrolment_retry_max_s = 1;
    config_.pkcs11_module = portier::test::kSoftHsmModule;
    config_.pkcs11_token = "portier";
    config_.pkcs11_pin_file = token_.pin_file;
    config_.pkcs11_key_label = kLabel;
  }
  void TearDown() override {
    feature_.reset();
    if (server_) server_->stop();
    audit_.reset();
    std::filesystem::remove_all(dir_);
  }

  // The fleet's Enrolment service, its CA issuing for `lifetime`.
  void start_fleet(std::chrono::seconds lifetime = std::chrono::hours(24 * 365)) {
    fleet::FleetCaOptions co;
    co.device_lifetime = lifetime;
    auto ca = fleet::FleetCa::load(pki_->intermediate_path(), dir_ + "/intermediate.key", "", co);
    ASSERT_TRUE(ca) << ca.error().message();
    ca_ = std::make_unique<fleet::FleetCa>(std::move(*ca));
    service_ = std::make_unique<fleet::EnrolmentService>(*ca_, *registry_);
    auto server = fleet::EnrolmentServer::start(
        *service_,
        {"127.0.0.1:0", server_cert_->chain_path, server_cert_->key_path, pki_->ca_path()});
    ASSERT_TRUE(server) << server.error().message();
    server_ = std::move(*server);
    config_.enrolment_server = "127.0.0.1:" + std::to_string(server_->port());
  }

  Result<void> start_feature() {
    feature_ = std::make_unique<ManagementFeature>(
        config_,
        [this](const ManagementConfig&,
               const LinkContext& c) -> Result<std::unique_ptr<link::Link>> {
          // The link presents the TLS files of the config, never the key.
          EXPECT_TRUE(c.device_key_file.empty());
          auto l = std::make_unique<test::FakeLink>();
          l->acker = acker_;
          auto borrowed = std::make_unique<BorrowedLink>(*l);
          std::lock_guard lock(link_mu_);
          links_.push_back(std::move(l));
          return std::unique_ptr<link::Link>(std::move(borrowed));
        });
    agent::FeatureContext ctx;
    ctx.audit = audit_.get();
    ctx.state_dir = dir_;
    return feature_->start(ctx);
  }

  // Waits for a link the feature made after enrolment, and connects it.
  test::FakeLink* wait_link(int made_at_least) {
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (std::chrono::steady_clock::now() < deadline) {
      {
        std::lock_guard lock(link_mu_);
        if (static_cast<int>(links_.size()) >= made_at_least) {
          links_.back()->connect();
          return links_.back().get();
        }
      }
      std::this_thread::sleep_for(20ms);  // polling the feature's identity thread
    }
    return nullptr;
  }

  std::optional<identity::InstalledCertificate> installed() {
    auto c = identity::CertificateStore(dir_ + "/management/device.crt").load();
    return c ? *c : std::nullopt;
  }

  std::string command(const std::string& id, const std::function<void(v1::Command&)>& body) {
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

  std::vector<test::FakeLink*> links() {
    std::lock_guard lock(link_mu_);
    std::vector<test::FakeLink*> out;
    for (auto& l : links_) out.push_back(l.get());
    return out;
  }

  // The result the feature sent for `id` on any of its links, the newest
  // connected (acknowledging what it sent).
  std::optional<v1::CommandResult> result_of(const std::string& id) {
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (std::chrono::steady_clock::now() < deadline) {
      const auto all = links();
      if (!all.empty() && !all.back()->connected()) all.back()->connect();
      for (auto* link : all) {
        for (auto& m : link->sent()) {
          if (acked_.insert(m.id).second) link->ack(m.id);
          if (m.kind != "result") continue;
          v1::Envelope env;
          v1::EnvelopeBody body;
          v1::CommandResult r;
          if (env.ParseFromString(m.bytes) && body.ParseFromString(env.body()) &&
              r.ParseFromString(body.payload()) && r.command_id() == id) {
            return r;
          }
        }
      }
      all.back()->wait_sent(all.back()->sent().size() + 1, 20ms);
    }
    return std::nullopt;
  }

  std::string dir_;
  portier::test::SoftHsmToken token_;
  std::unique_ptr<portier::test::TestPki> pki_;
  std::unique_ptr<portier::test::IssuedLeaf> server_cert_;
  std::unique_ptr<fleet::SqliteEnrolmentRegistry> registry_;
  std::unique_ptr<fleet::FleetCa> ca_;
  std::unique_ptr<fleet::EnrolmentService> service_;
  std::unique_ptr<fleet::EnrolmentServer> server_;
  std::unique_ptr<agent::AuditLog> audit_;
  std::shared_ptr<const link::AckSigner> acker_;
  ManagementConfig config_;
  std::unique_ptr<ManagementFeature> feature_;
  std::mutex link_mu_;
  std::vector<std::unique_ptr<test::FakeLink>> links_;  // every link the feature made
  std::set<std::uint64_t> acked_;
};

TEST_F(Pkcs11EnrolmentTest, TheKeyIsMadeInTheTokenItsCsrSignedThereAndItIsEnrolled_REQ16_REQ33) {
  start_fleet();
  ASSERT_TRUE(start_feature());
  ASSERT_NE(wait_link(1), nullptr) << feature_->enrolment_state();
  EXPECT_EQ(feature_->enrolment_state(), "");
  // No key file: the key is in the token, sensitive and never extractable.
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/management/device.key"));
  const TokenView v = look_into_token(kLabel);
  ASSERT_TRUE(v.found);
  EXPECT_EQ(v.private_keys, 1);
  EXPECT_EQ(v.value_read, CKR_ATTRIBUTE_SENSITIVE);
  EXPECT_EQ(v.sensitive, CK_TRUE);
  EXPECT_EQ(v.extractable, CK_FALSE);
  EXPECT_EQ(v.never_extractable, CK_TRUE);
  // The installed certificate is for the token's key, and the fleet holds
  // that key for the serial.
  auto cert = installed();
  ASSERT_TRUE(cert);
  auto key = identity::Pkcs11Signer::open_existing(token_.options(kLabel));
  ASSERT_TRUE(key) << key.error().message();
  EXPECT_EQ(raw(*cert->cert.public_key()), raw((*key)->public_key()));
  EXPECT_EQ(cert->cert.subject_cn(), feature_->terminal_id());
  auto record = registry_->find(kSerial);
  ASSERT_TRUE(record && *record);
  EXPECT_EQ((*record)->public_key_pem, *(*key)->public_key().to_pem());
  // A restart finds the same key in the token: no second key, no new
  // enrolment needed.
  feature_.reset();
  ASSERT_TRUE(start_feature());
  ASSERT_NE(wait_link(2), nullptr);
  EXPECT_EQ(look_into_token(kLabel).private_keys, 1);
  EXPECT_EQ(raw(*installed()->cert.public_key()), raw((*key)->public_key()));
}

TEST_F(Pkcs11EnrolmentTest, TheTokenKeysCertificateIsRenewedBeforeItExpires_REQ16_REQ33) {
  // 20 s of lifetime (and the CA's five minutes of skew before it);
  // renewed at 95% of that, a few seconds from now.
  start_fleet(20s);
  config_.renew_at_percent = 95;
  ASSERT_TRUE(start_feature());
  ASSERT_NE(wait_link(1), nullptr) << feature_->enrolment_state();
  auto first = installed();
  ASSERT_TRUE(first);
  const auto first_der = *first->cert.der();
  // A new certificate, for the same key in the token, before the first
  // expires; the link starts again with it.
  const auto deadline = std::chrono::steady_clock::now() + 40s;
  std::optional<identity::InstalledCertificate> now;
  while (std::chrono::steady_clock::now() < deadline) {
    now = installed();
    if (now && *now->cert.der() != first_der) break;
    std::this_thread::sleep_for(50ms);  // polling a file the identity thread writes
  }
  ASSERT_TRUE(now);
  ASSERT_NE(*now->cert.der(), first_der) << "not renewed: " << feature_->enrolment_state();
  EXPECT_EQ(raw(*now->cert.public_key()), raw(*first->cert.public_key()));
  EXPECT_GT(now->cert.not_after(), first->cert.not_after());
  EXPECT_LE(now->cert.not_before() - first->cert.not_before(),
            first->cert.not_after() - first->cert.not_before());
  EXPECT_EQ(look_into_token(kLabel).private_keys, 1);
  EXPECT_NE(wait_link(2), nullptr);
}

TEST_F(Pkcs11EnrolmentTest,
       RotationMakesANewKeyInTheTokenAndDestroysTheOldOnlyOnceItsCertificateIsIn_REQ16_REQ33) {
  start_fleet();
  ASSERT_TRUE(start_feature());
  auto* link = wait_link(1);
  ASSERT_NE(link, nullptr) << feature_->enrolment_state();
  const auto old_cert = installed();
  ASSERT_TRUE(old_cert);
  const std::string old_pub = raw(*old_cert->cert.public_key());

  link->deliver(command("c-rotate", [](v1::Command& c) { c.mutable_rotate_device_key(); }));
  auto rotated = result_of("c-rotate");
  ASSERT_TRUE(rotated);
  ASSERT_EQ(rotated->status(), v1::CommandResult::OK) << rotated->message();
  const std::string& out = rotated->output();
  const auto at = out.find("-----BEGIN CERTIFICATE REQUEST-----");
  ASSERT_NE(at, std::string::npos) << out;
  auto csr = crypto::CertificateRequest::from_pem(out.substr(at));
  ASSERT_TRUE(csr) << csr.error().message();
  EXPECT_TRUE(csr->verify_self_signature());
  const std::string new_pub = raw(*csr->public_key());
  EXPECT_NE(new_pub, old_pub);
  // Two keys in the token now; the old one still signs, its certificate
  // stays.
  EXPECT_EQ(look_into_token(kLabel).private_keys, 2);
  EXPECT_TRUE(look_into_token(std::string(kLabel) + ".pending").found);
  EXPECT_EQ(raw(*installed()->cert.public_key()), old_pub);

  // A certificate for another key (signed by the fleet's CA, with the
  // terminal's name and serial) is refused: both keys stay as they were.
  auto stranger = crypto::PrivateKey::generate(crypto::KeyType::ecdsa_p256);
  auto stranger_signer = crypto::KeySigner::from(*stranger);
  auto stranger_csr = crypto::CertificateRequest::create(stranger_signer->key(),
                                                         {feature_->terminal_id(), kSerial, ""});
  ASSERT_TRUE(stranger_csr);
  auto foreign = ca_->issue_device(*stranger_csr, feature_->terminal_id(), kSerial,
                                   std::chrono::system_clock::now());
  ASSERT_TRUE(foreign);
  link->deliver(command("c-foreign", [&](v1::Command& c) {
    auto der = *foreign->der();
    c.mutable_install_certificate()->set_certificate(std::string(der.begin(), der.end()));
    for (const auto& x : ca_->chain_der()) {
      c.mutable_install_certificate()->add_chain(std::string(x.begin(), x.end()));
    }
  }));
  auto refused = result_of("c-foreign");
  ASSERT_TRUE(refused);
  EXPECT_NE(refused->status(), v1::CommandResult::OK);
  EXPECT_EQ(look_into_token(kLabel).private_keys, 2);
  EXPECT_EQ(raw(*installed()->cert.public_key()), old_pub);

  // The fleet certifies the new key (what `portier-fleet send T
  // install-certificate --csr` does) and sends it.
  auto answer = service_->rotate(kSerial, *csr->der(), 0);
  ASSERT_TRUE(answer) << answer.error().message();
  link->deliver(command("c-install", [&](v1::Command& c) {
    c.mutable_install_certificate()->set_certificate(answer->certificate());
    for (const auto& x : answer->chain()) c.mutable_install_certificate()->add_chain(x);
  }));
  auto done = result_of("c-install");
  ASSERT_TRUE(done);
  ASSERT_EQ(done->status(), v1::CommandResult::OK) << done->message();
  EXPECT_NE(done->output().find("rotated"), std::string::npos) << done->output();
  // The new key is current under the label, its certificate installed.
  auto current = identity::Pkcs11Signer::open_existing(token_.options(kLabel));
  ASSERT_TRUE(current) << current.error().message();
  EXPECT_EQ(raw((*current)->public_key()), new_pub);
  EXPECT_EQ(raw(*installed()->cert.public_key()), new_pub);
  EXPECT_FALSE(look_into_token(std::string(kLabel) + ".pending").found);
  // The signing parts start again with the new key: a new birth signed by
  // it (the old key signed the result above and its session's last
  // checkpoint).
  bool birth_by_new_key = false;
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (!birth_by_new_key && std::chrono::steady_clock::now() < deadline) {
    auto* next = links().back();
    if (!next->connected()) next->connect();
    for (auto& m : next->sent()) {
      v1::Envelope env;
      v1::EnvelopeBody body;
      if (!env.ParseFromString(m.bytes) || !body.ParseFromString(env.body())) continue;
      if (body.payload_type() != v1::PAYLOAD_BIRTH) continue;
      v1::Birth b;
      b.ParseFromString(body.payload());
      auto pem = crypto::PublicKey::from_pem(b.public_key_pem());
      birth_by_new_key = birth_by_new_key || (pem && raw(*pem) == new_pub);
    }
    next->wait_sent(next->sent().size() + 1, 20ms);
  }
  ASSERT_TRUE(birth_by_new_key);
  // Then the old key is gone from the token: one key, not extractable.
  TokenView v;
  const auto gone_by = std::chrono::steady_clock::now() + 10s;
  do {
    v = look_into_token(kLabel);
    if (v.private_keys == 1) break;
    std::this_thread::sleep_for(20ms);  // the identity thread destroys it after the restart
  } while (std::chrono::steady_clock::now() < gone_by);
  EXPECT_EQ(v.private_keys, 1);
  EXPECT_TRUE(v.found);
  EXPECT_EQ(v.value_read, CKR_ATTRIBUTE_SENSITIVE);
  EXPECT_EQ(v.extractable, CK_FALSE);
  EXPECT_FALSE(look_into_token(std::string(kLabel) + ".retired").found);
}

TEST_F(Pkcs11EnrolmentTest, APinFileOthersCanReadOrAMissingTokenStopsTheStart_REQ16) {
  start_fleet();
  ASSERT_EQ(::chmod(token_.pin_file.c_str(), 0644), 0);
  auto r = start_feature();
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find(token_.pin_file), std::string::npos) << r.error().message();
  EXPECT_EQ(look_into_token(kLabel).private_keys, 0) << "nothing was made in the token";
  ASSERT_EQ(::chmod(token_.pin_file.c_str(), 0600), 0);

  config_.pkcs11_token = "no-such-token";
  r = start_feature();
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("no initialised token labelled \"no-such-token\""),
            std::string::npos)
      << r.error().message();
  EXPECT_TRUE(links().empty());
}

}  // namespace
}  // namespace portier::management
