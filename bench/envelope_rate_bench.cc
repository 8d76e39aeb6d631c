// envelope_rate_bench: signed envelopes per second of the management link
// (issue 10), per algorithm (ecdsa-p256, ed25519, sm2) and signing mode
// (each, batch):
//   (a) into the outbox: Uplink::submit of N payloads -> all committed
//       (Uplink::flush returns);
//   (b) end to end through a real Mosquitto (TLS, client certificates) at
//       QoS 1: Uplink -> Outbox -> OutboxSender (runs of envelopes, one
//       MQTT message each) -> MqttLink -> the broker -> the fleet's
//       acknowledgement (bench/fleet_acker: signed ranges, verified by the
//       sender) -> the records deleted from the outbox.
// Each line is printed beside the ceiling measured in the same run:
// `openssl speed -elapsed -seconds S <alg>` (signs/s of the wall clock), with
// the ratio envelopes/s / ceiling. Then the parts of one envelope timed
// alone on one thread (seal, sign, serialize, the outbox commit) to say
// where the time goes. The outbox is a temp dir under /tmp; its filesystem
// is printed.
//
// Targets (issue 10): >= 5,000 envelopes/s end to end with ECDSA P-256 and
// with SM2 (batch); `each`: envelopes/s into the outbox / ceiling >= 0.8.
// A missed target is reported, not an error: exit 1 only when the setup
// fails (no openssl, no mosquitto, an outbox that cannot be opened).
//
// usage: envelope_rate_bench [--envelopes N] [--payload-bytes B]
//                            [--speed-seconds S] [--alg NAME]... [--trace]
//                            [--window N] [--max-in-flight N]
// --trace prints the end-to-end runs' progress every 100 ms (committed,
// sent, acknowledged).
#include <sys/resource.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
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

constexpr double kEndToEndTarget = 5000;  // envelopes/s, ECDSA P-256 and SM2 (batch)
constexpr double kEachRatioTarget = 0.8;  // envelope rate / ceiling, `each`

bool g_trace = false;                           // --trace: the end-to-end progress every 100 ms
int g_window = 64;                              // --window
const crypto::Certificate* g_anchor = nullptr;  // the fleet acker's CA

int g_signing_threads = 0;  // --signing-threads (0: UplinkOptions' default)
bool g_end_to_end = true;   // --no-end-to-end: part (a) and the parts only

struct Options {
  int envelopes = 20000;
  int payload_bytes = 200;
  int speed_seconds = 2;
  // As portierd sets them: the sender's window and the link's (Paho's)
  // max_in_flight are both [management] window.
  int window = 64, max_in_flight = 64;
  std::vector<crypto::KeyType> algs;
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double process_cpu_s() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
         (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// "ext4 (/dev/vda on /)": the filesystem holding `path`, from mountinfo.
std::string filesystem_of(const std::string& path) {
  std::ifstream f("/proc/self/mountinfo");
  std::string line, best_mount, best_type, best_source;
  while (std::getline(f, line)) {
    std::istringstream in(line);
    std::string id, parent, devno, root, mount;
    in >> id >> parent >> devno >> root >> mount;
    std::string field;
    while (in >> field && field != "-") {
    }
    std::string type, source;
    in >> type >> source;
    const bool under = path == mount || mount == "/" || path.rfind(mount + "/", 0) == 0;
    if (under && mount.size() >= best_mount.size()) {
      best_mount = mount;
      best_type = type;
      best_source = source;
    }
  }
  return best_type + " (" + best_source + " on " + best_mount + ")";
}

const char* speed_name(crypto::KeyType t) {
  switch (t) {
    case crypto::KeyType::ecdsa_p256:
      return "ecdsap256";
    case crypto::KeyType::ed25519:
      return "ed25519";
    case crypto::KeyType::sm2:
      return "sm2";
  }
  return "";
}

// `openssl speed -elapsed -mr -seconds S <alg>`: sign/s (its +F4/+F6/+F7
// line: the sign and verify rates are the last two fields). Throws when it
// has none. -elapsed: divided by the wall clock, as the envelope rates are
// (without it the CLI divides by its CPU user time, which on shared cores
// is a ceiling no wall-clock rate can reach).
double openssl_speed(crypto::KeyType t, int seconds) {
  const std::string cmd = "openssl speed -elapsed -mr -seconds " + std::to_string(seconds) + " " +
                          speed_name(t) + " 2>/dev/null";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) throw std::runtime_error("cannot run: " + cmd);
  char buf[512];
  double rate = -1;
  while (std::fgets(buf, sizeof buf, p)) {
    std::string line(buf);
    if (line.rfind("+F4:", 0) != 0 && line.rfind("+F6:", 0) != 0 && line.rfind("+F7:", 0) != 0) {
      continue;
    }
    auto last = line.rfind(':');
    auto before = line.rfind(':', last - 1);
    if (last == std::string::npos || before == std::string::npos) continue;
    rate = std::strtod(line.c_str() + before + 1, nullptr);
  }
  const int rc = pclose(p);
  if (rc != 0 || rate <= 0) {
    throw std::runtime_error("no sign rate from `" + cmd + "` (exit status " + std::to_string(rc) +
                             ")");
  }
  return rate;
}

// crypto::sign over 200-byte messages in a tight loop for `seconds` (wall
// clock, one thread): the project's own signing path without the envelope.
double inprocess_sign_rate(const crypto::KeySigner& signer, double seconds) {
  std::vector<std::uint8_t> msg(200, 0x5a);
  const auto t0 = std::chrono::steady_clock::now();
  long n = 0;
  while (seconds_since(t0) < seconds) {
    for (int i = 0; i < 50; ++i, ++n) {
      msg[n % msg.size()] = static_cast<std::uint8_t>(n);
      if (!signer.sign(msg)) throw std::runtime_error("crypto::sign failed");
    }
  }
  return n / seconds_since(t0);
}

std::vector<std::string> make_payloads(int n, int bytes) {
  std::mt19937 rng(42);
  std::vector<std::string> out(n);
  for (auto& p : out) {
    p.resize(bytes);
    for (auto& c : p) c = static_cast<char>(rng());
  }
  return out;
}

struct Key {
  crypto::KeyType type;
  std::unique_ptr<crypto::KeySigner> signer;
  std::string key_id;
};

Key make_key(crypto::KeyType type) {
  auto k = crypto::PrivateKey::generate(type);
  if (!k) throw std::runtime_error("key generation: " + k.error().message());
  auto s = crypto::KeySigner::from(std::move(*k));
  if (!s) throw std::runtime_error("signer: " + s.error().message());
  Key key{type, std::make_unique<crypto::KeySigner>(std::move(*s)), ""};
  auto id = envelope::key_id(key.signer->public_key());
  if (!id) throw std::runtime_error("key id: " + id.error().message());
  key.key_id = *id;
  return key;
}

std::unique_ptr<outbox::Outbox> open_outbox(const std::string& path) {
  std::filesystem::remove(path);
  std::filesystem::remove(path + "-wal");
  std::filesystem::remove(path + "-shm");
  auto b = outbox::Outbox::open({path, 1ull << 30, std::chrono::hours(24)});
  if (!b) throw std::runtime_error("outbox " + path + ": " + b.error().message());
  return std::move(*b);
}

std::unique_ptr<management::Uplink> make_uplink(outbox::Outbox& box, const Key& key,
                                                management::Signing signing) {
  auto state = box.chain_state();
  if (!state) throw std::runtime_error("chain state: " + state.error().message());
  ++state->session_epoch;
  management::UplinkOptions o;
  o.signing = signing;
  if (g_signing_threads > 0) o.signing_threads = static_cast<std::size_t>(g_signing_threads);
  return std::make_unique<management::Uplink>(
      box, envelope::EnvelopeSealer("T-bench", key.type, *state), *key.signer, key.key_id, o);
}

void submit_all(management::Uplink& up, const std::vector<std::string>& payloads) {
  for (const auto& p : payloads) {
    if (!up.submit(v1::PAYLOAD_HEALTH, p, outbox::Priority::telemetry)) {
      throw std::runtime_error("the uplink's queue refused a payload");
    }
  }
}

struct Rate {
  double per_s = 0, cpu_per_envelope_us = 0;
};

// (a) Uplink::submit of every payload -> all committed.
Rate into_outbox(const std::string& path, const Key& key, management::Signing signing,
                 const std::vector<std::string>& payloads) {
  auto box = open_outbox(path);
  auto up = make_uplink(*box, key, signing);
  up->start();
  const double cpu0 = process_cpu_s();
  const auto t0 = std::chrono::steady_clock::now();
  submit_all(*up, payloads);
  if (!up->flush(600s)) throw std::runtime_error("the uplink did not commit within 600 s");
  const double s = seconds_since(t0);
  const double cpu = process_cpu_s() - cpu0;
  up->stop();
  auto st = up->stats();
  if (st.sealed != payloads.size() || st.dropped != 0) {
    throw std::runtime_error("committed " + std::to_string(st.sealed) + " of " +
                             std::to_string(payloads.size()) + ", dropped " +
                             std::to_string(st.dropped));
  }
  return {payloads.size() / s, cpu / payloads.size() * 1e6};
}

// Forwards the link's calls to the sender and counts the acknowledgements
// as the link delivers them (before the sender deletes them), so that a
// trace tells a slow link from a slow sender.
class CountingHandler final : public link::LinkHandler {
 public:
  explicit CountingHandler(management::OutboxSender& s) : s_(s) {}
  void on_connected() override { s_.on_connected(); }
  void on_disconnected(const std::string& r) override { s_.on_disconnected(r); }
  void on_acknowledgement(std::string b) override {
    ++acks;
    s_.on_acknowledgement(std::move(b));
  }
  void on_command(std::string b) override { s_.on_command(std::move(b)); }
  std::atomic<std::uint64_t> acks{0};

 private:
  management::OutboxSender& s_;
};

// (b) Through the broker: submit -> PUBACK -> deleted.
Rate end_to_end(const std::string& path, const Key& key, management::Signing signing,
                const std::vector<std::string>& payloads, const link::MqttLinkOptions& lo) {
  auto box = open_outbox(path);
  auto up = make_uplink(*box, key, signing);
  auto ml = link::MqttLink::create(lo);
  if (!ml) throw std::runtime_error("mqtt link: " + ml.error().message());
  auto& link = **ml;
  management::OutboxSender sender(*box, link,
                                  {.terminal_id = "T-bench", .trust_anchors = {*g_anchor}}, nullptr,
                                  {.window = static_cast<std::size_t>(g_window)});
  up->on_stored([&] { sender.wake(); });
  CountingHandler counting(sender);
  if (auto ok = link.start(counting); !ok) {
    throw std::runtime_error("mqtt link start: " + ok.error().message());
  }
  sender.start();
  up->start();
  if (!wait_until([&] { return sender.stats().connected; }, 10s)) {
    throw std::runtime_error("the link did not connect to " + lo.server_uri + " within 10 s");
  }
  const double cpu0 = process_cpu_s();
  const auto t0 = std::chrono::steady_clock::now();
  submit_all(*up, payloads);
  // The sender's counter first: Outbox::stats() counts the table (a scan
  // under the outbox's lock), so it is read only once everything is acked.
  std::string trace;
  auto next_trace = t0;
  const bool done = wait_until(
      [&] {
        if (g_trace && std::chrono::steady_clock::now() >= next_trace) {
          auto ss = sender.stats();
          char b[96];
          std::snprintf(b, sizeof b, " %.2fs:%llu/%llu/%llu/%llu", seconds_since(t0),
                        static_cast<unsigned long long>(up->stats().sealed),
                        static_cast<unsigned long long>(ss.sent),
                        static_cast<unsigned long long>(counting.acks.load()),
                        static_cast<unsigned long long>(ss.acknowledged));
          trace += b;
          next_trace += 100ms;
        }
        if (sender.stats().acknowledged < payloads.size()) return false;
        auto s = box->stats();
        return s && s->records == 0;
      },
      600s);
  const double s = seconds_since(t0);
  const double cpu = process_cpu_s() - cpu0;
  up->stop();
  sender.stop();
  link.stop();
  if (g_trace) {
    std::printf("  trace (time:committed/sent/acknowledgements received/deleted):%s\n",
                trace.c_str());
  }
  {
    auto ss = sender.stats();
    std::printf(
        "  %llu envelopes in %llu messages, %llu acknowledgements verified, %llu refused, "
        "%llu resent\n",
        static_cast<unsigned long long>(ss.sent), static_cast<unsigned long long>(ss.messages),
        static_cast<unsigned long long>(ss.acks_verified),
        static_cast<unsigned long long>(ss.acks_refused),
        static_cast<unsigned long long>(ss.resent));
  }
  if (!done) {
    throw std::runtime_error("end to end: not drained within 600 s (acknowledged " +
                             std::to_string(sender.stats().acknowledged) + ")");
  }
  return {payloads.size() / s, cpu / payloads.size() * 1e6};
}

// The parts of one envelope, each timed alone on this thread over `n`
// envelopes (µs per envelope): seal (body + chain digest), sign, serialize,
// and the outbox commit in runs of 256 (one transaction, one fsync each).
struct Parts {
  double seal = 0, sign = 0, serialize = 0, commit = 0, envelope_bytes = 0;
};

Parts time_parts(const std::string& path, const Key& key, const std::vector<std::string>& payloads,
                 std::size_t n) {
  n = std::min(n, payloads.size());
  Parts p;
  envelope::EnvelopeSealer sealer("T-bench", key.type, {1, 1, {}});
  std::vector<envelope::EnvelopeSealer::Sealed> sealed;
  sealed.reserve(n);
  auto t0 = std::chrono::steady_clock::now();
  for (std::size_t i = 0; i < n; ++i) {
    auto s = sealer.seal(v1::PAYLOAD_HEALTH, payloads[i], std::chrono::system_clock::now());
    if (!s) throw std::runtime_error("seal: " + s.error().message());
    sealed.push_back(std::move(*s));
  }
  p.seal = seconds_since(t0) / n * 1e6;
  t0 = std::chrono::steady_clock::now();
  for (auto& s : sealed) {
    if (auto ok = envelope::sign_envelope(s.envelope, *key.signer, key.key_id); !ok) {
      throw std::runtime_error("sign: " + ok.error().message());
    }
  }
  p.sign = seconds_since(t0) / n * 1e6;
  std::vector<outbox::Record> records(n);
  t0 = std::chrono::steady_clock::now();
  for (std::size_t i = 0; i < n; ++i) {
    auto& r = records[i];
    r.sequence = sealed[i].sequence;
    r.created = std::chrono::system_clock::now();
    if (!sealed[i].envelope.SerializeToString(&r.envelope)) throw std::runtime_error("serialize");
    r.digest.assign(sealed[i].digest.begin(), sealed[i].digest.end());
    r.prev_digest.assign(sealed[i].prev_digest.begin(), sealed[i].prev_digest.end());
  }
  p.serialize = seconds_since(t0) / n * 1e6;
  double bytes = 0;
  for (auto& r : records) bytes += r.envelope.size();
  p.envelope_bytes = bytes / n;
  auto box = open_outbox(path);
  t0 = std::chrono::steady_clock::now();
  for (std::size_t i = 0; i < n; i += 256) {
    const auto len = std::min<std::size_t>(256, n - i);
    auto ok = box->put_batch(std::span(records).subspan(i, len), sealer.state(),
                             std::chrono::system_clock::now());
    if (!ok) throw std::runtime_error("put_batch: " + ok.error().message());
  }
  p.commit = seconds_since(t0) / n * 1e6;
  return p;
}

// Outbox::put_batch's cost per record as the backlog grows: `n` sealed
// records committed in runs of 256 into one outbox (never drained); the
// time per record of the runs that start at the given backlogs.
std::vector<std::pair<std::size_t, double>> commit_vs_backlog(
    const std::string& path, const Key& key, const std::vector<std::string>& payloads) {
  envelope::EnvelopeSealer sealer("T-bench", key.type, {1, 1, {}});
  std::vector<outbox::Record> records;
  records.reserve(payloads.size());
  for (const auto& p : payloads) {
    auto s = sealer.seal(v1::PAYLOAD_HEALTH, p, std::chrono::system_clock::now());
    if (!s) throw std::runtime_error("seal: " + s.error().message());
    outbox::Record r;
    r.sequence = s->sequence;
    r.created = std::chrono::system_clock::now();
    s->envelope.SerializeToString(&r.envelope);
    r.digest.assign(s->digest.begin(), s->digest.end());
    r.prev_digest.assign(s->prev_digest.begin(), s->prev_digest.end());
    records.push_back(std::move(r));
  }
  auto box = open_outbox(path);
  std::vector<std::pair<std::size_t, double>> out;
  std::size_t next_report = 0;
  for (std::size_t i = 0; i < records.size(); i += 256) {
    if (stop_requested()) break;
    const auto len = std::min<std::size_t>(256, records.size() - i);
    const auto t0 = std::chrono::steady_clock::now();
    auto ok = box->put_batch(std::span(records).subspan(i, len), sealer.state(),
                             std::chrono::system_clock::now());
    if (!ok) throw std::runtime_error("put_batch: " + ok.error().message());
    if (i >= next_report) {
      out.emplace_back(i, seconds_since(t0) / len * 1e6);
      next_report = next_report == 0 ? 2560 : next_report * 2;
    }
  }
  return out;
}

[[noreturn]] void usage(const char* program) {
  std::fprintf(stderr,
               "usage: %s [--envelopes N] [--payload-bytes B] [--speed-seconds S] "
               "[--alg ecdsa-p256|ed25519|sm2]... [--window N] [--max-in-flight N] [--trace]\n"
               "       [--signing-threads N] [--no-end-to-end]\n",
               program);
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--envelopes") {
      o.envelopes =
          parse_int_arg(argv[0], "--envelopes", arg_value(argv[0], argc, argv, i), 100, 10'000'000);
    } else if (a == "--payload-bytes") {
      o.payload_bytes =
          parse_int_arg(argv[0], "--payload-bytes", arg_value(argv[0], argc, argv, i), 1, 65536);
    } else if (a == "--speed-seconds") {
      o.speed_seconds =
          parse_int_arg(argv[0], "--speed-seconds", arg_value(argv[0], argc, argv, i), 1, 60);
    } else if (a == "--window") {
      o.window = parse_int_arg(argv[0], "--window", arg_value(argv[0], argc, argv, i), 1, 1024);
    } else if (a == "--max-in-flight") {
      o.max_in_flight =
          parse_int_arg(argv[0], "--max-in-flight", arg_value(argv[0], argc, argv, i), 1, 65535);
    } else if (a == "--signing-threads") {
      g_signing_threads =
          parse_int_arg(argv[0], "--signing-threads", arg_value(argv[0], argc, argv, i), 1, 64);
    } else if (a == "--no-end-to-end") {
      g_end_to_end = false;
    } else if (a == "--trace") {
      g_trace = true;
    } else if (a == "--alg") {
      std::string v = arg_value(argv[0], argc, argv, i);
      if (v == "ecdsa-p256") {
        o.algs.push_back(crypto::KeyType::ecdsa_p256);
      } else if (v == "ed25519") {
        o.algs.push_back(crypto::KeyType::ed25519);
      } else if (v == "sm2") {
        o.algs.push_back(crypto::KeyType::sm2);
      } else {
        std::fprintf(stderr, "%s: unknown --alg %s\n", argv[0], v.c_str());
        usage(argv[0]);
      }
    } else {
      usage(argv[0]);
    }
  }
  if (o.algs.empty()) {
    o.algs = {crypto::KeyType::ecdsa_p256, crypto::KeyType::ed25519, crypto::KeyType::sm2};
  }
  return o;
}

const char* mode_name(management::Signing s) {
  return s == management::Signing::each ? "each" : "batch";
}

int run(const Options& o) {
  TempDir dir;
  std::printf("envelope_rate_bench: %d envelopes of %d payload bytes per case\n", o.envelopes,
              o.payload_bytes);
  std::printf("outbox in %s: %s\n", dir.path().c_str(), filesystem_of(dir.path()).c_str());
  std::printf("sender window %d, link max_in_flight %d; cores online: %ld\n\n", o.window,
              o.max_in_flight, sysconf(_SC_NPROCESSORS_ONLN));
  std::fflush(stdout);

  auto tls = test::write_test_tls(dir.path(), {"T-bench", "portier-fleet"});
  if (!std::filesystem::exists(tls.cert("T-bench"))) {
    throw std::runtime_error("the test certificates could not be made (openssl CLI)");
  }
  test::BrokerOptions bo;
  bo.quiet_log = true;
  test::MosquittoBroker broker(dir.path(), tls, bo);
  if (auto ok = broker.start(); !ok) throw std::runtime_error(ok.message());
  link::MqttLinkOptions lo;
  // The fleet's acknowledgements (down/ack): the outbox deletes only those.
  bench::FleetAcker acker(broker.uri(), "bench",
                          {tls.ca_file, tls.cert("portier-fleet"), tls.key("portier-fleet")});
  g_anchor = &acker.trust_anchor();
  lo.server_uri = broker.uri();
  lo.fleet = "bench";
  lo.terminal_id = "T-bench";
  lo.tls = {tls.ca_file, tls.cert("T-bench"), tls.key("T-bench")};
  lo.will_payload = "offline";
  lo.backoff_min = 50ms;
  lo.backoff_max = 500ms;
  lo.max_in_flight = o.max_in_flight;
  g_window = o.window;

  const auto payloads = make_payloads(o.envelopes, o.payload_bytes);
  const std::string db = dir.file("outbox.db");
  std::vector<std::string> verdicts;
  std::vector<std::string> parts_lines;

  std::printf("%-10s %-5s %-12s %12s %12s %7s %14s\n", "alg", "mode", "path", "envelopes/s",
              "ceiling/s", "ratio", "cpu us/env");
  for (auto alg : o.algs) {
    if (stop_requested()) return 130;
    const auto key = make_key(alg);
    const std::string name(crypto::name(alg));
    const double ceiling = openssl_speed(alg, o.speed_seconds);
    const double own = inprocess_sign_rate(*key.signer, o.speed_seconds);
    std::printf("%-10s %-5s %-12s %12s %12.0f %7s %14s\n", name.c_str(), "-", "openssl speed", "-",
                ceiling, "1.00", "-");
    std::printf("%-10s %-5s %-12s %12.0f %12.0f %7.2f %14.1f\n", name.c_str(), "-", "crypto::sign",
                own, ceiling, own / ceiling, 1e6 / own);
    for (auto mode : {management::Signing::each, management::Signing::batch}) {
      if (stop_requested()) return 130;
      const auto a = into_outbox(db, key, mode, payloads);
      std::printf("%-10s %-5s %-12s %12.0f %12.0f %7.2f %14.1f\n", name.c_str(), mode_name(mode),
                  "outbox", a.per_s, ceiling, a.per_s / ceiling, a.cpu_per_envelope_us);
      std::fflush(stdout);
      if (!g_end_to_end) continue;
      if (stop_requested()) return 130;
      const auto b = end_to_end(db, key, mode, payloads, lo);
      std::printf("%-10s %-5s %-12s %12.0f %12.0f %7.2f %14.1f\n", name.c_str(), mode_name(mode),
                  "mqtt qos1", b.per_s, ceiling, b.per_s / ceiling, b.cpu_per_envelope_us);
      std::fflush(stdout);
      char v[512];
      if (mode == management::Signing::each) {
        const double r = a.per_s / ceiling, e = b.per_s / ceiling;
        std::snprintf(v, sizeof v,
                      "%-10s each : outbox/ceiling %.2f, end to end/ceiling %.2f (target >= "
                      "%.1f): %s into the outbox, %s end to end",
                      name.c_str(), r, e, kEachRatioTarget,
                      r >= kEachRatioTarget ? "met" : "MISSED",
                      e >= kEachRatioTarget ? "met" : "MISSED");
        verdicts.emplace_back(v);
      } else if (alg != crypto::KeyType::ed25519) {
        std::snprintf(v, sizeof v, "%-10s batch: end to end %.0f/s (target >= %.0f/s): %s",
                      name.c_str(), b.per_s, kEndToEndTarget,
                      b.per_s >= kEndToEndTarget ? "met" : "MISSED");
        verdicts.emplace_back(v);
      }
    }
    const auto p = time_parts(db, key, payloads, 5000);
    char line[256];
    std::snprintf(line, sizeof line,
                  "%-10s seal %6.1f  sign %6.1f  serialize %5.1f  commit %6.1f  = %6.1f us "
                  "(%.0f/s on one thread), envelope %.0f B",
                  name.c_str(), p.seal, p.sign, p.serialize, p.commit,
                  p.seal + p.sign + p.serialize + p.commit,
                  1e6 / (p.seal + p.sign + p.serialize + p.commit), p.envelope_bytes);
    parts_lines.emplace_back(line);
  }
  std::printf("\nparts of one envelope (us, one thread, %d envelopes; commit in runs of 256):\n",
              std::min(o.envelopes, 5000));
  for (auto& l : parts_lines) std::printf("  %s\n", l.c_str());
  std::printf("\noutbox commit (put_batch, runs of 256) per record as the backlog grows (%s):\n",
              std::string(crypto::name(o.algs.front())).c_str());
  for (auto [backlog, us] : commit_vs_backlog(db, make_key(o.algs.front()), payloads)) {
    std::printf("  backlog %6zu: %8.1f us/record (%.0f/s)\n", backlog, us, 1e6 / us);
  }
  std::printf("\ntargets:\n");
  for (auto& v : verdicts) std::printf("  %s\n", v.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const auto o = parse(argc, argv);
  return run_bench(argv[0], [&] { return run(o); });
}
