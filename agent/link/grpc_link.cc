#include "agent/link/grpc_link.h"

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "common/file_read.h"
#include "common/mqtt/backoff.h"
#include "portier/v1/fleet.grpc.pb.h"

namespace portier::link {

struct GrpcLink::Impl {
  GrpcLinkOptions options;
  grpc::SslCredentialsOptions tls;
  LinkHandler* handler = nullptr;

  mutable std::mutex mu;
  std::condition_variable cv;
  bool stopping = false;
  bool up = false;
  std::unique_ptr<grpc::ClientContext> context;
  std::unique_ptr<grpc::ClientReaderWriter<v1::Uplink, v1::Downlink>> stream;
  std::mutex write_mu;  // one Write at a time
  std::thread thread;

  void run();
  // One connection: until the stream breaks or stop().
  void session(v1::Fleet::Stub& stub);
};

Result<std::unique_ptr<GrpcLink>> GrpcLink::create(GrpcLinkOptions options) {
  auto impl = std::make_unique<Impl>();
  auto read = [](const std::string& path, const char* what) -> Result<std::string> {
    if (path.empty()) return fail_msg(Errc::invalid_argument, std::string(what) + " is required");
    auto r = read_small_file(path, ReadOptions{.max = 1u << 20});
    if (!r) return with_context(std::move(r), what);
    return r;
  };
  auto ca = read(options.ca_file, "ca_file");
  if (!ca) return std::unexpected(ca.error());
  auto cert = read(options.cert_file, "cert_file");
  if (!cert) return std::unexpected(cert.error());
  auto key = read(options.key_file, "tls key");
  if (!key) return std::unexpected(key.error());
  impl->tls.pem_root_certs = std::move(*ca);
  impl->tls.pem_cert_chain = std::move(*cert);
  impl->tls.pem_private_key = std::move(*key);
  if (options.target.empty() || options.target.find(':') == std::string::npos) {
    return fail_msg(Errc::invalid_argument,
                    "server must be host:port for the gRPC link, not \"" + options.target + "\"");
  }
  impl->options = std::move(options);
  return std::unique_ptr<GrpcLink>(new GrpcLink(std::move(impl)));
}

GrpcLink::GrpcLink(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

GrpcLink::~GrpcLink() { stop(); }

Result<void> GrpcLink::start(LinkHandler& handler) {
  std::lock_guard lock(impl_->mu);
  if (impl_->thread.joinable()) return {};
  impl_->handler = &handler;
  impl_->stopping = false;
  impl_->thread = std::thread([i = impl_.get()] { i->run(); });
  return {};
}

void GrpcLink::stop() {
  {
    std::lock_guard lock(impl_->mu);
    if (!impl_->thread.joinable()) return;
    impl_->stopping = true;
  }
  // A clean goodbye: the signed offline notice, then the stream's end. Not
  // while a send is stuck in a Write (a stalled fleet): then the stream is
  // cancelled without it, so stop() never waits on the peer.
  if (!impl_->options.offline_notice.empty()) {
    std::unique_lock w(impl_->write_mu, std::try_to_lock);
    grpc::ClientReaderWriter<v1::Uplink, v1::Downlink>* stream = nullptr;
    {
      std::lock_guard lock(impl_->mu);
      if (impl_->stream && impl_->up) stream = impl_->stream.get();
    }
    if (w.owns_lock() && stream) {
      v1::Uplink bye;
      bye.set_kind("offline");
      bye.set_envelope(impl_->options.offline_notice);
      stream->Write(bye);
      stream->WritesDone();
    }
  }
  {
    std::lock_guard lock(impl_->mu);
    if (impl_->context) impl_->context->TryCancel();
  }
  impl_->cv.notify_all();
  impl_->thread.join();
}

Result<void> GrpcLink::send(const Outgoing& m) {
  std::lock_guard w(impl_->write_mu);
  grpc::ClientReaderWriter<v1::Uplink, v1::Downlink>* stream;
  {
    std::lock_guard lock(impl_->mu);
    // No window here: the sender keeps one (and sends again what stays
    // unacknowledged, which a count of this link's own would then block).
    if (!impl_->up || !impl_->stream) {
      return fail_msg(Errc::unavailable, "gRPC link: not connected");
    }
    stream = impl_->stream.get();
  }
  v1::Uplink u;
  u.set_id(m.first);
  u.set_kind("run");
  u.set_run(m.bytes);
  if (!stream->Write(u)) return fail_msg(Errc::unavailable, "gRPC link: the stream broke");
  return {};
}

bool GrpcLink::connected() const {
  std::lock_guard lock(impl_->mu);
  return impl_->up;
}

void GrpcLink::Impl::session(v1::Fleet::Stub& stub) {
  {
    std::lock_guard lock(mu);
    if (stopping) return;
    context = std::make_unique<grpc::ClientContext>();
    context->set_wait_for_ready(false);
    stream = stub.Connect(context.get());
  }
  // The stream is up once the fleet answers with its headers (it sends
  // "portier-fleet: v1" at once); a failed connection ends with none.
  stream->WaitForInitialMetadata();
  const bool ok = context->GetServerInitialMetadata().count("portier-fleet") > 0;
  if (ok) {
    {
      std::lock_guard lock(mu);
      up = true;
    }
    handler->on_connected();
    v1::Downlink d;
    while (stream->Read(&d)) {
      if (d.has_signed_ack() && d.signed_ack().size() <= options.max_ack_bytes) {
        handler->on_acknowledgement(std::move(*d.mutable_signed_ack()));
      } else if (d.has_signed_command() && d.signed_command().size() <= options.max_command_bytes) {
        handler->on_command(d.signed_command());
      }
    }
  }
  auto status = stream->Finish();
  bool was_up;
  {
    std::lock_guard w(write_mu);
    std::lock_guard lock(mu);
    was_up = up;
    up = false;
    stream.reset();
    context.reset();
  }
  if (was_up || !ok) {
    handler->on_disconnected(status.ok() ? "the fleet closed the stream"
                                         : "gRPC " + std::to_string(status.error_code()) + ": " +
                                               status.error_message());
  }
}

void GrpcLink::Impl::run() {
  auto channel = grpc::CreateChannel(options.target, grpc::SslCredentials(tls));
  auto stub = v1::Fleet::NewStub(channel);
  mqtt::Backoff backoff(options.backoff_min, options.backoff_max);
  for (;;) {
    const auto began = std::chrono::steady_clock::now();
    session(*stub);
    std::unique_lock lock(mu);
    if (stopping) break;
    // A session that lasted resets the backoff.
    if (std::chrono::steady_clock::now() - began > options.backoff_max) backoff.reset();
    cv.wait_for(lock, backoff.next(), [&] { return stopping; });
    if (stopping) break;
  }
}

}  // namespace portier::link
