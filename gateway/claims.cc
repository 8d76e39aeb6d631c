#include "claims.h"

#include "common/audit_events.h"
#include "quoted.h"

namespace portier::gateway {
namespace {

Error not_held(const std::string& lease_id) {
  return fail_msg(Errc::not_found, "no lease " + quoted(lease_id) +
                                       " held by this connection (expired or released?)")
      .error();
}

}  // namespace

Result<void> Claims::check_seconds(std::uint32_t seconds) const {
  if (seconds == 0 || seconds > max_seconds_) {
    return fail_msg(Errc::invalid_argument,
                    "lease seconds must be 1.." + std::to_string(max_seconds_));
  }
  return {};
}

Result<Lease> Claims::claim(std::unique_lock<std::mutex>& lock,
                            const std::shared_ptr<Connection>& conn, const std::string& device_id,
                            std::uint32_t seconds, const PolicySnapshot& snap) {
  auto a = p_.access.check(*conn, p_.registry.find(device_id), device_id, policy::Op::claim, snap);
  if (!a.ok()) return std::unexpected(a.status.error());
  if (auto* holder = p_.leases.holder(device_id)) {
    std::string who = holder->app.empty() ? "an undeclared app" : "app '" + holder->app + "'";
    if (holder->conn_id == conn->id) who = "this connection";
    const auto& d = a.decision;
    p_.audit.record(
        audit::claim_held(&conn->caller(), d.app, device_id, {d.rule, d.line, d.source}, who));
    return fail_msg(Errc::already_exists, quoted(device_id) + " is claimed by " + who + " for " +
                                              std::to_string(p_.leases.seconds_left(*holder)) +
                                              " more seconds; retry later");
  }
  if (resets_.pending(device_id)) {
    // The last holder's card session (verified PIN, selected applet) is
    // still being cleared: nobody gets the card before that is done.
    const auto& d = a.decision;
    p_.audit.record(audit::claim_refused(&conn->caller(), d.app, device_id,
                                         {d.rule, d.line, d.source}, "card reset under way"));
    return fail_msg(Errc::unavailable,
                    quoted(device_id) + " is being reset after its last lease; retry shortly");
  }
  // The lease is held (no one else can take the device) while its record is
  // written; a claim whose record cannot be written is taken back, refused.
  auto lease = p_.leases.grant(device_id, conn->id, conn, a.decision.app, seconds);
  if (!lease) return lease;
  auto e = AccessDecider::decision_entry(conn.get(), a.decision.app, device_id, policy::Op::claim,
                                         a.decision, "lease " + std::to_string(seconds) + "s");
  lock.unlock();
  auto recorded = p_.access.record_allow(e, "claim of " + quoted(device_id));
  lock.lock();
  auto* held = p_.leases.holder(device_id);
  const bool still_ours = held && held->lease_id == lease->lease_id;
  if (!recorded) {
    if (still_ours) p_.leases.remove(device_id);
    return std::unexpected(recorded.error());
  }
  if (!still_ours) {
    return fail_msg(Errc::aborted,
                    "the claim of " + quoted(device_id) + " ended while it was recorded");
  }
  // Subscribers of other connections stop receiving this device's events;
  // tell them through the device's claimed_by.
  if (auto* dev = p_.registry.find(device_id)) p_.changes.notify(*dev, ChangeKind::state_changed);
  return lease;
}

Result<Lease> Claims::renew(std::unique_lock<std::mutex>& lock, Connection& conn,
                            const std::string& lease_id, std::uint32_t seconds,
                            const PolicySnapshot& snap) {
  auto* l = p_.leases.find(lease_id, conn.id);
  if (!l) return std::unexpected(not_held(lease_id));
  const std::string device_id = l->device_id;
  // A renewal is a claim again: decided by policy and the health gate now,
  // and audited like a claim (a lease cannot outlive the rights it needs).
  auto a = p_.access.check(conn, p_.registry.find(device_id), device_id, policy::Op::claim, snap);
  if (!a.ok()) {
    end({device_id}, audit::lease_revoked, "renewal refused: " + a.status.error().message());
    return std::unexpected(a.status.error());
  }
  auto e =
      AccessDecider::decision_entry(&conn, a.decision.app, device_id, policy::Op::claim, a.decision,
                                    "lease renewed " + std::to_string(seconds) + "s");
  lock.unlock();
  auto recorded = p_.access.record_allow(e, "renewal of " + quoted(device_id));
  lock.lock();
  if (!recorded) return std::unexpected(recorded.error());  // it runs out as it would have
  auto renewed = p_.leases.renew(lease_id, conn.id, seconds);
  if (!renewed) return std::unexpected(not_held(lease_id));
  return renewed;
}

Result<void> Claims::release(Connection& conn, const std::string& lease_id) {
  auto* l = p_.leases.find(lease_id, conn.id);
  if (!l) return std::unexpected(not_held(lease_id));
  end({l->device_id}, audit::lease_released, "released by holder");
  return {};
}

void Claims::end(const std::vector<std::string>& devices, LeaseEndRecord record,
                 const std::string& reason) {
  for (auto& device_id : devices) {
    auto lease = p_.leases.remove(device_id);
    if (!lease) continue;
    auto conn = lease->conn.lock();
    p_.audit.record(record(conn ? &conn->caller() : nullptr, lease->app, device_id, reason));
    if (auto* dev = p_.registry.find(device_id)) {
      p_.changes.notify(*dev, ChangeKind::state_changed);
      if (dev->has_action("reset") && dev->driver) resets_.after_lease(*dev->driver, device_id);
    }
  }
}

void Claims::revoke_disallowed(const PolicySnapshot& snap) {
  std::vector<std::string> revoked;
  for (auto& dev_id : p_.leases.devices()) {
    auto conn = p_.leases.holder(dev_id)->conn.lock();
    auto* dev = p_.registry.find(dev_id);
    if (!conn || !dev || !p_.access.decide(*conn, *dev, policy::Op::claim, snap).allow) {
      revoked.push_back(dev_id);
    }
  }
  end(revoked, audit::lease_revoked, "the new policy no longer allows the claim");
}

void Claims::revoke_gated(const PolicySnapshot& snap) {
  std::vector<std::pair<std::string, std::string>> gated;
  for (auto& dev_id : p_.leases.devices()) {
    auto conn = p_.leases.holder(dev_id)->conn.lock();
    auto* dev = p_.registry.find(dev_id);
    if (!conn || !dev) continue;
    auto d = p_.access.decide(*conn, *dev, policy::Op::claim, snap);
    if (!d.allow) continue;  // revoke_disallowed handles those
    if (auto why = p_.access.health_gate(*dev, policy::Op::claim, d); !why.empty()) {
      gated.emplace_back(dev_id, why);
    }
  }
  for (auto& [dev, why] : gated) end({dev}, audit::lease_revoked, why);
}

}  // namespace portier::gateway
