#include "agent/management/outbox_sender.h"

#include "common/log.h"
#include "portier/v1/envelope.pb.h"

namespace portier::management {

std::string payload_kind(int payload_type) {
  switch (payload_type) {
    case v1::PAYLOAD_BIRTH:
      return "birth";
    case v1::PAYLOAD_HEALTH:
      return "health";
    case v1::PAYLOAD_INVENTORY:
      return "inventory";
    case v1::PAYLOAD_DECISION_SUMMARY:
      return "decisions";
    case v1::PAYLOAD_AUDIT:
      return "audit";
    case v1::PAYLOAD_COMMAND_RESULT:
      return "result";
    case v1::PAYLOAD_DROP:
      return "drop";
    case v1::PAYLOAD_AUDIT_CHECKPOINT:
      return "checkpoint";
    default:
      return "other";
  }
}

OutboxSender::OutboxSender(outbox::Outbox& outbox, link::Link& link,
                           std::function<void(std::string)> on_command, SenderOptions options)
    : outbox_(outbox), link_(link), on_command_(std::move(on_command)), options_(options) {}

OutboxSender::~OutboxSender() { stop(); }

void OutboxSender::start() {
  std::lock_guard lock(mu_);
  if (thread_.joinable()) return;
  stopping_ = false;
  thread_ = std::thread([this] { run(); });
}

void OutboxSender::stop() {
  {
    std::lock_guard lock(mu_);
    if (!thread_.joinable()) return;
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void OutboxSender::wake() {
  {
    std::lock_guard lock(mu_);
    woken_ = true;
  }
  cv_.notify_all();
}

SenderStats OutboxSender::stats() const {
  std::lock_guard lock(mu_);
  auto s = stats_;
  s.in_flight = in_flight_.size();
  s.connected = connected_;
  return s;
}

void OutboxSender::on_connected() {
  {
    std::lock_guard lock(mu_);
    connected_ = true;
    // Everything not acknowledged goes again, oldest first.
    next_ = 0;
    in_flight_.clear();
    ++generation_;
    woken_ = true;
  }
  cv_.notify_all();
}

void OutboxSender::on_disconnected(const std::string& reason) {
  std::lock_guard lock(mu_);
  connected_ = false;
  stats_.last_disconnect = reason;
}

void OutboxSender::on_acknowledged(std::uint64_t id) {
  {
    std::lock_guard lock(mu_);
    in_flight_.erase(id);
    acks_.insert(id);
    last_progress_ = std::chrono::steady_clock::now();
    woken_ = true;
  }
  cv_.notify_all();
}

void OutboxSender::on_command(std::string bytes) {
  if (on_command_) on_command_(std::move(bytes));
}

bool OutboxSender::pump(std::unique_lock<std::mutex>& lock) {
  while (connected_ && !stopping_ && in_flight_.size() < options_.window) {
    const auto first = next_;
    const auto room = options_.window - in_flight_.size();
    const auto generation = generation_;
    lock.unlock();
    auto page = outbox_.from(first, room);
    lock.lock();
    if (generation != generation_) continue;  // reconnected meanwhile: start over
    if (!page) {
      log_warning("management: cannot read the outbox: " + page.error().message());
      return false;
    }
    if (page->empty()) return true;
    for (auto& r : *page) {
      if (!connected_ || stopping_) return true;
      if (r.sequence < next_) continue;  // a reconnect moved the cursor meanwhile
      if (acks_.contains(r.sequence)) {  // acknowledged, not yet deleted
        next_ = r.sequence + 1;
        continue;
      }
      v1::Envelope env;
      v1::EnvelopeBody body;
      const bool parsed = env.ParseFromString(r.envelope) && body.ParseFromString(env.body());
      link::Outgoing out{r.sequence, parsed ? payload_kind(body.payload_type()) : "other",
                         std::move(r.envelope)};
      if (in_flight_.empty()) last_progress_ = std::chrono::steady_clock::now();
      in_flight_.insert(r.sequence);
      lock.unlock();
      auto sent = link_.send(out);
      lock.lock();
      if (sent) {
        ++stats_.sent;
        if (!ever_sent_.insert(r.sequence).second) ++stats_.resent;
        if (ever_sent_.size() > 100000) ever_sent_.clear();  // only counts resends: bounded
      }
      if (generation != generation_) break;  // a reconnect reset the cursor meanwhile
      if (!sent) {
        in_flight_.erase(r.sequence);
        return false;
      }
      next_ = r.sequence + 1;
    }
  }
  return true;
}

void OutboxSender::run() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    cv_.wait_for(lock, options_.idle_poll, [&] { return stopping_ || woken_; });
    if (stopping_) break;
    woken_ = false;
    if (!acks_.empty()) {
      std::vector<std::uint64_t> acks(acks_.begin(), acks_.end());
      lock.unlock();
      auto ok = outbox_.ack_all(acks);
      lock.lock();
      for (auto a : acks) acks_.erase(a);
      if (!ok) {
        log_warning("management: cannot delete acknowledged envelopes: " + ok.error().message());
        // They stay in the outbox and go again: the fleet keeps one copy.
      } else {
        stats_.acknowledged += acks.size();
        for (auto a : acks) ever_sent_.erase(a);
      }
    }
    // No acknowledgement for long: everything in flight goes again.
    if (connected_ && !in_flight_.empty() &&
        std::chrono::steady_clock::now() - last_progress_ > options_.ack_timeout) {
      next_ = 0;
      in_flight_.clear();
      ++generation_;
      last_progress_ = std::chrono::steady_clock::now();
    }
    pump(lock);
  }
}

}  // namespace portier::management
