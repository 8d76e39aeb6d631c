// Claims on devices: granting, renewing and releasing leases for apps, and
// taking them back when they run out, when the holder disconnects or loses
// its identity, when the policy or the terminal's health no longer allows
// them, or when the device goes away. Every lease end is audited and shown
// to watchers (claimed_by); a card reader's card is reset after it. Runs
// with the hub's lock held (`lock` is the hub's, released while an allow is
// written to the audit trail).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "access_decider.h"
#include "card_reset.h"
#include "common/audit_events.h"
#include "common/audit_sink.h"
#include "connection.h"
#include "device_changes.h"
#include "device_registry.h"
#include "lease_table.h"
#include "policy_store.h"

namespace portier::gateway {

class Claims {
 public:
  struct Parts {
    DeviceRegistry& registry;
    LeaseTable& leases;
    AccessDecider& access;
    DeviceChanges& changes;
    AuditSink& audit;
  };
  Claims(Parts parts, std::uint32_t max_lease_seconds)
      : p_(parts), max_seconds_(max_lease_seconds), resets_(parts.audit) {}

  // invalid_argument unless 1 <= seconds <= max_lease_seconds.
  Result<void> check_seconds(std::uint32_t seconds) const;
  Result<Lease> claim(std::unique_lock<std::mutex>& lock, const std::shared_ptr<Connection>& conn,
                      const std::string& device_id, std::uint32_t seconds,
                      const PolicySnapshot& snap);
  Result<Lease> renew(std::unique_lock<std::mutex>& lock, Connection& conn,
                      const std::string& lease_id, std::uint32_t seconds,
                      const PolicySnapshot& snap);
  Result<void> release(Connection& conn, const std::string& lease_id);

  // How a lease end is recorded: audit::lease_released, lease_expired or
  // lease_revoked (common/audit_events.h).
  using LeaseEndRecord = AuditEntry (*)(const Caller* caller, std::string app, std::string device,
                                        std::string reason);
  // Ends the lease on each of `devices` (if held), recorded by `record`.
  void end(const std::vector<std::string>& devices, LeaseEndRecord record,
           const std::string& reason);
  void expire() { end(p_.leases.expired(), audit::lease_expired, "lease ran out"); }
  // Takes back the leases `snap` no longer allows.
  void revoke_disallowed(const PolicySnapshot& snap);
  // Takes back the leases whose claim the terminal's health refuses now.
  void revoke_gated(const PolicySnapshot& snap);
  // Ends every lease (shutdown), resetting the cards as usual.
  void end_all(const std::string& reason) {
    end(p_.leases.devices(), audit::lease_released, reason);
  }
  // Starts no more card resets and waits for those under way.
  void close_resets() { resets_.close(); }

 private:
  Parts p_;
  const std::uint32_t max_seconds_;
  CardReset resets_;
};

}  // namespace portier::gateway
