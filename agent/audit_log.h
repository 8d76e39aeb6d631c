// The audit trail as JSON lines (one object per decision or event), appended
// by a writer thread that fdatasync()s each batch, rotated at a size limit.
// Records carry identities and decisions, never payload data.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "gateway/audit_sink.h"
#include "portier/result.h"

namespace portier::agent {

class AuditLog final : public gateway::AuditSink {
 public:
  static Result<std::unique_ptr<AuditLog>> open(const std::string& path,
                                                std::size_t max_bytes = 16u << 20);
  ~AuditLog() override;

  void record(const gateway::AuditEntry& entry) override;
  std::vector<std::string> tail(std::size_t count) override;
  int follow(std::function<void(const std::string&)> fn) override;
  void unfollow(int id) override;
  // Blocks until everything recorded so far is on disk.
  void flush();

  static std::string to_json(const gateway::AuditEntry& entry);

 private:
  AuditLog(std::string path, int fd, std::size_t max_bytes);
  void run();
  void rotate_if_needed();

  std::string path_;
  int fd_;
  std::size_t max_bytes_;
  std::size_t size_ = 0;

  std::mutex mu_;
  std::condition_variable cv_;
  std::condition_variable flushed_cv_;
  std::vector<std::string> pending_;
  std::deque<std::string> recent_;  // last kRecent lines for tail()
  std::map<int, std::function<void(const std::string&)>> followers_;
  int next_follower_ = 1;
  std::uint64_t recorded_ = 0, written_ = 0;
  bool stopping_ = false;
  std::thread writer_;
};

std::string json_escape(std::string_view s);

}  // namespace portier::agent
