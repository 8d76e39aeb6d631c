#include "device_actions.h"

#include "common/audit_events.h"
#include "quoted.h"

namespace portier::gateway {
namespace {

constexpr std::size_t kMaxSend = 4096;

// What a driver's failure tells the app: the codes that say something about
// the request, and "unavailable" for everything else. A driver's
// already_exists (BlueZ's AlreadyConnected) must not read as the API's
// ALREADY_EXISTS, which means "claimed by another app".
Errc app_facing(Errc code) {
  switch (code) {
    case Errc::invalid_argument:
    case Errc::not_found:
    case Errc::permission_denied:
    case Errc::failed_precondition:
    case Errc::resource_exhausted:
    case Errc::internal:
      return code;
    default:
      return Errc::unavailable;
  }
}

}  // namespace

Result<std::uint64_t> DeviceActions::send(Connection& conn, const std::string& device_id,
                                          const std::string& data) {
  if (data.size() > kMaxSend) {
    return fail_msg(Errc::invalid_argument,
                    "send at most " + std::to_string(kMaxSend) + " bytes at a time");
  }
  auto grant = hub_.authorize(conn, device_id, "");
  if (!grant) return std::unexpected(grant.error());
  if (!grant->driver) {
    return fail_msg(Errc::failed_precondition, quoted(device_id) + " does not accept data");
  }
  auto r = grant->driver->write(device_id, data);
  if (!r) return fail_msg(Errc::unavailable, r.error().message());
  return *r;
}

Result<drivers::ActionResult> DeviceActions::act(Connection& conn,
                                                 const drivers::ActionRequest& request) {
  const auto& device_id = request.device_id;
  auto grant = hub_.authorize(conn, device_id, request.action);
  if (!grant) return std::unexpected(grant.error());
  if (!grant->driver) return fail_msg(Errc::failed_precondition, "device has no driver");
  const auto& decision = grant->decision;
  // Every denial and failure is audited; of the allowed actions, all but the
  // high-volume APDU exchange, and those only run once their record is on disk.
  if (grant->op != policy::Op::transmit) {
    auto e = AccessDecider::decision_entry(&conn, decision.app, device_id, grant->op, decision, "");
    if (auto ok = hub_.access().record_allow(e, request.action + " on " + quoted(device_id)); !ok) {
      return std::unexpected(ok.error());
    }
  }
  auto r = grant->driver->act(request);
  if (!r) {
    // Failed conversions are audited with the source and the reason
    // (never the payload).
    audit_.record(audit::action_failed(&conn.caller(), decision.app, device_id,
                                       std::string(policy::op_name(grant->op)),
                                       request.action + ": " + r.error().message()));
    return fail_msg(app_facing(r.error().code), r.error().message());
  }
  return r;
}

}  // namespace portier::gateway
