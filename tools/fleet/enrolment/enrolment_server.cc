#include "tools/fleet/enrolment/enrolment_server.h"

#include "agent/identity/private_file.h"
#include "common/crypto/bytes.h"
#include "common/file_read.h"

namespace portier::fleet {

Result<std::unique_ptr<EnrolmentServer>> EnrolmentServer::start(grpc::Service& service,
                                                                const EnrolmentServerOptions& o) {
  auto chain = read_small_file(o.cert_chain_file, {1u << 20, true});
  if (!chain) return std::unexpected(chain.error().with_context("enrolment server certificate"));
  auto key = identity::read_private_file(o.key_file, "enrolment server key", 64 * 1024);
  if (!key) return std::unexpected(key.error());
  auto roots = read_small_file(o.client_ca_file, {1u << 20, true});
  if (!roots) return std::unexpected(roots.error().with_context("enrolment client CA"));

  grpc::SslServerCredentialsOptions ssl(GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY);
  ssl.pem_root_certs = *roots;
  ssl.pem_key_cert_pairs.push_back({*key + "\n", *chain});
  crypto::cleanse(*key);
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort(o.address, grpc::SslServerCredentials(ssl), &port);
  builder.RegisterService(&service);
  builder.SetMaxReceiveMessageSize(256 * 1024);
  auto server = builder.BuildAndStart();
  crypto::cleanse(ssl.pem_key_cert_pairs.front().private_key);
  if (!server || port == 0) {
    return fail(Errc::unavailable, o.address, "enrolment server", "cannot listen");
  }
  return std::unique_ptr<EnrolmentServer>(new EnrolmentServer(std::move(server), port));
}

EnrolmentServer::~EnrolmentServer() { stop(); }

void EnrolmentServer::stop() {
  if (server_) {
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
    server_->Wait();
    server_.reset();
  }
}

}  // namespace portier::fleet
