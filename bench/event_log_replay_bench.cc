// Event-log replay benchmark (issue 4: "replay of a 2,000-event log under
// 10 ms"). Generates a crypto-agile log (sha1 + sha256) of 2,000 events with
// 64-byte event data, times parse + replay of both banks (median of 50 runs)
// and compares with a baseline: one SHA-256 over the same bytes.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "agent/attest/pcr_replay.h"
#include "agent/attest/tcg_event_log.h"

using namespace portier::attest;

namespace {

void put_u16(std::string& s, std::uint16_t v) {
  s.push_back(static_cast<char>(v & 0xff));
  s.push_back(static_cast<char>(v >> 8));
}
void put_u32(std::string& s, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

std::string make_log(int events) {
  std::string spec("Spec ID Event03", 15);
  spec.push_back('\0');
  put_u32(spec, 0);
  spec += std::string("\x00\x02\x00\x02", 4);
  put_u32(spec, 2);
  put_u16(spec, kAlgSha1);
  put_u16(spec, 20);
  put_u16(spec, kAlgSha256);
  put_u16(spec, 32);
  spec.push_back('\0');
  std::string log;
  put_u32(log, 0);
  put_u32(log, kEvNoAction);
  log.append(20, '\0');
  put_u32(log, static_cast<std::uint32_t>(spec.size()));
  log += spec;
  for (int i = 0; i < events; ++i) {
    std::string data(64, static_cast<char>(i));
    const std::span<const std::uint8_t> d(reinterpret_cast<const std::uint8_t*>(data.data()),
                                          data.size());
    const Bytes h1 = hash_bytes(kAlgSha1, d), h256 = hash_bytes(kAlgSha256, d);
    put_u32(log, static_cast<std::uint32_t>(i % 10));
    put_u32(log, i % 10 == 9 ? kEvSeparator : kEvPostCode);
    put_u32(log, 2);
    put_u16(log, kAlgSha1);
    log.append(h1.begin(), h1.end());
    put_u16(log, kAlgSha256);
    log.append(h256.begin(), h256.end());
    put_u32(log, static_cast<std::uint32_t>(data.size()));
    log += data;
  }
  return log;
}

template <class F>
double median_us(int runs, F&& f) {
  std::vector<double> t;
  for (int i = 0; i < runs; ++i) {
    const auto a = std::chrono::steady_clock::now();
    f();
    t.push_back(
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - a).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

}  // namespace

int main() {
  const int kEvents = 2000, kRuns = 50;
  const std::string log = make_log(kEvents);
  std::size_t replayed = 0;
  const double parse_only = median_us(kRuns, [&] {
    auto r = parse_tcg_event_log(log);
    if (!r.ok) std::abort();
  });
  const double full = median_us(kRuns, [&] {
    auto r = parse_tcg_event_log(log);
    if (!r.ok) std::abort();
    auto rep = replay_tcg_event_log(r.log);
    if (!rep) std::abort();
    replayed = rep->events_replayed;
  });
  const double baseline = median_us(kRuns, [&] {
    auto h =
        hash_bytes(kAlgSha256, {reinterpret_cast<const std::uint8_t*>(log.data()), log.size()});
    if (h.size() != 32) std::abort();
  });
  std::printf(
      "event_log_replay_bench: %d events (%zu replayed), %zu bytes, sha1+sha256 banks, median of "
      "%d runs\n",
      kEvents, replayed, log.size(), kRuns);
  std::printf("  parse only                 %9.1f us\n", parse_only);
  std::printf("  parse + replay (2 banks)   %9.1f us   target < 10000 us: %s\n", full,
              full < 10000 ? "PASS" : "FAIL");
  std::printf("  baseline: SHA-256 of log   %9.1f us   (replay = %.1fx baseline)\n", baseline,
              full / baseline);
  return full < 10000 ? 0 : 1;
}
