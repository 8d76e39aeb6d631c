#include "drivers/bluetooth/bluez_mock.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <systemd/sd-bus.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstring>
#include <filesystem>
#include <string_view>

extern char** environ;

namespace portier::drivers::testing {
namespace {

namespace fs = std::filesystem;
using clock = std::chrono::steady_clock;

constexpr std::uint64_t kCallTimeoutUsec = 10'000'000;

// fork + exec with the child killed when this thread's process dies. Only
// async-signal-safe calls after fork: everything is prepared before.
pid_t spawn(const std::vector<std::string>& argv_s, const std::vector<std::string>& env_s,
            int stdout_fd, int stderr_fd) {
  std::vector<char*> argv;
  for (const auto& a : argv_s) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (const auto& e : env_s) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid != 0) return pid;
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) ::_exit(127);
  const int devnull = ::open("/dev/null", O_RDWR);
  ::dup2(devnull, 0);
  ::dup2(stdout_fd >= 0 ? stdout_fd : devnull, 1);
  ::dup2(stderr_fd >= 0 ? stderr_fd : devnull, 2);
  // Keep only 0-2 open (the test's other descriptors must not leak).
  for (int fd = 3; fd < 1024; ++fd) ::close(fd);
  ::execve(argv[0], argv.data(), envp.data());
  ::_exit(127);
}

void kill_and_reap(pid_t& pid) {
  if (pid <= 0) return;
  ::kill(pid, SIGKILL);  // also ends a stopped process
  while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
  }
  pid = -1;
}

std::vector<std::string> environment_with(const std::string& extra) {
  std::vector<std::string> env;
  const std::string key = extra.substr(0, extra.find('=') + 1);
  for (char** e = environ; e && *e; ++e) {
    if (!std::string_view(*e).starts_with(key)) env.emplace_back(*e);
  }
  env.push_back(extra);
  return env;
}

int ignore_signal(sd_bus_message*, void*, sd_bus_error*) { return 0; }

::testing::AssertionResult bus_failure(const char* what, int r, const sd_bus_error& e) {
  return ::testing::AssertionFailure()
         << what << ": " << (e.name ? e.name : std::strerror(-r))
         << (e.message ? std::string(": ") + e.message : std::string());
}

}  // namespace

BluezMock::BluezMock(bool with_bluez) {
  std::string tmpl = (fs::temp_directory_path() / "portier-bt-XXXXXX").string();
  if (!::mkdtemp(tmpl.data())) {
    error_ = std::string("mkdtemp: ") + std::strerror(errno);
    return;
  }
  dir_ = tmpl;
  // Without the daemon's guid, so that a restarted bus has the same address.
  address_ = "unix:path=" + dir_ + "/bus";
  if (auto s = start_bus(); !s) {
    error_ = s.message();
    return;
  }
  if (with_bluez) {
    if (auto s = start_bluez(); !s) error_ = s.message();
  }
}

::testing::AssertionResult BluezMock::start_bus() {
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) {
    return ::testing::AssertionFailure() << "pipe: " << std::strerror(errno);
  }
  const int log =
      ::open((dir_ + "/dbus-daemon.log").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  daemon_pid_ = spawn({"/usr/bin/dbus-daemon", "--session", "--address=" + address_,
                       "--print-address=1", "--nofork", "--nopidfile"},
                      environment_with("DBUS_SESSION_BUS_ADDRESS="), out[1], log);
  ::close(out[1]);
  if (log >= 0) ::close(log);
  if (daemon_pid_ < 0) {
    ::close(out[0]);
    return ::testing::AssertionFailure() << "fork: " << std::strerror(errno);
  }
  // The daemon prints its address once it listens.
  const auto deadline = clock::now() + kStartDeadline;
  std::string line;
  while (line.find('\n') == std::string::npos && clock::now() < deadline) {
    pollfd p{out[0], POLLIN, 0};
    if (::poll(&p, 1, 200) <= 0) continue;
    char buf[256];
    const ssize_t n = ::read(out[0], buf, sizeof buf);
    if (n <= 0) break;
    line.append(buf, static_cast<std::size_t>(n));
  }
  ::close(out[0]);
  if (line.find('\n') == std::string::npos) {
    return ::testing::AssertionFailure() << "dbus-daemon did not print its address";
  }

  int r = sd_bus_new(&bus_);
  if (r >= 0) r = sd_bus_set_address(bus_, address_.c_str());
  if (r >= 0) r = sd_bus_set_bus_client(bus_, 1);
  if (r >= 0) r = sd_bus_set_method_call_timeout(bus_, kCallTimeoutUsec);
  if (r >= 0) r = sd_bus_start(bus_);
  if (r >= 0) {
    r = sd_bus_add_match(bus_, nullptr,
                         "type='signal',sender='org.freedesktop.DBus',interface='org.freedesktop."
                         "DBus',member='NameOwnerChanged',arg0='org.bluez'",
                         &ignore_signal, nullptr);
  }
  if (r < 0) return ::testing::AssertionFailure() << "test bus connection: " << std::strerror(-r);
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult BluezMock::restart_bus() {
  if (bus_) sd_bus_flush_close_unref(bus_);
  bus_ = nullptr;
  kill_and_reap(mock_pid_);
  kill_and_reap(daemon_pid_);
  return start_bus();
}

BluezMock::~BluezMock() {
  if (bus_) sd_bus_flush_close_unref(bus_);
  kill_and_reap(mock_pid_);
  kill_and_reap(daemon_pid_);
  if (!dir_.empty()) {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
}

::testing::AssertionResult BluezMock::wait_bluez_owner(bool present) {
  const auto deadline = clock::now() + kStartDeadline;
  for (;;) {
    sd_bus_error e = SD_BUS_ERROR_NULL;
    sd_bus_message* reply = nullptr;
    int r =
        sd_bus_call_method(bus_, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                           "org.freedesktop.DBus", "NameHasOwner", &e, &reply, "s", "org.bluez");
    if (r < 0) {
      auto f = bus_failure("NameHasOwner", r, e);
      sd_bus_error_free(&e);
      return f;
    }
    int has = 0;
    sd_bus_message_read(reply, "b", &has);
    sd_bus_message_unref(reply);
    if ((has != 0) == present) return ::testing::AssertionSuccess();
    if (present && mock_pid_ > 0 && ::waitpid(mock_pid_, nullptr, WNOHANG) == mock_pid_) {
      mock_pid_ = -1;
      return ::testing::AssertionFailure() << "dbusmock exited; see " << dir_ << "/dbusmock.log";
    }
    // Wait for NameOwnerChanged (or the deadline), then ask again.
    while ((r = sd_bus_process(bus_, nullptr)) > 0) {
    }
    const auto left =
        std::chrono::duration_cast<std::chrono::microseconds>(deadline - clock::now());
    if (left.count() <= 0) {
      return ::testing::AssertionFailure()
             << "org.bluez " << (present ? "did not appear" : "did not go away") << " within "
             << std::chrono::duration_cast<std::chrono::seconds>(kStartDeadline).count() << " s";
    }
    sd_bus_wait(bus_, std::min<std::uint64_t>(left.count(), 500'000));
  }
}

::testing::AssertionResult BluezMock::start_bluez() {
  if (mock_pid_ > 0) return ::testing::AssertionFailure() << "dbusmock already running";
  const int log =
      ::open((dir_ + "/dbusmock.log").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  mock_pid_ = spawn({"/usr/bin/python3", "-m", "dbusmock", "--session", "--template", "bluez5"},
                    environment_with("DBUS_SESSION_BUS_ADDRESS=" + address_), log, log);
  if (log >= 0) ::close(log);
  if (mock_pid_ < 0) return ::testing::AssertionFailure() << "fork: " << std::strerror(errno);
  return wait_bluez_owner(true);
}

::testing::AssertionResult BluezMock::kill_bluez() {
  kill_and_reap(mock_pid_);
  return wait_bluez_owner(false);
}

void BluezMock::freeze_bluez() {
  if (mock_pid_ > 0) ::kill(mock_pid_, SIGSTOP);
}

void BluezMock::thaw_bluez() {
  if (mock_pid_ > 0) ::kill(mock_pid_, SIGCONT);
}

::testing::AssertionResult BluezMock::call_mock(const char* method, const char* signature, ...) {
  va_list ap;
  va_start(ap, signature);
  sd_bus_error e = SD_BUS_ERROR_NULL;
  const int r = sd_bus_call_methodv(bus_, "org.bluez", "/org/bluez", "org.bluez.Mock", method, &e,
                                    nullptr, signature, ap);
  va_end(ap);
  if (r < 0) {
    auto f = bus_failure(method, r, e);
    sd_bus_error_free(&e);
    return f;
  }
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult BluezMock::add_adapter(const std::string& name,
                                                  const std::string& alias) {
  return call_mock("AddAdapter", "ss", name.c_str(), alias.c_str());
}

::testing::AssertionResult BluezMock::add_device(const std::string& adapter,
                                                 const std::string& address,
                                                 const std::string& alias) {
  return call_mock("AddDevice", "sss", adapter.c_str(), address.c_str(), alias.c_str());
}

::testing::AssertionResult BluezMock::pair_device(const std::string& adapter,
                                                  const std::string& address, int device_class) {
  return call_mock("PairDevice", "ssi", adapter.c_str(), address.c_str(), device_class);
}

namespace {

// Python for the mock: finds the registered default agent among the bus's
// connections (the one that answers Agent1 at that path; others are asked
// with a short timeout) and calls `call` on it; `res` gets the answer. An
// agent's refusal is raised as `refused_as`.
std::string agent_call_code(const std::string& call, const std::string& refused_as) {
  return "import dbus\n"
         "mgr = objects['/org/bluez']\n"
         "agent = getattr(mgr, 'default_agent', None)\n"
         "if not agent:\n"
         "    raise dbus.exceptions.DBusException('no agent registered', "
         "name='org.bluez.Error.AuthenticationFailed')\n"
         "bus = self.connection\n"
         "res = None\n"
         "found = False\n"
         "for name in bus.list_names():\n"
         "    if not name.startswith(':') or name == bus.get_unique_name():\n"
         "        continue\n"
         "    try:\n"
         "        res = " +
         call +
         "\n"
         "        found = True\n"
         "        break\n"
         "    except dbus.exceptions.DBusException as e:\n"
         "        if e.get_dbus_name() in ('org.bluez.Error.Rejected', "
         "'org.bluez.Error.Canceled'):\n"
         "            " +
         refused_as +
         "\n"
         "if not found:\n"
         "    raise dbus.exceptions.DBusException('agent not reachable', "
         "name='org.bluez.Error.AuthenticationFailed')\n";
}

}  // namespace

::testing::AssertionResult BluezMock::add_method(const std::string& path,
                                                 const std::string& interface,
                                                 const std::string& name, const std::string& in_sig,
                                                 const std::string& out_sig,
                                                 const std::string& code) {
  sd_bus_error e = SD_BUS_ERROR_NULL;
  const int r = sd_bus_call_method(bus_, "org.bluez", path.c_str(), "org.freedesktop.DBus.Mock",
                                   "AddMethod", &e, nullptr, "sssss", interface.c_str(),
                                   name.c_str(), in_sig.c_str(), out_sig.c_str(), code.c_str());
  if (r < 0) {
    auto f = bus_failure("AddMethod", r, e);
    sd_bus_error_free(&e);
    return f;
  }
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult BluezMock::require_agent(const std::string& adapter,
                                                    const std::string& address,
                                                    const std::string& request,
                                                    const std::string& expect,
                                                    std::uint32_t passkey) {
  std::string call, check;
  if (request == "RequestConfirmation") {
    call =
        "bus.call_blocking(name, agent, 'org.bluez.Agent1', 'RequestConfirmation', 'ou', "
        "[self.__dbus_object_path__, dbus.UInt32(" +
        std::to_string(passkey) + ")], timeout=0.5)";
    check = "False";
  } else {
    const std::string sig = "o";
    call = "bus.call_blocking(name, agent, 'org.bluez.Agent1', '" + request + "', '" + sig +
           "', [self.__dbus_object_path__], timeout=0.5)";
    check = "str(res) != '" + expect + "'";
  }
  const std::string code =
      agent_call_code(call,
                      "raise dbus.exceptions.DBusException(e.get_dbus_message(), "
                      "name='org.bluez.Error.AuthenticationRejected')") +
      "if " + check +
      ":\n"
      "    raise dbus.exceptions.DBusException('wrong answer from the agent', "
      "name='org.bluez.Error.AuthenticationFailed')\n"
      "self.PairDevice('" +
      adapter + "', '" + address + "', 5898764)\n";
  return add_method(device_path(adapter, address), "org.bluez.Device1", "Pair", "", "", code);
}

std::string BluezMock::ask_agent_for_pin(const std::string& adapter, const std::string& address) {
  const std::string code =
      "ret = ''\n" +
      agent_call_code(
          "bus.call_blocking(name, agent, 'org.bluez.Agent1', 'RequestPinCode', 'o', "
          "[dbus.ObjectPath('" +
              device_path(adapter, address) + "')], timeout=0.5)",
          "ret = e.get_dbus_name() + ': ' + e.get_dbus_message()\n            found = "
          "True\n            break");
  auto added = add_method("/org/bluez", "org.bluez.Mock", "AskAgentForPin", "", "s", code);
  if (!added) return "add_method failed: " + std::string(added.message());
  sd_bus_error e = SD_BUS_ERROR_NULL;
  sd_bus_message* reply = nullptr;
  const int r = sd_bus_call_method(bus_, "org.bluez", "/org/bluez", "org.bluez.Mock",
                                   "AskAgentForPin", &e, &reply, "");
  std::string out;
  if (r < 0) {
    out =
        std::string("call failed: ") + (e.name ? e.name : "") + " " + (e.message ? e.message : "");
  } else {
    const char* s = nullptr;
    if (sd_bus_message_read(reply, "s", &s) >= 0 && s) out = s;
  }
  sd_bus_error_free(&e);
  sd_bus_message_unref(reply);
  return out;
}

std::string BluezMock::device_path(const std::string& adapter, const std::string& address) {
  std::string p = "/org/bluez/" + adapter + "/dev_" + address;
  for (char& c : p) {
    if (c == ':') c = '_';
  }
  return p;
}

::testing::AssertionResult BluezMock::remove_device(const std::string& adapter,
                                                    const std::string& address) {
  sd_bus_error e = SD_BUS_ERROR_NULL;
  const std::string adapter_path = "/org/bluez/" + adapter;
  const std::string path = device_path(adapter, address);
  const int r = sd_bus_call_method(bus_, "org.bluez", adapter_path.c_str(), "org.bluez.Adapter1",
                                   "RemoveDevice", &e, nullptr, "o", path.c_str());
  if (r < 0) {
    auto f = bus_failure("RemoveDevice", r, e);
    sd_bus_error_free(&e);
    return f;
  }
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult BluezMock::set_discovery_filter(const std::string& adapter) {
  sd_bus_error e = SD_BUS_ERROR_NULL;
  const std::string adapter_path = "/org/bluez/" + adapter;
  const int r = sd_bus_call_method(bus_, "org.bluez", adapter_path.c_str(), "org.bluez.Adapter1",
                                   "SetDiscoveryFilter", &e, nullptr, "a{sv}", 0);
  if (r < 0) {
    auto f = bus_failure("SetDiscoveryFilter", r, e);
    sd_bus_error_free(&e);
    return f;
  }
  return ::testing::AssertionSuccess();
}

std::optional<bool> BluezMock::get_bool(const std::string& path, const std::string& interface,
                                        const std::string& name) {
  sd_bus_error e = SD_BUS_ERROR_NULL;
  int value = 0;
  const int r = sd_bus_get_property_trivial(bus_, "org.bluez", path.c_str(), interface.c_str(),
                                            name.c_str(), &e, 'b', &value);
  sd_bus_error_free(&e);
  if (r < 0) return std::nullopt;
  return value != 0;
}

CallWatch::CallWatch(const std::string& bus_address, const std::string& member) : member_(member) {
  int r = sd_bus_new(&bus_);
  if (r >= 0) r = sd_bus_set_address(bus_, bus_address.c_str());
  if (r >= 0) r = sd_bus_set_bus_client(bus_, 1);
  if (r >= 0) r = sd_bus_set_monitor(bus_, 1);
  if (r >= 0) r = sd_bus_set_method_call_timeout(bus_, kCallTimeoutUsec);
  if (r >= 0) r = sd_bus_start(bus_);
  if (r < 0) {
    error_ = std::string("monitor connection: ") + std::strerror(-r);
    return;
  }
  const std::string rule = "type='method_call',destination='org.bluez',member='" + member + "'";
  sd_bus_error e = SD_BUS_ERROR_NULL;
  r = sd_bus_call_method(bus_, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                         "org.freedesktop.DBus.Monitoring", "BecomeMonitor", &e, nullptr, "asu", 1,
                         rule.c_str(), 0u);
  if (r < 0) error_ = bus_failure("BecomeMonitor", r, e).message();
  sd_bus_error_free(&e);
}

CallWatch::~CallWatch() {
  if (bus_) sd_bus_close_unref(bus_);
}

::testing::AssertionResult CallWatch::wait(std::chrono::milliseconds timeout) {
  const auto deadline = clock::now() + timeout;
  for (;;) {
    sd_bus_message* m = nullptr;
    const int r = sd_bus_process(bus_, &m);
    if (r < 0) return ::testing::AssertionFailure() << "monitor: " << std::strerror(-r);
    if (m) {
      const bool hit = sd_bus_message_is_method_call(m, nullptr, member_.c_str()) > 0;
      sd_bus_message_unref(m);
      if (hit) return ::testing::AssertionSuccess();
    }
    if (r > 0) continue;
    const auto left =
        std::chrono::duration_cast<std::chrono::microseconds>(deadline - clock::now());
    if (left.count() <= 0) {
      return ::testing::AssertionFailure()
             << "no " << member_ << " call to org.bluez within " << timeout.count() << " ms";
    }
    sd_bus_wait(bus_, static_cast<std::uint64_t>(left.count()));
  }
}

}  // namespace portier::drivers::testing
