#include "lease_table.h"

#include <algorithm>

#include "common/crypto/random.h"
#include "common/hex.h"

namespace portier::gateway {

const Lease* LeaseTable::holder(const std::string& device_id) const {
  auto it = by_device_.find(device_id);
  return it == by_device_.end() ? nullptr : &it->second;
}

long LeaseTable::seconds_left(const Lease& lease) const {
  auto left =
      std::chrono::duration_cast<std::chrono::seconds>(lease.expires - clock_.steady()).count();
  return std::max<long>(left, 0);
}

void LeaseTable::set_time(Lease& lease, std::uint32_t seconds) const {
  lease.seconds = seconds;
  lease.expires = clock_.steady() + std::chrono::seconds(seconds);
  lease.expires_wall = clock_.wall() + std::chrono::seconds(seconds);
}

Result<Lease> LeaseTable::grant(const std::string& device_id, std::uint64_t conn_id,
                                std::weak_ptr<Connection> conn, std::string app,
                                std::uint32_t seconds) {
  if (by_device_.count(device_id)) return fail(Errc::already_exists, device_id, "lease", "held");
  std::uint8_t b[16];
  if (auto r = crypto::random_bytes(b); !r) {
    return fail(Errc::unavailable, "", "", "no randomness for a lease id: " + r.error().message());
  }
  Lease l;
  l.lease_id = to_hex(b, sizeof b);
  l.device_id = device_id;
  l.conn_id = conn_id;
  l.conn = std::move(conn);
  l.app = std::move(app);
  set_time(l, seconds);
  by_device_[device_id] = l;
  return l;
}

const Lease* LeaseTable::find(const std::string& lease_id, std::uint64_t conn_id) const {
  for (auto& [dev, l] : by_device_) {
    if (l.lease_id == lease_id) return l.conn_id == conn_id ? &l : nullptr;
  }
  return nullptr;
}

Result<Lease> LeaseTable::renew(const std::string& lease_id, std::uint64_t conn_id,
                                std::uint32_t seconds) {
  auto* found = find(lease_id, conn_id);
  if (!found) return fail(Errc::not_found, "", "lease", "not held");
  auto& l = by_device_.at(found->device_id);
  set_time(l, seconds);
  return l;
}

std::optional<Lease> LeaseTable::remove(const std::string& device_id) {
  auto it = by_device_.find(device_id);
  if (it == by_device_.end()) return std::nullopt;
  Lease l = std::move(it->second);
  by_device_.erase(it);
  return l;
}

std::vector<std::string> LeaseTable::held_by(std::uint64_t conn_id) const {
  std::vector<std::string> out;
  for (auto& [dev, l] : by_device_) {
    if (l.conn_id == conn_id) out.push_back(dev);
  }
  return out;
}

std::vector<std::string> LeaseTable::expired() const {
  std::vector<std::string> out;
  const auto now = clock_.steady();
  for (auto& [dev, l] : by_device_) {
    if (l.expires <= now) out.push_back(dev);
  }
  return out;
}

std::optional<std::chrono::steady_clock::time_point> LeaseTable::next_expiry() const {
  std::optional<std::chrono::steady_clock::time_point> next;
  for (auto& [dev, l] : by_device_) {
    if (!next || l.expires < *next) next = l.expires;
  }
  return next;
}

std::vector<std::string> LeaseTable::devices() const {
  std::vector<std::string> out;
  for (auto& [dev, l] : by_device_) out.push_back(dev);
  return out;
}

}  // namespace portier::gateway
