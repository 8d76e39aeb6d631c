// Driver for Bluetooth through BlueZ (bluetoothd) on D-Bus. Adapters and
// remote devices known to BlueZ become Portier devices; apps pair, trust,
// connect and switch adapters through actions.
//
// Devices (DeviceInfo):
//  - adapters: id "<id_prefix>-hci0", class "bluetooth", driver "bluetooth",
//    attributes kind "adapter", address, name, alias, class ("0x00010c"),
//    powered, discovering ("true"/"false").
//  - remote devices: id "<id_prefix>-112233445566" (address without colons,
//    lowercase), class "bluetooth", attributes kind "device", address
//    ("11:22:33:44:55:66"), name, alias, class ("0x5a020c", or "" when the
//    device reports none), paired, trusted, connected ("true"/"false"),
//    adapter (the Portier id of its adapter, "bt-hci0").
//  capabilities {"actions"}; no events, no raw write (write() fails with
//  failed_precondition). Attributes are those at device_added; devices()
//  gives the current ones.
//  Every present device is DeviceState::ready. Changes are reported as
//  device_state(ready, reason) with reason "connected"/"disconnected",
//  "paired"/"unpaired", "trusted"/"untrusted" (devices), "powered on"/
//  "powered off", "discovering"/"discovery stopped" (adapters); right after
//  device_added, device_state(ready, "connected"|"disconnected") for a
//  device and (ready, "powered on"|"powered off") for an adapter.
//  A device seen by two adapters is reported once, through the first.
//
// Actions (ActionSpec; none needs a claim):
//   adapter  power_on, power_off        op "power"      Adapter1.Powered
//   adapter  discovery_on, discovery_off op "configure" Start/StopDiscovery
//   device   pair                       op "pair"       Device1.Pair
//   device   trust, untrust             op "pair"       Device1.Trusted
//   device   remove                     op "pair"       Adapter1.RemoveDevice
//   device   connect, disconnect        op "claim"      Device1.Connect/Disconnect
//  Choice of ops: changing which devices the terminal trusts (pair, trust,
//  untrust, remove) is a maintenance operation ("pair"); connecting to a
//  device that maintenance already trusted is taking a peripheral into use,
//  which is what "claim" grants; so a payment app is given "claim" and
//  never "pair". needs_claim is false for all: connect/disconnect do not
//  hold a lease, and adapters are shared.
//  connect fails with failed_precondition ("device is not trusted; a
//  maintenance app must pair and trust it first") unless Trusted is true.
//  pair, connect and disconnect are idempotent (already paired/connected/
//  disconnected succeeds). ActionResult::values holds the state afterwards
//  (paired/trusted/connected, or powered/discovering).
//  Pairing agent (config pairing_agent, on by default; pairing_agent.h):
//  the driver serves org.bluez.Agent1 at kAgentPath and registers it as
//  BlueZ's default agent whenever BlueZ is there. The pair action takes
//  params pin (legacy PIN code), passkey (the 6 digits the device shows, for
//  passkey entry) and confirm (the 6 digits both sides show, for numeric
//  comparison); the agent hands BlueZ the one it asks for while that pair
//  action runs. When the device wants something the action did not carry,
//  pair fails (failed_precondition) saying what to pass. A pairing request
//  for a device with no pair action in flight (the remote side starting
//  it) is refused and raises AlarmData{"pairing_refused", details address,
//  request, reason} on the device's adapter. Only the owner of org.bluez may
//  call the agent. Secrets never appear in errors, alarms or logs.
//
// Allow-list (BluetoothConfig::allowed_addresses/allowed_classes, see
// allow_list.h): a remote device that is not allowed is not reported; each
// time it appears (or stops being allowed, e.g. its class changes) the
// driver sends AlarmData{"device_refused", details address, class, name,
// reason} as device_event on its adapter's id, and act() on its id fails
// with permission_denied. Adapters are never refused.
//
// Errors: a BlueZ that does not answer makes an action fail with
// unavailable after min(request.timeout, call_timeout_ms); BlueZ's errors
// map to invalid_argument, not_found, already_exists, failed_precondition,
// unavailable or io, with the D-Bus error name in Error::why, e.g.
// "bluetooth bt-hci0: power_off (Set /org/bluez/hci0): no answer from
// org.bluez within 500 ms (org.freedesktop.DBus.Error.NoReply: ...)".
// act() on an unknown id: not_found; on a refused device: permission_denied;
// an action the device does not offer: failed_precondition.
//
// Threads and callbacks (what the gateway must know):
//  - start() connects to the bus, reads BlueZ's objects and reports them
//    (device_added, device_state, alarms) on the caller's thread before it
//    returns. It fails only for a bad config or when the bus cannot be
//    reached; when BlueZ is absent or does not answer (start() then waits
//    up to call_timeout_ms), start() succeeds with no devices and they
//    appear when BlueZ does.
//  - Afterwards every callback comes from the driver's own thread, one at
//    a time. The driver thread is the only one that touches the D-Bus
//    connection: act() and self_test() hand their calls to it and wait
//    (each D-Bus call is asynchronous with a timeout), so the driver thread
//    never blocks and stop() is prompt even when BlueZ hangs.
//  - Callbacks caused by an action (the "connected" state change) are made
//    before act() returns.
//  - act(), self_test(), devices() may be called from any thread,
//    concurrently. start()/stop() must not race each other.
//  - stop() ends the thread (actions in flight fail with unavailable), then
//    calls device_removed() for every reported device on the caller's
//    thread. Do not call stop() while holding a lock the sink takes.
//  - If the bus connection is lost, every device is reported removed and
//    the driver reconnects with backoff (0.5 s doubling to 30 s); if BlueZ
//    leaves the bus, its devices are removed and come back with it.
//
// The driver never logs; everything reaches the sink or the caller.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "bluetooth/allow_list.h"
#include "bluetooth/bluetooth_config.h"
#include "bluetooth/bluez_client.h"
#include "driver.h"

namespace portier::drivers {

class BluetoothDriver final : public Driver {
 public:
  static constexpr const char* kAgentPath = "/org/portier/bluetooth/agent";

  explicit BluetoothDriver(BluetoothConfig config);
  ~BluetoothDriver() override;  // stops if running
  BluetoothDriver(const BluetoothDriver&) = delete;
  BluetoothDriver& operator=(const BluetoothDriver&) = delete;

  // Checks a config without touching the bus; usable by config loaders.
  static Result<void> validate(const BluetoothConfig& config);

  std::string_view name() const override { return "bluetooth"; }
  // Errors: invalid_argument (config), failed_precondition (already
  // started), unavailable (bus unreachable), io/internal.
  Result<void> start(DriverSink& sink) override;
  void stop() override;  // prompt; idempotent
  // Bluetooth devices take no raw bytes: not_found or failed_precondition.
  Result<std::size_t> write(const std::string& device_id, std::string_view data) override;
  Result<ActionResult> act(const ActionRequest& request) override;
  // One result per adapter (present, and Powered readable within
  // call_timeout_ms) — or one for "<id_prefix>" when there is no adapter —
  // and one per exact address in allowed_addresses (present: known to
  // BlueZ; identity_ok false when it is known but refused by class).
  std::vector<SelfTestResult> self_test() override;
  // The devices reported now, with current attributes.
  std::vector<DeviceInfo> devices() const;

 private:
  struct Tracked {
    DeviceInfo info;
    std::string path;
    bool adapter = false;
    std::vector<std::pair<std::string, bool>> flags;  // connected, paired, ... in report order
  };
  struct Refused {
    std::string id, address, device_class, name, adapter_id, reason;
  };
  template <class T>
  class Outcome;

  // Driver thread (or start() before the thread exists).
  void run();
  bool post(std::function<void()> job);
  void run_jobs();
  void on_signal(const BluezSignal& s);
  void replace_objects(ManagedObjects objects);
  void start_sync();
  void lose_connection(const Error& e);
  void reconnect();
  Result<void> attach(std::unique_ptr<BluezClient> client);
  void reconcile();
  void run_action(const ActionRequest& request, std::chrono::milliseconds timeout,
                  const std::shared_ptr<Outcome<Result<ActionResult>>>& out);
  void run_self_test(std::chrono::milliseconds timeout,
                     const std::shared_ptr<Outcome<std::vector<SelfTestResult>>>& out);
  ActionResult values_of(const std::string& path, bool adapter) const;
  // The pairing agent (bluetooth_driver_agent.cc).
  void serve_agent();
  void register_agent();
  AgentReply answer_agent(const AgentRequest& q);
  std::string adapter_id_of(const std::string& device_path, const Properties& props) const;

  const BluetoothConfig config_;
  std::optional<AllowList> allow_;
  DriverSink* sink_ = nullptr;
  std::thread thread_;
  int wake_fd_ = -1;  // eventfd: stop() and post() wake the driver thread
  std::atomic<bool> started_{false};
  std::atomic<bool> stop_requested_{false};

  std::mutex jobs_mu_;
  std::deque<std::function<void()>> jobs_;
  bool accepting_ = false;  // guarded by jobs_mu_

  // Driver thread only.
  std::unique_ptr<BluezClient> client_;
  ManagedObjects objects_;                   // BlueZ's adapters and devices (Adapter1/Device1 only)
  std::map<std::string, Tracked> reported_;  // by id
  std::map<std::string, Refused> refused_;   // by object path
  bool dirty_ = false;
  bool sync_in_flight_ = false;
  std::optional<std::chrono::steady_clock::time_point> next_sync_;
  std::chrono::milliseconds sync_backoff_{500};
  std::chrono::steady_clock::time_point reconnect_at_{};
  std::chrono::milliseconds reconnect_backoff_{500};
  std::string bus_problem_;  // why there is no connection / no BlueZ, for self_test
  PairingAgent agent_;
  bool agent_registered_ = false;  // with the BlueZ that owns org.bluez now

  mutable std::mutex pub_mu_;
  std::vector<DeviceInfo> published_;  // what devices() returns
};

}  // namespace portier::drivers
