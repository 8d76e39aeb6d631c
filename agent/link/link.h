// The management link (issue 10): how the agent's envelopes reach the fleet
// and the fleet's commands and acknowledgements reach the agent. Two kinds
// behind this one interface, chosen by configuration: MQTT (Eclipse Paho,
// through a broker) and gRPC (a bidirectional stream to the fleet's
// endpoint). Both carry the same bytes: a serialized portier.v1.EnvelopeRun
// (a run of envelopes, each as the outbox stored it) up; a serialized
// portier.v1.SignedCommand or portier.v1.SignedAcknowledgement down. The
// link authenticates the transport (mutual TLS); it never vouches for what
// it carries: the fleet verifies every envelope, the agent every command
// and every acknowledgement (ack_verifier.h).
#pragma once

#include <cstdint>
#include <string>

#include "common/result.h"

namespace portier::link {

// One message for the fleet: a run of envelopes.
struct Outgoing {
  // The outbox sequences of its first and last envelope (the run may skip
  // sequences the outbox dropped); for logs and the gRPC Uplink's id.
  std::uint64_t first = 0, last = 0;
  std::string bytes;  // a serialized portier.v1.EnvelopeRun
};

// Called from the link's own threads; must not block for long and must not
// call stop() from inside.
class LinkHandler {
 public:
  virtual ~LinkHandler() = default;
  // (Re)connected: everything not acknowledged must be sent again.
  virtual void on_connected() = 0;
  virtual void on_disconnected(const std::string& reason) = 0;
  // An acknowledgement as received: unverified bytes of a
  // portier.v1.SignedAcknowledgement (anyone who can publish on the
  // terminal's down/ack topic can send these).
  virtual void on_acknowledgement(std::string bytes) = 0;
  // A command as received: unverified bytes of a portier.v1.SignedCommand.
  virtual void on_command(std::string bytes) = 0;
};

class Link {
 public:
  virtual ~Link() = default;
  // Connects in the background and keeps reconnecting (exponential backoff
  // with jitter) until stop(). An error only for what can never work
  // (unreadable TLS files, a malformed address).
  virtual Result<void> start(LinkHandler& handler) = 0;
  // Disconnects (MQTT: cleanly, so no last will is sent) and joins the
  // link's threads; no handler call after it returns.
  virtual void stop() = 0;
  // Hands one message to the transport. unavailable while disconnected;
  // resource_exhausted when `max_in_flight` messages wait for the broker.
  // The caller keeps the envelopes until a verified acknowledgement names
  // them.
  virtual Result<void> send(const Outgoing& message) = 0;
  virtual bool connected() const = 0;
};

}  // namespace portier::link
