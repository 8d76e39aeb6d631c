#include "bluetooth/bluetooth_driver.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <set>
#include <system_error>
#include <utility>

#include "bluetooth/bt_address.h"

namespace portier::drivers {
namespace {

using clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr const char* kAdapterIface = "org.bluez.Adapter1";
constexpr const char* kDeviceIface = "org.bluez.Device1";
constexpr milliseconds kMinBackoff{500};
constexpr milliseconds kMaxBackoff{30000};
// Extra wait in act()/self_test() beyond the D-Bus timeout, for the driver
// thread to pick the job up and hand the answer back.
constexpr milliseconds kHandoverMargin{1000};
constexpr int kMaxCallTimeoutMs = 300000;

const char* kNotTrusted = "device is not trusted; a maintenance app must pair and trust it first";

std::string where() { return "bluetooth"; }

std::string yes_no(bool b) { return b ? "true" : "false"; }

bool our_interface(const std::string& iface) {
  return iface == kAdapterIface || iface == kDeviceIface;
}

// The reason reported with device_state(ready, ...) when `flag` becomes `value`.
std::string change_reason(const std::string& flag, bool value) {
  if (flag == "connected") return value ? "connected" : "disconnected";
  if (flag == "paired") return value ? "paired" : "unpaired";
  if (flag == "trusted") return value ? "trusted" : "untrusted";
  if (flag == "powered") return value ? "powered on" : "powered off";
  if (flag == "discovering") return value ? "discovering" : "discovery stopped";
  return flag + (value ? " on" : " off");
}

std::string parent_path(const std::string& path) {
  const auto slash = path.rfind('/');
  return slash == std::string::npos || slash == 0 ? std::string() : path.substr(0, slash);
}

std::optional<BtAddress> address_of(const std::string& path, const Properties& props) {
  if (auto s = prop_string(props, "Address")) {
    if (auto a = BtAddress::parse(*s)) return a;
  }
  return BtAddress::from_device_path(path);
}

std::optional<std::uint32_t> class_of(const Properties& props) {
  auto v = prop_int(props, "Class");
  if (!v || *v < 0 || *v > 0xFFFFFF) return std::nullopt;
  return static_cast<std::uint32_t>(*v);
}

ActionSpec spec(const char* name, const char* op) { return ActionSpec{name, op, false}; }

bool error_is(const Error& e, std::string_view dbus_name) { return e.why.starts_with(dbus_name); }

}  // namespace

// A value handed from the driver thread to a waiting caller.
template <class T>
class BluetoothDriver::Outcome {
 public:
  void set(T value) {
    {
      std::lock_guard lock(mu_);
      if (value_) return;
      value_.emplace(std::move(value));
    }
    cv_.notify_all();
  }
  std::optional<T> wait_for(milliseconds d) {
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, d, [&] { return value_.has_value(); })) return std::nullopt;
    return std::move(value_);
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::optional<T> value_;
};

BluetoothDriver::BluetoothDriver(BluetoothConfig config) : config_(std::move(config)) {}

BluetoothDriver::~BluetoothDriver() { stop(); }

Result<void> BluetoothDriver::validate(const BluetoothConfig& c) {
  const std::string w = where();
  if (c.bus.empty() ||
      (c.bus != "system" && c.bus != "session" && c.bus.find(':') == std::string::npos)) {
    return fail(Errc::invalid_argument, w, "bus \"" + c.bus + "\"",
                "must be \"system\", \"session\" or a D-Bus address like "
                "\"unix:path=/run/dbus/system_bus_socket\"");
  }
  if (c.id_prefix.empty() || c.id_prefix.size() > 32 ||
      !std::all_of(c.id_prefix.begin(), c.id_prefix.end(), [](char ch) {
        return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
               ch == '_' || ch == '-' || ch == '.';
      })) {
    return fail(Errc::invalid_argument, w, "id_prefix \"" + c.id_prefix + "\"",
                "must be 1 to 32 letters, digits, '_', '-' or '.'");
  }
  if (c.call_timeout_ms <= 0 || c.call_timeout_ms > kMaxCallTimeoutMs) {
    return fail(Errc::invalid_argument, w, "call_timeout_ms " + std::to_string(c.call_timeout_ms),
                "must be between 1 and " + std::to_string(kMaxCallTimeoutMs));
  }
  if (auto a = AllowList::parse(c.allowed_addresses, c.allowed_classes); !a) {
    return std::unexpected(a.error());
  }
  return {};
}

// --- start / stop -------------------------------------------------------------

Result<void> BluetoothDriver::start(DriverSink& sink) {
  if (started_) return fail(Errc::failed_precondition, where(), "start", "already started");
  if (auto ok = validate(config_); !ok) return ok;
  allow_ = *AllowList::parse(config_.allowed_addresses, config_.allowed_classes);
  const milliseconds timeout(config_.call_timeout_ms);

  auto client = BluezClient::connect(config_.bus, timeout, /*wait_ready=*/true);
  if (!client) {
    Error e = client.error();
    e.where = where();
    return std::unexpected(std::move(e));
  }
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) {
    return fail(Errc::io, where(), "eventfd",
                std::error_code(errno, std::generic_category()).message());
  }
  sink_ = &sink;
  stop_requested_ = false;
  objects_.clear();
  reported_.clear();
  refused_.clear();
  dirty_ = true;
  sync_in_flight_ = false;
  next_sync_.reset();
  sync_backoff_ = kMinBackoff;
  reconnect_backoff_ = kMinBackoff;
  bus_problem_.clear();

  client_ = std::move(*client);
  client_->subscribe([this](const BluezSignal& s) { on_signal(s); });
  agent_registered_ = false;
  serve_agent();
  if (auto objects = client_->get_managed_objects(); objects) {
    replace_objects(std::move(*objects));
    register_agent();
  } else {
    // BlueZ absent or not answering: start without devices; they come
    // when BlueZ does (NameOwnerChanged) or on a retry.
    bus_problem_ = objects.error().message();
    next_sync_ = clock::now() + sync_backoff_;
  }
  reconcile();

  {
    std::lock_guard lock(jobs_mu_);
    accepting_ = true;
  }
  try {
    thread_ = std::thread([this] { run(); });
  } catch (const std::system_error& e) {
    {
      std::lock_guard lock(jobs_mu_);
      accepting_ = false;
    }
    client_.reset();
    objects_.clear();
    reconcile();  // reports every device removed
    ::close(wake_fd_);
    wake_fd_ = -1;
    return fail(Errc::internal, where(), "driver thread", e.what());
  }
  started_ = true;
  return {};
}

void BluetoothDriver::stop() {
  if (!started_) return;
  stop_requested_ = true;
  const std::uint64_t one = 1;
  while (::write(wake_fd_, &one, sizeof one) < 0 && errno == EINTR) {
  }
  if (thread_.joinable()) thread_.join();
  ::close(wake_fd_);
  wake_fd_ = -1;
  {
    std::lock_guard lock(pub_mu_);
    published_.clear();
  }
  // Devices first, then their adapters.
  for (int pass = 0; pass < 2; ++pass) {
    for (auto& [id, t] : reported_) {
      if (t.adapter == (pass == 1)) sink_->device_removed(id);
    }
  }
  reported_.clear();
  refused_.clear();
  objects_.clear();
  started_ = false;
}

bool BluetoothDriver::post(std::function<void()> job) {
  // The wakeup is written under the lock: the driver thread stops accepting
  // under the same lock before it exits, and stop() closes wake_fd_ only
  // after that, so this never writes to a closed (or reused) descriptor.
  std::lock_guard lock(jobs_mu_);
  if (!accepting_) return false;
  jobs_.push_back(std::move(job));
  const std::uint64_t one = 1;
  while (::write(wake_fd_, &one, sizeof one) < 0 && errno == EINTR) {
  }
  return true;
}

void BluetoothDriver::run_jobs() {
  std::deque<std::function<void()>> jobs;
  {
    std::lock_guard lock(jobs_mu_);
    jobs.swap(jobs_);
  }
  for (auto& job : jobs) job();
}

// --- the driver thread --------------------------------------------------------

void BluetoothDriver::run() {
  for (;;) {
    if (stop_requested_) break;
    run_jobs();
    const auto now = clock::now();
    if (!client_ && now >= reconnect_at_) reconnect();
    if (client_ && next_sync_ && now >= *next_sync_ && !sync_in_flight_) start_sync();
    if (client_) {
      if (auto r = client_->process(); !r) lose_connection(r.error());
    }
    if (dirty_) reconcile();

    int timeout = -1;
    auto until = [&](clock::time_point t) {
      const auto ms = std::chrono::duration_cast<milliseconds>(t - clock::now()).count() + 1;
      const int v = static_cast<int>(std::clamp<long long>(ms, 0, 60000));
      timeout = timeout < 0 ? v : std::min(timeout, v);
    };
    pollfd fds[2] = {{wake_fd_, POLLIN, 0}, {-1, 0, 0}};
    nfds_t n = 1;
    if (client_) {
      const int t = client_->poll_timeout_ms();
      if (t == 0) continue;  // more to dispatch right away
      timeout = t;
      fds[1] = {client_->fd(), client_->events(), 0};
      n = 2;
      if (next_sync_ && !sync_in_flight_) until(*next_sync_);
    } else {
      until(reconnect_at_);
    }
    const int r = ::poll(fds, n, timeout);
    if (r < 0 && errno != EINTR) {
      // Cannot happen with valid descriptors; avoid spinning if it does.
      pollfd only{wake_fd_, POLLIN, 0};
      ::poll(&only, 1, 100);
    }
    if (fds[0].revents & POLLIN) {
      std::uint64_t v = 0;
      [[maybe_unused]] const ssize_t got = ::read(wake_fd_, &v, sizeof v);
    }
  }
  // Teardown: calls in flight fail (unavailable) as the connection closes;
  // jobs not yet run see no connection and fail the same way.
  client_.reset();
  bus_problem_ = "the driver is stopping";
  std::deque<std::function<void()>> left;
  {
    std::lock_guard lock(jobs_mu_);
    accepting_ = false;
    left.swap(jobs_);
  }
  for (auto& job : left) job();
}

void BluetoothDriver::on_signal(const BluezSignal& s) {
  switch (s.kind) {
    case BluezSignal::Kind::interfaces_added:
      for (const auto& [iface, props] : s.interfaces) {
        if (!our_interface(iface)) continue;
        objects_[s.path][iface] = props;
        dirty_ = true;
      }
      break;
    case BluezSignal::Kind::interfaces_removed: {
      auto it = objects_.find(s.path);
      if (it == objects_.end()) break;
      for (const std::string& iface : s.names) it->second.erase(iface);
      if (it->second.empty()) objects_.erase(it);
      dirty_ = true;
      break;
    }
    case BluezSignal::Kind::properties_changed: {
      if (!our_interface(s.interface)) break;
      auto it = objects_.find(s.path);
      if (it == objects_.end()) break;
      auto iface = it->second.find(s.interface);
      if (iface == it->second.end()) break;
      for (const auto& [name, value] : s.changed) iface->second[name] = value;
      for (const std::string& name : s.names) iface->second.erase(name);
      dirty_ = true;
      break;
    }
    case BluezSignal::Kind::service_changed:
      objects_.clear();
      dirty_ = true;
      agent_registered_ = false;  // a new BlueZ knows no agent
      if (s.service_present) {
        sync_backoff_ = kMinBackoff;
        next_sync_ = clock::now();
      } else {
        bus_problem_ = "BlueZ (org.bluez) left the bus";
        next_sync_.reset();
      }
      break;
  }
}

void BluetoothDriver::replace_objects(ManagedObjects objects) {
  objects_.clear();
  for (auto& [path, ifaces] : objects) {
    for (auto& [iface, props] : ifaces) {
      if (our_interface(iface)) objects_[path][iface] = std::move(props);
    }
  }
  bus_problem_.clear();
  dirty_ = true;
}

void BluetoothDriver::start_sync() {
  sync_in_flight_ = true;
  next_sync_.reset();
  client_->get_managed_objects_async([this](Result<ManagedObjects> r) {
    sync_in_flight_ = false;
    if (!client_) return;  // the connection is closing
    if (r) {
      replace_objects(std::move(*r));
      register_agent();
      sync_backoff_ = kMinBackoff;
      reconnect_backoff_ = kMinBackoff;
      return;
    }
    bus_problem_ = r.error().message();
    next_sync_ = clock::now() + sync_backoff_;
    sync_backoff_ = std::min(sync_backoff_ * 2, kMaxBackoff);
  });
}

void BluetoothDriver::lose_connection(const Error& e) {
  bus_problem_ = e.message();
  agent_registered_ = false;
  client_.reset();
  objects_.clear();
  dirty_ = true;
  sync_in_flight_ = false;
  next_sync_.reset();
  reconnect_at_ = clock::now() + reconnect_backoff_;
  reconnect_backoff_ = std::min(reconnect_backoff_ * 2, kMaxBackoff);
}

void BluetoothDriver::reconnect() {
  auto c = BluezClient::connect(config_.bus, milliseconds(config_.call_timeout_ms),
                                /*wait_ready=*/false);
  if (!c) {
    bus_problem_ = c.error().message();
    reconnect_at_ = clock::now() + reconnect_backoff_;
    reconnect_backoff_ = std::min(reconnect_backoff_ * 2, kMaxBackoff);
    return;
  }
  client_ = std::move(*c);
  client_->subscribe([this](const BluezSignal& s) { on_signal(s); });
  agent_registered_ = false;
  serve_agent();
  start_sync();
}

std::string BluetoothDriver::adapter_id_of(const std::string& device_path,
                                           const Properties& props) const {
  std::string adapter = prop_string(props, "Adapter").value_or(parent_path(device_path));
  return config_.id_prefix + "-" + std::string(path_basename(adapter));
}

// Compares what BlueZ has now with what was reported and tells the sink
// the difference.
void BluetoothDriver::reconcile() {
  dirty_ = false;
  std::map<std::string, Tracked> want;
  std::map<std::string, Refused> refused_now;

  for (const auto& [path, ifaces] : objects_) {
    auto a = ifaces.find(kAdapterIface);
    if (a == ifaces.end()) continue;
    const Properties& p = a->second;
    Tracked t;
    t.adapter = true;
    t.path = path;
    const bool powered = prop_bool(p, "Powered").value_or(false);
    const bool discovering = prop_bool(p, "Discovering").value_or(false);
    t.flags = {{"powered", powered}, {"discovering", discovering}};
    DeviceInfo& d = t.info;
    d.id = config_.id_prefix + "-" + std::string(path_basename(path));
    d.device_class = "bluetooth";
    d.driver = "bluetooth";
    d.capabilities = {"actions"};
    d.attributes = {{"kind", "adapter"},
                    {"address", prop_string(p, "Address").value_or("")},
                    {"name", prop_string(p, "Name").value_or("")},
                    {"alias", prop_string(p, "Alias").value_or("")},
                    {"class", class_of(p) ? format_device_class(*class_of(p)) : ""},
                    {"powered", yes_no(powered)},
                    {"discovering", yes_no(discovering)}};
    d.actions = {spec("power_on", "power"), spec("power_off", "power"),
                 spec("discovery_on", "configure"), spec("discovery_off", "configure")};
    want.emplace(d.id, std::move(t));
  }

  for (const auto& [path, ifaces] : objects_) {
    auto dev = ifaces.find(kDeviceIface);
    if (dev == ifaces.end()) continue;
    const Properties& p = dev->second;
    auto address = address_of(path, p);
    if (!address) continue;
    const std::string adapter_id = adapter_id_of(path, p);
    auto adapter = want.find(adapter_id);
    if (adapter == want.end() || !adapter->second.adapter) continue;  // adapter gone
    const std::string id = config_.id_prefix + "-" + address->compact();
    const auto cls = class_of(p);
    const std::string cls_text = cls ? format_device_class(*cls) : "";
    if (auto why = allow_->refusal(*address, cls)) {
      refused_now[path] = Refused{
          id, address->str(), cls_text, prop_string(p, "Name").value_or(""), adapter_id, *why};
      continue;
    }
    if (want.contains(id)) continue;  // the same device through another adapter
    const bool connected = prop_bool(p, "Connected").value_or(false);
    const bool paired = prop_bool(p, "Paired").value_or(false);
    const bool trusted = prop_bool(p, "Trusted").value_or(false);
    Tracked t;
    t.path = path;
    t.flags = {{"connected", connected}, {"paired", paired}, {"trusted", trusted}};
    DeviceInfo& d = t.info;
    d.id = id;
    d.device_class = "bluetooth";
    d.driver = "bluetooth";
    d.capabilities = {"actions"};
    d.attributes = {{"kind", "device"},
                    {"address", address->str()},
                    {"name", prop_string(p, "Name").value_or("")},
                    {"alias", prop_string(p, "Alias").value_or("")},
                    {"class", cls_text},
                    {"paired", yes_no(paired)},
                    {"trusted", yes_no(trusted)},
                    {"connected", yes_no(connected)},
                    {"adapter", adapter_id}};
    d.actions = {spec("pair", "pair"),   spec("trust", "pair"),    spec("untrust", "pair"),
                 spec("remove", "pair"), spec("connect", "claim"), spec("disconnect", "claim")};
    want.emplace(id, std::move(t));
  }

  // The differences, in the order they are told to the sink: removals
  // (devices before adapters), additions (adapters before devices) and
  // state changes, then alarms. devices() is updated before any of them is
  // told, so a sink that asks devices() sees the new picture.
  struct Note {
    enum class Kind { removed, added, state, alarm } kind;
    std::string id;
    DeviceInfo info;
    std::string reason;
    AlarmData alarm;
  };
  std::vector<Note> notes;
  for (int pass = 0; pass < 2; ++pass) {
    for (auto it = reported_.begin(); it != reported_.end();) {
      if (it->second.adapter != (pass == 1)) {
        ++it;
        continue;
      }
      auto w = want.find(it->first);
      if (w == want.end() || w->second.adapter != it->second.adapter) {
        notes.push_back({Note::Kind::removed, it->first, {}, {}, {}});
        it = reported_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (int pass = 0; pass < 2; ++pass) {
    for (auto& [id, t] : want) {
      if (t.adapter != (pass == 0)) continue;
      auto r = reported_.find(id);
      if (r == reported_.end()) {
        const auto& first = t.flags.front();  // connected / powered
        notes.push_back({Note::Kind::added, id, t.info, {}, {}});
        notes.push_back({Note::Kind::state, id, {}, change_reason(first.first, first.second), {}});
        reported_.emplace(id, t);
        continue;
      }
      for (std::size_t i = 0; i < t.flags.size(); ++i) {
        const auto& [flag, value] = t.flags[i];
        if (i >= r->second.flags.size() || r->second.flags[i].second != value) {
          notes.push_back({Note::Kind::state, id, {}, change_reason(flag, value), {}});
        }
      }
      r->second = t;
    }
  }
  // Refused devices: an alarm each time one appears or stops being allowed.
  for (const auto& [path, ref] : refused_now) {
    if (refused_.contains(path)) continue;
    AlarmData alarm;
    alarm.code = "device_refused";
    alarm.message = "Bluetooth device " + ref.address +
                    (ref.name.empty() ? "" : " (\"" + ref.name + "\")") +
                    " is not allowed by the configuration: " + ref.reason;
    alarm.details = {{"address", ref.address},
                     {"class", ref.device_class},
                     {"name", ref.name},
                     {"device", ref.id},
                     {"reason", ref.reason}};
    notes.push_back({Note::Kind::alarm, ref.adapter_id, {}, {}, std::move(alarm)});
  }
  refused_ = std::move(refused_now);

  {
    std::vector<DeviceInfo> published;
    for (const auto& [id, t] : reported_) published.push_back(t.info);
    std::lock_guard lock(pub_mu_);
    published_ = std::move(published);
  }
  for (Note& n : notes) {
    switch (n.kind) {
      case Note::Kind::removed:
        sink_->device_removed(n.id);
        break;
      case Note::Kind::added:
        sink_->device_added(n.info);
        break;
      case Note::Kind::state:
        sink_->device_state(n.id, DeviceState::ready, n.reason);
        break;
      case Note::Kind::alarm:
        sink_->device_event(n.id, DeviceEvent{std::move(n.alarm)});
        break;
    }
  }
}

ActionResult BluetoothDriver::values_of(const std::string& path, bool adapter) const {
  ActionResult out;
  auto it = objects_.find(path);
  if (it == objects_.end()) return out;
  auto iface = it->second.find(adapter ? kAdapterIface : kDeviceIface);
  if (iface == it->second.end()) return out;
  const Properties& p = iface->second;
  const char* const adapter_keys[] = {"Powered", "Discovering"};
  const char* const device_keys[] = {"Paired", "Trusted", "Connected"};
  auto put = [&](const char* key) {
    std::string lower = key;
    lower[0] = static_cast<char>(lower[0] - 'A' + 'a');
    out.values[lower] = yes_no(prop_bool(p, key).value_or(false));
  };
  if (adapter) {
    for (const char* k : adapter_keys) put(k);
  } else {
    for (const char* k : device_keys) put(k);
  }
  return out;
}

// --- actions ------------------------------------------------------------------

Result<ActionResult> BluetoothDriver::act(const ActionRequest& request) {
  if (!started_) {
    return fail(Errc::unavailable, where(), request.device_id + " " + request.action,
                "driver is not running");
  }
  milliseconds timeout(config_.call_timeout_ms);
  if (request.timeout.count() > 0) timeout = std::min(timeout, request.timeout);
  // Pairing waits on a device (and maybe on its user), not just on BlueZ:
  // it gets the request's own timeout (the API bounds it to 60 s).
  if (request.action == "pair" && request.timeout.count() > 0) {
    timeout = std::min(request.timeout, milliseconds(60000));
  }
  auto out = std::make_shared<Outcome<Result<ActionResult>>>();
  const bool posted = post([this, request, timeout, out] { run_action(request, timeout, out); });
  if (!posted) {
    return fail(Errc::unavailable, where(), request.device_id + " " + request.action,
                "driver is stopping");
  }
  if (auto r = out->wait_for(timeout + kHandoverMargin)) return std::move(*r);
  return fail(Errc::unavailable, where(), request.device_id + " " + request.action,
              "no answer within " + std::to_string((timeout + kHandoverMargin).count()) + " ms");
}

void BluetoothDriver::run_action(const ActionRequest& req, milliseconds timeout,
                                 const std::shared_ptr<Outcome<Result<ActionResult>>>& out) {
  const std::string w = where() + " " + req.device_id;
  auto failed = [&](Errc code, std::string why) {
    out->set(fail(code, w, req.action, std::move(why)));
  };
  auto t = reported_.find(req.device_id);
  if (t == reported_.end()) {
    for (const auto& [path, ref] : refused_) {
      if (ref.id == req.device_id) {
        return failed(
            Errc::permission_denied,
            "device " + ref.address + " is refused by the Bluetooth allow-list: " + ref.reason);
      }
    }
    return failed(Errc::not_found, "no such Bluetooth device");
  }
  if (!client_) {
    return failed(Errc::unavailable,
                  "not connected to the D-Bus bus" +
                      (bus_problem_.empty() ? std::string() : ": " + bus_problem_));
  }
  const std::string path = t->second.path;
  const bool adapter = t->second.adapter;
  const std::string& a = req.action;

  // On success: record what BlueZ now has (its signal may come later),
  // report it, then answer.
  auto finish = [this, out, path, adapter](const char* prop, std::optional<bool> value,
                                           bool removed) {
    if (removed) {
      objects_.erase(path);
    } else if (prop && value) {
      auto it = objects_.find(path);
      if (it != objects_.end()) {
        auto iface = it->second.find(adapter ? kAdapterIface : kDeviceIface);
        if (iface != it->second.end()) iface->second[prop] = *value;
      }
    }
    reconcile();
    ActionResult r = values_of(path, adapter);
    if (removed) r.values["removed"] = "true";
    out->set(std::move(r));
  };
  // `ok_if` names a D-Bus error that means "already done".
  auto on_done = [out, finish, w, action = req.action](const char* prop, std::optional<bool> value,
                                                       bool removed, std::string_view ok_if) {
    return [out, finish, w, action, prop, value, removed, ok_if](Result<void> r) {
      if (!r && !(!ok_if.empty() && error_is(r.error(), ok_if))) {
        Error e = r.error();  // "bluetooth bt-hci0: power_off (Set /org/bluez/hci0): why"
        e.what = action + " (" + e.what + ")";
        e.where = w;
        return out->set(std::unexpected(std::move(e)));
      }
      finish(prop, value, removed);
    };
  };

  if (adapter) {
    if (a == "power_on" || a == "power_off") {
      const bool on = a == "power_on";
      return client_->set_property_async(path, kAdapterIface, "Powered", on, timeout,
                                         on_done("Powered", on, false, ""));
    }
    if (a == "discovery_on") {
      return client_->call_async(path, kAdapterIface, "StartDiscovery", std::nullopt, timeout,
                                 on_done("Discovering", true, false, ""));
    }
    if (a == "discovery_off") {
      return client_->call_async(path, kAdapterIface, "StopDiscovery", std::nullopt, timeout,
                                 on_done("Discovering", false, false, ""));
    }
    return failed(Errc::failed_precondition,
                  "a Bluetooth adapter offers power_on, power_off, discovery_on, discovery_off");
  }

  if (a == "pair") {
    auto secrets = parse_pairing_params(req.params);
    if (!secrets)
      return failed(Errc::invalid_argument, secrets.error().what + " " + secrets.error().why);
    const bool has_secret = secrets->pin || secrets->passkey || secrets->confirm;
    if (!config_.pairing_agent && has_secret) {
      return failed(Errc::failed_precondition,
                    "the pairing agent is off ([bluetooth] pairing_agent = false): pin, passkey "
                    "and confirm cannot be used");
    }
    std::uint64_t token = 0;
    if (config_.pairing_agent) {
      token = agent_.begin(path, std::move(*secrets));
      if (token == 0) {
        return failed(Errc::failed_precondition,
                      "a pairing with this device is already in progress; try again when it ends");
      }
    }
    auto done = on_done("Paired", true, false, "org.bluez.Error.AlreadyExists");
    return client_->call_async(
        path, kDeviceIface, "Pair", std::nullopt, timeout,
        [this, path, token, timeout, done = std::move(done)](Result<void> r) mutable {
          // What the agent refused says what the device wanted.
          const std::string refusal = token ? agent_.end(path, token) : std::string();
          if (!r && no_answer(r.error()) && client_) {
            // No answer in time (only then: InProgress, for one, means a
            // pairing somebody else started): BlueZ may still be pairing.
            // Stop it, so a late pairing does not complete without its
            // secrets' owner.
            client_->call_async(path, kDeviceIface, "CancelPairing", std::nullopt, timeout,
                                [](Result<void>) {});
          }
          if (!r && !refusal.empty() && !error_is(r.error(), "org.bluez.Error.AlreadyExists")) {
            Error e = r.error();
            e.code = Errc::failed_precondition;
            e.why = refusal + " (BlueZ: " + e.why + ")";
            r = std::unexpected(std::move(e));
          }
          done(std::move(r));
        });
  }
  if (a == "trust" || a == "untrust") {
    const bool on = a == "trust";
    return client_->set_property_async(path, kDeviceIface, "Trusted", on, timeout,
                                       on_done("Trusted", on, false, ""));
  }
  if (a == "connect") {
    bool trusted = false;
    if (auto it = objects_.find(path); it != objects_.end()) {
      if (auto d = it->second.find(kDeviceIface); d != it->second.end()) {
        trusted = prop_bool(d->second, "Trusted").value_or(false);
      }
    }
    if (!trusted) return failed(Errc::failed_precondition, kNotTrusted);
    return client_->call_async(
        path, kDeviceIface, "Connect", std::nullopt, timeout,
        on_done("Connected", true, false, "org.bluez.Error.AlreadyConnected"));
  }
  if (a == "disconnect") {
    return client_->call_async(path, kDeviceIface, "Disconnect", std::nullopt, timeout,
                               on_done("Connected", false, false, "org.bluez.Error.NotConnected"));
  }
  if (a == "remove") {
    std::string adapter_path = parent_path(path);
    if (auto it = objects_.find(path); it != objects_.end()) {
      if (auto d = it->second.find(kDeviceIface); d != it->second.end()) {
        adapter_path = prop_string(d->second, "Adapter").value_or(adapter_path);
      }
    }
    return client_->call_async(adapter_path, kAdapterIface, "RemoveDevice", path, timeout,
                               on_done(nullptr, std::nullopt, true, ""));
  }
  failed(Errc::failed_precondition,
         "a Bluetooth device offers pair, trust, untrust, remove, connect, disconnect");
}

// --- self-test, devices, write --------------------------------------------------

std::vector<SelfTestResult> BluetoothDriver::self_test() {
  using Results = std::vector<SelfTestResult>;
  auto not_running = [&](std::string why) {
    return Results{SelfTestResult{config_.id_prefix, false, false, true, std::move(why)}};
  };
  if (!started_) return not_running("Bluetooth driver is not running");
  const milliseconds timeout(config_.call_timeout_ms);
  auto out = std::make_shared<Outcome<Results>>();
  if (!post([this, timeout, out] { run_self_test(timeout, out); })) {
    return not_running("Bluetooth driver is stopping");
  }
  if (auto r = out->wait_for(timeout + kHandoverMargin)) return std::move(*r);
  return not_running("Bluetooth driver thread did not answer");
}

void BluetoothDriver::run_self_test(
    milliseconds timeout, const std::shared_ptr<Outcome<std::vector<SelfTestResult>>>& out) {
  struct State {
    std::vector<SelfTestResult> results;
    std::size_t waiting = 0;
    std::shared_ptr<Outcome<std::vector<SelfTestResult>>> out;
  };
  auto st = std::make_shared<State>();
  st->out = out;
  std::vector<std::pair<std::size_t, std::string>> adapters;  // result index, path
  for (const auto& [id, t] : reported_) {
    if (!t.adapter) continue;
    adapters.emplace_back(st->results.size(), t.path);
    st->results.push_back(SelfTestResult{id, true, false, true, ""});
  }
  if (adapters.empty()) {
    st->results.push_back(
        SelfTestResult{config_.id_prefix, false, false, true,
                       "no Bluetooth adapter known to BlueZ" +
                           (bus_problem_.empty() ? std::string() : " (" + bus_problem_ + ")")});
  }
  for (const BtAddress& address : allow_->exact_addresses()) {
    const std::string id = config_.id_prefix + "-" + address.compact();
    SelfTestResult r{id, false, false, true, ""};
    if (auto t = reported_.find(id); t != reported_.end()) {
      r.present = r.responding = true;
      const auto& at = t->second.info.attributes;
      r.detail = "known to BlueZ (paired=" + at.at("paired") + ", trusted=" + at.at("trusted") +
                 ", connected=" + at.at("connected") + ")";
    } else {
      auto ref = std::find_if(refused_.begin(), refused_.end(),
                              [&](const auto& kv) { return kv.second.id == id; });
      if (ref != refused_.end()) {
        r.present = r.responding = true;
        r.identity_ok = false;
        r.detail = "known to BlueZ but refused: " + ref->second.reason;
      } else {
        r.detail = "address " + address.str() +
                   " is in allowed_addresses but not known to BlueZ (not paired, not in range)";
      }
    }
    st->results.push_back(std::move(r));
  }
  if (adapters.empty() || !client_) {
    for (auto& [i, path] : adapters) {
      st->results[i].detail = "not connected to the D-Bus bus: " + bus_problem_;
    }
    return out->set(std::move(st->results));
  }
  st->waiting = adapters.size();
  for (auto& [i, path] : adapters) {
    client_->get_property_async(
        path, kAdapterIface, "Powered", timeout, [st, i = i](Result<PropValue> r) {
          SelfTestResult& res = st->results[i];
          if (r) {
            const bool* on = std::get_if<bool>(&*r);
            res.responding = on != nullptr;
            res.detail = on ? (*on ? "powered on" : "powered off") : "Powered is not a boolean";
          } else {
            res.detail = r.error().message();
          }
          if (--st->waiting == 0) st->out->set(std::move(st->results));
        });
  }
}

std::vector<DeviceInfo> BluetoothDriver::devices() const {
  std::lock_guard lock(pub_mu_);
  return published_;
}

Result<std::size_t> BluetoothDriver::write(const std::string& device_id, std::string_view) {
  std::lock_guard lock(pub_mu_);
  const bool known = std::any_of(published_.begin(), published_.end(),
                                 [&](const DeviceInfo& d) { return d.id == device_id; });
  if (!known) return fail(Errc::not_found, where(), "write to " + device_id, "no such device");
  return fail(Errc::failed_precondition, where(), "write to " + device_id,
              "Bluetooth devices take no raw data; use their actions");
}

}  // namespace portier::drivers
