#include "bluetooth/bluez_client.h"

#include <systemd/sd-bus.h>
#include <time.h>

#include <cerrno>
#include <cstring>
#include <string_view>
#include <system_error>
#include <utility>

namespace portier::drivers {
namespace {

constexpr const char* kObjectManager = "org.freedesktop.DBus.ObjectManager";
constexpr const char* kPropertiesIface = "org.freedesktop.DBus.Properties";
constexpr const char* kWhere = "bluetooth D-Bus";
// How the reason of a call without an answer starts (see no_answer()).
const std::string kNoAnswer = "no answer from org.bluez within ";

std::string errno_text(int e) { return std::error_code(e, std::generic_category()).message(); }

Error errno_error(int negative_errno, const std::string& what) {
  const int e = -negative_errno;
  const Errc code = (e == ENOTCONN || e == ECONNRESET || e == ECONNREFUSED || e == ENOENT ||
                     e == ETIMEDOUT || e == EPIPE || e == ESHUTDOWN)
                        ? Errc::unavailable
                        : Errc::internal;
  return Error{code, kWhere, what, errno_text(e)};
}

Errc errc_for(std::string_view name) {
  static constexpr std::string_view kUnavailable[] = {
      "org.freedesktop.DBus.Error.NoReply",
      "org.freedesktop.DBus.Error.Timeout",
      "org.freedesktop.DBus.Error.TimedOut",
      "org.freedesktop.DBus.Error.ServiceUnknown",
      "org.freedesktop.DBus.Error.NameHasNoOwner",
      "org.freedesktop.DBus.Error.Disconnected",
      "org.freedesktop.DBus.Error.NoServer",
      "org.freedesktop.DBus.Error.NoNetwork",
      "org.bluez.Error.InProgress",
      "org.bluez.Error.NotAvailable",
      "org.bluez.Error.AuthenticationTimeout",
      "org.bluez.Error.ConnectionAttemptFailed",
  };
  static constexpr std::string_view kNotFound[] = {
      "org.freedesktop.DBus.Error.UnknownObject",
      "org.freedesktop.DBus.Error.UnknownInterface",
      "org.freedesktop.DBus.Error.UnknownMethod",
      "org.freedesktop.DBus.Error.UnknownProperty",
      "org.bluez.Error.DoesNotExist",
  };
  static constexpr std::string_view kInvalid[] = {
      "org.freedesktop.DBus.Error.InvalidArgs",
      "org.freedesktop.DBus.Error.InvalidSignature",
      "org.bluez.Error.InvalidArguments",
  };
  static constexpr std::string_view kExists[] = {
      "org.bluez.Error.AlreadyExists",
      "org.bluez.Error.AlreadyConnected",
  };
  static constexpr std::string_view kPrecondition[] = {
      "org.freedesktop.DBus.Error.AccessDenied",
      "org.freedesktop.DBus.Error.PropertyReadOnly",
      "org.bluez.Error.NotReady",
      "org.bluez.Error.NotConnected",
      "org.bluez.Error.NotSupported",
      "org.bluez.Error.NotAuthorized",
      "org.bluez.Error.NotPermitted",
      "org.bluez.Error.AuthenticationFailed",
      "org.bluez.Error.AuthenticationRejected",
      "org.bluez.Error.AuthenticationCanceled",
  };
  auto in = [&](const auto& list) {
    for (std::string_view n : list) {
      if (n == name) return true;
    }
    return false;
  };
  if (in(kUnavailable)) return Errc::unavailable;
  if (in(kNotFound)) return Errc::not_found;
  if (in(kInvalid)) return Errc::invalid_argument;
  if (in(kExists)) return Errc::already_exists;
  if (in(kPrecondition)) return Errc::failed_precondition;
  return Errc::io;
}

Error dbus_error(const sd_bus_error* e, const std::string& what,
                 std::chrono::milliseconds timeout) {
  const std::string name = e && e->name ? e->name : "org.freedesktop.DBus.Error.Failed";
  const std::string text = e && e->message ? e->message : "";
  const Errc code = errc_for(name);
  std::string why;
  if (name == "org.freedesktop.DBus.Error.NoReply" ||
      name == "org.freedesktop.DBus.Error.Timeout" ||
      name == "org.freedesktop.DBus.Error.TimedOut") {
    why = kNoAnswer + std::to_string(timeout.count()) + " ms (" + name +
          (text.empty() ? "" : ": " + text) + ")";
  } else if (name == "org.freedesktop.DBus.Error.ServiceUnknown" ||
             name == "org.freedesktop.DBus.Error.NameHasNoOwner") {
    why = "BlueZ (org.bluez) is not running on this bus (" + name + ")";
  } else {
    why = name + (text.empty() ? "" : ": " + text);
  }
  return Error{code, kWhere, what, why};
}

// --- reading messages -------------------------------------------------------

int read_variant(sd_bus_message* m, PropValue& out) {
  char type = 0;
  const char* contents = nullptr;
  int r = sd_bus_message_peek_type(m, &type, &contents);
  if (r <= 0) return r < 0 ? r : -EBADMSG;
  if (type != SD_BUS_TYPE_VARIANT || !contents) return -EBADMSG;
  if (std::strlen(contents) != 1) {
    out = std::monostate{};
    return sd_bus_message_skip(m, "v");
  }
  r = sd_bus_message_enter_container(m, SD_BUS_TYPE_VARIANT, contents);
  if (r < 0) return r;
  switch (contents[0]) {
    case SD_BUS_TYPE_BOOLEAN: {
      int b = 0;
      r = sd_bus_message_read_basic(m, SD_BUS_TYPE_BOOLEAN, &b);
      out = b != 0;
      break;
    }
    case SD_BUS_TYPE_BYTE: {
      std::uint8_t v = 0;
      r = sd_bus_message_read_basic(m, SD_BUS_TYPE_BYTE, &v);
      out = static_cast<std::int64_t>(v);
      break;
    }
    case SD_BUS_TYPE_INT16: {
      std::int16_t v = 0;
      r = sd_bus_message_read_basic(m, SD_BUS_TYPE_INT16, &v);
      out = static_cast<std::int64_t>(v);
      break;
    }
    case SD_BUS_TYPE_UINT16: {
      std::uint16_t v = 0;
      r = sd_bus_message_read_basic(m, SD_BUS_TYPE_UINT16, &v);
      out = static_cast<std::int64_t>(v);
      break;
    }
    case SD_BUS_TYPE_INT32: {
      std::int32_t v = 0;
      r = sd_bus_message_read_basic(m, SD_BUS_TYPE_INT32, &v);
      out = static_cast<std::int64_t>(v);
      break;
    }
    case SD_BUS_TYPE_UINT32: {
      std::uint32_t v = 0;
      r = sd_bus_message_read_basic(m, SD_BUS_TYPE_UINT32, &v);
      out = static_cast<std::int64_t>(v);
      break;
    }
    case SD_BUS_TYPE_INT64: {
      std::int64_t v = 0;
      r = sd_bus_message_read_basic(m, SD_BUS_TYPE_INT64, &v);
      out = v;
      break;
    }
    case SD_BUS_TYPE_UINT64: {
      std::uint64_t v = 0;
      r = sd_bus_message_read_basic(m, SD_BUS_TYPE_UINT64, &v);
      out = static_cast<std::int64_t>(v);
      break;
    }
    case SD_BUS_TYPE_STRING:
    case SD_BUS_TYPE_OBJECT_PATH:
    case SD_BUS_TYPE_SIGNATURE: {
      const char* s = nullptr;
      r = sd_bus_message_read_basic(m, contents[0], &s);
      out = std::string(s ? s : "");
      break;
    }
    default:
      out = std::monostate{};
      r = sd_bus_message_skip(m, contents);
      break;
  }
  if (r < 0) return r;
  return sd_bus_message_exit_container(m);
}

int read_properties(sd_bus_message* m, Properties& out) {
  int r = sd_bus_message_enter_container(m, SD_BUS_TYPE_ARRAY, "{sv}");
  if (r < 0) return r;
  while ((r = sd_bus_message_enter_container(m, SD_BUS_TYPE_DICT_ENTRY, "sv")) > 0) {
    const char* name = nullptr;
    if ((r = sd_bus_message_read_basic(m, SD_BUS_TYPE_STRING, &name)) < 0) return r;
    PropValue v;
    if ((r = read_variant(m, v)) < 0) return r;
    out[name ? name : ""] = std::move(v);
    if ((r = sd_bus_message_exit_container(m)) < 0) return r;
  }
  if (r < 0) return r;
  return sd_bus_message_exit_container(m);
}

int read_interfaces(sd_bus_message* m, InterfaceMap& out) {
  int r = sd_bus_message_enter_container(m, SD_BUS_TYPE_ARRAY, "{sa{sv}}");
  if (r < 0) return r;
  while ((r = sd_bus_message_enter_container(m, SD_BUS_TYPE_DICT_ENTRY, "sa{sv}")) > 0) {
    const char* name = nullptr;
    if ((r = sd_bus_message_read_basic(m, SD_BUS_TYPE_STRING, &name)) < 0) return r;
    Properties props;
    if ((r = read_properties(m, props)) < 0) return r;
    out[name ? name : ""] = std::move(props);
    if ((r = sd_bus_message_exit_container(m)) < 0) return r;
  }
  if (r < 0) return r;
  return sd_bus_message_exit_container(m);
}

int read_managed_objects(sd_bus_message* m, ManagedObjects& out) {
  int r = sd_bus_message_enter_container(m, SD_BUS_TYPE_ARRAY, "{oa{sa{sv}}}");
  if (r < 0) return r;
  while ((r = sd_bus_message_enter_container(m, SD_BUS_TYPE_DICT_ENTRY, "oa{sa{sv}}")) > 0) {
    const char* path = nullptr;
    if ((r = sd_bus_message_read_basic(m, SD_BUS_TYPE_OBJECT_PATH, &path)) < 0) return r;
    InterfaceMap ifaces;
    if ((r = read_interfaces(m, ifaces)) < 0) return r;
    out[path ? path : ""] = std::move(ifaces);
    if ((r = sd_bus_message_exit_container(m)) < 0) return r;
  }
  if (r < 0) return r;
  return sd_bus_message_exit_container(m);
}

int read_strings(sd_bus_message* m, std::vector<std::string>& out) {
  int r = sd_bus_message_enter_container(m, SD_BUS_TYPE_ARRAY, "s");
  if (r < 0) return r;
  const char* s = nullptr;
  while ((r = sd_bus_message_read_basic(m, SD_BUS_TYPE_STRING, &s)) > 0) out.emplace_back(s);
  if (r < 0) return r;
  return sd_bus_message_exit_container(m);
}

Error bad_message(const std::string& what, int r) {
  return Error{Errc::io, kWhere, what, "malformed reply from org.bluez: " + errno_text(-r)};
}

std::uint64_t to_usec(std::chrono::milliseconds ms) {
  return static_cast<std::uint64_t>(ms.count() > 0 ? ms.count() : 1) * 1000u;
}

}  // namespace

// One asynchronous call in flight. Owned by its (floating) sd-bus slot:
// deleted when the slot goes, after the reply or when the bus is freed.
struct BluezClient::Call {
  std::function<void(Result<sd_bus_message*>)> on_reply;
  std::string what;
  std::chrono::milliseconds timeout{0};
  bool done = false;

  void finish(Result<sd_bus_message*> r) {
    if (done) return;
    done = true;
    try {
      on_reply(std::move(r));
    } catch (...) {
      // Callbacks must not throw through C; nothing sensible to do here.
    }
  }
  static int reply(sd_bus_message* m, void* userdata, sd_bus_error*) {
    auto* c = static_cast<Call*>(userdata);
    if (const sd_bus_error* e = sd_bus_message_get_error(m)) {
      c->finish(std::unexpected(dbus_error(e, c->what, c->timeout)));
    } else {
      c->finish(m);
    }
    return 0;
  }
  static void destroy(void* userdata) {
    auto* c = static_cast<Call*>(userdata);
    c->finish(
        std::unexpected(Error{Errc::unavailable, kWhere, c->what, "connection to the bus closed"}));
    delete c;
  }
};

struct SignalDispatch {
  static int run(sd_bus_message* m, void* userdata, sd_bus_error*) {
    auto* self = static_cast<BluezClient*>(userdata);
    if (!self->handler_) return 0;
    BluezSignal s;
    const char* member = sd_bus_message_get_member(m);
    const std::string_view mem = member ? member : "";
    int r = 0;
    if (mem == "InterfacesAdded") {
      s.kind = BluezSignal::Kind::interfaces_added;
      const char* path = nullptr;
      if ((r = sd_bus_message_read_basic(m, SD_BUS_TYPE_OBJECT_PATH, &path)) < 0) return 0;
      s.path = path ? path : "";
      if (read_interfaces(m, s.interfaces) < 0) return 0;
    } else if (mem == "InterfacesRemoved") {
      s.kind = BluezSignal::Kind::interfaces_removed;
      const char* path = nullptr;
      if ((r = sd_bus_message_read_basic(m, SD_BUS_TYPE_OBJECT_PATH, &path)) < 0) return 0;
      s.path = path ? path : "";
      if (read_strings(m, s.names) < 0) return 0;
    } else if (mem == "PropertiesChanged") {
      s.kind = BluezSignal::Kind::properties_changed;
      const char* path = sd_bus_message_get_path(m);
      s.path = path ? path : "";
      const char* iface = nullptr;
      if ((r = sd_bus_message_read_basic(m, SD_BUS_TYPE_STRING, &iface)) < 0) return 0;
      s.interface = iface ? iface : "";
      if (read_properties(m, s.changed) < 0) return 0;
      if (read_strings(m, s.names) < 0) return 0;
    } else if (mem == "NameOwnerChanged") {
      s.kind = BluezSignal::Kind::service_changed;
      const char *name = nullptr, *old_owner = nullptr, *new_owner = nullptr;
      if (sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) < 0) return 0;
      if (!name || std::string_view(name) != BluezClient::kService) return 0;
      s.service_present = new_owner && *new_owner;
    } else {
      return 0;
    }
    try {
      self->handler_(s);
    } catch (...) {
    }
    return 0;
  }
};

BluezClient::BluezClient(sd_bus* bus, std::chrono::milliseconds call_timeout)
    : bus_(bus), call_timeout_(call_timeout) {}

BluezClient::~BluezClient() {
  for (sd_bus_slot* s : matches_) sd_bus_slot_unref(s);
  matches_.clear();
  drop_agent();
  // Frees the bus (nothing else references it); floating call slots are
  // destroyed with it and report "connection closed" to their callbacks.
  if (bus_) sd_bus_close_unref(bus_);
}

Result<std::unique_ptr<BluezClient>> BluezClient::connect(const std::string& bus_name,
                                                          std::chrono::milliseconds call_timeout,
                                                          bool wait_ready) {
  sd_bus* bus = nullptr;
  int r = 0;
  const std::string what = "connect to the " + bus_name + " bus";
  if (bus_name == "system") {
    r = sd_bus_open_system(&bus);
  } else if (bus_name == "session") {
    r = sd_bus_open_user(&bus);
  } else {
    r = sd_bus_new(&bus);
    if (r >= 0) r = sd_bus_set_address(bus, bus_name.c_str());
    if (r >= 0) r = sd_bus_set_bus_client(bus, 1);
    if (r >= 0) r = sd_bus_start(bus);
  }
  if (r < 0) {
    if (bus) sd_bus_close_unref(bus);
    Error e = errno_error(r, what);
    if (-r == EINVAL) e.code = Errc::invalid_argument;
    if (-r == ENOENT || -r == ECONNREFUSED || -r == EACCES) e.code = Errc::unavailable;
    return std::unexpected(std::move(e));
  }
  std::unique_ptr<BluezClient> client(new BluezClient(bus, call_timeout));
  sd_bus_set_method_call_timeout(bus, to_usec(call_timeout));
  if (!wait_ready) return client;
  // Waits for the bus daemon's answer to Hello.
  const char* unique = nullptr;
  r = sd_bus_get_unique_name(bus, &unique);
  if (r < 0) {
    Error e = errno_error(r, what);
    e.code = Errc::unavailable;
    return std::unexpected(std::move(e));
  }
  return client;
}

Result<void> BluezClient::add_match(const char* rule) {
  sd_bus_slot* slot = nullptr;
  const int r = sd_bus_add_match_async(bus_, &slot, rule, &SignalDispatch::run, nullptr, this);
  if (r < 0) {
    Error e = errno_error(r, "subscribe to BlueZ signals");
    e.code = Errc::unavailable;
    return std::unexpected(std::move(e));
  }
  matches_.push_back(slot);
  return {};
}

Result<void> BluezClient::subscribe(SignalHandler handler) {
  handler_ = std::move(handler);
  const char* rules[] = {
      "type='signal',sender='org.bluez',path='/',"
      "interface='org.freedesktop.DBus.ObjectManager',member='InterfacesAdded'",
      "type='signal',sender='org.bluez',path='/',"
      "interface='org.freedesktop.DBus.ObjectManager',member='InterfacesRemoved'",
      "type='signal',sender='org.bluez',interface='org.freedesktop.DBus.Properties',"
      "member='PropertiesChanged',path_namespace='/org/bluez'",
      "type='signal',sender='org.freedesktop.DBus',path='/org/freedesktop/DBus',"
      "interface='org.freedesktop.DBus',member='NameOwnerChanged',arg0='org.bluez'",
  };
  for (const char* rule : rules) {
    if (auto r = add_match(rule); !r) return r;
  }
  return {};
}

Result<ManagedObjects> BluezClient::get_managed_objects() {
  sd_bus_message* reply = nullptr;
  sd_bus_error error = SD_BUS_ERROR_NULL;
  const std::string what = "GetManagedObjects";
  int r = sd_bus_call_method(bus_, kService, "/", kObjectManager, "GetManagedObjects", &error,
                             &reply, "");
  if (r < 0) {
    Error e = sd_bus_error_is_set(&error) ? dbus_error(&error, what, call_timeout_)
                                          : errno_error(r, what);
    sd_bus_error_free(&error);
    return std::unexpected(std::move(e));
  }
  ManagedObjects objects;
  r = read_managed_objects(reply, objects);
  sd_bus_message_unref(reply);
  if (r < 0) return std::unexpected(bad_message(what, r));
  return objects;
}

void BluezClient::send(sd_bus_message* m, std::chrono::milliseconds timeout,
                       std::function<void(Result<sd_bus_message*>)> on_reply) {
  if (timeout.count() <= 0) timeout = call_timeout_;
  auto* call = new Call{std::move(on_reply), "", timeout};
  const char* member = sd_bus_message_get_member(m);
  const char* path = sd_bus_message_get_path(m);
  call->what = std::string(member ? member : "call") + " " + (path ? path : "");
  sd_bus_slot* slot = nullptr;
  const int r = sd_bus_call_async(bus_, &slot, m, &Call::reply, call, to_usec(timeout));
  sd_bus_message_unref(m);
  if (r < 0) {
    Error e = errno_error(r, call->what);
    e.code = Errc::unavailable;
    call->finish(std::unexpected(std::move(e)));
    delete call;
    return;
  }
  sd_bus_slot_set_destroy_callback(slot, &Call::destroy);
  sd_bus_slot_set_floating(slot, 1);  // the bus owns it now
  sd_bus_slot_unref(slot);
}

namespace {

template <class T>
using Cb = BluezClient::Callback<T>;

sd_bus_message* new_call(sd_bus* bus, const std::string& path, const char* iface,
                         const char* method, int& r) {
  sd_bus_message* m = nullptr;
  r = sd_bus_message_new_method_call(bus, &m, BluezClient::kService, path.c_str(), iface, method);
  return r < 0 ? nullptr : m;
}

Error build_error(int r, const std::string& what) {
  return Error{Errc::internal, kWhere, what, "cannot build message: " + errno_text(-r)};
}

}  // namespace

void BluezClient::get_managed_objects_async(Callback<ManagedObjects> cb) {
  int r = 0;
  sd_bus_message* m = new_call(bus_, "/", kObjectManager, "GetManagedObjects", r);
  if (!m) return cb(std::unexpected(build_error(r, "GetManagedObjects")));
  send(m, call_timeout_, [cb = std::move(cb)](Result<sd_bus_message*> reply) {
    if (!reply) return cb(std::unexpected(std::move(reply.error())));
    ManagedObjects objects;
    const int r = read_managed_objects(*reply, objects);
    if (r < 0) return cb(std::unexpected(bad_message("GetManagedObjects", r)));
    cb(std::move(objects));
  });
}

void BluezClient::call_async(const std::string& path, const std::string& interface,
                             const std::string& method, std::optional<std::string> path_arg,
                             std::chrono::milliseconds timeout, Callback<void> cb) {
  int r = 0;
  sd_bus_message* m = new_call(bus_, path, interface.c_str(), method.c_str(), r);
  if (m && path_arg) r = sd_bus_message_append_basic(m, SD_BUS_TYPE_OBJECT_PATH, path_arg->c_str());
  if (!m || r < 0) {
    if (m) sd_bus_message_unref(m);
    return cb(std::unexpected(build_error(r, method + " " + path)));
  }
  send(m, timeout, [cb = std::move(cb)](Result<sd_bus_message*> reply) {
    if (!reply) return cb(std::unexpected(std::move(reply.error())));
    cb({});
  });
}

void BluezClient::get_property_async(const std::string& path, const std::string& interface,
                                     const std::string& name, std::chrono::milliseconds timeout,
                                     Callback<PropValue> cb) {
  int r = 0;
  sd_bus_message* m = new_call(bus_, path, kPropertiesIface, "Get", r);
  if (m) r = sd_bus_message_append(m, "ss", interface.c_str(), name.c_str());
  if (!m || r < 0) {
    if (m) sd_bus_message_unref(m);
    return cb(std::unexpected(build_error(r, "Get " + name + " " + path)));
  }
  send(m, timeout, [cb = std::move(cb), name](Result<sd_bus_message*> reply) {
    if (!reply) return cb(std::unexpected(std::move(reply.error())));
    PropValue v;
    const int r = read_variant(*reply, v);
    if (r < 0) return cb(std::unexpected(bad_message("Get " + name, r)));
    cb(std::move(v));
  });
}

void BluezClient::set_property_async(const std::string& path, const std::string& interface,
                                     const std::string& name, const PropValue& value,
                                     std::chrono::milliseconds timeout, Callback<void> cb) {
  int r = 0;
  sd_bus_message* m = new_call(bus_, path, kPropertiesIface, "Set", r);
  if (m) r = sd_bus_message_append(m, "ss", interface.c_str(), name.c_str());
  if (m && r >= 0) {
    if (auto* b = std::get_if<bool>(&value)) {
      r = sd_bus_message_append(m, "v", "b", static_cast<int>(*b));
    } else if (auto* s = std::get_if<std::string>(&value)) {
      r = sd_bus_message_append(m, "v", "s", s->c_str());
    } else {
      r = -EINVAL;
    }
  }
  if (!m || r < 0) {
    if (m) sd_bus_message_unref(m);
    return cb(std::unexpected(build_error(r, "Set " + name + " " + path)));
  }
  send(m, timeout, [cb = std::move(cb)](Result<sd_bus_message*> reply) {
    if (!reply) return cb(std::unexpected(std::move(reply.error())));
    cb({});
  });
}

int BluezClient::fd() const { return sd_bus_get_fd(bus_); }

short BluezClient::events() const {
  const int e = sd_bus_get_events(bus_);
  return static_cast<short>(e < 0 ? 0 : e);
}

int BluezClient::poll_timeout_ms() const {
  std::uint64_t until = 0;
  if (sd_bus_get_timeout(bus_, &until) <= 0 || until == UINT64_MAX) return -1;
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  const std::uint64_t now = static_cast<std::uint64_t>(ts.tv_sec) * 1000000u +
                            static_cast<std::uint64_t>(ts.tv_nsec) / 1000u;
  if (until <= now) return 0;
  const std::uint64_t ms = (until - now + 999) / 1000;
  return ms > 60000 ? 60000 : static_cast<int>(ms);
}

Result<void> BluezClient::process(int max_messages) {
  for (int i = 0; i < max_messages; ++i) {
    const int r = sd_bus_process(bus_, nullptr);
    if (r < 0) {
      Error e = errno_error(r, "connection to the bus");
      e.code = Errc::unavailable;
      e.why = "lost: " + e.why;
      return std::unexpected(std::move(e));
    }
    if (r == 0) break;
  }
  if (!sd_bus_is_open(bus_)) {
    return fail(Errc::unavailable, kWhere, "connection to the bus", "lost");
  }
  return {};
}

bool no_answer(const Error& e) { return e.why.starts_with(kNoAnswer); }

std::optional<bool> prop_bool(const Properties& p, const std::string& name) {
  auto it = p.find(name);
  if (it == p.end()) return std::nullopt;
  if (auto* b = std::get_if<bool>(&it->second)) return *b;
  return std::nullopt;
}

std::optional<std::int64_t> prop_int(const Properties& p, const std::string& name) {
  auto it = p.find(name);
  if (it == p.end()) return std::nullopt;
  if (auto* v = std::get_if<std::int64_t>(&it->second)) return *v;
  return std::nullopt;
}

std::optional<std::string> prop_string(const Properties& p, const std::string& name) {
  auto it = p.find(name);
  if (it == p.end()) return std::nullopt;
  if (auto* v = std::get_if<std::string>(&it->second)) return *v;
  return std::nullopt;
}

}  // namespace portier::drivers
