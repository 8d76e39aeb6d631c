// What a scan_latency_bench subscriber records: frames "S<seq>T<ns>\r" carry
// their own send time (CLOCK_MONOTONIC just before write() to the pty), so a
// receiver turns every event into a latency, and counts what is missing,
// repeated or out of order.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "latency_summary.h"
#include "portier/v1/gateway.pb.h"

namespace portier::bench {

inline constexpr int kScanWarmup = 200;  // scans sent before measuring
inline constexpr const char* kScanDevice = "scanner0";

struct Frame {
  std::uint64_t seq = 0;
  std::int64_t sent_ns = 0;
};
bool parse_frame(std::string_view s, Frame* f);

struct Received {
  std::vector<std::int64_t> latency_ns;  // measured frames only
  // The same latency split at PeripheralEvent.time (stamped by the daemon's
  // hub before it fans the event out): pty + driver, then fan-out + gRPC.
  std::vector<std::int64_t> to_hub_ns, from_hub_ns;
  std::uint64_t expected = 0;
  std::uint64_t received = 0;  // distinct measured frames
  std::uint64_t duplicates = 0;
  std::uint64_t out_of_order = 0;
  std::uint64_t daemon_seq_gaps = 0;   // events missing between consecutive daemon sequences
  std::uint64_t dropped_reported = 0;  // last PeripheralEvent.dropped
  std::uint64_t faults = 0;
  std::uint64_t unparsed = 0;
  std::vector<bool> seen;
  std::atomic<bool> got_last{false};

  void init(int count);
  std::uint64_t lost() const { return expected > received ? expected - received : 0; }
  // `hub_ns`: the daemon's stamp on CLOCK_MONOTONIC, or -1 when there is none.
  void record(const Frame& f, std::int64_t now, int warmup, std::int64_t hub_ns = -1);
  // One PeripheralEvent read at `now`; `realtime_offset` from realtime_minus_mono().
  void record_event(const v1::PeripheralEvent& ev, std::int64_t now, std::int64_t realtime_offset);

  // A text file: a counter line, then one "latency to_hub from_hub" line per
  // frame. write_to() replaces `path` atomically.
  bool write_to(const std::string& path) const;
  bool read_from(const std::string& path);

 private:
  std::uint64_t last_index_plus1_ = 0;
  std::uint64_t last_daemon_seq_ = 0;
};

}  // namespace portier::bench
