// outbox_drain_bench: the management link after an outage (issue 10). The
// outbox is filled with N signed envelopes while the broker is down (the
// link keeps trying), then a real Mosquitto (TLS, client certificates)
// comes back and the bench measures how fast the backlog drains (records/s
// from the connection until the outbox is empty: Outbox -> OutboxSender ->
// MqttLink -> PUBACK -> delete) and the process's peak RSS (VmHWM, reset
// through /proc/self/clear_refs just before the broker starts) during the
// drain. Each N runs in a fresh child process (the bench re-executed with
// --child N), so one backlog's heap does not carry into the next. The
// baseline is the RSS before the fill (everything set up, link retrying);
// the figure that matters is the drain's peak for N = 100,000 against
// N = 10,000: flat in the backlog size means a ratio near 1.
//
// usage: outbox_drain_bench [--records N]... [--payload-bytes B]
//                           [--alg ecdsa-p256|ed25519|sm2] [--signing each|batch]
//                           [--fill direct|uplink]
// --fill uplink commits the backlog through the Uplink (as portierd does);
// the default, direct, writes the same envelopes into the outbox's table
// in one transaction (see fill_direct).
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "agent/envelope/envelope_chain.h"
#include "agent/link/mqtt_link.h"
#include "agent/management/outbox_sender.h"
#include "agent/management/uplink.h"
#include "agent/outbox/outbox.h"
#include "common/crypto/signer.h"
#include "daemon_launcher.h"
#include "fleet_acker.h"
#include "portier/v1/envelope.pb.h"
#include "support/mosquitto_broker.h"

namespace {

using namespace portier;
using namespace portier::bench;
using namespace std::chrono_literals;

struct Options {
  std::vector<int> records;
  int payload_bytes = 200;
  std::string alg = "ecdsa-p256";
  std::string signing = "batch";
  std::string fill = "direct";  // or "uplink"
  int child = 0;                // > 0: run one backlog of this size and print a RESULT line
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

long self_kb(const char* key) { return proc_status_kb(getpid(), key); }

// Resets VmHWM to the current RSS; false when the kernel does not allow it.
bool reset_peak_rss() {
  std::ofstream f("/proc/self/clear_refs");
  f << "5";
  f.flush();
  return static_cast<bool>(f);
}

crypto::KeyType key_type(const std::string& name) {
  if (name == "ecdsa-p256") return crypto::KeyType::ecdsa_p256;
  if (name == "ed25519") return crypto::KeyType::ed25519;
  if (name == "sm2") return crypto::KeyType::sm2;
  throw std::runtime_error("unknown --alg " + name + " (ecdsa-p256, ed25519, sm2)");
}

// The backlog written straight into the outbox's `records` table through a
// connection of the bench's own, in one transaction: the same sealed and
// signed envelopes (the last of each run of 256 signed in `batch`) the
// Uplink would commit. The Uplink cannot fill a large backlog in
// reasonable time (Outbox::put scans the whole table once per record, see
// bench/README.md), and the drain, not the fill, is measured here.
void fill_direct(const std::string& db_path, int n, int payload_bytes, crypto::KeyType type,
                 const crypto::Signer& signer, const std::string& key_id, bool each) {
  sqlite3* db = nullptr;
  if (sqlite3_open(db_path.c_str(), &db) != SQLITE_OK) {
    throw std::runtime_error("open " + db_path + ": " + sqlite3_errmsg(db));
  }
  auto fail = [&](const char* what) {
    std::string m = std::string(what) + ": " + sqlite3_errmsg(db);
    sqlite3_close(db);
    throw std::runtime_error(m);
  };
  if (sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) != SQLITE_OK) fail("begin");
  sqlite3_stmt* ins = nullptr;
  if (sqlite3_prepare_v2(db,
                         "INSERT INTO records (seq, priority, created_ms, envelope, digest, size, "
                         "prev_digest) VALUES (?, ?, ?, ?, ?, ?, ?)",
                         -1, &ins, nullptr) != SQLITE_OK) {
    fail("prepare");
  }
  envelope::EnvelopeSealer sealer("T-bench", type, {1, 1, {}});
  std::mt19937 rng(7);
  std::string payload(payload_bytes, '\0'), bytes;
  for (int i = 0; i < n; ++i) {
    for (auto& c : payload) c = static_cast<char>(rng());
    const auto now = std::chrono::system_clock::now();
    auto sealed = sealer.seal(v1::PAYLOAD_HEALTH, payload, now);
    if (!sealed) throw std::runtime_error("seal: " + sealed.error().message());
    if (each || i % 256 == 255 || i + 1 == n) {
      if (auto ok = envelope::sign_envelope(sealed->envelope, signer, key_id); !ok) {
        throw std::runtime_error("sign: " + ok.error().message());
      }
    }
    sealed->envelope.SerializeToString(&bytes);
    sqlite3_reset(ins);
    sqlite3_bind_int64(ins, 1, static_cast<sqlite3_int64>(sealed->sequence));
    sqlite3_bind_int64(ins, 2, static_cast<int>(outbox::Priority::telemetry));
    sqlite3_bind_int64(
        ins, 3,
        std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count());
    sqlite3_bind_blob(ins, 4, bytes.data(), static_cast<int>(bytes.size()), SQLITE_TRANSIENT);
    sqlite3_bind_blob(ins, 5, sealed->digest.data(), static_cast<int>(sealed->digest.size()),
                      SQLITE_TRANSIENT);
    sqlite3_bind_int64(ins, 6, static_cast<sqlite3_int64>(bytes.size()));
    sqlite3_bind_blob(ins, 7, sealed->prev_digest.data(),
                      static_cast<int>(sealed->prev_digest.size()), SQLITE_TRANSIENT);
    if (sqlite3_step(ins) != SQLITE_DONE) fail("insert");
  }
  sqlite3_finalize(ins);
  if (sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK) fail("commit");
  sqlite3_close(db);
}

// One backlog of `n`: prints "RESULT key=value ...".
int run_child(const Options& o) {
  const int n = o.child;
  TempDir dir;
  auto tls = test::write_test_tls(dir.path(), {"T-bench", "portier-fleet"});
  if (!std::filesystem::exists(tls.cert("T-bench"))) {
    throw std::runtime_error("the test certificates could not be made (openssl CLI)");
  }
  test::BrokerOptions bo;
  bo.quiet_log = true;
  // Sessions outlive a restart, as at a real broker: the fleet's
  // subscription made before the outage gets what comes after it.
  bo.extra = "persistence true\npersistence_location " + dir.path() + "/\n";
  test::MosquittoBroker broker(dir.path(), tls, bo);
  // Started once to fix its port and for the fleet's session, then down:
  // the outage.
  if (auto ok = broker.start(); !ok) throw std::runtime_error(ok.message());
  // The fleet's acknowledgements (down/ack): the outbox deletes only those.
  bench::FleetAcker acker(broker.uri(), "bench",
                          {tls.ca_file, tls.cert("portier-fleet"), tls.key("portier-fleet")});
  broker.stop();

  const auto type = key_type(o.alg);
  auto k = crypto::PrivateKey::generate(type);
  if (!k) throw std::runtime_error("key: " + k.error().message());
  auto signer = crypto::KeySigner::from(std::move(*k));
  if (!signer) throw std::runtime_error("signer: " + signer.error().message());
  auto key_id = envelope::key_id(signer->public_key());
  if (!key_id) throw std::runtime_error("key id: " + key_id.error().message());

  auto b = outbox::Outbox::open({dir.file("outbox.db"), 1ull << 30, std::chrono::hours(24)});
  if (!b) throw std::runtime_error("outbox: " + b.error().message());
  auto& box = **b;
  auto state = box.chain_state();
  if (!state) throw std::runtime_error("chain state: " + state.error().message());
  ++state->session_epoch;
  management::UplinkOptions uo;
  uo.signing = o.signing == "each" ? management::Signing::each : management::Signing::batch;
  management::Uplink up(box, envelope::EnvelopeSealer("T-bench", type, *state), *signer, *key_id,
                        uo);

  link::MqttLinkOptions lo;
  lo.server_uri = broker.uri();
  lo.fleet = "bench";
  lo.terminal_id = "T-bench";
  lo.tls = {tls.ca_file, tls.cert("T-bench"), tls.key("T-bench")};
  lo.will_payload = "offline";
  lo.backoff_min = 50ms;
  lo.backoff_max = 200ms;
  auto ml = link::MqttLink::create(lo);
  if (!ml) throw std::runtime_error("mqtt link: " + ml.error().message());
  auto& link = **ml;
  management::OutboxSender sender(
      box, link, {.terminal_id = "T-bench", .trust_anchors = {acker.trust_anchor()}}, nullptr, {});
  up.on_stored([&] { sender.wake(); });
  if (auto ok = link.start(sender); !ok) throw std::runtime_error("link: " + ok.error().message());
  sender.start();
  up.start();
  std::this_thread::sleep_for(300ms);  // a few failed connection attempts: the link is set up
  const long baseline_kb = self_kb("VmRSS"), baseline_anon_kb = self_kb("RssAnon");

  // The outage: n envelopes committed while nothing can be sent.
  std::mt19937 rng(7);
  std::string payload(o.payload_bytes, '\0');
  const auto tf = std::chrono::steady_clock::now();
  if (o.fill == "direct") {
    fill_direct(dir.file("outbox.db"), n, o.payload_bytes, type, *signer, *key_id,
                uo.signing == management::Signing::each);
  } else {
    for (int i = 0; i < n; i += 1000) {
      if (stop_requested()) return 130;
      for (int j = i; j < std::min(n, i + 1000); ++j) {
        for (auto& c : payload) c = static_cast<char>(rng());
        if (!up.submit(v1::PAYLOAD_HEALTH, payload, outbox::Priority::telemetry)) {
          throw std::runtime_error("the uplink's queue refused a payload");
        }
      }
      if (!up.flush(600s)) throw std::runtime_error("the uplink did not commit within 600 s");
    }
  }
  const double fill_s = seconds_since(tf);
  auto st = box.stats();
  if (!st || st->records != static_cast<std::uint64_t>(n) || sender.stats().sent != 0) {
    throw std::runtime_error("after the fill the outbox holds " +
                             std::to_string(st ? st->records : 0) + " of " + std::to_string(n) +
                             " (sent " + std::to_string(sender.stats().sent) + ")");
  }
  const long filled_kb = self_kb("VmRSS");
  const long fill_hwm_kb = self_kb("VmHWM");
  const std::uint64_t backlog_bytes = st->bytes;

  // The broker comes back.
  const bool reset = reset_peak_rss();
  const auto t0 = std::chrono::steady_clock::now();
  if (auto ok = broker.start(); !ok) throw std::runtime_error(ok.message());
  if (!wait_until([&] { return sender.stats().connected; }, 10s)) {
    throw std::runtime_error("the link did not reconnect within 10 s");
  }
  const double connect_s = seconds_since(t0);
  const auto td = std::chrono::steady_clock::now();
  long max_rss_kb = 0;
  double first_ack_s = -1;
  // The sender's counter first: Outbox::stats() counts the table (a scan
  // under the outbox's lock), so it is read only once everything is acked.
  const bool drained = wait_until(
      [&] {
        max_rss_kb = std::max(max_rss_kb, self_kb("VmRSS"));
        const auto acked = sender.stats().acknowledged;
        if (acked > 0 && first_ack_s < 0) first_ack_s = seconds_since(td);
        if (acked < static_cast<std::uint64_t>(n)) return false;
        auto s = box.stats();
        return s && s->records == 0;
      },
      900s);
  const double drain_s = seconds_since(td);
  const long drain_hwm_kb = self_kb("VmHWM");
  const long end_kb = self_kb("VmRSS"), end_anon_kb = self_kb("RssAnon"),
             end_file_kb = self_kb("RssFile"), base_anon_kb = baseline_anon_kb;
  const auto ss = sender.stats();
  up.stop();
  sender.stop();
  link.stop();
  if (!drained) {
    if (stop_requested()) return 130;
    throw std::runtime_error("not drained within 900 s (acknowledged " +
                             std::to_string(ss.acknowledged) + ")");
  }
  std::printf(
      "RESULT n=%d baseline_kb=%ld filled_kb=%ld fill_hwm_kb=%ld drain_hwm_kb=%ld "
      "first_ack_s=%.3f drain_max_rss_kb=%ld end_kb=%ld end_anon_kb=%ld end_file_kb=%ld "
      "base_anon_kb=%ld "
      "hwm_reset=%d fill_s=%.3f connect_s=%.3f drain_s=%.3f "
      "backlog_bytes=%llu sent=%llu resent=%llu acks_verified=%llu acks_stale=%llu "
      "acks_refused=%llu acks_old=%llu acks_deferred=%llu acks_dropped=%llu "
      "ack_ranges_other_chain=%llu\n",
      n, baseline_kb, filled_kb, fill_hwm_kb, drain_hwm_kb, first_ack_s, max_rss_kb, end_kb,
      end_anon_kb, end_file_kb, base_anon_kb, reset ? 1 : 0, fill_s, connect_s, drain_s,
      static_cast<unsigned long long>(backlog_bytes), static_cast<unsigned long long>(ss.sent),
      static_cast<unsigned long long>(ss.resent), static_cast<unsigned long long>(ss.acks_verified),
      static_cast<unsigned long long>(ss.acks_stale),
      static_cast<unsigned long long>(ss.acks_refused),
      static_cast<unsigned long long>(ss.acks_old),
      static_cast<unsigned long long>(ss.acks_deferred),
      static_cast<unsigned long long>(ss.acks_dropped),
      static_cast<unsigned long long>(ss.ack_ranges_other_chain));
  return 0;
}

struct Result {
  std::map<std::string, double> v;
  double operator[](const std::string& k) const {
    auto it = v.find(k);
    if (it == v.end()) throw std::runtime_error("child result lacks " + k);
    return it->second;
  }
};

Result run_one(const Options& o, int n) {
  std::string cmd = "'" + self_exe() + "' --child " + std::to_string(n) + " --payload-bytes " +
                    std::to_string(o.payload_bytes) + " --alg " + o.alg + " --signing " +
                    o.signing + " --fill " + o.fill;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) throw std::runtime_error("cannot run " + cmd);
  char buf[1024];
  std::string result;
  while (std::fgets(buf, sizeof buf, p)) {
    std::string line(buf);
    if (line.rfind("RESULT ", 0) == 0) result = line.substr(7);
  }
  const int rc = pclose(p);
  if (stop_requested()) throw std::runtime_error("interrupted");
  if (rc != 0 || result.empty()) {
    throw std::runtime_error("the child for N = " + std::to_string(n) + " failed (status " +
                             std::to_string(rc) + ")");
  }
  Result r;
  std::istringstream in(result);
  std::string kv;
  while (in >> kv) {
    auto eq = kv.find('=');
    if (eq != std::string::npos) r.v[kv.substr(0, eq)] = std::strtod(kv.c_str() + eq + 1, nullptr);
  }
  return r;
}

double mib(double kb) { return kb / 1024.0; }

int run_parent(const Options& o) {
  std::printf(
      "outbox_drain_bench: backlog filled (--fill %s) while the broker is down (%s, %s "
      "signing, %d payload bytes), drained into a real Mosquitto at QoS 1; cores online: %ld\n",
      o.fill.c_str(), o.alg.c_str(), o.signing.c_str(), o.payload_bytes,
      sysconf(_SC_NPROCESSORS_ONLN));
  std::printf("outbox in /tmp/portier-bench-*; each N in a fresh process\n\n");
  std::printf("%8s %9s %9s %10s %11s %11s %12s %12s %12s %12s\n", "N", "backlog", "fill/s",
              "reconnect", "drain/s", "RSS before", "RSS filled", "peak drain", "RSS at end",
              "peak/before");
  std::vector<std::pair<int, Result>> all;
  for (int n : o.records) {
    auto r = run_one(o, n);
    std::printf("%8d %7.1fMB %9.0f %9.2fs %11.0f %9.1fMiB %9.1fMiB %9.1fMiB %9.1fMiB %12.2f\n", n,
                r["backlog_bytes"] / 1e6, n / r["fill_s"], r["connect_s"], n / r["drain_s"],
                mib(r["baseline_kb"]), mib(r["filled_kb"]), mib(r["drain_hwm_kb"]),
                mib(r["end_kb"]), r["drain_hwm_kb"] / r["baseline_kb"]);
    if (r["hwm_reset"] == 0) {
      std::printf("         (VmHWM could not be reset: the peak is the process's whole life)\n");
    }
    std::printf("         first acknowledgement %.3f s after the connection; then %.0f/s\n",
                r["first_ack_s"], n / std::max(1e-9, r["drain_s"] - r["first_ack_s"]));
    std::printf("         anonymous: %.1f MiB before, %.1f MiB at the end (file-backed %.1f MiB)\n",
                mib(r["base_anon_kb"]), mib(r["end_anon_kb"]), mib(r["end_file_kb"]));
    if (r["resent"] > 0) std::printf("         (%.0f resent)\n", r["resent"]);
    std::printf(
        "         acknowledgements: %.0f verified, %.0f stale, %.0f refused, %.0f old, "
        "%.0f deferred, %.0f dropped, %.0f ranges of another chain\n",
        r["acks_verified"], r["acks_stale"], r["acks_refused"], r["acks_old"], r["acks_deferred"],
        r["acks_dropped"], r["ack_ranges_other_chain"]);
    std::fflush(stdout);
    all.emplace_back(n, std::move(r));
  }
  if (all.size() >= 2) {
    const auto& [n0, r0] = all.front();
    const auto& [n1, r1] = all.back();
    std::printf(
        "\npeak RSS during the drain, N = %d vs N = %d: %.1f MiB vs %.1f MiB, ratio %.2f "
        "for %.0fx the backlog (flat: ~1.0)\n",
        n1, n0, mib(r1["drain_hwm_kb"]), mib(r0["drain_hwm_kb"]),
        r1["drain_hwm_kb"] / r0["drain_hwm_kb"], static_cast<double>(n1) / n0);
    std::printf("drain rate, N = %d vs N = %d: %.0f/s vs %.0f/s, ratio %.2f\n", n1, n0,
                n1 / r1["drain_s"], n0 / r0["drain_s"],
                (n1 / r1["drain_s"]) / (n0 / r0["drain_s"]));
  }
  return 0;
}

[[noreturn]] void usage(const char* program) {
  std::fprintf(stderr,
               "usage: %s [--records N]... [--payload-bytes B] [--alg ecdsa-p256|ed25519|sm2] "
               "[--signing each|batch] [--fill direct|uplink]\n",
               program);
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--records") {
      o.records.push_back(
          parse_int_arg(argv[0], "--records", arg_value(argv[0], argc, argv, i), 1, 10'000'000));
    } else if (a == "--child") {
      o.child = parse_int_arg(argv[0], "--child", arg_value(argv[0], argc, argv, i), 1, 10'000'000);
    } else if (a == "--payload-bytes") {
      o.payload_bytes =
          parse_int_arg(argv[0], "--payload-bytes", arg_value(argv[0], argc, argv, i), 1, 65536);
    } else if (a == "--alg") {
      o.alg = arg_value(argv[0], argc, argv, i);
      if (o.alg != "ecdsa-p256" && o.alg != "ed25519" && o.alg != "sm2") usage(argv[0]);
    } else if (a == "--fill") {
      o.fill = arg_value(argv[0], argc, argv, i);
      if (o.fill != "direct" && o.fill != "uplink") usage(argv[0]);
    } else if (a == "--signing") {
      o.signing = arg_value(argv[0], argc, argv, i);
      if (o.signing != "each" && o.signing != "batch") usage(argv[0]);
    } else {
      usage(argv[0]);
    }
  }
  if (o.records.empty()) o.records = {10000, 100000};
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  const auto o = parse(argc, argv);
  return run_bench(argv[0], [&] { return o.child > 0 ? run_child(o) : run_parent(o); });
}
