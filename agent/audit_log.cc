#include "audit_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>

namespace portier::agent {
namespace {

constexpr std::size_t kRecent = 1000;

std::string now_rfc3339() {
  auto now = std::chrono::system_clock::now();
  auto secs = std::chrono::system_clock::to_time_t(now);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()) % 1000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(ms.count()));
  return buf;
}

void write_all(int fd, const std::string& s) {
  std::size_t off = 0;
  while (off < s.size()) {
    ssize_t n = ::write(fd, s.data() + off, s.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      std::fprintf(stderr, "portierd: audit log write failed: %s\n", std::strerror(errno));
      return;
    }
    off += static_cast<std::size_t>(n);
  }
}

}  // namespace

std::string json_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);  // UTF-8 passes through
        }
    }
  }
  return out;
}

Result<std::unique_ptr<AuditLog>> AuditLog::open(const std::string& path, std::size_t max_bytes) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (fd < 0) return fail(Errc::io, "audit", path, std::strerror(errno));
  auto log = std::unique_ptr<AuditLog>(new AuditLog(path, fd, max_bytes));
  return log;
}

AuditLog::AuditLog(std::string path, int fd, std::size_t max_bytes)
    : path_(std::move(path)), fd_(fd), max_bytes_(max_bytes) {
  struct stat st {};
  if (fstat(fd_, &st) == 0) size_ = static_cast<std::size_t>(st.st_size);
  // Seed tail() with what the file already holds, so a restart keeps history.
  std::ifstream in(path_);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    recent_.push_back(line);
    if (recent_.size() > kRecent) recent_.pop_front();
  }
  writer_ = std::thread([this] { run(); });
}

AuditLog::~AuditLog() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  writer_.join();
  ::close(fd_);
}

std::string AuditLog::to_json(const gateway::AuditEntry& e) {
  std::string j = "{\"time\":\"" + now_rfc3339() + "\",\"event\":\"" + json_escape(e.event) + "\"";
  if (e.caller) {
    const auto& c = *e.caller;
    j += ",\"app\":{\"name\":\"" + json_escape(e.app) + "\",\"uid\":" + std::to_string(c.uid) +
         ",\"gid\":" + std::to_string(c.gid) + ",\"pid\":" + std::to_string(c.pid) + ",\"exe\":\"" +
         json_escape(c.exe) + "\",\"sha256\":\"" + json_escape(c.sha256) + "\",\"unit\":\"" +
         json_escape(c.unit) + "\"}";
  }
  if (!e.device.empty()) j += ",\"device\":\"" + json_escape(e.device) + "\"";
  if (!e.op.empty()) j += ",\"op\":\"" + json_escape(e.op) + "\"";
  if (!e.decision.empty()) {
    j += ",\"decision\":\"" + json_escape(e.decision) + "\"";
    j += ",\"rule\":" + std::to_string(e.rule) + ",\"line\":" + std::to_string(e.line);
  }
  if (!e.policy.empty()) j += ",\"policy\":\"" + json_escape(e.policy) + "\"";
  if (!e.reason.empty()) j += ",\"reason\":\"" + json_escape(e.reason) + "\"";
  j += "}";
  return j;
}

void AuditLog::record(const gateway::AuditEntry& entry) {
  std::string line = to_json(entry);
  std::vector<std::function<void(const std::string&)>> followers;
  {
    std::lock_guard lock(mu_);
    pending_.push_back(line);
    recent_.push_back(line);
    if (recent_.size() > kRecent) recent_.pop_front();
    ++recorded_;
    for (auto& [id, fn] : followers_) fn(line);
  }
  cv_.notify_one();
}

std::vector<std::string> AuditLog::tail(std::size_t count) {
  std::lock_guard lock(mu_);
  std::size_t n = std::min(count, recent_.size());
  return {recent_.end() - static_cast<std::ptrdiff_t>(n), recent_.end()};
}

int AuditLog::follow(std::function<void(const std::string&)> fn) {
  std::lock_guard lock(mu_);
  int id = next_follower_++;
  followers_[id] = std::move(fn);
  return id;
}

void AuditLog::unfollow(int id) {
  std::lock_guard lock(mu_);
  followers_.erase(id);
}

void AuditLog::flush() {
  std::unique_lock lock(mu_);
  auto target = recorded_;
  cv_.notify_one();
  flushed_cv_.wait(lock, [&] { return written_ >= target; });
}

void AuditLog::rotate_if_needed() {
  if (size_ < max_bytes_) return;
  std::string old = path_ + ".1";
  ::rename(path_.c_str(), old.c_str());
  int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (fd < 0) {
    std::fprintf(stderr, "portierd: audit log rotation failed: %s\n", std::strerror(errno));
    return;
  }
  ::close(fd_);
  fd_ = fd;
  size_ = 0;
}

void AuditLog::run() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stopping_ || !pending_.empty(); });
    if (pending_.empty() && stopping_) return;
    std::vector<std::string> batch;
    batch.swap(pending_);
    auto upto = recorded_;
    lock.unlock();
    std::string buf;
    for (auto& l : batch) buf += l + "\n";
    rotate_if_needed();
    write_all(fd_, buf);
    size_ += buf.size();
    ::fdatasync(fd_);
    lock.lock();
    written_ = upto;
    flushed_cv_.notify_all();
  }
}

}  // namespace portier::agent
