#include "identity_resolver.h"

#include <unistd.h>

namespace portier::gateway {

IdentityResolver::IdentityResolver(ResolverOptions options, Done done)
    : options_(options), done_(std::move(done)) {
  options_.resolve.cancel = &cancel_;
  for (int i = 0; i < std::max(1, options_.threads); ++i) {
    workers_.emplace_back([this] { work(); });
  }
}

IdentityResolver::~IdentityResolver() { stop(); }

bool IdentityResolver::submit(int fd, uid_t uid) {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return false;
    auto& q = waiting_[uid];
    if (static_cast<int>(q.size()) >= options_.waiting_per_uid) return false;
    q.push_back(fd);
  }
  cv_.notify_all();
  return true;
}

void IdentityResolver::stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_ && workers_.empty()) return;
    stopping_ = true;
  }
  cancel_ = true;
  cv_.notify_all();
  for (auto& t : workers_) {
    if (t.joinable()) t.join();
  }
  workers_.clear();
  std::lock_guard lock(mu_);
  for (auto& [uid, q] : waiting_) {
    for (int fd : q) ::close(fd);
  }
  waiting_.clear();
}

void IdentityResolver::work() {
  std::unique_lock lock(mu_);
  for (;;) {
    // The next uid after the last one served that has a connection waiting
    // and room under its limit.
    auto pick = [&]() -> std::map<uid_t, std::deque<int>>::iterator {
      auto runnable = [&](auto it) {
        auto r = running_.find(it->first);
        return !it->second.empty() && (r == running_.end() ? 0 : r->second) < options_.per_uid;
      };
      for (auto it = waiting_.upper_bound(last_uid_); it != waiting_.end(); ++it) {
        if (runnable(it)) return it;
      }
      for (auto it = waiting_.begin(); it != waiting_.end() && it->first <= last_uid_; ++it) {
        if (runnable(it)) return it;
      }
      return waiting_.end();
    };
    auto it = waiting_.end();
    cv_.wait(lock, [&] { return stopping_ || (it = pick()) != waiting_.end(); });
    if (stopping_) return;
    const uid_t uid = it->first;
    int fd = it->second.front();
    it->second.pop_front();
    if (it->second.empty()) waiting_.erase(it);
    last_uid_ = uid;
    ++running_[uid];
    lock.unlock();
    bool first = true;
    auto identity = resolve_peer(fd, options_.resolve, &first);
    done_(fd, std::move(identity), first);
    lock.lock();
    if (--running_[uid] == 0) running_.erase(uid);
    cv_.notify_all();
  }
}

}  // namespace portier::gateway
