#include "pcsc/reader_worker.h"

#include <winscard.h>

#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <system_error>
#include <utility>

#include "pcsc/apdu.h"
#include "pcsc/pcsc_api.h"
#include "pcsc/pcsc_error.h"

namespace portier::drivers {
namespace {

struct Job {
  enum class Phase { queued, running, done, dropped };
  ReaderWorker::JobFn fn;
  Phase phase = Phase::queued;
  bool abandoned = false;  // the caller stopped waiting for it
  std::optional<Result<ActionResult>> result;
  std::string drop_reason;
};

constexpr DWORD kProtocols = SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1;
constexpr auto kDestructorGrace = std::chrono::milliseconds(500);

std::string protocol_name(DWORD p) {
  switch (p) {
    case SCARD_PROTOCOL_T0:
      return "T=0";
    case SCARD_PROTOCOL_T1:
      return "T=1";
    case SCARD_PROTOCOL_RAW:
      return "raw";
    default:
      return "unknown";
  }
}

const SCARD_IO_REQUEST* pci_for(DWORD p) {
  if (p == SCARD_PROTOCOL_T0) return pcsc().g_rgSCardT0Pci;
  if (p == SCARD_PROTOCOL_T1) return pcsc().g_rgSCardT1Pci;
  return pcsc().g_rgSCardRawPci;
}

// The context is unusable after these: pcscd went away or forgot us.
bool context_lost(LONG rv) {
  return rv == SCARD_E_NO_SERVICE || rv == SCARD_E_SERVICE_STOPPED || rv == SCARD_F_COMM_ERROR ||
         rv == SCARD_E_INVALID_HANDLE;
}

// The card handle is stale: the card went away (or the reader with it).
bool card_lost(LONG rv) {
  return rv == SCARD_W_REMOVED_CARD || rv == SCARD_E_NO_SMARTCARD ||
         rv == SCARD_E_READER_UNAVAILABLE || rv == SCARD_E_UNKNOWN_READER ||
         rv == SCARD_W_UNPOWERED_CARD || rv == SCARD_W_UNRESPONSIVE_CARD;
}

long long ms(std::chrono::steady_clock::duration d) {
  return std::max<long long>(0, std::chrono::ceil<std::chrono::milliseconds>(d).count());
}

}  // namespace

struct ReaderWorker::Session {  // the worker thread's own
  SCARDHANDLE card = 0;
  bool connected = false;
  DWORD protocol = 0;
  std::uint64_t epoch = 0;
  bool in_transaction = false;
  std::chrono::steady_clock::time_point last_apdu{};
};

struct ReaderWorker::State {
  State(std::string w, std::string r, std::chrono::milliseconds h)
      : where(std::move(w)), reader(std::move(r)), hold(h) {}

  const std::string where;
  const std::string reader;
  const std::chrono::milliseconds hold;  // how long a transaction outlives its last APDU

  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::shared_ptr<Job>> queue;
  std::shared_ptr<Job> current;
  bool stopping = false;
  bool finished = false;
  std::string stop_reason;
  SCARDCONTEXT context = 0;  // set by the worker thread; read by callers for SCardCancel
  bool has_context = false;
  std::uint64_t card_epoch = 0;

  // Whether the caller of the running job gave up on it.
  bool abandoned() {
    std::lock_guard lock(mu);
    return current && current->abandoned;
  }

  LONG ensure_context() {
    {
      std::lock_guard lock(mu);
      if (has_context) return SCARD_S_SUCCESS;
    }
    SCARDCONTEXT c = 0;
    const LONG rv = pcsc().SCardEstablishContext(SCARD_SCOPE_SYSTEM, nullptr, nullptr, &c);
    if (rv != SCARD_S_SUCCESS) return rv;
    std::lock_guard lock(mu);
    context = c;
    has_context = true;
    return SCARD_S_SUCCESS;
  }

  // Disconnecting also ends a transaction the handle holds.
  void drop_card(Session& se, DWORD disposition) {
    if (se.connected) pcsc().SCardDisconnect(se.card, disposition);
    se.connected = false;
    se.card = 0;
    se.in_transaction = false;
  }

  // Ends the session's transaction. When pcsc-lite does not confirm it
  // (e.g. SCARD_W_RESET_CARD, returned before the lock is released), the
  // handle is disconnected, which always releases the lock: a transaction
  // is never left behind.
  void end_transaction(Session& se) {
    if (!se.in_transaction) return;
    se.in_transaction = false;
    const LONG end = pcsc().SCardEndTransaction(se.card, SCARD_LEAVE_CARD);
    if (end == SCARD_S_SUCCESS) return;
    if (context_lost(end)) {
      drop_context(se);
    } else {
      drop_card(se, SCARD_LEAVE_CARD);
    }
  }

  // The card changed (card_changed()) since this session connected.
  bool card_epoch_changed(const Session& se) {
    std::lock_guard lock(mu);
    return se.connected && se.epoch != card_epoch;
  }

  void drop_context(Session& se) {
    drop_card(se, SCARD_LEAVE_CARD);
    SCARDCONTEXT c = 0;
    {
      std::lock_guard lock(mu);
      if (!has_context) return;
      c = context;
      has_context = false;
    }
    pcsc().SCardReleaseContext(c);
  }

  // Connected to the card in shared mode (afresh when the card changed).
  LONG ensure_card(Session& se) {
    std::uint64_t epoch = 0;
    {
      std::lock_guard lock(mu);
      epoch = card_epoch;
    }
    if (se.connected && se.epoch != epoch) drop_card(se, SCARD_LEAVE_CARD);
    if (se.connected) return SCARD_S_SUCCESS;
    LONG rv = ensure_context();
    if (rv != SCARD_S_SUCCESS) return rv;
    SCARDCONTEXT c = 0;
    {
      std::lock_guard lock(mu);
      c = context;
    }
    SCARDHANDLE h = 0;
    DWORD protocol = 0;
    rv = pcsc().SCardConnect(c, reader.c_str(), SCARD_SHARE_SHARED, kProtocols, &h, &protocol);
    if (rv != SCARD_S_SUCCESS) return rv;
    se.card = h;
    se.connected = true;
    se.protocol = protocol;
    se.epoch = epoch;
    return SCARD_S_SUCCESS;
  }

  // SCardBeginTransaction; after another program's reset, reconnect once.
  LONG begin(Session& se) {
    LONG rv = pcsc().SCardBeginTransaction(se.card);
    if (rv == SCARD_W_RESET_CARD) {
      DWORD protocol = 0;
      rv = pcsc().SCardReconnect(se.card, SCARD_SHARE_SHARED, kProtocols, SCARD_LEAVE_CARD,
                                 &protocol);
      if (rv == SCARD_S_SUCCESS) {
        se.protocol = protocol;
        rv = pcsc().SCardBeginTransaction(se.card);
      }
    }
    return rv;
  }

  // The error for `rv`, forgetting the card or context it made stale.
  std::unexpected<Error> failed(Session& se, LONG rv, const std::string& what) {
    if (context_lost(rv)) {
      drop_context(se);
    } else if (card_lost(rv)) {
      drop_card(se, SCARD_LEAVE_CARD);
    }
    return std::unexpected(pcsc_error(rv, where, what));
  }

  std::unexpected<Error> gave_up(const std::string& what) {
    return std::unexpected(
        Error{Errc::unavailable, where, what, "abandoned after the caller's deadline"});
  }

  // Transmits `apdu` inside the session's transaction (begun here when none
  // is open); `keep_open`: leave it open for the next APDU (for `hold`).
  Result<std::string> exchange(Session& se, std::string_view apdu, const std::string& what,
                               bool keep_open) {
    LONG rv = ensure_card(se);
    if (rv != SCARD_S_SUCCESS) return failed(se, rv, what);
    if (abandoned()) return gave_up(what);
    if (!se.in_transaction) {
      rv = begin(se);
      if (rv != SCARD_S_SUCCESS) return failed(se, rv, what);
      se.in_transaction = true;
    }
    if (abandoned()) {  // the wait for the transaction outlived the caller
      end_transaction(se);
      return gave_up(what);
    }
    std::string response(MAX_BUFFER_SIZE_EXTENDED, '\0');
    DWORD len = static_cast<DWORD>(response.size());
    rv = pcsc().SCardTransmit(
        se.card, pci_for(se.protocol), reinterpret_cast<const BYTE*>(apdu.data()),
        static_cast<DWORD>(apdu.size()), nullptr, reinterpret_cast<BYTE*>(response.data()), &len);
    se.last_apdu = std::chrono::steady_clock::now();
    // The response is complete even when ending fails; only the next
    // exchange needs a new session then.
    if (rv != SCARD_S_SUCCESS || !keep_open || hold.count() == 0) end_transaction(se);
    if (rv != SCARD_S_SUCCESS) return failed(se, rv, what);
    response.resize(std::min<std::size_t>(len, response.size()));
    if (response.size() < 2) {
      // vpcd, for one, reports a card that vanished mid-APDU this way.
      drop_card(se, SCARD_LEAVE_CARD);
      return std::unexpected(Error{Errc::unavailable, where, what,
                                   "the exchange with the card failed: it answered " +
                                       std::to_string(response.size()) +
                                       " bytes, no status word (card removed or not answering)"});
    }
    return response;
  }
};

namespace {

void work(std::shared_ptr<ReaderWorker::State> s) {
  ReaderWorker::Session session;
  for (;;) {
    std::shared_ptr<Job> job;
    {
      std::unique_lock lock(s->mu);
      auto ready = [&] { return s->stopping || !s->queue.empty(); };
      if (session.in_transaction) {
        // A held transaction ends after `hold` without an APDU, or at once
        // when the card changed (removed or replaced).
        auto ready_or_changed = [&] { return ready() || s->card_epoch != session.epoch; };
        if (!s->cv.wait_until(lock, session.last_apdu + s->hold, ready_or_changed) ||
            (!ready() && s->card_epoch != session.epoch)) {
          lock.unlock();
          if (s->card_epoch_changed(session)) {
            s->drop_card(session, SCARD_LEAVE_CARD);
          } else {
            s->end_transaction(session);
          }
          continue;
        }
      } else {
        s->cv.wait(lock, ready);
      }
      if (s->stopping) break;  // request_stop() failed the queued jobs
      job = std::move(s->queue.front());
      s->queue.pop_front();
      job->phase = Job::Phase::running;
      s->current = job;
    }
    Result<ActionResult> r = job->fn(*s, session);
    {
      std::lock_guard lock(s->mu);
      job->result = std::move(r);
      job->phase = Job::Phase::done;
      s->current.reset();
    }
    s->cv.notify_all();
  }
  s->drop_context(session);
  {
    std::lock_guard lock(s->mu);
    s->finished = true;
  }
  s->cv.notify_all();
}

}  // namespace

ReaderWorker::ReaderWorker(std::string where, std::string reader, std::chrono::milliseconds hold)
    : state_(std::make_shared<State>(std::move(where), std::move(reader), hold)) {
  try {
    thread_ = std::thread(work, state_);
  } catch (const std::system_error&) {
    // No thread: every job fails (run() sees stopping) instead of hanging.
    std::lock_guard lock(state_->mu);
    state_->stopping = true;
    state_->finished = true;
    state_->stop_reason = "cannot start the reader's thread";
  }
}

ReaderWorker::~ReaderWorker() {
  request_stop("the driver stopped");
  finish(Clock::now() + kDestructorGrace);
}

void ReaderWorker::request_stop(const std::string& reason) {
  std::deque<std::shared_ptr<Job>> dropped;
  {
    std::lock_guard lock(state_->mu);
    if (!state_->stopping) {
      state_->stopping = true;
      state_->stop_reason = reason;
    }
    dropped.swap(state_->queue);
    for (auto& j : dropped) {
      j->phase = Job::Phase::dropped;
      j->drop_reason = state_->stop_reason;
    }
  }
  state_->cv.notify_all();
}

void ReaderWorker::finish(Clock::time_point deadline) {
  if (!thread_.joinable()) return;
  bool ended = false;
  {
    std::unique_lock lock(state_->mu);
    ended = state_->cv.wait_until(lock, deadline, [&] { return state_->finished; });
  }
  if (ended) {
    thread_.join();
  } else {
    thread_.detach();  // blocked in pcsc-lite; it ends by itself (see header)
  }
}

void ReaderWorker::card_changed() {
  {
    std::lock_guard lock(state_->mu);
    ++state_->card_epoch;
  }
  state_->cv.notify_all();  // a transaction held on the old card ends now
}

Result<ActionResult> ReaderWorker::run(const std::string& what, JobFn fn,
                                       Clock::time_point deadline) {
  State& s = *state_;
  const auto started = Clock::now();
  auto job = std::make_shared<Job>();
  job->fn = std::move(fn);
  std::unique_lock lock(s.mu);
  if (s.stopping) return fail(Errc::unavailable, s.where, what, s.stop_reason);
  if (s.current && s.current->abandoned) {
    return fail(Errc::unavailable, s.where, what,
                "reader busy: an earlier exchange that timed out has not ended (the card or "
                "reader does not answer); nothing was sent");
  }
  s.queue.push_back(job);
  s.cv.notify_all();
  s.cv.wait_until(lock, deadline, [&] {
    return job->phase == Job::Phase::done || job->phase == Job::Phase::dropped;
  });
  if (job->phase == Job::Phase::done) return std::move(*job->result);
  if (job->phase == Job::Phase::dropped) {
    return fail(Errc::unavailable, s.where, what, job->drop_reason);
  }
  const std::string after = "timed out after " + std::to_string(ms(deadline - started)) + " ms";
  if (job->phase == Job::Phase::queued) {
    s.queue.erase(std::find(s.queue.begin(), s.queue.end(), job));
    return fail(Errc::unavailable, s.where, what,
                after + " waiting for an earlier exchange with this reader; nothing was sent");
  }
  job->abandoned = true;
  const bool has_context = s.has_context;
  const SCARDCONTEXT context = s.context;
  lock.unlock();
  // Ends a wait inside pcsc-lite where it can; the job sends nothing more.
  if (has_context) pcsc().SCardCancel(context);
  return fail(Errc::unavailable, s.where, what, after + ": the card or reader did not answer");
}

Result<ActionResult> ReaderWorker::transmit(std::string apdu, Clock::time_point deadline) {
  return run(
      "transmit",
      [apdu = std::move(apdu)](State& s, Session& se) -> Result<ActionResult> {
        auto response = s.exchange(se, apdu, "transmit", /*keep_open=*/true);
        if (!response) return std::unexpected(std::move(response.error()));
        ActionResult r;
        r.values["sw"] = status_word_hex(status_word(*response).value_or(0));
        r.values["protocol"] = protocol_name(se.protocol);
        r.data = std::move(*response);
        return r;
      },
      deadline);
}

Result<ActionResult> ReaderWorker::reset(Clock::time_point deadline) {
  return run(
      "reset",
      [](State& s, Session& se) -> Result<ActionResult> {
        LONG rv = s.ensure_card(se);
        if (rv != SCARD_S_SUCCESS) return s.failed(se, rv, "reset");
        if (s.abandoned()) return s.gave_up("reset");
        // Reset inside our transaction, then end it: no other program's APDU
        // reaches the card between the session and its reset, and the
        // session's state ends with it.
        if (!se.in_transaction) {
          rv = s.begin(se);
          if (rv != SCARD_S_SUCCESS) return s.failed(se, rv, "reset");
          se.in_transaction = true;
        }
        struct EndAfter {
          State& s;
          Session& se;
          ~EndAfter() { s.end_transaction(se); }
        } end_after{s, se};
        if (s.abandoned()) return s.gave_up("reset");
        DWORD protocol = 0;
        rv = pcsc().SCardReconnect(se.card, SCARD_SHARE_SHARED, kProtocols, SCARD_RESET_CARD,
                                   &protocol);
        if (rv != SCARD_S_SUCCESS) return s.failed(se, rv, "reset");
        se.protocol = protocol;
        char name[MAX_READERNAME + 1] = {};
        DWORD name_len = sizeof name;
        DWORD state = 0;
        DWORD active = 0;
        BYTE atr[MAX_ATR_SIZE] = {};
        DWORD atr_len = sizeof atr;
        rv = pcsc().SCardStatus(se.card, name, &name_len, &state, &active, atr, &atr_len);
        if (rv != SCARD_S_SUCCESS) return s.failed(se, rv, "reset");
        ActionResult r;
        r.data.assign(reinterpret_cast<const char*>(atr), std::min<DWORD>(atr_len, sizeof atr));
        r.values["protocol"] = protocol_name(protocol);
        return r;
      },
      deadline);
}

std::optional<std::string> ReaderWorker::contactless_uid(Clock::time_point deadline) {
  static const std::string kGetUid("\xFF\xCA\x00\x00\x00", 5);
  auto r = run(
      "read UID",
      [](State& s, Session& se) -> Result<ActionResult> {
        auto response = s.exchange(se, kGetUid, "read UID", /*keep_open=*/false);
        if (!response) return std::unexpected(std::move(response.error()));
        ActionResult r;
        r.data = std::move(*response);
        return r;
      },
      deadline);
  if (!r || status_word(r->data) != 0x9000) return std::nullopt;
  r->data.resize(r->data.size() - 2);
  return std::move(r->data);
}

}  // namespace portier::drivers
