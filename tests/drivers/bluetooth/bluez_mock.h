// A private D-Bus bus with python3-dbusmock's bluez5 template on it, one per
// test: `dbus-daemon --session --address=unix:path=<tmp>/bus --nofork` and
// `/usr/bin/python3 -m dbusmock --session --template bluez5`. Both children
// die with the test (PR_SET_PDEATHSIG) and are killed and reaped by the
// destructor; the temp dir is removed.
//
// The helper's own sd-bus connection drives the mock (org.bluez.Mock
// methods) and reads properties. Every wait has a deadline; nothing sleeps.
#pragma once

#include <gtest/gtest.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

struct sd_bus;

namespace portier::drivers::testing {

class BluezMock {
 public:
  static constexpr auto kStartDeadline = std::chrono::seconds(30);

  // Starts the bus and, when `with_bluez`, the mock (and waits until it owns
  // org.bluez). Check ok() / error().
  explicit BluezMock(bool with_bluez = true);
  ~BluezMock();
  BluezMock(const BluezMock&) = delete;
  BluezMock& operator=(const BluezMock&) = delete;

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  // The bus's D-Bus address ("unix:path=<tmp>/bus"; the same after restart_bus()).
  const std::string& address() const { return address_; }

  // Kills the mock and the bus daemon (SIGKILL), then starts a new daemon
  // at the same address, without BlueZ.
  ::testing::AssertionResult restart_bus();
  // Starts the mock (when the constructor did not) and waits until it owns org.bluez.
  ::testing::AssertionResult start_bluez();
  // Kills the mock (SIGKILL) and waits until org.bluez has no owner.
  ::testing::AssertionResult kill_bluez();
  // SIGSTOP / SIGCONT: a BlueZ that stops answering.
  void freeze_bluez();
  void thaw_bluez();

  // org.bluez.Mock methods on /org/bluez.
  ::testing::AssertionResult add_adapter(const std::string& name, const std::string& alias);
  ::testing::AssertionResult add_device(const std::string& adapter, const std::string& address,
                                        const std::string& alias);
  // Adapter1.RemoveDevice, as bluetoothd does when a device is forgotten.
  ::testing::AssertionResult remove_device(const std::string& adapter, const std::string& address);
  // org.bluez.Mock.PairDevice: paired and with a class of device.
  ::testing::AssertionResult pair_device(const std::string& adapter, const std::string& address,
                                         int device_class);

  // Pairing through an agent, as bluetoothd does it (the bluez5 template's
  // Pair asks no agent). Replaces the device's Device1.Pair with one that
  // calls `request` ("RequestPinCode", "RequestPasskey" or
  // "RequestConfirmation" with `passkey`) on the default agent registered
  // with AgentManager1, and pairs only when the agent answers `expect` (the
  // PIN, or the passkey in decimal; unused for RequestConfirmation). An
  // agent's Rejected becomes AuthenticationRejected, a wrong answer
  // AuthenticationFailed, as in bluetoothd.
  ::testing::AssertionResult require_agent(const std::string& adapter, const std::string& address,
                                           const std::string& request, const std::string& expect,
                                           std::uint32_t passkey = 0);
  // bluetoothd asking the default agent for a PIN code for a device that
  // started pairing by itself. Returns the D-Bus error name and message the
  // agent answered ("" when it gave a PIN), or the failure.
  std::string ask_agent_for_pin(const std::string& adapter, const std::string& address);

  // Adapter1.SetDiscoveryFilter({}). The bluez5 template of dbusmock 0.28
  // reads a DiscoveryFilter property in StartDiscovery that only this
  // method creates; real BlueZ needs no filter.
  ::testing::AssertionResult set_discovery_filter(const std::string& adapter);

  // A boolean property of an object on org.bluez, read from the mock.
  std::optional<bool> get_bool(const std::string& path, const std::string& interface,
                               const std::string& name);

  static std::string device_path(const std::string& adapter, const std::string& address);

 private:
  ::testing::AssertionResult start_bus();
  ::testing::AssertionResult call_mock(const char* method, const char* signature, ...);
  ::testing::AssertionResult add_method(const std::string& path, const std::string& interface,
                                        const std::string& name, const std::string& in_sig,
                                        const std::string& out_sig, const std::string& code);
  ::testing::AssertionResult wait_bluez_owner(bool present);

  std::string dir_;
  std::string address_;
  std::string error_;
  pid_t daemon_pid_ = -1;
  pid_t mock_pid_ = -1;
  sd_bus* bus_ = nullptr;
};

// Sees method calls to org.bluez through a monitor connection
// (org.freedesktop.DBus.Monitoring.BecomeMonitor): a test learns that a
// call reached the bus, e.g. to stop the driver while the call is in flight.
class CallWatch {
 public:
  CallWatch(const std::string& bus_address, const std::string& member);
  ~CallWatch();
  CallWatch(const CallWatch&) = delete;
  CallWatch& operator=(const CallWatch&) = delete;

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  // Waits until a call of `member` to org.bluez was sent.
  ::testing::AssertionResult wait(std::chrono::milliseconds timeout);

 private:
  sd_bus* bus_ = nullptr;
  std::string member_;
  std::string error_;
};

}  // namespace portier::drivers::testing
