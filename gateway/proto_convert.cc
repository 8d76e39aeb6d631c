#include "proto_convert.h"

namespace portier::gateway {
namespace {

void set_time(google::protobuf::Timestamp* ts, std::chrono::system_clock::time_point tp) {
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(tp.time_since_epoch()).count();
  ts->set_seconds(ns / 1000000000);
  ts->set_nanos(static_cast<int>(ns % 1000000000));
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

v1::DeviceChange::Kind to_proto(ChangeKind k) {
  switch (k) {
    case ChangeKind::existing:
      return v1::DeviceChange::EXISTING;
    case ChangeKind::added:
      return v1::DeviceChange::ADDED;
    case ChangeKind::removed:
      return v1::DeviceChange::REMOVED;
    case ChangeKind::state_changed:
      return v1::DeviceChange::STATE_CHANGED;
  }
  return v1::DeviceChange::KIND_UNSPECIFIED;
}

v1::Health::State to_proto(policy::Health h) {
  return h == policy::Health::ok         ? v1::Health::OK
         : h == policy::Health::degraded ? v1::Health::DEGRADED
                                         : v1::Health::COMPROMISED;
}

}  // namespace

void to_proto(const HealthState& health, v1::Health* out) {
  out->set_state(to_proto(health.state));
  for (auto& reason : health.reasons) out->add_reasons(reason);
}

void to_proto(std::chrono::system_clock::time_point time, google::protobuf::Timestamp* out) {
  set_time(out, time);
}

v1::Device to_proto(const DeviceView& device) {
  v1::Device d;
  const auto& info = device.info;
  d.set_id(info.id);
  d.set_device_class(info.device_class);
  d.set_driver(info.driver);
  d.set_state(to_proto(device.state));
  d.set_state_reason(device.state_reason);
  for (auto& c : info.capabilities) d.add_capabilities(c);
  for (auto& [k, v] : info.attributes) (*d.mutable_attributes())[k] = v;
  for (auto& a : info.actions) {
    auto* pa = d.add_actions();
    pa->set_name(a.name);
    pa->set_op(a.op);
    pa->set_needs_claim(a.needs_claim);
  }
  d.set_claimed_by(device.claimed_by);
  return d;
}

v1::PeripheralEvent to_proto(const DeviceEventRecord& event) {
  v1::PeripheralEvent pe;
  pe.set_device_id(event.device_id);
  pe.set_sequence(event.sequence);
  set_time(pe.mutable_time(), event.time);
  const auto& payload = event.event.payload;
  if (auto* scan = std::get_if<drivers::ScanData>(&payload)) {
    auto* s = pe.mutable_scan();
    s->set_raw(scan->raw);
    s->set_text(scan->text);
    s->set_symbology(scan->symbology);
    s->set_aim_id(scan->aim_id);
    s->set_encoding(scan->encoding);
    s->set_decode_error(scan->decode_error);
  } else if (auto* f = std::get_if<drivers::FaultData>(&payload)) {
    pe.mutable_fault()->set_code(f->code);
    pe.mutable_fault()->set_message(f->message);
  } else if (auto* c = std::get_if<drivers::CardData>(&payload)) {
    auto* card = pe.mutable_card();
    card->set_kind(c->kind == drivers::CardData::Kind::inserted ? v1::Card::INSERTED
                                                                : v1::Card::REMOVED);
    card->set_atr(c->atr);
    card->set_uid(c->uid);
  } else if (auto* a = std::get_if<drivers::AlarmData>(&payload)) {
    auto* alarm = pe.mutable_alarm();
    alarm->set_code(a->code);
    alarm->set_message(a->message);
    for (auto& [k, v] : a->details) (*alarm->mutable_details())[k] = v;
  }
  return pe;
}

v1::DeviceChange to_proto(const DeviceChangeRecord& change) {
  v1::DeviceChange ch;
  ch.set_kind(to_proto(change.kind));
  *ch.mutable_device() = to_proto(change.device);
  set_time(ch.mutable_time(), change.time);
  return ch;
}

void to_proto(const Lease& lease, v1::Lease* out) {
  out->set_lease_id(lease.lease_id);
  out->set_device_id(lease.device_id);
  out->set_seconds(lease.seconds);
  set_time(out->mutable_expires(), lease.expires_wall);
}

void to_proto(const HealthReport& r, v1::Health* h) {
  auto* p = h->mutable_policy();
  p->set_path(r.policy.path);
  p->set_generation(r.policy.generation);
  set_time(p->mutable_loaded_at(), r.policy.loaded_at);
  p->set_rules(static_cast<std::uint32_t>(r.policy.rules));
  p->set_apps(static_cast<std::uint32_t>(r.policy.apps));
  p->set_last_error(r.policy.last_error);
  if (!r.policy.last_error.empty()) set_time(p->mutable_last_error_at(), r.policy.last_error_at);
  h->set_uptime_seconds(static_cast<std::uint64_t>(r.uptime.count()));
  to_proto(r.health, h);
  for (auto& d : r.devices) *h->add_devices() = to_proto(d);
  for (auto& t : r.self_tests) {
    auto* x = h->add_self_tests();
    x->set_device_id(t.device_id);
    x->set_passed(t.passed());
    x->set_present(t.present);
    x->set_responding(t.responding);
    x->set_identity_ok(t.identity_ok);
    x->set_detail(t.detail);
  }
  for (auto& s : r.subscribers) {
    auto* x = h->add_subscribers();
    x->set_id(s.id);
    x->set_app(s.app);
    x->set_pid(static_cast<std::uint32_t>(s.pid));
    x->set_device_id(s.device_id);
    x->set_delivered(s.stats.delivered);
    x->set_dropped(s.stats.dropped);
    x->set_queued(static_cast<std::uint32_t>(s.stats.queued));
  }
}

}  // namespace portier::gateway
