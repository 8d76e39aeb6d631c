// A fleet's Enrolment service on a free 127.0.0.1 port with TLS from a
// throwaway PKI (its CA for device certificates is the PKI's intermediate,
// the root is the terminals' trust anchor), and terminals with their own
// state directories, file keys or SoftHSM2 keys.
#pragma once

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "agent/identity/device_identity.h"
#include "agent/identity/device_key.h"
#include "agent/identity/enrolment_client.h"
#include "agent/identity/key_store.h"
#include "support/test_pki.h"
#include "tools/fleet/enrolment/enrolment_server.h"
#include "tools/fleet/enrolment/enrolment_service.h"
#include "tools/fleet/enrolment/fleet_ca.h"
#include "tools/fleet/enrolment/sqlite_enrolment_registry.h"

namespace portier::test {

inline const std::string kSecret = "s3cret-for-SN-1001-0123456789";

struct Terminal {
  std::string dir;
  std::string terminal_id;
  std::string secret_file;
  std::unique_ptr<identity::DeviceIdentity> identity;

  std::string cert_path() const { return dir + "/device.crt"; }
};

class EnrolmentFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    char t[] = "/tmp/portier-enrol-XXXXXX";
    dir_ = mkdtemp(t);
    auto pki = TestPki::create(dir_);
    ASSERT_TRUE(pki) << pki.error().message();
    pki_ = std::make_unique<TestPki>(std::move(*pki));
    auto server_cert =
        pki_->issue({.name = "fleet-server", .usage = crypto::CertUsage::tls_server});
    ASSERT_TRUE(server_cert) << server_cert.error().message();
    server_cert_ = std::make_unique<IssuedLeaf>(std::move(*server_cert));
    auto ca = fleet::FleetCa::load(pki_->intermediate_path(), dir_ + "/intermediate.key");
    ASSERT_TRUE(ca) << ca.error().message();
    ca_ = std::make_unique<fleet::FleetCa>(std::move(*ca));
    auto reg = fleet::SqliteEnrolmentRegistry::open(dir_ + "/enrolment.db");
    ASSERT_TRUE(reg) << reg.error().message();
    registry_ = std::move(*reg);
    ASSERT_TRUE(registry_->expect("SN-1001", crypto::byte_view(kSecret)));
    service_ = std::make_unique<fleet::EnrolmentService>(*ca_, *registry_);
    start_server(*service_);
  }
  void TearDown() override {
    if (server_) server_->stop();
    std::filesystem::remove_all(dir_);
  }

  void start_server(grpc::Service& service) {
    if (server_) server_->stop();
    auto server = fleet::EnrolmentServer::start(service, {"127.0.0.1:0", server_cert_->chain_path,
                                                          server_cert_->key_path, pki_->ca_path()});
    ASSERT_TRUE(server) << server.error().message();
    server_ = std::move(*server);
  }

  std::string address() const { return "127.0.0.1:" + std::to_string(server_->port()); }

  identity::EnrolmentClient client(const Terminal& t) const {
    return identity::EnrolmentClient(
        {address(), pki_->ca_path(), "", t.secret_file, std::chrono::seconds(20)});
  }

  // A terminal with its own state directory; a file key unless `keys`.
  Terminal terminal(const std::string& name, const std::string& serial = "SN-1001",
                    const std::string& secret = kSecret,
                    std::unique_ptr<identity::KeyStore> keys = nullptr) {
    Terminal t;
    t.dir = dir_ + "/" + name;
    std::filesystem::create_directories(t.dir);
    auto id = identity::load_or_create_terminal_id(t.dir + "/terminal_id");
    EXPECT_TRUE(id);
    t.terminal_id = id ? *id : "";
    t.secret_file = t.dir + "/enrolment.secret";
    EXPECT_TRUE(write_pki_file(t.secret_file, secret + "\n", 0600));
    if (!keys) {
      keys = std::make_unique<identity::FileKeyStore>(t.dir + "/device.key",
                                                      crypto::KeyType::ecdsa_p256);
    }
    auto opened =
        identity::DeviceIdentity::open({t.terminal_id, serial, {pki_->root()}}, std::move(keys),
                                       identity::CertificateStore(t.cert_path()));
    EXPECT_TRUE(opened) << (opened ? "" : opened.error().message());
    if (opened) t.identity = std::move(*opened);
    return t;
  }

  // The terminal's Renew for a pending key it makes now (begin_rotation),
  // with `cutover`, as the fleet receives it.
  v1::RenewCertificateRequest rotation_request(identity::DeviceIdentity& id,
                                               std::uint64_t cutover) {
    v1::RenewCertificateRequest req;
    auto pending = id.begin_rotation();
    EXPECT_TRUE(pending);
    auto csr = crypto::CertificateRequest::from_pem(pending ? *pending : "");
    EXPECT_TRUE(csr);
    if (!csr) return req;
    auto der = csr->der();
    req.set_csr(der->data(), der->size());
    req.set_cutover_sequence(cutover);
    return req;
  }

  std::string dir_;
  std::unique_ptr<TestPki> pki_;
  std::unique_ptr<IssuedLeaf> server_cert_;
  std::unique_ptr<fleet::FleetCa> ca_;
  std::unique_ptr<fleet::SqliteEnrolmentRegistry> registry_;
  std::unique_ptr<fleet::EnrolmentService> service_;
  std::unique_ptr<fleet::EnrolmentServer> server_;
};

}  // namespace portier::test
