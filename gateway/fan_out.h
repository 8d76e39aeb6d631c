// Fan-out of one kind of event to its subscribers. It keeps who subscribed
// (connection, device, app) and hands an event to those the caller's filter
// admits; queues, drops and the way out belong to each subscriber. It knows
// nothing of the hub that uses it: filters are passed in per delivery.
// Thread-safe; subscribers are pushed to and ended outside its lock, so a
// subscriber may unsubscribe from any thread, even while being ended.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "subscriber.h"

namespace portier::gateway {

struct Connection;

// Who a subscription belongs to and what it is for.
struct Audience {
  std::shared_ptr<Connection> conn;  // null for an in-process listener
  std::uint64_t conn_id = 0;         // 0 for an in-process listener
  std::string device_id;             // "" = every device
  std::string app;                   // declared app, "" when none
};

template <class Event>
class FanOut {
 public:
  using Sub = std::shared_ptr<Subscriber<Event>>;
  struct Entry {
    std::uint64_t id = 0;
    Audience audience;
    Sub sub;
  };
  using Filter = std::function<bool(const Audience&)>;

  // 0 once close() was called: nothing is added any more.
  std::uint64_t add(Audience audience, Sub sub) {
    std::lock_guard lock(mu_);
    if (closed_) return 0;
    auto id = next_id_++;
    entries_[id] = Entry{id, std::move(audience), std::move(sub)};
    return id;
  }
  void remove(std::uint64_t id) {
    std::lock_guard lock(mu_);
    entries_.erase(id);
  }

  // Pushes `event` to every subscriber `admit` lets through (called under
  // this fan-out's lock: it must not call back into it); returns how many
  // took it.
  std::size_t deliver(const std::shared_ptr<const Event>& event, const Filter& admit) {
    std::vector<Sub> targets;
    {
      std::lock_guard lock(mu_);
      for (auto& [id, e] : entries_) {
        if (admit(e.audience)) targets.push_back(e.sub);
      }
    }
    std::size_t taken = 0;
    for (auto& t : targets) taken += t->push(event) ? 1 : 0;
    return taken;
  }

  // A device's event to that device's subscribers; while a connection holds
  // the device's lease (`holder` != 0), to that connection's only.
  std::size_t deliver_device(const std::string& device_id, std::uint64_t holder,
                             const std::shared_ptr<const Event>& event) {
    return deliver(event, [&](const Audience& a) {
      if (!a.device_id.empty() && a.device_id != device_id) return false;
      return holder == 0 || a.conn_id == holder;
    });
  }

  // Ends (and forgets) the subscriptions `which` selects, with `why`.
  void end_if(const Filter& which, const Result<void>& why) {
    std::vector<Sub> ending;
    {
      std::lock_guard lock(mu_);
      for (auto it = entries_.begin(); it != entries_.end();) {
        if (which(it->second.audience)) {
          ending.push_back(it->second.sub);
          it = entries_.erase(it);
        } else {
          ++it;
        }
      }
    }
    for (auto& s : ending) s->end(why);
  }

  // Ends (and forgets) subscription `id`, with `why`.
  void end(std::uint64_t id, const Result<void>& why) {
    Sub sub;
    {
      std::lock_guard lock(mu_);
      auto it = entries_.find(id);
      if (it == entries_.end()) return;
      sub = std::move(it->second.sub);
      entries_.erase(it);
    }
    sub->end(why);
  }

  // Ends every subscription; later add() calls are refused.
  void close(const Result<void>& why) {
    {
      std::lock_guard lock(mu_);
      closed_ = true;
    }
    end_if([](const Audience&) { return true; }, why);
  }

  bool closed() const {
    std::lock_guard lock(mu_);
    return closed_;
  }

  std::vector<Entry> entries() const {
    std::lock_guard lock(mu_);
    std::vector<Entry> out;
    for (auto& [id, e] : entries_) out.push_back(e);
    return out;
  }

 private:
  mutable std::mutex mu_;
  std::map<std::uint64_t, Entry> entries_;
  std::uint64_t next_id_ = 1;
  bool closed_ = false;
};

}  // namespace portier::gateway
