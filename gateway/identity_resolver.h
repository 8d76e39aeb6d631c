// Resolves the identities of new connections off the accept thread, on a
// small pool, so that no caller can delay another's connection: at most
// `per_uid` resolutions of one uid run at once (a caller whose executable
// is huge holds one worker of its own uid's share, for at most the hash
// timeout), and at most `waiting_per_uid` connections of one uid wait.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "peer_identity.h"

namespace portier::gateway {

struct ResolverOptions {
  int threads = 4;
  int per_uid = 1;
  int waiting_per_uid = 64;
  ResolveOptions resolve;
};

class IdentityResolver {
 public:
  // Called on a worker thread with the socket and what resolve_peer said;
  // `first_failure` as resolve_peer's. The callee owns `fd` from then on.
  using Done = std::function<void(int fd, Result<PeerIdentity> identity, bool first_failure)>;

  IdentityResolver(ResolverOptions options, Done done);
  ~IdentityResolver();  // stop()

  // Queues `fd` (whose SO_PEERCRED uid is `uid`). False when that uid
  // already has waiting_per_uid connections waiting: the caller keeps `fd`.
  bool submit(int fd, uid_t uid);
  // Finishes running resolutions; closes connections still waiting.
  void stop();

 private:
  void work();

  ResolverOptions options_;
  Done done_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<uid_t, std::deque<int>> waiting_;
  std::map<uid_t, int> running_;
  uid_t last_uid_ = 0;  // round robin between uids
  bool stopping_ = false;
  std::atomic<bool> cancel_{false};  // ends a hash in progress at stop()
  std::vector<std::thread> workers_;
};

}  // namespace portier::gateway
