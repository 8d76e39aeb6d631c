#include "latency_summary.h"

#include <time.h>

#include <algorithm>
#include <climits>
#include <cmath>

namespace portier::bench {

Summary summarize(std::vector<std::int64_t> v) {
  Summary s;
  s.n = v.size();
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  auto at = [&](double q) {
    std::size_t k = static_cast<std::size_t>(std::ceil(q * static_cast<double>(v.size())));
    k = std::clamp<std::size_t>(k, 1, v.size());
    return static_cast<double>(v[k - 1]) / 1000.0;
  };
  s.p50 = at(0.50);
  s.p90 = at(0.90);
  s.p99 = at(0.99);
  s.max = static_cast<double>(v.back()) / 1000.0;
  double sum = 0;
  for (auto x : v) sum += static_cast<double>(x);
  s.mean = sum / static_cast<double>(v.size()) / 1000.0;
  return s;
}

std::int64_t realtime_minus_mono() {
  std::int64_t best = 0, best_width = INT64_MAX;
  for (int i = 0; i < 20; ++i) {
    timespec a{}, r{}, b{};
    clock_gettime(CLOCK_MONOTONIC, &a);
    clock_gettime(CLOCK_REALTIME, &r);
    clock_gettime(CLOCK_MONOTONIC, &b);
    auto ns = [](const timespec& t) {
      return static_cast<std::int64_t>(t.tv_sec) * 1000000000 + t.tv_nsec;
    };
    if (ns(b) - ns(a) < best_width) {
      best_width = ns(b) - ns(a);
      best = ns(r) - (ns(a) + ns(b)) / 2;
    }
  }
  return best;
}

}  // namespace portier::bench
