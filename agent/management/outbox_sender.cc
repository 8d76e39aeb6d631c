#include "agent/management/outbox_sender.h"

#include <algorithm>

#include "common/log.h"
#include "portier/v1/envelope.pb.h"

namespace portier::management {
namespace {

// Sequences one acknowledgement may delete: a genuine one never names more
// than a few runs; this only bounds the work a fleet's bug could cause.
constexpr std::uint64_t kMaxAckedPerMessage = 1u << 20;
constexpr auto kRefusalLogEvery = std::chrono::minutes(1);

}  // namespace

OutboxSender::OutboxSender(outbox::Outbox& outbox, link::Link& link, link::AckVerifierOptions acks,
                           std::function<void(std::string)> on_command, SenderOptions options)
    : outbox_(outbox),
      link_(link),
      verifier_(std::move(acks)),
      on_command_(std::move(on_command)),
      options_(options) {
  options_.window = std::max<std::size_t>(options_.window, 1);
  options_.run_envelopes = std::max<std::size_t>(options_.run_envelopes, 1);
  options_.ack_checks = std::max<std::size_t>(options_.ack_checks, 1);
}

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
  s.ack_signature_checks = verifier_.signature_checks();
  s.ack_repeats_refused = verifier_.repeats_refused();
  s.connected = connected_;
  return s;
}

void OutboxSender::restart_cursor() {
  next_ = 0;
  in_flight_.clear();
  unacknowledged_runs_ = 0;
  ++generation_;
}

void OutboxSender::on_connected() {
  {
    std::lock_guard lock(mu_);
    connected_ = true;
    // Everything not acknowledged goes again, oldest first.
    restart_cursor();
    if (options_.probe_first) {
      probing_ = true;
      acks_before_probe_ = stats_.acks_verified;
      probe_delay_ = options_.probe_retry;
      probe_at_ = {};
      probe_end_ = std::chrono::steady_clock::now() + options_.ack_timeout;
    }
    woken_ = true;
  }
  cv_.notify_all();
}

void OutboxSender::on_disconnected(const std::string& reason) {
  std::lock_guard lock(mu_);
  connected_ = false;
  stats_.last_disconnect = reason;
}

void OutboxSender::on_acknowledgement(std::string bytes) {
  {
    std::lock_guard lock(mu_);
    if (raw_acks_.size() >= kMaxQueuedAcks) {
      ++stats_.acks_dropped;
      return;
    }
    raw_acks_.push_back(std::move(bytes));
    woken_ = true;
  }
  cv_.notify_all();
}

void OutboxSender::on_command(std::string bytes) {
  if (on_command_) on_command_(std::move(bytes));
}

void OutboxSender::acknowledge(std::uint64_t sequence) {
  if (!acks_.insert(sequence).second) return;
  last_progress_ = std::chrono::steady_clock::now();
  auto it = in_flight_.upper_bound(sequence);
  if (it == in_flight_.begin()) return;
  --it;
  auto& run = it->second;
  auto at = std::lower_bound(run.sequences.begin(), run.sequences.end(), sequence);
  if (at == run.sequences.end() || *at != sequence) return;
  const auto i = static_cast<std::size_t>(at - run.sequences.begin());
  if (run.acknowledged[i]) return;
  if (run.left == run.sequences.size()) --unacknowledged_runs_;
  run.acknowledged[i] = true;
  if (--run.left == 0) in_flight_.erase(it);
}

bool OutboxSender::names_outstanding(const std::vector<link::AckedRange>& ranges) const {
  return std::any_of(ranges.begin(), ranges.end(), [&](const link::AckedRange& r) {
    return outstanding_.intersects(r.first, r.last);
  });
}

bool OutboxSender::take_check_budget() {
  const auto now = std::chrono::steady_clock::now();
  if (checks_since_ == std::chrono::steady_clock::time_point{} ||
      now - checks_since_ >= options_.ack_check_interval) {
    checks_since_ = now;
    checks_used_ = 0;
  }
  if (checks_used_ >= options_.ack_checks) return false;
  ++checks_used_;
  return true;
}

void OutboxSender::take_acks(std::unique_lock<std::mutex>& lock) {
  if (raw_acks_.empty()) return;
  std::deque<std::string> raw;
  raw.swap(raw_acks_);
  auto refused = [&](const Error& e) {
    if (e.what == "old") {
      ++stats_.acks_old;
    } else {
      ++stats_.acks_refused;
    }
    ++refused_unlogged_;
    stats_.last_ack_refusal = e.message();
  };
  bool deferred = false;
  // One at a time, in order: what one deletes makes its replays stale.
  while (!raw.empty()) {
    std::string bytes = std::move(raw.front());
    raw.pop_front();
    lock.unlock();
    auto claim = verifier_.inspect(bytes);
    lock.lock();
    if (!claim) {
      refused(claim.error());
      continue;
    }
    if (!names_outstanding(claim->ranges)) {
      ++stats_.acks_stale;
      continue;
    }
    if (!take_check_budget()) {
      // The rest wait for the next interval, ahead of what came meanwhile
      // (the sender's loop sleeps until then).
      deferred = true;
      ++stats_.acks_deferred;
      raw.push_front(std::move(bytes));
      raw_acks_.insert(raw_acks_.begin(), std::make_move_iterator(raw.begin()),
                       std::make_move_iterator(raw.end()));
      break;
    }
    lock.unlock();
    auto v = verifier_.verify(bytes);
    lock.lock();
    if (!v) {
      refused(v.error());
      continue;
    }
    ++stats_.acks_verified;
    apply_ack(lock, *v);
  }
  // Refusals are logged, not each one: a flood must not fill the journal.
  const auto now = std::chrono::steady_clock::now();
  if (refused_unlogged_ > 0 && (last_refusal_log_ == std::chrono::steady_clock::time_point{} ||
                                now - last_refusal_log_ >= kRefusalLogEvery)) {
    log_warning("management: " + std::to_string(refused_unlogged_) +
                " acknowledgement(s) refused, nothing deleted for them (" +
                std::to_string(stats_.acks_refused) +
                " in all; the last: " + stats_.last_ack_refusal + ")");
    refused_unlogged_ = 0;
    last_refusal_log_ = now;
  }
  if (!deferred) woken_ = true;
}

void OutboxSender::apply_ack(std::unique_lock<std::mutex>& lock,
                             const std::vector<link::AckedRange>& ranges) {
  // The ranges that name something to delete, and the outbox's digests of
  // their last records (a range whose last record is gone names nothing
  // this terminal can check: it deletes nothing).
  std::vector<const link::AckedRange*> named;
  for (const auto& r : ranges) {
    if (outstanding_.intersects(r.first, r.last)) named.push_back(&r);
  }
  if (named.empty()) return;
  std::vector<bool> same_chain(named.size(), false);
  lock.unlock();
  for (std::size_t i = 0; i < named.size(); ++i) {
    auto held = outbox_.from(named[i]->last, 1);
    if (!held) {
      log_warning("management: cannot read the outbox to match an acknowledgement: " +
                  held.error().message());
      continue;  // deleted later, when it is answered again
    }
    same_chain[i] = !held->empty() && held->front().sequence == named[i]->last &&
                    held->front().digest == named[i]->last_digest;
  }
  lock.lock();
  std::uint64_t budget = kMaxAckedPerMessage;
  for (std::size_t i = 0; i < named.size(); ++i) {
    const auto& r = *named[i];
    if (!same_chain[i]) {
      ++stats_.ack_ranges_other_chain;
      stats_.last_ack_refusal = "an acknowledgement of " + std::to_string(r.first) + ".." +
                                std::to_string(r.last) +
                                " names another digest than the outbox's record's at " +
                                std::to_string(r.last) + ": nothing of it deleted";
      continue;
    }
    // Only what this terminal sent and still holds can be deleted.
    for (const auto& held : outstanding_.overlap(r.first, r.last)) {
      if (budget == 0) break;
      const auto n = std::min(budget, held.last - held.first + 1);
      for (auto s = held.first; s < held.first + n; ++s) acknowledge(s);
      outstanding_.remove(held.first, held.first + n - 1);
      budget -= n;
    }
  }
}

void OutboxSender::check_probe() {
  if (!probing_) return;
  const auto now = std::chrono::steady_clock::now();
  if (stats_.acks_verified > acks_before_probe_) {
    probing_ = false;  // the fleet hears us: the window opens
    return;
  }
  if (now >= probe_end_) {
    probing_ = false;
    log_warning("management: no acknowledgement from the fleet " +
                std::to_string(options_.ack_timeout.count()) +
                " ms after connecting; sending the whole window");
    return;
  }
  // Unanswered: the broker may have had nobody to give it to. Again, and
  // nothing newer before it.
  if (connected_ && !in_flight_.empty() && probe_at_ != std::chrono::steady_clock::time_point{} &&
      now >= probe_at_) {
    restart_cursor();
    probe_delay_ = std::min(probe_delay_ * 2, options_.ack_timeout);
    probe_at_ = {};
  }
}

bool OutboxSender::pump(std::unique_lock<std::mutex>& lock) {
  while (connected_ && !stopping_ && unacknowledged_runs_ < (probing_ ? 1 : options_.window)) {
    const auto first = next_;
    const auto generation = generation_;
    lock.unlock();
    auto page = outbox_.from(first, options_.run_envelopes);
    lock.lock();
    if (generation != generation_) continue;  // reconnected meanwhile: start over
    if (!page) {
      log_warning("management: cannot read the outbox: " + page.error().message());
      return false;
    }
    if (page->empty()) return true;
    v1::EnvelopeRun message;
    Run run;
    std::size_t bytes = 0;
    std::uint64_t after = next_;  // the cursor once this run is sent
    for (auto& r : *page) {
      if (r.sequence < next_) continue;  // a reconnect moved the cursor meanwhile
      if (acks_.contains(r.sequence)) {  // acknowledged, not yet deleted
        after = r.sequence + 1;
        continue;
      }
      if (!run.sequences.empty() && bytes + r.envelope.size() > options_.run_bytes) break;
      bytes += r.envelope.size();
      run.sequences.push_back(r.sequence);
      message.add_envelopes(std::move(r.envelope));
      after = r.sequence + 1;
    }
    if (run.sequences.empty()) {
      next_ = after;
      continue;
    }
    link::Outgoing out{run.sequences.front(), run.sequences.back(), message.SerializeAsString()};
    run.acknowledged.assign(run.sequences.size(), false);
    run.left = run.sequences.size();
    if (in_flight_.empty()) last_progress_ = std::chrono::steady_clock::now();
    lock.unlock();
    auto sent = link_.send(out);
    lock.lock();
    if (sent) {
      // What went out counts, and may be acknowledged, whatever happened
      // meanwhile.
      for (auto s : run.sequences) outstanding_.add(s, s);
      ++stats_.messages;
      stats_.sent += run.sequences.size();
      for (auto s : run.sequences) {
        if (!ever_sent_.insert(s).second) ++stats_.resent;
      }
      if (ever_sent_.size() > 100000) ever_sent_.clear();  // only counts resends: bounded
    }
    if (generation != generation_) continue;  // a reconnect reset the cursor meanwhile
    if (!sent) return false;
    next_ = after;
    // Acknowledgements are taken on this thread only: none for this run
    // can have come before it is recorded here.
    const auto key = run.sequences.front();
    in_flight_.emplace(key, std::move(run));
    ++unacknowledged_runs_;
    if (probing_) probe_at_ = std::chrono::steady_clock::now() + probe_delay_;
  }
  return true;
}

void OutboxSender::run() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    // Woken by news, else at the idle poll, or sooner when deferred
    // acknowledgements, the probe or the acknowledgement timeout are due.
    const auto now = std::chrono::steady_clock::now();
    auto until = now + options_.idle_poll;
    if (!raw_acks_.empty() && checks_used_ >= options_.ack_checks) {
      // Deferred acknowledgements: back when the next interval starts.
      until = std::min(until, std::max(checks_since_ + options_.ack_check_interval +
                                           std::chrono::milliseconds(1),
                                       now + std::chrono::milliseconds(1)));
    }
    if (probing_) {
      until = std::min(until, probe_end_);
      if (probe_at_ != std::chrono::steady_clock::time_point{}) until = std::min(until, probe_at_);
    }
    if (connected_ && !in_flight_.empty()) {
      until = std::min(until, last_progress_ + options_.ack_timeout + std::chrono::milliseconds(1));
    }
    cv_.wait_until(lock, until, [&] { return stopping_ || woken_; });
    if (stopping_) break;
    woken_ = false;
    take_acks(lock);
    lock.unlock();
    verifier_.persist_due();  // the newest verified time, when it is time to write it
    lock.lock();
    if (!acks_.empty()) {
      std::vector<std::uint64_t> acks(acks_.begin(), acks_.end());
      lock.unlock();
      auto ok = outbox_.ack_all(acks);
      lock.lock();
      for (auto a : acks) acks_.erase(a);
      if (!ok) {
        log_warning("management: cannot delete acknowledged envelopes: " + ok.error().message());
        // They stay in the outbox and go again: the fleet keeps one copy.
        for (auto a : acks) outstanding_.add(a, a);
      } else {
        stats_.acknowledged += acks.size();
        for (auto a : acks) ever_sent_.erase(a);
      }
    }
    check_probe();
    // No acknowledgement for long: everything in flight goes again.
    if (connected_ && !in_flight_.empty() &&
        std::chrono::steady_clock::now() - last_progress_ > options_.ack_timeout) {
      restart_cursor();
      last_progress_ = std::chrono::steady_clock::now();
    }
    pump(lock);
  }
}

}  // namespace portier::management
