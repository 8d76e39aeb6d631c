// The thread of a driver that holds one device node open (a serial tty, a
// hidraw or evdev node): open it, read while it is open, close it when it
// goes away and open it again with backoff, until stop_fd is readable.
//
// Backoff: the delay before the next open doubles on every failed attempt
// and on every connection that dropped before it was stable (a device that
// opens and hangs up at once must not make the driver flap at
// reopen_min_ms); it goes back to reopen_min_ms once a connection lasted
// reopen_max_ms. A node that hangs up with nothing left to read is closed,
// never spun on.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <thread>

#include "common/result.h"

namespace portier::drivers {

enum class NodeRead { data, no_data, gone };

struct DeviceNodeLoop {
  int stop_fd = -1;
  int fd = -1;  // the node when the driver opened it before the loop started
  int reopen_min_ms = 100;
  int reopen_max_ms = 5000;
  // Opens the node: its fd (the driver has reported it ready) or -1 (the
  // driver has reported why not).
  std::function<int()> open;
  // Reads what the node has; `reason` set when it is gone.
  std::function<NodeRead(std::string& reason)> read;
  // Closes the node and reports it lost for `reason`.
  std::function<void(const std::string& reason)> lost;
};

// Reads what non-blocking `fd` has, up to 16 reads of 4 KiB (then the loop
// polls again, so stop() stays prompt), handing each chunk to `on_bytes`.
// gone (with `reason`) at end of file or on a read error.
NodeRead read_node(int fd, const std::function<void(std::string_view)>& on_bytes,
                   std::string& reason);

// Waits up to `timeout_ms` for `stop_fd` to become readable (true then).
bool wait_for_stop(int stop_fd, int timeout_ms);

// Runs until stop_fd is readable.
void run_device_node_loop(const DeviceNodeLoop& loop);

// A DeviceNodeLoop on a thread of its own, with its stop eventfd: what a
// driver's start() and stop() need.
class DeviceNodeThread {
 public:
  DeviceNodeThread() = default;
  ~DeviceNodeThread() { stop(); }
  DeviceNodeThread(const DeviceNodeThread&) = delete;
  DeviceNodeThread& operator=(const DeviceNodeThread&) = delete;

  // Creates the stop eventfd (it becomes loop.stop_fd) and runs `loop` on a
  // new thread. Errors (io, internal) are located at `where`.
  Result<void> start(DeviceNodeLoop loop, const std::string& where);
  // Wakes the loop, joins its thread, closes the eventfd. Idempotent.
  void stop();

 private:
  int stop_fd_ = -1;
  std::thread thread_;
};

}  // namespace portier::drivers
