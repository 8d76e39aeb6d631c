// The gateway's core: the device registry, claims with leases, and event
// fan-out to subscribers, each decided by policy for the calling connection.
// Drivers report into it (DriverSink); the gRPC service calls it.
#pragma once

#include <grpcpp/support/status.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "bounded_stream.h"
#include "common/audit_sink.h"
#include "connection.h"
#include "drivers/driver.h"
#include "policy_store.h"
#include "portier/v1/gateway.pb.h"

namespace portier::gateway {

using EventStream = BoundedStream<v1::PeripheralEvent>;
using ChangeStream = BoundedStream<v1::DeviceChange>;

struct HubOptions {
  std::size_t subscriber_queue = 256;
  std::uint32_t max_lease_seconds = 300;
  // The terminal's health while the audit trail cannot be written.
  policy::Health audit_failure_health = policy::Health::degraded;
  // How long an operation that must be audited waits for its record.
  std::chrono::milliseconds audit_timeout{2000};
};

// An operation refused while the terminal is COMPROMISED (on devices of
// `device_class`, or on all when empty).
struct HealthRefusal {
  policy::Op op;
  std::string device_class;
};

// What a policy check said, ready to return to the app.
struct Access {
  grpc::Status status;  // OK when allowed
  policy::Decision decision;
  bool ok() const { return status.ok(); }
};

class DeviceHub {
 public:
  DeviceHub(PolicyStore& policy, AuditSink& audit, HubOptions options);
  ~DeviceHub();

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
  // too when `audit_allow`. NOT_FOUND when the device does not exist.
  Access check(Connection& conn, const std::string& device_id, policy::Op op,
               bool audit_allow = false);

  std::vector<v1::Device> list(Connection& conn);
  // OK when some rule lets `conn` watch some device (present or to come);
  // else PERMISSION_DENIED, audited: a stream that could carry nothing is
  // refused before it costs anything.
  grpc::Status may_watch(Connection& conn);
  // Decides `read` on `device_id`; only once it is allowed is `admit` asked
  // for the stream's resources (a refusal from it is returned as is).
  grpc::Status subscribe(const std::shared_ptr<Connection>& conn, const std::string& device_id,
                         const std::shared_ptr<EventStream>& stream,
                         const std::function<grpc::Status()>& admit = nullptr);
  grpc::Status watch(const std::shared_ptr<Connection>& conn,
                     const std::shared_ptr<ChangeStream>& stream, bool include_existing);
  grpc::Status claim(const std::shared_ptr<Connection>& conn, const std::string& device_id,
                     std::uint32_t seconds, v1::Lease* out);
  grpc::Status renew(Connection& conn, const std::string& lease_id, std::uint32_t seconds,
                     v1::Lease* out);
  grpc::Status release(Connection& conn, const std::string& lease_id);
  grpc::Status send(Connection& conn, const std::string& device_id, const std::string& data,
                    std::uint64_t* written);
  // Runs a device action (APDU exchange, pairing, port authorization ...)
  // after policy and lease checks; blocks for the driver's answer (the
  // gRPC thread serving the call waits; GatewayService bounds how many do).
  // Audited whether allowed or not; payloads never are.
  grpc::Status act(Connection& conn, const drivers::ActionRequest& request,
                   drivers::ActionResult* result);
  // Drivers' self-test results from start, kept for the health report and audited.
  void record_self_tests(const std::vector<drivers::SelfTestResult>& results);

  void connection_closed(const std::shared_ptr<Connection>& conn);
  // Waits for background device work (card resets after a lease); call
  // before stopping drivers.
  void drain_background();
  // How to cut a connection off when its process loses its identity.
  void set_sever(std::function<void(std::uint64_t conn_id)> fn);
  // Ends every event and watch stream (on shutdown), so no call lingers;
  // later subscribe/watch calls are refused (UNAVAILABLE).
  void end_all_streams(const grpc::Status& status);
  // Re-decides every open stream after a policy reload.
  void policy_changed();

  void fill_health(v1::Health* health);
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
  std::vector<std::string> app_names(Connection& conn);

  // Readable for messages: "app 'kiosk-ui'" or "uid 1000 (/usr/bin/x)".
  static std::string describe(const Connection& conn, const std::string& app);

 private:
  struct DeviceEntry {
    v1::Device device;
    drivers::Driver* driver = nullptr;
    std::vector<drivers::ActionSpec> actions;
    std::uint64_t sequence = 0;
    std::uint64_t policy_generation = 0;
    policy::BitSet device_rules;
  };
  struct LeaseEntry {
    std::string lease_id;
    std::string device_id;
    std::uint64_t conn_id = 0;
    std::weak_ptr<Connection> conn;
    std::string app;
    std::uint32_t seconds = 0;
    std::chrono::steady_clock::time_point expires;
    std::chrono::system_clock::time_point expires_wall;
  };
  struct Subscription {
    std::uint64_t id;
    std::shared_ptr<Connection> conn;
    std::string device_id;
    std::string app;
    std::shared_ptr<EventStream> stream;
  };
  struct Watcher {
    std::uint64_t id;
    std::shared_ptr<Connection> conn;
    std::shared_ptr<ChangeStream> stream;
  };

  // PERMISSION_DENIED (audited) when the caller has no identity or is no
  // longer the process that connected.
  grpc::Status verify_caller(Connection& conn, const std::string& device_id, const std::string& op);
  void audit_refusal(const Connection* conn, const std::string& device, const std::string& op,
                     const std::string& reason);
  policy::Decision decide_locked(Connection& conn, DeviceEntry& dev, policy::Op op,
                                 const PolicySnapshot& snap);
  Access check_locked(Connection& conn, const std::string& device_id, policy::Op op,
                      bool audit_allow, const PolicySnapshot& snap);
  void notify_change_locked(const v1::Device& device, v1::DeviceChange::Kind kind);
  void end_lease_locked(const std::string& device_id, const std::string& event,
                        const std::string& reason);
  void expiry_loop();
  std::pair<policy::Health, std::vector<std::string>> health_locked() const;
  // Why an allowed `op` is refused now because of the terminal's health, or "".
  std::string health_gate_locked(const DeviceEntry& dev, policy::Op op,
                                 const policy::Decision& d) const;
  void reverify_streams();
  // Recomputes the terminal's state reason and tells its watchers.
  void terminal_changed_locked();
  // Ends the leases whose claim the health gate refuses now.
  void revoke_gated_leases_locked();
  // Writes the record of an allowed operation that must be audited, and
  // waits for it: UNAVAILABLE (the operation must be refused) when the trail
  // cannot take it. Call without mu_ held.
  grpc::Status audit_durable(const AuditEntry& entry, const std::string& what);
  void audit(const Connection* conn, const std::string& app, const std::string& device,
             policy::Op op, const policy::Decision& d, const std::string& reason);
  static AuditEntry decision_entry(const Connection* conn, const std::string& app,
                                   const std::string& device, policy::Op op,
                                   const policy::Decision& d, const std::string& reason);

  PolicyStore& policy_;
  AuditSink& audit_;
  HubOptions options_;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();

  std::mutex mu_;
  std::map<std::string, DeviceEntry> devices_;
  std::vector<std::unique_ptr<drivers::DriverSink>> ports_;
  std::map<std::string, LeaseEntry> leases_;  // by device id
  std::map<std::uint64_t, Subscription> subs_;
  std::map<std::uint64_t, Watcher> watchers_;
  std::vector<drivers::SelfTestResult> self_tests_;
  policy::Health external_health_ = policy::Health::ok;
  std::vector<std::string> external_reasons_;
  std::vector<HealthRefusal> refusals_;
  std::map<std::string, std::pair<policy::Health, std::string>> components_;
  std::uint64_t next_stream_id_ = 1;
  bool streams_ended_ = false;  // end_all_streams() was called (shutdown)

  std::function<void(std::uint64_t)> sever_;
  std::mutex background_mu_;
  std::condition_variable background_cv_;
  int background_ = 0;
  std::condition_variable expiry_cv_;
  bool stopping_ = false;
  std::thread expiry_thread_;
};

}  // namespace portier::gateway
