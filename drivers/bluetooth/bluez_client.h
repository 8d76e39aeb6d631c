// A thin sd-bus wrapper for talking to BlueZ (org.bluez): the object
// manager's GetManagedObjects, the InterfacesAdded/InterfacesRemoved and
// PropertiesChanged signals, org.bluez's owner coming and going, property
// get/set and method calls. Every call has a timeout: a BlueZ that stops
// answering makes the call fail with Errc::unavailable after that timeout,
// never hang.
//
// Threads: a BluezClient is not thread-safe. Create it anywhere, then use it
// (including destroying it) from one thread at a time. Callbacks run on the
// thread that calls process() or the destructor.
//
// Event loop: poll fd() for events() with poll_timeout_ms(), then call
// process(); call process() also before the first poll.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "common/result.h"
#include "pairing_agent.h"

struct sd_bus;
struct sd_bus_message;
struct sd_bus_slot;

namespace portier::drivers {

// A property value: booleans; every integer type (y n q i u x t); strings,
// object paths and signatures. Other types (arrays, dicts) are read as
// monostate: BlueZ's UUIDs, ManufacturerData and the like are not needed.
using PropValue = std::variant<std::monostate, bool, std::int64_t, std::string>;
using Properties = std::map<std::string, PropValue>;
using InterfaceMap = std::map<std::string, Properties>;      // interface -> properties
using ManagedObjects = std::map<std::string, InterfaceMap>;  // object path -> interfaces

struct BluezSignal {
  enum class Kind {
    interfaces_added,    // path, interfaces
    interfaces_removed,  // path, names (interface names)
    properties_changed,  // path, interface, changed, names (invalidated properties)
    service_changed,     // service_present: org.bluez got an owner (true) or lost it
  };
  Kind kind = Kind::interfaces_added;
  std::string path;
  std::string interface;
  InterfaceMap interfaces;
  Properties changed;
  std::vector<std::string> names;
  bool service_present = false;
};

class BluezClient {
 public:
  static constexpr const char* kService = "org.bluez";
  template <class T>
  using Callback = std::function<void(Result<T>)>;
  using SignalHandler = std::function<void(const BluezSignal&)>;

  // Connects to `bus`: "system", "session" or a D-Bus address. With
  // `wait_ready`, waits at most `call_timeout` for the bus daemon to greet
  // us; without, returns at once (the greeting completes in process()).
  // The timeout is also the default for every call. Errors: unavailable (no
  // bus, or it did not answer), invalid_argument (malformed address).
  static Result<std::unique_ptr<BluezClient>> connect(const std::string& bus,
                                                      std::chrono::milliseconds call_timeout,
                                                      bool wait_ready);
  // Closes the connection without flushing. Callbacks of calls still waiting
  // run now, with Errc::unavailable.
  ~BluezClient();
  BluezClient(const BluezClient&) = delete;
  BluezClient& operator=(const BluezClient&) = delete;

  // Subscribes to BlueZ's signals (and to org.bluez's owner changes)
  // without blocking: the match rules reach the bus daemon before any call
  // made afterwards, so no signal sent after such a call's reply is missed.
  // If the bus daemon refuses a rule, the connection is closed (process()
  // then fails). `handler` runs inside process().
  Result<void> subscribe(SignalHandler handler);

  // Blocking: every object of org.bluez, with the properties of its
  // interfaces. Signals arriving meanwhile wait for process().
  Result<ManagedObjects> get_managed_objects();

  // Asynchronous calls. Each callback runs exactly once: inside process()
  // when the reply or the timeout comes, inside the destructor when the
  // connection closes first, or before the function returns when the call
  // cannot be sent. A timeout of zero means call_timeout.
  void get_managed_objects_async(Callback<ManagedObjects> cb);
  // A method without results; `path_arg`, when given, is passed as the only
  // argument (an object path, as for Adapter1.RemoveDevice).
  void call_async(const std::string& path, const std::string& interface, const std::string& method,
                  std::optional<std::string> path_arg, std::chrono::milliseconds timeout,
                  Callback<void> cb);
  void get_property_async(const std::string& path, const std::string& interface,
                          const std::string& name, std::chrono::milliseconds timeout,
                          Callback<PropValue> cb);
  // Booleans and strings only.
  void set_property_async(const std::string& path, const std::string& interface,
                          const std::string& name, const PropValue& value,
                          std::chrono::milliseconds timeout, Callback<void> cb);

  // Pairing agent (bluez_agent.cc). export_agent() serves org.bluez.Agent1
  // at `path`: each request that comes from the current owner of org.bluez
  // goes to `handler` (inside process()) and its reply back; requests from
  // anyone else are refused (org.bluez.Error.Rejected) without reaching it.
  using AgentHandler = std::function<AgentReply(const AgentRequest&)>;
  Result<void> export_agent(const std::string& path, AgentHandler handler);
  // AgentManager1.RegisterAgent(path, capability), then RequestDefaultAgent.
  void register_agent_async(const std::string& path, const std::string& capability,
                            std::chrono::milliseconds timeout, Callback<void> cb);

  int fd() const;
  short events() const;         // for poll()
  int poll_timeout_ms() const;  // -1: none; 0: process() has work now
  // Dispatches up to `max_messages` incoming messages and expired timeouts.
  // Errors: unavailable when the connection to the bus is gone.
  Result<void> process(int max_messages = 64);

 private:
  struct Call;
  BluezClient(sd_bus* bus, std::chrono::milliseconds call_timeout);
  void send(sd_bus_message* m, std::chrono::milliseconds timeout,
            std::function<void(Result<sd_bus_message*>)> on_reply);
  Result<void> add_match(const char* rule);
  void drop_agent();
  friend struct SignalDispatch;

  sd_bus* bus_ = nullptr;
  std::chrono::milliseconds call_timeout_;
  std::vector<sd_bus_slot*> matches_;
  SignalHandler handler_;
  struct Agent {
    AgentHandler handler;
    sd_bus_slot* slot = nullptr;
    std::chrono::milliseconds timeout{5000};
  };
  std::unique_ptr<Agent> agent_;
  friend struct AgentDispatch;
};

// Whether `e` is a call that got no answer within its timeout (D-Bus
// NoReply / Timeout / TimedOut), as opposed to an answer that was an error.
bool no_answer(const Error& e);

// Reading a PropValue: nullopt when absent or of another type.
std::optional<bool> prop_bool(const Properties& p, const std::string& name);
std::optional<std::int64_t> prop_int(const Properties& p, const std::string& name);
std::optional<std::string> prop_string(const Properties& p, const std::string& name);

}  // namespace portier::drivers
