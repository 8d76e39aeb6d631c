// management_idle_bench: what the management link (issue 10) adds to an
// idle portierd. The daemon runs with one simulated scanner (interval_ms =
// 2000), as in daemon_idle_bench, once without [management] (the baseline)
// and once with a [management] table whose MQTT link connects to a real
// Mosquitto (TLS, client certificates, started from the test support
// library). After the daemon is ready (and, with management, the broker
// logged the terminal's connection) it idles for --idle-seconds; then its
// RSS (VmRSS, anonymous and file-backed, VmHWM) and the CPU it used while
// idle (schedstat) are read, and the RSS the link adds is split by
// mapping. Target (issue 10): idle RSS with the link up < 24 MiB. Each
// configuration is started --runs times; the medians are printed.
//
// With --restarted, a third configuration: the link's portierd started a
// second time in the state its first start left (device key, outbox
// schema, session), as a terminal restarts; that start is measured.
//
// usage: management_idle_bench [--idle-seconds N] [--runs N] [--restarted] [--mappings]
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "daemon_launcher.h"
#include "support/mosquitto_broker.h"

namespace {

using namespace portier;
using namespace portier::bench;
using namespace std::chrono_literals;

constexpr double kRssTargetMib = 24;
// A fixed terminal id (T- and 32 hex digits), written before the first
// start; the client certificate is issued for it.
constexpr char kTerminal[] = "T-0123456789abcdef0123456789abcdef";

struct Options {
  int idle_seconds = 5;
  int runs = 3;
  // Also measure a second start in the same state (the device key, the
  // outbox's schema and the session already there), as a terminal restarts.
  bool restarted = false;
  // Also print the RSS of every mapping of the last run with the link.
  bool mappings = false;
};

// Rss per mapped file ("[anon]" for the rest) from /proc/<pid>/smaps.
std::map<std::string, double> rss_by_mapping(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/smaps");
  std::map<std::string, double> out;
  std::string line, current = "[anon]";
  while (std::getline(f, line)) {
    if (line.empty()) continue;
    if (std::isxdigit(static_cast<unsigned char>(line[0])) && line.find('-') < 17) {
      std::istringstream in(line);
      std::string range, perms, offset, dev, inode, path;
      in >> range >> perms >> offset >> dev >> inode >> path;
      current = path.empty() ? "[anon]" : path;
    } else if (line.rfind("Rss:", 0) == 0) {
      out[current] += std::strtod(line.c_str() + 4, nullptr);
    }
  }
  return out;
}

// Threads by name (/proc/<pid>/task/*/comm; ours are all "portierd").
std::map<std::string, int> threads_by_name(pid_t pid) {
  std::map<std::string, int> out;
  std::error_code ec;
  for (auto& t :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
    std::ifstream f(t.path() / "comm");
    std::string name;
    if (std::getline(f, name)) ++out[name];
  }
  return out;
}

struct Sample {
  std::map<std::string, double> mappings;
  std::map<std::string, int> thread_names;
  double rss_kb = 0, anon_kb = 0, file_kb = 0, hwm_kb = 0, cpu_pct = 0, threads = 0;
  double ready_ms = 0, connected_ms = 0;
};

std::string read_all(const std::string& path) {
  std::ifstream f(path);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

std::size_t count(const std::string& hay, const std::string& needle) {
  std::size_t n = 0;
  for (auto p = hay.find(needle); p != std::string::npos; p = hay.find(needle, p + 1)) ++n;
  return n;
}

Sample run_once(const Options& o, const test::TestTls& tls, const test::MosquittoBroker* broker,
                const std::string& broker_dir, int starts = 1) {
  TempDir dir;
  std::string extra =
      "log_level = \"debug\"\n"
      "\n[[scanner]]\n"
      "id = \"sim0\"\n"
      "type = \"simulated\"\n"
      "interval_ms = 2000\n";
  if (broker) {
    extra +=
        "\n[management]\n"
        "link = \"mqtt\"\n"
        "server = \"" +
        broker->uri() +
        "\"\n"
        "fleet = \"bench\"\n"
        "ca_file = \"" +
        tls.ca_file +
        "\"\n"
        "cert_file = \"" +
        tls.cert(kTerminal) +
        "\"\n"
        "tls_key_file = \"" +
        tls.key(kTerminal) +
        "\"\n"
        "command_trust_anchors = [\"" +
        tls.ca_file + "\"]\n";
  }
  auto files = write_daemon_files(dir, extra);
  std::filesystem::create_directories(dir.file("state/management"));
  ::chmod(dir.file("state").c_str(), 0700);
  ::chmod(dir.file("state/management").c_str(), 0700);
  write_file(dir.file("state/management/terminal_id"), std::string(kTerminal) + "\n");

  const std::string log_path = broker_dir + "/mosquitto.log";
  const std::string connected = "as portier-bench-" + std::string(kTerminal);
  std::size_t before = 0;
  Sample s;
  // Started `starts` times in the same state: all but the last start only
  // come up (ready, and connected) and stop; the last one is measured.
  std::unique_ptr<ChildProcess> child;
  for (int i = 0; i < starts; ++i) {
    if (child) {
      const int rc = child->stop(SIGTERM, 10000ms);
      if (rc != 0) std::printf("  (portierd exited with %d on SIGTERM)\n", rc);
    }
    before = broker ? count(read_all(log_path), connected) : 0;
    child = std::make_unique<ChildProcess>(
        std::vector<std::string>{bin_path("portierd"), "--config", files.config});
    auto& d = *child;
    if (!d.start()) throw std::runtime_error("fork failed");
    const std::int64_t ready = d.wait_for_log("ready in", 15000ms);
    if (ready < 0) throw std::runtime_error("portierd did not become ready; its log:\n" + d.log());
    s.ready_ms = (ready - d.spawned_ns()) / 1e6;
    if (broker) {
      if (!wait_until([&] { return count(read_all(log_path), connected) > before; }, 15000ms)) {
        throw std::runtime_error("the broker never saw the terminal connect; portierd's log:\n" +
                                 d.log() + "\nthe broker's log:\n" + read_all(log_path));
      }
      s.connected_ms = (mono_ns() - d.spawned_ns()) / 1e6;
    }
  }
  auto& d = *child;
  const std::int64_t cpu0 = proc_sched_ns(d.pid()), t0 = mono_ns();
  for (int i = 0; i < o.idle_seconds * 10 && !stop_requested(); ++i) {
    std::this_thread::sleep_for(100ms);
  }
  if (stop_requested()) throw std::runtime_error("interrupted");
  if (!d.alive()) throw std::runtime_error("portierd exited while idle; its log:\n" + d.log());
  s.cpu_pct = 100.0 * (proc_sched_ns(d.pid()) - cpu0) / (mono_ns() - t0);
  s.rss_kb = proc_status_kb(d.pid(), "VmRSS");
  s.anon_kb = proc_status_kb(d.pid(), "RssAnon");
  s.file_kb = proc_status_kb(d.pid(), "RssFile");
  s.hwm_kb = proc_status_kb(d.pid(), "VmHWM");
  s.threads = proc_status_kb(d.pid(), "Threads");
  s.mappings = rss_by_mapping(d.pid());
  s.thread_names = threads_by_name(d.pid());
  if (broker && count(read_all(log_path), connected) > before + 1) {
    std::printf("  (the terminal reconnected while idle)\n");
  }
  const int rc = d.stop(SIGTERM, 10000ms);
  if (rc != 0) std::printf("  (portierd exited with %d on SIGTERM)\n", rc);
  return s;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

Sample medians(const std::vector<Sample>& all) {
  auto m = [&](double Sample::*f) {
    std::vector<double> v;
    for (auto& s : all) v.push_back(s.*f);
    return median(v);
  };
  Sample s;
  s.rss_kb = m(&Sample::rss_kb);
  s.anon_kb = m(&Sample::anon_kb);
  s.file_kb = m(&Sample::file_kb);
  s.hwm_kb = m(&Sample::hwm_kb);
  s.cpu_pct = m(&Sample::cpu_pct);
  s.threads = m(&Sample::threads);
  s.ready_ms = m(&Sample::ready_ms);
  s.connected_ms = m(&Sample::connected_ms);
  return s;
}

void print(const char* what, const Sample& s) {
  std::printf("%-24s %8.2f %8.2f %8.2f %8.2f %7.0f %8.2f %9.0f %11.0f\n", what, s.rss_kb / 1024,
              s.anon_kb / 1024, s.file_kb / 1024, s.hwm_kb / 1024, s.threads, s.cpu_pct, s.ready_ms,
              s.connected_ms);
}

int run(const Options& o) {
  TempDir dir;
  const std::string broker_dir = dir.file("broker");
  std::filesystem::create_directories(broker_dir);
  auto tls = test::write_test_tls(dir.file("broker"), {kTerminal});
  if (!std::filesystem::exists(tls.cert(kTerminal))) {
    throw std::runtime_error("the test certificates could not be made (openssl CLI)");
  }
  test::BrokerOptions bo;
  bo.quiet_log = true;
  test::MosquittoBroker broker(broker_dir, tls, bo);
  if (auto ok = broker.start(); !ok) throw std::runtime_error(ok.message());

  std::printf(
      "management_idle_bench: portierd with one simulated scanner, %d s idle, %d runs each "
      "(medians); %ld cores online\n\n",
      o.idle_seconds, o.runs, sysconf(_SC_NPROCESSORS_ONLN));
  std::printf("%-24s %8s %8s %8s %8s %7s %8s %9s %11s\n", "", "RSS MiB", "anon", "file", "HWM MiB",
              "threads", "idle CPU%", "ready ms", "link up ms");
  std::vector<Sample> base, mgmt, again;
  for (int i = 0; i < o.runs; ++i) {
    base.push_back(run_once(o, tls, nullptr, broker_dir));
    mgmt.push_back(run_once(o, tls, &broker, broker_dir));
    if (o.restarted) again.push_back(run_once(o, tls, &broker, broker_dir, 2));
  }
  const auto b = medians(base), m = medians(mgmt);
  print("without [management]", b);
  print("with [management], MQTT", m);
  if (o.restarted) print("  same, second start", medians(again));
  auto each = [](const char* what, const std::vector<Sample>& all) {
    std::printf("  %s, RSS of each run (kB):", what);
    for (auto& s : all) std::printf(" %.0f", s.rss_kb);
    std::printf("\n");
  };
  each("without", base);
  each("with", mgmt);
  if (o.restarted) each("with, second start", again);
  auto thread_list = [](const char* what, const Sample& s) {
    std::printf("  threads %s (last run):", what);
    for (auto& [n, k] : s.thread_names) std::printf(" %s x%d", n.c_str(), k);
    std::printf("\n");
  };
  thread_list("without", base.back());
  thread_list("with", mgmt.back());
  const double mib = m.rss_kb / 1024;
  // Where the difference lies, by mapping (the last run of each).
  std::vector<std::pair<double, std::string>> diff;
  auto names = base.back().mappings;
  for (auto& [k, v] : mgmt.back().mappings) names[k] += 0;
  for (auto& [k, v] : names) {
    const auto bm = base.back().mappings, mm = mgmt.back().mappings;
    const double d = (mm.contains(k) ? mm.at(k) : 0) - (bm.contains(k) ? bm.at(k) : 0);
    if (d != 0) diff.emplace_back(d, k);
  }
  std::sort(diff.begin(), diff.end(),
            [](auto& a, auto& b) { return std::abs(a.first) > std::abs(b.first); });
  std::printf("\nRSS added by the link, by mapping (last run, kB):\n");
  for (std::size_t i = 0; i < diff.size() && i < 12; ++i) {
    std::printf("  %+8.0f  %s\n", diff[i].first, diff[i].second.c_str());
  }
  if (o.mappings) {
    std::vector<std::pair<double, std::string>> all;
    for (auto& [k, v] : mgmt.back().mappings) all.emplace_back(v, k);
    std::sort(all.begin(), all.end(), [](auto& a, auto& b) { return a.first > b.first; });
    std::printf("\nRSS of each mapping with the link (last run, kB):\n");
    for (auto& [v, k] : all) std::printf("  %8.0f  %s\n", v, k.c_str());
  }
  std::printf("\nthe management link adds %.1f MiB (%.1f MiB anonymous); ratio %.2f\n",
              (m.rss_kb - b.rss_kb) / 1024, (m.anon_kb - b.anon_kb) / 1024, m.rss_kb / b.rss_kb);
  std::printf("target: idle RSS with the link up < %.0f MiB: %.1f MiB, %s\n", kRssTargetMib, mib,
              mib < kRssTargetMib ? "met" : "MISSED");
  return 0;
}

int parse_int(const char* flag, const char* v, int lo, int hi) {
  return parse_int_arg("management_idle_bench", flag, v, lo, hi);
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--idle-seconds") {
      o.idle_seconds = parse_int("--idle-seconds", arg_value(argv[0], argc, argv, i), 1, 600);
    } else if (a == "--runs") {
      o.runs = parse_int("--runs", arg_value(argv[0], argc, argv, i), 1, 50);
    } else if (a == "--mappings") {
      o.mappings = true;
    } else if (a == "--restarted") {
      o.restarted = true;
    } else {
      std::fprintf(stderr, "usage: %s [--idle-seconds N] [--runs N] [--restarted] [--mappings]\n",
                   argv[0]);
      return 2;
    }
  }
  return run_bench(argv[0], [&] { return run(o); });
}
