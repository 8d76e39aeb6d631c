// Sends the outbox over the link and deletes what the link acknowledges
// (issue 10): the oldest first, at most `window` in flight; everything not
// acknowledged is sent again after a reconnect (the fleet keeps each
// envelope once, by its sequence). Acknowledgements are applied in small
// batches on the sender's own thread, never on the link's.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "agent/link/link.h"
#include "agent/outbox/outbox.h"

namespace portier::management {

struct SenderOptions {
  std::size_t window = 64;                    // envelopes sent and not yet acknowledged, at most
  std::chrono::milliseconds idle_poll{1000};  // looks at the outbox at least this often
  // Nothing acknowledged for this long while envelopes are in flight: they
  // are sent again (a broker that accepted them with nobody to deliver to,
  // a fleet that held one past a gap).
  std::chrono::milliseconds ack_timeout{10000};
};

struct SenderStats {
  std::uint64_t sent = 0, acknowledged = 0, resent = 0;
  std::size_t in_flight = 0;
  bool connected = false;
  std::string last_disconnect;
};

class OutboxSender final : public link::LinkHandler {
 public:
  // `on_command` gets the fleet's commands as received (unverified), on
  // the link's thread: it must only queue them.
  OutboxSender(outbox::Outbox& outbox, link::Link& link,
               std::function<void(std::string)> on_command, SenderOptions options);
  ~OutboxSender() override;

  void start();
  void stop();
  // Something new is in the outbox.
  void wake();
  SenderStats stats() const;

  void on_connected() override;
  void on_disconnected(const std::string& reason) override;
  void on_acknowledged(std::uint64_t id) override;
  void on_command(std::string bytes) override;

 private:
  void run();
  // Sends what the window allows; false on a send error (the link is down).
  bool pump(std::unique_lock<std::mutex>& lock);

  outbox::Outbox& outbox_;
  link::Link& link_;
  std::function<void(std::string)> on_command_;
  SenderOptions options_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false, woken_ = false, connected_ = false;
  std::uint64_t next_ = 0;        // the next sequence to send
  std::uint64_t generation_ = 0;  // +1 at every connection (resets the cursor)
  std::set<std::uint64_t> in_flight_;
  std::set<std::uint64_t> ever_sent_;                    // this connection's, to count resends
  std::set<std::uint64_t> acks_;                         // acknowledged, not yet deleted
  std::chrono::steady_clock::time_point last_progress_;  // an ack, or the first send
  SenderStats stats_;
  std::thread thread_;
};

// The MQTT topic tail (and gRPC Uplink.kind) of an envelope's payload.
std::string payload_kind(int payload_type);

}  // namespace portier::management
