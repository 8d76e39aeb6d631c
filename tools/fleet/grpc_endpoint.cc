#include "tools/fleet/grpc_endpoint.h"

#include <grpcpp/grpcpp.h>

#include "common/file_read.h"
#include "portier/v1/fleet.grpc.pb.h"
#include "tools/fleet/fleet_ack.h"

namespace portier::fleet {

struct GrpcEndpoint::Peer {
  std::mutex write_mu;
  grpc::ServerReaderWriter<v1::Downlink, v1::Uplink>* stream = nullptr;
};

class GrpcEndpoint::Service final : public v1::Fleet::Service {
 public:
  Service(Receiver& receiver, std::shared_ptr<const link::AckSigner> acks,
          std::function<void(const std::string&)> log)
      : receiver_(receiver), acks_(std::move(acks)), log_(std::move(log)) {}

  grpc::Status Connect(grpc::ServerContext* ctx,
                       grpc::ServerReaderWriter<v1::Downlink, v1::Uplink>* stream) override {
    auto auth = ctx->auth_context();
    auto cn = auth ? auth->FindPropertyValues("x509_common_name") : std::vector<grpc::string_ref>{};
    if (!auth || !auth->IsPeerAuthenticated() || cn.size() != 1) {
      return {grpc::StatusCode::UNAUTHENTICATED, "a terminal certificate is required"};
    }
    const std::string terminal(cn[0].data(), cn[0].size());
    ctx->AddInitialMetadata("portier-fleet", "v1");
    stream->SendInitialMetadata();
    auto peer = std::make_shared<Peer>();
    peer->stream = stream;
    {
      std::lock_guard lock(mu_);
      peers_[terminal] = peer;
    }
    log_("grpc: " + terminal + " connected");
    v1::Uplink up;
    while (stream->Read(&up)) {
      const bool is_run = up.kind() == "run";
      auto in = receiver_.receive_message(terminal, up.kind(), is_run ? up.run() : up.envelope(),
                                          std::chrono::system_clock::now());
      if (!in.refused.empty()) {
        log_("grpc: " + terminal + " " + up.kind() + ": " + in.refused.front().message() +
             (in.refused.size() > 1 ? " (and " + std::to_string(in.refused.size() - 1) + " more)"
                                    : ""));
      }
      // Acknowledged: what the store holds (see Receiver::receive_message),
      // signed as over MQTT; what is not is sent again by the terminal.
      if (in.acknowledge.empty()) continue;
      auto ack = sign_stored(*acks_, receiver_, terminal, std::move(in.acknowledge),
                             std::chrono::system_clock::now());
      if (!ack) {
        log_("grpc: cannot sign the acknowledgement for " + terminal + ": " +
             ack.error().message());
        continue;
      }
      if (!*ack) continue;
      v1::Downlink d;
      d.set_signed_ack(std::move(**ack));
      std::lock_guard w(peer->write_mu);
      if (!stream->Write(d)) break;
    }
    {
      std::lock_guard lock(mu_);
      auto it = peers_.find(terminal);
      if (it != peers_.end() && it->second == peer) peers_.erase(it);
    }
    {
      std::lock_guard w(peer->write_mu);
      peer->stream = nullptr;
    }
    log_("grpc: " + terminal + " disconnected");
    return grpc::Status::OK;
  }

  std::shared_ptr<Peer> peer(const std::string& terminal) const {
    std::lock_guard lock(mu_);
    auto it = peers_.find(terminal);
    return it == peers_.end() ? nullptr : it->second;
  }

 private:
  Receiver& receiver_;
  std::shared_ptr<const link::AckSigner> acks_;
  std::function<void(const std::string&)> log_;
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<Peer>> peers_;
};

Result<std::unique_ptr<GrpcEndpoint>> GrpcEndpoint::start(
    GrpcEndpointOptions options, Receiver& receiver, std::function<void(const std::string&)> log) {
  if (!options.acks) {
    return fail(Errc::invalid_argument, "grpc endpoint", "acks", "no acknowledgement signer given");
  }
  auto read = [](const std::string& p) { return read_small_file(p, ReadOptions{.max = 1u << 20}); };
  auto ca = read(options.ca_file);
  if (!ca) return std::unexpected(ca.error());
  auto cert = read(options.cert_file);
  if (!cert) return std::unexpected(cert.error());
  auto key = read(options.key_file);
  if (!key) return std::unexpected(key.error());
  grpc::SslServerCredentialsOptions tls(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  tls.pem_root_certs = *ca;
  tls.pem_key_cert_pairs.push_back({*key, *cert});
  std::unique_ptr<GrpcEndpoint> e(new GrpcEndpoint());
  e->service_ = std::make_unique<Service>(receiver, options.acks, std::move(log));
  grpc::ServerBuilder b;
  b.AddListeningPort(options.address, grpc::SslServerCredentials(tls), &e->port_);
  b.RegisterService(e->service_.get());
  b.SetMaxReceiveMessageSize(2 << 20);
  e->server_ = b.BuildAndStart();
  if (!e->server_ || e->port_ == 0) {
    return fail_msg(Errc::unavailable, "cannot listen on " + options.address);
  }
  return e;
}

GrpcEndpoint::~GrpcEndpoint() { stop(); }

void GrpcEndpoint::stop() {
  if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  server_.reset();
}

bool GrpcEndpoint::connected(const std::string& terminal_id) const {
  return service_->peer(terminal_id) != nullptr;
}

Result<void> GrpcEndpoint::send_command(const std::string& terminal_id,
                                        const std::string& signed_command) {
  auto p = service_->peer(terminal_id);
  if (!p) return fail_msg(Errc::unavailable, terminal_id + " is not connected");
  v1::Downlink d;
  d.set_signed_command(signed_command);
  std::lock_guard w(p->write_mu);
  if (!p->stream || !p->stream->Write(d)) {
    return fail_msg(Errc::unavailable, terminal_id + ": the stream broke");
  }
  return {};
}

}  // namespace portier::fleet
