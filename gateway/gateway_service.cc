#include "gateway_service.h"

#include <google/protobuf/util/json_util.h>

#include <thread>

#include "bounded_stream.h"
#include "device_hub.h"
#include "proto_convert.h"
#include "quoted.h"
#include "request_checks.h"
#include "version.h"

namespace portier::gateway {
namespace {

using policy::Op;

constexpr std::size_t kMaxApdu = 65544;  // extended-length case 4: 7 + 65535 + 2
constexpr int kMaxParams = 32;
constexpr std::size_t kMaxParamValue = 4096;

Result<std::chrono::milliseconds> action_timeout(std::uint32_t ms) {
  if (ms == 0) return std::chrono::milliseconds(5000);
  if (ms > 60000) {
    return fail(Errc::invalid_argument, "timeout_ms", std::to_string(ms), "must be 0..60000");
  }
  return std::chrono::milliseconds(ms);
}

}  // namespace

GatewayService::GatewayService(DeviceHub& hub, PolicyStore& policy, AuditSink& audit,
                               FindConnection find, std::function<std::uint32_t()> count,
                               std::size_t queue, StreamLimits stream_limits)
    : hub_(hub),
      device_actions_(hub, audit),
      policy_(policy),
      audit_(audit),
      find_(std::move(find)),
      connection_count_(std::move(count)),
      queue_(queue),
      streams_(stream_limits) {}

std::shared_ptr<Connection> GatewayService::connection(grpc::ServerContext* ctx, grpc::Status* st) {
  auto conn = find_(ctx->peer());
  if (!conn) {
    *st = grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                       "connection has no kernel identity (connect through the Unix socket)");
  }
  return conn;
}

std::shared_ptr<Connection> GatewayService::identified(grpc::ServerContext* ctx, grpc::Status* st) {
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

std::unique_ptr<StreamQuota::Slot> GatewayService::stream_slot(
    const std::shared_ptr<Connection>& conn, grpc::Status* st) {
  std::string why;
  auto slot = streams_.take(conn, &why);
  if (!slot) *st = grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, why);
  return slot;
}

grpc::Status GatewayService::ListDevices(grpc::ServerContext* ctx, const v1::ListDevicesRequest*,
                                         v1::ListDevicesResponse* resp) {
  grpc::Status st;
  // Identity problems surface as an error, not as an empty list.
  auto conn = identified(ctx, &st);
  if (!conn) return st;
  for (auto& d : hub_.list(*conn)) *resp->add_devices() = to_proto(d);
  return grpc::Status::OK;
}

grpc::Status GatewayService::WatchDevices(grpc::ServerContext* ctx,
                                          const v1::WatchDevicesRequest* req,
                                          grpc::ServerWriter<v1::DeviceChange>* writer) {
  grpc::Status st;
  auto conn = identified(ctx, &st);
  if (!conn) return st;
  // Decided before anything is spent on the stream: an app that may watch
  // nothing is refused, not served an empty stream.
  if (auto ok = hub_.may_watch(*conn); !ok) return to_status(ok.error());
  std::shared_ptr<StreamQuota::Slot> slot = stream_slot(conn, &st);
  if (!slot) return st;
  using ChangeStream = BoundedStream<DeviceChangeRecord, v1::DeviceChange>;
  auto stream =
      ChangeStream::create(queue_, [](const DeviceChangeRecord& c) { return to_proto(c); });
  auto id = hub_.watch(conn, stream, req->include_existing());
  if (!id) return to_status(id.error());
  // The slot goes back before the stream leaves the hub's list (GetHealth):
  // a stream no longer listed holds no slot.
  stream->on_done([hub = &hub_, sub = *id, slot = std::move(slot)](ChangeStream*) mutable {
    slot.reset();
    hub->unsubscribe_changes(sub);
  });
  return stream->serve(ctx, writer);
}

grpc::Status GatewayService::Subscribe(grpc::ServerContext* ctx, const v1::SubscribeRequest* req,
                                       grpc::ServerWriter<v1::PeripheralEvent>* writer) {
  grpc::Status st;
  auto conn = connection(ctx, &st);
  if (!conn) return st;
  if (st = check_device_id(req->device_id()); !st.ok()) return st;
  // Decided (and a denial audited) before anything is spent on the stream:
  // the slot is taken only once the hub has allowed the read.
  using EventStream = BoundedStream<DeviceEventRecord, v1::PeripheralEvent>;
  auto stream = EventStream::create(queue_, [](const DeviceEventRecord& e) { return to_proto(e); });
  std::shared_ptr<StreamQuota::Slot> slot;
  auto id = hub_.subscribe(conn, req->device_id(), stream, [&]() -> Result<void> {
    grpc::Status admitted;
    slot = stream_slot(conn, &admitted);
    if (admitted.ok()) return {};
    return fail_msg(Errc::resource_exhausted, admitted.error_message());
  });
  if (!id) return to_status(id.error());
  stream->on_send([](v1::PeripheralEvent& ev, std::uint64_t dropped) { ev.set_dropped(dropped); });
  // The slot goes back before the stream leaves the hub's list (GetHealth):
  // a stream no longer listed holds no slot.
  stream->on_done([hub = &hub_, sub = *id, slot = std::move(slot)](EventStream*) mutable {
    slot.reset();
    hub->unsubscribe_events(sub);
  });
  return stream->serve(ctx, writer);
}

grpc::Status GatewayService::Claim(grpc::ServerContext* ctx, const v1::ClaimRequest* req,
                                   v1::ClaimResponse* resp) {
  grpc::Status st;
  auto conn = connection(ctx, &st);
  if (!conn) return st;
  if (st = check_device_id(req->device_id()); !st.ok()) return st;
  auto lease = hub_.claim(conn, req->device_id(), req->seconds());
  if (!lease) return to_status(lease.error());
  to_proto(*lease, resp->mutable_lease());
  return grpc::Status::OK;
}

grpc::Status GatewayService::Renew(grpc::ServerContext* ctx, const v1::RenewRequest* req,
                                   v1::ClaimResponse* resp) {
  grpc::Status st;
  auto conn = identified(ctx, &st);
  if (!conn) return st;
  if (st = check_length("lease_id", req->lease_id(), kMaxIdLength); !st.ok()) return st;
  auto lease = hub_.renew(*conn, req->lease_id(), req->seconds());
  if (!lease) return to_status(lease.error());
  to_proto(*lease, resp->mutable_lease());
  return grpc::Status::OK;
}

grpc::Status GatewayService::Release(grpc::ServerContext* ctx, const v1::ReleaseRequest* req,
                                     v1::ReleaseResponse*) {
  grpc::Status st;
  auto conn = identified(ctx, &st);
  if (!conn) return st;
  if (st = check_length("lease_id", req->lease_id(), kMaxIdLength); !st.ok()) return st;
  return to_status(hub_.release(*conn, req->lease_id()));
}

grpc::Status GatewayService::Send(grpc::ServerContext* ctx, const v1::SendRequest* req,
                                  v1::SendResponse* resp) {
  grpc::Status st;
  auto conn = connection(ctx, &st);
  if (!conn) return st;
  if (st = check_device_id(req->device_id()); !st.ok()) return st;
  auto written = device_actions_.send(*conn, req->device_id(), req->data());
  if (!written) return to_status(written.error());
  resp->set_bytes_written(*written);
  return grpc::Status::OK;
}

grpc::Status GatewayService::run_action(Connection& conn, const drivers::ActionRequest& request,
                                        drivers::ActionResult* result) {
  {
    std::lock_guard lock(principal_actions_mu_);
    int& mine = principal_actions_[conn.principal];
    if (mine >= kMaxActionsPerPrincipal) {
      return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                          std::to_string(mine) + " device actions of this " +
                              (conn.declared ? "app" : "uid") + " are running; retry shortly");
    }
    ++mine;
  }
  struct GiveBack {
    GatewayService* self;
    const std::string& principal;
    ~GiveBack() {
      std::lock_guard lock(self->principal_actions_mu_);
      if (--self->principal_actions_[principal] <= 0) self->principal_actions_.erase(principal);
    }
  } give_back{this, conn.principal};
  ActionSlots::Slot slot(actions_);
  if (!slot) {
    return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                        std::to_string(kMaxActions) + " device actions are running; retry shortly");
  }
  auto r = device_actions_.act(conn, request);
  if (!r) return to_status(r.error());
  *result = std::move(*r);
  return grpc::Status::OK;
}

grpc::Status GatewayService::Transmit(grpc::ServerContext* ctx, const v1::TransmitRequest* req,
                                      v1::TransmitResponse* resp) {
  grpc::Status st;
  auto conn = connection(ctx, &st);
  if (!conn) return st;
  if (st = check_device_id(req->device_id()); !st.ok()) return st;
  if (req->apdu().size() > kMaxApdu) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "APDU of " + std::to_string(req->apdu().size()) + " bytes; at most " +
                            std::to_string(kMaxApdu));
  }
  auto timeout = action_timeout(req->timeout_ms());
  if (!timeout) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, timeout.error().message());
  }
  drivers::ActionRequest a;
  a.device_id = req->device_id();
  a.action = "transmit";
  a.data = req->apdu();
  a.timeout = *timeout;
  drivers::ActionResult r;
  st = run_action(*conn, a, &r);
  if (st.ok()) resp->set_response(std::move(r.data));
  return st;
}

grpc::Status GatewayService::Act(grpc::ServerContext* ctx, const v1::ActRequest* req,
                                 v1::ActResponse* resp) {
  grpc::Status st;
  auto conn = connection(ctx, &st);
  if (!conn) return st;
  if (st = check_device_id(req->device_id()); !st.ok()) return st;
  if (st = check_length("action", req->action(), kMaxIdLength); !st.ok()) return st;
  if (req->params_size() > kMaxParams) {
    return grpc::Status(
        grpc::StatusCode::INVALID_ARGUMENT,
        std::to_string(req->params_size()) + " params; at most " + std::to_string(kMaxParams));
  }
  for (auto& [k, v] : req->params()) {
    if (st = check_length("param name", k, kMaxIdLength); !st.ok()) return st;
    if (st = check_length("param value", v, kMaxParamValue); !st.ok()) return st;
  }
  auto timeout = action_timeout(req->timeout_ms());
  if (!timeout) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, timeout.error().message());
  }
  drivers::ActionRequest a;
  a.device_id = req->device_id();
  a.action = req->action();
  a.data = req->data();
  a.params = {req->params().begin(), req->params().end()};
  a.timeout = *timeout;
  drivers::ActionResult r;
  st = run_action(*conn, a, &r);
  if (!st.ok()) return st;
  resp->set_data(std::move(r.data));
  for (auto& [k, v] : r.values) (*resp->mutable_values())[k] = v;
  return st;
}

grpc::Status GatewayService::GetHealth(grpc::ServerContext* ctx, const v1::GetHealthRequest*,
                                       v1::Health* resp) {
  grpc::Status st;
  auto conn = connection(ctx, &st);
  if (!conn) return st;
  auto a = hub_.check(*conn, "terminal", Op::read);
  if (!a.ok()) return to_status(a.status);
  to_proto(hub_.health_report(), resp);
  if (health_extra_) health_extra_(resp);
  resp->set_version(kVersion);
  resp->set_connections(connection_count_());
  return grpc::Status::OK;
}

grpc::Status GatewayService::RunHealthChecks(grpc::ServerContext* ctx, const v1::GetHealthRequest*,
                                             v1::Health* resp) {
  grpc::Status st;
  auto conn = connection(ctx, &st);
  if (!conn) return st;
  auto a = hub_.check(*conn, "terminal", Op::configure, /*audit_allow=*/true);
  if (!a.ok()) return to_status(a.status);
  if (!health_run_) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        "the health monitor is off; set [health] monitor = true");
  }
  // Checks take a while (a TPM quote, file hashes): they count as an action.
  ActionSlots::Slot slot(actions_);
  if (!slot) return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "busy; retry shortly");
  health_run_();
  to_proto(hub_.health_report(), resp);
  if (health_extra_) health_extra_(resp);
  resp->set_version(kVersion);
  resp->set_connections(connection_count_());
  return grpc::Status::OK;
}

grpc::Status GatewayService::WhoAmI(grpc::ServerContext* ctx, const v1::WhoAmIRequest*,
                                    v1::Identity* resp) {
  grpc::Status st;
  auto conn = identified(ctx, &st);
  if (!conn) return st;
  const auto& c = conn->caller();
  resp->set_uid(c.uid);
  resp->set_gid(c.gid);
  resp->set_pid(static_cast<std::uint32_t>(c.pid));
  resp->set_exe(c.exe);
  resp->set_sha256(c.sha256);
  resp->set_unit(c.unit);
  resp->set_exe_seen(conn->identity.exe_seen);
  resp->set_exe_doubt(conn->identity.exe_doubt);
  for (auto& a : hub_.app_names(*conn)) resp->add_apps(a);
  return grpc::Status::OK;
}

grpc::Status GatewayService::ExplainPolicy(grpc::ServerContext* ctx, const v1::ExplainRequest* req,
                                           v1::ExplainResponse* resp) {
  grpc::Status st;
  auto conn = connection(ctx, &st);
  if (!conn) return st;
  auto a = hub_.check(*conn, "terminal", Op::configure);
  if (!a.ok()) return to_status(a.status);
  for (auto [what, value, max] :
       {std::tuple<const char*, const std::string*, std::size_t>{"exe", &req->exe(), 4096},
        {"sha256", &req->sha256(), 64},
        {"unit", &req->unit(), 256},
        {"op", &req->op(), 32},
        {"device_class", &req->device_class(), kMaxIdLength}}) {
    if (st = check_length(what, *value, max); !st.ok()) return st;
  }
  if (st = check_device_id(req->device_id()); !st.ok()) return st;
  auto op = policy::parse_op(req->op());
  if (!op) {
    return grpc::Status(
        grpc::StatusCode::INVALID_ARGUMENT,
        "unknown operation " + quoted(req->op()) + " (list, watch, read, claim, write, configure)");
  }
  auto snap = policy_.current();
  if (!snap.policy) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "no policy loaded");
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
  return grpc::Status::OK;
}

namespace {

// A line of the trail as sent: byte for byte, and typed (the line is the
// record's JSON mapping, audit.proto; a line that is not one goes untyped).
v1::TailAuditResponse tail_response(const std::string& line) {
  v1::TailAuditResponse r;
  r.set_json(line);
  google::protobuf::util::JsonParseOptions o;
  o.ignore_unknown_fields = true;  // a newer writer's fields
  if (!google::protobuf::util::JsonStringToMessage(line, r.mutable_record(), o).ok()) {
    r.clear_record();
  }
  return r;
}

}  // namespace

grpc::Status GatewayService::TailAudit(grpc::ServerContext* ctx, const v1::TailAuditRequest* req,
                                       grpc::ServerWriter<v1::TailAuditResponse>* writer) {
  using AuditStream = BoundedStream<v1::TailAuditResponse>;
  grpc::Status st;
  auto conn = connection(ctx, &st);
  if (!conn) return st;
  auto a = hub_.check(*conn, "terminal", Op::configure);
  if (!a.ok()) return to_status(a.status);
  if (req->count() > kMaxTailRecords) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "count " + std::to_string(req->count()) + " is over " +
                            std::to_string(kMaxTailRecords) + "; read the audit log file instead");
  }
  // Counted as a stream from the start: writing the tail may block on a
  // client that does not read.
  auto slot = stream_slot(conn, &st);
  if (!slot) return st;
  std::size_t count = req->count() ? req->count() : 20;
  for (auto& line : audit_.tail(count)) {
    if (!writer->Write(tail_response(line)))
      return grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
  }
  if (!req->follow()) return grpc::Status::OK;
  auto stream = AuditStream::create(queue_);
  std::weak_ptr<AuditStream> weak = stream;
  int id = audit_.follow([weak](const std::string& line) {
    if (auto s = weak.lock()) s->push(tail_response(line));
  });
  std::uint64_t key;
  {
    std::lock_guard lock(followers_mu_);
    if (stopping_) {
      audit_.unfollow(id);
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "portierd is stopping");
    }
    key = next_follower_++;
    followers_[key] = [weak](const grpc::Status& end) {
      if (auto s = weak.lock()) s->end(end);
    };
  }
  stream->on_done([this, id, key](AuditStream*) {
    audit_.unfollow(id);
    std::lock_guard lock(followers_mu_);
    followers_.erase(key);
  });
  return stream->serve(ctx, writer);
}

void GatewayService::end_streams(const grpc::Status& status) {
  std::map<std::uint64_t, std::function<void(const grpc::Status&)>> enders;
  {
    std::lock_guard lock(followers_mu_);
    stopping_ = true;
    enders.swap(followers_);
  }
  for (auto& [k, end] : enders) end(status);
}

}  // namespace portier::gateway
