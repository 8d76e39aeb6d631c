// The fleet's Enrolment endpoint on its own gRPC server: TLS with the
// fleet's server certificate; client certificates requested and, when one
// is given, verified against the fleet's CA (Enroll is called without one,
// Renew checks it is there). TLS 1.2 is the floor: gRPC 1.51's
// SslServerCredentialsOptions has no version setting, and its core
// (grpc_tls_version has only TLS1_2 and TLS1_3) never offers less; the test
// shows a TLS 1.1 client refused. The fleet's main server can register the
// same EnrolmentService beside Fleet instead.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "common/result.h"
#include "tools/fleet/enrolment/enrolment_service.h"

namespace portier::fleet {

struct EnrolmentServerOptions {
  std::string address = "127.0.0.1:0";  // port 0: a free one, see port()
  std::string cert_chain_file;          // the server's certificate and chain, PEM
  std::string key_file;                 // its key, PEM, 0600
  std::string client_ca_file;           // the anchors client certificates chain to
};

class EnrolmentServer {
 public:
  static Result<std::unique_ptr<EnrolmentServer>> start(grpc::Service& service,
                                                        const EnrolmentServerOptions& options);
  ~EnrolmentServer();
  int port() const { return port_; }
  void stop();

 private:
  EnrolmentServer(std::unique_ptr<grpc::Server> server, int port)
      : server_(std::move(server)), port_(port) {}
  std::unique_ptr<grpc::Server> server_;
  int port_;
};

}  // namespace portier::fleet
