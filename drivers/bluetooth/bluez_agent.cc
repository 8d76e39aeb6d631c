// BluezClient's pairing agent: org.bluez.Agent1 served with an sd-bus vtable.
#include <systemd/sd-bus.h>

#include <cstring>
#include <string>

#include "bluez_client.h"

namespace portier::drivers {

namespace {

constexpr const char* kAgentIface = "org.bluez.Agent1";
constexpr const char* kAgentManagerIface = "org.bluez.AgentManager1";

// The unique name owning org.bluez now, asked of the bus daemon.
std::string bluez_owner(sd_bus* bus, std::chrono::milliseconds timeout) {
  sd_bus_message* m = nullptr;
  sd_bus_message* reply = nullptr;
  std::string owner;
  if (sd_bus_message_new_method_call(bus, &m, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                     "org.freedesktop.DBus", "GetNameOwner") < 0) {
    return owner;
  }
  if (sd_bus_message_append(m, "s", BluezClient::kService) >= 0 &&
      sd_bus_call(bus, m, static_cast<std::uint64_t>(timeout.count()) * 1000, nullptr, &reply) >=
          0) {
    const char* name = nullptr;
    if (sd_bus_message_read(reply, "s", &name) >= 0 && name) owner = name;
  }
  sd_bus_message_unref(reply);
  sd_bus_message_unref(m);
  return owner;
}

AgentRequest::Kind kind_of(std::string_view member) {
  using K = AgentRequest::Kind;
  if (member == "Release") return K::release;
  if (member == "RequestPinCode") return K::request_pin_code;
  if (member == "DisplayPinCode") return K::display_pin_code;
  if (member == "RequestPasskey") return K::request_passkey;
  if (member == "DisplayPasskey") return K::display_passkey;
  if (member == "RequestConfirmation") return K::request_confirmation;
  if (member == "RequestAuthorization") return K::request_authorization;
  if (member == "AuthorizeService") return K::authorize_service;
  return K::cancel;
}

}  // namespace

struct AgentDispatch {
  static int method(sd_bus_message* m, void* userdata, sd_bus_error*) {
    auto* self = static_cast<BluezClient*>(userdata);
    BluezClient::Agent* agent = self->agent_.get();
    const char* sender = sd_bus_message_get_sender(m);
    if (!agent || !sender || bluez_owner(self->bus_, agent->timeout) != sender) {
      return sd_bus_reply_method_errorf(m, "org.bluez.Error.Rejected",
                                        "only BlueZ may use this agent");
    }
    const char* member = sd_bus_message_get_member(m);
    AgentRequest q;
    q.kind = kind_of(member ? member : "");
    using K = AgentRequest::Kind;
    const char* path = nullptr;
    const char* text = nullptr;
    std::uint32_t passkey = 0;
    std::uint16_t entered = 0;
    int r = 0;
    switch (q.kind) {
      case K::request_pin_code:
      case K::request_passkey:
      case K::request_authorization:
        r = sd_bus_message_read(m, "o", &path);
        break;
      case K::display_pin_code:
        r = sd_bus_message_read(m, "os", &path, &text);
        break;
      case K::authorize_service:
        r = sd_bus_message_read(m, "os", &path, &text);
        break;
      case K::display_passkey:
        r = sd_bus_message_read(m, "ouq", &path, &passkey, &entered);
        break;
      case K::request_confirmation:
        r = sd_bus_message_read(m, "ou", &path, &passkey);
        break;
      case K::release:
      case K::cancel:
        break;
    }
    if (r < 0) {
      return sd_bus_reply_method_errorf(m, "org.bluez.Error.InvalidArguments",
                                        "malformed %s request", member ? member : "agent");
    }
    q.device = path ? path : "";
    q.passkey = passkey;
    if (q.kind == K::display_pin_code) q.pin = text ? text : "";
    if (q.kind == K::authorize_service) q.uuid = text ? text : "";
    AgentReply a;
    try {
      a = agent->handler(q);
    } catch (...) {
      a.ok = false;
      a.error = "org.bluez.Error.Rejected";
      a.message = "the agent failed";
    }
    if (!a.ok) return sd_bus_reply_method_errorf(m, a.error.c_str(), "%s", a.message.c_str());
    if (q.kind == K::request_pin_code) return sd_bus_reply_method_return(m, "s", a.pin.c_str());
    if (q.kind == K::request_passkey) return sd_bus_reply_method_return(m, "u", a.passkey);
    return sd_bus_reply_method_return(m, "");
  }
};

namespace {

const sd_bus_vtable kAgentVtable[] = {
    SD_BUS_VTABLE_START(0),
    SD_BUS_METHOD("Release", "", "", AgentDispatch::method, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD("RequestPinCode", "o", "s", AgentDispatch::method, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD("DisplayPinCode", "os", "", AgentDispatch::method, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD("RequestPasskey", "o", "u", AgentDispatch::method, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD("DisplayPasskey", "ouq", "", AgentDispatch::method, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD("RequestConfirmation", "ou", "", AgentDispatch::method,
                  SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD("RequestAuthorization", "o", "", AgentDispatch::method,
                  SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD("AuthorizeService", "os", "", AgentDispatch::method, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD("Cancel", "", "", AgentDispatch::method, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_VTABLE_END};

}  // namespace

Result<void> BluezClient::export_agent(const std::string& path, AgentHandler handler) {
  drop_agent();
  auto agent = std::make_unique<Agent>();
  agent->handler = std::move(handler);
  agent->timeout = call_timeout_;
  const int r =
      sd_bus_add_object_vtable(bus_, &agent->slot, path.c_str(), kAgentIface, kAgentVtable, this);
  if (r < 0) {
    return fail(Errc::internal, "bluetooth D-Bus", "export agent " + path,
                std::string("sd_bus_add_object_vtable: ") + std::strerror(-r));
  }
  agent_ = std::move(agent);
  return {};
}

void BluezClient::drop_agent() {
  if (agent_ && agent_->slot) sd_bus_slot_unref(agent_->slot);
  agent_.reset();
}

void BluezClient::register_agent_async(const std::string& path, const std::string& capability,
                                       std::chrono::milliseconds timeout, Callback<void> cb) {
  sd_bus_message* m = nullptr;
  int r = sd_bus_message_new_method_call(bus_, &m, kService, "/org/bluez", kAgentManagerIface,
                                         "RegisterAgent");
  if (r >= 0) r = sd_bus_message_append(m, "os", path.c_str(), capability.c_str());
  if (r < 0) {
    if (m) sd_bus_message_unref(m);
    return cb(fail(Errc::internal, "bluetooth D-Bus", "RegisterAgent",
                   std::string("cannot build message: ") + std::strerror(-r)));
  }
  // Registered already (an earlier attempt whose RequestDefaultAgent failed):
  // still ask to be the default.
  send(m, timeout,
       [this, path, timeout, cb = std::move(cb)](Result<sd_bus_message*> reply) mutable {
         if (!reply && !reply.error().why.starts_with("org.bluez.Error.AlreadyExists")) {
           return cb(std::unexpected(std::move(reply.error())));
         }
         call_async("/org/bluez", kAgentManagerIface, "RequestDefaultAgent", path, timeout,
                    std::move(cb));
       });
}

}  // namespace portier::drivers
