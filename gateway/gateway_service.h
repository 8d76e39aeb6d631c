// The local API (portier.v1.Gateway) on gRPC's callback API: handlers never
// block on devices or other apps; streams are bounded per subscriber.
#pragma once

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>

#include "action_pool.h"
#include "drivers/driver.h"
#include "portier/v1/gateway.grpc.pb.h"

namespace portier::gateway {

class AuditSink;
class DeviceHub;
class PolicyStore;
struct Connection;

class GatewayService final : public v1::Gateway::CallbackService {
 public:
  static constexpr std::size_t kMaxActions = 32;  // device actions running or queued

  using FindConnection = std::function<std::shared_ptr<Connection>(const std::string& peer)>;
  GatewayService(DeviceHub& hub, PolicyStore& policy, AuditSink& audit, FindConnection find,
                 std::function<std::uint32_t()> connection_count, std::size_t queue);

  grpc::ServerUnaryReactor* ListDevices(grpc::CallbackServerContext* ctx,
                                        const v1::ListDevicesRequest* req,
                                        v1::ListDevicesResponse* resp) override;
  grpc::ServerWriteReactor<v1::DeviceChange>* WatchDevices(
      grpc::CallbackServerContext* ctx, const v1::WatchDevicesRequest* req) override;
  grpc::ServerWriteReactor<v1::PeripheralEvent>* Subscribe(
      grpc::CallbackServerContext* ctx, const v1::SubscribeRequest* req) override;
  grpc::ServerUnaryReactor* Claim(grpc::CallbackServerContext* ctx, const v1::ClaimRequest* req,
                                  v1::ClaimResponse* resp) override;
  grpc::ServerUnaryReactor* Renew(grpc::CallbackServerContext* ctx, const v1::RenewRequest* req,
                                  v1::ClaimResponse* resp) override;
  grpc::ServerUnaryReactor* Release(grpc::CallbackServerContext* ctx, const v1::ReleaseRequest* req,
                                    v1::ReleaseResponse* resp) override;
  grpc::ServerUnaryReactor* Send(grpc::CallbackServerContext* ctx, const v1::SendRequest* req,
                                 v1::SendResponse* resp) override;
  grpc::ServerUnaryReactor* Transmit(grpc::CallbackServerContext* ctx,
                                     const v1::TransmitRequest* req,
                                     v1::TransmitResponse* resp) override;
  grpc::ServerUnaryReactor* Act(grpc::CallbackServerContext* ctx, const v1::ActRequest* req,
                                v1::ActResponse* resp) override;
  grpc::ServerUnaryReactor* GetHealth(grpc::CallbackServerContext* ctx,
                                      const v1::GetHealthRequest* req, v1::Health* resp) override;
  grpc::ServerUnaryReactor* RunHealthChecks(grpc::CallbackServerContext* ctx,
                                            const v1::GetHealthRequest* req,
                                            v1::Health* resp) override;
  grpc::ServerUnaryReactor* WhoAmI(grpc::CallbackServerContext* ctx, const v1::WhoAmIRequest* req,
                                   v1::Identity* resp) override;
  grpc::ServerUnaryReactor* ExplainPolicy(grpc::CallbackServerContext* ctx,
                                          const v1::ExplainRequest* req,
                                          v1::ExplainResponse* resp) override;
  grpc::ServerWriteReactor<v1::AuditRecord>* TailAudit(grpc::CallbackServerContext* ctx,
                                                       const v1::TailAuditRequest* req) override;

  // Adds what the health monitor knows to each health report.
  void set_health_extra(std::function<void(v1::Health*)> fn) { health_extra_ = std::move(fn); }
  // Runs every check now (blocking); unset when the monitor is off.
  void set_health_run(std::function<void()> fn) { health_run_ = std::move(fn); }

  // Waits until no device action is running (after the server shut down,
  // before drivers stop). Actions end within their own timeouts.
  void drain();

 private:
  std::shared_ptr<Connection> connection(grpc::CallbackServerContext* ctx, grpc::Status* st);
  // As connection(), and the caller must be identified and still the same
  // process (for calls that are not decided per device).
  std::shared_ptr<Connection> identified(grpc::CallbackServerContext* ctx, grpc::Status* st);

  DeviceHub& hub_;
  PolicyStore& policy_;
  AuditSink& audit_;
  FindConnection find_;
  std::function<std::uint32_t()> connection_count_;
  // Device actions block on hardware, so each runs on a worker thread of its
  // own, never on gRPC's callback threads; at most kMaxActions at once.
  grpc::ServerUnaryReactor* run_action(grpc::CallbackServerContext* ctx,
                                       std::shared_ptr<Connection> conn,
                                       drivers::ActionRequest request,
                                       std::function<void(drivers::ActionResult&)> reply);

  std::size_t queue_;
  std::function<void(v1::Health*)> health_extra_;
  std::function<void()> health_run_;
  ActionPool actions_{kMaxActions};
};

}  // namespace portier::gateway
