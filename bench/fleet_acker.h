// For the management link's benches: the fleet's acknowledgement without
// its store. Subscribes to every terminal's up/run topic and answers each
// run with a SignedAcknowledgement of its sequences on down/ack, as
// portier-fleet does once it has stored them, so the benches measure the
// terminal's side and the broker (the fleet's own receive rate is in
// tools/fleet/README.md). It signs with a command-signing key of its own
// throwaway CA: give the terminal trust_anchor() (its command_trust_anchors).
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "agent/link/ack_signing.h"
#include "common/crypto/digest.h"
#include "common/crypto/x509.h"
#include "common/mqtt/mqtt_client.h"

namespace portier::bench {

class FleetAcker {
 public:
  // Connected and subscribed when it returns (or throws), unless
  // `wait_connected` is false (a broker that is down for now: it connects
  // and subscribes once the broker is up).
  FleetAcker(const std::string& uri, const std::string& fleet, mqtt::TlsFiles tls,
             bool wait_connected = true);
  ~FleetAcker();
  std::uint64_t acked() const { return acked_; }        // envelopes acknowledged
  std::uint64_t messages() const { return messages_; }  // acknowledgements sent
  const crypto::Certificate& trust_anchor() const { return *anchor_; }

 private:
  // Publishes an acknowledgement, or keeps it for the next connection.
  void send(const std::string& topic, std::string bytes);

  std::string fleet_;
  std::optional<crypto::Certificate> anchor_;
  std::optional<link::AckSigner> signer_;
  std::unique_ptr<mqtt::MqttClient> client_;
  std::atomic<std::uint64_t> acked_{0}, messages_{0};
  // The chain digest of the terminal's key, as last seen in its runs.
  std::mutex pending_mu_;
  std::vector<std::pair<std::string, std::string>> pending_;  // topic, bytes
  std::atomic<crypto::DigestAlgo> algo_{crypto::DigestAlgo::sha256};
};

}  // namespace portier::bench
