// What the benches compute from their samples: percentiles of latencies
// (nearest rank), and the offset that turns the daemon's wall-clock stamps
// into CLOCK_MONOTONIC.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace portier::bench {

struct Summary {
  std::size_t n = 0;
  double p50 = 0, p90 = 0, p99 = 0, max = 0, mean = 0;  // µs
};

// Latencies in ns -> p50/p90/p99/max/mean in µs (zeros when empty).
Summary summarize(std::vector<std::int64_t> ns);

// CLOCK_REALTIME - CLOCK_MONOTONIC, read back to back (the tightest of a few
// tries).
std::int64_t realtime_minus_mono();

}  // namespace portier::bench
