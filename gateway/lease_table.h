// Who holds which device, until when. A device has at most one lease; a
// lease belongs to one connection. Time comes from an injectable clock, so
// tests step through expiry without waiting. Not thread-safe: the hub holds
// its lock around every call. Knows nothing of policy, audit or the hub.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"

namespace portier::gateway {

struct Connection;

struct LeaseClock {
  std::function<std::chrono::steady_clock::time_point()> steady = [] {
    return std::chrono::steady_clock::now();
  };
  std::function<std::chrono::system_clock::time_point()> wall = [] {
    return std::chrono::system_clock::now();
  };
};

struct Lease {
  std::string lease_id;  // 128 random bits, hex
  std::string device_id;
  std::uint64_t conn_id = 0;
  std::weak_ptr<Connection> conn;
  std::string app;  // declared app of the holder, "" when none
  std::uint32_t seconds = 0;
  std::chrono::steady_clock::time_point expires;
  std::chrono::system_clock::time_point expires_wall;
};

class LeaseTable {
 public:
  explicit LeaseTable(LeaseClock clock = {}) : clock_(std::move(clock)) {}

  // The lease on `device_id`, or null when it is free.
  const Lease* holder(const std::string& device_id) const;
  // Whole seconds left on `lease` (0 once it ran out).
  long seconds_left(const Lease& lease) const;

  // A new lease on a free device, with an unguessable id: already_exists
  // when the device is held, unavailable when no randomness is to be had
  // (a weak id is never given out).
  Result<Lease> grant(const std::string& device_id, std::uint64_t conn_id,
                      std::weak_ptr<Connection> conn, std::string app, std::uint32_t seconds);
  // The lease `lease_id` when `conn_id` holds it, else null.
  const Lease* find(const std::string& lease_id, std::uint64_t conn_id) const;
  // Restarts the lease's time with `seconds`; not_found when `conn_id`
  // does not hold `lease_id`.
  Result<Lease> renew(const std::string& lease_id, std::uint64_t conn_id, std::uint32_t seconds);
  // Ends the lease on `device_id`, returning it; nullopt when none.
  std::optional<Lease> remove(const std::string& device_id);

  // Devices whose lease a connection holds.
  std::vector<std::string> held_by(std::uint64_t conn_id) const;
  // Devices whose lease has run out by now.
  std::vector<std::string> expired() const;
  // When the next lease runs out, if any is held.
  std::optional<std::chrono::steady_clock::time_point> next_expiry() const;
  std::vector<std::string> devices() const;

 private:
  void set_time(Lease& lease, std::uint32_t seconds) const;

  LeaseClock clock_;
  std::map<std::string, Lease> by_device_;
};

}  // namespace portier::gateway
