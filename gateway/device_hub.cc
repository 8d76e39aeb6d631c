#include "device_hub.h"

#include <algorithm>
#include <cstdlib>
#include <thread>

#include "common/crypto/random.h"
#include "common/hex.h"
#include "common/log.h"
#include "quoted.h"

namespace portier::gateway {
namespace {

using policy::Op;

constexpr const char* kTerminal = "terminal";
constexpr std::size_t kMaxSend = 4096;
constexpr auto kReverifyEvery = std::chrono::seconds(1);

void set_time(google::protobuf::Timestamp* ts, std::chrono::system_clock::time_point tp) {
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(tp.time_since_epoch()).count();
  ts->set_seconds(ns / 1000000000);
  ts->set_nanos(static_cast<int>(ns % 1000000000));
}

// A lease id must not be guessable: without randomness (a seeded kernel
// CSPRNG does not fail) the claim is refused rather than given a weak id.
Result<std::string> random_id() {
  std::uint8_t b[16];
  if (auto r = crypto::random_bytes(b); !r) return std::unexpected(r.error());
  return to_hex(b, sizeof b);
}

v1::DeviceState to_proto(drivers::DeviceState s) {
  switch (s) {
    case drivers::DeviceState::ready:
      return v1::DEVICE_STATE_READY;
    case drivers::DeviceState::disconnected:
      return v1::DEVICE_STATE_DISCONNECTED;
    case drivers::DeviceState::error:
      return v1::DEVICE_STATE_ERROR;
  }
  return v1::DEVICE_STATE_UNSPECIFIED;
}

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
    : policy_(policy), audit_(audit), options_(options) {
  // The terminal itself is a device, so that health, audit and policy
  // administration are decided like everything else.
  DeviceEntry t;
  t.device.set_id(kTerminal);
  t.device.set_device_class(kTerminal);
  t.device.set_state(v1::DEVICE_STATE_READY);
  t.device.set_driver("portierd");
  t.device.add_capabilities("health");
  devices_.emplace(kTerminal, std::move(t));
  expiry_thread_ = std::thread([this] { expiry_loop(); });
}

DeviceHub::~DeviceHub() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  expiry_cv_.notify_all();
  expiry_thread_.join();
}

Result<void> DeviceHub::start_driver(drivers::Driver& driver) {
  auto port = std::make_unique<DriverPort>(*this, driver);
  auto* raw = port.get();
  {
    std::lock_guard lock(mu_);
    ports_.push_back(std::move(port));
  }
  return driver.start(*raw);
}

std::string DeviceHub::describe(const Connection& conn, const std::string& app) {
  if (!app.empty()) return "app '" + app + "'";
  const auto& c = conn.caller();
  return "undeclared app (uid " + std::to_string(c.uid) + ", " + c.exe + ")";
}

void DeviceHub::audit(const Connection* conn, const std::string& app, const std::string& device,
                      Op op, const policy::Decision& d, const std::string& reason) {
  audit_.record(decision_entry(conn, app, device, op, d, reason));
}

AuditEntry DeviceHub::decision_entry(const Connection* conn, const std::string& app,
                                     const std::string& device, Op op, const policy::Decision& d,
                                     const std::string& reason) {
  AuditEntry e;
  e.caller = conn ? &conn->caller() : nullptr;
  e.app = app;
  e.device = device;
  e.op = std::string(policy::op_name(op));
  e.decision = d.allow ? "allow" : "deny";
  e.rule = d.rule;
  e.line = d.line;
  e.policy = d.source;
  e.reason = reason;
  return e;
}

policy::Decision DeviceHub::decide_locked(Connection& conn, DeviceEntry& dev, Op op,
                                          const PolicySnapshot& snap) {
  if (!snap.policy) return {};
  if (dev.policy_generation != snap.generation) {
    policy::DeviceRef ref{dev.device.id(),
                          dev.device.device_class(),
                          {dev.device.attributes().begin(), dev.device.attributes().end()}};
    dev.device_rules = snap.policy->rules_for_device(ref);
    dev.policy_generation = snap.generation;
  }
  std::lock_guard lock(conn.mu);
  if (conn.policy_generation != snap.generation) {
    conn.caller_rules = snap.policy->rules_for_caller(conn.caller());
    conn.apps = snap.policy->app_names(conn.caller());
    conn.policy_generation = snap.generation;
  }
  auto d = snap.policy->decide(conn.caller_rules, dev.device_rules, op);
  if (d.app.empty() && !conn.apps.empty()) d.app = conn.apps.front();
  return d;
}

grpc::Status DeviceHub::verify_caller(Connection& conn, const std::string& device_id,
                                      const std::string& op) {
  // Reads /proc: done before the hub's lock is taken, never under it.
  if (!conn.identify_error.empty()) {
    // Audited once, when the connection was refused an identity (once per
    // file for an executable too large or slow to hash), not per call.
    return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                        "caller could not be identified: " + conn.identify_error);
  }
  if (auto ok = verify_peer(conn.identity); !ok) {
    audit_refusal(&conn, device_id, op, ok.error().why);
    return grpc::Status(grpc::StatusCode::PERMISSION_DENIED, ok.error().message());
  }
  return grpc::Status::OK;
}

void DeviceHub::audit_refusal(const Connection* conn, const std::string& device,
                              const std::string& op, const std::string& reason) {
  AuditEntry e;
  e.caller = conn ? &conn->caller() : nullptr;
  e.device = device;
  e.op = op;
  e.decision = "deny";
  e.reason = reason;
  audit_.record(e);
}

Access DeviceHub::check_locked(Connection& conn, const std::string& device_id, Op op,
                               bool audit_allow, const PolicySnapshot& snap) {
  Access a;
  const std::string opn(policy::op_name(op));
  auto it = devices_.find(device_id);
  if (it == devices_.end()) {
    a.status = grpc::Status(grpc::StatusCode::NOT_FOUND,
                            "no device " + quoted(device_id) + "; `portierctl devices` lists them");
    return a;
  }
  a.decision = decide_locked(conn, it->second, op, snap);
  const auto& d = a.decision;
  if (d.allow) {
    if (auto why = health_gate_locked(it->second, op, d); !why.empty()) {
      a.status = grpc::Status(
          grpc::StatusCode::PERMISSION_DENIED,
          describe(conn, d.app) + " may not " + opn + " " + quoted(device_id) + " now: " + why);
      audit(&conn, d.app, device_id, op, {}, why);
      return a;
    }
    if (audit_allow) audit(&conn, d.app, device_id, op, d, "");
    return a;
  }
  std::string why;
  if (!snap.policy) {
    why = "no policy is loaded";
  } else if (d.rule > 0) {
    why = "rule " + std::to_string(d.rule) + " of " + d.source + ", line " + std::to_string(d.line);
  } else {
    why = "no rule of " + d.source + " allows it; default deny";
  }
  a.status = grpc::Status(
      grpc::StatusCode::PERMISSION_DENIED,
      describe(conn, d.app) + " may not " + opn + " " + quoted(device_id) + " (" + why + ")");
  audit(&conn, d.app, device_id, op, d, why);
  return a;
}

std::string DeviceHub::health_gate_locked(const DeviceEntry& dev, Op op,
                                          const policy::Decision& d) const {
  // Most decisions cannot be gated: skip working out the health for them.
  auto refused_when_compromised = [&] {
    for (auto& r : refusals_) {
      if (r.op == op && (r.device_class.empty() || r.device_class == dev.device.device_class())) {
        return true;
      }
    }
    return false;
  };
  const bool by_refusal = refused_when_compromised();
  if (d.require_health == policy::Health::compromised && !by_refusal) return {};
  auto [state, reasons] = health_locked();
  std::string why_state;
  for (auto& r : reasons) why_state += (why_state.empty() ? "" : "; ") + r;
  if (state > d.require_health) {
    return "rule " + std::to_string(d.rule) + " of " + d.source + " requires health " +
           (d.require_health == policy::Health::ok ? "OK" : "not COMPROMISED") +
           " and the terminal is " +
           (state == policy::Health::degraded ? "DEGRADED" : "COMPROMISED") + " (" + why_state +
           ")";
  }
  if (state == policy::Health::compromised && by_refusal) {
    return "the terminal is COMPROMISED (" + why_state + "); " + std::string(policy::op_name(op)) +
           " is refused until its health recovers";
  }
  return {};
}

Access DeviceHub::check(Connection& conn, const std::string& device_id, Op op, bool audit_allow) {
  if (auto st = verify_caller(conn, device_id, std::string(policy::op_name(op))); !st.ok()) {
    return {st, {}};
  }
  auto snap = policy_.current();
  Access a;
  {
    std::lock_guard lock(mu_);
    a = check_locked(conn, device_id, op, /*audit_allow=*/false, snap);
  }
  if (a.ok() && audit_allow) {
    AuditEntry e = decision_entry(&conn, a.decision.app, device_id, op, a.decision, "");
    if (auto st = audit_durable(e, std::string(policy::op_name(op))); !st.ok()) a.status = st;
  }
  return a;
}

grpc::Status DeviceHub::audit_durable(const AuditEntry& entry, const std::string& what) {
  auto r = audit_.record_durable(entry, options_.audit_timeout);
  if (r) return grpc::Status::OK;
  // The allow stays queued and reaches the file once the trail recovers:
  // the refusal that followed is recorded right behind it, so the trail
  // never shows a granted operation that did not happen.
  AuditEntry refused = entry;
  refused.event = "allow_revoked";
  refused.decision = "deny";
  refused.reason =
      "refused after all: its audit record could not be written in time (" + r.error().why + ")";
  audit_.record(refused);
  return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                      what + " refused: its audit record cannot be written (" +
                          r.error().message() + "); it is allowed again once the audit trail is");
}

std::vector<std::string> DeviceHub::app_names(Connection& conn) {
  auto snap = policy_.current();
  if (!snap.policy || !conn.identify_error.empty()) return {};
  std::lock_guard lock(conn.mu);  // the connection's policy cache, as decide_locked
  if (conn.policy_generation != snap.generation) {
    conn.caller_rules = snap.policy->rules_for_caller(conn.caller());
    conn.apps = snap.policy->app_names(conn.caller());
    conn.policy_generation = snap.generation;
  }
  return conn.apps;
}

void DeviceHub::device_added(drivers::Driver* driver, const drivers::DeviceInfo& info) {
  log_info("device " + info.id + " added (" + info.driver + ")");  // outside the lock
  std::lock_guard lock(mu_);
  DeviceEntry e;
  e.driver = driver;
  auto& d = e.device;
  d.set_id(info.id);
  d.set_device_class(info.device_class);
  d.set_driver(info.driver);
  d.set_state(v1::DEVICE_STATE_READY);
  for (auto& c : info.capabilities) d.add_capabilities(c);
  for (auto& [k, v] : info.attributes) (*d.mutable_attributes())[k] = v;
  for (auto& a : info.actions) {
    auto* pa = d.add_actions();
    pa->set_name(a.name);
    pa->set_op(a.op);
    pa->set_needs_claim(a.needs_claim);
  }
  e.actions = info.actions;
  devices_[info.id] = std::move(e);
  notify_change_locked(devices_[info.id].device, v1::DeviceChange::ADDED);
}

void DeviceHub::device_removed(const std::string& id) {
  std::vector<std::shared_ptr<EventStream>> ending;
  {
    std::lock_guard lock(mu_);
    auto it = devices_.find(id);
    if (it == devices_.end()) return;
    end_lease_locked(id, "lease_released", "device removed");
    v1::Device gone = it->second.device;
    devices_.erase(it);
    for (auto& [sid, s] : subs_) {
      if (s.device_id == id) ending.push_back(s.stream);
    }
    notify_change_locked(gone, v1::DeviceChange::REMOVED);
  }
  // Ended outside the lock: a stream's OnDone takes it to unregister.
  for (auto& s : ending) s->end(grpc::Status(grpc::StatusCode::NOT_FOUND, "device removed"));
}

void DeviceHub::device_state(const std::string& id, drivers::DeviceState state,
                             const std::string& reason) {
  {
    std::lock_guard lock(mu_);
    auto it = devices_.find(id);
    if (it == devices_.end()) return;
    auto& d = it->second.device;
    d.set_state(to_proto(state));
    d.set_state_reason(reason);  // also when ready: "connected", "powered on", ...
    notify_change_locked(d, v1::DeviceChange::STATE_CHANGED);
    revoke_gated_leases_locked();  // a device's state is part of the terminal's health
  }
  log_info("device " + id + " " + v1::DeviceState_Name(to_proto(state)) +
           (reason.empty() ? "" : ": " + reason));
}

void DeviceHub::device_event(const std::string& id, drivers::DeviceEvent event) {
  v1::PeripheralEvent pe;
  std::vector<std::shared_ptr<EventStream>> targets;
  {
    std::lock_guard lock(mu_);
    auto it = devices_.find(id);
    if (it == devices_.end()) return;
    pe.set_device_id(id);
    pe.set_sequence(++it->second.sequence);
    set_time(pe.mutable_time(), std::chrono::system_clock::now());
    std::uint64_t holder = 0;
    if (auto l = leases_.find(id); l != leases_.end()) holder = l->second.conn_id;
    for (auto& [sid, s] : subs_) {
      if (s.device_id != id) continue;
      if (holder && s.conn->id != holder) continue;  // claimed: claimant only
      targets.push_back(s.stream);
    }
  }
  if (auto* scan = std::get_if<drivers::ScanData>(&event.payload)) {
    auto* s = pe.mutable_scan();
    s->set_raw(std::move(scan->raw));
    s->set_text(std::move(scan->text));
    s->set_symbology(scan->symbology);
    s->set_aim_id(scan->aim_id);
    s->set_encoding(scan->encoding);
    s->set_decode_error(scan->decode_error);
  } else if (auto* f = std::get_if<drivers::FaultData>(&event.payload)) {
    pe.mutable_fault()->set_code(f->code);
    pe.mutable_fault()->set_message(f->message);
    log_warning("device " + id + " fault " + f->code + ": " + f->message);
  } else if (auto* c = std::get_if<drivers::CardData>(&event.payload)) {
    auto* card = pe.mutable_card();
    card->set_kind(c->kind == drivers::CardData::Kind::inserted ? v1::Card::INSERTED
                                                                : v1::Card::REMOVED);
    card->set_atr(c->atr);
    card->set_uid(c->uid);
  } else if (auto* a = std::get_if<drivers::AlarmData>(&event.payload)) {
    auto* alarm = pe.mutable_alarm();
    alarm->set_code(a->code);
    alarm->set_message(a->message);
    for (auto& [k, v] : a->details) (*alarm->mutable_details())[k] = v;
    // Alarms are for operators: logged and audited, with the device identity.
    std::string details;
    for (auto& [k, v] : a->details) details += " " + k + "=" + v;
    log_warning("ALARM device " + id + " " + a->code + ": " + a->message + details);
    AuditEntry e;
    e.event = "alarm";
    e.device = id;
    e.op = a->code;
    e.reason = a->message + details;
    audit_.record(e);
  }
  auto shared = std::make_shared<const v1::PeripheralEvent>(std::move(pe));
  for (auto& t : targets) t->push(shared);
}

void DeviceHub::notify_change_locked(const v1::Device& device, v1::DeviceChange::Kind kind) {
  v1::DeviceChange ch;
  ch.set_kind(kind);
  *ch.mutable_device() = device;
  if (auto l = leases_.find(device.id()); l != leases_.end()) {
    ch.mutable_device()->set_claimed_by(l->second.app);
  }
  set_time(ch.mutable_time(), std::chrono::system_clock::now());
  auto snap = policy_.current();
  for (auto& [wid, w] : watchers_) {
    // Decided per watcher and device; removed devices are decided on the
    // entry we still have a copy of.
    DeviceEntry tmp;
    DeviceEntry* dev = nullptr;
    if (auto it = devices_.find(device.id()); it != devices_.end()) {
      dev = &it->second;
    } else {
      tmp.device = device;
      dev = &tmp;
    }
    if (decide_locked(*w.conn, *dev, Op::watch, snap).allow) w.stream->push(ch);
  }
}

std::vector<v1::Device> DeviceHub::list(Connection& conn) {
  auto snap = policy_.current();
  std::vector<v1::Device> out;
  std::lock_guard lock(mu_);
  for (auto& [id, dev] : devices_) {
    if (!decide_locked(conn, dev, Op::list, snap).allow) continue;
    out.push_back(dev.device);
    if (auto l = leases_.find(id); l != leases_.end()) out.back().set_claimed_by(l->second.app);
  }
  return out;
}

grpc::Status DeviceHub::may_watch(Connection& conn) {
  if (auto st = verify_caller(conn, "", "watch"); !st.ok()) return st;
  auto snap = policy_.current();
  if (!snap.policy) {
    return grpc::Status(grpc::StatusCode::PERMISSION_DENIED, "no policy is loaded");
  }
  std::string app;
  {
    std::lock_guard lock(conn.mu);
    if (conn.policy_generation != snap.generation) {
      conn.caller_rules = snap.policy->rules_for_caller(conn.caller());
      conn.apps = snap.policy->app_names(conn.caller());
      conn.policy_generation = snap.generation;
    }
    if (snap.policy->may_allow_any(conn.caller_rules, Op::watch)) return grpc::Status::OK;
    if (!conn.apps.empty()) app = conn.apps.front();
  }
  const std::string why = "no rule of " + snap.policy->source() + " lets it watch any device";
  policy::Decision d;
  d.app = app;
  d.source = snap.policy->source();
  audit(&conn, app, "", Op::watch, d, why);
  return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                      describe(conn, app) + " may not watch devices (" + why + ")");
}

grpc::Status DeviceHub::subscribe(const std::shared_ptr<Connection>& conn,
                                  const std::string& device_id,
                                  const std::shared_ptr<EventStream>& stream,
                                  const std::function<grpc::Status()>& admit) {
  if (auto st = verify_caller(*conn, device_id, "read"); !st.ok()) return st;
  auto snap = policy_.current();
  std::lock_guard lock(mu_);
  if (streams_ended_) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "portierd is stopping");
  auto a = check_locked(*conn, device_id, Op::read, false, snap);
  if (!a.ok()) return a.status;
  if (admit) {
    if (auto st = admit(); !st.ok()) return st;
  }
  auto id = next_stream_id_++;
  subs_[id] = Subscription{id, conn, device_id, a.decision.app, stream};
  stream->on_send([](v1::PeripheralEvent& ev, std::uint64_t dropped) { ev.set_dropped(dropped); });
  stream->on_done([this, id](EventStream*) {
    std::lock_guard lock(mu_);
    subs_.erase(id);
  });
  return grpc::Status::OK;
}

grpc::Status DeviceHub::watch(const std::shared_ptr<Connection>& conn,
                              const std::shared_ptr<ChangeStream>& stream, bool include_existing) {
  auto snap = policy_.current();
  std::lock_guard lock(mu_);
  if (streams_ended_) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "portierd is stopping");
  if (!conn->identify_error.empty()) {
    return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                        "caller could not be identified: " + conn->identify_error);
  }
  if (include_existing) {
    for (auto& [id, dev] : devices_) {
      if (!decide_locked(*conn, dev, Op::watch, snap).allow) continue;
      v1::DeviceChange ch;
      ch.set_kind(v1::DeviceChange::EXISTING);
      *ch.mutable_device() = dev.device;
      if (auto l = leases_.find(id); l != leases_.end()) {
        ch.mutable_device()->set_claimed_by(l->second.app);
      }
      set_time(ch.mutable_time(), std::chrono::system_clock::now());
      stream->push(ch);
    }
  }
  auto id = next_stream_id_++;
  watchers_[id] = Watcher{id, conn, stream};
  stream->on_done([this, id](ChangeStream*) {
    std::lock_guard lock(mu_);
    watchers_.erase(id);
  });
  return grpc::Status::OK;
}

grpc::Status DeviceHub::claim(const std::shared_ptr<Connection>& conn, const std::string& device_id,
                              std::uint32_t seconds, v1::Lease* out) {
  if (seconds == 0 || seconds > options_.max_lease_seconds) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "lease seconds must be 1.." + std::to_string(options_.max_lease_seconds));
  }
  if (auto st = verify_caller(*conn, device_id, "claim"); !st.ok()) return st;
  auto snap = policy_.current();
  std::unique_lock lock(mu_);
  auto a = check_locked(*conn, device_id, Op::claim, false, snap);
  if (!a.ok()) return a.status;
  if (auto l = leases_.find(device_id); l != leases_.end()) {
    const auto& holder = l->second;
    auto left = std::chrono::duration_cast<std::chrono::seconds>(holder.expires -
                                                                 std::chrono::steady_clock::now())
                    .count();
    std::string who = holder.app.empty() ? "an undeclared app" : "app '" + holder.app + "'";
    if (holder.conn_id == conn->id) who = "this connection";
    AuditEntry e;
    e.event = "claim";
    e.caller = &conn->caller();
    e.app = a.decision.app;
    e.device = device_id;
    e.op = "claim";
    e.decision = "deny";
    e.rule = a.decision.rule;
    e.line = a.decision.line;
    e.policy = a.decision.source;
    e.reason = "held by " + who;
    audit_.record(e);
    return grpc::Status(grpc::StatusCode::ALREADY_EXISTS,
                        quoted(device_id) + " is claimed by " + who + " for " +
                            std::to_string(std::max<long>(left, 0)) + " more seconds; retry later");
  }
  LeaseEntry l;
  auto lease_id = random_id();
  if (!lease_id) {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                        "no randomness for a lease id: " + lease_id.error().message());
  }
  l.lease_id = *lease_id;
  l.device_id = device_id;
  l.conn_id = conn->id;
  l.conn = conn;
  l.app = a.decision.app;
  l.seconds = seconds;
  l.expires = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  l.expires_wall = std::chrono::system_clock::now() + std::chrono::seconds(seconds);
  out->set_lease_id(l.lease_id);
  out->set_device_id(device_id);
  out->set_seconds(seconds);
  set_time(out->mutable_expires(), l.expires_wall);
  // The lease is held (no one else can take the device) while its record is
  // written; a claim whose record cannot be written is taken back, refused.
  leases_[device_id] = l;
  AuditEntry e = decision_entry(conn.get(), a.decision.app, device_id, Op::claim, a.decision,
                                "lease " + std::to_string(seconds) + "s");
  lock.unlock();
  auto st = audit_durable(e, "claim of " + quoted(device_id));
  lock.lock();
  auto held = leases_.find(device_id);
  const bool still_ours = held != leases_.end() && held->second.lease_id == l.lease_id;
  if (!st.ok()) {
    if (still_ours) leases_.erase(held);
    out->Clear();
    return st;
  }
  if (!still_ours) {
    out->Clear();
    return grpc::Status(grpc::StatusCode::ABORTED,
                        "the claim of " + quoted(device_id) + " ended while it was recorded");
  }
  // Subscribers of other connections stop receiving this device's events;
  // tell them through the device's claimed_by.
  notify_change_locked(devices_[device_id].device, v1::DeviceChange::STATE_CHANGED);
  expiry_cv_.notify_all();
  return grpc::Status::OK;
}

grpc::Status DeviceHub::renew(Connection& conn, const std::string& lease_id, std::uint32_t seconds,
                              v1::Lease* out) {
  if (seconds == 0 || seconds > options_.max_lease_seconds) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "lease seconds must be 1.." + std::to_string(options_.max_lease_seconds));
  }
  auto not_held = [&] {
    return grpc::Status(
        grpc::StatusCode::NOT_FOUND,
        "no lease " + quoted(lease_id) + " held by this connection (expired or released?)");
  };
  auto find = [&]() -> LeaseEntry* {
    for (auto& [dev, l] : leases_) {
      if (l.lease_id == lease_id) return l.conn_id == conn.id ? &l : nullptr;
    }
    return nullptr;
  };
  auto snap = policy_.current();
  std::unique_lock lock(mu_);
  auto* l = find();
  if (!l) return not_held();
  const std::string device_id = l->device_id;
  // A renewal is a claim again: decided by policy and the health gate now,
  // and audited like a claim (a lease cannot outlive the rights it needs).
  auto a = check_locked(conn, device_id, Op::claim, false, snap);
  if (!a.ok()) {
    end_lease_locked(device_id, "lease_revoked", "renewal refused: " + a.status.error_message());
    return a.status;
  }
  AuditEntry e = decision_entry(&conn, a.decision.app, device_id, Op::claim, a.decision,
                                "lease renewed " + std::to_string(seconds) + "s");
  lock.unlock();
  auto st = audit_durable(e, "renewal of " + quoted(device_id));
  lock.lock();
  if (!st.ok()) return st;  // the lease runs out as it would have
  l = find();
  if (!l) return not_held();
  l->seconds = seconds;
  l->expires = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  l->expires_wall = std::chrono::system_clock::now() + std::chrono::seconds(seconds);
  out->set_lease_id(l->lease_id);
  out->set_device_id(device_id);
  out->set_seconds(seconds);
  set_time(out->mutable_expires(), l->expires_wall);
  expiry_cv_.notify_all();
  return grpc::Status::OK;
}

grpc::Status DeviceHub::release(Connection& conn, const std::string& lease_id) {
  std::lock_guard lock(mu_);
  for (auto& [dev, l] : leases_) {
    if (l.lease_id != lease_id || l.conn_id != conn.id) continue;
    end_lease_locked(std::string(dev), "lease_released", "released by holder");
    return grpc::Status::OK;
  }
  return grpc::Status(
      grpc::StatusCode::NOT_FOUND,
      "no lease " + quoted(lease_id) + " held by this connection (expired or released?)");
}

void DeviceHub::end_lease_locked(const std::string& device_id, const std::string& event,
                                 const std::string& reason) {
  auto it = leases_.find(device_id);
  if (it == leases_.end()) return;
  AuditEntry e;
  e.event = event;
  auto conn = it->second.conn.lock();
  e.caller = conn ? &conn->caller() : nullptr;
  e.app = it->second.app;
  e.device = device_id;
  e.reason = reason;
  audit_.record(e);
  leases_.erase(it);
  if (auto d = devices_.find(device_id); d != devices_.end()) {
    notify_change_locked(d->second.device, v1::DeviceChange::STATE_CHANGED);
    // A card keeps its session (verified PIN, selected applet) across
    // APDUs: reset it when a lease ends, so nothing carries over to the
    // next app. Off this thread: the reset talks to the card.
    bool resettable = false;
    for (auto& a : d->second.actions) resettable |= a.name == "reset";
    if (resettable && d->second.driver) {
      {
        std::lock_guard lock(background_mu_);
        ++background_;
      }
      std::thread([this, driver = d->second.driver, device_id] {
        drivers::ActionRequest r;
        r.device_id = device_id;
        r.action = "reset";
        auto res = driver->act(r);
        AuditEntry e;
        e.event = "card_reset";
        e.device = device_id;
        e.reason = res ? "after the lease ended"
                       : "after the lease ended, failed: " + res.error().message();
        audit_.record(e);
        std::lock_guard lock(background_mu_);
        --background_;
        background_cv_.notify_all();
      }).detach();
    }
  }
}

grpc::Status DeviceHub::send(Connection& conn, const std::string& device_id,
                             const std::string& data, std::uint64_t* written) {
  if (data.size() > kMaxSend) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "send at most " + std::to_string(kMaxSend) + " bytes at a time");
  }
  drivers::Driver* driver = nullptr;
  {
    if (auto st = verify_caller(conn, device_id, "write"); !st.ok()) return st;
    auto snap = policy_.current();
    std::lock_guard lock(mu_);
    auto a = check_locked(conn, device_id, Op::write, false, snap);
    if (!a.ok()) return a.status;
    auto l = leases_.find(device_id);
    if (l == leases_.end() || l->second.conn_id != conn.id) {
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                          "claim " + quoted(device_id) + " before sending to it");
    }
    driver = devices_[device_id].driver;
  }
  if (!driver) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        quoted(device_id) + " does not accept data");
  }
  auto r = driver->write(device_id, data);
  if (!r) return grpc::Status(grpc::StatusCode::UNAVAILABLE, r.error().message());
  *written = *r;
  return grpc::Status::OK;
}

grpc::Status DeviceHub::act(Connection& conn, const drivers::ActionRequest& request,
                            drivers::ActionResult* result) {
  drivers::Driver* driver = nullptr;
  Access access;
  std::string op_text;
  {
    if (auto st = verify_caller(conn, request.device_id, request.action); !st.ok()) return st;
    auto snap = policy_.current();
    std::lock_guard lock(mu_);
    auto dev = devices_.find(request.device_id);
    if (dev == devices_.end()) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "no device " + quoted(request.device_id) +
                                                           "; `portierctl devices` lists them");
    }
    const drivers::ActionSpec* spec = nullptr;
    for (auto& a : dev->second.actions) {
      if (a.name == request.action) spec = &a;
    }
    if (!spec) {
      std::string names;
      for (auto& a : dev->second.actions) names += (names.empty() ? "" : ", ") + a.name;
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          quoted(request.device_id) + " has no action " + quoted(request.action) +
                              " (it offers: " + (names.empty() ? "none" : names) + ")");
    }
    auto op = policy::parse_op(spec->op);
    if (!op) {
      return grpc::Status(grpc::StatusCode::INTERNAL, "driver declared unknown op " + spec->op);
    }
    op_text = spec->op;
    access = check_locked(conn, request.device_id, *op, /*audit_allow=*/false, snap);
    if (!access.ok()) return access.status;
    if (spec->needs_claim) {
      auto l = leases_.find(request.device_id);
      if (l == leases_.end() || l->second.conn_id != conn.id) {
        return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                            "claim " + quoted(request.device_id) + " before " + request.action);
      }
    }
    driver = dev->second.driver;
  }
  if (!driver) return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "device has no driver");
  // Every denial and failure is audited; of the allowed actions, all but the
  // high-volume APDU exchange (pairing, port switching, power ...), and those
  // only run once their record is on disk.
  if (op_text != "transmit") {
    auto e = decision_entry(&conn, access.decision.app, request.device_id,
                            *policy::parse_op(op_text), access.decision, "");
    if (auto st = audit_durable(e, request.action + " on " + quoted(request.device_id)); !st.ok()) {
      return st;
    }
  }
  auto r = driver->act(request);
  if (!r) {
    // Failed conversions are audited with the source and the reason
    // (never the payload).
    AuditEntry e;
    e.event = "action_failed";
    e.caller = &conn.caller();
    e.app = access.decision.app;
    e.device = request.device_id;
    e.op = op_text;
    e.reason = request.action + ": " + r.error().message();
    audit_.record(e);
    grpc::StatusCode code = grpc::StatusCode::UNAVAILABLE;
    switch (r.error().code) {
      case Errc::invalid_argument:
        code = grpc::StatusCode::INVALID_ARGUMENT;
        break;
      case Errc::not_found:
        code = grpc::StatusCode::NOT_FOUND;
        break;
      case Errc::permission_denied:
        code = grpc::StatusCode::PERMISSION_DENIED;
        break;
      case Errc::failed_precondition:
        code = grpc::StatusCode::FAILED_PRECONDITION;
        break;
      case Errc::resource_exhausted:
        code = grpc::StatusCode::RESOURCE_EXHAUSTED;
        break;
      case Errc::internal:
        code = grpc::StatusCode::INTERNAL;
        break;
      default:
        break;
    }
    return grpc::Status(code, r.error().message());
  }
  *result = std::move(*r);
  return grpc::Status::OK;
}

void DeviceHub::record_self_tests(const std::vector<drivers::SelfTestResult>& results) {
  std::lock_guard lock(mu_);
  for (auto& r : results) {
    self_tests_.push_back(r);
    AuditEntry e;
    e.event = "self_test";
    e.device = r.device_id;
    e.decision = r.passed() ? "pass" : "fail";
    e.reason = std::string("present=") + (r.present ? "yes" : "no") +
               " responding=" + (r.responding ? "yes" : "no") +
               " identity=" + (r.identity_ok ? "ok" : "MISMATCH") +
               (r.detail.empty() ? "" : "; " + r.detail);
    audit_.record(e);
    if (r.passed()) {
      log_info("self-test " + r.device_id + ": passed");
    } else {
      log_warning("self-test " + r.device_id + ": FAILED: " + e.reason);
    }
  }
}

void DeviceHub::drain_background() {
  std::unique_lock lock(background_mu_);
  background_cv_.wait(lock, [&] { return background_ == 0; });
}

void DeviceHub::connection_closed(const std::shared_ptr<Connection>& conn) {
  std::lock_guard lock(mu_);
  std::vector<std::string> held;
  for (auto& [dev, l] : leases_) {
    if (l.conn_id == conn->id) held.push_back(dev);
  }
  for (auto& dev : held) end_lease_locked(dev, "lease_released", "holder disconnected");
}

void DeviceHub::end_all_streams(const grpc::Status& status) {
  std::vector<std::shared_ptr<EventStream>> subs;
  std::vector<std::shared_ptr<ChangeStream>> watchers;
  {
    std::lock_guard lock(mu_);
    streams_ended_ = true;  // later subscribe/watch calls are refused
    for (auto& [id, s] : subs_) subs.push_back(s.stream);
    for (auto& [id, w] : watchers_) watchers.push_back(w.stream);
  }
  for (auto& s : subs) s->end(status);
  for (auto& w : watchers) w->end(status);
}

void DeviceHub::policy_changed() {
  auto snap = policy_.current();
  std::vector<std::pair<std::shared_ptr<EventStream>, std::string>> ending;
  {
    std::lock_guard lock(mu_);
    for (auto& [id, s] : subs_) {
      auto dev = devices_.find(s.device_id);
      if (dev == devices_.end()) continue;
      auto d = decide_locked(*s.conn, dev->second, Op::read, snap);
      if (!d.allow) {
        ending.emplace_back(s.stream, "the new policy no longer allows " +
                                          describe(*s.conn, d.app) + " to read '" + s.device_id +
                                          "'");
      }
    }
  }
  for (auto& [s, why] : ending) s->end(grpc::Status(grpc::StatusCode::PERMISSION_DENIED, why));

  // Leases the new policy no longer grants are taken back.
  std::lock_guard lock(mu_);
  std::vector<std::string> revoked;
  for (auto& [dev_id, l] : leases_) {
    auto conn = l.conn.lock();
    auto dev = devices_.find(dev_id);
    if (!conn || dev == devices_.end() ||
        !decide_locked(*conn, dev->second, Op::claim, snap).allow) {
      revoked.push_back(dev_id);
    }
  }
  for (auto& dev : revoked) {
    end_lease_locked(dev, "lease_revoked", "the new policy no longer allows the claim");
  }
}

void DeviceHub::set_sever(std::function<void(std::uint64_t)> fn) {
  std::lock_guard lock(mu_);
  sever_ = std::move(fn);
}

void DeviceHub::reverify_streams() {
  // Streams were allowed at subscribe time; a process that has since exec'd
  // another program (or exited, leaving the socket to a child) loses them.
  std::map<std::uint64_t, std::shared_ptr<Connection>> conns;
  {
    std::lock_guard lock(mu_);
    for (auto& [id, s] : subs_) conns[s.conn->id] = s.conn;
    for (auto& [id, w] : watchers_) conns[w.conn->id] = w.conn;
  }
  for (auto& [cid, conn] : conns) {
    if (!conn->identify_error.empty()) continue;
    auto ok = verify_peer(conn->identity);
    if (ok) continue;
    std::vector<std::shared_ptr<EventStream>> subs;
    std::vector<std::shared_ptr<ChangeStream>> watchers;
    {
      std::lock_guard lock(mu_);
      for (auto& [id, s] : subs_) {
        if (s.conn->id == cid) subs.push_back(s.stream);
      }
      for (auto& [id, w] : watchers_) {
        if (w.conn->id == cid) watchers.push_back(w.stream);
      }
      std::vector<std::string> held;
      for (auto& [dev, l] : leases_) {
        if (l.conn_id == cid) held.push_back(dev);
      }
      for (auto& dev : held) end_lease_locked(dev, "lease_revoked", ok.error().why);
      AuditEntry e;
      e.event = "identity_lost";
      e.caller = &conn->caller();
      e.reason = ok.error().why;
      audit_.record(e);
    }
    grpc::Status st(grpc::StatusCode::PERMISSION_DENIED, ok.error().message());
    for (auto& s : subs) s->end(st);
    for (auto& w : watchers) w->end(st);
    // Whatever runs now behind that socket gets nothing more from us.
    std::function<void(std::uint64_t)> sever;
    {
      std::lock_guard lock(mu_);
      sever = sever_;
    }
    if (sever) sever(cid);
  }
}

void DeviceHub::expiry_loop() {
  std::unique_lock lock(mu_);
  auto next_verify = std::chrono::steady_clock::now() + kReverifyEvery;
  while (!stopping_) {
    auto now = std::chrono::steady_clock::now();
    if (now >= next_verify) {
      lock.unlock();
      reverify_streams();
      lock.lock();
      next_verify = now + kReverifyEvery;
      continue;
    }
    auto next = next_verify;
    std::vector<std::string> expired;
    for (auto& [dev, l] : leases_) {
      if (l.expires <= now) {
        expired.push_back(dev);
      } else {
        next = std::min(next, l.expires);
      }
    }
    for (auto& dev : expired) end_lease_locked(dev, "lease_expired", "lease ran out");
    if (!expired.empty()) continue;
    expiry_cv_.wait_until(lock, next);
  }
}

std::pair<policy::Health, std::vector<std::string>> DeviceHub::health_locked() const {
  auto state = external_health_;
  std::vector<std::string> reasons = external_reasons_;
  auto worse = [&](policy::Health s) { state = std::max(state, s); };
  for (auto& [id, dev] : devices_) {
    if (dev.device.state() == v1::DEVICE_STATE_READY) continue;
    worse(policy::Health::degraded);
    reasons.push_back(id + " is " + v1::DeviceState_Name(dev.device.state()) +
                      (dev.device.state_reason().empty() ? "" : ": " + dev.device.state_reason()));
  }
  for (auto& t : self_tests_) {
    if (t.passed()) continue;
    worse(policy::Health::degraded);
    reasons.push_back("self-test of " + t.device_id + " failed" +
                      (t.detail.empty() ? "" : ": " + t.detail));
  }
  auto st = policy_.status();
  if (!st.last_error.empty()) {
    worse(policy::Health::degraded);
    reasons.push_back("policy reload rejected (old policy stays in force): " + st.last_error);
  }
  for (auto& [component, state] : components_) {
    worse(state.first);
    reasons.push_back(component + " failed: " + state.second);
  }
  if (auto f = audit_.failure(); !f.empty()) {
    worse(options_.audit_failure_health);
    reasons.push_back(
        "the audit trail cannot be written, operations that must be audited are "
        "refused: " +
        f);
  }
  return {state, reasons};
}

void DeviceHub::set_external_health(policy::Health state, std::vector<std::string> reasons) {
  std::lock_guard lock(mu_);
  external_health_ = state;
  external_reasons_ = std::move(reasons);
  terminal_changed_locked();
}

void DeviceHub::set_component_health(const std::string& component, policy::Health state,
                                     std::string reason) {
  std::lock_guard lock(mu_);
  if (state == policy::Health::ok) {
    components_.erase(component);
  } else {
    components_[component] = {state, std::move(reason)};
  }
  terminal_changed_locked();
}

void DeviceHub::audit_state_changed() {
  std::lock_guard lock(mu_);
  terminal_changed_locked();
}

void DeviceHub::revoke_gated_leases_locked() {
  // Leases whose claim the terminal's health now refuses are taken back.
  auto snap = policy_.current();
  std::vector<std::pair<std::string, std::string>> gated;
  for (auto& [dev_id, l] : leases_) {
    auto conn = l.conn.lock();
    auto dev = devices_.find(dev_id);
    if (!conn || dev == devices_.end()) continue;
    auto d = decide_locked(*conn, dev->second, Op::claim, snap);
    if (!d.allow) continue;  // policy_changed() handles those
    if (auto why = health_gate_locked(dev->second, Op::claim, d); !why.empty()) {
      gated.emplace_back(dev_id, why);
    }
  }
  for (auto& [dev, why] : gated) end_lease_locked(dev, "lease_revoked", why);
}

void DeviceHub::terminal_changed_locked() {
  revoke_gated_leases_locked();
  // Apps with `watch` on the terminal see every health change.
  auto [now, why] = health_locked();
  auto& t = devices_.at(kTerminal).device;
  std::string reason = now == policy::Health::ok         ? "health OK"
                       : now == policy::Health::degraded ? "health DEGRADED"
                                                         : "health COMPROMISED";
  for (std::size_t i = 0; i < why.size(); ++i) reason += (i ? "; " : ": ") + why[i];
  t.set_state_reason(reason);
  notify_change_locked(t, v1::DeviceChange::STATE_CHANGED);
}

void DeviceHub::set_compromised_refusals(std::vector<HealthRefusal> refusals) {
  std::lock_guard lock(mu_);
  refusals_ = std::move(refusals);
}

std::optional<policy::DeviceRef> DeviceHub::device_ref(const std::string& id) {
  std::lock_guard lock(mu_);
  auto it = devices_.find(id);
  if (it == devices_.end()) return std::nullopt;
  const auto& d = it->second.device;
  return policy::DeviceRef{
      d.id(), d.device_class(), {d.attributes().begin(), d.attributes().end()}};
}

void DeviceHub::fill_health(v1::Health* h) {
  auto st = policy_.status();
  auto* p = h->mutable_policy();
  p->set_path(st.path);
  p->set_generation(st.generation);
  set_time(p->mutable_loaded_at(), st.loaded_at);
  p->set_rules(static_cast<std::uint32_t>(st.rules));
  p->set_apps(static_cast<std::uint32_t>(st.apps));
  p->set_last_error(st.last_error);
  if (!st.last_error.empty()) set_time(p->mutable_last_error_at(), st.last_error_at);
  h->set_uptime_seconds(static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started_)
          .count()));
  std::lock_guard lock(mu_);
  auto [state, reasons] = health_locked();
  h->set_state(state == policy::Health::ok         ? v1::Health::OK
               : state == policy::Health::degraded ? v1::Health::DEGRADED
                                                   : v1::Health::COMPROMISED);
  for (auto& r : reasons) h->add_reasons(r);
  for (auto& [id, dev] : devices_) {
    auto* d = h->add_devices();
    *d = dev.device;
    if (auto l = leases_.find(id); l != leases_.end()) d->set_claimed_by(l->second.app);
  }
  for (auto& t : self_tests_) {
    auto* x = h->add_self_tests();
    x->set_device_id(t.device_id);
    x->set_passed(t.passed());
    x->set_present(t.present);
    x->set_responding(t.responding);
    x->set_identity_ok(t.identity_ok);
    x->set_detail(t.detail);
  }
  for (auto& [id, s] : subs_) {
    auto* x = h->add_subscribers();
    x->set_id(id);
    x->set_app(s.app);
    x->set_pid(static_cast<std::uint32_t>(s.conn->caller().pid));
    x->set_device_id(s.device_id);
    x->set_delivered(s.stream->delivered());
    x->set_dropped(s.stream->dropped());
    x->set_queued(static_cast<std::uint32_t>(s.stream->queued()));
  }
}

}  // namespace portier::gateway
