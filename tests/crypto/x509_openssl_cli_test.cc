// The openssl CLI as the peer that reads what the fleet's CA code writes
// (tests/support/test_pki on common/crypto/x509.h): `openssl x509 -text`,
// `openssl verify` and `openssl req -verify` accept our certificates and
// requests, and an s_server/s_client pair completes a mutual TLS handshake
// with them (the file layout Mosquitto and gRPC's SslServerCredentials
// take), and refuses the flawed ones.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "common/crypto/x509.h"
#include "support/test_pki.h"

namespace portier::crypto {
namespace {

using test::Flaw;
using test::IssuedLeaf;
using test::LeafSpec;
using test::TestPki;

struct Outcome {
  int status = -1;  // the exit code, -1 when the command could not run
  std::string out;  // stdout and stderr
};

// `cmd` through the shell, bounded by timeout(1) so no test hangs.
Outcome run(const std::string& cmd) {
  Outcome r;
  FILE* p = ::popen(("timeout 60 " + cmd + " 2>&1").c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  const int st = ::pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

std::string temp_dir() {
  const char* base = std::getenv("TMPDIR");
  std::string t = std::string(base && *base ? base : "/tmp") + "/portier-x509cli-XXXXXX";
  if (::mkdtemp(t.data()) == nullptr) ADD_FAILURE() << "mkdtemp " << t;
  return t;
}

class OpensslCli : public ::testing::TestWithParam<KeyType> {
 protected:
  void SetUp() override {
    if (run("openssl version").status != 0) GTEST_SKIP() << "no openssl CLI";
    dir_ = temp_dir();
    auto pki = TestPki::create(dir_, GetParam());
    ASSERT_TRUE(pki) << pki.error().message();
    pki_.emplace(std::move(*pki));
  }
  void TearDown() override {
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }
  IssuedLeaf leaf(const LeafSpec& spec) {
    auto l = pki_->issue(spec);
    EXPECT_TRUE(l) << l.error().message();
    return *l;
  }
  // `openssl verify` of `cert` for `purpose` against ca.crt, with
  // `untrusted` offered as a peer would send it. SM2: OpenSSL 3.0's CLI sets
  // the id (-vfyopt distid:) on the certificate it verifies only, not on
  // the intermediates, whose SM2 signatures then fail; so an SM2 leaf is
  // checked against the intermediate as anchor (-partial_chain), and the
  // intermediate against the root, in two runs.
  Outcome verify(const std::string& cert, const std::string& untrusted,
                 const std::string& purpose = "any") {
    std::string cmd = "openssl verify -x509_strict -purpose " + purpose;
    if (GetParam() == KeyType::sm2)
      cmd += " -vfyopt distid:1234567812345678 -partial_chain -CAfile " + pki_->intermediate_path();
    else
      cmd += " -CAfile " + pki_->ca_path() + " -untrusted " + untrusted;
    return run(cmd + " " + cert);
  }

  std::string dir_;
  std::optional<TestPki> pki_;
};

TEST_P(OpensslCli, VerifyAcceptsEachUsageAndTheIntermediate) {
  const IssuedLeaf server = leaf({.name = "broker", .usage = CertUsage::tls_server});
  const IssuedLeaf client = leaf({.name = "terminal", .usage = CertUsage::device});
  Outcome r = verify(server.cert_path, server.chain_path, "sslserver");
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find(server.cert_path + ": OK"), std::string::npos) << r.out;
  r = verify(client.cert_path, client.chain_path, "sslclient");
  EXPECT_EQ(r.status, 0) << r.out;
  // The peer agrees on the usages: a device certificate is no TLS server.
  r = verify(client.cert_path, client.chain_path, "sslserver");
  EXPECT_NE(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("unsuitable certificate purpose"), std::string::npos) << r.out;
  // The intermediate against the root.
  std::string cmd = "openssl verify -x509_strict -CAfile " + pki_->ca_path();
  if (GetParam() == KeyType::sm2) cmd += " -vfyopt distid:1234567812345678";
  r = run(cmd + " " + pki_->intermediate_path());
  EXPECT_EQ(r.status, 0) << r.out;
  if (GetParam() == KeyType::sm2) {
    // Without the id OpenSSL 3.0 checks an SM2 signature over another Z:
    // the id is what makes our SM2 certificates verify (x509::wrap).
    r = run("openssl verify -CAfile " + pki_->ca_path() + " " + pki_->intermediate_path());
    EXPECT_NE(r.status, 0) << r.out;
    EXPECT_NE(r.out.find("certificate signature failure"), std::string::npos) << r.out;
  }
}

TEST_P(OpensslCli, VerifyRefusesTheFlawedLeavesForTheSameReasons) {
  struct Case {
    Flaw flaw;
    std::vector<std::string> reasons;  // any of them (the CLI's words)
  };
  const std::vector<Case> cases = {
      {Flaw::expired, {"certificate has expired"}},
      {Flaw::not_yet_valid, {"certificate is not yet valid"}},
      {Flaw::untrusted_issuer,
       {"self-signed certificate in certificate chain", "unable to get local issuer certificate"}},
      {Flaw::self_signed, {"self-signed certificate", "self signed certificate"}},
      {Flaw::wrong_usage, {"unsuitable certificate purpose"}},
  };
  for (const Case& c : cases) {
    const IssuedLeaf l = leaf({.name = "flawed", .usage = CertUsage::tls_server, .flaw = c.flaw});
    const Outcome r = verify(l.cert_path, l.chain_path, "sslserver");
    EXPECT_NE(r.status, 0) << static_cast<int>(c.flaw) << ": " << r.out;
    bool named = false;
    for (const std::string& reason : c.reasons) named |= r.out.find(reason) != std::string::npos;
    EXPECT_TRUE(named) << static_cast<int>(c.flaw) << ": " << r.out;
  }
  // A CA:FALSE intermediate: the peer refuses it before any signature.
  const IssuedLeaf l = leaf({.name = "flawed", .flaw = Flaw::issuer_not_ca});
  std::string cmd = "openssl verify -CAfile " + pki_->ca_path() + " -untrusted " + l.chain_path;
  if (GetParam() == KeyType::sm2) cmd += " -vfyopt distid:1234567812345678";
  const Outcome r = run(cmd + " " + l.cert_path);
  EXPECT_NE(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("invalid CA certificate"), std::string::npos) << r.out;
}

TEST_P(OpensslCli, TextShowsTheExtensionsOfEachUsage) {
  const IssuedLeaf server = leaf({.name = "broker", .usage = CertUsage::tls_server});
  const IssuedLeaf signer = leaf({.name = "signer", .usage = CertUsage::command_signing});
  Outcome r = run("openssl x509 -noout -text -in " + server.cert_path);
  ASSERT_EQ(r.status, 0) << r.out;
  for (const char* want :
       {"X509v3 Basic Constraints: critical", "CA:FALSE", "X509v3 Key Usage: critical",
        "Digital Signature", "TLS Web Server Authentication", "DNS:localhost",
        "IP Address:127.0.0.1", "IP Address:0:0:0:0:0:0:0:1", "X509v3 Subject Key Identifier",
        "X509v3 Authority Key Identifier", "Subject: CN = broker, O = Portier Test"})
    EXPECT_NE(r.out.find(want), std::string::npos) << want << "\n" << r.out;
  r = run("openssl x509 -noout -text -in " + signer.cert_path);
  EXPECT_NE(r.out.find("Code Signing"), std::string::npos) << r.out;
  r = run("openssl x509 -noout -text -in " + pki_->intermediate_path());
  for (const char* want : {"CA:TRUE, pathlen:0", "Certificate Sign, CRL Sign"})
    EXPECT_NE(r.out.find(want), std::string::npos) << want << "\n" << r.out;
  const char* algo = GetParam() == KeyType::ecdsa_p256 ? "ecdsa-with-SHA256"
                     : GetParam() == KeyType::ed25519  ? "ED25519"
                                                       : "SM2-with-SM3";
  EXPECT_NE(r.out.find(std::string("Signature Algorithm: ") + algo), std::string::npos) << r.out;
}

TEST_P(OpensslCli, RequestSelfSignatureVerifies) {
  auto key = PrivateKey::generate(GetParam());
  ASSERT_TRUE(key);
  auto csr = CertificateRequest::create(*key, {"terminal-0042", "HW-0042", "Bank"});
  ASSERT_TRUE(csr) << csr.error().message();
  const std::string path = dir_ + "/terminal.csr";
  ASSERT_TRUE(test::write_pki_file(path, *csr->to_pem(), 0644));
  std::string cmd = "openssl req -noout -verify -subject -in " + path;
  if (GetParam() == KeyType::sm2) cmd += " -vfyopt distid:1234567812345678";
  const Outcome r = run(cmd);
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("verify OK"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("serialNumber = HW-0042"), std::string::npos) << r.out;
}

// A TLS server (s_server, in the role of Mosquitto or the fleet's gRPC
// endpoint) and client (s_client, the terminal) on the test PKI's files:
// chain, key and CA file exactly as a broker config names them. The server
// answers one HTTP request (-www) only after both certificates checked, so
// the answer proves the mutual handshake.
class TlsHandshake : public OpensslCli {
 protected:
  // The client's output; `server_out` gets the server's.
  std::string handshake(const IssuedLeaf& server, const IssuedLeaf& client,
                        std::string* server_out) {
    const std::string server_cmd =
        "timeout 30 openssl s_server -accept 127.0.0.1:0 -naccept 1 -www -cert " +
        server.cert_path + " -key " + server.key_path + " -cert_chain " + server.chain_path +
        " -CAfile " + pki_->ca_path() + " -Verify 3 -verify_return_error 2>&1";
    FILE* srv = ::popen(server_cmd.c_str(), "r");
    if (srv == nullptr) return "cannot start s_server";
    // "ACCEPT 127.0.0.1:<port>" once it listens.
    std::string port;
    char line[512];
    while (port.empty() && std::fgets(line, sizeof line, srv) != nullptr) {
      *server_out += line;
      const std::string l(line);
      if (l.starts_with("ACCEPT ")) port = l.substr(l.rfind(':') + 1, std::string::npos);
    }
    while (!port.empty() && (port.back() == '\n' || port.back() == '\r')) port.pop_back();
    std::string client_out;
    if (!port.empty()) {
      client_out = run("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | timeout 30 openssl s_client -ign_eof "
                       "-connect 127.0.0.1:" +
                       port + " -servername localhost -verify_hostname localhost -CAfile " +
                       pki_->ca_path() + " -verify_return_error -cert " + client.cert_path +
                       " -key " + client.key_path + " -cert_chain " + client.chain_path)
                       .out;
    }
    std::size_t n;
    while ((n = std::fread(line, 1, sizeof line, srv)) > 0) server_out->append(line, n);
    ::pclose(srv);
    return client_out;
  }
};

TEST_P(TlsHandshake, MutualTlsWithTheTestPkiFiles) {
  const IssuedLeaf broker = leaf({.name = "broker", .usage = CertUsage::tls_server});
  const IssuedLeaf terminal = leaf({.name = "terminal", .usage = CertUsage::device});
  std::string server_out;
  const std::string out = handshake(broker, terminal, &server_out);
  EXPECT_NE(out.find("Verify return code: 0 (ok)"), std::string::npos) << out;
  EXPECT_NE(out.find("HTTP/1.0 200 ok"), std::string::npos) << out << "\nserver:\n" << server_out;
}

TEST_P(TlsHandshake, ServerRefusesAClientOfAnotherRoot) {
  const IssuedLeaf broker = leaf({.name = "broker", .usage = CertUsage::tls_server});
  const IssuedLeaf forged =
      leaf({.name = "forged", .usage = CertUsage::device, .flaw = Flaw::untrusted_issuer});
  std::string server_out;
  const std::string out = handshake(broker, forged, &server_out);
  EXPECT_EQ(out.find("HTTP/1.0 200 ok"), std::string::npos) << out;
  EXPECT_NE(server_out.find("verify error"), std::string::npos) << server_out;
}

TEST_P(TlsHandshake, ClientRefusesAnExpiredServer) {
  const IssuedLeaf broker =
      leaf({.name = "broker", .usage = CertUsage::tls_server, .flaw = Flaw::expired});
  const IssuedLeaf terminal = leaf({.name = "terminal", .usage = CertUsage::device});
  std::string server_out;
  const std::string out = handshake(broker, terminal, &server_out);
  EXPECT_EQ(out.find("HTTP/1.0 200 ok"), std::string::npos) << out;
  EXPECT_NE(out.find("certificate has expired"), std::string::npos) << out;
}

// TLS 1.3 has P-256 and Ed25519; SM2 is not in OpenSSL 3.0's TLS.
INSTANTIATE_TEST_SUITE_P(Keys, TlsHandshake,
                         ::testing::Values(KeyType::ecdsa_p256, KeyType::ed25519),
                         [](const auto& info) {
                           std::string n(name(info.param));
                           std::erase(n, '-');
                           return n;
                         });

INSTANTIATE_TEST_SUITE_P(Keys, OpensslCli,
                         ::testing::Values(KeyType::ecdsa_p256, KeyType::ed25519, KeyType::sm2),
                         [](const auto& info) {
                           std::string n(name(info.param));
                           std::erase(n, '-');
                           return n;
                         });

}  // namespace
}  // namespace portier::crypto
