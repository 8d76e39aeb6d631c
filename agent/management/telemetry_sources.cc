#include "agent/management/telemetry_sources.h"

#include <google/protobuf/util/json_util.h>

#include <utility>

#include "agent/audit_verify.h"
#include "common/log.h"
#include "gateway/proto_convert.h"
#include "portier/v1/audit.pb.h"
#include "portier/v1/telemetry.pb.h"

namespace portier::management {
namespace {

using Clock = std::chrono::steady_clock;

// The record number of an audit line; 0 when it is not a chained record.
std::uint64_t line_seq(const std::string& line) {
  auto c = agent::parse_chained_line(line);
  return c ? c->seq : 0;
}

}  // namespace

// Device changes only mark the inventory (and, for the terminal, the
// health) for the sources' thread; push() never blocks.
class TelemetrySources::ChangeListener final
    : public gateway::Subscriber<gateway::DeviceChangeRecord> {
 public:
  explicit ChangeListener(TelemetrySources& owner) : owner_(owner) {}
  bool push(std::shared_ptr<const gateway::DeviceChangeRecord> change) override {
    if (change->kind == gateway::ChangeKind::existing) return true;
    {
      std::lock_guard lock(owner_.mu_);
      if (change->device.info.id == "terminal") {
        owner_.health_due_ = owner_.health_changed_ = true;
      } else {
        if (!owner_.inventory_dirty_) owner_.inventory_since_ = Clock::now();
        owner_.inventory_dirty_ = true;
      }
      ++stats_.delivered;
    }
    owner_.cv_.notify_all();
    return true;
  }
  void end(const Result<void>&) override {}
  gateway::SubscriberStats stats() const override { return stats_; }

 private:
  TelemetrySources& owner_;
  gateway::SubscriberStats stats_;
};

TelemetrySources::TelemetrySources(gateway::GatewayView* gateway, AuditSink* audit, Uplink& uplink,
                                   BirthInfo birth, TelemetryIntervals intervals,
                                   std::uint64_t audit_cursor,
                                   std::function<void(std::uint64_t)> save_cursor,
                                   AuditCheckpointer* checkpointer)
    : gateway_(gateway),
      audit_(audit),
      uplink_(uplink),
      birth_(std::move(birth)),
      save_cursor_(std::move(save_cursor)),
      checkpointer_(checkpointer),
      intervals_(intervals),
      audit_cursor_(audit_cursor) {}

TelemetrySources::~TelemetrySources() { stop(); }

void TelemetrySources::start() {
  if (thread_.joinable()) return;
  stopping_ = false;
  decisions_from_ = std::chrono::system_clock::now();
  send_birth();
  if (gateway_) {
    listener_ = std::make_shared<ChangeListener>(*this);
    listen_id_ = gateway_->listen_changes(listener_);
  }
  if (audit_) {
    // Follow first, then catch up from the trail's tail: a line is taken once
    // by its number, whichever of the two brings it.
    follow_id_ = audit_->follow([this](const std::string& line) { on_audit_line(line); });
    auto tail = audit_->tail(audit_reader_ ? 1 : intervals_.max_audit_queued);
    std::lock_guard lock(mu_);
    if (audit_reader_) {
      // Everything after the durable cursor is read back from the trail.
      std::uint64_t head = 0;
      for (auto& l : tail) head = std::max(head, line_seq(l));
      for (auto& [s, l] : audit_lines_) head = std::max(head, s);
      if (head > audit_cursor_) {
        audit_behind_ = true;
        audit_head_ = head;
        audit_lines_.clear();
      }
    } else {
      std::map<std::uint64_t, std::string> merged;
      const auto base = audit_cursor_;
      for (auto& l : tail) {
        if (auto s = line_seq(l); s > base) merged.emplace(s, l);
      }
      for (auto& [s, l] : audit_lines_) merged.emplace(s, std::move(l));
      audit_lines_.assign(merged.begin(), merged.end());
      if (!audit_lines_.empty()) {
        audit_cursor_ = std::max(audit_cursor_, audit_lines_.back().first);
      }
    }
  }
  thread_ = std::thread([this] { run(); });
}

void TelemetrySources::stop() {
  if (audit_ && follow_id_ >= 0) audit_->unfollow(follow_id_);
  follow_id_ = -1;
  if (gateway_ && listen_id_) gateway_->unlisten_changes(listen_id_);
  listen_id_ = 0;
  {
    std::lock_guard lock(mu_);
    if (!thread_.joinable()) return;
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
  // At shutdown: what is left of the trail, and a checkpoint of its head.
  send_audit();
  send_checkpoint();
}

void TelemetrySources::set_intervals(std::chrono::seconds health, std::chrono::seconds decisions,
                                     std::chrono::seconds checkpoint) {
  {
    std::lock_guard lock(mu_);
    if (health.count() > 0) intervals_.health = health;
    if (decisions.count() > 0) intervals_.decisions = decisions;
    if (checkpoint.count() > 0) intervals_.checkpoint = checkpoint;
  }
  cv_.notify_all();
}

void TelemetrySources::report_health_now() {
  {
    std::lock_guard lock(mu_);
    health_due_ = true;
  }
  cv_.notify_all();
}

void TelemetrySources::on_audit_line(const std::string& line) {
  const auto seq = line_seq(line);
  {
    std::lock_guard lock(mu_);
    if (seq == 0 || seq <= audit_cursor_ || seq <= audit_head_) return;
    // Bounded: when the queue is full, this line and those after it are
    // read back from the trail once there is room (catch_up_audit).
    if (audit_behind_ || audit_lines_.size() >= intervals_.max_audit_queued) {
      audit_behind_ = true;
      audit_head_ = seq;
    } else {
      audit_lines_.emplace_back(seq, line);
      audit_cursor_ = seq;
    }
    // Decisions are counted here, as they are made, from the typed record.
    v1::AuditRecord r;
    google::protobuf::util::JsonParseOptions o;
    o.ignore_unknown_fields = true;
    if (line.find("\"event\":\"decision\"") != std::string::npos &&
        google::protobuf::util::JsonStringToMessage(line, &r, o).ok()) {
      std::string app = r.app().name();
      if (app.empty()) app = "uid " + std::to_string(r.app().uid());
      ++decisions_[{app, r.device(), r.op(), v1::AuditRecord::Decision_Name(r.decision())}];
    }
  }
  cv_.notify_all();
}

void TelemetrySources::report_policy_changed() {
  {
    std::lock_guard lock(mu_);
    birth_due_ = true;
  }
  cv_.notify_all();
}

void TelemetrySources::send_birth() {
  v1::Birth b;
  b.set_portierd_version(birth_.portierd_version);
  b.set_session_epoch(uplink_.session_epoch());
  b.set_key_algorithm(birth_.key_algorithm);
  b.set_public_key_pem(birth_.public_key_pem);
  PolicyInForce policy{birth_.policy_sha256, birth_.policy_version};
  if (policy_source_) policy = policy_source_();
  b.set_policy_sha256(policy.sha256);
  b.set_policy_version(policy.version);
  {
    std::lock_guard lock(mu_);
    birth_policy_ = policy.sha256;
  }
  if (gateway_) {
    for (auto& d : gateway_->devices()) *b.add_devices() = gateway::to_proto(d);
    gateway::to_proto(gateway_->health(), b.mutable_health());
  }
  uplink_.submit(v1::PAYLOAD_BIRTH, b.SerializeAsString(), outbox::Priority::security);
}

void TelemetrySources::send_health(bool changed) {
  if (!gateway_) return;
  v1::HealthReport r;
  r.set_changed(changed);
  gateway::to_proto(gateway_->health(), r.mutable_health());
  for (auto& d : gateway_->devices()) *r.mutable_health()->add_devices() = gateway::to_proto(d);
  // A change of the verdict is a security record; the periodic one is not.
  uplink_.submit(v1::PAYLOAD_HEALTH, r.SerializeAsString(),
                 changed ? outbox::Priority::security : outbox::Priority::telemetry);
}

void TelemetrySources::send_inventory() {
  if (!gateway_) return;
  v1::Inventory inv;
  for (auto& d : gateway_->devices()) *inv.add_devices() = gateway::to_proto(d);
  uplink_.submit(v1::PAYLOAD_INVENTORY, inv.SerializeAsString(), outbox::Priority::inventory);
}

void TelemetrySources::catch_up_audit() {
  std::uint64_t first = 0, last = 0;
  {
    std::lock_guard lock(mu_);
    if (!audit_behind_) return;
    const auto room = intervals_.max_audit_queued > audit_lines_.size()
                          ? intervals_.max_audit_queued - audit_lines_.size()
                          : 0;
    if (room == 0) return;  // back-pressure: the queue drains first
    first = audit_cursor_ + 1;
    last = audit_cursor_ + room;
  }
  std::vector<std::pair<std::uint64_t, std::string>> read;
  if (audit_reader_) {
    auto lines = audit_reader_(first, last);
    if (!lines && lines.error().code != Errc::not_found) {
      log_warning("management: audit records from " + std::to_string(first) +
                  " cannot be read back yet: " + lines.error().message());
      return;
    }
    if (lines) {
      for (auto& l : *lines) {
        if (auto s = line_seq(l); s >= first && s <= last) read.emplace_back(s, std::move(l));
      }
    }
  } else {
    for (auto& l : audit_->tail(intervals_.max_audit_queued)) {
      if (auto s = line_seq(l); s >= first && s <= last) read.emplace_back(s, std::move(l));
    }
  }
  std::lock_guard lock(mu_);
  if (read.empty()) {
    // The trail holds none of them any more (rotated away, or no reader):
    // said once, and the cursor moves on to what it still holds.
    const auto to = std::min(last, audit_head_);
    log_warning("management: audit records " + std::to_string(first) + ".." + std::to_string(to) +
                " are no longer in the trail and cannot be sent");
    audit_cursor_ = to;
  } else {
    for (auto& [s, l] : read) {
      if (s <= audit_cursor_) continue;
      audit_lines_.emplace_back(s, std::move(l));
      audit_cursor_ = s;
    }
  }
  if (audit_cursor_ >= audit_head_) audit_behind_ = false;
}

void TelemetrySources::send_audit() {
  // Batches bounded in records and bytes (an envelope must stay well below
  // the fleet's limit whatever the lines hold).
  constexpr std::size_t kMaxBatchBytes = 256 * 1024;
  for (;;) {
    // While a key rotation holds the uplink nothing is committed: the lines
    // stay in the trail (the durable cursor has not passed them) instead of
    // piling up in the uplink's queue, and stop() waits on no flush.
    if (uplink_.held()) return;
    catch_up_audit();
    v1::AuditBatch batch;
    std::vector<std::pair<std::uint64_t, std::string>> taken;
    {
      std::lock_guard lock(mu_);
      if (audit_lines_.empty()) return;
      std::size_t bytes = 0;
      while (!audit_lines_.empty() && taken.size() < intervals_.audit_batch &&
             (taken.empty() || bytes + audit_lines_.front().second.size() <= kMaxBatchBytes)) {
        bytes += audit_lines_.front().second.size();
        taken.push_back(std::move(audit_lines_.front()));
        audit_lines_.pop_front();
      }
    }
    batch.set_first_record(taken.front().first);
    for (auto& [seq, line] : taken) batch.add_records(line);
    if (!uplink_.submit(v1::PAYLOAD_AUDIT, batch.SerializeAsString(), outbox::Priority::security)) {
      // The uplink's queue is full: the lines go back, in order, for later.
      std::lock_guard lock(mu_);
      audit_lines_.insert(audit_lines_.begin(), std::make_move_iterator(taken.begin()),
                          std::make_move_iterator(taken.end()));
      return;
    }
    // The checkpoint covers what went to the uplink, never more.
    if (checkpointer_) {
      for (auto& [seq, line] : taken) checkpointer_->observe(seq, line);
    }
    // Committed: the next start catches up from after it.
    if (uplink_.flush(std::chrono::seconds(5)) && save_cursor_) save_cursor_(taken.back().first);
  }
}

void TelemetrySources::send_decisions(std::chrono::system_clock::time_point now) {
  v1::DecisionSummary s;
  {
    std::lock_guard lock(mu_);
    gateway::to_proto(decisions_from_, s.mutable_from());
    gateway::to_proto(now, s.mutable_to());
    for (auto& [key, n] : decisions_) {
      auto* c = s.add_counts();
      c->set_app(std::get<0>(key));
      c->set_device_id(std::get<1>(key));
      c->set_operation(std::get<2>(key));
      c->set_decision(std::get<3>(key));
      c->set_count(n);
    }
    decisions_.clear();
    decisions_from_ = now;
  }
  uplink_.submit(v1::PAYLOAD_DECISION_SUMMARY, s.SerializeAsString(), outbox::Priority::telemetry);
}

void TelemetrySources::send_checkpoint() {
  if (!checkpointer_) return;
  // Held for a key rotation: the envelope would be sealed past the cutover
  // under the next key, and the fleet checks the checkpoint with that key.
  // The next one after the hold covers the head then.
  if (uplink_.held()) return;
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
  auto c = checkpointer_->checkpoint(ms);
  if (!c) {
    log_warning("management: audit checkpoint: " + c.error().message());
    return;
  }
  if (!*c) return;
  v1::AuditCheckpoint p;
  p.set_terminal_id((*c)->terminal_id);
  p.set_seq((*c)->seq);
  p.set_head((*c)->head);
  p.set_time_ms((*c)->time_ms);
  p.set_session_epoch((*c)->epoch);
  p.set_key_id((*c)->key_id);
  p.set_signature((*c)->signature);
  if (!uplink_.submit_unless_held(v1::PAYLOAD_AUDIT_CHECKPOINT, p.SerializeAsString(),
                                  outbox::Priority::security)) {
    log_warning("management: audit checkpoint of record " + std::to_string((*c)->seq) +
                " not sent: the uplink is held (a key rotation) or full");
  }
}

void TelemetrySources::run() {
  auto next_health = Clock::now() + intervals_.health;
  auto next_decisions = Clock::now() + intervals_.decisions;
  auto next_audit = Clock::now();
  auto next_checkpoint = Clock::now() + intervals_.checkpoint;
  auto next_housekeeping =
      housekeeping_ ? Clock::now() + housekeeping_every_ : Clock::time_point::max();
  std::unique_lock lock(mu_);
  while (!stopping_) {
    auto wake =
        std::min({next_health, next_decisions, next_checkpoint, next_housekeeping,
                  audit_lines_.empty() && !audit_behind_ ? Clock::time_point::max() : next_audit,
                  inventory_dirty_ ? inventory_since_ + intervals_.inventory_settle
                                   : Clock::time_point::max()});
    cv_.wait_until(lock, wake, [&] {
      return stopping_ || health_due_ || birth_due_ ||
             ((!audit_lines_.empty() || audit_behind_) && Clock::now() >= next_audit) ||
             (inventory_dirty_ && Clock::now() >= inventory_since_ + intervals_.inventory_settle);
    });
    if (stopping_) break;
    const auto now = Clock::now();
    const bool health = health_due_ || now >= next_health;
    const bool changed = health_changed_;
    health_due_ = health_changed_ = false;
    const bool inventory =
        inventory_dirty_ && now >= inventory_since_ + intervals_.inventory_settle;
    if (inventory) inventory_dirty_ = false;
    const bool audit = (!audit_lines_.empty() || audit_behind_) && now >= next_audit;
    const bool decisions = now >= next_decisions;
    const bool checkpoint = now >= next_checkpoint;
    bool birth = std::exchange(birth_due_, false);
    const bool housekeeping = now >= next_housekeeping;
    lock.unlock();
    // A local edit of the policy: seen at the periodic health report.
    if (health && !birth && policy_source_) {
      const auto sha = policy_source_().sha256;
      std::lock_guard l(mu_);
      birth = sha != birth_policy_;
    }
    if (birth) send_birth();
    if (audit) send_audit();
    if (health) send_health(changed);
    if (inventory) send_inventory();
    if (decisions) send_decisions(std::chrono::system_clock::now());
    if (checkpoint) send_checkpoint();
    if (housekeeping) housekeeping_();
    lock.lock();
    if (housekeeping) next_housekeeping = now + housekeeping_every_;
    if (checkpoint) next_checkpoint = now + intervals_.checkpoint;
    if (health && !changed) next_health = now + intervals_.health;
    if (audit) next_audit = now + intervals_.audit_flush;
    if (decisions) next_decisions = now + intervals_.decisions;
  }
}

}  // namespace portier::management
