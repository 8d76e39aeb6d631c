#include "gateway_service.h"

#include <thread>

#include "device_hub.h"
#include "quoted.h"
#include "version.h"

namespace portier::gateway {
namespace {

using policy::Op;

constexpr std::size_t kMaxApdu = 65544;  // extended-length case 4: 7 + 65535 + 2

Result<std::chrono::milliseconds> action_timeout(std::uint32_t ms) {
  if (ms == 0) return std::chrono::milliseconds(5000);
  if (ms > 60000) {
    return fail(Errc::invalid_argument, "timeout_ms", std::to_string(ms), "must be 0..60000");
  }
  return std::chrono::milliseconds(ms);
}

grpc::ServerUnaryReactor* done(grpc::CallbackServerContext* ctx, const grpc::Status& st) {
  auto* r = ctx->DefaultReactor();
  r->Finish(st);
  return r;
}

}  // namespace

GatewayService::GatewayService(DeviceHub& hub, PolicyStore& policy, AuditSink& audit,
                               FindConnection find, std::function<std::uint32_t()> count,
                               std::size_t queue)
    : hub_(hub),
      policy_(policy),
      audit_(audit),
      find_(std::move(find)),
      connection_count_(std::move(count)),
      queue_(queue) {}

std::shared_ptr<Connection> GatewayService::connection(grpc::CallbackServerContext* ctx,
                                                       grpc::Status* st) {
  auto conn = find_(ctx->peer());
  if (!conn) {
    *st = grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                       "connection has no kernel identity (connect through the Unix socket)");
  }
  return conn;
}

std::shared_ptr<Connection> GatewayService::identified(grpc::CallbackServerContext* ctx,
                                                       grpc::Status* st) {
  auto conn = connection(ctx, st);
  if (!conn) return nullptr;
  if (!conn->identify_error.empty()) {
    *st = grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                       "caller could not be identified: " + conn->identify_error);
    return nullptr;
  }
  if (auto ok = verify_peer(conn->identity); !ok) {
    *st = grpc::Status(grpc::StatusCode::PERMISSION_DENIED, ok.error().message());
    return nullptr;
  }
  return conn;
}

grpc::ServerUnaryReactor* GatewayService::ListDevices(grpc::CallbackServerContext* ctx,
                                                      const v1::ListDevicesRequest*,
                                                      v1::ListDevicesResponse* resp) {
  grpc::Status st;
  // Identity problems surface as an error, not as an empty list.
  auto conn = identified(ctx, &st);
  if (!conn) return done(ctx, st);
  for (auto& d : hub_.list(*conn)) *resp->add_devices() = std::move(d);
  return done(ctx, grpc::Status::OK);
}

grpc::ServerWriteReactor<v1::DeviceChange>* GatewayService::WatchDevices(
    grpc::CallbackServerContext* ctx, const v1::WatchDevicesRequest* req) {
  grpc::Status st;
  auto conn = identified(ctx, &st);
  if (!conn) return ChangeStream::refused(st);
  auto stream = ChangeStream::create(queue_);
  st = hub_.watch(conn, stream, req->include_existing());
  if (!st.ok()) stream->end(st);
  return stream.get();
}

grpc::ServerWriteReactor<v1::PeripheralEvent>* GatewayService::Subscribe(
    grpc::CallbackServerContext* ctx, const v1::SubscribeRequest* req) {
  grpc::Status st;
  auto conn = connection(ctx, &st);
  if (!conn) return EventStream::refused(st);
  auto stream = EventStream::create(queue_);
  st = hub_.subscribe(conn, req->device_id(), stream);
  if (!st.ok()) stream->end(st);
  return stream.get();
}

grpc::ServerUnaryReactor* GatewayService::Claim(grpc::CallbackServerContext* ctx,
                                                const v1::ClaimRequest* req,
                                                v1::ClaimResponse* resp) {
  grpc::Status st;
  auto conn = connection(ctx, &st);
  if (!conn) return done(ctx, st);
  return done(ctx, hub_.claim(conn, req->device_id(), req->seconds(), resp->mutable_lease()));
}

grpc::ServerUnaryReactor* GatewayService::Renew(grpc::CallbackServerContext* ctx,
                                                const v1::RenewRequest* req,
                                                v1::ClaimResponse* resp) {
  grpc::Status st;
  auto conn = identified(ctx, &st);
  if (!conn) return done(ctx, st);
  return done(ctx, hub_.renew(*conn, req->lease_id(), req->seconds(), resp->mutable_lease()));
}

grpc::ServerUnaryReactor* GatewayService::Release(grpc::CallbackServerContext* ctx,
                                                  const v1::ReleaseRequest* req,
                                                  v1::ReleaseResponse*) {
  grpc::Status st;
  auto conn = identified(ctx, &st);
  if (!conn) return done(ctx, st);
  return done(ctx, hub_.release(*conn, req->lease_id()));
}

grpc::ServerUnaryReactor* GatewayService::Send(grpc::CallbackServerContext* ctx,
                                               const v1::SendRequest* req, v1::SendResponse* resp) {
  grpc::Status st;
  auto conn = connection(ctx, &st);
  if (!conn) return done(ctx, st);
  std::uint64_t written = 0;
  st = hub_.send(*conn, req->device_id(), req->data(), &written);
  resp->set_bytes_written(written);
  return done(ctx, st);
}

grpc::ServerUnaryReactor* GatewayService::run_action(
    grpc::CallbackServerContext* ctx, std::shared_ptr<Connection> conn,
    drivers::ActionRequest request, std::function<void(drivers::ActionResult&)> reply) {
  auto* reactor = ctx->DefaultReactor();
  bool queued = actions_.submit([this, reactor, conn = std::move(conn),
                                 request = std::move(request), reply = std::move(reply)] {
    drivers::ActionResult result;
    auto st = hub_.act(*conn, request, &result);
    if (st.ok()) reply(result);
    reactor->Finish(st);
  });
  if (!queued) {
    reactor->Finish(
        grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                     std::to_string(kMaxActions) + " device actions are running; retry shortly"));
  }
  return reactor;
}

void GatewayService::drain() { actions_.drain(); }

grpc::ServerUnaryReactor* GatewayService::Transmit(grpc::CallbackServerContext* ctx,
                                                   const v1::TransmitRequest* req,
                                                   v1::TransmitResponse* resp) {
  grpc::Status st;
  auto conn = connection(ctx, &st);
  if (!conn) return done(ctx, st);
  if (req->apdu().size() > kMaxApdu) {
    return done(ctx, grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                  "APDU of " + std::to_string(req->apdu().size()) +
                                      " bytes; at most " + std::to_string(kMaxApdu)));
  }
  auto timeout = action_timeout(req->timeout_ms());
  if (!timeout) {
    return done(ctx, grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, timeout.error().message()));
  }
  drivers::ActionRequest a;
  a.device_id = req->device_id();
  a.action = "transmit";
  a.data = req->apdu();
  a.timeout = *timeout;
  return run_action(ctx, std::move(conn), std::move(a),
                    [resp](drivers::ActionResult& r) { resp->set_response(std::move(r.data)); });
}

grpc::ServerUnaryReactor* GatewayService::Act(grpc::CallbackServerContext* ctx,
                                              const v1::ActRequest* req, v1::ActResponse* resp) {
  grpc::Status st;
  auto conn = connection(ctx, &st);
  if (!conn) return done(ctx, st);
  auto timeout = action_timeout(req->timeout_ms());
  if (!timeout) {
    return done(ctx, grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, timeout.error().message()));
  }
  drivers::ActionRequest a;
  a.device_id = req->device_id();
  a.action = req->action();
  a.data = req->data();
  a.params = {req->params().begin(), req->params().end()};
  a.timeout = *timeout;
  return run_action(ctx, std::move(conn), std::move(a), [resp](drivers::ActionResult& r) {
    resp->set_data(std::move(r.data));
    for (auto& [k, v] : r.values) (*resp->mutable_values())[k] = v;
  });
}

grpc::ServerUnaryReactor* GatewayService::GetHealth(grpc::CallbackServerContext* ctx,
                                                    const v1::GetHealthRequest*, v1::Health* resp) {
  grpc::Status st;
  auto conn = connection(ctx, &st);
  if (!conn) return done(ctx, st);
  auto a = hub_.check(*conn, "terminal", Op::read);
  if (!a.ok()) return done(ctx, a.status);
  hub_.fill_health(resp);
  if (health_extra_) health_extra_(resp);
  resp->set_version(kVersion);
  resp->set_connections(connection_count_());
  return done(ctx, grpc::Status::OK);
}

grpc::ServerUnaryReactor* GatewayService::RunHealthChecks(grpc::CallbackServerContext* ctx,
                                                          const v1::GetHealthRequest*,
                                                          v1::Health* resp) {
  grpc::Status st;
  auto conn = connection(ctx, &st);
  if (!conn) return done(ctx, st);
  auto a = hub_.check(*conn, "terminal", Op::configure, /*audit_allow=*/true);
  if (!a.ok()) return done(ctx, a.status);
  if (!health_run_) {
    return done(ctx, grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                                  "the health monitor is off; set [health] monitor = true"));
  }
  // Checks take a while (a TPM quote, file hashes): off gRPC's threads.
  auto* reactor = ctx->DefaultReactor();
  bool queued = actions_.submit([this, reactor, resp] {
    health_run_();
    hub_.fill_health(resp);
    if (health_extra_) health_extra_(resp);
    resp->set_version(kVersion);
    resp->set_connections(connection_count_());
    reactor->Finish(grpc::Status::OK);
  });
  if (!queued) {
    reactor->Finish(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "busy; retry shortly"));
  }
  return reactor;
}

grpc::ServerUnaryReactor* GatewayService::WhoAmI(grpc::CallbackServerContext* ctx,
                                                 const v1::WhoAmIRequest*, v1::Identity* resp) {
  grpc::Status st;
  auto conn = identified(ctx, &st);
  if (!conn) return done(ctx, st);
  const auto& c = conn->caller();
  resp->set_uid(c.uid);
  resp->set_gid(c.gid);
  resp->set_pid(static_cast<std::uint32_t>(c.pid));
  resp->set_exe(c.exe);
  resp->set_sha256(c.sha256);
  resp->set_unit(c.unit);
  for (auto& a : hub_.app_names(*conn)) resp->add_apps(a);
  return done(ctx, grpc::Status::OK);
}

grpc::ServerUnaryReactor* GatewayService::ExplainPolicy(grpc::CallbackServerContext* ctx,
                                                        const v1::ExplainRequest* req,
                                                        v1::ExplainResponse* resp) {
  grpc::Status st;
  auto conn = connection(ctx, &st);
  if (!conn) return done(ctx, st);
  auto a = hub_.check(*conn, "terminal", Op::configure);
  if (!a.ok()) return done(ctx, a.status);
  auto op = policy::parse_op(req->op());
  if (!op) {
    return done(ctx, grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                  "unknown operation " + quoted(req->op()) +
                                      " (list, watch, read, claim, write, configure)"));
  }
  auto snap = policy_.current();
  if (!snap.policy) {
    return done(ctx, grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "no policy loaded"));
  }
  policy::Caller caller{req->uid(), req->gid(), 0, req->exe(), req->sha256(), req->unit()};
  policy::DeviceRef dev{req->device_id(), req->device_class(), {}};
  // A known device is explained with its real class and attributes.
  if (auto known = hub_.device_ref(req->device_id())) {
    if (dev.device_class.empty()) dev.device_class = known->device_class;
    dev.attributes = std::move(known->attributes);
  }
  auto d = snap.policy->decide(caller, dev, *op);
  resp->set_allow(d.allow);
  resp->set_rule(static_cast<std::uint32_t>(d.rule));
  resp->set_line(static_cast<std::uint32_t>(d.line));
  resp->set_policy(d.source);
  resp->set_app(d.app);
  resp->set_message(policy::explain(d, caller.uid, *op, quoted(req->device_id())));
  return done(ctx, grpc::Status::OK);
}

grpc::ServerWriteReactor<v1::AuditRecord>* GatewayService::TailAudit(
    grpc::CallbackServerContext* ctx, const v1::TailAuditRequest* req) {
  using AuditStream = BoundedStream<v1::AuditRecord>;
  grpc::Status st;
  auto conn = connection(ctx, &st);
  if (!conn) return AuditStream::refused(st);
  auto a = hub_.check(*conn, "terminal", Op::configure);
  if (!a.ok()) return AuditStream::refused(a.status);
  auto stream = AuditStream::create(queue_);
  std::size_t count = req->count() ? req->count() : 20;
  for (auto& line : audit_.tail(count)) {
    v1::AuditRecord r;
    r.set_json(line);
    stream->push(r);
  }
  if (!req->follow()) {
    stream->end(grpc::Status::OK);
    return stream.get();
  }
  std::weak_ptr<AuditStream> weak = stream;
  int id = audit_.follow([weak](const std::string& line) {
    if (auto s = weak.lock()) {
      v1::AuditRecord r;
      r.set_json(line);
      s->push(r);
    }
  });
  stream->on_done([this, id](AuditStream*) { audit_.unfollow(id); });
  return stream.get();
}

}  // namespace portier::gateway
