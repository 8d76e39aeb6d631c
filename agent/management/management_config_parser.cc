#include "agent/management/management_config_parser.h"

#include "agent/feature_registry.h"
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
    for (const char* k : {"ca_file", "cert_file"}) {
      if ((std::string_view(k) == "ca_file" ? c.ca_file : c.cert_file).empty()) {
        return std::unexpected(t.error(k, "is required: the link is mutual TLS only"));
      }
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
