#include "device_hub.h"

#include "common/audit_events.h"
#include "common/log.h"
#include "quoted.h"

namespace portier::gateway {
namespace {

using policy::Op;

constexpr auto kReverifyEvery = std::chrono::seconds(1);

// Routes one driver's reports into the hub, tagged with the driver.
class DriverPort final : public drivers::DriverSink {
 public:
  DriverPort(DeviceHub& hub, drivers::Driver& driver) : hub_(hub), driver_(driver) {}
  void device_added(const drivers::DeviceInfo& info) override { hub_.device_added(&driver_, info); }
  void device_removed(const std::string& id) override { hub_.device_removed(id); }
  void device_state(const std::string& id, drivers::DeviceState s, const std::string& r) override {
    hub_.device_state(id, s, r);
  }
  void device_event(const std::string& id, drivers::DeviceEvent ev) override {
    hub_.device_event(id, std::move(ev));
  }

 private:
  DeviceHub& hub_;
  drivers::Driver& driver_;
};

}  // namespace

DeviceHub::DeviceHub(PolicyStore& policy, AuditSink& audit, HubOptions options)
    : policy_(policy),
      audit_(audit),
      options_(options),
      leases_(options.clock),
      health_(policy, audit, options.audit_failure_health),
      access_(policy, audit, health_, options.audit_timeout),
      changes_(policy, access_, leases_),
      events_(access_),
      claims_({registry_, leases_, access_, changes_, audit}, options.max_lease_seconds),
      timer_({[this]() -> std::optional<std::chrono::steady_clock::duration> {
                std::lock_guard lock(mu_);
                auto next = leases_.next_expiry();
                if (!next) return std::nullopt;
                return *next - options_.clock.steady();
              },
              [this] { expire_leases(); }, [this] { reverify_connections(); }},
             kReverifyEvery) {}

DeviceHub::~DeviceHub() = default;

Result<void> DeviceHub::start_driver(drivers::Driver& driver) {
  auto port = std::make_unique<DriverPort>(*this, driver);
  auto* raw = port.get();
  {
    std::lock_guard lock(mu_);
    ports_.push_back(std::move(port));
  }
  return driver.start(*raw);
}

void DeviceHub::device_added(drivers::Driver* driver, const drivers::DeviceInfo& info) {
  log_info("device " + info.id + " added (" + info.driver + ")");  // outside the lock
  std::lock_guard lock(mu_);
  auto& dev = registry_.add(driver, info);
  health_.set_device_problem(info.id, "");
  changes_.notify(dev, ChangeKind::added);
}

void DeviceHub::device_removed(const std::string& id) {
  {
    std::lock_guard lock(mu_);
    if (!registry_.find(id) || id == kTerminalId) return;
    claims_.end({id}, audit::lease_released, "device removed");
    auto gone = registry_.remove(id);
    health_.set_device_problem(id, "");
    changes_.notify(*gone, ChangeKind::removed);
  }
  events_.device_removed(id);
}

void DeviceHub::device_state(const std::string& id, drivers::DeviceState state,
                             const std::string& reason) {
  const std::string text =
      std::string(device_state_name(state)) + (reason.empty() ? "" : ": " + reason);
  {
    std::lock_guard lock(mu_);
    auto* dev = registry_.find(id);
    if (!dev) return;
    dev->view.state = state;
    dev->view.state_reason = reason;  // also when ready: "connected", "powered on", ...
    health_.set_device_problem(id, state == drivers::DeviceState::ready ? "" : id + " is " + text);
    changes_.notify(*dev, ChangeKind::state_changed);
    // A device's state is part of the terminal's health.
    claims_.revoke_gated(policy_.current());
  }
  log_info("device " + id + " " + text);
}

void DeviceHub::device_event(const std::string& id, drivers::DeviceEvent event) {
  auto rec = std::make_shared<DeviceEventRecord>();
  std::uint64_t holder = 0;
  {
    std::lock_guard lock(mu_);
    auto* dev = registry_.find(id);
    if (!dev) return;
    rec->device_id = id;
    rec->sequence = ++dev->sequence;
    rec->time = std::chrono::system_clock::now();
    if (auto* l = leases_.holder(id)) holder = l->conn_id;  // claimed: claimant only
  }
  if (auto* f = std::get_if<drivers::FaultData>(&event.payload)) {
    log_warning("device " + id + " fault " + f->code + ": " + f->message);
  } else if (auto* a = std::get_if<drivers::AlarmData>(&event.payload)) {
    // Alarms are for operators: logged and audited, with the device identity.
    std::string details;
    for (auto& [k, v] : a->details) details += " " + k + "=" + v;
    log_warning("ALARM device " + id + " " + a->code + ": " + a->message + details);
    audit_.record(audit::alarm(id, a->code, a->message + details));
  }
  rec->event = std::move(event);
  events_.deliver(id, holder, std::move(rec));
}

Access DeviceHub::check(Connection& conn, const std::string& device_id, Op op, bool audit_allow) {
  const std::string opn(policy::op_name(op));
  if (auto ok = access_.verify_caller(conn, device_id, opn); !ok) return {ok, {}};
  auto snap = policy_.current();
  Access a;
  {
    std::lock_guard lock(mu_);
    a = access_.check(conn, registry_.find(device_id), device_id, op, snap);
  }
  if (a.ok() && audit_allow) {
    a.status = access_.record_allow(
        AccessDecider::decision_entry(&conn, a.decision.app, device_id, op, a.decision, ""), opn);
  }
  return a;
}

std::vector<DeviceView> DeviceHub::list(Connection& conn) {
  auto snap = policy_.current();
  std::vector<DeviceView> out;
  std::lock_guard lock(mu_);
  for (auto& [id, dev] : registry_.all()) {
    if (access_.decide(conn, dev, Op::list, snap).allow) out.push_back(changes_.view(dev));
  }
  return out;
}

Result<void> DeviceHub::may_watch(Connection& conn) { return access_.may_watch(conn); }

Result<std::uint64_t> DeviceHub::subscribe(const std::shared_ptr<Connection>& conn,
                                           const std::string& device_id,
                                           std::shared_ptr<EventSubscriber> subscriber,
                                           const std::function<Result<void>()>& admit) {
  if (auto ok = access_.verify_caller(*conn, device_id, "read"); !ok) {
    return std::unexpected(ok.error());
  }
  auto snap = policy_.current();
  std::lock_guard lock(mu_);
  if (events_.fan_out().closed()) return fail_msg(Errc::unavailable, "portierd is stopping");
  auto a = access_.check(*conn, registry_.find(device_id), device_id, Op::read, snap);
  if (!a.ok()) return std::unexpected(a.status.error());
  if (admit) {
    if (auto ok = admit(); !ok) return std::unexpected(ok.error());
  }
  auto id = events_.add({conn, conn->id, device_id, a.decision.app}, std::move(subscriber));
  if (!id) return fail_msg(Errc::unavailable, "portierd is stopping");
  return id;
}

Result<std::uint64_t> DeviceHub::watch(const std::shared_ptr<Connection>& conn,
                                       std::shared_ptr<ChangeSubscriber> subscriber,
                                       bool include_existing) {
  std::lock_guard lock(mu_);
  return changes_.watch(conn, std::move(subscriber), include_existing, registry_);
}

Result<Lease> DeviceHub::claim(const std::shared_ptr<Connection>& conn,
                               const std::string& device_id, std::uint32_t seconds) {
  if (auto ok = claims_.check_seconds(seconds); !ok) return std::unexpected(ok.error());
  if (auto ok = access_.verify_caller(*conn, device_id, "claim"); !ok) {
    return std::unexpected(ok.error());
  }
  auto snap = policy_.current();
  std::unique_lock lock(mu_);
  auto lease = claims_.claim(lock, conn, device_id, seconds, snap);
  if (lease) timer_.poke();
  return lease;
}

Result<Lease> DeviceHub::renew(Connection& conn, const std::string& lease_id,
                               std::uint32_t seconds) {
  if (auto ok = claims_.check_seconds(seconds); !ok) return std::unexpected(ok.error());
  auto snap = policy_.current();
  std::unique_lock lock(mu_);
  auto lease = claims_.renew(lock, conn, lease_id, seconds, snap);
  if (lease) timer_.poke();
  return lease;
}

Result<void> DeviceHub::release(Connection& conn, const std::string& lease_id) {
  std::lock_guard lock(mu_);
  return claims_.release(conn, lease_id);
}

Result<drivers::ActionResult> DeviceHub::act_for_fleet(const std::string& device_id,
                                                       const std::string& action) {
  drivers::Driver* driver = nullptr;
  {
    std::lock_guard lock(mu_);
    auto* dev = registry_.find(device_id);
    if (!dev) return std::unexpected(no_device(device_id));
    const auto* spec = dev->action(action);
    if (!spec) {
      return fail_msg(Errc::invalid_argument,
                      quoted(device_id) + " has no action " + quoted(action));
    }
    if (spec->needs_claim) {
      return fail_msg(Errc::failed_precondition,
                      quoted(action) + " needs a lease; the fleet cannot run it");
    }
    if (leases_.holder(device_id)) {
      return fail_msg(Errc::failed_precondition,
                      quoted(device_id) + " is leased by an app; try again when it is free");
    }
    driver = dev->driver;
  }
  if (!driver) return fail_msg(Errc::unavailable, quoted(device_id) + " has no driver");
  drivers::ActionRequest req;
  req.device_id = device_id;
  req.action = action;
  return driver->act(req);
}

Result<ActionGrant> DeviceHub::authorize(Connection& conn, const std::string& device_id,
                                         const std::string& action) {
  const bool raw_write = action.empty();
  if (auto ok = access_.verify_caller(conn, device_id, raw_write ? "write" : action); !ok) {
    return std::unexpected(ok.error());
  }
  auto snap = policy_.current();
  std::lock_guard lock(mu_);
  auto* dev = registry_.find(device_id);
  ActionGrant g{nullptr, Op::write, {}};
  bool needs_claim = true;
  if (!raw_write) {
    if (!dev) {
      return std::unexpected(no_device(device_id));
    }
    const auto* spec = dev->action(action);
    if (!spec) {
      std::string names;
      for (auto& a : dev->view.info.actions) names += (names.empty() ? "" : ", ") + a.name;
      return fail_msg(Errc::invalid_argument,
                      quoted(device_id) + " has no action " + quoted(action) +
                          " (it offers: " + (names.empty() ? "none" : names) + ")");
    }
    auto op = policy::parse_op(spec->op);
    if (!op) return fail_msg(Errc::internal, "driver declared unknown op " + spec->op);
    g.op = *op;
    needs_claim = spec->needs_claim;
  }
  auto a = access_.check(conn, dev, device_id, g.op, snap);
  if (!a.ok()) return std::unexpected(a.status.error());
  g.decision = a.decision;
  if (needs_claim) {
    auto* l = leases_.holder(device_id);
    if (!l || l->conn_id != conn.id) {
      return fail_msg(Errc::failed_precondition,
                      "claim " + quoted(device_id) + " before " +
                          (raw_write ? std::string("sending to it") : action));
    }
  }
  g.driver = dev->driver;
  return g;
}

void DeviceHub::record_self_tests(const std::vector<drivers::SelfTestResult>& results) {
  std::lock_guard lock(mu_);
  health_.record_self_tests(results, audit_);
}

void DeviceHub::connection_closed(const std::shared_ptr<Connection>& conn) {
  {
    std::lock_guard lock(mu_);
    claims_.end(leases_.held_by(conn->id), audit::lease_released, "holder disconnected");
  }
  // Its streams end now, not at their handlers' next look at the call (up to
  // BoundedStream::kCancelPoll later): their stream slots come back at once.
  // Ended outside the lock: a subscriber is told without the hub held.
  auto mine = [id = conn->id](const Audience& a) { return a.conn_id == id; };
  auto gone = fail_msg(Errc::unavailable, "the app disconnected");
  events_.fan_out().end_if(mine, gone);
  changes_.fan_out().end_if(mine, gone);
}

void DeviceHub::end_all_streams(const Error& why) {
  events_.fan_out().close(std::unexpected(why));
  changes_.fan_out().close(std::unexpected(why));
}

void DeviceHub::policy_changed() {
  auto snap = policy_.current();
  std::vector<std::pair<std::uint64_t, Error>> ending;
  {
    std::lock_guard lock(mu_);
    ending = events_.unreadable(snap, registry_);
    claims_.revoke_disallowed(snap);
  }
  // Ended outside the lock: a subscriber is told without the hub held.
  for (auto& [id, why] : ending) events_.end(id, why);
}

void DeviceHub::set_sever(std::function<void(std::uint64_t)> fn) {
  std::lock_guard lock(mu_);
  sever_ = std::move(fn);
}

void DeviceHub::expire_leases() {
  std::lock_guard lock(mu_);
  claims_.expire();
}

void DeviceHub::reverify_connections() {
  // Streams were allowed at subscribe time; a process that has since exec'd
  // another program (or exited, leaving the socket to a child) loses them.
  std::map<std::uint64_t, std::shared_ptr<Connection>> conns;
  for (auto& s : events_.fan_out().entries()) {
    if (s.audience.conn) conns[s.audience.conn_id] = s.audience.conn;
  }
  for (auto& w : changes_.fan_out().entries()) {
    if (w.audience.conn) conns[w.audience.conn_id] = w.audience.conn;
  }
  for (auto& [cid, conn] : conns) {
    if (!conn->identify_error.empty()) continue;
    auto ok = verify_peer(conn->identity);
    if (ok) continue;
    std::function<void(std::uint64_t)> sever;
    {
      std::lock_guard lock(mu_);
      claims_.end(leases_.held_by(cid), audit::lease_revoked, ok.error().why);
      audit_.record(audit::identity_lost(&conn->caller(), ok.error().why));
      sever = sever_;
    }
    auto lost = fail_msg(Errc::permission_denied, ok.error().message());
    auto mine = [cid = cid](const Audience& a) { return a.conn_id == cid; };
    events_.fan_out().end_if(mine, lost);
    changes_.fan_out().end_if(mine, lost);
    // Whatever runs now behind that socket gets nothing more from us.
    if (sever) sever(cid);
  }
}

void DeviceHub::terminal_changed_locked() {
  claims_.revoke_gated(policy_.current());
  // Apps with `watch` on the terminal see every health change.
  auto& t = registry_.terminal();
  t.view.state_reason = health_.evaluate().summary();
  changes_.notify(t, ChangeKind::state_changed);
}

void DeviceHub::set_external_health(policy::Health state, std::vector<std::string> reasons) {
  std::lock_guard lock(mu_);
  health_.set_external(state, std::move(reasons));
  terminal_changed_locked();
}

void DeviceHub::set_component_health(const std::string& component, policy::Health state,
                                     std::string reason) {
  std::lock_guard lock(mu_);
  health_.set_component(component, state, std::move(reason));
  terminal_changed_locked();
}

void DeviceHub::audit_state_changed() {
  std::lock_guard lock(mu_);
  terminal_changed_locked();
}

void DeviceHub::set_compromised_refusals(std::vector<HealthRefusal> refusals) {
  std::lock_guard lock(mu_);
  access_.set_compromised_refusals(std::move(refusals));
}

std::optional<policy::DeviceRef> DeviceHub::device_ref(const std::string& id) {
  std::lock_guard lock(mu_);
  auto* dev = registry_.find(id);
  if (!dev) return std::nullopt;
  return dev->ref();
}

HealthReport DeviceHub::health_report() {
  HealthReport r;
  r.policy = policy_.status();
  r.uptime =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started_);
  r.subscribers = events_.report();
  std::lock_guard lock(mu_);
  r.health = health_.evaluate();
  r.devices = devices_locked();
  r.self_tests = health_.self_tests();
  return r;
}

std::vector<DeviceView> DeviceHub::devices_locked() const {
  std::vector<DeviceView> out;
  for (auto& [id, dev] : registry_.all()) out.push_back(changes_.view(dev));
  return out;
}

std::vector<DeviceView> DeviceHub::devices() {
  std::lock_guard lock(mu_);
  return devices_locked();
}

std::optional<DeviceView> DeviceHub::device(const std::string& id) {
  std::lock_guard lock(mu_);
  auto* dev = registry_.find(id);
  if (!dev) return std::nullopt;
  return changes_.view(*dev);
}

HealthState DeviceHub::health() {
  std::lock_guard lock(mu_);
  return health_.evaluate();
}

std::uint64_t DeviceHub::listen_events(std::shared_ptr<EventSubscriber> subscriber,
                                       const std::string& device_id) {
  return events_.add({nullptr, 0, device_id, ""}, std::move(subscriber));
}

std::uint64_t DeviceHub::listen_changes(std::shared_ptr<ChangeSubscriber> subscriber) {
  return changes_.listen(std::move(subscriber));
}

}  // namespace portier::gateway
