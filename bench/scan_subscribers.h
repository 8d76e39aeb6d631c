// The subscribers of scan_latency_bench, in two shapes:
// - "one process": N connections (each its own, as separate apps have)
//   driven by one thread on one gRPC completion queue, the way a load tool
//   drives many streams; it adds the least client CPU to the 2 shared cores,
//   so the figure is the gateway's;
// - "processes": N child processes (this binary again, --subscriber-child),
//   each a blocking gRPC reader, as N separate apps would be.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "daemon_launcher.h"
#include "scan_receiver.h"

namespace portier::bench {

class SubscriberSet {
 public:
  virtual ~SubscriberSet() = default;
  // Connects and subscribes n streams to kScanDevice; each expects `count`
  // measured frames. False (with `error`) when that cannot start.
  virtual bool start(const std::string& socket, int n, int count, std::string* error) = 0;
  // True when every subscriber has read the last frame (or gave up).
  virtual bool all_done() = 0;
  // CPU used so far by the subscribers' side, ns.
  virtual std::int64_t cpu_ns() = 0;
  // Ends every stream and returns what each saw; `error` names a failure.
  virtual std::vector<std::unique_ptr<Received>> stop(std::string* error) = 0;
};

std::unique_ptr<SubscriberSet> one_process_subscribers();
std::unique_ptr<SubscriberSet> process_subscribers(const TempDir& dir);

// main() of a --subscriber-child: SOCKET COUNT OUTFILE.
int run_subscriber_child(const std::string& socket, int count, const std::string& out);

}  // namespace portier::bench
