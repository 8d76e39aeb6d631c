// The [management] table: how this terminal reaches its fleet (issue 10).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "agent/management/uplink.h"
#include "common/crypto/keys.h"

namespace portier::management {

struct ManagementConfig {
  bool enabled = true;
  std::string link = "mqtt";  // "mqtt" or "grpc"
  std::string server;         // mqtt: "ssl://host:port"; grpc: "host:port"
  std::string fleet;          // the fleet's name in the MQTT topics
  // Mutual TLS: the fleet's CA, this terminal's certificate and its key
  // (default: the device key). With enrolment, cert_file is where the
  // certificate the fleet issues is installed (default
  // <state_dir>/management/device.crt) and ca_file also holds the anchors it
  // must chain to.
  std::string ca_file, cert_file, tls_key_file;
  // Enrolment (issue 10, item 1): the fleet's Enrolment service (host:port;
  // empty: the certificate is provisioned by hand in cert_file), the TLS
  // name to check when not its host, the one-time secret provisioned with
  // the serial (a file only portierd may read), the serial (default: the
  // firmware's), when to renew (a percentage of the certificate's
  // lifetime) and the longest wait between two failed attempts.
  std::string enrolment_server, enrolment_server_name, enrolment_secret_file;
  std::string serial;
  std::uint32_t renew_at_percent = 67;
  std::uint32_t enrolment_retry_max_s = 300;
  // How long one call to the Enrolment service may take (not in the
  // config file; tests make it short to lose answers on purpose).
  std::uint32_t enrolment_timeout_ms = 10000;
  // The device key (created on first start, 0600) and its algorithm.
  std::string key_file;  // default <state_dir>/management/device.key
  crypto::KeyType key_type = crypto::KeyType::ecdsa_p256;
  // Or the device key in a PKCS#11 token (pkcs11_module set): the module
  // (an absolute path), the token's label, the user PIN's file (0600,
  // portierd's) and the key pair's label (made in the token at the first
  // start). ECDSA P-256 or Ed25519; SM2 stays in key_file. The link's
  // mutual TLS then uses cert_file and tls_key_file (Paho and gRPC take the
  // client key from a file), and an enrolled device certificate is
  // installed in <state_dir>/management/device.crt.
  std::string pkcs11_module, pkcs11_token, pkcs11_pin_file;
  std::string pkcs11_key_label = "portier-device";
  bool pkcs11() const { return !pkcs11_module.empty(); }
  Signing signing = Signing::each;  // default batch for SM2
  bool signing_set = false;
  // Certificates (PEM files) the fleet's command keys must chain to.
  std::vector<std::string> command_trust_anchors;
  std::uint32_t health_interval_s = 300;
  std::uint32_t decisions_interval_s = 60;
  std::uint32_t checkpoint_interval_s = 300;
  std::uint64_t outbox_max_bytes = 64u << 20;
  std::uint32_t outbox_max_age_days = 30;
  std::uint32_t window = 64;  // messages (runs of envelopes) in flight
};

}  // namespace portier::management
