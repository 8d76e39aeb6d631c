// The gateway's core: it routes what the drivers report (DriverSink) to the
// parts that keep it (DeviceRegistry, LeaseTable, the two FanOuts,
// TerminalHealth) and has every app operation decided (AccessDecider) for
// the calling connection. It speaks plain C++ and the project's Result<T>:
// the gRPC service converts to and from portier.v1 and grpc::Status; the
// agent's features use it as a GatewayView.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "access_decider.h"
#include "claims.h"
#include "common/audit_sink.h"
#include "connection.h"
#include "device_changes.h"
#include "device_events.h"
#include "device_registry.h"
#include "drivers/driver.h"
#include "gateway_view.h"
#include "hub_timer.h"
#include "lease_table.h"
#include "policy_store.h"
#include "terminal_health.h"

namespace portier::gateway {

struct HubOptions {
  std::size_t subscriber_queue = 256;
  std::uint32_t max_lease_seconds = 300;
  // The terminal's health while the audit trail cannot be written.
  policy::Health audit_failure_health = policy::Health::degraded;
  // How long an operation that must be audited waits for its record.
  std::chrono::milliseconds audit_timeout{2000};
  LeaseClock clock;  // tests step time
};

// What authorize() found: the driver to ask and the decision that allowed it.
struct ActionGrant {
  drivers::Driver* driver = nullptr;  // null: the device has no driver
  policy::Op op;
  policy::Decision decision;
};

// What GetHealth reports.
struct HealthReport {
  HealthState health;
  PolicyStatusInfo policy;
  std::chrono::seconds uptime{0};
  std::vector<DeviceView> devices;
  std::vector<drivers::SelfTestResult> self_tests;
  std::vector<SubscriberReport> subscribers;
};

class DeviceHub final : public GatewayView {
 public:
  DeviceHub(PolicyStore& policy, AuditSink& audit, HubOptions options);
  ~DeviceHub() override;

  // Starts `driver` reporting into this hub; the hub routes writes for the
  // driver's devices back to it. `driver` must outlive the hub's use of it
  // (stop drivers before destroying the hub).
  Result<void> start_driver(drivers::Driver& driver);

  // What drivers report (called on driver threads, through a per-driver sink).
  void device_added(drivers::Driver* driver, const drivers::DeviceInfo& info);
  void device_removed(const std::string& id);
  void device_state(const std::string& id, drivers::DeviceState state, const std::string& reason);
  void device_event(const std::string& id, drivers::DeviceEvent event);

  // Decides `op` on `device_id` for `conn`; denials are audited, and allows
  // too (durably, refused when that fails) when `audit_allow`.
  Access check(Connection& conn, const std::string& device_id, policy::Op op,
               bool audit_allow = false);
  std::vector<DeviceView> list(Connection& conn);
  // Success when some rule lets `conn` watch some device (present or to
  // come); else permission_denied, audited: a stream that could carry
  // nothing is refused before it costs anything.
  Result<void> may_watch(Connection& conn);
  // Decides `read` on `device_id`; only once it is allowed is `admit` asked
  // for the stream's resources (a refusal from it is returned as is).
  // Returns the id to unsubscribe_events() with when the stream ends.
  Result<std::uint64_t> subscribe(const std::shared_ptr<Connection>& conn,
                                  const std::string& device_id,
                                  std::shared_ptr<EventSubscriber> subscriber,
                                  const std::function<Result<void>()>& admit = nullptr);
  Result<std::uint64_t> watch(const std::shared_ptr<Connection>& conn,
                              std::shared_ptr<ChangeSubscriber> subscriber, bool include_existing);
  Result<Lease> claim(const std::shared_ptr<Connection>& conn, const std::string& device_id,
                      std::uint32_t seconds);
  Result<Lease> renew(Connection& conn, const std::string& lease_id, std::uint32_t seconds);
  Result<void> release(Connection& conn, const std::string& lease_id);
  // May `conn` run `action` on `device_id` now (policy, health, and the
  // lease when the action needs it)? "" = a raw write (op write, claim
  // needed). Denials are audited; DeviceActions runs what is granted.
  Result<ActionGrant> authorize(Connection& conn, const std::string& device_id,
                                const std::string& action);
  // An action the fleet asked for in a signed, verified command (no app,
  // no policy: the command's signature is the authority; the caller audits
  // it). Refused for an action that needs a lease, and for a device an app
  // holds the lease of.
  Result<drivers::ActionResult> act_for_fleet(const std::string& device_id,
                                              const std::string& action);
  // Drivers' self-test results from start, kept for the health report and audited.
  void record_self_tests(const std::vector<drivers::SelfTestResult>& results);

  // The peer of `conn` went away: its leases and streams end.
  void connection_closed(const std::shared_ptr<Connection>& conn);
  // At shutdown, before the drivers stop: ends every lease (resetting the
  // cards), waits for the resets, and starts none after.
  void end_leases_and_drain(const std::string& reason) {
    {
      std::lock_guard lock(mu_);
      claims_.end_all(reason);
    }
    claims_.close_resets();
  }
  // How to cut a connection off when its process loses its identity.
  void set_sever(std::function<void(std::uint64_t conn_id)> fn);
  // Ends every event and watch stream (on shutdown), so no call lingers;
  // later subscribe/watch calls are refused (unavailable).
  void end_all_streams(const Error& why);
  // Re-decides every open stream and lease after a policy reload.
  void policy_changed();
  // Ends leases that ran out (the hub's timer calls it; tests too).
  void expire_leases();
  // Ends the streams and leases of connections whose process lost its
  // identity (exec'd another program, or left the socket to another).
  void reverify_connections();

  HealthReport health_report();
  // What policy matches on for device `id`, when it exists.
  std::optional<policy::DeviceRef> device_ref(const std::string& id);
  // The health monitor's verdict (boot, root, resources, network), combined
  // with the hub's own (devices, self-tests, policy) for the health gate.
  void set_external_health(policy::Health state, std::vector<std::string> reasons);
  void set_compromised_refusals(std::vector<HealthRefusal> refusals);
  // The audit trail became unwritable or recovered: health and watchers.
  void audit_state_changed();
  // A part of the daemon reports its own state (e.g. "feature link"): OK
  // clears it; anything else adds `reason` to the terminal's health.
  void set_component_health(const std::string& component, policy::Health state, std::string reason);
  std::vector<std::string> app_names(Connection& conn) { return access_.app_names(conn); }
  void unsubscribe_events(std::uint64_t id) { events_.remove(id); }
  void unsubscribe_changes(std::uint64_t id) { changes_.remove(id); }
  AccessDecider& access() { return access_; }

  // GatewayView
  std::vector<DeviceView> devices() override;
  std::optional<DeviceView> device(const std::string& id) override;
  HealthState health() override;
  std::uint64_t listen_events(std::shared_ptr<EventSubscriber> subscriber,
                              const std::string& device_id) override;
  std::uint64_t listen_changes(std::shared_ptr<ChangeSubscriber> subscriber) override;
  void unlisten_events(std::uint64_t id) override { events_.remove(id); }
  void unlisten_changes(std::uint64_t id) override { changes_.remove(id); }

 private:
  // Recomputes the terminal's state reason, ends the leases the health gate
  // refuses now, and tells the watchers.
  void terminal_changed_locked();
  std::vector<DeviceView> devices_locked() const;

  PolicyStore& policy_;
  AuditSink& audit_;
  const HubOptions options_;
  const std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();

  // Guards the registry, the leases, the health and the decisions (which
  // use the registry's and the connections' policy caches).
  std::mutex mu_;
  DeviceRegistry registry_;
  LeaseTable leases_;
  TerminalHealth health_;
  AccessDecider access_;
  DeviceChanges changes_;
  DeviceEvents events_;
  Claims claims_;
  std::vector<std::unique_ptr<drivers::DriverSink>> ports_;
  std::function<void(std::uint64_t)> sever_;
  HubTimer timer_;  // last: its thread stops before the parts it uses go
};

}  // namespace portier::gateway
