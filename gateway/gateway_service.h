// The local API (portier.v1.Gateway) on gRPC's sync API: each call is served
// by the gRPC thread that read it, with no hand-off to another thread (on
// gRPC 1.51 the callback API's extra hop cost ~40 µs and twice the CPU per
// call; see bench/README.md). Device actions block only their own call, at
// most kMaxActions at once; streams are bounded per subscriber.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>

#include "action_slots.h"
#include "common/audit_sink.h"
#include "device_actions.h"
#include "drivers/driver.h"
#include "portier/v1/gateway.grpc.pb.h"
#include "stream_quota.h"

namespace portier::gateway {

class DeviceHub;
class PolicyStore;
struct Connection;

class GatewayService final : public v1::Gateway::Service {
 public:
  static constexpr std::size_t kMaxActions = 32;  // device actions running or queued
  // Of those, one app's (or one undeclared uid's): no caller can take the
  // slots others need (an APDU that hangs holds one for its whole timeout).
  static constexpr int kMaxActionsPerPrincipal = 8;
  static constexpr std::uint32_t kMaxTailRecords = 10000;  // TailAudit count

  using FindConnection = std::function<std::shared_ptr<Connection>(const std::string& peer)>;
  GatewayService(DeviceHub& hub, PolicyStore& policy, AuditSink& audit, FindConnection find,
                 std::function<std::uint32_t()> connection_count, std::size_t queue,
                 StreamLimits stream_limits = {});

  grpc::Status ListDevices(grpc::ServerContext* ctx, const v1::ListDevicesRequest* req,
                           v1::ListDevicesResponse* resp) override;
  grpc::Status WatchDevices(grpc::ServerContext* ctx, const v1::WatchDevicesRequest* req,
                            grpc::ServerWriter<v1::DeviceChange>* writer) override;
  grpc::Status Subscribe(grpc::ServerContext* ctx, const v1::SubscribeRequest* req,
                         grpc::ServerWriter<v1::PeripheralEvent>* writer) override;
  grpc::Status Claim(grpc::ServerContext* ctx, const v1::ClaimRequest* req,
                     v1::ClaimResponse* resp) override;
  grpc::Status Renew(grpc::ServerContext* ctx, const v1::RenewRequest* req,
                     v1::ClaimResponse* resp) override;
  grpc::Status Release(grpc::ServerContext* ctx, const v1::ReleaseRequest* req,
                       v1::ReleaseResponse* resp) override;
  grpc::Status Send(grpc::ServerContext* ctx, const v1::SendRequest* req,
                    v1::SendResponse* resp) override;
  grpc::Status Transmit(grpc::ServerContext* ctx, const v1::TransmitRequest* req,
                        v1::TransmitResponse* resp) override;
  grpc::Status Act(grpc::ServerContext* ctx, const v1::ActRequest* req,
                   v1::ActResponse* resp) override;
  grpc::Status GetHealth(grpc::ServerContext* ctx, const v1::GetHealthRequest* req,
                         v1::Health* resp) override;
  grpc::Status RunHealthChecks(grpc::ServerContext* ctx, const v1::GetHealthRequest* req,
                               v1::Health* resp) override;
  grpc::Status WhoAmI(grpc::ServerContext* ctx, const v1::WhoAmIRequest* req,
                      v1::Identity* resp) override;
  grpc::Status ExplainPolicy(grpc::ServerContext* ctx, const v1::ExplainRequest* req,
                             v1::ExplainResponse* resp) override;
  grpc::Status TailAudit(grpc::ServerContext* ctx, const v1::TailAuditRequest* req,
                         grpc::ServerWriter<v1::TailAuditResponse>* writer) override;

  // Adds what the health monitor knows to each health report.
  void set_health_extra(std::function<void(v1::Health*)> fn) { health_extra_ = std::move(fn); }
  // Runs every check now (blocking); unset when the monitor is off.
  void set_health_run(std::function<void()> fn) { health_run_ = std::move(fn); }

  // Ends the audit-follow streams (the hub ends its own), so that no call
  // lingers at shutdown; later follow calls are refused.
  void end_streams(const grpc::Status& status);

 private:
  std::shared_ptr<Connection> connection(grpc::ServerContext* ctx, grpc::Status* st);
  // As connection(), and the caller must be identified and still the same
  // process (for calls that are not decided per device).
  std::shared_ptr<Connection> identified(grpc::ServerContext* ctx, grpc::Status* st);
  // Counts a stream for `conn` while it lives; refuses (RESOURCE_EXHAUSTED in
  // *st) over the limits. Taken only after the call's decision allowed it.
  std::unique_ptr<StreamQuota::Slot> stream_slot(const std::shared_ptr<Connection>& conn,
                                                 grpc::Status* st);

  DeviceHub& hub_;
  DeviceActions device_actions_;
  PolicyStore& policy_;
  AuditSink& audit_;
  FindConnection find_;
  std::function<std::uint32_t()> connection_count_;
  grpc::Status run_action(Connection& conn, const drivers::ActionRequest& request,
                          drivers::ActionResult* result);

  std::size_t queue_;
  std::function<void(v1::Health*)> health_extra_;
  std::function<void()> health_run_;
  ActionSlots actions_{kMaxActions};
  std::mutex principal_actions_mu_;
  std::map<std::string, int> principal_actions_;
  StreamQuota streams_;
  std::mutex followers_mu_;
  std::map<std::uint64_t, std::function<void(const grpc::Status&)>> followers_;
  std::uint64_t next_follower_ = 1;
  bool stopping_ = false;
};

}  // namespace portier::gateway
