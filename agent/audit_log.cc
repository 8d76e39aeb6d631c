#include "audit_log.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "agent/audit_record.h"
#include "common/audit_events.h"

namespace portier::agent {
namespace {

constexpr std::size_t kScanLimit = 1u << 20;  // how far back a last line is looked for
constexpr std::size_t kChunk = 256u << 10;    // bytes per write()
constexpr std::size_t kMarkerRoom = 512;      // room kept for an audit_records_lost record

// 0 on success, else errno.
int write_all(int fd, std::string_view s) {
  std::size_t off = 0;
  while (off < s.size()) {
    ssize_t n = ::write(fd, s.data() + off, s.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (n == 0) return EIO;
    off += static_cast<std::size_t>(n);
  }
  return 0;
}

bool read_at(int fd, std::uint64_t off, std::size_t len, std::string& out) {
  out.resize(len);
  std::size_t got = 0;
  while (got < len) {
    ssize_t n = ::pread(fd, out.data() + got, len - got, static_cast<off_t>(off + got));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    got += static_cast<std::size_t>(n);
  }
  return true;
}

// Position of the last '\n' in [end - limit, end), scanning back in blocks.
struct Newline {
  bool found = false;
  std::uint64_t pos = 0;
  bool searched_to_start = false;  // not found and nothing before: the line starts at 0
};
Newline last_newline(int fd, std::uint64_t end, std::size_t limit) {
  Newline r;
  std::uint64_t lo = end > limit ? end - limit : 0;
  std::string block;
  for (std::uint64_t hi = end; hi > lo;) {
    std::uint64_t from = hi - std::min<std::uint64_t>(hi - lo, 64u << 10);
    if (!read_at(fd, from, static_cast<std::size_t>(hi - from), block)) return r;
    auto at = block.rfind('\n');
    if (at != std::string::npos) {
      r.found = true;
      r.pos = from + at;
      return r;
    }
    hi = from;
  }
  r.searched_to_start = lo == 0;
  return r;
}

// The last complete line of the file `fd` of `size` bytes ending in '\n'.
std::optional<std::string> last_line(int fd, std::uint64_t size) {
  if (size == 0) return std::nullopt;
  auto nl = last_newline(fd, size - 1, kScanLimit);
  if (!nl.found && !nl.searched_to_start) return std::nullopt;
  std::uint64_t start = nl.found ? nl.pos + 1 : 0;
  std::string line;
  if (!read_at(fd, start, static_cast<std::size_t>(size - 1 - start), line)) return std::nullopt;
  return line;
}

std::string errno_text(const std::string& what, int err) {
  return what + ": " + std::strerror(err);
}

}  // namespace

Result<std::unique_ptr<AuditLog>> AuditLog::open(const std::string& path, AuditLogOptions options) {
  options.keep_files = std::clamp(options.keep_files, 1, 1000);
  options.max_bytes = std::max<std::size_t>(options.max_bytes, 1024);
  options.max_field_bytes = std::max<std::size_t>(options.max_field_bytes, 16);
  auto log = std::unique_ptr<AuditLog>(new AuditLog(path, options));
  if (auto r = log->recover(); !r) return std::unexpected(r.error());
  log->writer_ = std::thread([p = log.get()] { p->run(); });
  return log;
}

AuditLog::AuditLog(std::string path, AuditLogOptions options)
    : path_(std::move(path)),
      options_(options),
      digest_(kGenesisDigest),
      limiter_(options.denials) {}

Result<void> AuditLog::recover() {
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (fd_ < 0) return fail(Errc::io, "audit", path_, std::strerror(errno));
  // One writer per trail: a second portierd on the same file would cut the
  // first one's lines and fork the chain.
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    return fail(Errc::already_exists, "audit", path_,
                errno == EWOULDBLOCK ? "another process (portierd?) writes this audit log"
                                     : std::string("flock: ") + std::strerror(errno));
  }
  struct stat st {};
  if (::fstat(fd_, &st) != 0) return fail(Errc::io, "audit", path_, std::strerror(errno));
  dev_ = st.st_dev;
  ino_ = st.st_ino;
  std::uint64_t size = static_cast<std::uint64_t>(st.st_size);
  int rd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (rd < 0) return fail(Errc::io, "audit", path_, std::strerror(errno));
  std::uint64_t torn = 0;
  if (size > 0) {
    std::string last;
    if (!read_at(rd, size - 1, 1, last)) {
      ::close(rd);
      return fail(Errc::io, "audit", path_, "cannot read its end");
    }
    if (last != "\n") {
      auto nl = last_newline(rd, size, kScanLimit);
      if (nl.found || nl.searched_to_start) {
        std::uint64_t keep = nl.found ? nl.pos + 1 : 0;
        if (::ftruncate(fd_, static_cast<off_t>(keep)) != 0) {
          int err = errno;
          ::close(rd);
          return fail(Errc::io, "audit", path_,
                      errno_text("cannot truncate its torn last line", err));
        }
        torn = size - keep;
        size = keep;
      } else {
        force_rotate_ = true;  // not a file of ours: rotated away before the first write
      }
    }
  }
  if (size > 0 && !force_rotate_) {
    auto line = last_line(rd, size);
    auto c = line ? parse_chained_line(*line) : std::nullopt;
    if (c) {
      seq_ = c->seq;
      digest_ = sha256_hex(*line);
    } else {
      force_rotate_ = true;  // an older format or foreign content
    }
  }
  std::string older = path_ + ".1";
  int rd1 = ::open(older.c_str(), O_RDONLY | O_CLOEXEC);
  struct stat st1 {};
  std::uint64_t size1 = rd1 >= 0 && ::fstat(rd1, &st1) == 0 ? st1.st_size : 0;
  if (seq_ == 0 && rd1 >= 0) {
    // The current file is empty (just rotated, or deleted): the chain goes on
    // from the newest rotated file.
    std::uint64_t end = size1;
    std::string tailbyte;
    if (end > 0 && read_at(rd1, end - 1, 1, tailbyte) && tailbyte != "\n") {
      auto nl = last_newline(rd1, end, kScanLimit);
      end = nl.found ? nl.pos + 1 : 0;
    }
    auto line = last_line(rd1, end);
    if (auto c = line ? parse_chained_line(*line) : std::nullopt) {
      seq_ = c->seq;
      digest_ = sha256_hex(*line);
    }
  }
  // tail(): the end of <path>.1 when the current file is shorter than the budget.
  if (rd1 >= 0 && size < options_.tail_bytes) seed_tail(rd1, size1, options_.tail_bytes - size);
  if (rd1 >= 0) ::close(rd1);
  seed_tail(rd, size, options_.tail_bytes);
  ::close(rd);
  size_ = size;
  for (auto& l : recent_) {
    if (auto c = parse_chained_line(l)) {
      remember_carry(std::string(c->event), std::string(c->body),
                     c->carried_from ? c->carried_from : c->seq);
    }
  }
  if (torn > 0) {
    notes_.push_back(note(audit::audit_truncated(torn, seq_)));
  }
  notes_left_ = notes_.size();
  return {};
}

void AuditLog::seed_tail(int fd, std::uint64_t size, std::size_t budget) {
  if (size == 0 || budget == 0) return;
  std::uint64_t from = size > budget ? size - budget : 0;
  std::string buf;
  if (!read_at(fd, from, static_cast<std::size_t>(size - from), buf)) return;
  std::size_t pos = 0;
  if (from > 0) {
    pos = buf.find('\n');
    if (pos == std::string::npos) return;
    ++pos;
  }
  while (pos < buf.size()) {
    auto nl = buf.find('\n', pos);
    if (nl == std::string::npos) break;  // a torn line: not a record
    if (nl > pos) {
      recent_.push_back(buf.substr(pos, nl - pos));
      recent_bytes_ += nl - pos;
    }
    pos = nl + 1;
  }
  while (recent_bytes_ > options_.tail_bytes && !recent_.empty()) {
    recent_bytes_ -= recent_.front().size();
    recent_.pop_front();
  }
}

AuditLog::~AuditLog() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  done_cv_.notify_all();
  if (writer_.joinable()) writer_.join();
  if (fd_ >= 0) ::close(fd_);
}

std::string AuditLog::to_body(const AuditEntry& e, std::size_t max_field) {
  return record_body(to_record(e, max_field, std::chrono::system_clock::now()));
}

AuditLog::Note AuditLog::note(const AuditEntry& e) const {
  return {to_body(e, options_.max_field_bytes), std::string(audit_event_name(e.event))};
}

void AuditLog::remember_carry(const std::string& event, const std::string& body,
                              std::uint64_t seq) {
  if (event == audit_event_name(AuditEvent::policy_loaded)) carry_policy_ = Carry{body, seq};
  if (event == audit_event_name(AuditEvent::health_changed)) carry_health_ = Carry{body, seq};
}

// Once writing works again and there is room, the records dropped while the
// buffer was full are accounted for by one record in their place.
void AuditLog::push_lost_marker_locked(std::size_t room) {
  if (lost_ == 0 || !failure_.empty() ||
      queued_bytes_ + kMarkerRoom + room > options_.max_pending_bytes) {
    return;
  }
  auto marker = note(audit::audit_records_lost(lost_, options_.max_pending_bytes));
  lost_ = 0;
  queued_bytes_ += marker.body.size();
  queue_.push_back({std::move(marker.body), std::move(marker.event), ++next_ticket_});
}

std::uint64_t AuditLog::push_locked(std::string body, std::string event) {
  push_lost_marker_locked(body.size());
  if (queued_bytes_ + body.size() > options_.max_pending_bytes) {
    ++lost_;
    return 0;
  }
  queued_bytes_ += body.size();
  queue_.push_back({std::move(body), std::move(event), ++next_ticket_});
  return next_ticket_;
}

AuditLog::Note AuditLog::suppressed_note(const std::string& key, std::uint64_t count) const {
  return note(
      audit::denials_suppressed(key, count, options_.denials.burst, options_.denials.per_second));
}

void AuditLog::record(const AuditEntry& e) {
  // Records a caller can cause at will are rate-limited per uid: denials,
  // and failures of allowed actions (a malformed APDU fails in the driver).
  // Never limited: allows and what pairs with them (lease ends, and
  // allow_revoked, which follows an allow already queued), daemon events.
  const AuditEvent event = e.event;
  bool deny = (e.decision == AuditDecision::deny && event != AuditEvent::allow_revoked) ||
              event == AuditEvent::action_failed || event == AuditEvent::identity_lost;
  // Admitted first: a suppressed denial costs no formatting (the JSON
  // printer takes microseconds); both records are made outside the lock.
  std::optional<Note> suppressed;
  if (deny) {
    std::string key = e.caller ? std::to_string(e.caller->uid) : "unidentified";
    std::uint64_t count = 0;
    {
      std::lock_guard lock(mu_);
      if (!limiter_.admit(key, &count)) return;
    }
    if (count > 0) suppressed = suppressed_note(key, count);
  }
  std::string body = to_body(e, options_.max_field_bytes);
  {
    std::lock_guard lock(mu_);
    if (suppressed) push_locked(std::move(suppressed->body), std::move(suppressed->event));
    push_locked(std::move(body), std::string(audit_event_name(event)));
  }
  cv_.notify_one();
}

Result<void> AuditLog::record_durable(const AuditEntry& e, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string body = to_body(e, options_.max_field_bytes);
  std::unique_lock lock(mu_);
  if (stopping_) return fail(Errc::unavailable, "audit", path_, "the audit log is closing");
  auto ticket = push_locked(std::move(body), std::string(audit_event_name(e.event)));
  cv_.notify_one();
  if (ticket == 0) {
    return fail(Errc::unavailable, "audit", path_,
                "record not kept: " + std::to_string(options_.max_pending_bytes) +
                    " bytes already wait to be written" +
                    (failure_why_.empty() ? "" : " (" + failure_why_ + ")"));
  }
  if (!failure_.empty()) return fail(Errc::unavailable, "audit", path_, failure_why_);
  done_cv_.wait_until(lock, deadline,
                      [&] { return written_ticket_ >= ticket || !failure_.empty() || stopping_; });
  if (written_ticket_ >= ticket) return {};
  if (!failure_.empty()) return fail(Errc::unavailable, "audit", path_, failure_why_);
  return fail(Errc::unavailable, "audit", path_,
              "record not on disk within " + std::to_string(timeout.count()) + " ms");
}

std::string AuditLog::failure() const {
  std::lock_guard lock(mu_);
  return failure_;
}

void AuditLog::on_state(std::function<void(const std::string&)> fn) {
  std::lock_guard lock(state_mu_);
  state_fn_ = std::move(fn);
}

std::vector<std::string> AuditLog::tail(std::size_t count) {
  std::unique_lock lock(mu_);
  auto target = next_ticket_;
  done_cv_.wait_for(lock, std::chrono::milliseconds(500),
                    [&] { return written_ticket_ >= target || !failure_.empty() || stopping_; });
  std::size_t n = std::min(count, recent_.size());
  return {recent_.end() - static_cast<std::ptrdiff_t>(n), recent_.end()};
}

int AuditLog::follow(std::function<void(const std::string&)> fn) {
  std::lock_guard lock(follow_mu_);
  int id = next_follower_++;
  followers_[id] = std::move(fn);
  return id;
}

void AuditLog::unfollow(int id) {
  std::lock_guard lock(follow_mu_);
  followers_.erase(id);
}

bool AuditLog::flush(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  auto target = next_ticket_;
  cv_.notify_one();
  return done_cv_.wait_for(lock, timeout,
                           [&] { return followed_ticket_ >= target && notes_left_ == 0; });
}

void AuditLog::start_new_file() {
  head_.clear();
  for (auto* c : {&carry_policy_, &carry_health_}) {
    if (*c) head_.push_back("\"carried_from\":" + std::to_string((*c)->seq) + "," + (*c)->body);
  }
}

bool AuditLog::open_file(std::string& error) {
  int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (fd < 0) {
    error = errno_text("cannot open", errno);
    return false;
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    error = errno_text("cannot stat", errno);
    ::close(fd);
    return false;
  }
  fd_ = fd;
  dev_ = st.st_dev;
  ino_ = st.st_ino;
  size_ = static_cast<std::uint64_t>(st.st_size);
  junk_ = false;
  return true;
}

// Before each batch: is the path still our file? If it was deleted or
// replaced, reopen (create) it and record the gap first.
bool AuditLog::check_file(std::string& error) {
  if (fd_ < 0) return open_file(error);
  struct stat st {};
  const char* what = nullptr;
  if (::stat(path_.c_str(), &st) != 0) {
    if (errno != ENOENT) {
      error = errno_text("cannot stat", errno);
      return false;
    }
    what = "deleted";
  } else if (st.st_dev != dev_ || st.st_ino != ino_) {
    what = "replaced by another file";
  } else {
    return true;
  }
  ::close(fd_);
  fd_ = -1;
  notes_.push_front(note(audit::audit_reopened(path_, seq_, what)));
  start_new_file();
  return open_file(error);
}

bool AuditLog::rotate(std::string& error) {
  auto name = [&](int i) { return path_ + "." + std::to_string(i); };
  // Files beyond keep_files (left by a larger setting) go first.
  for (int i = options_.keep_files + 1; i <= 1000 + 1; ++i) {
    if (::unlink(name(i).c_str()) != 0) break;
  }
  for (int i = options_.keep_files - 1; i >= 1; --i) {
    if (::rename(name(i).c_str(), name(i + 1).c_str()) != 0 && errno != ENOENT) {
      error = errno_text("rotation failed: rename " + name(i), errno);
      return false;
    }
  }
  if (::rename(path_.c_str(), name(1).c_str()) != 0 && errno != ENOENT) {
    error = errno_text("rotation failed: rename " + path_, errno);
    return false;
  }
  ::close(fd_);
  fd_ = -1;
  force_rotate_ = false;
  start_new_file();
  return open_file(error);
}

AuditLog::Outcome AuditLog::write_batch(const std::vector<Queued>& batch) {
  Outcome out;
  if (!check_file(out.error)) return out;
  if (junk_) {
    if (::ftruncate(fd_, static_cast<off_t>(size_)) != 0) {
      out.error = errno_text("cannot remove a partly written record", errno);
      return out;
    }
    junk_ = false;
  }
  if ((force_rotate_ || size_ >= options_.max_bytes) && !rotate(out.error)) return out;

  std::vector<const std::string*> bodies;
  for (auto& n : notes_) bodies.push_back(&n.body);
  for (auto& h : head_) bodies.push_back(&h);
  for (auto& q : batch) bodies.push_back(&q.body);
  std::vector<std::string> lines, digests;
  lines.reserve(bodies.size());
  digests.reserve(bodies.size());
  std::uint64_t seq = seq_;
  std::string prev = digest_;
  for (auto* b : bodies) {
    lines.push_back("{\"seq\":" + std::to_string(++seq) + ",\"prev\":\"" + prev + "\"," + *b);
    prev = sha256_hex(lines.back());
    digests.push_back(prev);
  }

  // Whole records per write(); a failed write is cut back to the last whole one.
  std::size_t good = 0;
  std::uint64_t end = size_;
  std::string chunk;
  for (std::size_t i = 0; i < lines.size();) {
    chunk.clear();
    std::size_t j = i;
    while (j < lines.size() && (j == i || chunk.size() + lines[j].size() + 1 <= kChunk)) {
      chunk += lines[j++];
      chunk += '\n';
    }
    if (int err = write_all(fd_, chunk); err != 0) {
      out.error = errno_text("write failed", err);
      junk_ = ::ftruncate(fd_, static_cast<off_t>(end)) != 0;
      break;
    }
    end += chunk.size();
    good = j;
    i = j;
  }
  if (good > 0 && ::fdatasync(fd_) != 0) {
    out.error = errno_text("fdatasync failed", errno);
    junk_ = ::ftruncate(fd_, static_cast<off_t>(size_)) != 0;
    good = 0;
    end = size_;
  }
  if (good == 0) return out;

  size_ = end;
  seq_ += good;
  digest_ = digests[good - 1];
  out.lines.assign(lines.begin(), lines.begin() + static_cast<std::ptrdiff_t>(good));
  std::size_t n = std::min(good, notes_.size());
  notes_.erase(notes_.begin(), notes_.begin() + static_cast<std::ptrdiff_t>(n));
  std::size_t h = std::min(good - n, head_.size());
  head_.erase(head_.begin(), head_.begin() + static_cast<std::ptrdiff_t>(h));
  out.notes = n + h;
  out.queued = good - n - h;
  for (std::size_t i = 0; i < out.queued; ++i) {
    remember_carry(batch[i].event, batch[i].body, seq_ - out.queued + 1 + i);
  }
  return out;
}

void AuditLog::run() {
  const std::size_t batch_limit = std::clamp<std::size_t>(options_.max_bytes / 4, 1024, 1u << 20);
  std::unique_lock lock(mu_);
  auto backoff = options_.retry_min;
  std::optional<std::chrono::steady_clock::time_point> retry_at;
  int stop_tries = 0;
  for (;;) {
    for (auto& r : limiter_.due()) {
      auto n = suppressed_note(r.key, r.count);
      push_locked(std::move(n.body), std::move(n.event));
    }
    bool work = !queue_.empty() || !notes_.empty() || !head_.empty();
    if (stopping_ && (!work || stop_tries >= 2)) break;
    auto now = std::chrono::steady_clock::now();
    if (!stopping_ && (!work || (retry_at && now < *retry_at))) {
      auto wake = work ? retry_at : std::nullopt;
      if (auto due = limiter_.next_due(); due && (!wake || *due < *wake)) wake = due;
      if (wake) {
        cv_.wait_until(lock, *wake);
      } else {
        cv_.wait(lock);
      }
      continue;
    }
    std::vector<Queued> batch;
    std::size_t bytes = 0;
    for (auto& q : queue_) {
      if (!batch.empty() && bytes + q.body.size() > batch_limit) break;
      bytes += q.body.size();
      batch.push_back(q);
    }
    lock.unlock();
    Outcome out = write_batch(batch);
    lock.lock();
    if (stopping_ && !out.error.empty()) ++stop_tries;  // at exit: two more tries, no waiting

    for (std::size_t i = 0; i < out.queued; ++i) {
      queued_bytes_ -= queue_.front().body.size();
      written_ticket_ = queue_.front().ticket;
      queue_.pop_front();
    }
    for (auto& l : out.lines) {
      recent_bytes_ += l.size();
      recent_.push_back(l);
    }
    while (recent_bytes_ > options_.tail_bytes && !recent_.empty()) {
      recent_bytes_ -= recent_.front().size();
      recent_.pop_front();
    }
    std::string before = failure_;
    if (out.error.empty()) {
      failure_.clear();
      failure_why_.clear();
      retry_at.reset();
      backoff = options_.retry_min;
    } else {
      failure_why_ = out.error;
      failure_ = "audit log " + path_ + ": " + out.error;
      retry_at = std::chrono::steady_clock::now() + backoff;
      backoff = std::min(backoff * 2, options_.retry_max);
    }
    notes_left_ = notes_.size() + head_.size();
    push_lost_marker_locked(0);
    std::string state = failure_;
    const std::uint64_t upto = written_ticket_;
    done_cv_.notify_all();
    lock.unlock();
    if (!out.lines.empty()) {
      std::lock_guard follow(follow_mu_);
      for (auto& l : out.lines) {
        for (auto& [id, fn] : followers_) fn(l);
      }
    }
    if (state != before) {  // the daemon logs it
      std::lock_guard call(state_mu_);
      if (state_fn_) state_fn_(state);
    }
    lock.lock();
    // flush() returns once the followers have had what it waited for.
    followed_ticket_ = std::max(followed_ticket_, upto);
    done_cv_.notify_all();
  }
  if (!queue_.empty() || !notes_.empty()) {
    std::fprintf(stderr, "portierd: audit log %s: %zu records not written at exit: %s\n",
                 path_.c_str(), queue_.size() + notes_.size(), failure_why_.c_str());
  }
}

}  // namespace portier::agent
