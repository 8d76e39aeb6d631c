// How many streams (Subscribe, WatchDevices, TailAudit) may be open, and
// whose they are. Each stream holds a server thread while it lives, so the
// limits keep streams from taking the threads unary calls need, and declared
// apps and everyone else draw from separate pools: undeclared callers
// (matched only by `app = "*"` rules) can never starve a declared app.
// A stream is counted only after its call's policy decision allowed it.
// Its place comes back when the stream ends: at once when its connection
// closes, within BoundedStream::kCancelPoll when the client cancels it.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "connection.h"

namespace portier::gateway {

struct StreamLimits {
  int per_connection = 16;
  int per_app = 64;            // per declared app, all its connections together
  int declared_total = 256;    // all declared apps together
  int per_undeclared_uid = 4;  // per uid, for callers that are no declared app
  int undeclared_total = 32;   // all of those together
};

class StreamQuota {
 public:
  // Holds one stream's place until destroyed.
  class Slot {
   public:
    Slot(StreamQuota& quota, std::shared_ptr<Connection> conn);
    ~Slot();
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;

   private:
    StreamQuota& quota_;
    std::shared_ptr<Connection> conn_;
  };

  explicit StreamQuota(StreamLimits limits) : limits_(limits) {}

  // A place for one more stream of `conn`, or null with *why saying which
  // limit is reached.
  std::unique_ptr<Slot> take(const std::shared_ptr<Connection>& conn, std::string* why);
  int open() const;

 private:
  void give_back(Connection& conn);

  const StreamLimits limits_;
  mutable std::mutex mu_;
  std::map<std::string, int> per_principal_;
  int declared_ = 0, undeclared_ = 0;
};

}  // namespace portier::gateway
