// The [management] table's enrolment keys (issue 10, item 1): what a valid
// table gives, and a clear error naming the key for each bad value.
#include <gtest/gtest.h>

#include "agent/management/management_config_parser.h"
#include "common/toml_table.h"

namespace portier::management {
namespace {

const std::string kBase =
    "server = \"ssl://fleet.example:8883\"\n"
    "fleet = \"bank\"\n"
    "ca_file = \"/etc/portier/fleet-ca.pem\"\n"
    "command_trust_anchors = [\"/etc/portier/commands-ca.pem\"]\n";

Result<ManagementConfig> parse(const std::string& text) {
  auto doc = TomlValue::parse(text, "portierd.toml", "syntax");
  if (!doc) return std::unexpected(doc.error());
  TomlTable t(*doc, "management");
  return parse_management_config(t);
}

std::string error_of(const std::string& text) {
  auto c = parse(text);
  EXPECT_FALSE(c) << "accepted:\n" << text;
  return c ? std::string() : c.error().message();
}

TEST(ManagementConfig, EnrolmentKeysAreReadAndCertFileIsThenOptional_REQ33) {
  auto c = parse(kBase +
                 "enrolment_server = \"fleet.example:7443\"\n"
                 "enrolment_server_name = \"enrol.fleet.example\"\n"
                 "enrolment_secret_file = \"/var/lib/portier/enrolment.secret\"\n"
                 "serial = \"SN-1001\"\n"
                 "renew_at_percent = 50\n"
                 "enrolment_retry_max_s = 60\n");
  ASSERT_TRUE(c) << c.error().message();
  EXPECT_EQ(c->enrolment_server, "fleet.example:7443");
  EXPECT_EQ(c->enrolment_server_name, "enrol.fleet.example");
  EXPECT_EQ(c->enrolment_secret_file, "/var/lib/portier/enrolment.secret");
  EXPECT_EQ(c->serial, "SN-1001");
  EXPECT_EQ(c->renew_at_percent, 50u);
  EXPECT_EQ(c->enrolment_retry_max_s, 60u);
  EXPECT_TRUE(c->cert_file.empty());
}

TEST(ManagementConfig, WithoutEnrolmentTheCertificateMustBeGiven) {
  const auto e = error_of(kBase);
  EXPECT_NE(e.find("management.cert_file"), std::string::npos) << e;
  EXPECT_NE(e.find("unless enrolment_server is set"), std::string::npos) << e;
  auto c = parse(kBase + "cert_file = \"/etc/portier/device.pem\"\n");
  ASSERT_TRUE(c) << c.error().message();
  EXPECT_EQ(c->renew_at_percent, 67u);  // two thirds of the lifetime by default
}

TEST(ManagementConfig, BadEnrolmentValuesAreClearErrors) {
  const std::string enrol =
      kBase + "enrolment_secret_file = \"/var/lib/portier/enrolment.secret\"\n";
  auto e = error_of(enrol + "enrolment_server = \"fleet.example\"\n");
  EXPECT_NE(e.find("management.enrolment_server"), std::string::npos) << e;
  EXPECT_NE(e.find("HOST:PORT"), std::string::npos) << e;
  EXPECT_NE(e.find("\"fleet.example\""), std::string::npos) << e;
  e = error_of(enrol + "enrolment_server = \"fleet.example:99999\"\n");
  EXPECT_NE(e.find("HOST:PORT"), std::string::npos) << e;
  e = error_of(enrol + "enrolment_server = \"fleet.example:\"\n");
  EXPECT_NE(e.find("HOST:PORT"), std::string::npos) << e;

  e = error_of(kBase + "enrolment_server = \"fleet.example:7443\"\n");
  EXPECT_NE(e.find("management.enrolment_secret_file"), std::string::npos) << e;
  EXPECT_NE(e.find("is required"), std::string::npos) << e;

  e = error_of(kBase + "cert_file = \"/x\"\nenrolment_secret_file = \"/s\"\n");
  EXPECT_NE(e.find("only used with enrolment_server"), std::string::npos) << e;

  e = error_of(enrol + "enrolment_server = \"f:1\"\nrenew_at_percent = 100\n");
  EXPECT_NE(e.find("management.renew_at_percent"), std::string::npos) << e;
  e = error_of(enrol + "enrolment_server = \"f:1\"\nrenew_at_percent = 5\n");
  EXPECT_NE(e.find("management.renew_at_percent"), std::string::npos) << e;
  e = error_of(enrol + "enrolment_server = \"f:1\"\nenrolment_retry_max_s = 0\n");
  EXPECT_NE(e.find("management.enrolment_retry_max_s"), std::string::npos) << e;

  e = error_of(enrol + "enrolment_server = \"f:1\"\ntls_key_file = \"/k\"\n");
  EXPECT_NE(e.find("management.tls_key_file"), std::string::npos) << e;
}

TEST(ManagementConfig, ASerialThatIsAFirmwarePlaceholderOrUnprintableIsRefused) {
  const std::string enrol = kBase +
                            "enrolment_server = \"f:1\"\n"
                            "enrolment_secret_file = \"/s\"\n";
  auto e = error_of(enrol + "serial = \"To Be Filled By O.E.M.\"\n");
  EXPECT_NE(e.find("management.serial"), std::string::npos) << e;
  EXPECT_NE(e.find("placeholder"), std::string::npos) << e;
  e = error_of(enrol + "serial = \"SN_1001\\u0007\"\n");
  EXPECT_NE(e.find("management.serial"), std::string::npos) << e;
  EXPECT_NE(e.find("character"), std::string::npos) << e;
}

const std::string kPkcs11 =
    "pkcs11_module = \"/usr/lib/softhsm/libsofthsm2.so\"\n"
    "pkcs11_token = \"portier\"\n"
    "pkcs11_pin_file = \"/var/lib/portier/token.pin\"\n";
const std::string kTls =
    "cert_file = \"/etc/portier/tls.crt\"\ntls_key_file = \"/etc/portier/tls.key\"\n";
const std::string kEnrol =
    "enrolment_server = \"fleet.example:7443\"\n"
    "enrolment_secret_file = \"/var/lib/portier/enrolment.secret\"\n";

TEST(ManagementConfig, Pkcs11KeysAreReadWithEnrolmentAndTheLinksOwnTlsFiles_REQ16) {
  auto c = parse(kBase + kPkcs11 + kTls + kEnrol + "pkcs11_key_label = \"dev-1\"\n" +
                 "key_algorithm = \"ed25519\"\n");
  ASSERT_TRUE(c) << c.error().message();
  EXPECT_TRUE(c->pkcs11());
  EXPECT_EQ(c->pkcs11_module, "/usr/lib/softhsm/libsofthsm2.so");
  EXPECT_EQ(c->pkcs11_token, "portier");
  EXPECT_EQ(c->pkcs11_pin_file, "/var/lib/portier/token.pin");
  EXPECT_EQ(c->pkcs11_key_label, "dev-1");
  EXPECT_EQ(c->key_type, crypto::KeyType::ed25519);
  EXPECT_EQ(c->tls_key_file, "/etc/portier/tls.key");
  // The label has a default; without pkcs11_module the key is a file.
  c = parse(kBase + kPkcs11 + kTls);
  ASSERT_TRUE(c) << c.error().message();
  EXPECT_EQ(c->pkcs11_key_label, "portier-device");
  c = parse(kBase + kTls);
  ASSERT_TRUE(c) << c.error().message();
  EXPECT_FALSE(c->pkcs11());
}

TEST(ManagementConfig, Pkcs11MistakesAreRefusedByName_REQ16) {
  // SM2: no token portierd is tested with has it.
  auto e = error_of(kBase + kPkcs11 + kTls + "key_algorithm = \"sm2\"\n");
  EXPECT_NE(e.find("management.key_algorithm"), std::string::npos) << e;
  EXPECT_NE(e.find("no SM2"), std::string::npos) << e;
  EXPECT_NE(e.find("key_file"), std::string::npos) << e;
  // A key file and a token at once.
  e = error_of(kBase + kPkcs11 + kTls + "key_file = \"/var/lib/portier/device.key\"\n");
  EXPECT_NE(e.find("management.key_file"), std::string::npos) << e;
  EXPECT_NE(e.find("in the token"), std::string::npos) << e;
  // What the token needs.
  e = error_of(kBase + kTls + "pkcs11_module = \"libsofthsm2.so\"\npkcs11_token = \"t\"\n" +
               "pkcs11_pin_file = \"/p\"\n");
  EXPECT_NE(e.find("management.pkcs11_module"), std::string::npos) << e;
  EXPECT_NE(e.find("absolute path"), std::string::npos) << e;
  e = error_of(kBase + kTls + "pkcs11_module = \"/m.so\"\npkcs11_pin_file = \"/p\"\n");
  EXPECT_NE(e.find("management.pkcs11_token"), std::string::npos) << e;
  e = error_of(kBase + kTls + "pkcs11_module = \"/m.so\"\npkcs11_token = \"t\"\n");
  EXPECT_NE(e.find("management.pkcs11_pin_file"), std::string::npos) << e;
  EXPECT_NE(e.find("never the PIN itself"), std::string::npos) << e;
  e = error_of(kBase + kTls + kPkcs11 + "pkcs11_key_label = \"\"\n");
  EXPECT_NE(e.find("management.pkcs11_key_label"), std::string::npos) << e;
  // A token's key cannot be the link's TLS key: its own files are needed,
  // with or without enrolment.
  e = error_of(kBase + kPkcs11 + kEnrol);
  EXPECT_NE(e.find("management.cert_file"), std::string::npos) << e;
  EXPECT_NE(e.find("never from a token"), std::string::npos) << e;
  e = error_of(kBase + kPkcs11 + "cert_file = \"/c\"\n");
  EXPECT_NE(e.find("management.tls_key_file"), std::string::npos) << e;
  // The token's keys without the module.
  e = error_of(kBase + kTls + "pkcs11_token = \"portier\"\n");
  EXPECT_NE(e.find("management.pkcs11_token"), std::string::npos) << e;
  EXPECT_NE(e.find("only used with pkcs11_module"), std::string::npos) << e;
}

}  // namespace
}  // namespace portier::management
