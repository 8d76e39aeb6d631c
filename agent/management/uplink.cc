#include "agent/management/uplink.h"

#include <algorithm>

#include "common/log.h"

namespace portier::management {

Uplink::Uplink(outbox::Outbox& outbox, envelope::EnvelopeSealer sealer,
               const crypto::Signer& signer, std::string key_id, UplinkOptions options)
    : outbox_(outbox),
      sealer_(std::move(sealer)),
      signer_(signer),
      key_id_(std::move(key_id)),
      options_(std::move(options)),
      epoch_(sealer_.state().session_epoch) {}

Uplink::~Uplink() { stop(std::chrono::milliseconds(0)); }

void Uplink::on_stored(std::function<void()> fn) {
  std::lock_guard lock(mu_);
  on_stored_ = std::move(fn);
}

void Uplink::on_state(std::function<void(const std::string&)> fn) {
  std::lock_guard lock(mu_);
  on_state_ = std::move(fn);
}

void Uplink::start() {
  std::lock_guard lock(mu_);
  if (thread_.joinable()) return;
  stopping_ = draining_ = false;
  thread_ = std::thread([this] { run(); });
}

void Uplink::stop(std::chrono::milliseconds drain) {
  {
    std::lock_guard lock(mu_);
    if (!thread_.joinable()) return;
    draining_ = true;
    drain_deadline_ = std::chrono::steady_clock::now() + drain;
  }
  cv_.notify_all();
  thread_.join();
  std::lock_guard lock(mu_);
  stopping_ = draining_ = false;
}

bool Uplink::submit(v1::PayloadType type, std::string payload, outbox::Priority priority) {
  {
    std::lock_guard lock(mu_);
    if (queue_.size() >= options_.max_queued) {
      ++stats_.refused;
      return false;
    }
    queue_.push_back({type, std::move(payload), priority, options_.clock()});
    ++submitted_;
  }
  cv_.notify_all();
  return true;
}

bool Uplink::flush(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  const auto ticket = submitted_;
  return done_cv_.wait_for(lock, timeout, [&] { return committed_ >= ticket; });
}

UplinkStats Uplink::stats() const {
  std::lock_guard lock(mu_);
  auto s = stats_;
  s.queued = queue_.size() + running_;
  return s;
}

Result<void> Uplink::commit(const std::deque<Pending>& run, bool drop_notice) {
  std::vector<outbox::Record> records;
  records.reserve(run.size());
  const auto before = sealer_.state();
  auto undo = [&](Error e) -> Result<void> {
    sealer_.reset(before);
    return std::unexpected(std::move(e));
  };
  for (std::size_t i = 0; i < run.size(); ++i) {
    auto sealed = sealer_.seal(run[i].type, run[i].payload, run[i].time);
    if (!sealed) return undo(sealed.error());
    // In batch mode only telemetry waits for a later signature: anything
    // above it is signed on its own, so dropping (oldest telemetry first)
    // can never take the signer of a record the outbox keeps.
    const bool sign = drop_notice || options_.signing == Signing::each || i + 1 == run.size() ||
                      run[i].priority != outbox::Priority::telemetry;
    if (sign) {
      if (auto ok = envelope::sign_envelope(sealed->envelope, signer_, key_id_); !ok) {
        return undo(ok.error());
      }
    }
    outbox::Record r;
    r.sequence = sealed->sequence;
    r.priority = run[i].priority;
    r.created = run[i].time;
    if (!sealed->envelope.SerializeToString(&r.envelope)) {
      return undo(Error{Errc::internal, "uplink", "seal", "the envelope could not be serialized"});
    }
    r.digest.assign(sealed->digest.begin(), sealed->digest.end());
    r.prev_digest.assign(sealed->prev_digest.begin(), sealed->prev_digest.end());
    r.headroom = drop_notice;
    records.push_back(std::move(r));
  }
  auto outcomes = outbox_.put_batch(records, sealer_.state(), options_.clock());
  if (!outcomes) return undo(outcomes.error());
  const auto dropped = static_cast<std::uint64_t>(
      std::count(outcomes->begin(), outcomes->end(), outbox::PutOutcome::dropped));
  std::lock_guard lock(mu_);
  stats_.sealed += records.size() - dropped;
  running_ = 0;  // counted as sealed now
  stats_.dropped += dropped;
  return {};
}

Result<void> Uplink::report_drops() {
  // A few rounds at most: the notice's own room may drop more, which the
  // next round (or the next run) reports; an unbounded loop would feed on
  // itself in a small outbox.
  for (int round = 0; round < 4; ++round) {
    auto drops = outbox_.drops(1000);
    if (!drops) return std::unexpected(drops.error());
    if (drops->empty()) return {};
    v1::DropNotice n;
    n.set_reason("the outbox was full or the records older than its limit");
    for (auto& d : *drops) {
      auto* x = n.add_dropped();
      x->set_sequence(d.sequence);
      x->set_digest(d.digest);
      x->set_prev_digest(d.prev_digest);
      x->set_priority(d.priority == outbox::Priority::security    ? "security"
                      : d.priority == outbox::Priority::inventory ? "inventory"
                                                                  : "telemetry");
    }
    std::deque<Pending> notice;
    notice.push_back(
        {v1::PAYLOAD_DROP, n.SerializeAsString(), outbox::Priority::security, options_.clock()});
    PORTIER_TRY(commit(notice, true));
    PORTIER_TRY(outbox_.forget_drops(drops->back().sequence));
  }
  return {};
}

void Uplink::run() {
  auto delay = options_.retry_min;
  std::string failure;
  for (;;) {
    std::deque<Pending> batch;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return draining_ || !queue_.empty(); });
      if (queue_.empty()) break;
      if (draining_ && std::chrono::steady_clock::now() >= drain_deadline_) break;
      const auto n = std::min(queue_.size(), options_.max_run);
      batch.assign(std::make_move_iterator(queue_.begin()),
                   std::make_move_iterator(queue_.begin() + static_cast<std::ptrdiff_t>(n)));
      queue_.erase(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(n));
      running_ = n;
    }
    auto ok = commit(batch);
    if (ok) {
      // Committed: a failure to report drops now is retried after the next
      // run (they stay recorded in the outbox), never by resealing the run.
      if (auto d = report_drops(); !d) {
        log_warning("management: drops not reported yet: " + d.error().message());
      }
    }
    std::function<void(const std::string&)> state_fn;
    std::function<void()> stored_fn;
    {
      std::lock_guard lock(mu_);
      state_fn = on_state_;
      stored_fn = on_stored_;
      running_ = 0;
      if (!ok) {
        // Back to the front, in order: nothing is lost, the run is retried.
        queue_.insert(queue_.begin(), std::make_move_iterator(batch.begin()),
                      std::make_move_iterator(batch.end()));
        stats_.failure = ok.error().message();
      } else {
        committed_ += batch.size();
        stats_.failure.clear();
      }
    }
    if (!ok) {
      if (failure.empty()) {
        failure = ok.error().message();
        log_warning("management: " + failure + "; " + std::to_string(batch.size()) +
                    " payloads kept, retrying");
        if (state_fn) state_fn(failure);
      }
      std::unique_lock lock(mu_);
      if (draining_ && std::chrono::steady_clock::now() >= drain_deadline_) break;
      cv_.wait_for(lock, delay, [&] { return draining_; });
      delay = std::min(delay * 2, options_.retry_max);
      continue;
    }
    delay = options_.retry_min;
    if (!failure.empty()) {
      failure.clear();
      if (state_fn) state_fn("");
    }
    done_cv_.notify_all();
    if (stored_fn) stored_fn();
  }
  done_cv_.notify_all();
}

}  // namespace portier::management
