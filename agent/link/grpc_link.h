// The gRPC kind of the management link (issue 10, item 5): the same
// envelopes and commands as over MQTT, on one mutual-TLS bidirectional
// stream to the fleet's endpoint (proto/portier/v1/fleet.proto,
// Fleet.Connect; the fleet answers at once with the header
// "portier-fleet: v1"). Up: Uplink{id: the first sequence, kind "run", run:
// a serialized EnvelopeRun}; down: Downlink{signed_ack: a serialized
// SignedAcknowledgement, handed to the handler unverified, as over MQTT} or
// Downlink{signed_command}. The fleet names the
// terminal by its client certificate. A clean stop() sends the signed
// Offline notice (kind "offline") before closing; reconnection uses
// exponential backoff with full jitter, as the MQTT link does.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "agent/link/link.h"

namespace portier::link {

struct GrpcLinkOptions {
  std::string target;  // host:port of the fleet's endpoint
  std::string ca_file, cert_file, key_file;
  std::string offline_notice;  // a serialized portier.v1.Offline, sent at a clean stop
  std::chrono::milliseconds backoff_min{500};
  std::chrono::milliseconds backoff_max{60'000};
  std::size_t max_command_bytes = 256 * 1024;
  std::size_t max_ack_bytes = 64 * 1024;
};

class GrpcLink final : public Link {
 public:
  // Reads the TLS files (an error when one cannot be read).
  static Result<std::unique_ptr<GrpcLink>> create(GrpcLinkOptions options);
  ~GrpcLink() override;
  Result<void> start(LinkHandler& handler) override;
  void stop() override;
  Result<void> send(const Outgoing& message) override;
  bool connected() const override;

  struct Impl;

 private:
  explicit GrpcLink(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace portier::link
