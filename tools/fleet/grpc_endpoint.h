// The fleet's gRPC endpoint (issue 10, item 5; proto/portier/v1/fleet.proto):
// terminals hold one mutual-TLS stream each (Fleet.Connect); the terminal
// is the CN of its client certificate, which must chain to the fleet's CA.
// Every Uplink (kind "run": an EnvelopeRun, stored in one transaction) goes
// to the Receiver with that terminal id and what it got stored is
// acknowledged with a SignedAcknowledgement (Downlink.signed_ack, the same
// as over MQTT's down/ack); signed commands go down the
// terminal's stream while it is connected. At most one stream per terminal:
// a new one replaces the old.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "agent/link/ack_signing.h"
#include "tools/fleet/receiver.h"

namespace grpc {
class Server;
}

namespace portier::fleet {

struct GrpcEndpointOptions {
  std::string address;  // host:port (port 0: any free one)
  std::string ca_file, cert_file, key_file;
  std::shared_ptr<const link::AckSigner> acks;  // signs the acknowledgements (required)
};

class GrpcEndpoint {
 public:
  static Result<std::unique_ptr<GrpcEndpoint>> start(GrpcEndpointOptions options,
                                                     Receiver& receiver,
                                                     std::function<void(const std::string&)> log);
  ~GrpcEndpoint();
  void stop();
  int port() const { return port_; }
  bool connected(const std::string& terminal_id) const;
  // unavailable while the terminal has no stream.
  Result<void> send_command(const std::string& terminal_id, const std::string& signed_command);

  class Service;
  struct Peer;

 private:
  GrpcEndpoint() = default;
  std::unique_ptr<Service> service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

}  // namespace portier::fleet
