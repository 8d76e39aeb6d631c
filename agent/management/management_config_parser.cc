#include "agent/management/management_config_parser.h"

#include "agent/feature_registry.h"
#include "agent/identity/hardware_serial.h"
#include "agent/management/management_feature.h"
#include "common/toml_table.h"

namespace portier::management {
namespace {

bool valid_name(const std::string& s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) {
      return false;
    }
  }
  return true;
}

// HOST:PORT with a port of 1..65535 (HOST may be [v6]).
bool valid_host_port(const std::string& s) {
  const auto colon = s.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == s.size()) return false;
  const std::string port = s.substr(colon + 1);
  if (port.size() > 5) return false;
  for (char ch : port) {
    if (!std::isdigit(static_cast<unsigned char>(ch))) return false;
  }
  const long n = std::stol(port);
  if (n < 1 || n > 65535) return false;
  for (char ch : s.substr(0, colon)) {
    if (std::isspace(static_cast<unsigned char>(ch)) || ch == '/') return false;
  }
  return true;
}

// The pkcs11_* keys: all or none, and what a token can hold.
Result<void> check_pkcs11(TomlTable& t, const ManagementConfig& c) {
  if (!c.pkcs11()) {
    for (const char* k : {"pkcs11_token", "pkcs11_pin_file", "pkcs11_key_label"}) {
      if (t.has(k)) {
        return std::unexpected(t.error(k, "is only used with pkcs11_module, which is not set"));
      }
    }
    return {};
  }
  if (c.pkcs11_module.front() != '/') {
    return std::unexpected(t.error("pkcs11_module",
                                   "must be an absolute path (a module is never searched for), "
                                   "not "
                                   " + c.pkcs11_module + "
                                   ""));
  }
  if (c.pkcs11_token.empty()) {
    return std::unexpected(t.error("pkcs11_token",
                                   "is required with pkcs11_module: the label "
                                   "of the token that holds the device key"));
  }
  if (c.pkcs11_pin_file.empty()) {
    return std::unexpected(t.error("pkcs11_pin_file",
                                   "is required with pkcs11_module: the user PIN's file (0600, "
                                   "portierd's; never the PIN itself in the config)"));
  }
  if (c.pkcs11_key_label.empty() || c.pkcs11_key_label.size() > 64) {
    return std::unexpected(t.error("pkcs11_key_label", "must be 1 to 64 characters"));
  }
  if (c.key_type == crypto::KeyType::sm2) {
    return std::unexpected(
        t.error("key_algorithm",
                "\"sm2\" cannot be used with pkcs11_module: SoftHSM2 (and the tokens "
                "portierd is tested with) have no SM2; SM2 keys stay in key_file"));
  }
  if (!c.key_file.empty()) {
    return std::unexpected(
        t.error("key_file", "cannot be set with pkcs11_module: the device key is in the token"));
  }
  return {};
}

}  // namespace

Result<ManagementConfig> parse_management_config(TomlTable& t) {
  ManagementConfig c;
  PORTIER_TRY(t.boolean("enabled", c.enabled));
  PORTIER_TRY(t.str("link", c.link));
  if (c.link != "mqtt" && c.link != "grpc") {
    return std::unexpected(t.error("link", "must be \"mqtt\" or \"grpc\", not \"" + c.link + "\""));
  }
  PORTIER_TRY(t.str("server", c.server));
  PORTIER_TRY(t.str("fleet", c.fleet));
  PORTIER_TRY(t.str("ca_file", c.ca_file));
  PORTIER_TRY(t.str("cert_file", c.cert_file));
  PORTIER_TRY(t.str("tls_key_file", c.tls_key_file));
  PORTIER_TRY(t.str("key_file", c.key_file));
  PORTIER_TRY(t.str("enrolment_server", c.enrolment_server));
  PORTIER_TRY(t.str("enrolment_server_name", c.enrolment_server_name));
  PORTIER_TRY(t.str("enrolment_secret_file", c.enrolment_secret_file));
  PORTIER_TRY(t.str("serial", c.serial));
  if (!c.serial.empty()) {
    if (auto ok = identity::hardware_serial(c.serial); !ok) {
      return std::unexpected(t.error("serial", ok.error().why));
    }
  }
  PORTIER_TRY(t.integer("renew_at_percent", 10, 95, c.renew_at_percent));
  PORTIER_TRY(t.integer("enrolment_retry_max_s", 1, 86400, c.enrolment_retry_max_s));
  std::string alg = "ecdsa-p256";
  PORTIER_TRY(t.str("key_algorithm", alg));
  if (alg == "ecdsa-p256") {
    c.key_type = crypto::KeyType::ecdsa_p256;
  } else if (alg == "ed25519") {
    c.key_type = crypto::KeyType::ed25519;
  } else if (alg == "sm2") {
    c.key_type = crypto::KeyType::sm2;
  } else {
    return std::unexpected(t.error(
        "key_algorithm", "must be \"ecdsa-p256\", \"ed25519\" or \"sm2\", not \"" + alg + "\""));
  }
  PORTIER_TRY(t.str("pkcs11_module", c.pkcs11_module));
  PORTIER_TRY(t.str("pkcs11_token", c.pkcs11_token));
  PORTIER_TRY(t.str("pkcs11_pin_file", c.pkcs11_pin_file));
  PORTIER_TRY(t.str("pkcs11_key_label", c.pkcs11_key_label));
  PORTIER_TRY(check_pkcs11(t, c));
  c.signing = c.key_type == crypto::KeyType::sm2 ? Signing::batch : Signing::each;
  if (t.has("signing")) {
    std::string s;
    PORTIER_TRY(t.str("signing", s));
    if (s != "each" && s != "batch") {
      return std::unexpected(
          t.error("signing", "must be \"each\" or \"batch\", not \"" + s + "\""));
    }
    c.signing = s == "each" ? Signing::each : Signing::batch;
    c.signing_set = true;
  }
  PORTIER_TRY(t.strings("command_trust_anchors", c.command_trust_anchors));
  PORTIER_TRY(t.integer("health_interval_s", 5, 86400, c.health_interval_s));
  PORTIER_TRY(t.integer("decisions_interval_s", 5, 86400, c.decisions_interval_s));
  PORTIER_TRY(t.integer("checkpoint_interval_s", 5, 86400, c.checkpoint_interval_s));
  std::uint32_t max_mb = 64;
  PORTIER_TRY(t.integer("outbox_max_mb", 1, 65536, max_mb));
  c.outbox_max_bytes = std::uint64_t{max_mb} << 20;
  PORTIER_TRY(t.integer("outbox_max_age_days", 1, 3650, c.outbox_max_age_days));
  PORTIER_TRY(t.integer("window", 1, 1024, c.window));
  PORTIER_TRY(t.no_unknown_keys());
  if (c.enabled) {
    if (c.server.empty()) return std::unexpected(t.error("server", "is required"));
    if (c.link == "mqtt" && !valid_name(c.fleet)) {
      return std::unexpected(
          t.error("fleet", "is required for the MQTT link: 1-64 of A-Z a-z 0-9 - _ ."));
    }
    if (c.ca_file.empty()) {
      return std::unexpected(t.error("ca_file", "is required: the link is mutual TLS only"));
    }
    if (c.cert_file.empty() && c.enrolment_server.empty()) {
      return std::unexpected(t.error(
          "cert_file", "is required unless enrolment_server is set: the link is mutual TLS only"));
    }
    if (!c.enrolment_server.empty()) {
      if (!valid_host_port(c.enrolment_server)) {
        return std::unexpected(t.error("enrolment_server",
                                       "must be HOST:PORT (the fleet's Enrolment service), not \"" +
                                           c.enrolment_server + "\""));
      }
      if (c.enrolment_secret_file.empty()) {
        return std::unexpected(
            t.error("enrolment_secret_file",
                    "is required with enrolment_server: the one-time secret provisioned with "
                    "the terminal's serial"));
      }
      if (!c.tls_key_file.empty() && !c.pkcs11()) {
        return std::unexpected(
            t.error("tls_key_file",
                    "cannot be set with enrolment_server: the enrolled certificate is for the "
                    "device key"));
      }
    } else if (!c.enrolment_secret_file.empty()) {
      return std::unexpected(
          t.error("enrolment_secret_file", "is only used with enrolment_server, which is not set"));
    }
    if (c.pkcs11() && (c.cert_file.empty() || c.tls_key_file.empty())) {
      return std::unexpected(
          t.error(c.cert_file.empty() ? "cert_file" : "tls_key_file",
                  "is required with pkcs11_module: the link's mutual TLS (Paho, gRPC) takes its "
                  "client certificate and key from files, never from a token; the device key in "
                  "the token signs the envelopes, checkpoints and CSRs"));
    }
    if (c.command_trust_anchors.empty()) {
      return std::unexpected(
          t.error("command_trust_anchors",
                  "is required: the certificates the fleet's command keys must chain to"));
    }
  }
  return c;
}

void register_management_feature(agent::FeatureRegistry& registry) {
  registry.add(
      "management",
      [](TomlTable& t) -> Result<std::any> {
        auto c = parse_management_config(t);
        if (!c) return std::unexpected(c.error());
        return std::any(std::move(*c));
      },
      [](const std::any& c) -> std::unique_ptr<agent::Feature> {
        const auto& config = std::any_cast<const ManagementConfig&>(c);
        if (!config.enabled) return nullptr;
        return std::make_unique<ManagementFeature>(config, default_link_factory());
      });
}

}  // namespace portier::management
