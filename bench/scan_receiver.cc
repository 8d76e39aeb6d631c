#include "scan_receiver.h"

#include <time.h>

#include <algorithm>
#include <charconv>
#include <climits>
#include <cstdio>

namespace portier::bench {

bool parse_frame(std::string_view s, Frame* f) {
  if (s.size() < 4 || s[0] != 'S') return false;
  auto t = s.find('T');
  if (t == std::string_view::npos) return false;
  auto r1 = std::from_chars(s.data() + 1, s.data() + t, f->seq);
  auto r2 = std::from_chars(s.data() + t + 1, s.data() + s.size(), f->sent_ns);
  return r1.ec == std::errc() && r2.ec == std::errc() && r1.ptr == s.data() + t &&
         r2.ptr == s.data() + s.size();
}

void Received::init(int count) {
  expected = static_cast<std::uint64_t>(count);
  seen.assign(static_cast<std::size_t>(count), false);
  latency_ns.reserve(static_cast<std::size_t>(count));
  to_hub_ns.reserve(static_cast<std::size_t>(count));
  from_hub_ns.reserve(static_cast<std::size_t>(count));
}

void Received::record(const Frame& f, std::int64_t now, int warmup, std::int64_t hub_ns) {
  if (f.seq < static_cast<std::uint64_t>(warmup)) return;
  std::uint64_t i = f.seq - static_cast<std::uint64_t>(warmup);
  if (i >= seen.size()) {
    ++unparsed;
    return;
  }
  if (seen[i]) {
    ++duplicates;
    return;
  }
  if (i + 1 < last_index_plus1_) ++out_of_order;
  last_index_plus1_ = std::max(last_index_plus1_, i + 1);
  seen[i] = true;
  ++received;
  latency_ns.push_back(now - f.sent_ns);
  if (hub_ns >= 0) {
    to_hub_ns.push_back(hub_ns - f.sent_ns);
    from_hub_ns.push_back(now - hub_ns);
  }
  if (i + 1 == seen.size()) got_last = true;
}

void Received::record_event(const v1::PeripheralEvent& ev, std::int64_t now,
                            std::int64_t realtime_offset) {
  if (last_daemon_seq_ && ev.sequence() > last_daemon_seq_ + 1) {
    daemon_seq_gaps += ev.sequence() - last_daemon_seq_ - 1;
  }
  last_daemon_seq_ = ev.sequence();
  dropped_reported = ev.dropped();
  if (!ev.has_scan()) {
    ++faults;
    return;
  }
  Frame f;
  if (!parse_frame(ev.scan().raw(), &f)) {
    ++unparsed;
    return;
  }
  const std::int64_t hub = ev.time().seconds() * 1000000000 + ev.time().nanos() - realtime_offset;
  record(f, now, kScanWarmup, hub);
}

bool Received::write_to(const std::string& path) const {
  const std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "w");
  if (!f) return false;
  std::fprintf(f, "R %llu %llu %llu %llu %llu %llu %llu %llu\n",
               static_cast<unsigned long long>(expected), static_cast<unsigned long long>(received),
               static_cast<unsigned long long>(duplicates),
               static_cast<unsigned long long>(out_of_order),
               static_cast<unsigned long long>(daemon_seq_gaps),
               static_cast<unsigned long long>(dropped_reported),
               static_cast<unsigned long long>(faults), static_cast<unsigned long long>(unparsed));
  for (std::size_t i = 0; i < latency_ns.size(); ++i) {
    const bool split = i < to_hub_ns.size();
    std::fprintf(f, "%lld %lld %lld\n", static_cast<long long>(latency_ns[i]),
                 static_cast<long long>(split ? to_hub_ns[i] : -1),
                 static_cast<long long>(split ? from_hub_ns[i] : -1));
  }
  bool ok = std::fflush(f) == 0;
  ok = std::fclose(f) == 0 && ok;
  return ok && std::rename(tmp.c_str(), path.c_str()) == 0;
}

bool Received::read_from(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "r");
  if (!f) return false;
  unsigned long long v[8];
  bool ok = std::fscanf(f, "R %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                        &v[4], &v[5], &v[6], &v[7]) == 8;
  if (ok) {
    expected = v[0];
    received = v[1];
    duplicates = v[2];
    out_of_order = v[3];
    daemon_seq_gaps = v[4];
    dropped_reported = v[5];
    faults = v[6];
    unparsed = v[7];
    long long lat, to, from;
    while (std::fscanf(f, "%lld %lld %lld", &lat, &to, &from) == 3) {
      latency_ns.push_back(lat);
      if (to >= 0) {
        to_hub_ns.push_back(to);
        from_hub_ns.push_back(from);
      }
    }
    ok = latency_ns.size() == received;
  }
  std::fclose(f);
  return ok;
}

}  // namespace portier::bench
