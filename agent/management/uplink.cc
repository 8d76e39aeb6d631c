#include "agent/management/uplink.h"

#include <unistd.h>

#include <algorithm>

#include "common/log.h"

namespace portier::management {
namespace {

// Runs sealed ahead of the outbox at most: the one being committed and the
// next one, signed meanwhile.
constexpr std::size_t kDepth = 2;

}  // namespace

std::size_t default_signing_threads() {
  const long n = ::sysconf(_SC_NPROCESSORS_ONLN);
  return static_cast<std::size_t>(std::clamp<long>(n, 1, 4));
}

Uplink::Uplink(outbox::Outbox& outbox, envelope::EnvelopeSealer sealer,
               const crypto::Signer& signer, std::string key_id, UplinkOptions options)
    : outbox_(outbox),
      sealer_(std::move(sealer)),
      signer_(&signer),
      key_id_(std::move(key_id)),
      options_(std::move(options)),
      epoch_(sealer_.state().session_epoch) {
  concurrency_ = signer_->concurrent() ? std::max<std::size_t>(1, options_.signing_threads) : 1;
}

Result<envelope::ChainState> Uplink::hold(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  held_ = true;
  // Not started yet: nothing is sealed, the writer starts held (a rotation
  // still pending at portierd's start).
  if (!thread_.joinable()) {
    hold_at_ = taken_;
    return sealer_.state();
  }
  // Everything submitted before the hold goes first, with the key of
  // before: a payload signed inside by that key (an audit checkpoint) must
  // not be sealed past the cutover, where the fleet checks it with the new
  // key. After the hold, such payloads are refused (submit_unless_held).
  hold_at_ = submitted_;
  cv_.notify_all();
  if (!done_cv_.wait_for(lock, timeout, [&] { return !busy_ && taken_ >= hold_at_; })) {
    held_ = false;
    cv_.notify_all();
    return fail(Errc::unavailable, "management uplink", "hold",
                "the writer did not finish its run in time; try again");
  }
  return sealer_.state();
}

void Uplink::release(std::shared_ptr<const crypto::Signer> signer, std::string key_id) {
  {
    std::lock_guard lock(mu_);
    if (signer) {
      owned_signer_ = std::move(signer);
      signer_ = owned_signer_.get();
      key_id_ = std::move(key_id);
      concurrency_ = signer_->concurrent() ? std::max<std::size_t>(1, options_.signing_threads) : 1;
    }
    held_ = false;
  }
  cv_.notify_all();
}

Uplink::~Uplink() {
  stop(std::chrono::milliseconds(0));
  stop_helpers();
}

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
  stop_helpers();
  std::lock_guard lock(mu_);
  stopping_ = draining_ = false;
}

bool Uplink::submit(v1::PayloadType type, std::string payload, outbox::Priority priority) {
  return queue(type, std::move(payload), priority, false);
}

bool Uplink::submit_unless_held(v1::PayloadType type, std::string payload,
                                outbox::Priority priority) {
  return queue(type, std::move(payload), priority, true);
}

bool Uplink::queue(v1::PayloadType type, std::string payload, outbox::Priority priority,
                   bool unless_held) {
  // The check of the hold and the push under one lock: a hold between them
  // would let a payload bound to the old key in after the cutover.
  {
    std::lock_guard lock(mu_);
    if (unless_held && held_) return false;
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

bool Uplink::held() const {
  std::lock_guard lock(mu_);
  return held_;
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
  s.signing_threads = live_helpers_;
  return s;
}

std::unique_ptr<Uplink::Run> Uplink::seal(std::deque<Pending> payloads, bool drop_notice) {
  auto run = std::make_unique<Run>();
  run->payloads = std::move(payloads);
  run->drop_notice = drop_notice;
  run->before = sealer_.state();
  const std::size_t n = run->payloads.size();
  run->sealed.reserve(n);
  run->sign.resize(n);
  run->records.resize(n);
  std::size_t signatures = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const auto& p = run->payloads[i];
    auto sealed = sealer_.seal(p.type, p.payload, p.time);
    if (!sealed) {
      // Nothing of it is signed or stored; store() reports the error and
      // takes the sealer back.
      std::lock_guard lock(mu_);
      run->error = sealed.error();
      return run;
    }
    run->sealed.push_back(std::move(*sealed));
    // In batch mode only telemetry waits for a later signature: anything
    // above it is signed on its own, so dropping (oldest telemetry first)
    // can never take the signer of a record the outbox keeps.
    run->sign[i] = drop_notice || options_.signing == Signing::each || i + 1 == n ||
                   p.priority != outbox::Priority::telemetry;
    signatures += run->sign[i];
  }
  run->after = sealer_.state();
  // Ranges small enough to share the signatures out evenly, one range when
  // there is nothing to share.
  const std::size_t parts =
      concurrency_ > 1 && signatures > 1 ? std::min(signatures, concurrency_ * 4) : 1;
  const std::size_t chunk = (n + parts - 1) / std::max<std::size_t>(parts, 1);
  std::lock_guard lock(mu_);
  for (std::size_t b = 0; b < n; b += chunk) {
    tasks_.push_back({run.get(), b, std::min(n, b + chunk)});
    ++run->tasks_left;
  }
  if (run->tasks_left > 1) want_helpers_locked();
  work_cv_.notify_all();
  return run;
}

void Uplink::sign_range(Run& run, std::size_t begin, std::size_t end) {
  auto failed = [&](Error e) {
    std::lock_guard lock(mu_);
    if (!run.error) run.error = std::move(e);
  };
  for (std::size_t i = begin; i < end; ++i) {
    auto& sealed = run.sealed[i];
    if (run.sign[i]) {
      if (auto ok = envelope::sign_envelope(sealed.envelope, *signer_, key_id_); !ok) {
        return failed(ok.error());
      }
    }
    outbox::Record& r = run.records[i];
    r.sequence = sealed.sequence;
    r.priority = run.payloads[i].priority;
    r.created = run.payloads[i].time;
    if (!sealed.envelope.SerializeToString(&r.envelope)) {
      return failed(
          Error{Errc::internal, "uplink", "seal", "the envelope could not be serialized"});
    }
    r.digest.assign(sealed.digest.begin(), sealed.digest.end());
    r.prev_digest.assign(sealed.prev_digest.begin(), sealed.prev_digest.end());
    r.headroom = run.drop_notice;
  }
}

void Uplink::finish_signing(Run& run) {
  std::unique_lock lock(mu_);
  while (run.tasks_left > 0) {
    if (tasks_.empty()) {
      signed_cv_.wait(lock);
      continue;
    }
    run_one_task(lock);
  }
}

void Uplink::run_one_task(std::unique_lock<std::mutex>& lock) {
  const Task t = tasks_.front();
  tasks_.pop_front();
  lock.unlock();
  sign_range(*t.run, t.begin, t.end);
  lock.lock();
  if (--t.run->tasks_left == 0) signed_cv_.notify_all();
}

void Uplink::want_helpers_locked() {
  if (concurrency_ <= 1) return;
  for (auto it = helpers_.begin(); it != helpers_.end();) {
    if ((*it)->done) {
      (*it)->thread.join();  // it ended: nothing left to wait for
      it = helpers_.erase(it);
    } else {
      ++it;
    }
  }
  const std::size_t want = std::min(concurrency_ - 1, tasks_.size());
  while (live_helpers_ < want) {
    auto h = std::make_unique<Helper>();
    Helper* self = h.get();
    h->thread = std::thread([this, self] {
      helper();
      std::lock_guard lock(mu_);
      self->done = true;
    });
    helpers_.push_back(std::move(h));
    ++live_helpers_;
  }
}

void Uplink::helper() {
  std::unique_lock lock(mu_);
  for (;;) {
    if (!work_cv_.wait_for(lock, options_.signing_idle,
                           [&] { return helpers_stop_ || !tasks_.empty(); }) ||
        helpers_stop_) {
      break;
    }
    run_one_task(lock);
  }
  --live_helpers_;
}

void Uplink::stop_helpers() {
  std::vector<std::unique_ptr<Helper>> helpers;
  {
    std::lock_guard lock(mu_);
    helpers_stop_ = true;
    helpers.swap(helpers_);
  }
  work_cv_.notify_all();
  for (auto& h : helpers) h->thread.join();
  std::lock_guard lock(mu_);
  helpers_stop_ = false;
}

Result<void> Uplink::store(Run& run) {
  std::optional<Error> error;
  {
    std::lock_guard lock(mu_);
    error = run.error;
  }
  if (!error) {
    auto outcomes = outbox_.put_batch(run.records, run.after, options_.clock());
    if (outcomes) {
      const auto dropped = static_cast<std::uint64_t>(
          std::count(outcomes->begin(), outcomes->end(), outbox::PutOutcome::dropped));
      std::lock_guard lock(mu_);
      stats_.sealed += run.records.size() - dropped;
      if (!run.drop_notice) running_ -= run.payloads.size();  // counted as sealed now
      stats_.dropped += dropped;
      return {};
    }
    error = outcomes.error();
  }
  sealer_.reset(run.before);
  return std::unexpected(std::move(*error));
}

Result<void> Uplink::commit(std::deque<Pending> payloads, bool drop_notice) {
  auto run = seal(std::move(payloads), drop_notice);
  finish_signing(*run);
  return store(*run);
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
    PORTIER_TRY(commit(std::move(notice), true));
    PORTIER_TRY(outbox_.forget_drops(drops->back().sequence));
  }
  return {};
}

void Uplink::run() {
  auto delay = options_.retry_min;
  std::string failure;
  // Sealed, in chain order: the front is committed next, the one after it
  // is signed meanwhile.
  std::deque<std::unique_ptr<Run>> in_flight;
  // Drops to report: no run is sealed until those in flight are stored, so
  // that the notice is sealed where the outbox stands.
  bool hold = false;
  for (;;) {
    {
      std::unique_lock lock(mu_);
      auto past_deadline = [&] {
        return draining_ && std::chrono::steady_clock::now() >= drain_deadline_;
      };
      if (in_flight.empty()) {
        // Between runs: nothing sealed and not stored, everything signed.
        busy_ = false;
        done_cv_.notify_all();
        cv_.wait(lock, [&] { return draining_ || (!queue_.empty() && !blocked_locked()); });
        // Held (a key rotation) and stopping: nothing more is signed with
        // the key of the hold; what is queued is not committed.
        if (queue_.empty() || past_deadline() || blocked_locked()) break;
        busy_ = true;
      }
      while (!hold && !blocked_locked() && in_flight.size() < kDepth && !queue_.empty() &&
             !past_deadline() && (in_flight.empty() || !in_flight.back()->error)) {
        auto n = std::min(queue_.size(), options_.max_run);
        // Held: only what was submitted before the hold.
        if (held_) n = std::min<std::size_t>(n, hold_at_ - taken_);
        taken_ += n;
        std::deque<Pending> batch(
            std::make_move_iterator(queue_.begin()),
            std::make_move_iterator(queue_.begin() + static_cast<std::ptrdiff_t>(n)));
        queue_.erase(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(n));
        running_ += n;
        lock.unlock();
        in_flight.push_back(seal(std::move(batch), false));
        lock.lock();
      }
    }
    Run& front = *in_flight.front();
    finish_signing(front);
    auto ok = store(front);
    std::size_t stored = 0;
    if (ok) {
      stored = front.payloads.size();
      in_flight.pop_front();
      // Committed: a failure to report drops now is retried after the next
      // run (they stay recorded in the outbox), never by resealing the run.
      if (in_flight.empty()) {
        if (auto d = report_drops(); !d) {
          log_warning("management: drops not reported yet: " + d.error().message());
        }
        hold = false;
      } else if (!hold) {
        auto d = outbox_.drops(1);
        hold = !d || !d->empty();
      }
    } else {
      // The sealer is back where the outbox stands (store()); the runs
      // sealed after the front go back with it, unsigned work abandoned.
      std::unique_lock lock(mu_);
      for (auto& t : tasks_) --t.run->tasks_left;
      tasks_.clear();
      signed_cv_.wait(lock, [&] {
        return std::all_of(in_flight.begin(), in_flight.end(),
                           [](const auto& r) { return r->tasks_left == 0; });
      });
    }
    std::function<void(const std::string&)> state_fn;
    std::function<void()> stored_fn;
    std::size_t kept = 0;
    {
      std::lock_guard lock(mu_);
      state_fn = on_state_;
      stored_fn = on_stored_;
      if (!ok) {
        // Back to the front, in order: nothing is lost, the runs are retried.
        for (auto r = in_flight.rbegin(); r != in_flight.rend(); ++r) {
          auto& p = (*r)->payloads;
          kept += p.size();
          if (!(*r)->drop_notice) taken_ -= p.size();
          queue_.insert(queue_.begin(), std::make_move_iterator(p.begin()),
                        std::make_move_iterator(p.end()));
        }
        running_ = 0;
        stats_.failure = ok.error().message();
      } else {
        committed_ += stored;
        stats_.failure.clear();
      }
    }
    if (!ok) {
      in_flight.clear();
      hold = false;
      if (failure.empty()) {
        failure = ok.error().message();
        log_warning("management: " + failure + "; " + std::to_string(kept) +
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
